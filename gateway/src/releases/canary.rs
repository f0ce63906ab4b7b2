//! Canary releases with automatic analysis.
//!
//! A canary moves an alias step by step from its stable target to the
//! candidate (`steps` percent of traffic, `interval` apart). During each step
//! it compares the candidate's error rate (5xx answers and failed calls) and
//! p99 latency with the stable version's, once a second: a breach puts the
//! alias back on the stable target at once and records why; passing the
//! last step points the alias at the candidate alone.
//!
//! A server restart during a canary rolls it back (the stable target is
//! restored and the reason recorded): the analysis windows lived in memory,
//! and an unobserved canary must not keep taking traffic.

use super::{AliasTarget, HistoryEntry, Route};
use crate::api::ApiError;
use crate::functions::FunctionEntry;
use crate::state::AppState;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// How often a running step is analysed.
const CHECK_EVERY: Duration = Duration::from_millis(250);

fn default_alias() -> String {
    "prod".into()
}

/// What a canary should do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanarySpec {
    /// The candidate version.
    pub to: u32,
    /// The alias to move (default `prod`).
    #[serde(default = "default_alias")]
    pub alias: String,
    /// Percent of traffic per step, increasing, ending at 100.
    pub steps: Vec<u32>,
    /// Time per step, in milliseconds.
    pub interval_ms: u64,
    /// Largest tolerated error rate of the candidate (0.01 = 1%).
    pub max_error_rate: f64,
    /// Largest tolerated p99 latency of the candidate, in milliseconds.
    #[serde(default)]
    pub max_p99_ms: Option<f64>,
}

impl CanarySpec {
    /// Checks the steps and limits.
    pub fn validate(&self) -> Result<(), String> {
        if self.steps.is_empty() || self.steps.last() != Some(&100) {
            return Err("`steps` must end at 100".into());
        }
        if self.steps.windows(2).any(|w| w[0] >= w[1]) || self.steps[0] == 0 {
            return Err("`steps` must increase from above 0 to 100".into());
        }
        if !(100..=86_400_000).contains(&self.interval_ms) {
            return Err("`interval_ms` must be within 100..=86400000".into());
        }
        if !(0.0..=1.0).contains(&self.max_error_rate) {
            return Err("`max_error_rate` must be within 0..=1 (0.01 = 1%)".into());
        }
        Ok(())
    }
}

/// One analysed step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepReport {
    /// Candidate share in percent.
    pub weight: u32,
    /// Candidate requests, errors, p99 (ms).
    pub canary: (u64, u64, Option<f64>),
    /// Stable requests, errors, p99 (ms).
    pub stable: (u64, u64, Option<f64>),
}

/// A canary's progress, persisted in the registry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CanaryState {
    /// What was asked.
    pub spec: CanarySpec,
    /// The alias target before the canary (restored on rollback).
    pub stable: AliasTarget,
    /// `running`, `succeeded` or `rolled_back`.
    pub status: String,
    /// Index of the current (or last) step.
    pub step: usize,
    /// Why it ended, when it did not succeed.
    pub reason: Option<String>,
    /// Analysed steps so far.
    pub reports: Vec<StepReport>,
}

fn split(stable: u32, canary: u32, weight: u32) -> AliasTarget {
    if weight >= 100 {
        return AliasTarget::version(canary);
    }
    AliasTarget {
        routes: vec![
            Route {
                version: stable,
                weight: 100 - weight,
            },
            Route {
                version: canary,
                weight,
            },
        ],
        sticky: None,
        rules: Vec::new(),
    }
}

/// Why the candidate fails the comparison, if it does.
fn breach(spec: &CanarySpec, entry: &FunctionEntry, stable: u32) -> Option<String> {
    let canary = entry.windows.get(spec.to);
    let base = entry.windows.get(stable);
    if canary.requests > 0
        && canary.error_rate() > spec.max_error_rate
        && canary.error_rate() > base.error_rate()
    {
        return Some(format!(
            "error rate {:.1}% of version {} over the limit {:.1}% (stable version {}: {:.1}%, {} of {} requests failed)",
            canary.error_rate() * 100.0,
            spec.to,
            spec.max_error_rate * 100.0,
            stable,
            base.error_rate() * 100.0,
            canary.errors,
            canary.requests
        ));
    }
    if let (Some(limit), Some(p99)) = (spec.max_p99_ms, canary.p99_ms())
        && p99 > limit
        && base.p99_ms().is_none_or(|b| p99 > b)
    {
        return Some(format!(
            "p99 latency {p99:.1} ms of version {} over the limit {limit} ms",
            spec.to
        ));
    }
    None
}

/// Persists the canary state.
pub fn save(
    state: &AppState,
    function: &str,
    canary: &CanaryState,
    history: Option<&HistoryEntry>,
) -> Result<(), ApiError> {
    let value = serde_json::to_value(canary).map_err(ApiError::internal)?;
    state
        .registry
        .put_release_state(function, "canary", "", Some(&value), history)?;
    Ok(())
}

/// Drives a canary to success or rollback. Runs as a background task.
pub async fn drive(state: Arc<AppState>, entry: Arc<FunctionEntry>, mut canary: CanaryState) {
    let stable = canary.stable.main_version();
    let alias = canary.spec.alias.clone();
    let abort = state.canary_abort(&entry.name);
    while canary.step < canary.spec.steps.len() {
        let weight = canary.spec.steps[canary.step];
        let target = split(stable, canary.spec.to, weight);
        let mut entry_log = HistoryEntry::now("canary", "canary_step");
        entry_log.reason = Some(format!(
            "step {} of {}: {weight}% to version {}",
            canary.step + 1,
            canary.spec.steps.len(),
            canary.spec.to
        ));
        if let Err(e) = super::ops::set_alias(&state, &entry, &alias, Some(target), entry_log) {
            tracing::error!(function = %entry.name, error = %e.message, "canary could not move the alias");
        }
        entry.windows.reset();
        let deadline = tokio::time::Instant::now() + Duration::from_millis(canary.spec.interval_ms);
        let failed = loop {
            tokio::select! {
                () = tokio::time::sleep(CHECK_EVERY) => {}
                () = abort.notified() => break Some("aborted by the user".to_string()),
            }
            if let Some(reason) = breach(&canary.spec, &entry, stable) {
                break Some(reason);
            }
            if tokio::time::Instant::now() >= deadline {
                break None;
            }
        };
        let (c, s) = (entry.windows.get(canary.spec.to), entry.windows.get(stable));
        canary.reports.push(StepReport {
            weight,
            canary: (c.requests, c.errors, c.p99_ms()),
            stable: (s.requests, s.errors, s.p99_ms()),
        });
        if let Some(reason) = failed {
            roll_back(&state, &entry, &mut canary, reason);
            return;
        }
        canary.step += 1;
        let _ = save(&state, &entry.name, &canary, None);
    }
    canary.status = "succeeded".into();
    let mut log = HistoryEntry::now("canary", "canary_succeeded");
    log.alias = Some(alias.clone());
    // From the stable target: a later rollback undoes the whole canary.
    log.from = Some(canary.stable.clone());
    log.to = Some(AliasTarget::version(canary.spec.to));
    log.reason = Some(format!("all {} steps passed", canary.spec.steps.len()));
    let _ = save(&state, &entry.name, &canary, Some(&log));
    tracing::info!(function = %entry.name, version = canary.spec.to, "canary succeeded");
    state.canary_done(&entry.name);
}

/// Puts the alias back on the stable target and records why.
pub fn roll_back(
    state: &AppState,
    entry: &Arc<FunctionEntry>,
    canary: &mut CanaryState,
    reason: String,
) {
    tracing::warn!(function = %entry.name, %reason, "canary rolled back");
    let mut log = HistoryEntry::now("canary", "canary_rolled_back");
    log.reason = Some(reason.clone());
    if let Err(e) = super::ops::set_alias(
        state,
        entry,
        &canary.spec.alias,
        Some(canary.stable.clone()),
        log,
    ) {
        tracing::error!(function = %entry.name, error = %e.message, "canary rollback could not restore the alias");
    }
    canary.status = "rolled_back".into();
    canary.reason = Some(reason);
    let _ = save(state, &entry.name, canary, None);
    state.canary_done(&entry.name);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(steps: Vec<u32>) -> CanarySpec {
        CanarySpec {
            to: 2,
            alias: "prod".into(),
            steps,
            interval_ms: 1000,
            max_error_rate: 0.01,
            max_p99_ms: None,
        }
    }

    #[test]
    fn steps_must_climb_to_100() {
        assert!(spec(vec![5, 25, 50, 100]).validate().is_ok());
        assert!(spec(vec![5, 50]).validate().is_err());
        assert!(spec(vec![50, 25, 100]).validate().is_err());
        assert!(spec(vec![0, 100]).validate().is_err());
        assert_eq!(split(1, 2, 100), AliasTarget::version(2));
        assert_eq!(split(1, 2, 25).routes[1].weight, 25);
    }
}
