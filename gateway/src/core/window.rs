//! Per-version outcome windows: requests, errors and latencies since the
//! window was last reset, for canary analysis.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Latency samples kept per version and window (older ones are replaced).
const MAX_SAMPLES: usize = 10_000;

/// What one version did in the current window.
#[derive(Debug, Clone, Default)]
pub struct WindowStats {
    /// Requests finished.
    pub requests: u64,
    /// Of which errors (5xx answers or failed invocations).
    pub errors: u64,
    latencies_us: Vec<u64>,
}

impl WindowStats {
    /// Errors over requests (0 without requests).
    pub fn error_rate(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.errors as f64 / self.requests as f64
        }
    }

    /// The 99th percentile latency in milliseconds, if any request finished.
    pub fn p99_ms(&self) -> Option<f64> {
        if self.latencies_us.is_empty() {
            return None;
        }
        let mut sorted = self.latencies_us.clone();
        sorted.sort_unstable();
        let index = ((sorted.len() as f64) * 0.99).ceil() as usize;
        Some(sorted[index.saturating_sub(1).min(sorted.len() - 1)] as f64 / 1000.0)
    }
}

/// The windows of one function's versions.
#[derive(Debug, Default)]
pub struct Windows(Mutex<HashMap<u32, WindowStats>>);

impl Windows {
    /// Records one finished request of `version`.
    pub fn record(&self, version: u32, error: bool, latency: Duration) {
        let mut map = self.0.lock().unwrap();
        let w = map.entry(version).or_default();
        w.requests += 1;
        w.errors += u64::from(error);
        let us = latency.as_micros() as u64;
        if w.latencies_us.len() < MAX_SAMPLES {
            w.latencies_us.push(us);
        } else {
            let slot = (w.requests as usize) % MAX_SAMPLES;
            w.latencies_us[slot] = us;
        }
    }

    /// The window of `version`.
    pub fn get(&self, version: u32) -> WindowStats {
        self.0
            .lock()
            .unwrap()
            .get(&version)
            .cloned()
            .unwrap_or_default()
    }

    /// Starts new windows for every version.
    pub fn reset(&self) {
        self.0.lock().unwrap().clear();
    }
}
