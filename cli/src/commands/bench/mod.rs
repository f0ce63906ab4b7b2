//! `flint bench NAME[@VERSION|@ALIAS]`: what each start kind of a deployed function costs
//! on the server that runs it, optionally a load run over HTTP, and what the figures
//! suggest.
//!
//! The start kinds are measured in the server (`POST /v1/functions/NAME/bench`), so no
//! network noise enters them; `--load` adds an end-to-end run from this machine through
//! the server's HTTP path, in fresh-instance and reuse modes side by side.

mod advice;
pub mod html;
mod load;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use reqwest::Method;
use reqwest::header::{HeaderName, HeaderValue};
use serde::Deserialize;
use serde_json::{Value, json};

use super::invoke::{Data, parse_data, parse_header, parse_method};
use super::parse_function_name;
use crate::output::{self, human_size};
use crate::{Context, output::print};

/// Flags of `flint bench`.
#[derive(Debug, Args)]
#[command(after_help = "\
Start kinds:
  compile  the upload's compile time, as recorded
  disk     map the cached compiled artifact, pre-link, instantiate, handle (after a restart)
  cold     instantiate from the pre-linked component, handle (a fresh instance per request)
  warm     handle on a pre-instantiated instance (what min_instances buys)
  reuse    handle on an instance that has already served (max_requests_per_instance > 1)

The samples run in the server under the function's own limits and within its
max_concurrency, on pools of their own: live traffic keeps its warm instances, and bench
calls are counted apart (`flint info` shows them under bench).

Examples:
  flint bench hello                              GET / on the default alias
  flint bench hello@3 --path '/items?id=7'       a pinned version, a path with a query
  flint bench api -X POST --data @order.json -H 'content-type: application/json'
  flint bench hello --load --duration 5s         add a load run over HTTP, fresh against reuse
  flint bench hello --json | jq '.bench.kinds[] | {kind, p50_us}'
  flint bench hello --load --html report.html    a page with the charts, to open in a browser
  flint bench --report saved.json --html page.html   a page from a report saved with --json")]
pub struct BenchArgs {
    /// Function to measure; NAME@VERSION or NAME@ALIAS picks what NAME alone would call
    #[arg(
        value_parser = parse_function_name,
        value_name = "NAME[@VERSION|@ALIAS]",
        required_unless_present = "report"
    )]
    pub name: Option<String>,

    /// Show a report saved with --json again (as the table, or as a page with --html)
    /// instead of measuring
    #[arg(long, value_name = "FILE", conflicts_with_all = ["name", "load"])]
    pub report: Option<PathBuf>,

    /// Path of the sample request inside the function, with an optional query
    #[arg(long, default_value = "/")]
    pub path: String,

    /// Method of the sample request [default: POST with --data, GET without]
    #[arg(short = 'X', long, value_name = "METHOD", value_parser = parse_method)]
    pub method: Option<Method>,

    /// Header of the sample request as 'name: value'; repeat for several
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE", value_parser = parse_header)]
    pub headers: Vec<(HeaderName, HeaderValue)>,

    /// Body of the sample request: 'literal text', @FILE, or - for stdin
    #[arg(short, long, value_name = "DATA", value_parser = parse_data)]
    pub data: Option<Data>,

    /// Samples of each start kind, at most (1..=2000)
    #[arg(long, default_value_t = 200)]
    pub samples: u32,

    /// Time for the in-server samples, at most (up to 60s); a sample under way finishes
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub max_time: Duration,

    /// Run even though the function may call out to other hosts: every sample makes its
    /// calls
    #[arg(long, short = 'y')]
    pub yes: bool,

    /// Add a load run over HTTP from here: fresh-instance mode, then reuse mode
    #[arg(long)]
    pub load: bool,

    /// Connections of the load run [default: 8, and never more than max_concurrency]
    #[arg(long, value_name = "N", requires = "load")]
    pub connections: Option<u32>,

    /// Duration of each mode of the load run
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = humantime::parse_duration, requires = "load")]
    pub duration: Duration,

    /// Requests per second of the load run, over all connections [default: as fast as
    /// answers come]
    #[arg(long, value_name = "N", requires = "load")]
    pub rate: Option<u32>,

    /// Also write the report as a self-contained HTML page with its charts
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

/// Connections of a load run unless `--connections` says.
const DEFAULT_CONNECTIONS: u32 = 8;

/// The parts of the server's report the CLI reads.
#[derive(Debug, Deserialize)]
pub(crate) struct Report {
    pub version: u32,
    pub size_bytes: u64,
    pub config: Config,
    pub compile_ms: f64,
    pub kinds: Vec<Kind>,
    pub response: Option<Response>,
    pub reuse_check: ReuseCheck,
    pub failure: Option<Failure>,
    pub request: RequestSummary,
    pub stopped_by: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Config {
    pub memory_mb: u32,
    pub timeout_ms: u64,
    pub max_concurrency: u32,
    pub min_instances: u32,
    pub max_requests_per_instance: u32,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Kind {
    pub kind: String,
    pub samples: usize,
    pub p50_us: Option<f64>,
    pub p90_us: Option<f64>,
    pub p99_us: Option<f64>,
    pub memory_bytes: Option<u64>,
    pub skipped: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Response {
    pub status: u16,
    pub body_bytes: u64,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ReuseCheck {
    pub verdict: String,
    pub compared: u64,
    pub detail: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Failure {
    pub kind: String,
    pub code: String,
    pub message: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RequestSummary {
    pub method: String,
    pub path: String,
}

impl Report {
    pub(crate) fn kind(&self, kind: &str) -> Option<&Kind> {
        self.kinds.iter().find(|k| k.kind == kind && k.samples > 0)
    }
}

/// Runs `flint bench`.
pub async fn run(ctx: &Context, args: BenchArgs) -> anyhow::Result<()> {
    let combined = match (&args.report, &args.name) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            serde_json::from_str(&text).with_context(|| {
                format!(
                    "{} is not a report saved with `flint bench --json`",
                    path.display()
                )
            })?
        }
        (None, Some(name)) => measure(ctx, &args, name).await?,
        (None, None) => anyhow::bail!("name the function to measure, or --report FILE"),
    };
    let (report, load) = parts(&combined)?;
    if let Some(path) = &args.html {
        std::fs::write(path, html::render(&combined))
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    if ctx.json {
        output::print_json(&combined)?;
    } else {
        let advice: Vec<String> = serde_json::from_value(combined["advice"].clone())
            .context("the report's advice is not a list of sentences")?;
        let name = combined["function"].as_str().unwrap_or("?");
        print(&render(name, &report, load.as_ref(), &advice))?;
    }
    match &report.failure {
        Some(failure) => anyhow::bail!(
            "the function failed under bench ({} start): {} ({})",
            failure.kind,
            failure.message,
            failure.code
        ),
        None => Ok(()),
    }
}

/// The server's report and the load run's, read back from the combined report.
fn parts(combined: &Value) -> anyhow::Result<(Report, Option<load::Report>)> {
    let report = serde_json::from_value(combined["bench"].clone())
        .context("unexpected bench report (the `bench` part)")?;
    let load = serde_json::from_value(combined["load"].clone())
        .context("unexpected load report (the `load` part)")?;
    Ok((report, load))
}

/// Measures `name` in the server, runs the load when asked, and returns the combined
/// report that `--json` prints.
async fn measure(ctx: &Context, args: &BenchArgs, target: &str) -> anyhow::Result<Value> {
    let (name, target) = match target.split_once('@') {
        Some((name, target)) => (name.to_owned(), Some(target.to_owned())),
        None => (target.to_owned(), None),
    };
    let body = match &args.data {
        Some(data) => data.read().await?,
        None => Vec::new(),
    };
    let method = args.method.clone().unwrap_or(if args.data.is_some() {
        Method::POST
    } else {
        Method::GET
    });
    let headers: Vec<Value> = args
        .headers
        .iter()
        .map(|(n, v)| json!({"name": n.as_str(), "value": v.to_str().unwrap_or_default()}))
        .collect();
    let request = json!({
        "target": target,
        "method": method.as_str(),
        "path": args.path,
        "headers": headers,
        "body_base64": (!body.is_empty()).then(|| output::base64(&body)),
        "samples": args.samples,
        "max_seconds": args.max_time.as_secs_f64(),
        "allow_side_effects": args.yes,
    });
    let interactive = !ctx.json && std::io::IsTerminal::is_terminal(&std::io::stderr());
    if interactive {
        eprintln!(
            "measuring {name} in the server: up to {} samples of each start kind, {} at most",
            args.samples,
            humantime::format_duration(args.max_time)
        );
    }
    let bench = ctx
        .client
        .post(ctx.client.function_url(&name, &["bench"]), &request)
        .await?;
    let report: Report =
        serde_json::from_value(bench.clone()).context("unexpected bench report from the server")?;

    let load = match (&report.failure, args.load) {
        (None, true) => {
            let connections = args
                .connections
                .unwrap_or(DEFAULT_CONNECTIONS)
                .clamp(1, report.config.max_concurrency.max(1));
            if let Some(asked) = args.connections.filter(|&c| c > connections) {
                eprintln!(
                    "note: {connections} connections, the function's max_concurrency, not {asked}"
                );
            }
            let plan = load::Plan {
                name: name.clone(),
                version: report.version,
                method,
                path: args.path.clone(),
                headers: args.headers.clone(),
                body,
                connections,
                duration: args.duration,
                rate: args.rate,
                request_timeout: Duration::from_millis(report.config.timeout_ms)
                    + Duration::from_secs(5),
                progress: interactive,
            };
            Some(load::run(ctx, &plan).await?)
        }
        _ => None,
    };
    let advice = advice::advise(&report, load.as_ref());
    Ok(json!({
        "function": name,
        "version": report.version,
        "server": ctx.client.server(),
        "bench": bench,
        "load": load,
        "advice": advice,
    }))
}

/// A duration in microseconds as people read it: `12.3 µs`, `1.24 ms`, `2.10 s`.
pub fn human_us(us: f64) -> String {
    if us < 1_000.0 {
        format!("{us:.1} µs")
    } else if us < 1_000_000.0 {
        format!("{:.2} ms", us / 1_000.0)
    } else {
        format!("{:.2} s", us / 1_000_000.0)
    }
}

fn figure(value: Option<f64>) -> String {
    value.map_or_else(|| "-".into(), human_us)
}

/// The terminal report: the start-kind table, the load table, the checks and the advice.
fn render(name: &str, report: &Report, load: Option<&load::Report>, advice: &[String]) -> String {
    let mut out = format!(
        "{name}@{}: {} {} · {} component · memory_mb {} · timeout {} · max_concurrency {}\n\n",
        report.version,
        report.request.method,
        report.request.path,
        human_size(report.size_bytes),
        report.config.memory_mb,
        humantime::format_duration(Duration::from_millis(report.config.timeout_ms)),
        report.config.max_concurrency,
    );
    let mut rows = vec![vec![
        "compile".into(),
        human_us(report.compile_ms * 1_000.0),
        "-".into(),
        "-".into(),
        "1".into(),
        "-".into(),
    ]];
    for kind in &report.kinds {
        match &kind.skipped {
            Some(reason) => rows.push(vec![
                kind.kind.clone(),
                format!("skipped: {reason}"),
                String::new(),
                String::new(),
                "0".into(),
                String::new(),
            ]),
            None => rows.push(vec![
                kind.kind.clone(),
                figure(kind.p50_us),
                figure(kind.p90_us),
                figure(kind.p99_us),
                kind.samples.to_string(),
                kind.memory_bytes.map_or_else(|| "-".into(), human_size),
            ]),
        }
    }
    out.push_str(&output::table(
        &["START", "P50", "P90", "P99", "SAMPLES", "MEMORY"],
        &rows,
        &[1, 2, 3, 4, 5],
    ));
    out.push('\n');
    if let Some(response) = &report.response {
        out.push_str(&format!(
            "\nresponse: status {}, {} body",
            response.status,
            human_size(response.body_bytes)
        ));
    }
    out.push_str(&format!(
        "\nreuse check: {} ({})",
        report.reuse_check.verdict, report.reuse_check.detail
    ));
    if report.stopped_by == "time" {
        out.push_str("\nstopped at --max-time: fewer samples than asked");
    }
    if let Some(failure) = &report.failure {
        out.push_str(&format!(
            "\nFAILED on a {} start: {} ({})",
            failure.kind, failure.message, failure.code
        ));
    }
    out.push('\n');
    if let Some(load) = load {
        out.push('\n');
        out.push_str(&load.render());
        out.push('\n');
    }
    if !advice.is_empty() {
        out.push_str("\nWhat the figures suggest:\n");
        for line in advice {
            out.push_str(&format!("  - {line}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn microseconds_read_well() {
        assert_eq!(human_us(12.34), "12.3 µs");
        assert_eq!(human_us(1_240.0), "1.24 ms");
        assert_eq!(human_us(2_100_000.0), "2.10 s");
    }
}
