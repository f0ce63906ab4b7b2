//! Shadow runs: a candidate version gets a copy of live requests, its
//! answers are compared with the live ones and never reach callers.
//!
//! The candidate runs in a pool of its own whose sandbox allows no outbound
//! HTTP (and guests have no queue access at all), so its side effects are
//! cut off by the host; it has its own concurrency bound and is skipped, not
//! waited for, when that is full, so the live call is never slowed by it.
//!
//! What to shadow ([`flint_spec::ShadowSpec`]) is in `flint_spec::shadow`;
//! this module compares the answers and keeps the counters.

use serde::Serialize;
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Mismatch samples kept per function.
pub const MAX_SAMPLES: usize = 50;
/// Bytes of each body kept in a sample.
const SAMPLE_BODY_BYTES: usize = 512;

/// One answer, as compared.
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// `content-type`, if any.
    pub content_type: Option<String>,
    /// The whole body.
    pub body: bytes::Bytes,
}

/// A kept mismatch.
#[derive(Debug, Clone, Serialize)]
pub struct Mismatch {
    /// When, RFC 3339.
    pub time: String,
    /// Method and path of the request.
    pub request: String,
    /// What differs first.
    pub difference: String,
    /// Live status and body (cut).
    pub live_status: u16,
    /// Live body, cut to 512 bytes.
    pub live_body: String,
    /// Candidate status.
    pub candidate_status: Option<u16>,
    /// Candidate body, cut to 512 bytes, or its error.
    pub candidate_body: String,
}

fn strip(value: &mut Value, ignore: &[String]) {
    match value {
        Value::Object(map) => {
            map.retain(|k, _| !ignore.contains(k));
            map.values_mut().for_each(|v| strip(v, ignore));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| strip(v, ignore)),
        _ => {}
    }
}

/// Compares two answers; `None` when they match.
pub fn compare(live: &Answer, candidate: &Answer, ignore: &[String]) -> Option<String> {
    if live.status != candidate.status {
        return Some(format!("status {} vs {}", live.status, candidate.status));
    }
    if live.content_type != candidate.content_type {
        return Some(format!(
            "content-type {:?} vs {:?}",
            live.content_type, candidate.content_type
        ));
    }
    let json = |b: &[u8]| serde_json::from_slice::<Value>(b).ok();
    match (json(&live.body), json(&candidate.body)) {
        (Some(mut a), Some(mut b)) => {
            strip(&mut a, ignore);
            strip(&mut b, ignore);
            (a != b).then(|| "JSON bodies differ".to_string())
        }
        _ => (live.body != candidate.body).then(|| {
            let at = live
                .body
                .iter()
                .zip(candidate.body.iter())
                .take_while(|(x, y)| x == y)
                .count();
            format!("bodies differ at byte {at}")
        }),
    }
}

fn cut(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(SAMPLE_BODY_BYTES)]).into_owned()
}

/// Counters and samples of a function's shadow run.
#[derive(Debug, Default)]
pub struct ShadowState {
    matched: AtomicU64,
    mismatched: AtomicU64,
    errors: AtomicU64,
    skipped: AtomicU64,
    samples: Mutex<VecDeque<Mismatch>>,
}

impl ShadowState {
    /// Records a comparison (or a candidate failure as `Err`).
    pub fn record(
        &self,
        request: String,
        live: &Answer,
        candidate: Result<Answer, String>,
        ignore: &[String],
    ) -> &'static str {
        let (difference, candidate_status, candidate_body, outcome) = match candidate {
            Ok(c) => match compare(live, &c, ignore) {
                None => {
                    self.matched.fetch_add(1, Ordering::Relaxed);
                    return "match";
                }
                Some(d) => (d, Some(c.status), cut(&c.body), "mismatch"),
            },
            Err(e) => (format!("candidate failed: {e}"), None, e, "error"),
        };
        match outcome {
            "mismatch" => &self.mismatched,
            _ => &self.errors,
        }
        .fetch_add(1, Ordering::Relaxed);
        let mut samples = self.samples.lock().unwrap();
        if samples.len() == MAX_SAMPLES {
            samples.pop_front();
        }
        samples.push_back(Mismatch {
            time: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            request,
            difference,
            live_status: live.status,
            live_body: cut(&live.body),
            candidate_status,
            candidate_body,
        });
        outcome
    }

    /// Counts a request not copied because the candidate was busy.
    pub fn skipped(&self) {
        self.skipped.fetch_add(1, Ordering::Relaxed);
    }

    /// The report: counters and samples.
    pub fn report(&self) -> Value {
        serde_json::json!({
            "matched": self.matched.load(Ordering::Relaxed),
            "mismatched": self.mismatched.load(Ordering::Relaxed),
            "errors": self.errors.load(Ordering::Relaxed),
            "skipped": self.skipped.load(Ordering::Relaxed),
            "samples": *self.samples.lock().unwrap(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            status,
            content_type: Some("application/json".into()),
            body: body.to_string().into(),
        }
    }

    #[test]
    fn json_bodies_compare_as_json_with_ignored_fields() {
        let ignore = vec!["at".to_string()];
        assert_eq!(
            compare(
                &answer(200, r#"{"a":1,"b":2}"#),
                &answer(200, r#"{"b":2, "a":1}"#),
                &[]
            ),
            None
        );
        assert_eq!(
            compare(
                &answer(200, r#"{"a":1,"at":5}"#),
                &answer(200, r#"{"a":1,"at":6}"#),
                &ignore
            ),
            None
        );
        assert!(
            compare(
                &answer(200, r#"{"a":1}"#),
                &answer(200, r#"{"a":2}"#),
                &ignore
            )
            .is_some()
        );
        assert!(
            compare(&answer(200, "x"), &answer(500, "x"), &[])
                .unwrap()
                .contains("status")
        );
        assert!(
            compare(&answer(200, "abc"), &answer(200, "abd"), &[])
                .unwrap()
                .contains("byte 2")
        );
    }
}
