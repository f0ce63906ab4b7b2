//! Releases: aliases and weighted splits, blue-green switches, rollback,
//! canaries with automatic analysis, shadow runs, and the release history.
//!
//! Deploying makes a version exist; releasing points callers at it. Each
//! function has aliases (plus the implicit `latest`) and a default alias
//! that `/fn/{name}/...` follows (`latest` until a release sets one). A
//! request resolves its alias to a version once, at its start, so a switch
//! never moves a call in flight.

pub mod alias;
pub mod canary;
pub mod ops;
pub mod shadow;
pub mod window;

pub use alias::{AliasTarget, LATEST, Route, Rule, Sticky, validate_alias_name};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The release state of one function (mirrored from the registry).
#[derive(Debug, Clone, Default)]
pub struct Releases {
    /// Named aliases (never `latest`).
    pub aliases: BTreeMap<String, AliasTarget>,
    /// The alias `/fn/{name}/...` follows; `None` means `latest`.
    pub default_alias: Option<String>,
    /// The shadow run, if one is on.
    pub shadow: Option<shadow::ShadowSpec>,
}

impl Releases {
    /// The alias plain calls follow.
    pub fn default_alias(&self) -> &str {
        self.default_alias.as_deref().unwrap_or(LATEST)
    }
}

/// One entry of a function's release history.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// Who asked: the `x-flint-actor` header of the API call, else `api`
    /// (or `canary` / `server` for automatic changes).
    pub actor: String,
    /// `alias_set`, `alias_removed`, `release`, `rollback`, `canary_started`,
    /// `canary_step`, `canary_succeeded`, `canary_rolled_back`, `shadow_started`,
    /// `shadow_stopped`.
    pub action: String,
    /// The alias changed, if any.
    pub alias: Option<String>,
    /// Its target before.
    pub from: Option<AliasTarget>,
    /// Its target after.
    pub to: Option<AliasTarget>,
    /// Why (user-given, or the analysis that decided).
    pub reason: Option<String>,
}

impl HistoryEntry {
    /// An entry stamped now.
    pub fn now(actor: &str, action: &str) -> Self {
        let at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Self {
            at_ms,
            actor: actor.into(),
            action: action.into(),
            alias: None,
            from: None,
            to: None,
            reason: None,
        }
    }
}
