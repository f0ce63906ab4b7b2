//! Benchmarks of a deployed function on the server that runs it.
//!
//! [`Control::bench`] times one fixed request under every start kind of
//! DESIGN.md in process, so no network stands between the clock and the
//! guest: `disk` (map the cached artifact, pre-link, instantiate, handle),
//! `cold` (instantiate from the pre-linked component, handle), `warm`
//! (handle on a pre-instantiated instance) and `reuse` (handle on an
//! instance that has already served). Rounds take a short block of
//! samples of each kind in turn, so that whatever else the machine does
//! weighs on every kind alike. A load run over HTTP drives [`BenchPools`] through
//! `Target::Bench`.
//!
//! Benchmarks leave no state behind: they run on pools of their own, built
//! from the live version's component and the function's configuration, take
//! permits from the function's own concurrency gate (so live calls and
//! benchmarks together never pass `max_concurrency`), and count as bench
//! invocations, never in the function's live counters or canary windows.

mod load;
mod report;

pub(super) use load::bench_pool;
pub use load::{BENCH_POOLS_IDLE, BenchMode, BenchPools};
pub use report::{
    BenchFailure, BenchReport, ConfigSummary, KindReport, RequestSummary, ResponseSummary,
    ReuseCheck, nearest_rank,
};

use super::functions::{FunctionEntry, VersionEntry};
use super::invoker::{callable, resolve, version_of};
use super::{Control, CoreError, CoreResult, State, Target};
use crate::metrics::BenchObserver;
use bytes::Bytes;
use flint_runtime::{
    FunctionConfig, HyperIncomingBody, InstancePool, InvocationObserver, InvokeError, Program,
    StartKind, next_request_id,
};
use flint_spec::Digest;
use http_body_util::{BodyExt, Full};
use report::{Answer, Figures, reuse_check};
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Samples of one kind a round takes back to back: enough that caches hold
/// what that kind touches, as they do when one kind serves many calls in a
/// row, and few enough that rounds alternate quickly and the noise of a
/// busy machine weighs on every kind alike.
const BLOCK: usize = 10;

/// Most samples of each start kind one benchmark takes.
pub const MAX_BENCH_SAMPLES: u32 = 2000;
/// Longest a benchmark may run (plus the function's `timeout_ms` for the
/// sample under way).
pub const MAX_BENCH_TIME: Duration = Duration::from_secs(60);

/// A benchmark to run: the request every sample sends, and its bounds.
#[derive(Debug, Clone)]
pub struct BenchRequest {
    /// The method of the sample request.
    pub method: http::Method,
    /// Its path inside the function, with any query.
    pub path: String,
    /// Its headers.
    pub headers: http::HeaderMap,
    /// Its body.
    pub body: Bytes,
    /// Samples of each start kind, at most.
    pub samples: u32,
    /// Time for all rounds, at most.
    pub max_time: Duration,
    /// The caller accepts that every sample runs the function's outbound
    /// calls.
    pub allow_side_effects: bool,
}

/// A start kind a benchmark measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BenchKind {
    /// Map the cached artifact, pre-link, instantiate, handle.
    Disk,
    /// Instantiate from the pre-linked component, handle.
    Cold,
    /// Handle on a pre-instantiated instance.
    Warm,
    /// Handle on an instance that has already served.
    Reuse,
}

const KINDS: [BenchKind; 4] = [
    BenchKind::Disk,
    BenchKind::Cold,
    BenchKind::Warm,
    BenchKind::Reuse,
];

/// What the pool reported of one invocation.
struct Observed {
    start: Option<StartKind>,
    outcome: Result<(), InvokeError>,
    at: Instant,
    memory_bytes: usize,
}

/// Passes a benchmark's invocations on to the function's bench counters and
/// to the benchmark itself.
struct Probe {
    counters: Arc<BenchObserver>,
    start: Mutex<Option<StartKind>>,
    events: mpsc::UnboundedSender<Observed>,
}

impl InvocationObserver for Probe {
    fn started(&self, function: &str, version: u32, start: StartKind) {
        *self.start.lock().unwrap() = Some(start);
        self.counters.started(function, version, start);
    }

    fn finished(
        &self,
        function: &str,
        version: u32,
        outcome: Result<(), &InvokeError>,
        elapsed: Duration,
        memory_bytes: usize,
    ) {
        let at = Instant::now();
        self.counters
            .finished(function, version, outcome, elapsed, memory_bytes);
        let _ = self.events.send(Observed {
            start: self.start.lock().unwrap().take(),
            outcome: outcome.map_err(Clone::clone),
            at,
            memory_bytes,
        });
    }
}

/// One timed sample.
struct Sample {
    us: f64,
    start: Option<StartKind>,
    memory_bytes: usize,
    answer: Answer,
}

/// A failed sample: the kind and the error.
type Failed = (BenchKind, InvokeError);

/// One benchmark under way.
struct Run<'a> {
    control: &'a Control,
    entry: &'a Arc<FunctionEntry>,
    version: &'a VersionEntry,
    request: &'a BenchRequest,
    probe: Arc<Probe>,
    events: mpsc::UnboundedReceiver<Observed>,
    wait_limit: Duration,
}

fn fresh_config(config: &mut FunctionConfig) {
    config.min_instances = 0;
    config.max_requests_per_instance = 1;
}

pub(super) fn reuse_config(config: &mut FunctionConfig) {
    config.min_instances = 0;
    config.max_requests_per_instance = u32::MAX;
}

impl Run<'_> {
    fn pool(
        &self,
        component: &Program,
        edit: fn(&mut FunctionConfig),
    ) -> CoreResult<Arc<InstancePool>> {
        self.control
            .s
            .table
            .pool_with(
                self.entry,
                self.version.record.version,
                component,
                edit,
                self.probe.clone(),
            )
            .map_err(CoreError::internal)
    }

    fn sample_request(&self) -> http::Request<HyperIncomingBody> {
        let body = Full::new(self.request.body.clone())
            .map_err(|never| match never {})
            .boxed_unsync();
        let mut request = http::Request::new(body);
        *request.method_mut() = self.request.method.clone();
        *request.uri_mut() = format!("http://localhost{}", self.request.path)
            .parse()
            .expect("the path was checked");
        *request.headers_mut() = self.request.headers.clone();
        request
    }

    /// Runs one invocation on `pool` and reads its whole answer; the sample
    /// counts from `started` to the end of the guest's call, as the pool
    /// reports it.
    async fn invoke(
        &mut self,
        kind: BenchKind,
        pool: &Arc<InstancePool>,
        permit: flint_runtime::GatePermit,
        started: Instant,
    ) -> Result<Sample, Failed> {
        let response = pool
            .invoke(permit, next_request_id(), self.sample_request())
            .await;
        let collected = match response {
            Ok(response) => {
                let status = response.status().as_u16();
                Ok((status, response.into_body().collect().await))
            }
            Err(e) => Err(e),
        };
        let observed = match tokio::time::timeout(self.wait_limit, self.events.recv()).await {
            Ok(Some(observed)) => observed,
            _ => {
                return Err((
                    kind,
                    InvokeError::Internal("the invocation did not report its end".into()),
                ));
            }
        };
        if let Err(e) = observed.outcome {
            return Err((kind, e));
        }
        let (status, body) = collected.map_err(|e| (kind, e))?;
        let body = body
            .map_err(|e| (kind, InvokeError::Guest(format!("response body: {e}"))))?
            .to_bytes();
        Ok(Sample {
            us: (observed.at - started).as_secs_f64() * 1e6,
            start: observed.start,
            memory_bytes: observed.memory_bytes,
            answer: Answer {
                status,
                body: Digest::of(&body),
                body_bytes: body.len(),
            },
        })
    }

    async fn permit(&self, kind: BenchKind) -> Result<flint_runtime::GatePermit, Failed> {
        self.entry.gate().acquire().await.map_err(|e| (kind, e))
    }

    /// A disk sample: `None` when this node has no compiled artifact of the
    /// version to map.
    async fn disk(&mut self) -> Result<Option<Sample>, Failed> {
        let kind = BenchKind::Disk;
        let permit = self.permit(kind).await?;
        let started = Instant::now();
        let runtime = self.control.s.table.runtime().clone();
        let digest = self.version.record.digest.clone();
        let component = tokio::task::spawn_blocking(move || runtime.load_cached(&digest))
            .await
            .map_err(|e| (kind, InvokeError::Internal(e.to_string())))?;
        let Some(component) = component else {
            return Ok(None);
        };
        let pool = self
            .pool(&component, fresh_config)
            .map_err(|e| (kind, InvokeError::Internal(e.to_string())))?;
        self.invoke(kind, &pool, permit, started).await.map(Some)
    }

    async fn timed(&mut self, kind: BenchKind, pool: &Arc<InstancePool>) -> Result<Sample, Failed> {
        if kind == BenchKind::Warm {
            pool.prewarm().await.map_err(|e| (kind, e))?;
        }
        let permit = self.permit(kind).await?;
        let started = Instant::now();
        self.invoke(kind, pool, permit, started).await
    }

    /// Takes samples of every kind in turn until enough, the time is up or
    /// one fails.
    async fn rounds(&mut self, component: &Program) -> CoreResult<Gathered> {
        let cold_pool = self.pool(component, fresh_config)?;
        let warm_pool = self.pool(component, fresh_config)?;
        let reuse_pool = self.pool(component, reuse_config)?;

        let began = Instant::now();
        let mut figures: [Figures; 4] = Default::default();
        let (mut fresh, mut reused) = (Vec::new(), Vec::new());
        let mut failure = None;
        let mut stopped_by = "samples";
        // The reuse pool's first request makes the instance the others
        // reuse; it answers as a fresh instance.
        match self.timed(BenchKind::Reuse, &reuse_pool).await {
            Ok(sample) => fresh.push(sample.answer),
            Err(failed) => failure = Some(failed),
        }
        let samples = self.request.samples as usize;
        'rounds: while figures
            .iter()
            .any(|f| f.len() < samples && f.skipped.is_none())
        {
            if began.elapsed() >= self.request.max_time {
                stopped_by = "time";
                break;
            }
            for (i, kind) in KINDS.into_iter().enumerate() {
                let block = samples.saturating_sub(figures[i].len()).min(BLOCK);
                for _ in 0..block {
                    if failure.is_some() || figures[i].skipped.is_some() {
                        break;
                    }
                    let sample = match kind {
                        BenchKind::Disk => self.disk().await,
                        BenchKind::Cold => self.timed(kind, &cold_pool).await.map(Some),
                        BenchKind::Warm => self.timed(kind, &warm_pool).await.map(Some),
                        BenchKind::Reuse => self.timed(kind, &reuse_pool).await.map(Some),
                    };
                    match sample {
                        Ok(Some(sample)) if kind == BenchKind::Reuse => {
                            // A retired instance makes the next request cold.
                            if sample.start == Some(StartKind::Warm) {
                                figures[i].add(sample.us, sample.memory_bytes);
                                reused.push(sample.answer);
                            } else {
                                fresh.push(sample.answer);
                            }
                        }
                        Ok(Some(sample)) => {
                            figures[i].add(sample.us, sample.memory_bytes);
                            fresh.push(sample.answer);
                        }
                        Ok(None) => {
                            figures[i].skipped =
                                Some("this node has no compiled artifact of the version".into());
                        }
                        Err(failed) => failure = Some(failed),
                    }
                }
                if failure.is_some() {
                    break 'rounds;
                }
            }
        }
        if failure.is_some() {
            stopped_by = "failure";
        }
        Ok(Gathered {
            figures,
            fresh,
            reused,
            failure,
            stopped_by,
        })
    }
}

/// What the rounds of a benchmark gathered.
struct Gathered {
    figures: [Figures; 4],
    /// The answers of fresh instances (disk, cold, warm, a reuse pool's first).
    fresh: Vec<Answer>,
    /// The answers of reused instances.
    reused: Vec<Answer>,
    failure: Option<Failed>,
    stopped_by: &'static str,
}

impl Control {
    /// Measures every start kind of `name` at `target` with the sample
    /// request. A sample that fails ends the benchmark; the report says
    /// which and why, with what was measured before.
    pub async fn bench(
        &self,
        name: &str,
        target: Target<'_>,
        request: BenchRequest,
    ) -> CoreResult<BenchReport> {
        check_bounds(&request)?;
        let (entry, version) = self.bench_target(name, target, &request.headers)?;
        if version.record.kind == flint_spec::FunctionKind::Wagi {
            return Err(CoreError::BadRequest(format!(
                "function `{name}` is a WAGI module: every request runs in a fresh instance, so it has no warm or reused start to compare; measure it under load with `flint bench {name} --load`"
            )));
        }
        let config = entry.config();
        if !config.allowed_outbound_hosts.is_empty() && !request.allow_side_effects {
            return Err(CoreError::ConfirmationRequired(format!(
                "function `{name}` may call out to {}: every sample runs those calls. Confirm with `flint bench --yes` (\"allow_side_effects\": true)",
                config
                    .allowed_outbound_hosts
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let component = match version.component() {
            Some(component) => component,
            None => load_for_bench(&self.s, &version).await?,
        };
        let (events_tx, events) = mpsc::unbounded_channel();
        let mut run = Run {
            control: self,
            entry: &entry,
            version: &version,
            request: &request,
            probe: Arc::new(Probe {
                counters: entry.bench_observer.clone(),
                start: Mutex::new(None),
                events: events_tx,
            }),
            events,
            wait_limit: Duration::from_millis(config.timeout_ms) + Duration::from_secs(5),
        };
        let began = Instant::now();
        let Gathered {
            figures,
            fresh,
            reused,
            failure,
            stopped_by,
        } = run.rounds(&component).await?;
        Ok(BenchReport {
            function: entry.name.clone(),
            version: version.record.version,
            digest: version.record.digest.to_string(),
            size_bytes: version.record.size_bytes,
            request: RequestSummary {
                method: request.method.to_string(),
                path: request.path.clone(),
                body_bytes: request.body.len(),
            },
            config: ConfigSummary {
                memory_mb: config.memory_mb,
                timeout_ms: config.timeout_ms,
                max_concurrency: config.max_concurrency,
                min_instances: config.min_instances,
                max_requests_per_instance: config.max_requests_per_instance,
            },
            compile_ms: version.record.compile_ms,
            kinds: KINDS
                .into_iter()
                .zip(figures)
                .map(|(kind, figures)| figures.report(kind))
                .collect(),
            response: fresh.first().map(|a| ResponseSummary {
                status: a.status,
                body_bytes: a.body_bytes,
            }),
            reuse_check: reuse_check(&fresh, &reused),
            failure: failure.map(|(kind, e)| BenchFailure {
                kind,
                code: e.code().into(),
                message: e.to_string(),
            }),
            elapsed_ms: began.elapsed().as_secs_f64() * 1e3,
            stopped_by,
        })
    }

    /// The function and the one version a benchmark of `target` measures.
    fn bench_target(
        &self,
        name: &str,
        target: Target<'_>,
        headers: &http::HeaderMap,
    ) -> CoreResult<(Arc<FunctionEntry>, Arc<VersionEntry>)> {
        let entry = callable(&self.s, name)?;
        if matches!(target, Target::Alias(_) | Target::Default) {
            let releases = entry.releases.read().unwrap();
            let alias = match target {
                Target::Alias(alias) => alias,
                _ => releases.default_alias(),
            };
            if let Some(split) = releases.aliases.get(alias) {
                let mut versions: Vec<u32> = split.versions().collect();
                versions.sort_unstable();
                versions.dedup();
                if versions.len() > 1 {
                    return Err(CoreError::BadRequest(format!(
                        "alias `{alias}` of `{name}` sends calls to versions {}: bench one of them, as {name}@{}",
                        versions
                            .iter()
                            .map(u32::to_string)
                            .collect::<Vec<_>>()
                            .join(", "),
                        versions[0]
                    )));
                }
            }
        }
        let number = resolve(&entry, target, headers)?;
        let version = version_of(&entry, number)?;
        Ok((entry, version))
    }
}

/// The component of a version that is not loaded, without loading it
/// (a benchmark leaves no state behind).
pub(super) async fn load_for_bench(s: &State, version: &VersionEntry) -> CoreResult<Program> {
    let (component, _) = s
        .table
        .load_component(&version.record.digest)
        .await
        .map_err(|e| match e.downcast::<flint_runtime::CompileError>() {
            Ok(compile) => compile.into(),
            Err(other) => CoreError::ComponentMissing(format!("{other:#}")),
        })?;
    Ok(component)
}

fn check_bounds(request: &BenchRequest) -> CoreResult<()> {
    if request.samples == 0 || request.samples > MAX_BENCH_SAMPLES {
        return Err(CoreError::BadRequest(format!(
            "samples must be 1..={MAX_BENCH_SAMPLES}, not {}",
            request.samples
        )));
    }
    if request.max_time.is_zero() || request.max_time > MAX_BENCH_TIME {
        return Err(CoreError::BadRequest(format!(
            "max_seconds must be more than 0 and at most {}, not {}",
            MAX_BENCH_TIME.as_secs(),
            request.max_time.as_secs_f64()
        )));
    }
    if !request.path.starts_with('/') || request.path.parse::<http::Uri>().is_err() {
        return Err(CoreError::BadRequest(format!(
            "path must be an absolute path with an optional query, such as /items?id=7, not {:?}",
            request.path
        )));
    }
    Ok(())
}
