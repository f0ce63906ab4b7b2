//! Flint's declarative types: what a user declares about a function, and
//! the rules that decide whether a declaration is valid.
//!
//! Every value here is plain serde data, free of wasmtime, hyper, lapin,
//! tokio and SQLite, so that the runtime, the gateway and the CLI share one
//! definition of each type, each default and each validation rule:
//!
//! - [`config`]: a function's limits and sandbox ([`FunctionConfig`],
//!   [`ConfigPatch`]) with every default and maximum.
//! - [`digest`]: the content digest of a component ([`Digest`]).
//! - [`host`]: entries of `allowed_outbound_hosts` ([`HostPattern`]).
//! - [`kind`]: what a version's Wasm is ([`FunctionKind`]): a `wasi:http`
//!   component or a WAGI command module.
//! - [`names`]: the naming rules of functions and aliases, `latest` and the
//!   default release alias.
//! - [`alias`], [`canary`], [`shadow`], [`history`]: the release types: alias
//!   targets and how a request picks a version through one, canary and shadow
//!   specs, the release history.
//! - [`trigger`]: a queue trigger binding ([`TriggerSpec`]).
//! - [`schedule`]: a cron schedule ([`ScheduleSpec`]) and its ticks.
//! - [`desired`]: the desired state of one environment ([`DesiredState`]).
//! - [`manifest`]: the manifest, `flint.toml`, its environments and how it
//!   becomes a [`DesiredState`].
//!
//! What acts on these types (instance pools, the HTTP server, the registry,
//! the canary driver, queue consumers) lives in `flint-runtime` and
//! `flint-gateway`.

pub mod alias;
pub mod canary;
pub mod config;
pub mod desired;
pub mod digest;
pub mod history;
pub mod host;
pub mod kind;
pub mod manifest;
pub mod names;
pub mod schedule;
pub mod shadow;
pub mod token;
pub mod trigger;

pub use alias::{AliasTarget, Route, Rule, Sticky};
pub use canary::{CanarySpec, CanaryState, CanaryStatus, StepReport};
pub use config::*;
pub use desired::{CanaryPolicy, DesiredFunction, DesiredState, ReleasePolicy, Strategy};
pub use digest::Digest;
pub use history::HistoryEntry;
pub use host::HostPattern;
pub use kind::FunctionKind;
pub use names::{
    DEFAULT_RELEASE_ALIAS, LATEST, MAX_NAME_LEN, check_function_name, is_valid_name,
    validate_alias_name,
};
pub use schedule::{CatchUp, ScheduleSpec};
pub use shadow::ShadowSpec;
pub use token::{Glob, Scope, TokenSpec};
pub use trigger::TriggerSpec;
