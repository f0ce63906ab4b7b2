//! The application state shared by every request.

use crate::blobs::BlobStore;
use crate::config::GatewayConfig;
use crate::functions::FunctionTable;
use crate::metrics::Metrics;
use crate::registry::{Registry, SqliteRegistry};
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
    /// registry. Versions load lazily from the artifact cache.
    pub fn open(config: GatewayConfig) -> anyhow::Result<Arc<Self>> {
        let dir = &config.data_dir;
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create data dir {}", dir.display()))?;
        let mut runtime_config = RuntimeConfig::new(dir.join("cache"));
        runtime_config.pooling = config.pooling;
        runtime_config.memory_init_cow = config.memory_init_cow;
        runtime_config.max_instances = config.max_instances;
        let runtime =
            Arc::new(Runtime::new(&runtime_config).context("cannot start the Wasm runtime")?);
        let registry = SqliteRegistry::open(&dir.join("registry.db"))
            .with_context(|| format!("cannot open the registry in {}", dir.display()))?;
        let blobs = Arc::new(BlobStore::new(&dir.join("blobs"))?);
        let metrics = Arc::new(Metrics::default());
        let table = Arc::new(FunctionTable::new(
            runtime.clone(),
            blobs.clone(),
            metrics.clone(),
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
            deploy_lock: tokio::sync::Mutex::new(()),
            canaries: Default::default(),
        });
        crate::releases::ops::restore(&state)?;
        Ok(state)
    }
}
