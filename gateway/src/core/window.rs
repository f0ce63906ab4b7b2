//! Per-version outcome counters for canary analysis: requests, errors and
//! a latency histogram, counted since the process started.
//!
//! They only grow, so a window is the difference of two readings, and the
//! counters of several nodes add up: the leader of a cluster judges a
//! canary by the sum of what every node published.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Histogram buckets. Bucket `i` counts latencies up to
/// `FIRST_BOUND_US * GROWTH^i`; the last one counts everything above.
pub const BUCKETS: usize = 160;
const FIRST_BOUND_US: f64 = 10.0;
/// Each bucket's bound is 10% above the previous one's: a p99 read from
/// the histogram is at most 10% above the true one. 160 buckets reach
/// about 40 s.
const GROWTH: f64 = 1.1;

fn bucket(latency: Duration) -> usize {
    let us = latency.as_secs_f64() * 1e6;
    if us <= FIRST_BOUND_US {
        return 0;
    }
    (((us / FIRST_BOUND_US).ln() / GROWTH.ln()).ceil() as usize).min(BUCKETS - 1)
}

fn bound_ms(bucket: usize) -> f64 {
    FIRST_BOUND_US * GROWTH.powi(bucket as i32) / 1000.0
}

/// What one version did: counts that only grow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Totals {
    /// Requests finished.
    pub requests: u64,
    /// Of which errors (5xx answers or failed invocations).
    pub errors: u64,
    /// Latency histogram, [`BUCKETS`] counts.
    pub buckets: Vec<u64>,
}

impl Default for Totals {
    fn default() -> Self {
        Self {
            requests: 0,
            errors: 0,
            buckets: vec![0; BUCKETS],
        }
    }
}

impl Totals {
    fn record(&mut self, error: bool, latency: Duration) {
        self.requests += 1;
        self.errors += u64::from(error);
        self.buckets[bucket(latency)] += 1;
    }

    /// Adds another node's counts.
    pub fn add(&mut self, other: &Totals) {
        self.requests += other.requests;
        self.errors += other.errors;
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            *mine += theirs;
        }
    }

    /// What happened since `earlier`, a previous reading of the same
    /// counters.
    pub fn since(&self, earlier: &Totals) -> Totals {
        Totals {
            requests: self.requests.saturating_sub(earlier.requests),
            errors: self.errors.saturating_sub(earlier.errors),
            buckets: self
                .buckets
                .iter()
                .zip(&earlier.buckets)
                .map(|(now, then)| now.saturating_sub(*then))
                .collect(),
        }
    }

    /// Errors over requests (0 without requests).
    pub fn error_rate(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.errors as f64 / self.requests as f64
        }
    }

    /// The 99th percentile latency in milliseconds (the bound of its
    /// bucket), if any request finished.
    pub fn p99_ms(&self) -> Option<f64> {
        let total: u64 = self.buckets.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((total as f64) * 0.99).ceil() as u64;
        let mut seen = 0;
        for (i, count) in self.buckets.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(bound_ms(i));
            }
        }
        Some(bound_ms(BUCKETS - 1))
    }
}

/// The counters of one function's versions.
#[derive(Debug, Default)]
pub struct Windows(Mutex<HashMap<u32, Totals>>);

impl Windows {
    /// Records one finished request of `version`.
    pub fn record(&self, version: u32, error: bool, latency: Duration) {
        self.0
            .lock()
            .unwrap()
            .entry(version)
            .or_default()
            .record(error, latency);
    }

    /// The counters of `version`.
    pub fn get(&self, version: u32) -> Totals {
        self.0
            .lock()
            .unwrap()
            .get(&version)
            .cloned()
            .unwrap_or_default()
    }

    /// The counters of every version that has served.
    pub fn all(&self) -> Vec<(u32, Totals)> {
        let map = self.0.lock().unwrap();
        map.iter().map(|(v, t)| (*v, t.clone())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_is_the_difference_of_two_readings_and_nodes_add_up() {
        let windows = Windows::default();
        windows.record(1, false, Duration::from_millis(1));
        let before = windows.get(1);
        for i in 0..100 {
            windows.record(1, i < 5, Duration::from_millis(2));
        }
        windows.record(1, false, Duration::from_millis(200));
        let window = windows.get(1).since(&before);
        assert_eq!((window.requests, window.errors), (101, 5));
        let p99 = window.p99_ms().unwrap();
        assert!((2.0..2.2).contains(&p99), "{p99}");
        let mut sum = window.clone();
        sum.add(&window);
        assert_eq!((sum.requests, sum.errors), (202, 10));
        assert_eq!(sum.p99_ms(), window.p99_ms());
        assert_eq!(Totals::default().p99_ms(), None);
    }

    #[test]
    fn bucket_bounds_are_within_ten_percent_above_the_latency() {
        for us in [5u64, 11, 150, 2_000, 47_000, 1_000_000, 30_000_000] {
            let latency = Duration::from_micros(us);
            let bound = bound_ms(bucket(latency)) * 1000.0;
            assert!(bound >= us as f64 * 0.999, "{us} µs: bound {bound}");
            assert!(
                bound <= (us as f64).max(10.0) * 1.1 + 0.01,
                "{us} µs: bound {bound}"
            );
        }
    }
}
