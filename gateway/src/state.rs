//! The application state shared by every request.

use crate::blobs::BlobStore;
use crate::config::GatewayConfig;
use crate::functions::FunctionTable;
use crate::metrics::Metrics;
use crate::registry::{Registry, SqliteRegistry};
use crate::routes::RouteTable;
use crate::secrets::Secrets;
use crate::triggers::Triggers;
use anyhow::Context;
use flint_runtime::{Runtime, RuntimeConfig};
use std::sync::Arc;

/// The gateway's state: configuration, runtime, registry and function table.
pub struct AppState {
    /// Settings.
    pub config: GatewayConfig,
    /// The Wasm runtime.
    pub runtime: Arc<Runtime>,
    /// Persistent metadata.
    pub registry: Arc<dyn Registry>,
    /// Component bytes.
    pub blobs: Arc<BlobStore>,
    /// Live functions.
    pub table: Arc<FunctionTable>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Queue trigger bindings and the broker state.
    pub triggers: Triggers,
    /// Custom HTTP routes.
    pub routes: RouteTable,
    /// What `secret:NAME` references resolve to.
    pub secrets: Arc<Secrets>,
    /// Serialises deploys, config changes and deletes.
    pub deploy_lock: tokio::sync::Mutex<()>,
    /// Abort signals of running canaries, by function.
    canaries: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Notify>>>,
}

impl AppState {
    /// Registers a running canary; returns its abort signal.
    pub fn canary_abort(&self, function: &str) -> Arc<tokio::sync::Notify> {
        self.canaries
            .lock()
            .unwrap()
            .entry(function.to_string())
            .or_default()
            .clone()
    }

    /// Whether a canary of `function` is running in this process.
    pub fn canary_running(&self, function: &str) -> bool {
        self.canaries.lock().unwrap().contains_key(function)
    }

    /// Forgets a finished canary.
    pub fn canary_done(&self, function: &str) {
        self.canaries.lock().unwrap().remove(function);
    }

    /// Opens the data directory and restores every function from the
    /// registry. The live versions load from the artifact cache in the
    /// background (see [`FunctionTable::preload_live`]); others on first use.
    pub fn open(config: GatewayConfig) -> anyhow::Result<Arc<Self>> {
        let dir = &config.data_dir;
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create data dir {}", dir.display()))?;
        let mut runtime_config = RuntimeConfig::new(dir.join("cache"));
        runtime_config.pooling = config.pooling;
        runtime_config.memory_init_cow = config.memory_init_cow;
        runtime_config.max_instances = config.max_instances;
        // Building the engine (its instance pool protects a guard page per
        // slot) and opening the registry are independent: a restart waits
        // for the longer of the two, not their sum.
        let (runtime, registry) = std::thread::scope(|scope| {
            let engine = scope.spawn(|| Runtime::new(&runtime_config));
            let registry = SqliteRegistry::open(&dir.join("registry.db"))
                .with_context(|| format!("cannot open the registry in {}", dir.display()));
            let runtime = engine
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                .context("cannot start the Wasm runtime");
            anyhow::Ok((Arc::new(runtime?), registry?))
        })?;
        let blobs = Arc::new(BlobStore::new(&dir.join("blobs"))?);
        let metrics = Arc::new(Metrics::default());
        let secrets = Arc::new(Secrets::load(config.secrets_file.as_deref())?);
        let table = Arc::new(FunctionTable::new(
            runtime.clone(),
            blobs.clone(),
            metrics.clone(),
            secrets.clone(),
        ));
        for (function, versions) in registry.load_all()? {
            let entry = table.upsert(&function);
            for version in versions {
                table.add_version(&entry, version, None)?;
            }
        }
        let triggers = Triggers::new(config.amqp_url.clone(), registry.load_triggers()?);
        tracing::info!(
            functions = table.list().len(),
            triggers = triggers.list().len(),
            data_dir = %dir.display(),
            "registry restored"
        );
        let state = Arc::new(Self {
            config,
            runtime,
            registry: Arc::new(registry),
            blobs,
            table,
            metrics,
            triggers,
            routes: RouteTable::default(),
            secrets,
            deploy_lock: tokio::sync::Mutex::new(()),
            canaries: Default::default(),
        });
        crate::releases::ops::restore(&state)?;
        state.reload_routes()?;
        state.table.preload_live();
        Ok(state)
    }

    /// Drops what the process holds of a function the registry no longer
    /// has: its table entry, trigger and routes, and the blobs and compiled
    /// artifacts no other version uses.
    pub fn forget_function(&self, name: &str) -> Result<(), crate::api::ApiError> {
        let Some(entry) = self.table.remove(name) else {
            return Ok(());
        };
        self.triggers.set(name, None);
        self.reload_routes()?;
        // Blobs are shared by digest: drop only those no version uses any more.
        for v in entry.versions() {
            let digest = &v.record.digest;
            if !self.registry.digest_in_use(digest)? {
                self.blobs
                    .remove(digest)
                    .map_err(crate::api::ApiError::internal)?;
                let _ = std::fs::remove_file(self.runtime.cache().path(digest));
            }
        }
        tracing::info!(function = name, "deleted");
        Ok(())
    }

    /// Reloads the route table from the registry (after routes changed or
    /// a function was deleted).
    pub fn reload_routes(&self) -> Result<(), crate::registry::RegistryError> {
        let mut by_function: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for (function, pattern) in self.registry.load_routes()? {
            by_function.entry(function).or_default().push(pattern);
        }
        match crate::routes::check(&by_function) {
            Ok(routes) => self.routes.replace(routes),
            // Only valid, conflict-free routes are ever stored.
            Err(problems) => tracing::error!(
                ?problems,
                "stored routes are invalid; keeping the old table"
            ),
        }
        Ok(())
    }
}
