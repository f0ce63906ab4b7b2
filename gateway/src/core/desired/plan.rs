//! Plan: the changes that would make the server match a desired state,
//! found by comparing it with memory (which mirrors the store).
//!
//! Planning validates everything apply will need: names, digests, configs,
//! secret references, triggers, schedules, release policies and routes (conflicts
//! included, against the functions the manifest leaves alone too). A plan
//! with problems is refused whole.

use super::super::functions::FunctionEntry;
use super::super::{Control, CoreError, CoreResult};
use crate::routes::{self, Pattern};
use flint_runtime::{Digest, FunctionConfig};
use flint_spec::TriggerSpec;
use flint_spec::alias::AliasTarget;
use flint_spec::canary::{CanarySpec, CanaryState, CanaryStatus};
use flint_spec::desired::{DesiredFunction, DesiredState, Strategy};
use flint_spec::schedule::ScheduleSpec;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

/// What a planned change does; apply makes them in plan order.
#[derive(Debug, Clone)]
pub enum Op {
    /// Records a new version (creating the function when `create`).
    Deploy {
        /// The component.
        digest: Digest,
        /// The version number it will get.
        version: u32,
        /// Whether the function is new.
        create: bool,
        /// The configuration of a new function.
        config: FunctionConfig,
    },
    /// Replaces the configuration.
    Config(FunctionConfig),
    /// Replaces the route patterns (normalised).
    Routes(Vec<String>),
    /// Sets or removes the queue trigger.
    Trigger(Option<TriggerSpec>),
    /// Removes the schedules of these ids, then adds `set` (the manifest's
    /// schedule) if any.
    Schedule {
        /// The schedule the manifest declares.
        set: Option<ScheduleSpec>,
        /// The ids of the function's schedules now.
        remove: Vec<String>,
    },
    /// Points an alias at one version (blue-green, or a first release).
    Release {
        /// The alias.
        alias: String,
        /// The version.
        version: u32,
        /// Whether plain calls start following the alias.
        set_default: bool,
    },
    /// Starts a canary from the alias's current target.
    Canary {
        /// What the canary does.
        spec: CanarySpec,
        /// The alias's target now.
        stable: AliasTarget,
    },
    /// Deletes the function (`--prune`).
    Delete,
}

impl Op {
    /// The change's name in plan output.
    pub fn action(&self) -> &'static str {
        match self {
            Self::Deploy { create: true, .. } => "create",
            Self::Deploy { .. } => "deploy",
            Self::Config(_) => "update_config",
            Self::Routes(_) => "set_routes",
            Self::Trigger(Some(_)) => "set_trigger",
            Self::Trigger(None) => "remove_trigger",
            Self::Schedule { set: Some(_), .. } => "set_schedule",
            Self::Schedule { set: None, .. } => "remove_schedule",
            Self::Release { .. } => "release",
            Self::Canary { .. } => "start_canary",
            Self::Delete => "delete",
        }
    }
}

/// One change of a plan.
#[derive(Debug, Clone)]
pub struct PlanChange {
    /// The function it changes.
    pub function: String,
    /// What it does, for people.
    pub detail: String,
    /// What it does, for apply.
    pub op: Op,
}

impl Serialize for PlanChange {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        json!({"function": self.function, "action": self.op.action(), "detail": self.detail})
            .serialize(s)
    }
}

/// The changes that would make the server match a desired state.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Plan {
    /// Changes in the order apply makes them.
    pub changes: Vec<PlanChange>,
    /// What apply leaves alone, and why.
    pub notes: Vec<String>,
    /// Digests of components a change needs that the server does not hold
    /// yet (`flint apply` uploads them first).
    pub missing_components: Vec<String>,
}

/// Compares `desired` with the server; the plan, or every problem found
/// (`invalid_desired_state`: nothing is changed).
pub(in crate::core) async fn plan(
    control: &Control,
    desired: &DesiredState,
    prune: bool,
) -> CoreResult<Plan> {
    let state = &control.s;
    let mut plan = Plan::default();
    let mut problems = Vec::new();
    let canaries = control.canaries().await?;
    let current_routes = state.routes.by_function();
    let mut current_schedules: BTreeMap<String, Vec<(String, ScheduleSpec)>> = BTreeMap::new();
    for record in state.store.schedules(None).await? {
        current_schedules
            .entry(record.function)
            .or_default()
            .push((record.id, record.spec));
    }
    let mut all_routes: BTreeMap<String, Vec<String>> = BTreeMap::new();

    for (name, function) in &desired.functions {
        let before = problems.len();
        validate(control, name, function, &mut problems);
        if problems.len() > before {
            continue;
        }
        let digest = Digest::parse(&function.digest).expect("validated");
        let routes = normalise(&function.routes);
        all_routes.insert(name.clone(), routes.clone());
        let mut changes = Vec::new();
        let mut add = |op: Op, detail: String| {
            changes.push(PlanChange {
                function: name.clone(),
                detail,
                op,
            })
        };
        let entry = state.table.get(name);
        let needs_bytes = entry
            .as_ref()
            .is_none_or(|e| !e.versions().iter().any(|v| v.record.digest == digest));
        if needs_bytes && state.blobs.size(digest.clone()).await.is_none() {
            plan.missing_components.push(digest.to_string());
        }
        let Some(entry) = entry else {
            add(
                Op::Deploy {
                    digest: digest.clone(),
                    version: 1,
                    create: true,
                    config: function.config.clone(),
                },
                format!("new function, version 1 ({})", short(&digest)),
            );
            if !routes.is_empty() {
                add(
                    Op::Routes(routes.clone()),
                    format!("routes {}", routes.join(", ")),
                );
            }
            if let Some(trigger) = &function.trigger {
                add(Op::Trigger(Some(trigger.clone())), trigger_detail(trigger));
            }
            if let Some(schedule) = &function.schedule {
                add(
                    Op::Schedule {
                        set: Some(schedule.clone()),
                        remove: Vec::new(),
                    },
                    schedule_detail(schedule),
                );
            }
            if function.release.strategy != Strategy::Immediate {
                let alias = function.release.alias.clone();
                add(
                    Op::Release {
                        alias: alias.clone(),
                        version: 1,
                        set_default: true,
                    },
                    format!("alias `{alias}` -> version 1 (first release)"),
                );
            }
            plan.changes.extend(changes);
            continue;
        };
        let canary = canaries.get(name);
        if let Err(problem) =
            release_changes(&entry, function, &digest, canary, &mut add, &mut plan.notes)
        {
            problems.push(format!("{name}: {problem}"));
        }
        let config = entry.config();
        if *config != function.config {
            add(
                Op::Config(function.config.clone()),
                config_diff(&config, &function.config),
            );
        }
        let current = current_routes.get(name).cloned().unwrap_or_default();
        if current != routes {
            let detail = if routes.is_empty() {
                "no routes".to_string()
            } else {
                format!("routes {}", routes.join(", "))
            };
            add(Op::Routes(routes.clone()), detail);
        }
        let trigger = state.bindings.get(name);
        if trigger != function.trigger {
            match &function.trigger {
                Some(t) => add(Op::Trigger(Some(t.clone())), trigger_detail(t)),
                None => add(
                    Op::Trigger(None),
                    format!(
                        "stop consuming queue `{}`",
                        trigger.map(|t| t.queue).unwrap_or_default()
                    ),
                ),
            }
        }
        let schedules = current_schedules.remove(name).unwrap_or_default();
        let remove: Vec<String> = schedules.iter().map(|(id, _)| id.clone()).collect();
        match &function.schedule {
            Some(wanted) if !matches!(schedules.as_slice(), [(_, spec)] if spec == wanted) => add(
                Op::Schedule {
                    set: Some(wanted.clone()),
                    remove,
                },
                schedule_detail(wanted),
            ),
            None if !remove.is_empty() => add(
                Op::Schedule { set: None, remove },
                format!(
                    "remove {} schedule(s) the manifest does not declare",
                    schedules.len()
                ),
            ),
            _ => {}
        }
        plan.changes.extend(changes);
    }

    for entry in state.table.list() {
        if desired.functions.contains_key(&entry.name) {
            continue;
        }
        if prune {
            plan.changes.push(PlanChange {
                function: entry.name.clone(),
                detail: format!(
                    "not in the manifest: delete it and its {} version(s)",
                    entry.versions().len()
                ),
                op: Op::Delete,
            });
        } else {
            plan.notes.push(format!(
                "`{}` is not in the manifest; kept (apply --prune deletes it)",
                entry.name
            ));
            if let Some(routes) = current_routes.get(&entry.name) {
                all_routes.insert(entry.name.clone(), routes.clone());
            }
        }
    }
    if let Err(conflicts) = routes::check(&all_routes) {
        problems.extend(conflicts);
    }
    plan.missing_components.sort();
    plan.missing_components.dedup();
    if state.config.amqp_url.is_none() && desired.functions.values().any(|f| f.trigger.is_some()) {
        plan.notes.push(
            "this server runs without --amqp-url: queue triggers are stored but not consumed"
                .into(),
        );
    }
    if problems.is_empty() {
        Ok(plan)
    } else {
        Err(CoreError::InvalidDesiredState(format!(
            "nothing was changed:\n  {}",
            problems.join("\n  ")
        )))
    }
}

/// Checks one function's declaration; pushes each problem.
fn validate(control: &Control, name: &str, function: &DesiredFunction, problems: &mut Vec<String>) {
    let mut problem = |message: String| problems.push(format!("{name}: {message}"));
    if let Err(e) = flint_spec::names::check_function_name(name) {
        problem(e);
    }
    if Digest::parse(&function.digest).is_none() {
        problem(format!(
            "invalid digest {:?}: expected sha256:<64 hex digits>",
            function.digest
        ));
    }
    if let Err(e) = function.config.validate() {
        problem(e.to_string());
    }
    if let Err(e) = control.s.secrets.check(&function.config) {
        problem(e);
    }
    if let Some(trigger) = &function.trigger
        && let Err(e) = trigger.validate()
    {
        problem(format!("trigger: {e}"));
    }
    if let Some(schedule) = &function.schedule
        && let Err(e) = schedule.validate()
    {
        problem(format!("schedule: {e}"));
    }
    let release = &function.release;
    if let Err(e) = flint_spec::names::validate_alias_name(&release.alias) {
        problem(format!("release alias: {e}"));
    }
    if release.strategy == Strategy::Canary
        && let Err(e) = canary_spec(function, 0).validate()
    {
        problem(format!("canary: {e}"));
    }
}

fn canary_spec(function: &DesiredFunction, to: u32) -> CanarySpec {
    function.release.canary.spec(to, &function.release.alias)
}

/// Patterns as the route table writes them, sorted; invalid ones are kept
/// as written so that the route check reports them.
fn normalise(patterns: &[String]) -> Vec<String> {
    let mut out: Vec<String> = patterns
        .iter()
        .map(|p| Pattern::parse(p).map_or_else(|_| p.clone(), |p| p.to_string()))
        .collect();
    out.sort();
    out.dedup();
    out
}

fn short(digest: &Digest) -> String {
    format!("sha256:{}", &digest.hex()[..12])
}

fn trigger_detail(trigger: &TriggerSpec) -> String {
    format!(
        "consume queue `{}` (concurrency {}, {} retries)",
        trigger.queue, trigger.concurrency, trigger.max_retries
    )
}

fn schedule_detail(schedule: &ScheduleSpec) -> String {
    format!(
        "schedule `{}` ({}): POST {}, catch-up {}",
        schedule.cron,
        schedule.tz,
        schedule.path,
        schedule.catch_up.as_str()
    )
}

/// The fields that differ, by name; `env` lists keys only, never values.
fn config_diff(from: &FunctionConfig, to: &FunctionConfig) -> String {
    let (Value::Object(a), Value::Object(b)) = (json!(from), json!(to)) else {
        return "config".into();
    };
    let mut parts = Vec::new();
    for (field, new) in &b {
        let old = &a[field];
        if old == new {
            continue;
        }
        if field == "env" {
            for key in from.env.keys().chain(to.env.keys()) {
                match (from.env.get(key), to.env.get(key)) {
                    (None, Some(_)) => parts.push(format!("env +{key}")),
                    (Some(_), None) => parts.push(format!("env -{key}")),
                    (Some(x), Some(y)) if x != y && !parts.contains(&format!("env ~{key}")) => {
                        parts.push(format!("env ~{key}"))
                    }
                    _ => {}
                }
            }
            parts.dedup();
        } else {
            parts.push(format!("{field} {old} -> {new}"));
        }
    }
    parts.join(", ")
}

/// The deploy and release changes that put `digest` in front of callers
/// under the function's release policy.
fn release_changes(
    entry: &Arc<FunctionEntry>,
    function: &DesiredFunction,
    digest: &Digest,
    canary: Option<&CanaryState>,
    add: &mut dyn FnMut(Op, String),
    notes: &mut Vec<String>,
) -> Result<(), String> {
    let name = &entry.name;
    let latest = entry.latest().map_or(0, |v| v.record.version);
    let deploy = |add: &mut dyn FnMut(Op, String)| {
        add(
            Op::Deploy {
                digest: digest.clone(),
                version: latest + 1,
                create: false,
                config: function.config.clone(),
            },
            format!("new version {} ({})", latest + 1, short(digest)),
        );
        latest + 1
    };
    let strategy = function.release.strategy;
    if strategy == Strategy::Immediate {
        if entry.latest().is_none_or(|v| v.record.digest != *digest) {
            deploy(add);
        }
        return Ok(());
    }
    let existing = entry
        .versions()
        .iter()
        .rev()
        .find(|v| v.record.digest == *digest)
        .map(|v| v.record.version);
    let alias = &function.release.alias;
    let (current, default_alias) = {
        let releases = entry.releases.read().unwrap();
        (
            releases.aliases.get(alias).cloned(),
            releases.default_alias.clone(),
        )
    };
    let running = canary.filter(|c| c.status == CanaryStatus::Running);
    if let (Some(version), Some(current)) = (existing, &current)
        && *current == AliasTarget::version(version)
    {
        return Ok(());
    }
    if let Some(running) = running {
        if existing == Some(running.spec.to) {
            notes.push(format!(
                "`{name}`: canary to version {} is in progress (step {} of {})",
                running.spec.to,
                running.step + 1,
                running.spec.steps.len()
            ));
            return Ok(());
        }
        return Err(format!(
            "a canary to version {} is running; wait for it or stop it with `flint canary abort {name}`",
            running.spec.to
        ));
    }
    if strategy == Strategy::Canary
        && let Some(failed) = canary.filter(|c| c.status == CanaryStatus::RolledBack)
        && existing == Some(failed.spec.to)
    {
        notes.push(format!(
            "`{name}`: version {} was rolled back by its canary ({}); apply does not retry it - change the component to try again",
            failed.spec.to,
            failed.reason.as_deref().unwrap_or("no reason recorded")
        ));
        return Ok(());
    }
    let version = match existing {
        Some(version) => version,
        None => deploy(add),
    };
    match (strategy, current) {
        (Strategy::Canary, Some(stable)) => {
            let spec = canary_spec(function, version);
            let detail = format!(
                "canary on alias `{alias}` to version {version} in steps {:?}",
                spec.steps
            );
            add(Op::Canary { spec, stable }, detail);
        }
        (_, current) => {
            let detail = match &current {
                Some(c) => format!(
                    "alias `{alias}`: version {} -> version {version}",
                    c.main_version()
                ),
                None => format!("alias `{alias}` -> version {version} (first release)"),
            };
            add(
                Op::Release {
                    alias: alias.clone(),
                    version,
                    set_default: default_alias.is_none(),
                },
                detail,
            );
        }
    }
    Ok(())
}
