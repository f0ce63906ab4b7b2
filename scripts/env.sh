# Shared settings of the scripts in this folder (sourced, not run).

# One cargo target directory shared by every run, so CI and repeated runs
# reuse compiled dependencies (wasmtime takes minutes to build from scratch).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/flint/target}"
# Guest functions build in a target dir of their own (see artifacts/build.rs).
export WASM_TARGET_DIR="$CARGO_TARGET_DIR/wasm-functions"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

ensure_wasm_target() {
  if ! rustup target list --installed | grep -qx wasm32-wasip2; then
    echo "installing the wasm32-wasip2 target"
    rustup target add wasm32-wasip2
  fi
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
