//! Desired state: what a manifest asks the server to run.
//!
//! A [`DesiredState`] is the manifest of one environment after overlays,
//! with every component reduced to its digest: the same bytes in every
//! environment, only configuration varying. The CLI (`flint plan`, `flint
//! apply`) sends it over the API; the gateway's `desired` module plans and
//! applies it, and `flint serve --manifest` applies it from inside the
//! server and heals drift.

use crate::canary::CanarySpec;
use crate::config::FunctionConfig;

use crate::schedule::ScheduleSpec;
use crate::trigger::TriggerSpec;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The state a manifest declares for one environment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DesiredState {
    /// Functions by name.
    #[serde(default)]
    pub functions: BTreeMap<String, DesiredFunction>,
}

/// One function as declared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DesiredFunction {
    /// Digest (`sha256:<hex>`) of the component the function should run.
    pub digest: String,
    /// Its whole configuration; `env` values may be `secret:NAME` references.
    #[serde(default)]
    pub config: FunctionConfig,
    /// Route patterns it serves besides `/fn/NAME` (`/orders`, `/orders/...`).
    #[serde(default)]
    pub routes: Vec<String>,
    /// Its queue trigger, if any.
    #[serde(default)]
    pub trigger: Option<TriggerSpec>,
    /// Its cron schedule, if any: apply makes it the function's only
    /// schedule (none declared: apply removes the function's schedules).
    #[serde(default)]
    pub schedule: Option<ScheduleSpec>,
    /// How a new component reaches callers.
    #[serde(default)]
    pub release: ReleasePolicy,
}

/// How apply brings a new version of a function to its callers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Plain calls follow `latest`: a new version serves at once.
    #[default]
    Immediate,
    /// The release alias switches to the new version atomically.
    BlueGreen,
    /// The release alias moves to the new version step by step, with
    /// automatic rollback (a first version is released directly).
    Canary,
}

impl Strategy {
    /// The manifest spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Immediate => "immediate",
            Self::BlueGreen => "blue-green",
            Self::Canary => "canary",
        }
    }
}

/// A function's release policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleasePolicy {
    /// Immediate, blue-green or canary.
    #[serde(default)]
    pub strategy: Strategy,
    /// The alias releases move (blue-green and canary).
    #[serde(default = "crate::names::default_release_alias")]
    pub alias: String,
    /// Canary steps and thresholds (canary only).
    #[serde(default)]
    pub canary: CanaryPolicy,
}

impl Default for ReleasePolicy {
    fn default() -> Self {
        Self {
            strategy: Strategy::default(),
            alias: crate::names::default_release_alias(),
            canary: CanaryPolicy::default(),
        }
    }
}

fn default_steps() -> Vec<u32> {
    vec![10, 50, 100]
}
fn default_interval_ms() -> u64 {
    30_000
}
fn default_max_error_rate() -> f64 {
    0.01
}

/// Steps and thresholds of canaries started by apply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanaryPolicy {
    /// Percent of traffic per step, increasing, ending at 100.
    #[serde(default = "default_steps")]
    pub steps: Vec<u32>,
    /// Time per step, in milliseconds.
    #[serde(default = "default_interval_ms")]
    pub interval_ms: u64,
    /// Largest tolerated error rate of the candidate (0.01 = 1%).
    #[serde(default = "default_max_error_rate")]
    pub max_error_rate: f64,
    /// Largest tolerated p99 latency of the candidate, in milliseconds.
    #[serde(default)]
    pub max_p99_ms: Option<f64>,
}

impl CanaryPolicy {
    /// The canary this policy starts: to version `to`, moving `alias`. The
    /// one conversion, so that a policy is validated exactly as a canary
    /// started by hand ([`CanarySpec::validate`]).
    pub fn spec(&self, to: u32, alias: &str) -> CanarySpec {
        CanarySpec {
            to,
            alias: alias.to_owned(),
            steps: self.steps.clone(),
            interval_ms: self.interval_ms,
            max_error_rate: self.max_error_rate,
            max_p99_ms: self.max_p99_ms,
        }
    }
}

impl Default for CanaryPolicy {
    fn default() -> Self {
        Self {
            steps: default_steps(),
            interval_ms: default_interval_ms(),
            max_error_rate: default_max_error_rate(),
            max_p99_ms: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_immediate_on_the_release_alias() {
        let function: DesiredFunction = serde_json::from_str(r#"{"digest":"sha256:00"}"#).unwrap();
        assert_eq!(function.release, ReleasePolicy::default());
        assert_eq!(function.release.strategy, Strategy::Immediate);
        assert_eq!(function.release.alias, crate::names::DEFAULT_RELEASE_ALIAS);
        assert_eq!(function.config, FunctionConfig::default());
    }

    #[test]
    fn a_canary_policy_becomes_a_valid_spec() {
        let spec = CanaryPolicy::default().spec(3, "live");
        assert_eq!((spec.to, spec.alias.as_str()), (3, "live"));
        assert_eq!(spec.steps, [10, 50, 100]);
        spec.validate().unwrap();
        let bad = CanaryPolicy {
            max_p99_ms: Some(-1.0),
            ..CanaryPolicy::default()
        };
        assert!(
            bad.spec(3, "live")
                .validate()
                .unwrap_err()
                .contains("max_p99_ms")
        );
    }
}
