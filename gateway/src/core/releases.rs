//! Release operations: aliases and weighted splits, blue-green releases,
//! rollback, canaries, shadow runs and the history.
//!
//! Deploying makes a version exist; releasing points callers at it. Every
//! alias write waits until the function's canary ends (the canary owns the
//! alias), and every change is recorded with its history entry in the same
//! transaction.

use super::canary::Fence;
use super::sync::Components;
use super::{Aliases, Control, CoreError, CoreResult};
use crate::store::{Change, ReleaseChange, ReleaseRow};
use flint_spec::LATEST;
use flint_spec::alias::AliasTarget;
use flint_spec::canary::{CanarySpec, CanaryState, CanaryStatus};
use flint_spec::history::HistoryEntry;
use flint_spec::names::validate_alias_name;
use flint_spec::shadow::ShadowSpec;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::Notify;

fn invalid(message: impl Into<String>) -> CoreError {
    CoreError::InvalidRelease(message.into())
}

fn conflict(message: impl Into<String>) -> CoreError {
    CoreError::ReleaseConflict(message.into())
}

impl Control {
    /// One release-state change with its history entry, store then memory.
    pub(super) async fn release_write(
        &self,
        function: &str,
        changes: Vec<(ReleaseChange, Option<HistoryEntry>)>,
    ) -> CoreResult<()> {
        self.fenced_release_write(function, changes, None).await
    }

    /// As [`Control::release_write`], refused by the store unless `fence`'s
    /// epoch still leads and the function's canary still runs (a canary
    /// driver's writes in a cluster).
    pub(super) async fn fenced_release_write(
        &self,
        function: &str,
        changes: Vec<(ReleaseChange, Option<HistoryEntry>)>,
        fence: Fence,
    ) -> CoreResult<()> {
        let fence = fence.map(|epoch| Change::Fence {
            epoch,
            function: function.to_string(),
        });
        let changes = fence
            .into_iter()
            .chain(
                changes
                    .into_iter()
                    .map(|(change, history)| Change::release(function, change, history)),
            )
            .collect();
        self.write(changes, &Components::new()).await.map(drop)
    }

    /// An alias change as history records it: from its current target.
    pub(super) fn alias_change(
        &self,
        function: &str,
        alias: &str,
        target: Option<AliasTarget>,
        mut history: HistoryEntry,
    ) -> CoreResult<(ReleaseChange, Option<HistoryEntry>)> {
        let entry = self.entry(function)?;
        history.alias = Some(alias.to_string());
        history.from = entry.releases.read().unwrap().aliases.get(alias).cloned();
        history.to = target.clone();
        let change = match target {
            Some(target) => ReleaseChange::SetAlias(alias.into(), target),
            None => ReleaseChange::RemoveAlias(alias.into()),
        };
        Ok((change, Some(history)))
    }

    /// Alias changes wait until the function's canary ends: it owns the
    /// alias.
    fn no_canary(&self, name: &str) -> CoreResult<()> {
        if self.canary_running(name) {
            return Err(conflict(format!(
                "a canary of `{name}` is running; wait for it or stop it with `flint canary abort {name}`"
            )));
        }
        Ok(())
    }

    fn check_target(&self, name: &str, target: &AliasTarget) -> CoreResult<()> {
        let entry = self.entry(name)?;
        target
            .validate(|v| entry.version(v).is_some())
            .map_err(invalid)
    }

    /// A function's aliases, `latest` included, and its default alias.
    pub fn aliases(&self, name: &str) -> CoreResult<Aliases> {
        let entry = self.entry(name)?;
        let releases = entry.releases.read().unwrap();
        let mut aliases = releases.aliases.clone();
        if let Some(latest) = entry.latest() {
            aliases.insert(LATEST.into(), AliasTarget::version(latest.record.version));
        }
        Ok(Aliases {
            default: releases.default_alias().to_string(),
            aliases,
        })
    }

    /// Points `alias` at `target`; with `make_default`, plain calls follow
    /// it from now on.
    pub async fn set_alias(
        &self,
        name: &str,
        alias: &str,
        target: AliasTarget,
        make_default: bool,
        history: HistoryEntry,
    ) -> CoreResult<Aliases> {
        validate_alias_name(alias).map_err(invalid)?;
        self.check_target(name, &target)?;
        let _writing = self.s.writes.lock().await;
        self.no_canary(name)?;
        let mut changes = vec![self.alias_change(name, alias, Some(target), history)?];
        if make_default {
            changes.push((ReleaseChange::SetDefault(Some(alias.into())), None));
        }
        self.release_write(name, changes).await?;
        self.aliases(name)
    }

    /// Removes an alias (plain calls that followed it go back to `latest`).
    pub async fn remove_alias(
        &self,
        name: &str,
        alias: &str,
        history: HistoryEntry,
    ) -> CoreResult<()> {
        let _writing = self.s.writes.lock().await;
        let entry = self.entry(name)?;
        if !entry.releases.read().unwrap().aliases.contains_key(alias) {
            return Err(CoreError::AliasNotFound(format!("no alias `{alias}`")));
        }
        self.no_canary(name)?;
        let change = self.alias_change(name, alias, None, history)?;
        self.release_write(name, vec![change]).await
    }

    /// Blue-green: `alias` switches atomically to version `to`. An alias
    /// that did not exist is created; if plain calls still follow `latest`,
    /// they follow this alias from now on.
    pub async fn release(
        &self,
        name: &str,
        alias: &str,
        to: u32,
        history: HistoryEntry,
    ) -> CoreResult<Aliases> {
        validate_alias_name(alias).map_err(invalid)?;
        let target = AliasTarget::version(to);
        self.check_target(name, &target)?;
        let _writing = self.s.writes.lock().await;
        self.no_canary(name)?;
        let first = self
            .entry(name)?
            .releases
            .read()
            .unwrap()
            .default_alias
            .is_none();
        let mut changes = vec![self.alias_change(name, alias, Some(target), history)?];
        if first {
            changes.push((ReleaseChange::SetDefault(Some(alias.into())), None));
        }
        self.release_write(name, changes).await?;
        self.aliases(name)
    }

    /// Returns `alias` to the target it had before its last change.
    pub async fn rollback(
        &self,
        name: &str,
        alias: &str,
        history: HistoryEntry,
    ) -> CoreResult<Aliases> {
        let _writing = self.s.writes.lock().await;
        let entry = self.entry(name)?;
        self.no_canary(name)?;
        let current = entry.releases.read().unwrap().aliases.get(alias).cloned();
        let previous = self
            .s
            .store
            .history(name.into())
            .await?
            .into_iter()
            .rev()
            .find(|h| h.alias.as_deref() == Some(alias) && h.to == current)
            .and_then(|h| h.from)
            .ok_or_else(|| {
                conflict(format!(
                    "alias `{alias}` has no previous target to roll back to"
                ))
            })?;
        self.check_target(name, &previous)?;
        let change = self.alias_change(name, alias, Some(previous), history)?;
        self.release_write(name, vec![change]).await?;
        self.aliases(name)
    }

    /// A function's release history, oldest first.
    pub async fn history(&self, name: &str) -> CoreResult<Vec<HistoryEntry>> {
        self.entry(name)?;
        Ok(self.s.store.history(name.into()).await?)
    }

    /// Each function's most recent canary, running or ended.
    pub(super) async fn canaries(&self) -> CoreResult<BTreeMap<String, CanaryState>> {
        Ok(self
            .s
            .store
            .releases()
            .await?
            .into_iter()
            .filter_map(|(function, row)| match row {
                ReleaseRow::Canary(canary) => Some((function, canary)),
                _ => None,
            })
            .collect())
    }

    /// The function's canary, running or ended.
    pub async fn canary_status(&self, name: &str) -> CoreResult<CanaryState> {
        self.entry(name)?;
        self.canaries()
            .await?
            .remove(name)
            .ok_or_else(|| CoreError::CanaryNotFound(format!("`{name}` has had no canary")))
    }

    /// Starts a canary moving `spec.alias` from its current target to
    /// `spec.to`.
    pub async fn start_canary(
        &self,
        name: &str,
        spec: CanarySpec,
        actor: &str,
    ) -> CoreResult<CanaryState> {
        spec.validate().map_err(invalid)?;
        validate_alias_name(&spec.alias).map_err(invalid)?;
        let entry = self.entry(name)?;
        if entry.version(spec.to).is_none() {
            return Err(invalid(format!("version {} does not exist", spec.to)));
        }
        let _writing = self.s.writes.lock().await;
        if self.canary_running(name) {
            return Err(conflict(format!("a canary of `{name}` is already running")));
        }
        let stable = entry.releases.read().unwrap().aliases.get(&spec.alias).cloned().ok_or_else(|| {
            conflict(format!(
                "alias `{}` does not exist; release a stable version first (`flint release {name} --to N --alias {}`)",
                spec.alias, spec.alias
            ))
        })?;
        if stable.versions().any(|v| v == spec.to) {
            return Err(conflict(format!(
                "alias `{}` already sends traffic to version {}",
                spec.alias, spec.to
            )));
        }
        self.begin_canary(name, spec, stable, actor).await
    }

    /// Records a canary as running and starts its driver (the caller holds
    /// the write lock and has checked the spec and the alias).
    pub(super) async fn begin_canary(
        &self,
        name: &str,
        spec: CanarySpec,
        stable: AliasTarget,
        actor: &str,
    ) -> CoreResult<CanaryState> {
        let record = CanaryState {
            spec,
            stable,
            status: CanaryStatus::Running,
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
        self.release_write(
            name,
            vec![(ReleaseChange::SetCanary(record.clone()), Some(log))],
        )
        .await?;
        if self.in_cluster() {
            // The leader drives it, whichever node that is.
            let epoch = self.leader_epoch();
            if epoch != 0 {
                self.lead_canaries(epoch, false).await;
            }
        } else {
            let abort = self.canary_abort(name);
            tokio::spawn(
                self.clone()
                    .drive_canary(name.to_string(), record.clone(), abort, None),
            );
        }
        Ok(record)
    }

    /// Stops a running canary; it rolls back. In a cluster, a canary that
    /// another node drives is rolled back from here, and its driver, whose
    /// writes are fenced on the canary running, stops.
    pub async fn abort_canary(&self, name: &str) -> CoreResult<()> {
        self.entry(name)?;
        let abort = self.s.canaries.lock().unwrap().get(name).cloned();
        if let Some(abort) = abort {
            abort.notify_one();
            return Ok(());
        }
        let not_running = || CoreError::CanaryNotFound(format!("no canary of `{name}` is running"));
        if !self.in_cluster() {
            return Err(not_running());
        }
        let _writing = self.s.writes.lock().await;
        let mut canary = self.canary_status(name).await?;
        if canary.status != CanaryStatus::Running {
            return Err(not_running());
        }
        self.roll_back(name, &mut canary, "aborted by the user".into(), None)
            .await;
        Ok(())
    }

    /// Registers a running canary; returns its abort signal.
    fn canary_abort(&self, function: &str) -> Arc<Notify> {
        self.s
            .canaries
            .lock()
            .unwrap()
            .entry(function.to_string())
            .or_default()
            .clone()
    }

    /// Registers this process as the driver of `function`'s canary, unless
    /// it already drives it; returns the abort signal of a new claim.
    pub(super) fn claim_canary(&self, function: &str) -> Option<Arc<Notify>> {
        let mut canaries = self.s.canaries.lock().unwrap();
        if canaries.contains_key(function) {
            return None;
        }
        let abort = Arc::new(Notify::new());
        canaries.insert(function.to_string(), abort.clone());
        Some(abort)
    }

    /// Whether a canary of `function` runs: driven here, or (in a
    /// cluster) by the leader, as the registry says.
    pub(super) fn canary_running(&self, function: &str) -> bool {
        self.canary_driven_here(function) || self.canary_running_in_registry(function)
    }

    /// Whether this process drives a canary of `function`.
    pub(super) fn canary_driven_here(&self, function: &str) -> bool {
        self.s.canaries.lock().unwrap().contains_key(function)
    }

    /// Whether the registry, as memory last read it, has a running canary
    /// of `function`.
    pub(super) fn canary_running_in_registry(&self, function: &str) -> bool {
        self.s.running_canaries.read().unwrap().contains(function)
    }

    /// Forgets a finished canary.
    pub(super) fn canary_done(&self, function: &str) {
        self.s.canaries.lock().unwrap().remove(function);
    }

    /// Starts a shadow run of `spec.candidate`.
    pub async fn start_shadow(
        &self,
        name: &str,
        spec: ShadowSpec,
        actor: &str,
    ) -> CoreResult<serde_json::Value> {
        spec.validate().map_err(invalid)?;
        let entry = self.entry(name)?;
        if entry.version(spec.candidate).is_none() {
            return Err(invalid(format!(
                "version {} does not exist",
                spec.candidate
            )));
        }
        let _writing = self.s.writes.lock().await;
        let mut log = HistoryEntry::now(actor, "shadow_started");
        log.reason = Some(format!(
            "candidate version {} at {}%",
            spec.candidate, spec.sample_percent
        ));
        self.release_write(
            name,
            vec![(ReleaseChange::SetShadow(Some(spec)), Some(log))],
        )
        .await?;
        self.shadow_report(name)
    }

    /// The shadow run's counters and mismatch samples.
    pub fn shadow_report(&self, name: &str) -> CoreResult<serde_json::Value> {
        let entry = self.entry(name)?;
        let spec = entry.releases.read().unwrap().shadow.clone();
        let mut report = entry.shadow.report();
        report["shadow"] = serde_json::json!(spec);
        Ok(report)
    }

    /// Stops the shadow run.
    pub async fn stop_shadow(&self, name: &str, actor: &str) -> CoreResult<()> {
        let _writing = self.s.writes.lock().await;
        self.entry(name)?;
        self.release_write(
            name,
            vec![(
                ReleaseChange::SetShadow(None),
                Some(HistoryEntry::now(actor, "shadow_stopped")),
            )],
        )
        .await
    }
}
