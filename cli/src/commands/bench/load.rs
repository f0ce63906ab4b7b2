//! The load run of `flint bench --load`: connections that send the sample request
//! through the server's HTTP path for a while, first to a fresh instance per request,
//! then to reused instances, with the server's start counters read along the way.
//!
//! The calls go to `/v1/functions/NAME/bench/VERSION/{fresh,reuse}/PATH`: the function's
//! own limits and concurrency gate, on pools apart from the live ones, counted as bench
//! calls. With `--rate`, each connection sends on a schedule and a late answer counts
//! from when its request was due, so a stall shows in the percentiles instead of hiding
//! in fewer requests.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::{Method, Url};
use serde::{Deserialize, Serialize};

use flint_gateway::core::nearest_rank;

use super::human_us;
use crate::Context;
use crate::output;

/// Width of one point of the throughput timeline.
const BUCKET: Duration = Duration::from_millis(250);
/// How often the progress line and the server's counters are refreshed.
const REFRESH: Duration = Duration::from_millis(250);
/// The modes, in the order they run.
const MODES: [&str; 2] = ["fresh", "reuse"];

/// What to run.
pub(crate) struct Plan {
    pub name: String,
    pub version: u32,
    pub method: Method,
    pub path: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Vec<u8>,
    pub connections: u32,
    pub duration: Duration,
    pub rate: Option<u32>,
    pub request_timeout: Duration,
    pub progress: bool,
}

/// What one mode measured.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ModeReport {
    pub mode: String,
    pub requests: u64,
    pub errors: u64,
    pub req_per_s: f64,
    pub p50_us: Option<f64>,
    pub p90_us: Option<f64>,
    pub p99_us: Option<f64>,
    pub max_us: Option<f64>,
    /// Answers by status, and failures by what failed (`no response`, `body`).
    pub statuses: BTreeMap<String, u64>,
    /// The server's bench start counters over the mode.
    pub starts: Starts,
    /// Throughput over time, one point per [`BUCKET`].
    pub timeline: Vec<Point>,
}

/// Starts the server counted during a mode.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Starts {
    pub cold: u64,
    pub warm: u64,
}

/// One point of the throughput timeline.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Point {
    pub t_s: f64,
    pub req_per_s: f64,
}

/// What the load run measured (the `load` part of `--json`).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Report {
    pub connections: u32,
    pub duration_s: f64,
    pub rate: Option<u32>,
    pub modes: Vec<ModeReport>,
}

impl Report {
    /// A mode's figures.
    pub(crate) fn mode(&self, mode: &str) -> Option<&ModeReport> {
        self.modes.iter().find(|m| m.mode == mode)
    }

    /// The terminal table, the modes side by side.
    pub(crate) fn render(&self) -> String {
        let figure = |v: Option<f64>| v.map_or_else(|| "-".into(), human_us);
        let rows: Vec<Vec<String>> = self
            .modes
            .iter()
            .map(|m| {
                vec![
                    m.mode.clone(),
                    format!("{:.0}", m.req_per_s),
                    figure(m.p50_us),
                    figure(m.p90_us),
                    figure(m.p99_us),
                    m.requests.to_string(),
                    m.errors.to_string(),
                    format!("{}/{}", m.starts.cold, m.starts.warm),
                ]
            })
            .collect();
        let rate = self.rate.map_or_else(
            || "as fast as answers come".into(),
            |r| format!("{r} req/s"),
        );
        format!(
            "load over HTTP: {} connections, {} per mode, {rate}\n\n{}",
            self.connections,
            humantime::format_duration(Duration::from_secs_f64(self.duration_s)),
            output::table(
                &[
                    "MODE",
                    "REQ/S",
                    "P50",
                    "P90",
                    "P99",
                    "REQUESTS",
                    "ERRORS",
                    "COLD/WARM STARTS"
                ],
                &rows,
                &[1, 2, 3, 4, 5, 6, 7],
            )
        )
    }
}

/// What the connections of one mode share.
struct Shared {
    requests: AtomicU64,
    errors: AtomicU64,
    buckets: Vec<AtomicU64>,
}

/// What one connection saw.
#[derive(Default)]
struct Seen {
    latencies_us: Vec<u32>,
    statuses: BTreeMap<String, u64>,
}

/// Runs both modes and ends the server's bench pools.
pub(crate) async fn run(ctx: &Context, plan: &Plan) -> anyhow::Result<Report> {
    let mut modes = Vec::new();
    for mode in MODES {
        let result = run_mode(ctx, plan, mode).await;
        match result {
            Ok(report) => modes.push(report),
            Err(e) => {
                end(ctx, plan).await;
                return Err(e);
            }
        }
    }
    end(ctx, plan).await;
    Ok(Report {
        connections: plan.connections,
        duration_s: plan.duration.as_secs_f64(),
        rate: plan.rate,
        modes,
    })
}

async fn end(ctx: &Context, plan: &Plan) {
    let url = ctx.client.function_url(&plan.name, &["bench"]);
    if let Err(e) = ctx.client.delete(url).await {
        tracing::warn!(error = %e, "could not end the server's bench pools; they go after a minute idle");
    }
}

/// The server's bench start counters of the function: (cold, warm).
async fn starts(ctx: &Context, name: &str) -> anyhow::Result<(u64, u64)> {
    let info = ctx.client.get(ctx.client.function_url(name, &[])).await?;
    let bench = &info["stats"]["bench"];
    Ok((
        bench["cold_starts"].as_u64().unwrap_or(0),
        bench["warm_starts"].as_u64().unwrap_or(0),
    ))
}

fn url(ctx: &Context, plan: &Plan, mode: &str) -> anyhow::Result<Url> {
    let version = plan.version.to_string();
    let base = ctx
        .client
        .function_url(&plan.name, &["bench", &version, mode]);
    let separator = if plan.path.starts_with('/') { "" } else { "/" };
    Url::parse(&format!("{base}{separator}{}", plan.path))
        .with_context(|| format!("invalid path {:?}", plan.path))
}

async fn run_mode(ctx: &Context, plan: &Plan, mode: &'static str) -> anyhow::Result<ModeReport> {
    let url = url(ctx, plan, mode)?;
    let before = starts(ctx, &plan.name).await?;
    let buckets = (plan.duration.as_nanos() / BUCKET.as_nanos()) as usize + 1;
    let shared = Arc::new(Shared {
        requests: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        buckets: (0..buckets).map(|_| AtomicU64::new(0)).collect(),
    });
    let began = Instant::now();
    let interval = plan
        .rate
        .map(|rate| Duration::from_secs_f64(f64::from(plan.connections) / f64::from(rate.max(1))));
    let mut tasks = Vec::new();
    for i in 0..plan.connections {
        let offset = interval.map_or(Duration::ZERO, |iv| iv * i / plan.connections);
        tasks.push(tokio::spawn(connection(
            ctx.clone(),
            Request {
                url: url.clone(),
                method: plan.method.clone(),
                headers: plan.headers.clone(),
                body: plan.body.clone(),
                timeout: plan.request_timeout,
            },
            shared.clone(),
            began,
            began + offset,
            began + plan.duration,
            interval,
        )));
    }
    let mut latest = before;
    while tasks.iter().any(|t| !t.is_finished()) {
        tokio::time::sleep(REFRESH).await;
        if plan.progress {
            if let Ok(now) = starts(ctx, &plan.name).await {
                latest = now;
            }
            draw(
                mode,
                plan.duration,
                began.elapsed(),
                &shared,
                before,
                latest,
            );
        }
    }
    let mut seen = Seen::default();
    for task in tasks {
        let part = task.await.context("a load connection failed")?;
        seen.latencies_us.extend(part.latencies_us);
        for (status, n) in part.statuses {
            *seen.statuses.entry(status).or_default() += n;
        }
    }
    let elapsed = began.elapsed();
    if plan.progress {
        eprint!("\r\x1b[2K");
    }
    let after = starts(ctx, &plan.name).await?;
    seen.latencies_us.sort_unstable();
    let rank = |q: f64| nearest_rank(&seen.latencies_us, q).map(f64::from);
    let requests = shared.requests.load(Ordering::Relaxed);
    let timeline = shared
        .buckets
        .iter()
        .take(buckets - 1)
        .enumerate()
        .map(|(i, b)| Point {
            t_s: (i + 1) as f64 * BUCKET.as_secs_f64(),
            req_per_s: b.load(Ordering::Relaxed) as f64 / BUCKET.as_secs_f64(),
        })
        .collect();
    Ok(ModeReport {
        mode: mode.into(),
        requests,
        errors: shared.errors.load(Ordering::Relaxed),
        req_per_s: requests as f64 / elapsed.as_secs_f64(),
        p50_us: rank(0.50),
        p90_us: rank(0.90),
        p99_us: rank(0.99),
        max_us: seen.latencies_us.last().map(|&v| f64::from(v)),
        statuses: seen.statuses,
        starts: Starts {
            cold: after.0.saturating_sub(before.0),
            warm: after.1.saturating_sub(before.1),
        },
        timeline,
    })
}

/// The sample request of a load run.
struct Request {
    url: Url,
    method: Method,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Vec<u8>,
    timeout: Duration,
}

/// One connection's loop: send, read the whole answer, record, until `end`.
async fn connection(
    ctx: Context,
    request: Request,
    shared: Arc<Shared>,
    began: Instant,
    first: Instant,
    end: Instant,
    interval: Option<Duration>,
) -> Seen {
    let mut seen = Seen::default();
    let mut due = first;
    loop {
        let scheduled = match interval {
            Some(interval) => {
                tokio::time::sleep_until(due.into()).await;
                let scheduled = due;
                due += interval;
                scheduled
            }
            None => Instant::now(),
        };
        if scheduled >= end {
            break;
        }
        let mut builder = ctx
            .client
            .request(request.method.clone(), request.url.clone())
            .timeout(request.timeout)
            .body(request.body.clone());
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        let outcome = match ctx.client.send(builder).await {
            Ok(response) => {
                let status = response.status();
                match response.bytes().await {
                    Ok(_) => Ok(status),
                    Err(_) => Err("body"),
                }
            }
            Err(_) => Err("no response"),
        };
        let latency = scheduled.elapsed();
        let failed = match outcome {
            Ok(status) => {
                *seen
                    .statuses
                    .entry(status.as_u16().to_string())
                    .or_default() += 1;
                status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS
            }
            Err(what) => {
                *seen.statuses.entry(what.to_string()).or_default() += 1;
                true
            }
        };
        seen.latencies_us
            .push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
        shared.requests.fetch_add(1, Ordering::Relaxed);
        if failed {
            shared.errors.fetch_add(1, Ordering::Relaxed);
        }
        let bucket = ((scheduled - began).as_nanos() / BUCKET.as_nanos()) as usize;
        if let Some(b) = shared.buckets.get(bucket) {
            b.fetch_add(1, Ordering::Relaxed);
        }
    }
    seen
}

/// The progress line: a bar, time, requests, rate, errors and the server's starts.
fn draw(
    mode: &str,
    total: Duration,
    elapsed: Duration,
    shared: &Shared,
    before: (u64, u64),
    latest: (u64, u64),
) {
    const WIDTH: usize = 24;
    let done = (elapsed.as_secs_f64() / total.as_secs_f64()).min(1.0);
    let filled = (done * WIDTH as f64) as usize;
    let requests = shared.requests.load(Ordering::Relaxed);
    let mut err = std::io::stderr().lock();
    let _ = write!(
        err,
        "\r\x1b[2K{mode:<5} [{}{}] {:>4.1}/{:.1} s  {requests} req  {:.0} req/s  {} errors  starts cold {} warm {}",
        "#".repeat(filled),
        "-".repeat(WIDTH - filled),
        elapsed.as_secs_f64().min(total.as_secs_f64()),
        total.as_secs_f64(),
        requests as f64 / elapsed.as_secs_f64().max(1e-3),
        shared.errors.load(Ordering::Relaxed),
        latest.0.saturating_sub(before.0),
        latest.1.saturating_sub(before.1),
    );
    let _ = err.flush();
}
