//! Apply: makes the changes of a fresh plan, in phases.
//!
//! 1. validate: plan again under the write lock; a plan with problems or a
//!    missing component changes nothing;
//! 2. load: every new version's component is loaded (mapped or compiled);
//!    a failed load changes nothing;
//! 3. build writes: the store rows of every change;
//! 4. commit and mirror: the store takes all of them in one transaction,
//!    then memory follows ([`Control::write`]);
//! 5. canaries start.

use super::plan::{Op, Plan, PlanChange, plan};
use crate::core::sync::Components;
use crate::core::{Control, CoreError, CoreResult};
use crate::store::{Change, ReleaseChange};
use flint_spec::FunctionKind;
use flint_spec::alias::AliasTarget;
use flint_spec::desired::DesiredState;
use flint_spec::history::HistoryEntry;

/// Phase 1: the plan, checked for everything apply needs.
async fn validate(control: &Control, desired: &DesiredState, prune: bool) -> CoreResult<Plan> {
    let plan = plan(control, desired, prune).await?;
    if !plan.missing_components.is_empty() {
        return Err(CoreError::ComponentMissing(format!(
            "nothing was changed: the server does not hold {}; upload them with PUT /v1/components (flint apply does)",
            plan.missing_components.join(", ")
        )));
    }
    Ok(plan)
}

/// Phase 2: the component of every new version, loaded before anything is
/// recorded.
async fn load(control: &Control, plan: &Plan) -> CoreResult<Components> {
    let mut components = Components::new();
    for change in &plan.changes {
        if let Op::Deploy { digest, .. } = &change.op
            && !components.contains_key(digest)
        {
            let loaded = control.s.table.load_component(digest).await.map_err(|e| {
                CoreError::InvalidComponent(format!(
                    "nothing was changed: {}: {e:#}",
                    change.function
                ))
            })?;
            components.insert(digest.clone(), loaded);
        }
    }
    Ok(components)
}

/// Phase 3: the store rows of every change, in plan order.
async fn build_writes(
    control: &Control,
    plan: &Plan,
    components: &Components,
    actor: &str,
) -> Vec<Change> {
    let mut writes = Vec::new();
    for change in &plan.changes {
        let function = change.function.clone();
        match &change.op {
            Op::Deploy {
                digest,
                version,
                config,
                ..
            } => writes.push(Change::AddVersion {
                name: function,
                digest: digest.clone(),
                size_bytes: control.s.blobs.size(digest.clone()).await.unwrap_or(0),
                compile_ms: 0.0,
                kind: components
                    .get(digest)
                    .map_or(FunctionKind::Http, |(program, _)| program.kind()),
                default_config: Box::new(config.clone()),
                expected: Some(*version),
            }),
            Op::Config(config) => writes.push(Change::SetConfig {
                name: function,
                config: Box::new(config.clone()),
            }),
            Op::Routes(patterns) => writes.push(Change::SetRoutes {
                function,
                patterns: patterns.clone(),
            }),
            Op::Trigger(spec) => writes.push(Change::SetTrigger {
                function,
                spec: spec.clone(),
            }),
            Op::Schedule { set, remove } => {
                for id in remove {
                    writes.push(Change::RemoveSchedule {
                        function: function.clone(),
                        id: id.clone(),
                    });
                }
                if let Some(spec) = set {
                    let record = control.schedule_record(&function, spec.clone());
                    writes.push(Change::AddSchedule(Box::new(record)));
                }
            }
            Op::Release {
                alias,
                version,
                set_default,
            } => {
                writes.push(release_row(control, change, alias, *version, actor));
                if *set_default {
                    writes.push(Change::release(
                        &function,
                        ReleaseChange::SetDefault(Some(alias.clone())),
                        None,
                    ));
                }
            }
            Op::Canary { .. } => {}
            Op::Delete => writes.push(Change::DeleteFunction { name: function }),
        }
    }
    writes
}

/// The alias row of a release, with its history entry.
fn release_row(
    control: &Control,
    change: &PlanChange,
    alias: &str,
    version: u32,
    actor: &str,
) -> Change {
    let target = AliasTarget::version(version);
    let mut history = HistoryEntry::now(actor, "release");
    history.alias = Some(alias.to_string());
    history.from = control
        .s
        .table
        .get(&change.function)
        .and_then(|e| e.releases.read().unwrap().aliases.get(alias).cloned());
    history.to = Some(target.clone());
    history.reason = Some("flint apply".into());
    Change::release(
        &change.function,
        ReleaseChange::SetAlias(alias.to_string(), target),
        Some(history),
    )
}

impl Control {
    /// What would make the server match `desired`; changes nothing.
    pub async fn plan(&self, desired: &DesiredState, prune: bool) -> CoreResult<Plan> {
        plan(self, desired, prune).await
    }

    /// Plans and applies `desired`; returns what was done (no changes when
    /// the server already matches).
    pub async fn apply(
        &self,
        desired: &DesiredState,
        prune: bool,
        actor: &str,
    ) -> CoreResult<Plan> {
        let writing = self.s.writes.lock().await;
        let plan = validate(self, desired, prune).await?;
        if plan.changes.is_empty() {
            return Ok(plan);
        }
        let components = load(self, &plan).await?;
        let writes = build_writes(self, &plan, &components, actor).await;
        self.write(writes, &components).await?;
        for change in &plan.changes {
            if let Op::Canary { spec, stable } = &change.op {
                self.begin_canary(&change.function, spec.clone(), stable.clone(), actor)
                    .await?;
            }
            tracing::info!(function = %change.function, action = change.op.action(), detail = %change.detail, "applied");
        }
        drop(writing);
        if plan
            .changes
            .iter()
            .any(|c| matches!(c.op, Op::Schedule { .. }))
        {
            self.s.schedules_changed.notify_one();
        }
        for change in &plan.changes {
            if let Op::Trigger(Some(spec)) = &change.op {
                self.await_consuming(&change.function, spec).await;
            }
        }
        Ok(plan)
    }
}
