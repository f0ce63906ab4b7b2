//! The live function table: names -> versions -> loaded instance pools.
//!
//! The store is the source of truth; this table mirrors it in memory (only
//! the core's write and sync change it) and owns what only a running
//! process has: loaded components, instance pools, concurrency gates, guest
//! logs and counters. A version is loaded on first use (mapped from the disk
//! cache, or compiled from its blob when the cache misses) and dropped again
//! when idle, unless the default alias reaches it and the function keeps
//! `min_instances`. At start the live versions of the first
//! [`PRELOAD_MAX`] functions load in the background.

use super::bench::{BENCH_POOLS_IDLE, BenchPools};
use super::shadow::ShadowState;
use super::window::Windows;
use crate::metrics::{BenchObserver, FunctionObserver, FunctionStats, LoadSource, Metrics};
use crate::secrets::Secrets;
use crate::store::{BlobStore, FunctionRecord, ReleaseChange, VersionRecord};
use flint_runtime::InvocationObserver;
use flint_runtime::{
    ConcurrencyGate, DEFAULT_LOG_LINES, Digest, FunctionConfig, GuestLog, InstancePool, Program,
    Runtime,
};
use flint_spec::LATEST;
use flint_spec::alias::AliasTarget;
use flint_spec::shadow::ShadowSpec;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

/// Shadow calls of one function in flight at most.
const SHADOW_CONCURRENCY: u32 = 16;

/// Most functions whose live versions [`FunctionTable::preload_live`] loads
/// at start: a bound on the start's background work and mapped artifacts.
pub const PRELOAD_MAX: usize = 64;

#[derive(Clone)]
struct Loaded {
    component: Program,
    pool: Arc<InstancePool>,
}

/// One immutable version and, while loaded, its pool.
pub struct VersionEntry {
    /// What the registry holds about it.
    pub record: VersionRecord,
    loaded: RwLock<Option<Loaded>>,
    /// A pool with side effects cut off, for shadow runs of this version.
    shadow: RwLock<Option<Arc<InstancePool>>>,
    /// Why the version cannot load, since its last load failed for want of
    /// its component (no usable artifact, no good blob).
    broken: RwLock<Option<String>>,
}

impl VersionEntry {
    /// The pool if the version is loaded.
    pub fn pool(&self) -> Option<Arc<InstancePool>> {
        self.loaded.read().unwrap().as_ref().map(|l| l.pool.clone())
    }

    /// Why the version cannot load, if its last load found its component
    /// gone.
    pub fn broken(&self) -> Option<String> {
        self.broken.read().unwrap().clone()
    }

    /// The pre-linked component, if the version is loaded.
    pub fn component(&self) -> Option<Program> {
        self.loaded
            .read()
            .unwrap()
            .as_ref()
            .map(|l| l.component.clone())
    }

    /// Records (`Some`) or clears (`None`) why the version cannot load.
    pub(super) fn set_broken(&self, reason: Option<String>) {
        *self.broken.write().unwrap() = reason;
    }
}

/// A version's component is gone: no compiled artifact maps, and its blob
/// is missing or does not match its digest. Calls to that version fail
/// with this until `flint doctor` or a redeploy brings it back.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct MissingComponent(pub String);

struct Settings {
    config: Arc<FunctionConfig>,
    gate: Arc<ConcurrencyGate>,
    created_at: SystemTime,
    updated_at: SystemTime,
}

fn gate_for(config: &FunctionConfig) -> Arc<ConcurrencyGate> {
    Arc::new(ConcurrencyGate::new(
        config.max_concurrency,
        config.max_queue,
        Duration::from_millis(config.queue_timeout_ms),
    ))
}

/// The release state of one function, as mirrored from the store.
#[derive(Debug, Clone, Default)]
pub struct Releases {
    /// Named aliases (never `latest`).
    pub aliases: BTreeMap<String, AliasTarget>,
    /// The alias `/fn/{name}/...` follows; `None` means `latest`.
    pub default_alias: Option<String>,
    /// The shadow run, if one is on.
    pub shadow: Option<ShadowSpec>,
}

impl Releases {
    /// The alias plain calls follow.
    pub fn default_alias(&self) -> &str {
        self.default_alias.as_deref().unwrap_or(LATEST)
    }

    pub fn apply(&mut self, change: &ReleaseChange) {
        match change {
            ReleaseChange::SetAlias(alias, target) => {
                self.aliases.insert(alias.clone(), target.clone());
            }
            ReleaseChange::RemoveAlias(alias) => {
                self.aliases.remove(alias);
                if self.default_alias.as_deref() == Some(alias) {
                    self.default_alias = None;
                }
            }
            ReleaseChange::SetDefault(alias) => self.default_alias = alias.clone(),
            ReleaseChange::SetShadow(spec) => self.shadow = spec.clone(),
            ReleaseChange::SetCanary(_) => {}
        }
    }
}

/// A function: its settings, versions, log and counters.
pub struct FunctionEntry {
    /// Its name.
    pub name: String,
    settings: RwLock<Settings>,
    versions: RwLock<BTreeMap<u32, Arc<VersionEntry>>>,
    /// Captured guest output.
    pub log: Arc<GuestLog>,
    /// Counters since start.
    pub stats: Arc<FunctionStats>,
    observer: Arc<FunctionObserver>,
    /// Counts what benchmarks run, apart from live calls.
    pub bench_observer: Arc<BenchObserver>,
    /// The pools a load benchmark over HTTP drives, while one runs.
    pub bench_pools: Mutex<Option<BenchPools>>,
    load_lock: tokio::sync::Mutex<()>,
    /// Aliases, default alias and shadow run.
    pub releases: RwLock<Releases>,
    /// Per-version outcome windows (canary analysis).
    pub windows: Windows,
    /// Shadow-run counters and mismatch samples.
    pub shadow: ShadowState,
    /// Bounds shadow calls in flight; a full gate skips the copy.
    pub shadow_gate: ConcurrencyGate,
    /// Why the function is disabled: its stored state is broken (set by
    /// the sync from the store).
    disabled: RwLock<Option<String>>,
}

impl FunctionEntry {
    /// Why the function is disabled, if its stored state is broken.
    pub fn disabled(&self) -> Option<String> {
        self.disabled.read().unwrap().clone()
    }

    /// Disables (`Some`) or enables (`None`) the function.
    pub fn set_disabled(&self, reason: Option<String>) {
        *self.disabled.write().unwrap() = reason;
    }

    /// Why calls fail: the function is disabled, or a version plain calls
    /// reach cannot load for want of its component.
    pub fn problem(&self) -> Option<String> {
        self.disabled()
            .or_else(|| self.live_versions().iter().find_map(|v| v.broken()))
    }

    /// The effective configuration.
    pub fn config(&self) -> Arc<FunctionConfig> {
        self.settings.read().unwrap().config.clone()
    }

    /// The concurrency gate of the current configuration.
    pub fn gate(&self) -> Arc<ConcurrencyGate> {
        self.settings.read().unwrap().gate.clone()
    }

    /// Creation and last-change times.
    pub fn times(&self) -> (SystemTime, SystemTime) {
        let s = self.settings.read().unwrap();
        (s.created_at, s.updated_at)
    }

    /// All versions, oldest first.
    pub fn versions(&self) -> Vec<Arc<VersionEntry>> {
        self.versions.read().unwrap().values().cloned().collect()
    }

    /// The latest version.
    pub fn latest(&self) -> Option<Arc<VersionEntry>> {
        self.versions.read().unwrap().values().next_back().cloned()
    }

    /// A specific version.
    pub fn version(&self, version: u32) -> Option<Arc<VersionEntry>> {
        self.versions.read().unwrap().get(&version).cloned()
    }

    /// The versions plain calls (`/fn/NAME/`) can reach: the target of the
    /// default alias, every side of a split, or the latest version.
    pub fn live_versions(&self) -> Vec<Arc<VersionEntry>> {
        let releases = self.releases.read().unwrap();
        match releases.default_alias() {
            LATEST => self.latest().into_iter().collect(),
            alias => releases
                .aliases
                .get(alias)
                .map(|target| target.versions().filter_map(|n| self.version(n)).collect())
                .unwrap_or_default(),
        }
    }

    /// Counts a call of `version` that the concurrency gate refused.
    pub fn rejected(&self, version: u32, error: &flint_runtime::InvokeError) {
        self.observer.rejected(&self.name, version, error);
    }

    /// Instances waiting in the pools of all loaded versions.
    pub fn warm_instances(&self) -> usize {
        self.versions()
            .iter()
            .filter_map(|v| v.pool())
            .map(|p| p.warm_instances())
            .sum()
    }
}

/// The in-memory mirror of the registry plus runtime state.
pub struct FunctionTable {
    runtime: Arc<Runtime>,
    blobs: Arc<dyn BlobStore>,
    metrics: Arc<Metrics>,
    secrets: Arc<Secrets>,
    functions: RwLock<BTreeMap<String, Arc<FunctionEntry>>>,
}

impl FunctionTable {
    /// An empty table.
    pub fn new(
        runtime: Arc<Runtime>,
        blobs: Arc<dyn BlobStore>,
        metrics: Arc<Metrics>,
        secrets: Arc<Secrets>,
    ) -> Self {
        Self {
            runtime,
            blobs,
            metrics,
            secrets,
            functions: RwLock::default(),
        }
    }

    /// A function by name.
    pub fn get(&self, name: &str) -> Option<Arc<FunctionEntry>> {
        self.functions.read().unwrap().get(name).cloned()
    }

    /// All functions by name.
    pub fn list(&self) -> Vec<Arc<FunctionEntry>> {
        self.functions.read().unwrap().values().cloned().collect()
    }

    /// Adds or updates a function from its registry record.
    pub fn upsert(&self, record: &FunctionRecord) -> Arc<FunctionEntry> {
        let mut functions = self.functions.write().unwrap();
        if let Some(entry) = functions.get(&record.name) {
            entry.settings.write().unwrap().updated_at = record.updated_at;
            return entry.clone();
        }
        let stats = Arc::new(FunctionStats::default());
        let entry = Arc::new(FunctionEntry {
            name: record.name.clone(),
            settings: RwLock::new(Settings {
                config: Arc::new(record.config.clone()),
                gate: gate_for(&record.config),
                created_at: record.created_at,
                updated_at: record.updated_at,
            }),
            versions: RwLock::default(),
            log: Arc::new(GuestLog::new(&record.name, DEFAULT_LOG_LINES)),
            stats: stats.clone(),
            observer: Arc::new(FunctionObserver::new(stats.clone(), self.metrics.clone())),
            bench_observer: Arc::new(BenchObserver::new(stats, self.metrics.clone())),
            bench_pools: Mutex::default(),
            load_lock: tokio::sync::Mutex::new(()),
            releases: RwLock::default(),
            windows: Windows::default(),
            shadow: ShadowState::default(),
            shadow_gate: ConcurrencyGate::new(SHADOW_CONCURRENCY, 0, Duration::ZERO),
            disabled: RwLock::new(None),
        });
        functions.insert(record.name.clone(), entry.clone());
        entry
    }

    /// Adds a version; with `component`, its pool is ready at once, so the
    /// first call pays no load.
    pub fn add_version(
        self: &Arc<Self>,
        entry: &Arc<FunctionEntry>,
        record: VersionRecord,
        component: Option<Program>,
    ) -> anyhow::Result<()> {
        let version = record.version;
        let loaded = match component {
            Some(component) => Some(self.make_loaded(entry, version, component)?),
            None => None,
        };
        let v = Arc::new(VersionEntry {
            record,
            loaded: RwLock::new(loaded),
            shadow: RwLock::new(None),
            broken: RwLock::new(None),
        });
        entry.versions.write().unwrap().insert(version, v);

        Ok(())
    }

    fn make_loaded(
        &self,
        entry: &FunctionEntry,
        version: u32,
        component: Program,
    ) -> anyhow::Result<Loaded> {
        let pool = self.pool_with(entry, version, &component, |_| {}, entry.observer.clone())?;
        Ok(Loaded { component, pool })
    }

    /// Removes a function from the table.
    pub fn remove(&self, name: &str) -> Option<Arc<FunctionEntry>> {
        self.metrics.remove_function(name);
        self.functions.write().unwrap().remove(name)
    }

    /// Applies a new configuration: new gate, and loaded versions get fresh
    /// pools (warm instances built with the old env or limits are dropped;
    /// in-flight invocations finish on their old instances).
    pub fn set_config(
        self: &Arc<Self>,
        entry: &Arc<FunctionEntry>,
        config: FunctionConfig,
        updated_at: SystemTime,
    ) -> anyhow::Result<()> {
        {
            let mut s = entry.settings.write().unwrap();
            s.gate = gate_for(&config);
            s.config = Arc::new(config);
            s.updated_at = updated_at;
        }
        for v in entry.versions() {
            let component = v
                .loaded
                .read()
                .unwrap()
                .as_ref()
                .map(|l| l.component.clone());
            if let Some(component) = component {
                let loaded = self.make_loaded(entry, v.record.version, component)?;
                *v.loaded.write().unwrap() = Some(loaded);
            }
            *v.shadow.write().unwrap() = None;
        }
        entry.bench_pools.lock().unwrap().take();
        self.keep_warm(entry);
        Ok(())
    }

    /// Maps a component's artifact from the disk cache, or compiles it from
    /// its blob when the cache misses (under the runtime's compile limits: a
    /// [`flint_runtime::CompileError`] then). A blob that is gone or does not
    /// match its digest is a [`MissingComponent`] error.
    pub async fn load_component(&self, digest: &Digest) -> anyhow::Result<(Program, LoadSource)> {
        let runtime = self.runtime.clone();
        let cached = {
            let digest = digest.clone();
            tokio::task::spawn_blocking(move || runtime.load_cached(&digest)).await?
        };
        if let Some(component) = cached {
            return Ok((component, LoadSource::Disk));
        }
        let bytes = match self.blobs.get(digest.clone()).await {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(MissingComponent(format!(
                    "its component {digest} is gone: no compiled artifact and no blob"
                ))
                .into());
            }
            Err(e) => return Err(e.into()),
        };
        if Digest::of(&bytes) != *digest {
            return Err(MissingComponent(format!(
                "its component {digest} is gone: no compiled artifact, and the blob does not match its digest"
            ))
            .into());
        }
        let compiled = self.runtime.compile_limited(bytes.into()).await?;
        Ok((compiled.program, LoadSource::Compile))
    }

    /// The pool of `version`, loading the version if needed.
    pub async fn pool(
        &self,
        entry: &Arc<FunctionEntry>,
        version: &Arc<VersionEntry>,
    ) -> anyhow::Result<Arc<InstancePool>> {
        if let Some(pool) = version.pool() {
            return Ok(pool);
        }
        let _guard = entry.load_lock.lock().await;
        if let Some(pool) = version.pool() {
            return Ok(pool);
        }
        let (component, source) = match self.load_component(&version.record.digest).await {
            Ok(loaded) => loaded,
            Err(e) => {
                return Err(match e.downcast::<MissingComponent>() {
                    Ok(missing) => {
                        let reason = format!("version {}: {missing}", version.record.version);
                        version.set_broken(Some(reason.clone()));
                        MissingComponent(reason).into()
                    }
                    Err(other) => other,
                });
            }
        };
        version.set_broken(None);
        entry.stats.loaded(source);
        self.metrics.artifact_loaded(&entry.name, source);
        tracing::info!(function = %entry.name, version = version.record.version, ?source, "version loaded");
        let loaded = self.make_loaded(entry, version.record.version, component)?;
        let pool = loaded.pool.clone();
        *version.loaded.write().unwrap() = Some(loaded);
        pool.fill();
        Ok(pool)
    }

    /// The shadow pool of `version`: same component, but a sandbox that
    /// allows no outbound HTTP, no warm instances, and invocations that do
    /// not count in the function's stats or metrics.
    pub async fn shadow_pool(
        &self,
        entry: &Arc<FunctionEntry>,
        version: &Arc<VersionEntry>,
    ) -> anyhow::Result<Arc<InstancePool>> {
        if let Some(pool) = version.shadow.read().unwrap().clone() {
            return Ok(pool);
        }
        self.pool(entry, version).await?;
        let component = version
            .component()
            .ok_or_else(|| anyhow::anyhow!("version {} was unloaded", version.record.version))?;
        let pool = self.pool_with(
            entry,
            version.record.version,
            &component,
            |config| {
                config.allowed_outbound_hosts.clear();
                config.min_instances = 0;
            },
            Arc::new(crate::metrics::Unobserved),
        )?;
        *version.shadow.write().unwrap() = Some(pool.clone());
        Ok(pool)
    }

    /// A pool of `component` (version `version` of `entry`) apart from the
    /// live one: the function's configuration with its secrets resolved and
    /// then `edit`ed, reporting to `observer`.
    pub fn pool_with(
        &self,
        entry: &FunctionEntry,
        version: u32,
        component: &Program,
        edit: impl FnOnce(&mut FunctionConfig),
        observer: Arc<dyn InvocationObserver>,
    ) -> anyhow::Result<Arc<InstancePool>> {
        let mut config = self
            .secrets
            .resolve(&entry.config())
            .map_err(|e| anyhow::anyhow!("function `{}`: {e}", entry.name))?;
        edit(&mut config);
        InstancePool::new(
            &self.runtime,
            &entry.name,
            version,
            component,
            Arc::new(config),
            entry.log.clone(),
            observer,
        )
    }

    /// The runtime the pools run on.
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// Loads the live versions of up to [`PRELOAD_MAX`] functions in the
    /// background, one after another, so that the first call after a start
    /// finds its version mapped and pre-linked, as `wasmtime serve` has its
    /// component before it listens. A call that comes first waits for the
    /// same load (the function's load lock), never a second one. Versions
    /// nobody calls unload again after `unload_after`.
    pub fn preload_live(self: &Arc<Self>) {
        self.load_in_background(self.live(), "could not preload version");
    }

    /// Loads the live versions of up to [`PRELOAD_MAX`] functions that are
    /// not loaded yet, and returns when they are (or failed, logged).
    pub async fn load_live(&self) {
        for (entry, version) in self.live() {
            if version.pool().is_some() {
                continue;
            }
            if let Err(e) = self.pool(&entry, &version).await {
                tracing::warn!(function = %entry.name, version = version.record.version, error = %e, "could not load version");
            }
        }
    }

    fn live(&self) -> Vec<(Arc<FunctionEntry>, Arc<VersionEntry>)> {
        self.list()
            .into_iter()
            .filter(|entry| entry.disabled().is_none())
            .take(PRELOAD_MAX)
            .flat_map(|entry| {
                let versions = entry.live_versions();
                versions.into_iter().map(move |v| (entry.clone(), v))
            })
            .collect()
    }

    /// Loads `versions` one after another in a task of the current runtime
    /// (none: nothing to load into), logging each that fails with `failure`.
    fn load_in_background(
        self: &Arc<Self>,
        versions: Vec<(Arc<FunctionEntry>, Arc<VersionEntry>)>,
        failure: &'static str,
    ) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let table = self.clone();
        handle.spawn(async move {
            for (entry, version) in versions {
                if let Err(e) = table.pool(&entry, &version).await {
                    tracing::warn!(function = %entry.name, version = version.record.version, error = %e, "{failure}");
                }
            }
        });
    }

    /// Loads every version the default alias can route to and
    /// pre-instantiates `min_instances` of each, when the function asks for
    /// warm instances.
    pub fn keep_warm(self: &Arc<Self>, entry: &Arc<FunctionEntry>) {
        if entry.config().min_instances == 0 {
            return;
        }
        let mut unloaded = Vec::new();
        for version in entry.live_versions() {
            match version.pool() {
                Some(pool) => pool.fill(),
                None => unloaded.push((entry.clone(), version)),
            }
        }
        if !unloaded.is_empty() {
            self.load_in_background(unloaded, "could not load version for min_instances");
        }
    }

    /// Periodic upkeep: drops pooled instances idle past `instance_idle`, and
    /// unloads versions unused for `unload_after` (the versions the default
    /// alias routes to stay loaded while the function keeps
    /// `min_instances`).
    pub fn maintain(&self, instance_idle: Duration, unload_after: Duration) {
        for entry in self.list() {
            let pinned: Vec<u32> = if entry.config().min_instances > 0 {
                entry
                    .live_versions()
                    .iter()
                    .map(|v| v.record.version)
                    .collect()
            } else {
                Vec::new()
            };
            let mut bench = entry.bench_pools.lock().unwrap();
            if bench
                .as_ref()
                .is_some_and(|b| b.idle_past(BENCH_POOLS_IDLE))
            {
                bench.take();
            }
            drop(bench);
            for v in entry.versions() {
                let Some(pool) = v.pool() else { continue };
                pool.trim(instance_idle);
                let pinned = pinned.contains(&v.record.version);
                if !pinned && pool.idle_for() > unload_after {
                    tracing::info!(function = %entry.name, version = v.record.version, "unloading idle version");
                    *v.loaded.write().unwrap() = None;
                    *v.shadow.write().unwrap() = None;
                }
            }
            self.metrics.set_gauges(
                &entry.name,
                entry.gate().in_flight(),
                entry.warm_instances(),
            );
        }
    }
    /// Updates the per-function gauges (before a metrics scrape).
    pub fn refresh_gauges(&self) {
        for entry in self.list() {
            self.metrics.set_gauges(
                &entry.name,
                entry.gate().in_flight(),
                entry.warm_instances(),
            );
        }
    }
}
