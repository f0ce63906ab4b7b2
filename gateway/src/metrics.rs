//! Prometheus metrics and the per-function counters behind the info API.

use dashmap::DashMap;
use flint_runtime::{InvocationObserver, InvokeError, StartKind};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    function: String,
    version: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FunctionLabels {
    function: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    function: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MessageLabels {
    function: String,
    queue: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeOnly {
    function: String,
    result: String,
}

/// Every metric Flint exports.
pub struct Metrics {
    registry: Registry,
    invocations: Family<OutcomeLabels, Counter>,
    duration: Family<FunctionLabels, Histogram>,
    starts: Family<KindLabels, Counter>,
    artifact_loads: Family<KindLabels, Counter>,
    in_flight: Family<FunctionLabels, Gauge>,
    warm_instances: Family<FunctionLabels, Gauge>,
    messages: Family<MessageLabels, Counter>,
    broker_connected: Gauge,
    shadow: Family<OutcomeOnly, Counter>,
    drift: Family<KindLabels, Counter>,
    bench_invocations: Family<OutcomeOnly, Counter>,
    bench_starts: Family<KindLabels, Counter>,
    schedule_firings: Family<FiringLabels, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FiringLabels {
    function: String,
    outcome: String,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("flint");
        let invocations = Family::<OutcomeLabels, Counter>::default();
        let duration = Family::<FunctionLabels, Histogram>::new_with_constructor(|| {
            // 50 µs .. ~100 s
            Histogram::new(exponential_buckets(0.00005, 2.5, 16))
        });
        let starts = Family::<KindLabels, Counter>::default();
        let artifact_loads = Family::<KindLabels, Counter>::default();
        let in_flight = Family::<FunctionLabels, Gauge>::default();
        let warm_instances = Family::<FunctionLabels, Gauge>::default();
        registry.register(
            "invocations",
            "Invocations by function, version and outcome",
            invocations.clone(),
        );
        registry.register(
            "invocation_duration_seconds",
            "Invocation duration including the response body",
            duration.clone(),
        );
        registry.register("starts", "Invocation starts by kind (cold: instantiated on the request path; warm: taken from the pool)", starts.clone());
        registry.register(
            "artifact_loads",
            "Compiled components made ready by source (disk: mapped from the artifact cache; compile: compiled from bytes)",
            artifact_loads.clone(),
        );
        registry.register("in_flight", "Invocations running now", in_flight.clone());
        registry.register(
            "warm_instances",
            "Instances waiting in the pool",
            warm_instances.clone(),
        );
        let messages = Family::<MessageLabels, Counter>::default();
        let broker_connected = Gauge::default();
        registry.register(
            "messages",
            "Queue messages by function, queue and outcome (received, acked, retried, dead_lettered)",
            messages.clone(),
        );
        registry.register(
            "broker_connected",
            "1 while connected to RabbitMQ, 0 while (re)connecting",
            broker_connected.clone(),
        );
        let shadow = Family::<OutcomeOnly, Counter>::default();
        registry.register(
            "shadow_comparisons",
            "Shadow-run comparisons by function and result (match, mismatch, error, skipped)",
            shadow.clone(),
        );
        let drift = Family::<KindLabels, Counter>::default();
        registry.register(
            "drift_corrections",
            "Changes made outside the manifest that the reconciler put back, by function and kind (the apply action)",
            drift.clone(),
        );
        let bench_invocations = Family::<OutcomeOnly, Counter>::default();
        registry.register(
            "bench_invocations",
            "Invocations that benchmarks ran (flint bench), by function and result (ok or the error code); never counted in flint_invocations",
            bench_invocations.clone(),
        );
        let bench_starts = Family::<KindLabels, Counter>::default();
        registry.register(
            "bench_starts",
            "Starts of benchmark invocations by kind (cold, warm); never counted in flint_starts",
            bench_starts.clone(),
        );
        let schedule_firings = Family::<FiringLabels, Counter>::default();
        registry.register(
            "schedule_firings",
            "Ticks of cron schedules fired, by function and outcome (ok, bad_status: the function answered other than 2xx, or the call's error code)",
            schedule_firings.clone(),
        );
        Self {
            registry,
            schedule_firings,
            bench_invocations,
            bench_starts,
            drift,
            shadow,
            messages,
            broker_connected,
            invocations,
            duration,
            starts,
            artifact_loads,
            in_flight,
            warm_instances,
        }
    }
}

impl Metrics {
    /// Sets the gauges of one function (called before each scrape).
    pub fn set_gauges(&self, function: &str, in_flight: u32, warm_instances: usize) {
        let labels = FunctionLabels {
            function: function.to_string(),
        };
        self.in_flight.get_or_create(&labels).set(in_flight as i64);
        self.warm_instances
            .get_or_create(&labels)
            .set(warm_instances as i64);
    }

    /// Forgets the gauges of a deleted function.
    pub fn remove_function(&self, function: &str) {
        let labels = FunctionLabels {
            function: function.to_string(),
        };
        self.in_flight.remove(&labels);
        self.warm_instances.remove(&labels);
    }

    /// Counts a queue message event.
    pub fn message(&self, function: &str, queue: &str, outcome: &str) {
        self.messages
            .get_or_create(&MessageLabels {
                function: function.into(),
                queue: queue.into(),
                outcome: outcome.into(),
            })
            .inc();
    }

    /// Counts a fired tick of a schedule.
    pub fn schedule_fired(&self, function: &str, outcome: &str) {
        self.schedule_firings
            .get_or_create(&FiringLabels {
                function: function.into(),
                outcome: outcome.into(),
            })
            .inc();
    }

    /// Counts a shadow comparison.
    pub fn shadow(&self, function: &str, result: &str) {
        self.shadow
            .get_or_create(&OutcomeOnly {
                function: function.into(),
                result: result.into(),
            })
            .inc();
    }

    /// Counts a drift correction by the reconciler.
    pub fn drift_corrected(&self, function: &str, action: &str) {
        self.drift
            .get_or_create(&KindLabels {
                function: function.into(),
                kind: action.into(),
            })
            .inc();
    }

    /// Records the broker connection state.
    pub fn set_broker_connected(&self, connected: bool) {
        self.broker_connected.set(i64::from(connected));
    }

    /// Counts the making-ready of a compiled component.
    pub fn artifact_loaded(&self, function: &str, source: LoadSource) {
        let kind = match source {
            LoadSource::Disk => "disk",
            LoadSource::Compile => "compile",
        };
        self.artifact_loads
            .get_or_create(&KindLabels {
                function: function.into(),
                kind: kind.into(),
            })
            .inc();
    }

    /// The metrics in `format`.
    pub fn encode(&self, format: Exposition) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String");
        match format {
            Exposition::OpenMetrics => out,
            Exposition::Prometheus => to_prometheus_text(&out),
        }
    }
}

/// The two text formats a scrape can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposition {
    /// OpenMetrics 1.0 (`application/openmetrics-text`), what Prometheus
    /// asks for first.
    OpenMetrics,
    /// The Prometheus text format 0.0.4 (`text/plain`), for every other
    /// client (curl, promtool, older scrapers).
    Prometheus,
}

impl Exposition {
    /// The format an `Accept` header asks for.
    pub fn from_accept(accept: Option<&str>) -> Self {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Self::OpenMetrics,
            _ => Self::Prometheus,
        }
    }

    /// Its `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Self::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// OpenMetrics text as the Prometheus text format: a counter family's HELP
/// and TYPE name its samples (`flint_starts_total`, where OpenMetrics names
/// the family `flint_starts`), and there is no `# EOF`.
fn to_prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len() + 16 * counters.len());
    for line in openmetrics.lines() {
        if line == "# EOF" {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        match renamed {
            Some(line) => out.push_str(&line),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// Where a version's compiled component came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadSource {
    /// Mapped from the artifact cache.
    Disk,
    /// Compiled from the component bytes.
    Compile,
}

/// Counters of one function since the process started (the info API's
/// `stats`).
#[derive(Debug, Default)]
pub struct FunctionStats {
    invocations: AtomicU64,
    errors: AtomicU64,
    warm_starts: AtomicU64,
    cold_starts: AtomicU64,
    disk_loads: AtomicU64,
    compiles: AtomicU64,
    bench: BenchStats,
}

/// Counters of the invocations benchmarks ran, kept apart from the live
/// ones.
#[derive(Debug, Default)]
struct BenchStats {
    invocations: AtomicU64,
    errors: AtomicU64,
    warm_starts: AtomicU64,
    cold_starts: AtomicU64,
}

/// A snapshot of the bench counters.
#[derive(Debug, Clone, Serialize)]
#[expect(missing_docs, reason = "self-explanatory counters")]
pub struct BenchSnapshot {
    pub invocations: u64,
    pub errors: u64,
    pub warm_starts: u64,
    pub cold_starts: u64,
}

/// A snapshot of [`FunctionStats`] plus the live gauges.
#[derive(Debug, Clone, Serialize)]
#[expect(missing_docs, reason = "self-explanatory counters")]
pub struct StatsSnapshot {
    pub invocations: u64,
    pub errors: u64,
    pub in_flight: u32,
    pub queued: u32,
    pub warm_instances: usize,
    pub warm_starts: u64,
    pub cold_starts: u64,
    pub disk_loads: u64,
    pub compiles: u64,
    /// What benchmarks ran: never part of the counters above.
    pub bench: BenchSnapshot,
}

impl FunctionStats {
    /// Counts a load of `source`.
    pub fn loaded(&self, source: LoadSource) {
        match source {
            LoadSource::Disk => &self.disk_loads,
            LoadSource::Compile => &self.compiles,
        }
        .fetch_add(1, Ordering::Relaxed);
    }

    /// Snapshot with the given gauges.
    pub fn snapshot(&self, in_flight: u32, queued: u32, warm_instances: usize) -> StatsSnapshot {
        StatsSnapshot {
            invocations: self.invocations.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            in_flight,
            queued,
            warm_instances,
            warm_starts: self.warm_starts.load(Ordering::Relaxed),
            cold_starts: self.cold_starts.load(Ordering::Relaxed),
            disk_loads: self.disk_loads.load(Ordering::Relaxed),
            compiles: self.compiles.load(Ordering::Relaxed),
            bench: BenchSnapshot {
                invocations: self.bench.invocations.load(Ordering::Relaxed),
                errors: self.bench.errors.load(Ordering::Relaxed),
                warm_starts: self.bench.warm_starts.load(Ordering::Relaxed),
                cold_starts: self.bench.cold_starts.load(Ordering::Relaxed),
            },
        }
    }

    /// Invocations so far.
    pub fn invocations(&self) -> u64 {
        self.invocations.load(Ordering::Relaxed)
    }
}

/// Feeds one function's invocations into its stats and the metrics.
pub struct FunctionObserver {
    /// The function's counters.
    pub stats: Arc<FunctionStats>,
    metrics: Arc<Metrics>,
    series: Series,
}

/// The series every invocation of one function touches, each looked up in
/// its family once: a lookup builds and hashes the label strings, which cost
/// as much as the rest of the metrics work of an invocation.
#[derive(Default)]
struct Series {
    cold: OnceLock<Counter>,
    warm: OnceLock<Counter>,
    duration: OnceLock<Histogram>,
    ok: DashMap<u32, Counter>,
}

impl FunctionObserver {
    /// An observer feeding `stats` and `metrics`.
    pub fn new(stats: Arc<FunctionStats>, metrics: Arc<Metrics>) -> Self {
        Self {
            stats,
            metrics,
            series: Series::default(),
        }
    }

    /// Counts one call by its outcome: `ok`, or the error's code (every
    /// error counts in `errors`).
    fn count(&self, function: &str, version: u32, outcome: Result<(), &InvokeError>) {
        self.stats.invocations.fetch_add(1, Ordering::Relaxed);
        match outcome {
            Ok(()) => {
                // A read lock on the hot path; the entry (a write lock) once.
                if let Some(counter) = self.series.ok.get(&version) {
                    counter.inc();
                } else {
                    self.series
                        .ok
                        .entry(version)
                        .or_insert_with(|| self.invocations(function, version, "ok"))
                        .inc();
                }
            }
            Err(e) => {
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
                self.invocations(function, version, e.code()).inc();
            }
        }
    }

    /// Counts a call refused before it got an instance (over
    /// `max_concurrency` and its queue): an error of the function like any
    /// other, with no duration.
    pub fn rejected(&self, function: &str, version: u32, error: &InvokeError) {
        self.count(function, version, Err(error));
    }

    fn invocations(&self, function: &str, version: u32, outcome: &str) -> Counter {
        self.metrics
            .invocations
            .get_or_create(&OutcomeLabels {
                function: function.into(),
                version: version.to_string(),
                outcome: outcome.into(),
            })
            .clone()
    }
}

impl InvocationObserver for FunctionObserver {
    fn started(&self, function: &str, _version: u32, start: StartKind) {
        let (stat, series) = match start {
            StartKind::Cold => (&self.stats.cold_starts, &self.series.cold),
            StartKind::Warm => (&self.stats.warm_starts, &self.series.warm),
        };
        stat.fetch_add(1, Ordering::Relaxed);
        series
            .get_or_init(|| {
                self.metrics
                    .starts
                    .get_or_create(&KindLabels {
                        function: function.into(),
                        kind: start.as_str().into(),
                    })
                    .clone()
            })
            .inc();
    }

    fn finished(
        &self,
        function: &str,
        version: u32,
        outcome: Result<(), &InvokeError>,
        elapsed: Duration,
        _memory_bytes: usize,
    ) {
        self.count(function, version, outcome);
        self.series
            .duration
            .get_or_init(|| {
                self.metrics
                    .duration
                    .get_or_create(&FunctionLabels {
                        function: function.into(),
                    })
                    .clone()
            })
            .observe(elapsed.as_secs_f64());
    }
}

/// An observer that records nothing (shadow runs keep their own counters).
pub struct Unobserved;

/// Feeds the invocations of a benchmark into the function's bench counters
/// and `flint_bench_invocations`, never into its live counters.
pub struct BenchObserver {
    stats: Arc<FunctionStats>,
    metrics: Arc<Metrics>,
}

impl BenchObserver {
    /// An observer counting into `stats`' bench counters and `metrics`.
    pub fn new(stats: Arc<FunctionStats>, metrics: Arc<Metrics>) -> Self {
        Self { stats, metrics }
    }
}

impl InvocationObserver for BenchObserver {
    fn started(&self, function: &str, _version: u32, start: StartKind) {
        match start {
            StartKind::Cold => &self.stats.bench.cold_starts,
            StartKind::Warm => &self.stats.bench.warm_starts,
        }
        .fetch_add(1, Ordering::Relaxed);
        self.metrics
            .bench_starts
            .get_or_create(&KindLabels {
                function: function.into(),
                kind: start.as_str().into(),
            })
            .inc();
    }

    fn finished(
        &self,
        function: &str,
        _version: u32,
        outcome: Result<(), &InvokeError>,
        _elapsed: Duration,
        _memory_bytes: usize,
    ) {
        self.stats.bench.invocations.fetch_add(1, Ordering::Relaxed);
        if outcome.is_err() {
            self.stats.bench.errors.fetch_add(1, Ordering::Relaxed);
        }
        self.metrics
            .bench_invocations
            .get_or_create(&OutcomeOnly {
                function: function.into(),
                result: outcome.err().map_or("ok", InvokeError::code).into(),
            })
            .inc();
    }
}

impl InvocationObserver for Unobserved {
    fn started(&self, _: &str, _: u32, _: StartKind) {}
    fn finished(&self, _: &str, _: u32, _: Result<(), &InvokeError>, _: Duration, _: usize) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prometheus_format_names_counters_by_their_samples() {
        let openmetrics = "# HELP flint_starts Starts.\n# TYPE flint_starts counter\n\
            flint_starts_total{function=\"f\",kind=\"cold\"} 1\n\
            # HELP flint_in_flight Running.\n# TYPE flint_in_flight gauge\n\
            flint_in_flight{function=\"f\"} 0\n# EOF\n";
        assert_eq!(
            to_prometheus_text(openmetrics),
            "# HELP flint_starts_total Starts.\n# TYPE flint_starts_total counter\n\
            flint_starts_total{function=\"f\",kind=\"cold\"} 1\n\
            # HELP flint_in_flight Running.\n# TYPE flint_in_flight gauge\n\
            flint_in_flight{function=\"f\"} 0\n"
        );
    }

    #[test]
    fn a_scrape_gets_the_format_it_asks_for() {
        let metrics = Metrics::default();
        metrics.set_broker_connected(true);
        let accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";
        let open = metrics.encode(Exposition::from_accept(Some(accept)));
        assert!(open.ends_with("# EOF\n"), "{open}");
        let text = metrics.encode(Exposition::from_accept(None));
        assert!(!text.contains("# EOF"), "{text}");
        assert!(
            text.contains("# TYPE flint_broker_connected gauge"),
            "{text}"
        );
    }
}
