//! Store, then memory: the one place where memory follows the store.
//!
//! [`Control::write`] commits a list of changes in one transaction and then
//! mirrors each into memory; [`Control::sync_from_registry`] builds memory
//! from a snapshot of the whole store (at start, and for changes made by
//! another node). Nothing else writes the function table, the trigger
//! bindings, the routes or the release state.

use super::functions::FunctionEntry;
use super::functions::Releases;
use super::{Control, CoreError, CoreResult, State};
use crate::metrics::LoadSource;
use crate::store::{Change, FunctionRecord, Outcome, ReleaseChange, ReleaseRow};
use flint_runtime::Program;
use flint_spec::Digest;
use flint_spec::canary::{CanaryState, CanaryStatus};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

/// Components loaded before a write, for the versions it records.
pub(super) type Components = BTreeMap<Digest, (Program, LoadSource)>;

impl Control {
    /// Commits `changes` in one transaction, then mirrors each into memory.
    /// `components` holds the loaded component of every version the
    /// changes record, so their first call pays no load.
    pub(super) async fn write(
        &self,
        changes: Vec<Change>,
        components: &Components,
    ) -> CoreResult<Vec<Outcome>> {
        let _mirroring = self.s.mirroring.lock().await;
        let outcomes = self.s.store.commit(changes.clone()).await?;
        // A write to a disabled function may have replaced its broken rows
        // (a new config, a redeploy): memory then follows the whole store.
        let resync = changes.iter().filter_map(Change::function).any(|name| {
            self.s
                .table
                .get(name)
                .is_some_and(|e| e.disabled().is_some())
        });
        let mut routes_changed = false;
        let mut deleted = Vec::new();
        for (change, outcome) in changes.iter().zip(&outcomes) {
            routes_changed |= matches!(
                change,
                Change::SetRoutes { .. } | Change::DeleteFunction { .. }
            );
            self.s.mirror_token(change);
            if let Some(entry) = self.s.mirror(change, outcome, components)? {
                deleted.push(entry);
            }
        }
        if routes_changed {
            self.s.reload_routes(&changes);
        }
        for entry in deleted {
            self.s.drop_unused_blobs(&entry).await;
        }
        if resync && let Err(e) = self.load_registry().await {
            tracing::warn!(error = %format!("{e:#}"), "could not re-read the registry after a write to a disabled function");
        }
        Ok(outcomes)
    }

    /// Builds memory from the store: functions, versions, configs, release
    /// state, trigger bindings and routes. Memory that the store no longer
    /// has is dropped. Returns the canaries the store says are running.
    ///
    /// One broken function does not stop the rest: a function whose stored
    /// rows do not parse (or whose config cannot be applied) is kept
    /// disabled with the reason, and its trigger is not bound; every other
    /// function serves. Only a store that cannot be read at all is an
    /// error.
    pub async fn sync_from_registry(&self) -> anyhow::Result<Vec<(String, CanaryState)>> {
        let _mirroring = self.s.mirroring.lock().await;
        self.load_registry().await
    }

    /// Follows a shared registry: builds memory from it when it is newer
    /// than what memory reflects. Returns the version memory now reflects.
    ///
    /// Only the functions that the changes since touched are read, when the
    /// registry can say which (a token change, say, needs a whole read).
    pub async fn follow_registry(&self) -> anyhow::Result<u64> {
        let _mirroring = self.s.mirroring.lock().await;
        let applied = self.s.applied.load(Ordering::Acquire);
        match self.s.store.load_since(applied).await? {
            Some(changed) if changed.snapshot.version > applied => {
                self.apply_snapshot(changed.snapshot, Some(&changed.functions));
            }
            Some(_) => {}
            None => {
                let snapshot = self.s.store.load().await?;
                if snapshot.version > applied {
                    self.apply_snapshot(snapshot, None);
                }
            }
        }
        let now = self.s.applied.load(Ordering::Acquire);
        if now > applied {
            // Another node may have added or removed a schedule: the
            // scheduler (if this node leads) reads them again now rather
            // than at its next poll.
            self.s.schedules_changed.notify_one();
        }
        Ok(now)
    }

    /// Before a change made through this node: follows the shared
    /// registry first if another node changed it since memory last did, so
    /// that the change is checked against what is stored (a release of an
    /// alias just created elsewhere, say). One cheap read when nothing
    /// changed; nothing for an embedded registry.
    pub async fn catch_up(&self) {
        if !self.in_cluster() {
            return;
        }
        match self.s.store.version().await {
            Ok(version) if version > self.applied_version() => {
                if let Err(e) = self.follow_registry().await {
                    tracing::warn!(error = %format!("{e:#}"), "could not re-read the registry before a change");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "cannot read the registry version"),
        }
    }

    /// The registry version memory reflects (0 for an embedded registry).
    pub fn applied_version(&self) -> u64 {
        self.s.applied.load(Ordering::Acquire)
    }

    async fn load_registry(&self) -> anyhow::Result<Vec<(String, CanaryState)>> {
        let snapshot = self.s.store.load().await?;
        Ok(self.apply_snapshot(snapshot, None))
    }

    /// Builds memory from `snapshot`: all of memory, or (with `scope`) what
    /// memory holds of those functions only. The caller holds `mirroring`.
    fn apply_snapshot(
        &self,
        snapshot: crate::store::Snapshot,
        scope: Option<&BTreeSet<String>>,
    ) -> Vec<(String, CanaryState)> {
        let s = &self.s;
        let version = snapshot.version;
        let in_scope = |name: &str| scope.is_none_or(|scope| scope.contains(name));
        let mut broken: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for row in snapshot.broken {
            broken.entry(row.function).or_default().push(row.reason);
        }
        let mut names = BTreeSet::new();
        for (record, versions) in snapshot.functions {
            names.insert(record.name.clone());
            // Deleted and deployed again elsewhere since memory last saw
            // it: its version numbers now name other bytes.
            if let Some(old) = s.table.get(&record.name)
                && old.times().0 != record.created_at
            {
                s.forget(&record.name);
            }
            let entry = s.table.upsert(&record);
            let problems = broken.entry(record.name.clone()).or_default();
            if *entry.config() != record.config
                && let Err(e) = s
                    .table
                    .set_config(&entry, record.config.clone(), record.updated_at)
            {
                problems.push(format!("its config cannot be applied: {e:#}"));
            }
            for version in versions {
                if entry.version(version.version).is_none()
                    && let Err(e) = s.table.add_version(&entry, version, None)
                {
                    problems.push(format!("a version cannot be added: {e:#}"));
                }
            }
            let reason = (!problems.is_empty()).then(|| problems.join("; "));
            if let Some(reason) = &reason {
                tracing::error!(function = %record.name, %reason, "function disabled: its stored state is broken; run `flint doctor`");
            }
            entry.set_disabled(reason);
        }
        for entry in s.table.list() {
            if in_scope(&entry.name) && !names.contains(&entry.name) {
                s.forget(&entry.name);
            }
        }
        let mut releases: BTreeMap<String, Releases> = BTreeMap::new();
        let mut running = Vec::new();
        for (function, row) in snapshot.releases {
            let r = releases.entry(function.clone()).or_default();
            match row {
                ReleaseRow::Alias(alias, target) => {
                    r.aliases.insert(alias, target);
                }
                ReleaseRow::DefaultAlias(alias) => r.default_alias = Some(alias),
                ReleaseRow::Shadow(spec) => r.shadow = Some(spec),
                ReleaseRow::Canary(canary) => {
                    if canary.status == CanaryStatus::Running {
                        running.push((function, canary));
                    }
                }
            }
        }
        {
            let mut set = s.running_canaries.write().unwrap();
            set.retain(|function| !in_scope(function));
            set.extend(running.iter().map(|(f, _)| f.clone()));
        }
        for entry in s.table.list() {
            if !in_scope(&entry.name) {
                continue;
            }
            *entry.releases.write().unwrap() = releases.remove(&entry.name).unwrap_or_default();
            if entry.disabled().is_none() {
                s.table.keep_warm(&entry);
            }
        }
        let disabled = |function: &str| {
            s.table
                .get(function)
                .is_some_and(|e| e.disabled().is_some())
        };
        let triggers = snapshot
            .triggers
            .into_iter()
            .filter(|(function, _)| !disabled(function));
        let mut by_function: BTreeMap<String, Vec<String>> = BTreeMap::new();
        match scope {
            None => {
                s.bindings.replace(triggers.collect());
                s.tokens.replace(snapshot.tokens);
            }
            Some(scope) => {
                let mut triggers: BTreeMap<String, _> = triggers.collect();
                for function in scope {
                    s.bindings.set(function, triggers.remove(function));
                }
                by_function = s.routes.by_function();
                by_function.retain(|function, _| !scope.contains(function));
            }
        }
        for (function, pattern) in snapshot.routes {
            by_function.entry(function).or_default().push(pattern);
        }
        s.replace_routes(by_function);
        s.applied.fetch_max(version, Ordering::AcqRel);
        running
    }
}

impl State {
    /// Mirrors one committed change; returns the entry of a deleted
    /// function, whose blobs may now be unused.
    fn mirror(
        &self,
        change: &Change,
        outcome: &Outcome,
        components: &Components,
    ) -> CoreResult<Option<Arc<FunctionEntry>>> {
        let now = SystemTime::now();
        match (change, outcome) {
            (
                Change::AddVersion {
                    name,
                    default_config,
                    ..
                },
                Outcome::Version(added),
            ) => {
                let entry = self.table.get(name).unwrap_or_else(|| {
                    self.table.upsert(&FunctionRecord {
                        name: name.clone(),
                        config: (**default_config).clone(),
                        created_at: added.record.created_at,
                        updated_at: added.record.created_at,
                    })
                });
                if entry.version(added.record.version).is_none() {
                    let loaded = components.get(&added.record.digest).cloned();
                    if let Some((_, source)) = &loaded {
                        entry.stats.loaded(*source);
                        self.metrics.artifact_loaded(name, *source);
                    }
                    self.table
                        .add_version(
                            &entry,
                            added.record.clone(),
                            loaded.map(|(component, _)| component),
                        )
                        .map_err(CoreError::internal)?;
                    self.table.keep_warm(&entry);
                }
            }
            (Change::SetConfig { name, config }, Outcome::Applied(true)) => {
                if let Some(entry) = self.table.get(name) {
                    self.table
                        .set_config(&entry, (**config).clone(), now)
                        .map_err(CoreError::internal)?;
                }
            }
            (Change::DeleteFunction { name }, Outcome::Applied(true)) => {
                return Ok(self.forget(name));
            }
            (Change::SetTrigger { function, spec }, _) if self.table.get(function).is_some() => {
                self.bindings.set(function, spec.clone());
            }
            (Change::Release(release), _) => {
                if let ReleaseChange::SetCanary(canary) = &release.change {
                    let mut running = self.running_canaries.write().unwrap();
                    match canary.status {
                        CanaryStatus::Running => running.insert(release.function.clone()),
                        _ => running.remove(&release.function),
                    };
                }
                if let Some(entry) = self.table.get(&release.function) {
                    entry.releases.write().unwrap().apply(&release.change);
                    // The versions the default alias reaches may have changed.
                    self.table.keep_warm(&entry);
                }
            }
            _ => {}
        }
        Ok(None)
    }

    /// Drops what memory holds of a function: its table entry, trigger and
    /// metrics series.
    fn forget(&self, name: &str) -> Option<Arc<FunctionEntry>> {
        self.running_canaries.write().unwrap().remove(name);
        let entry = self.table.remove(name)?;
        self.bindings.set(name, None);
        tracing::info!(function = name, "deleted");
        Some(entry)
    }

    /// Removes the blobs and compiled artifacts of a deleted function that
    /// no other version uses (blobs are shared by digest).
    async fn drop_unused_blobs(&self, entry: &FunctionEntry) {
        for v in entry.versions() {
            let digest = v.record.digest.clone();
            match self.store.digest_in_use(digest.clone()).await {
                Ok(false) => {
                    if let Err(e) = self.blobs.remove(digest.clone()).await {
                        tracing::warn!(%digest, error = %e, "could not remove an unused blob");
                    }
                    self.runtime.cache().remove(&digest);
                }
                Ok(true) => {}
                Err(e) => {
                    tracing::warn!(%digest, error = %e, "could not check whether a blob is in use")
                }
            }
        }
    }

    /// Applies the route changes of a committed write to the route table.
    fn reload_routes(&self, changes: &[Change]) {
        let mut by_function = self.routes.by_function();
        for change in changes {
            match change {
                Change::SetRoutes { function, patterns } if patterns.is_empty() => {
                    by_function.remove(function);
                }
                Change::SetRoutes { function, patterns } => {
                    by_function.insert(function.clone(), patterns.clone());
                }
                Change::DeleteFunction { name } => {
                    by_function.remove(name);
                }
                _ => {}
            }
        }
        self.replace_routes(by_function);
    }

    fn replace_routes(&self, by_function: BTreeMap<String, Vec<String>>) {
        match crate::routes::check(&by_function) {
            Ok(routes) => self.routes.replace(routes),
            // Only valid, conflict-free routes are ever stored.
            Err(problems) => tracing::error!(
                ?problems,
                "stored routes are invalid; keeping the old table"
            ),
        }
    }
}
