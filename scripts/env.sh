# Shared settings of the scripts in this folder (sourced, not run).

# One cargo target directory shared by every run, so CI and repeated runs
# reuse compiled dependencies (wasmtime takes minutes to build from scratch).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/flint/target}"
# Guest functions build in a target dir of their own (see artifacts/build.rs).
export WASM_TARGET_DIR="$CARGO_TARGET_DIR/wasm-functions"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

# wasm32-wasip2 for components; wasm32-wasip1 for the WAGI example.
ensure_wasm_target() {
  local target
  for target in wasm32-wasip2 wasm32-wasip1; do
    if ! rustup target list --installed | grep -qx "$target"; then
      echo "installing the $target target"
      rustup target add "$target"
    fi
  done
}

# The C WAGI example builds with clang for wasm32-wasi against wasi-libc
# (Debian's packages).
ensure_wasi_c() {
  if ! command -v clang >/dev/null 2>&1 || [ ! -d /usr/include/wasm32-wasi ] \
    || ! ls /usr/lib/llvm-*/lib/clang/*/lib/wasi/libclang_rt.builtins-wasm32.a >/dev/null 2>&1; then
    echo "installing clang, lld, wasi-libc and the wasm32 compiler runtime"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      clang lld wasi-libc libclang-rt-dev-wasm32
  fi
}

# The shared-registry tests talk to PostgreSQL on 127.0.0.1:5432 (user
# postgres, trust) with psql, and make a database of their own each.
ensure_postgres() {
  if pg_isready -q -h 127.0.0.1 -p 5432; then
    return
  fi
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    echo "installing PostgreSQL"
    apt-get update -qq && apt-get install -y -qq postgresql
  fi
  echo "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start
  for _ in $(seq 1 30); do
    pg_isready -q -h 127.0.0.1 -p 5432 && return
    sleep 1
  done
  echo "PostgreSQL did not answer pg_isready within 30 s" >&2
  exit 1
}

# The queue-trigger tests talk to RabbitMQ on 127.0.0.1:5672 (guest/guest).
ensure_rabbitmq() {
  if rabbitmq-diagnostics -q ping >/dev/null 2>&1; then
    return
  fi
  echo "starting RabbitMQ"
  rabbitmq-server -detached
  for _ in $(seq 1 90); do
    rabbitmq-diagnostics -q ping >/dev/null 2>&1 && return
    sleep 1
  done
  echo "RabbitMQ did not answer rabbitmq-diagnostics ping within 90 s" >&2
  exit 1
}

# The load harness drives servers with wrk (Debian's package).
ensure_wrk() {
  if ! command -v wrk >/dev/null 2>&1; then
    echo "installing wrk"
    apt-get update -qq && apt-get install -y -qq wrk
  fi
}

# The HTML report test of `flint bench` loads its page in headless Chromium
# (Debian's package) and reads the DOM and console it leaves.
ensure_chromium() {
  if [ ! -x /usr/bin/chromium ]; then
    echo "installing chromium"
    apt-get update -qq && apt-get install -y -qq chromium
  fi
}

# The metrics test lints a real scrape with promtool (Debian's prometheus
# package; its server is not started).
ensure_promtool() {
  if ! command -v promtool >/dev/null 2>&1; then
    echo "installing promtool (Debian's prometheus package)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus
  fi
}

# The API contract test runs schemathesis (from PyPI) against a real server,
# from a venv of its own.
ensure_schemathesis() {
  local venv="$HOME/.cache/flint/venv-st"
  if [ ! -x "$venv/bin/st" ]; then
    echo "installing schemathesis into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "schemathesis==4.32.5"
  fi
}

# `cargo deny` checks licences, bans, sources and advisories (deny.toml).
ensure_cargo_deny() {
  if ! command -v cargo-deny >/dev/null 2>&1; then
    echo "installing cargo-deny (a few minutes, once)"
    cargo install --locked cargo-deny
  fi
}

# cargo-deny reads advisories from a git checkout under deny.toml's db-path,
# in a directory named after the database's URL (RustSec's). GitHub is out of
# reach here, so that checkout is made from supply-chain/advisories, with
# RustSec's URL as its origin: where GitHub answers, `cargo deny fetch`
# replaces it with the real database in place.
prepare_advisory_db() {
  local db="$CARGO_TARGET_DIR/advisory-dbs/advisory-db-3157b0e258782691"
  rm -rf "$db"
  mkdir -p "$db"
  cp -r supply-chain/advisories/crates "$db/"
  git -C "$db" init -q -b main
  git -C "$db" add -A
  git -C "$db" -c user.name=flint -c user.email=flint@localhost commit -qm "Flint's advisories"
  git -C "$db" remote add origin https://github.com/rustsec/advisory-db
}
