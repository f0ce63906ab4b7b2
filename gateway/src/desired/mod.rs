//! Desired state: what a manifest asks the server to run, and the engine
//! that makes the server match it.
//!
//! A [`DesiredState`] is the manifest of one environment after overlays,
//! with every component reduced to its digest: the same bytes in every
//! environment, only configuration varying. [`plan::plan`] compares it with
//! the registry and the live table and lists the changes; [`apply::apply`]
//! validates all of them first and then makes them, the registry part in
//! one transaction. The CLI (`flint plan`, `flint apply`) sends a desired
//! state over the API; `flint serve --manifest` applies it from inside the
//! server and heals drift.

pub mod apply;
pub mod plan;
pub mod reconcile;

use crate::triggers::TriggerSpec;
use flint_runtime::FunctionConfig;
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

/// Default alias a release moves.
pub const DEFAULT_RELEASE_ALIAS: &str = "prod";

fn default_release_alias() -> String {
    DEFAULT_RELEASE_ALIAS.into()
}

/// A function's release policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleasePolicy {
    /// Immediate, blue-green or canary.
    #[serde(default)]
    pub strategy: Strategy,
    /// The alias releases move (blue-green and canary).
    #[serde(default = "default_release_alias")]
    pub alias: String,
    /// Canary steps and thresholds (canary only).
    #[serde(default)]
    pub canary: CanaryPolicy,
}

impl Default for ReleasePolicy {
    fn default() -> Self {
        Self {
            strategy: Strategy::default(),
            alias: default_release_alias(),
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
