//! Release operations shared by the API and the canary driver: every change
//! is persisted with its history entry first, then applied in memory.

use super::canary::{self, CanaryState};
use super::{AliasTarget, HistoryEntry, Releases, shadow::ShadowSpec};
use crate::api::ApiError;
use crate::functions::FunctionEntry;
use crate::state::AppState;
use std::sync::Arc;

/// Sets (`Some`) or removes (`None`) an alias, recording `history`.
pub fn set_alias(
    state: &AppState,
    entry: &FunctionEntry,
    alias: &str,
    target: Option<AliasTarget>,
    mut history: HistoryEntry,
) -> Result<(), ApiError> {
    history.alias = Some(alias.to_string());
    history.from = entry.releases.read().unwrap().aliases.get(alias).cloned();
    history.to = target.clone();
    let value = target
        .as_ref()
        .map(|t| serde_json::to_value(t).expect("alias targets serialize"));
    state.registry.put_release_state(
        &entry.name,
        "alias",
        alias,
        value.as_ref(),
        Some(&history),
    )?;
    mirror_alias(entry, alias, target);
    Ok(())
}

/// Applies an alias change the registry already holds to the live table.
pub fn mirror_alias(entry: &FunctionEntry, alias: &str, target: Option<AliasTarget>) {
    let mut releases = entry.releases.write().unwrap();
    match target {
        Some(t) => {
            releases.aliases.insert(alias.to_string(), t);
        }
        None => {
            releases.aliases.remove(alias);
            if releases.default_alias.as_deref() == Some(alias) {
                releases.default_alias = None;
            }
        }
    }
}

/// Makes `alias` the one plain calls follow (`None`: back to `latest`).
pub fn set_default(
    state: &AppState,
    entry: &FunctionEntry,
    alias: Option<&str>,
) -> Result<(), ApiError> {
    let value = alias.map(|a| serde_json::json!(a));
    state
        .registry
        .put_release_state(&entry.name, "default", "", value.as_ref(), None)?;
    entry.releases.write().unwrap().default_alias = alias.map(String::from);
    Ok(())
}

/// Starts or stops the shadow run.
pub fn set_shadow(
    state: &AppState,
    entry: &FunctionEntry,
    spec: Option<ShadowSpec>,
    history: HistoryEntry,
) -> Result<(), ApiError> {
    let value = spec
        .as_ref()
        .map(|s| serde_json::to_value(s).expect("shadow specs serialize"));
    state
        .registry
        .put_release_state(&entry.name, "shadow", "", value.as_ref(), Some(&history))?;
    entry.releases.write().unwrap().shadow = spec;
    Ok(())
}

/// Starts a canary of `entry` from its alias's `stable` target to
/// `spec.to` (the caller holds the deploy lock and has checked both).
pub fn start_canary(
    state: &Arc<AppState>,
    entry: &Arc<FunctionEntry>,
    spec: canary::CanarySpec,
    stable: AliasTarget,
    actor: &str,
) -> Result<CanaryState, ApiError> {
    let record = CanaryState {
        spec,
        stable,
        status: "running".into(),
        step: 0,
        reason: None,
        reports: Vec::new(),
    };
    let mut log = HistoryEntry::now(actor, "canary_started");
    log.alias = Some(record.spec.alias.clone());
    log.reason = Some(format!(
        "to version {} in steps {:?}",
        record.spec.to, record.spec.steps
    ));
    canary::save(state, &entry.name, &record, Some(&log))?;
    state.canary_abort(&entry.name);
    tokio::spawn(canary::drive(state.clone(), entry.clone(), record.clone()));
    Ok(record)
}

/// Restores aliases, defaults and shadow runs from the registry; a canary
/// that was running when the server stopped is rolled back.
pub fn restore(state: &Arc<AppState>) -> anyhow::Result<()> {
    let mut interrupted = Vec::new();
    for (function, kind, key, value) in state.registry.load_release_state()? {
        let Some(entry) = state.table.get(&function) else {
            continue;
        };
        let mut releases = entry.releases.write().unwrap();
        apply(
            &mut releases,
            &kind,
            key,
            value.clone(),
            &mut interrupted,
            &entry,
        )?;
    }
    for (entry, mut canary) in interrupted {
        canary::roll_back(
            state,
            &entry,
            &mut canary,
            "the server restarted during the canary; rolled back to the stable target".into(),
        );
    }
    Ok(())
}

fn apply(
    releases: &mut Releases,
    kind: &str,
    key: String,
    value: serde_json::Value,
    interrupted: &mut Vec<(Arc<FunctionEntry>, CanaryState)>,
    entry: &Arc<FunctionEntry>,
) -> anyhow::Result<()> {
    match kind {
        "alias" => {
            releases.aliases.insert(key, serde_json::from_value(value)?);
        }
        "default" => releases.default_alias = value.as_str().map(String::from),
        "shadow" => releases.shadow = Some(serde_json::from_value(value)?),
        "canary" => {
            let canary: CanaryState = serde_json::from_value(value)?;
            if canary.status == "running" {
                interrupted.push((entry.clone(), canary));
            }
        }
        other => tracing::warn!(kind = other, "unknown release state ignored"),
    }
    Ok(())
}
