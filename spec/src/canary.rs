//! Canary releases: what a canary should do ([`CanarySpec`], with the one
//! validation every canary gets, whether started by hand, by `flint apply`
//! or declared in a manifest) and its persisted progress ([`CanaryState`]).
//!
//! A canary moves an alias step by step from its stable target to the
//! candidate (`steps` percent of traffic, `interval_ms` apart), comparing
//! the candidate's error rate and p99 latency with the stable version's; a
//! breach rolls it back. The gateway drives it.

use crate::alias::AliasTarget;

use serde::{Deserialize, Serialize};

/// Shortest time per step, in milliseconds.
pub const MIN_INTERVAL_MS: u64 = 100;
/// Longest time per step, in milliseconds (one day).
pub const MAX_INTERVAL_MS: u64 = 86_400_000;

/// What a canary should do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanarySpec {
    /// The candidate version.
    pub to: u32,
    /// The alias to move (default [`DEFAULT_RELEASE_ALIAS`](crate::names::DEFAULT_RELEASE_ALIAS)).
    #[serde(default = "crate::names::default_release_alias")]
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
    /// Checks the steps and limits: `steps` increase from above 0 to 100,
    /// `interval_ms` is within [`MIN_INTERVAL_MS`]..=[`MAX_INTERVAL_MS`],
    /// `max_error_rate` within 0..=1 and `max_p99_ms`, when set, a finite
    /// number above 0. The alias name is checked apart
    /// ([`validate_alias_name`](crate::names::validate_alias_name)).
    pub fn validate(&self) -> Result<(), String> {
        if self.steps.is_empty() || self.steps.last() != Some(&100) {
            return Err("`steps` must end at 100".into());
        }
        if self.steps.windows(2).any(|w| w[0] >= w[1]) || self.steps[0] == 0 {
            return Err("`steps` must increase from above 0 to 100".into());
        }
        if !(MIN_INTERVAL_MS..=MAX_INTERVAL_MS).contains(&self.interval_ms) {
            return Err(format!(
                "`interval_ms` must be within {MIN_INTERVAL_MS}..={MAX_INTERVAL_MS}"
            ));
        }
        if !(0.0..=1.0).contains(&self.max_error_rate) {
            return Err("`max_error_rate` must be within 0..=1 (0.01 = 1%)".into());
        }
        if let Some(p99) = self.max_p99_ms
            && !(p99.is_finite() && p99 > 0.0)
        {
            return Err(format!(
                "`max_p99_ms` must be above 0 milliseconds, not {p99}"
            ));
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

/// Where a canary is: running, or how it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CanaryStatus {
    /// Moving through its steps.
    Running,
    /// Passed every step: the alias points at the candidate alone.
    Succeeded,
    /// Breached a limit, was aborted or interrupted: the alias is back on
    /// the stable target.
    RolledBack,
}

impl CanaryStatus {
    /// The stored spelling: `running`, `succeeded` or `rolled_back`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::RolledBack => "rolled_back",
        }
    }
}

/// A canary's progress, persisted in the registry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CanaryState {
    /// What was asked.
    pub spec: CanarySpec,
    /// The alias target before the canary (restored on rollback).
    pub stable: AliasTarget,
    /// Running, succeeded or rolled back.
    pub status: CanaryStatus,
    /// Index of the current (or last) step.
    pub step: usize,
    /// Why it ended, when it did not succeed.
    pub reason: Option<String>,
    /// Analysed steps so far.
    pub reports: Vec<StepReport>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(steps: Vec<u32>) -> CanarySpec {
        CanarySpec {
            to: 2,
            alias: crate::names::DEFAULT_RELEASE_ALIAS.into(),
            steps,
            interval_ms: 1000,
            max_error_rate: 0.01,
            max_p99_ms: None,
        }
    }

    #[test]
    fn steps_must_climb_to_100() {
        assert!(spec(vec![5, 25, 50, 100]).validate().is_ok());
        assert!(spec(vec![100]).validate().is_ok());
        assert!(spec(vec![]).validate().is_err());
        assert!(spec(vec![5, 50]).validate().is_err());
        assert!(spec(vec![50, 25, 100]).validate().is_err());
        assert!(spec(vec![50, 50, 100]).validate().is_err());
        assert!(spec(vec![0, 100]).validate().is_err());
    }

    #[test]
    fn limits_are_checked() {
        let ok = spec(vec![100]);
        for (bad, field) in [
            (
                CanarySpec {
                    interval_ms: 99,
                    ..ok.clone()
                },
                "interval_ms",
            ),
            (
                CanarySpec {
                    interval_ms: MAX_INTERVAL_MS + 1,
                    ..ok.clone()
                },
                "interval_ms",
            ),
            (
                CanarySpec {
                    max_error_rate: 1.5,
                    ..ok.clone()
                },
                "max_error_rate",
            ),
            (
                CanarySpec {
                    max_error_rate: f64::NAN,
                    ..ok.clone()
                },
                "max_error_rate",
            ),
            (
                CanarySpec {
                    max_p99_ms: Some(0.0),
                    ..ok.clone()
                },
                "max_p99_ms",
            ),
            (
                CanarySpec {
                    max_p99_ms: Some(f64::INFINITY),
                    ..ok.clone()
                },
                "max_p99_ms",
            ),
        ] {
            let err = bad.validate().unwrap_err();
            assert!(err.contains(field), "{bad:?}: {err}");
        }
        let with_p99 = CanarySpec {
            max_p99_ms: Some(250.0),
            ..ok
        };
        assert!(with_p99.validate().is_ok());
    }

    #[test]
    fn the_alias_defaults_to_the_release_alias() {
        let spec: CanarySpec = serde_json::from_str(
            r#"{"to":2,"steps":[100],"interval_ms":1000,"max_error_rate":0.01}"#,
        )
        .unwrap();
        assert_eq!(spec.alias, crate::names::DEFAULT_RELEASE_ALIAS);
    }

    #[test]
    fn statuses_keep_their_stored_spelling() {
        for status in [
            CanaryStatus::Running,
            CanaryStatus::Succeeded,
            CanaryStatus::RolledBack,
        ] {
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
            assert_eq!(serde_json::from_str::<CanaryStatus>(&json).unwrap(), status);
        }
        assert_eq!(
            serde_json::from_str::<CanaryStatus>("\"rolled_back\"").unwrap(),
            CanaryStatus::RolledBack
        );
    }
}
