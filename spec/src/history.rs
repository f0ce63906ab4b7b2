//! The release history: one entry per change of a function's aliases,
//! canaries and shadow runs.

use crate::alias::AliasTarget;
use serde::{Deserialize, Serialize};

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
