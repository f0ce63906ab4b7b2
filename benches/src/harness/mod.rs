//! The end-to-end load harness: Flint side by side with what a
//! user would otherwise run, on the same machine in the same run.
//!
//! One command (`cargo run --release -p flint-benches --bin harness`) runs,
//! for a few rounds and alternating within each round (A B C D E, then
//! B C D E A, ...), so that drift hits every variant alike:
//!
//! - (a) `flint serve` with `hello`, default config (a fresh instance per
//!   request);
//! - (b) `flint serve` with `hello` opted in to reuse
//!   (`max_requests_per_instance` = 1000000);
//! - (c) `wasmtime serve -S cli` on the same component (precompiled), with
//!   defaults (a fresh instance per request, as a);
//! - (d) the same with `--max-instance-reuse-count 1000000` (reuse, as b);
//! - (e) a native hyper hello world (this binary's hidden `native-hello`
//!   subcommand): the ceiling.
//!
//! Each variant gets a fresh process per round; the harness times process
//! start to the first 200 response, warms it up (unrecorded), then drives it
//! with `wrk --latency` at each connection count (64 and 1 by default) for a
//! fixed duration, reading requests/s, p50 and p99 from wrk and the server's
//! CPU time (user + system, all threads and child processes) from
//! `/proc/PID/stat` before and after. Before the variants of a round, a
//! fresh `flint serve` times a deploy to its first response (for `hello` and
//! the 13 MB `js-hello`), and the variants (a)/(b) then restart on that data
//! dir, so their start is a restart served from the disk cache.
//!
//! It prints the medians with the ratios a/c, b/d, b/e and whether it met
//! its targets, and writes `harness.md`, `harness.json` and `harness.png` (a
//! chart) to `benches/results/`, stamped with the machine and versions.
//! Everything it starts it stops, on errors and panics too (children are
//! killed on drop; the scratch dir is removed).
//!
//! `wasmtime` (wasmtime-cli at the version in Cargo.lock) comes from
//! `~/.cache/flint/tools` (or `FLINT_TOOLS_DIR`); a full run installs it there
//! with `cargo install --locked` when it is missing. `--smoke` (for CI) runs
//! every variant for about a second, writes under the cargo target dir,
//! skips (c) and (d) with a note when wasmtime is not installed (unless
//! `--install-wasmtime`), and skips the load runs when wrk is missing. It
//! never fails on a number.

mod chart;
mod counters;
mod env;
mod http;
mod native;
mod process;
mod report;
mod wrk;

pub use chart::register_fonts;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use process::Server;
use report::{LoadRun, Report, Settings, Startup, VARIANTS, Variant, VariantResult};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Rounds of a full run.
pub const DEFAULT_ROUNDS: usize = 3;
/// Seconds of each recorded wrk run.
pub const DEFAULT_DURATION_SECS: u64 = 8;
/// Seconds of unrecorded load before a variant's recorded runs.
pub const DEFAULT_WARMUP_SECS: u64 = 2;
/// `max_requests_per_instance` of (b) and `--max-instance-reuse-count` of (d).
const REUSE_COUNT: u32 = 1_000_000;
/// Longest a server may take to print its address and to answer its first
/// request (a JavaScript deploy compiles for several seconds).
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// A share of the machine busy with other work during a run above this
/// gets a note.
const OTHER_CPU_NOTE: f64 = 0.05;
/// Timeout of admin requests (deploys compile on the request path).
const ADMIN_TIMEOUT: Duration = Duration::from_secs(300);

/// Flags of the harness.
#[derive(Debug, Parser)]
#[command(
    name = "harness",
    about = "Flint's end-to-end load harness: flint serve vs wasmtime serve vs native hyper",
    after_help = "Full run: cargo run --release -p flint-benches --bin harness\n\
                  CI smoke: cargo run -p flint-benches --bin harness -- --smoke"
)]
pub struct Args {
    #[command(subcommand)]
    command: Option<Sub>,
    /// A few seconds in all, for CI: 1 round, 1 s per wrk run, no warm-up, no
    /// JavaScript timings; results go under the cargo target dir
    #[arg(long)]
    smoke: bool,
    /// Rounds; each runs every variant once [default: 3, smoke: 1]
    #[arg(long)]
    rounds: Option<usize>,
    /// Seconds per recorded wrk run (whole seconds) [default: 8, smoke: 1]
    #[arg(long, value_name = "SECS")]
    duration: Option<u64>,
    /// Seconds of unrecorded load before a variant's recorded runs [default: 2, smoke: 0]
    #[arg(long, value_name = "SECS")]
    warmup: Option<u64>,
    /// wrk connection counts
    #[arg(long, value_delimiter = ',', default_value = "64,1")]
    connections: Vec<u32>,
    /// Variants to run (a-e, see --help's description)
    #[arg(long, value_delimiter = ',', default_value = "a,b,c,d,e")]
    variants: Vec<char>,
    /// Where to write harness.{md,json,png} [default: benches/results; smoke: <target>/harness-smoke]
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Install wasmtime-cli into the tools dir when missing, in a smoke run too
    #[arg(long)]
    install_wasmtime: bool,
    /// The wasmtime binary to use instead of the tools dir's
    #[arg(long, value_name = "PATH")]
    wasmtime: Option<PathBuf>,
    /// The flint binary to use instead of building it with cargo
    #[arg(long, value_name = "PATH")]
    flint: Option<PathBuf>,
    /// Where wasmtime-cli is installed [default: ~/.cache/flint/tools]
    #[arg(long, env = "FLINT_TOOLS_DIR", value_name = "DIR")]
    tools_dir: Option<PathBuf>,
    /// Skip the JavaScript deploy and restart timings
    #[arg(long)]
    no_js: bool,
    /// Count the server's page faults, context switches, system calls,
    /// mprotect and madvise calls (perf stat) and the machine's TLB
    /// shootdowns during each recorded run, per request
    #[arg(long)]
    perf: bool,
}

#[derive(Debug, Subcommand)]
enum Sub {
    /// Serve the native hello world (variant e); used by the harness itself
    #[command(hide = true)]
    NativeHello {
        /// Address to listen on
        #[arg(long)]
        listen: SocketAddr,
    },
}

/// Parses the command line and runs the harness.
pub fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(Sub::NativeHello { listen }) = args.command {
        return native::serve(listen);
    }
    run(args)
}

/// The binaries and inputs of a run.
struct Tools {
    flint: PathBuf,
    wasmtime: Option<PathBuf>,
    harness: PathBuf,
    hello_wasm: Vec<u8>,
    hello_cwasm: Option<PathBuf>,
    js: Option<JsInputs>,
    wrk: bool,
}

struct JsInputs {
    wasm: Vec<u8>,
    cwasm: Option<PathBuf>,
}

fn run(args: Args) -> anyhow::Result<()> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("benches/ has a parent")?
        .to_path_buf();
    let smoke = args.smoke;
    let settings = Settings {
        rounds: args
            .rounds
            .unwrap_or(if smoke { 1 } else { DEFAULT_ROUNDS })
            .max(1),
        duration_s: args
            .duration
            .unwrap_or(if smoke { 1 } else { DEFAULT_DURATION_SECS })
            .max(1),
        warmup_s: args
            .warmup
            .unwrap_or(if smoke { 0 } else { DEFAULT_WARMUP_SECS }),
        connections: args.connections.clone(),
        smoke,
        perf: args.perf,
    };
    let selected: Vec<Variant> = VARIANTS
        .into_iter()
        .filter(|v| args.variants.contains(&v.key))
        .collect();
    if selected.is_empty() {
        bail!("--variants selects none of a, b, c, d, e");
    }
    let mut notes = Vec::new();
    if env::profile() == "debug" {
        notes.push(
            "debug build of the harness and flint: figures are not representative (use --release)"
                .to_owned(),
        );
    }

    let wasmtime_embedded = env::locked_version(&repo.join("Cargo.lock"), "wasmtime")?;
    let flint = match &args.flint {
        Some(path) => path.clone(),
        None => env::build_flint(&repo)?,
    };
    let wrk_version = wrk::version();
    if wrk_version.is_none() {
        if !smoke {
            bail!("wrk is not installed; install it with `apt-get install wrk`");
        }
        notes.push("wrk is not installed: load runs skipped (apt-get install wrk)".into());
    }
    let needs_wasmtime = selected.iter().any(|v| matches!(v.key, 'c' | 'd'));
    let tools_dir = args
        .tools_dir
        .clone()
        .unwrap_or_else(env::default_tools_dir);
    let wasmtime = match (&args.wasmtime, needs_wasmtime) {
        (Some(path), _) => Some(path.clone()),
        (None, false) => None,
        (None, true) => match env::find_wasmtime(&tools_dir, &wasmtime_embedded) {
            Some(path) => Some(path),
            None if !smoke || args.install_wasmtime => {
                Some(env::install_wasmtime(&tools_dir, &wasmtime_embedded)?)
            }
            None => {
                notes.push(format!(
                    "wasmtime {wasmtime_embedded} is not installed in {}: (c) and (d) skipped \
                     (a full run or --install-wasmtime installs it)",
                    tools_dir.display()
                ));
                None
            }
        },
    };

    let work = tempfile::Builder::new()
        .prefix("flint-harness-")
        .tempdir()
        .context("creating a scratch dir")?;
    let hello_cwasm = match &wasmtime {
        Some(w) => Some(precompile(
            w,
            Path::new(flint_test_artifacts::HELLO),
            work.path(),
        )?),
        None => None,
    };
    let js = if args.no_js || smoke {
        None
    } else {
        let path = Path::new(flint_test_artifacts::JS_HELLO);
        Some(JsInputs {
            wasm: std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
            cwasm: match &wasmtime {
                Some(w) => Some(precompile(w, path, work.path())?),
                None => None,
            },
        })
    };
    let tools = Tools {
        flint,
        wasmtime: wasmtime.clone(),
        harness: std::env::current_exe()?,
        hello_wasm: std::fs::read(flint_test_artifacts::HELLO)
            .context("reading the hello component")?,
        hello_cwasm,
        js,
        wrk: wrk_version.is_some(),
    };

    let loadavg = env::loadavg();
    let mut results: Vec<VariantResult> = selected
        .iter()
        .map(|&variant| VariantResult {
            variant,
            skipped: (matches!(variant.key, 'c' | 'd') && tools.wasmtime.is_none())
                .then(|| "wasmtime is not installed".to_owned()),
            runs: Vec::new(),
            start_to_first_response_ms: Vec::new(),
        })
        .collect();
    let mut startup = StartupLog::default();

    for round in 0..settings.rounds {
        eprintln!("==> round {}/{}", round + 1, settings.rounds);
        let data_dir = work.path().join(format!("flint-data-{round}"));
        prepare_flint(&tools, &data_dir, &mut startup)?;
        let n = results.len();
        for i in (0..n).map(|i| (i + round) % n) {
            let result = &mut results[i];
            if result.skipped.is_some() {
                continue;
            }
            run_variant(&tools, &settings, round, &data_dir, result, &mut startup).with_context(
                || format!("variant ({}) {}", result.variant.key, result.variant.name),
            )?;
        }
        js_restarts(&tools, &data_dir, &mut startup)?;
    }

    for r in &results {
        let busiest = r
            .runs
            .iter()
            .map(|run| run.other_cpu_share)
            .fold(0.0, f64::max);
        if busiest > OTHER_CPU_NOTE {
            notes.push(format!(
                "({}) {}: up to {:.0}% of the machine was busy with other work during its runs \
                 (see other_cpu_share in harness.json)",
                r.variant.key,
                r.variant.name,
                busiest * 100.0
            ));
        }
        let errors: u64 = r
            .runs
            .iter()
            .map(|run| run.wrk.non_2xx + run.wrk.socket_errors)
            .sum();
        if errors > 0 {
            notes.push(format!(
                "({}) {}: wrk saw {errors} non-2xx responses or socket errors",
                r.variant.key, r.variant.name
            ));
        }
    }

    let flint_version = env::first_line(&tools.flint, &["--version"]).unwrap_or_default();
    let mut report = Report {
        generated_utc: utc_now(),
        machine: env::Machine::read(loadavg),
        versions: env::Versions {
            flint: flint_version
                .strip_prefix("flint ")
                .unwrap_or(&flint_version)
                .to_owned(),
            wasmtime: tools
                .wasmtime
                .as_deref()
                .and_then(|w| env::first_line(w, &["--version"]))
                .map(|v| v.trim_start_matches("wasmtime ").to_owned()),
            wasmtime_embedded,
            wrk: wrk_version,
            rustc: env::first_line(Path::new("rustc"), &["--version"]).unwrap_or_default(),
            git: env::git_describe(&repo),
            profile: env::profile(),
        },
        settings,
        variants: results,
        summaries: Vec::new(),
        ratios: Vec::new(),
        startup: startup.0,
        targets: Vec::new(),
        notes,
    };
    report.summarize();
    println!("{}", report.to_terminal());

    let out = match args.out {
        Some(out) => out,
        None if smoke => env::target_dir()?.join("harness-smoke"),
        None => repo.join("benches").join("results"),
    };
    write_outputs(&report, &out, work.path())?;
    eprintln!("==> wrote {}/harness.{{md,json,png}}", out.display());
    Ok(())
}

/// Start-up timings, kept in first-seen order.
#[derive(Default)]
struct StartupLog(Vec<Startup>);

impl StartupLog {
    fn push(&mut self, what: &str, elapsed: Duration) {
        let ms = elapsed.as_secs_f64() * 1000.0;
        match self.0.iter_mut().find(|s| s.what == what) {
            Some(s) => s.samples_ms.push(ms),
            None => self.0.push(Startup {
                what: what.to_owned(),
                samples_ms: vec![ms],
            }),
        }
    }
}

/// `wasmtime compile` of `wasm` into `dir`, for `--allow-precompiled`.
fn precompile(wasmtime: &Path, wasm: &Path, dir: &Path) -> anyhow::Result<PathBuf> {
    let stem = wasm.file_stem().context("component without a name")?;
    let out = dir.join(stem).with_extension("cwasm");
    let status = Command::new(wasmtime)
        .arg("compile")
        .arg(wasm)
        .arg("-o")
        .arg(&out)
        .status()
        .context("running wasmtime compile")?;
    if !status.success() {
        bail!("wasmtime compile {} failed ({status})", wasm.display());
    }
    Ok(out)
}

fn flint_server(tools: &Tools, data_dir: &Path) -> anyhow::Result<Server> {
    let mut cmd = Command::new(&tools.flint);
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir);
    quiet(&mut cmd);
    Server::spawn("flint serve", cmd, "listening on", START_TIMEOUT)
}

fn wasmtime_server(tools: &Tools, cwasm: &Path, reuse: bool) -> anyhow::Result<Server> {
    let wasmtime = tools
        .wasmtime
        .as_ref()
        .context("wasmtime is not installed")?;
    let mut cmd = Command::new(wasmtime);
    cmd.args(["serve", "-S", "cli", "--addr", "127.0.0.1:0"]);
    if reuse {
        cmd.arg(format!("--max-instance-reuse-count={REUSE_COUNT}"));
    }
    cmd.arg("--allow-precompiled").arg(cwasm);
    quiet(&mut cmd);
    Server::spawn("wasmtime serve", cmd, "Serving HTTP on", START_TIMEOUT)
}

/// Servers run as a user would run them: no backtrace capture on every
/// error (`RUST_BACKTRACE` makes each `wasmtime::Error` record one) and
/// Flint's default log level.
fn quiet(cmd: &mut Command) {
    cmd.env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .env_remove("FLINT_LOG");
}

/// A fresh `flint serve` on `data_dir`: times deploys to their first
/// response, deploys `hello-reuse` and opts it in to reuse, then stops.
fn prepare_flint(tools: &Tools, data_dir: &Path, startup: &mut StartupLog) -> anyhow::Result<()> {
    let server = flint_server(tools, data_dir)?;
    let addr = server.addr();
    let deploy = |name: &str, bytes: &[u8]| -> anyhow::Result<Duration> {
        let start = Instant::now();
        let path = format!("/v1/functions/{name}");
        let response = http::request(
            addr,
            "PUT",
            &path,
            Some("application/wasm"),
            bytes,
            ADMIN_TIMEOUT,
        )?;
        if response.status != 201 {
            bail!(
                "deploying {name}: status {}: {}",
                response.status,
                String::from_utf8_lossy(&response.body)
            );
        }
        http::first_ok(addr, &format!("/fn/{name}/"), start, START_TIMEOUT)
    };
    startup.push(
        "flint deploy, hello (upload + compile + first call)",
        deploy("hello", &tools.hello_wasm)?,
    );
    if let Some(js) = &tools.js {
        startup.push(
            "flint deploy, js-hello (upload + compile + first call)",
            deploy("js-hello", &js.wasm)?,
        );
    }
    deploy("hello-reuse", &tools.hello_wasm)?;
    let body = format!("{{\"max_requests_per_instance\": {REUSE_COUNT}}}");
    let response = http::request(
        addr,
        "PATCH",
        "/v1/functions/hello-reuse/config",
        Some("application/json"),
        body.as_bytes(),
        ADMIN_TIMEOUT,
    )?;
    if response.status != 200 {
        bail!(
            "configuring hello-reuse: status {}: {}",
            response.status,
            String::from_utf8_lossy(&response.body)
        );
    }
    Ok(())
}

fn run_variant(
    tools: &Tools,
    settings: &Settings,
    round: usize,
    data_dir: &Path,
    result: &mut VariantResult,
    startup: &mut StartupLog,
) -> anyhow::Result<()> {
    let variant = result.variant;
    let (mut server, path, series) = match variant.key {
        'a' => (
            flint_server(tools, data_dir)?,
            "/fn/hello/",
            report::STARTUP_FLINT_RESTART,
        ),
        'b' => (
            flint_server(tools, data_dir)?,
            "/fn/hello-reuse/",
            report::STARTUP_FLINT_RESTART,
        ),
        'c' | 'd' => {
            let cwasm = tools.hello_cwasm.as_ref().context("no precompiled hello")?;
            (
                wasmtime_server(tools, cwasm, variant.key == 'd')?,
                "/",
                report::STARTUP_WASMTIME,
            )
        }
        'e' => {
            let mut cmd = Command::new(&tools.harness);
            cmd.args(["native-hello", "--listen", "127.0.0.1:0"]);
            (
                Server::spawn("native hello", cmd, native::READY_MARKER, START_TIMEOUT)?,
                "/",
                "native hyper hello world",
            )
        }
        other => bail!("unknown variant {other}"),
    };
    let first = http::first_ok(server.addr(), path, server.spawned(), START_TIMEOUT)?;
    startup.push(series, first);
    result
        .start_to_first_response_ms
        .push(first.as_secs_f64() * 1000.0);
    if !tools.wrk {
        return Ok(());
    }

    let url = format!("http://{}{path}", server.addr());
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
    if settings.warmup_s > 0 {
        let most = settings.connections.iter().copied().max().unwrap_or(64);
        wrk::run(&url, most, threads, Duration::from_secs(settings.warmup_s))?;
    }
    for &connections in &settings.connections {
        eprintln!(
            "    ({}) {} at {connections} connection(s)",
            variant.key, variant.name
        );
        let before = process::cpu_time(server.pid())?;
        let (machine_before, wrk_before) =
            (process::machine_busy(), process::reaped_children_cpu());
        let recording = settings
            .perf
            .then(|| counters::Recording::start(server.pid()))
            .transpose()?;
        let started = Instant::now();
        let wrk = wrk::run(
            &url,
            connections,
            threads,
            Duration::from_secs(settings.duration_s),
        )?;
        let wall = started.elapsed();
        let counters = recording.map(|r| r.stop(wrk.requests)).transpose()?;
        let cpu = process::cpu_time(server.pid())?.saturating_sub(before);
        let wrk_cpu = process::reaped_children_cpu().saturating_sub(wrk_before);
        let machine = process::machine_busy().saturating_sub(machine_before);
        server.check_alive()?;
        // Whatever else kept the CPUs busy meanwhile (other processes, the
        // kernel's own threads): a share of the machine's capacity.
        let other = machine.saturating_sub(cpu + wrk_cpu).as_secs_f64();
        result.runs.push(LoadRun {
            round,
            connections,
            cpu_us_per_request: cpu.as_secs_f64() * 1e6 / wrk.requests.max(1) as f64,
            wrk_cpu_us_per_request: wrk_cpu.as_secs_f64() * 1e6 / wrk.requests.max(1) as f64,
            other_cpu_share: other / (wall.as_secs_f64() * f64::from(threads)),
            counters,
            wrk,
        });
    }
    Ok(())
}

/// Restart timings of the large component: Flint from its disk cache and
/// `wasmtime serve` on its precompiled artifact.
fn js_restarts(tools: &Tools, data_dir: &Path, startup: &mut StartupLog) -> anyhow::Result<()> {
    let Some(js) = &tools.js else {
        return Ok(());
    };
    let server = flint_server(tools, data_dir)?;
    let first = http::first_ok(
        server.addr(),
        "/fn/js-hello/",
        server.spawned(),
        START_TIMEOUT,
    )?;
    startup.push("flint restart, js-hello (disk cache)", first);
    drop(server);
    if let Some(cwasm) = &js.cwasm {
        let server = wasmtime_server(tools, cwasm, false)?;
        let first = http::first_ok(server.addr(), "/", server.spawned(), START_TIMEOUT)?;
        startup.push("wasmtime serve, js_hello.cwasm (precompiled)", first);
    }
    Ok(())
}

fn write_outputs(report: &Report, out: &Path, scratch: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let write = |name: &str, bytes: &[u8]| -> anyhow::Result<()> {
        let tmp = out.join(format!("{name}.tmp"));
        std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, out.join(name))?;
        Ok(())
    };
    write(
        "harness.json",
        format!("{}\n", serde_json::to_string_pretty(report)?).as_bytes(),
    )?;
    // The chart is drawn in the scratch dir (plotters picks the format from
    // the file extension) and moved in whole.
    let png = scratch.join("harness.png");
    let chart = match chart::draw(report, &png) {
        Ok(()) => {
            write("harness.png", &std::fs::read(&png)?)?;
            Some("harness.png")
        }
        Err(e) => {
            eprintln!("warning: drawing the chart failed: {e:#}");
            None
        }
    };
    write("harness.md", report.to_markdown(chart).as_bytes())?;
    Ok(())
}

/// Now as `YYYY-MM-DDTHH:MM:SSZ`.
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    utc(secs)
}

fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn formats_utc() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_798_761_599), "2026-12-31T23:59:59Z");
    }

    #[test]
    fn flags_are_consistent() {
        Args::command().debug_assert();
    }
}
