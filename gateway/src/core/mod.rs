//! The core: every operation on functions and every invocation, behind two
//! objects that the adapters (`api/` for HTTP, `triggers/` for AMQP, the
//! reconciler) translate to and from.
//!
//! - [`Control`] owns every operation: deploy, config, delete, aliases,
//!   releases, rollback, canaries, shadow runs, triggers, schedules, routes,
//!   plan and apply, history and logs, and the doctor's checks and repairs.
//! - [`Invoker`] resolves `name[@alias|@N]` to a version and runs a call
//!   under the function's limits.
//!
//! Both share one private state. It is written one way only: a change is
//! committed to the [`Store`] first and then mirrored into memory, by
//! `Control::write`; [`Control::sync_from_registry`] builds memory from the
//! store (at start, and whenever another node changed it). No core type
//! knows an HTTP status or an AMQP header: errors are [`CoreError`]s with the
//! stable codes of the contract.

mod auth;
mod backup;
mod bench;
mod canary;
mod cluster;
mod deploy;
mod desired;
mod doctor;
mod error;
mod functions;
mod gc;
mod invoker;
mod releases;
mod schedules;
mod shadow;
mod sync;
mod triggers;
mod views;
mod window;

pub use auth::{BOOTSTRAP_TOKEN_NAME, Caller, CreatedToken, Grant, Need, TokenView};
pub use backup::BackupSummary;
pub use bench::{
    BENCH_POOLS_IDLE, BenchFailure, BenchKind, BenchMode, BenchReport, BenchRequest, ConfigSummary,
    KindReport, MAX_BENCH_SAMPLES, MAX_BENCH_TIME, RequestSummary, ResponseSummary, ReuseCheck,
    nearest_rank,
};
pub use cluster::{Membership, NodeState, NodeView, NodesView};
pub use desired::{Op as PlanOp, Plan, PlanChange};
pub use doctor::{DoctorProblem, DoctorRepair, DoctorReport};
pub use error::{CoreError, CoreResult};
pub use gc::GcReport;
pub use invoker::{Invoked, Invoker, Target};
pub use schedules::{CE_TYPE as SCHEDULE_CE_TYPE, RunView, ScheduleView};
pub use triggers::{Broker, BrokerState, TriggerBinding};
pub use views::{
    Aliases, ComponentUpload, DEFAULT_LOG_LIMIT, Deployed, DisabledFunction, FunctionInfo,
    FunctionSummary, LogLineView, MAX_LOG_LIMIT, VersionInfo,
};
pub use window::{BUCKETS, Totals};

use crate::config::{AdminToken, GatewayConfig};
use crate::limits::RequestLimits;
use crate::metrics::Metrics;
use crate::routes::RouteTable;
use crate::secrets::Secrets;
use crate::store::{BlobStore, FsBlobStore, SqliteStore, Store};
use anyhow::Context;
use flint_runtime::{Runtime, RuntimeConfig};
use functions::FunctionTable;
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::Notify;

/// Every operation on functions; the one writer of "store, then memory".
/// Cheap to clone: clones share one state.
#[derive(Clone)]
pub struct Control {
    s: Arc<State>,
}

/// What the core holds: private to it, shared by [`Control`] and
/// [`Invoker`].
struct State {
    config: GatewayConfig,
    limits: RequestLimits,
    runtime: Arc<Runtime>,
    store: Arc<dyn Store>,
    blobs: Arc<dyn BlobStore>,
    table: Arc<FunctionTable>,
    metrics: Arc<Metrics>,
    bindings: triggers::Bindings,
    routes: RouteTable,
    secrets: Arc<Secrets>,
    tokens: auth::Tokens,
    /// What the bootstrap token grants.
    bootstrap_grant: Arc<Grant>,
    /// Serialises writes, so that a check and the write it allows are one
    /// step (a canary guard and the alias change it guards).
    writes: tokio::sync::Mutex<()>,
    /// Serialises commit-and-mirror with reading the whole registry, so
    /// that memory follows the store's commit order.
    mirroring: tokio::sync::Mutex<()>,
    /// The registry version memory reflects (shared registry only).
    applied: AtomicU64,
    /// The cluster adapter, in cluster mode.
    membership: RwLock<Option<Arc<dyn Membership>>>,
    /// The functions whose canary the registry says is running, as memory
    /// last read it (whichever node drives it).
    running_canaries: RwLock<std::collections::BTreeSet<String>>,
    /// Serialises the storage-cap check with the write it allows, so that
    /// two uploads cannot both fit in the same free space.
    storing: tokio::sync::Mutex<()>,
    /// Abort signals of the canaries this process drives, by function.
    canaries: Mutex<HashMap<String, Arc<Notify>>>,
    /// The queue broker, when an adapter provides one.
    broker: RwLock<Option<Arc<dyn Broker>>>,
    /// Signals the scheduler loop that schedules were added or removed.
    schedules_changed: Arc<Notify>,
}

impl Control {
    /// Opens the data directory with the embedded storage (SQLite registry,
    /// blob files) and builds memory from it. The live versions load from
    /// the artifact cache in the background; others on first use.
    pub async fn open(config: GatewayConfig) -> anyhow::Result<Arc<Self>> {
        Self::open_on(config, None).await
    }

    /// As [`Control::open`], on `shared` storage when given (a registry
    /// several nodes share); the data directory then holds only this node's
    /// artifact cache.
    pub async fn open_on(
        config: GatewayConfig,
        shared_storage: Option<(Arc<dyn Store>, Arc<dyn BlobStore>)>,
    ) -> anyhow::Result<Arc<Self>> {
        let dir = config.data_dir.clone();
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create data dir {}", dir.display()))?;
        let mut runtime_config = RuntimeConfig::new(dir.join("cache"));
        runtime_config.pooling = config.pooling;
        runtime_config.memory_init_cow = config.memory_init_cow;
        runtime_config.max_instances = config.max_instances;
        runtime_config.max_compiles = config.max_compiles;
        runtime_config.compile_queue_timeout = config.compile_queue_timeout;
        runtime_config.compile_timeout = config.compile_timeout;
        runtime_config.compile_worker = config.compile_worker.clone();
        // Building the engine (its instance pool protects a guard page per
        // slot) and opening the registry are independent: a restart waits
        // for the longer of the two, not their sum.
        let engine = tokio::task::spawn_blocking(move || Runtime::new(&runtime_config));
        let shared = shared_storage.is_some();
        let (store, blobs) = match shared_storage {
            Some(shared) => shared,
            None => {
                let store = SqliteStore::open(&dir.join("registry.db"))
                    .with_context(|| format!("cannot open the registry in {}", dir.display()))?;
                let blobs = FsBlobStore::new(&dir.join("blobs"))
                    .with_context(|| format!("cannot open the blob store in {}", dir.display()))?;
                (Arc::new(store) as Arc<dyn Store>, Arc::new(blobs) as _)
            }
        };
        let runtime = engine.await?.context("cannot start the Wasm runtime")?;
        Self::build(config, Arc::new(runtime), store, blobs, shared).await
    }

    /// Builds the core on the given storage and loads memory from it. A
    /// canary that was running when the server stopped is rolled back: its
    /// analysis lived in memory.
    pub async fn with_storage(
        config: GatewayConfig,
        runtime: Arc<Runtime>,
        store: Arc<dyn Store>,
        blobs: Arc<dyn BlobStore>,
    ) -> anyhow::Result<Arc<Self>> {
        Self::build(config, runtime, store, blobs, false).await
    }

    /// Builds the core; on `shared` storage a running canary is left to the
    /// cluster's leader, which continues it.
    async fn build(
        config: GatewayConfig,
        runtime: Arc<Runtime>,
        store: Arc<dyn Store>,
        blobs: Arc<dyn BlobStore>,
        shared: bool,
    ) -> anyhow::Result<Arc<Self>> {
        let metrics = Arc::new(Metrics::default());
        let secrets = Arc::new(Secrets::load(config.secrets_file.as_deref())?);
        let table = Arc::new(FunctionTable::new(
            runtime.clone(),
            blobs.clone(),
            metrics.clone(),
            secrets.clone(),
        ));
        let tokens = auth::Tokens::new(config.admin_token.as_ref().map(AdminToken::secret));
        let control = Arc::new(Self {
            s: Arc::new(State {
                limits: RequestLimits::new(config.max_upload_bytes, config.max_request_body_bytes),
                config,
                runtime,
                store,
                blobs,
                table,
                metrics,
                bindings: triggers::Bindings::default(),
                routes: RouteTable::default(),
                secrets,
                tokens,
                bootstrap_grant: auth::bootstrap_grant(),
                writes: tokio::sync::Mutex::new(()),
                mirroring: tokio::sync::Mutex::new(()),
                applied: AtomicU64::new(0),
                membership: RwLock::new(None),
                running_canaries: RwLock::default(),
                storing: tokio::sync::Mutex::new(()),
                canaries: Mutex::default(),
                broker: RwLock::new(None),
                schedules_changed: Arc::default(),
            }),
        });
        let interrupted = control.sync_from_registry().await?;
        tracing::info!(
            functions = control.s.table.list().len(),
            triggers = control.s.bindings.list().len(),
            data_dir = %control.s.config.data_dir.display(),
            "registry restored"
        );
        if !shared {
            for (function, canary) in interrupted {
                control.roll_back_interrupted(&function, canary).await;
            }
        }
        control.s.table.preload_live();
        Ok(control)
    }

    /// The invocation side of the core.
    pub fn invoker(&self) -> Invoker {
        Invoker::new(self.s.clone())
    }

    /// The server's settings.
    pub fn config(&self) -> &GatewayConfig {
        &self.s.config
    }

    /// The request limits every adapter applies.
    pub fn limits(&self) -> &RequestLimits {
        &self.s.limits
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.s.metrics
    }

    /// The metrics in OpenMetrics text, gauges refreshed first.
    pub fn encode_metrics(&self, format: crate::metrics::Exposition) -> String {
        self.s.table.refresh_gauges();
        self.s.metrics.encode(format)
    }

    /// Periodic upkeep: trims idle instances and unloads idle versions
    /// (never a version the default alias reaches while the function keeps
    /// `min_instances`).
    pub fn maintain(&self) {
        self.s
            .table
            .maintain(self.s.config.instance_idle, self.s.config.unload_after);
    }

    /// The function a custom route gives `path` to, if any.
    pub fn route(&self, path: &str) -> Option<String> {
        self.s.routes.lookup(path)
    }
}
