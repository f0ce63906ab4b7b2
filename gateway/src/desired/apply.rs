//! Apply: makes the changes of a fresh plan. Everything is validated and
//! every new version's component is loaded first; then the registry takes
//! all the changes in one transaction; then the live table, triggers,
//! routes and aliases follow, and canaries start. A plan with problems, a
//! missing component or a failed load changes nothing.

use super::DesiredState;
use super::plan::{Op, Plan, plan};
use crate::api::ApiError;
use crate::registry::{Change, Outcome};
use crate::releases::{AliasTarget, HistoryEntry, ops};
use crate::state::AppState;
use http::StatusCode;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

/// The plan, or why it cannot be made: every problem at once.
pub fn checked_plan(
    state: &AppState,
    desired: &DesiredState,
    prune: bool,
) -> Result<Plan, ApiError> {
    plan(state, desired, prune).map_err(|problems| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_desired_state",
            format!("nothing was changed:\n  {}", problems.join("\n  ")),
        )
    })
}

/// Plans and applies `desired`; returns what was done (no changes when the
/// server already matches).
pub async fn apply(
    state: &Arc<AppState>,
    desired: &DesiredState,
    prune: bool,
    actor: &str,
) -> Result<Plan, ApiError> {
    let _deploying = state.deploy_lock.lock().await;
    let plan = checked_plan(state, desired, prune)?;
    if !plan.missing_components.is_empty() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "component_missing",
            format!(
                "nothing was changed: the server does not hold {}; upload them with PUT /v1/components (flint apply does)",
                plan.missing_components.join(", ")
            ),
        ));
    }
    if plan.changes.is_empty() {
        return Ok(plan);
    }

    // Load every new version's component before anything is recorded.
    let mut components = BTreeMap::new();
    for change in &plan.changes {
        if let Op::Deploy { digest, .. } = &change.op
            && !components.contains_key(digest)
        {
            let loaded = state.table.load_component(digest).await.map_err(|e| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_component",
                    format!("nothing was changed: {}: {e:#}", change.function),
                )
            })?;
            components.insert(digest.clone(), loaded);
        }
    }

    let releases: Vec<Option<ReleaseRows>> = plan
        .changes
        .iter()
        .map(|change| match &change.op {
            Op::Release {
                alias,
                version,
                set_default,
            } => Some(ReleaseRows::new(
                state,
                &change.function,
                alias,
                *version,
                *set_default,
                actor,
            )),
            _ => None,
        })
        .collect();
    let mut writes = Vec::new();
    for (i, change) in plan.changes.iter().enumerate() {
        let name = change.function.as_str();
        match &change.op {
            Op::Deploy { digest, config, .. } => writes.push(Change::AddVersion {
                name,
                digest,
                size_bytes: state.blobs.size(digest).unwrap_or(0),
                compile_ms: 0.0,
                default_config: config,
            }),
            Op::Config(config) => writes.push(Change::SetConfig { name, config }),
            Op::Routes(patterns) => writes.push(Change::SetRoutes {
                function: name,
                patterns,
            }),
            Op::Trigger(spec) => writes.push(Change::SetTrigger {
                function: name,
                spec: spec.as_ref(),
            }),
            Op::Release { alias, .. } => {
                let rows = releases[i].as_ref().expect("rows of every release");
                writes.push(Change::ReleaseState {
                    function: name,
                    kind: "alias",
                    key: alias,
                    value: Some(&rows.target),
                    history: Some(&rows.history),
                });
                if let Some(default) = &rows.default {
                    writes.push(Change::ReleaseState {
                        function: name,
                        kind: "default",
                        key: "",
                        value: Some(default),
                        history: None,
                    });
                }
            }
            Op::Canary { .. } => {}
            Op::Delete => writes.push(Change::DeleteFunction { name }),
        }
    }
    let outcomes = state.registry.commit(&writes)?;

    // The registry holds the new state; the live table follows it.
    let mut versions = outcomes.into_iter().filter_map(|o| match o {
        Outcome::Version(added) => Some(added),
        Outcome::Applied(_) => None,
    });
    let now = SystemTime::now();
    for change in &plan.changes {
        let name = change.function.as_str();
        match &change.op {
            Op::Deploy {
                digest,
                version,
                config,
                ..
            } => {
                let added = versions.next().expect("one outcome per deploy");
                if added.record.version != *version {
                    tracing::error!(
                        function = name,
                        planned = version,
                        got = added.record.version,
                        "version number differs from the plan"
                    );
                }
                let (component, source) = components[digest].clone();
                state
                    .table
                    .install(name, config, added.record, component, source)
                    .map_err(ApiError::internal)?;
            }
            Op::Config(config) => {
                if let Some(entry) = state.table.get(name) {
                    state
                        .table
                        .set_config(&entry, config.clone(), now)
                        .map_err(ApiError::internal)?;
                }
            }
            Op::Routes(_) => {}
            Op::Trigger(spec) => state.triggers.set(name, spec.clone()),
            Op::Release {
                alias,
                version,
                set_default,
            } => {
                if let Some(entry) = state.table.get(name) {
                    ops::mirror_alias(&entry, alias, Some(AliasTarget::version(*version)));
                    if *set_default {
                        entry.releases.write().unwrap().default_alias = Some(alias.clone());
                    }
                }
            }
            Op::Canary { spec, stable } => {
                if let Some(entry) = state.table.get(name) {
                    ops::start_canary(state, &entry, spec.clone(), stable.clone(), actor)?;
                }
            }
            Op::Delete => state.forget_function(name)?,
        }
        tracing::info!(function = name, action = change.op.action(), detail = %change.detail, "applied");
    }
    state.reload_routes()?;
    Ok(plan)
}

/// The registry rows of one release: the alias's new target, the default
/// alias when it changes, and the history entry.
struct ReleaseRows {
    target: serde_json::Value,
    default: Option<serde_json::Value>,
    history: HistoryEntry,
}

impl ReleaseRows {
    fn new(
        state: &AppState,
        function: &str,
        alias: &str,
        version: u32,
        set_default: bool,
        actor: &str,
    ) -> Self {
        let target = AliasTarget::version(version);
        let mut history = HistoryEntry::now(actor, "release");
        history.alias = Some(alias.to_string());
        history.from = state
            .table
            .get(function)
            .and_then(|e| e.releases.read().unwrap().aliases.get(alias).cloned());
        history.to = Some(target.clone());
        history.reason = Some("flint apply".into());
        Self {
            target: serde_json::json!(target),
            default: set_default.then(|| serde_json::json!(alias)),
            history,
        }
    }
}
