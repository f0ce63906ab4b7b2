//! What a benchmark reports: the figures of each start kind, the first
//! answer, whether a reused instance answers as fresh ones do, and the
//! failure that ended the run.

use super::BenchKind;
use flint_spec::Digest;
use serde::Serialize;

/// Most sample latencies per kind a report lists (the percentiles use all).
const LISTED_SAMPLES: usize = 1000;

/// What a benchmark measured.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// The function.
    pub function: String,
    /// The version measured.
    pub version: u32,
    /// Its component's digest.
    pub digest: String,
    /// Its component's size in bytes.
    pub size_bytes: u64,
    /// The sample request.
    pub request: RequestSummary,
    /// The limits the samples ran under.
    pub config: ConfigSummary,
    /// The upload's compile time, as recorded.
    pub compile_ms: f64,
    /// Every start kind, in the order disk, cold, warm, reuse.
    pub kinds: Vec<KindReport>,
    /// What the function answered (the first sample).
    pub response: Option<ResponseSummary>,
    /// Whether a reused instance answers as a fresh one.
    pub reuse_check: ReuseCheck,
    /// The sample that failed and ended the benchmark.
    pub failure: Option<BenchFailure>,
    /// Time the benchmark took.
    pub elapsed_ms: f64,
    /// What ended it: `samples`, `time` or `failure`.
    pub stopped_by: &'static str,
}

/// The sample request, as the report shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RequestSummary {
    /// Its method.
    pub method: String,
    /// Its path and query.
    pub path: String,
    /// Its body's size.
    pub body_bytes: usize,
}

/// The limits of the function that the samples ran under.
#[derive(Debug, Clone, Serialize)]
pub struct ConfigSummary {
    /// The memory cap.
    pub memory_mb: u32,
    /// The time limit of one call.
    pub timeout_ms: u64,
    /// Calls in flight at most, live and bench together.
    pub max_concurrency: u32,
    /// Instances kept warm for live calls.
    pub min_instances: u32,
    /// Requests one live instance serves.
    pub max_requests_per_instance: u32,
}

/// The figures of one start kind.
#[derive(Debug, Clone, Serialize)]
pub struct KindReport {
    /// The start kind.
    pub kind: BenchKind,
    /// Samples taken.
    pub samples: usize,
    /// The median, in microseconds (none without samples).
    pub p50_us: Option<f64>,
    /// The 90th percentile.
    pub p90_us: Option<f64>,
    /// The 99th percentile.
    pub p99_us: Option<f64>,
    /// The fastest sample.
    pub min_us: Option<f64>,
    /// The slowest sample.
    pub max_us: Option<f64>,
    /// The instance's linear memory after the call, the largest seen.
    pub memory_bytes: Option<usize>,
    /// The samples in the order taken (the first [`LISTED_SAMPLES`]).
    pub samples_us: Vec<f64>,
    /// Why this kind was not measured.
    pub skipped: Option<String>,
}

/// The first answer of the function to the sample request.
#[derive(Debug, Clone, Serialize)]
pub struct ResponseSummary {
    /// Its status.
    pub status: u16,
    /// Its body's size.
    pub body_bytes: usize,
}

/// Whether a reused instance answered as fresh ones do.
#[derive(Debug, Clone, Serialize)]
pub struct ReuseCheck {
    /// `identical`, `differs` (the instance keeps state that shows), `varies`
    /// (fresh instances answer differently already, so no comparison tells)
    /// or `untested`.
    pub verdict: &'static str,
    /// Reused answers compared.
    pub compared: usize,
    /// What was found, in words.
    pub detail: String,
}

/// The sample that failed.
#[derive(Debug, Clone, Serialize)]
pub struct BenchFailure {
    /// The start kind it was.
    pub kind: BenchKind,
    /// The error code, as a caller would get it.
    pub code: String,
    /// The error message.
    pub message: String,
}

/// What an answer is compared by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) body: Digest,
    pub(super) body_bytes: usize,
}

/// The samples of one start kind so far.
#[derive(Default)]
pub(super) struct Figures {
    samples: Vec<f64>,
    memory_bytes: Option<usize>,
    /// Why the kind is not measured.
    pub(super) skipped: Option<String>,
}

impl Figures {
    /// Adds a sample of `us` microseconds after which the instance held
    /// `memory_bytes`.
    pub(super) fn add(&mut self, us: f64, memory_bytes: usize) {
        self.samples.push(us);
        self.memory_bytes = self.memory_bytes.max(Some(memory_bytes));
    }

    /// Samples so far.
    pub(super) fn len(&self) -> usize {
        self.samples.len()
    }

    /// The figures of `kind`.
    pub(super) fn report(self, kind: BenchKind) -> KindReport {
        let mut sorted = self.samples.clone();
        sorted.sort_by(f64::total_cmp);
        KindReport {
            kind,
            samples: self.samples.len(),
            p50_us: nearest_rank(&sorted, 0.50),
            p90_us: nearest_rank(&sorted, 0.90),
            p99_us: nearest_rank(&sorted, 0.99),
            min_us: sorted.first().copied(),
            max_us: sorted.last().copied(),
            memory_bytes: self.memory_bytes,
            samples_us: self.samples.into_iter().take(LISTED_SAMPLES).collect(),
            skipped: self.skipped,
        }
    }
}

/// The `q` quantile (0 < q <= 1) of `sorted` by nearest rank: the smallest
/// sample at or above that share of all; `None` without samples.
pub fn nearest_rank<T: Copy>(sorted: &[T], q: f64) -> Option<T> {
    let n = sorted.len();
    (n > 0).then(|| sorted[((q * n as f64).ceil() as usize).clamp(1, n) - 1])
}

/// Compares the answers of reused instances with those of fresh ones.
pub(super) fn reuse_check(fresh: &[Answer], reused: &[Answer]) -> ReuseCheck {
    let Some(first) = fresh.first() else {
        return ReuseCheck {
            verdict: "untested",
            compared: 0,
            detail: "no fresh instance answered".into(),
        };
    };
    if reused.is_empty() {
        return ReuseCheck {
            verdict: "untested",
            compared: 0,
            detail: "no reused instance answered".into(),
        };
    }
    if let Some(other) = fresh.iter().find(|a| *a != first) {
        return ReuseCheck {
            verdict: "varies",
            compared: 0,
            detail: format!(
                "fresh instances already answer differently ({} against {}), so comparing answers cannot tell whether reuse is safe",
                describe(first),
                describe(other)
            ),
        };
    }
    match reused.iter().position(|a| a != first) {
        None => ReuseCheck {
            verdict: "identical",
            compared: reused.len(),
            detail: format!(
                "a reused instance answered as a fresh one in all {} requests",
                reused.len()
            ),
        },
        Some(i) => ReuseCheck {
            verdict: "differs",
            compared: i + 1,
            detail: format!(
                "request {} on a reused instance answered {} where a fresh instance answers {}: the instance keeps state between requests",
                i + 2,
                describe(&reused[i]),
                describe(first)
            ),
        },
    }
}

fn describe(answer: &Answer) -> String {
    format!(
        "status {} with a {}-byte body {}",
        answer.status,
        answer.body_bytes,
        &answer.body.hex()[..12]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            status,
            body: Digest::of(body.as_bytes()),
            body_bytes: body.len(),
        }
    }

    #[test]
    fn reuse_verdicts() {
        let a = answer(200, "hello");
        let b = answer(200, "hello 2");
        assert_eq!(
            reuse_check(&[], std::slice::from_ref(&a)).verdict,
            "untested"
        );
        assert_eq!(
            reuse_check(std::slice::from_ref(&a), &[]).verdict,
            "untested"
        );
        let same = reuse_check(&[a.clone(), a.clone()], &[a.clone(), a.clone()]);
        assert_eq!((same.verdict, same.compared), ("identical", 2));
        let differs = reuse_check(std::slice::from_ref(&a), &[a.clone(), b.clone()]);
        assert_eq!((differs.verdict, differs.compared), ("differs", 2));
        assert!(differs.detail.contains("request 3"), "{}", differs.detail);
        assert_eq!(reuse_check(&[a.clone(), b], &[a]).verdict, "varies");
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let figures = Figures {
            samples: (1..=100).rev().map(f64::from).collect(),
            memory_bytes: Some(65536),
            skipped: None,
        };
        let report = figures.report(BenchKind::Cold);
        assert_eq!(report.samples, 100);
        assert_eq!(report.p50_us, Some(50.0));
        assert_eq!(report.p90_us, Some(90.0));
        assert_eq!(report.p99_us, Some(99.0));
        assert_eq!((report.min_us, report.max_us), (Some(1.0), Some(100.0)));
        let one = Figures {
            samples: vec![7.0],
            ..Figures::default()
        }
        .report(BenchKind::Warm);
        assert_eq!((one.p50_us, one.p99_us), (Some(7.0), Some(7.0)));
        let none = Figures::default().report(BenchKind::Disk);
        assert_eq!((none.samples, none.p50_us), (0, None));
    }
}
