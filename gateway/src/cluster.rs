//! Cluster mode: this node serves a registry that several nodes share in
//! PostgreSQL, and follows every change another node makes to it.
//!
//! - The node waits for the registry's schema (`flint migrate` makes it),
//!   loads the whole registry and its live versions, and only then serves:
//!   a node that joins never answers 404 for a function that exists.
//! - A task LISTENs for the version every write notifies, and the node
//!   re-reads the registry when it is newer than memory. Notifications are
//!   hints: one sent while the LISTEN connection is down is lost, so the
//!   node also re-reads after reconnecting and every `poll_interval`.
//! - Every `heartbeat_interval` (and at once after applying a change) the
//!   node records its address, state and applied version in `nodes`; that
//!   is what `flint nodes` shows and `--wait` waits for.
//! - A node that cannot reach PostgreSQL keeps serving what it has and
//!   calls itself degraded. It judges no other node: liveness is the age of
//!   a heartbeat by the database's clock, which only a node that reaches
//!   the database reads.

use crate::config::GatewayConfig;
use crate::core::{Control, Membership, NodeState, NodeView, NodesView, Totals};
use crate::store::{Counters, Leadership, NodeRow, PgRegistry, StoreError};
use futures::future::BoxFuture;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Notify;

/// Default time between re-reads of the registry without a notification.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5);
/// Default time between heartbeats.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(2);
/// A node whose last heartbeat is older than this many heartbeats is not
/// counted as live.
const LIVE_HEARTBEATS: u32 = 5;
/// Nodes silent this long are left out of the view altogether.
const FORGET_AFTER: Duration = Duration::from_secs(3600);
/// Time between publications of a node's canary counters.
const PUBLISH_INTERVAL: Duration = Duration::from_millis(500);
/// Wait between attempts to reach the registry at start.
const START_RETRY: Duration = Duration::from_secs(1);

/// How a node takes part in a cluster.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// The shared registry, a `postgres://` URL.
    pub registry_url: String,
    /// The address this node advertises to `flint nodes`.
    pub node_address: String,
    /// Time between re-reads of the registry without a notification.
    pub poll_interval: Duration,
    /// Time between heartbeats.
    pub heartbeat_interval: Duration,
    /// Longest wait at start for the registry and its schema.
    pub start_timeout: Duration,
}

/// This node: its identity, its state and the registry it follows.
pub struct Node {
    id: String,
    address: String,
    registry: PgRegistry,
    config: ClusterConfig,
    state: AtomicU8,
    reachable: AtomicBool,
    /// The registry version this node serves: read, and its live
    /// versions loaded.
    applied: AtomicU64,
    /// Set once the node has left the node list: no heartbeat after it.
    left: AtomicBool,
    /// Held while a heartbeat writes the node's row, so that leaving waits
    /// for one in flight: written after the delete, it would put the row
    /// back.
    writing: tokio::sync::Mutex<()>,
    /// The epoch of this node's leadership; 0 while it does not lead.
    epoch: AtomicU64,
    /// Wakes the heartbeat task to report at once.
    report: Notify,
}

fn state_code(state: NodeState) -> u8 {
    state as u8
}

fn state_of(code: u8) -> NodeState {
    match code {
        0 => NodeState::Starting,
        1 => NodeState::Ready,
        2 => NodeState::Degraded,
        _ => NodeState::Draining,
    }
}

/// A fresh node id: the host's name (a pod's name on Kubernetes) and a
/// random suffix, so that a restarted process is a new node.
fn node_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".into());
    let mut suffix = [0u8; 4];
    let _ = getrandom::fill(&mut suffix);
    format!("{host}-{}", hex::encode(suffix))
}

/// Connects to the shared registry, waiting up to `start_timeout` for it
/// to be reachable and migrated.
async fn connect(config: &ClusterConfig, id: &str) -> anyhow::Result<PgRegistry> {
    let deadline = tokio::time::Instant::now() + config.start_timeout;
    loop {
        match PgRegistry::connect(&config.registry_url, id).await {
            Ok(registry) => return Ok(registry),
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(error = %e, "waiting for the shared registry");
                tokio::time::sleep(START_RETRY).await;
            }
            Err(e) => anyhow::bail!("{e}"),
        }
    }
}

/// Opens the core on the shared registry, loads it and the live versions,
/// and starts following it. Returns when the node is ready to serve.
pub async fn open(
    config: GatewayConfig,
    cluster: ClusterConfig,
) -> anyhow::Result<(Arc<Control>, Arc<Node>)> {
    let id = node_id();
    let registry = connect(&cluster, &id).await?;
    let node = Arc::new(Node {
        id,
        address: cluster.node_address.clone(),
        registry: registry.clone(),
        config: cluster,
        state: AtomicU8::new(state_code(NodeState::Starting)),
        reachable: AtomicBool::new(true),
        applied: AtomicU64::new(0),
        left: AtomicBool::new(false),
        writing: tokio::sync::Mutex::new(()),
        epoch: AtomicU64::new(0),
        report: Notify::new(),
    });
    let _ = node.heartbeat(0).await;
    let blobs = Arc::new(registry.blobs());
    let control = Control::open_on(config, Some((Arc::new(registry), blobs))).await?;
    control.set_membership(node.clone());
    control.load_live().await;
    node.applied
        .store(control.applied_version(), Ordering::Release);
    node.set_state(NodeState::Ready);
    tracing::info!(node = %node.id, address = %node.address, version = control.applied_version(), "joined the cluster");
    tokio::spawn(node.clone().listen_and_follow(control.clone()));
    tokio::spawn(node.clone().beat());
    tokio::spawn(node.clone().campaign(control.clone()));
    tokio::spawn(node.clone().publish(control.clone()));
    Ok((control, node))
}

impl Node {
    /// Its id.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn set_state(&self, state: NodeState) {
        self.state.store(state_code(state), Ordering::Release);
        self.report.notify_one();
    }

    /// Marks the node as draining: its next heartbeat says so.
    pub fn drain(&self) {
        self.set_state(NodeState::Draining);
    }

    /// Removes the node's row (a clean stop); best effort.
    pub async fn leave(&self) {
        self.left.store(true, Ordering::Release);
        // A heartbeat stuck on an unreachable registry must not hold up the
        // stop for long: after one interval, the delete goes ahead anyway.
        let _writing = tokio::time::timeout(self.config.heartbeat_interval, self.writing.lock())
            .await
            .ok();
        if let Err(e) = self.registry.leave(&self.id).await {
            tracing::warn!(error = %e, "could not remove this node from the registry's node list");
        }
    }

    /// Records reachability: a node that cannot reach the registry is
    /// degraded until it can again.
    fn reached(&self, result: Result<(), &StoreError>) {
        let ok = result.is_ok();
        let was = self.reachable.swap(ok, Ordering::AcqRel);
        match (was, result) {
            (true, Err(e)) => {
                tracing::warn!(error = %e, "the shared registry is unreachable: serving what this node has")
            }
            (false, Ok(())) => tracing::info!("the shared registry is reachable again"),
            _ => {}
        }
        let state = self.state();
        match (ok, state) {
            (false, NodeState::Ready) => self.set_state(NodeState::Degraded),
            (true, NodeState::Degraded) => self.set_state(NodeState::Ready),
            _ => {}
        }
    }

    async fn heartbeat(&self, applied: u64) -> Result<(), StoreError> {
        let _writing = self.writing.lock().await;
        if self.left.load(Ordering::Acquire) {
            return Ok(());
        }
        self.registry
            .heartbeat(&NodeRow {
                id: self.id.clone(),
                address: self.address.clone(),
                applied_version: applied,
                state: self.state().as_str().into(),
                heartbeat_age_ms: 0,
            })
            .await
    }

    /// Reports the node every heartbeat interval, and at once when woken.
    async fn beat(self: Arc<Self>) {
        loop {
            if self.left.load(Ordering::Acquire) {
                return;
            }
            let result = self.heartbeat(self.applied.load(Ordering::Acquire)).await;
            self.reached(result.as_ref().map(|_| ()));
            tokio::select! {
                () = tokio::time::sleep(self.config.heartbeat_interval) => {}
                () = self.report.notified() => {}
            }
        }
    }

    /// Every heartbeat interval: a node that leads checks that it still
    /// does; one that does not tries to take the leader lock. A leader that
    /// dies or loses the database frees the lock with its connection, so
    /// another node takes over within a heartbeat interval of PostgreSQL
    /// noticing.
    async fn campaign(self: Arc<Self>, control: Arc<Control>) {
        let mut held: Option<Leadership> = None;
        loop {
            if self.left.load(Ordering::Acquire) {
                if let Some(leadership) = held.take() {
                    self.epoch.store(0, Ordering::Release);
                    leadership.resign().await;
                }
                return;
            }
            held = match held.take() {
                Some(mut leadership) => {
                    if leadership.confirm().await {
                        Some(leadership)
                    } else {
                        tracing::warn!(epoch = leadership.epoch, "lost the leadership");
                        self.epoch.store(0, Ordering::Release);
                        None
                    }
                }
                None => match self.registry.try_lead(&self.id).await {
                    Ok(Some(leadership)) => {
                        tracing::info!(epoch = leadership.epoch, "leads the cluster");
                        self.epoch.store(leadership.epoch, Ordering::Release);
                        // Whatever the previous leader drove, this one
                        // continues, and the history says so.
                        control.lead_canaries(leadership.epoch, true).await;
                        Some(leadership)
                    }
                    Ok(None) => None,
                    Err(e) => {
                        tracing::debug!(error = %e, "cannot campaign for leadership");
                        None
                    }
                },
            };
            if let Some(leadership) = &held {
                control.lead_canaries(leadership.epoch, false).await;
            }
            tokio::time::sleep(self.config.heartbeat_interval).await;
        }
    }

    /// Publishes this node's counters of versions under a canary, for the
    /// leader to judge it by, every [`PUBLISH_INTERVAL`].
    async fn publish(self: Arc<Self>, control: Arc<Control>) {
        loop {
            tokio::time::sleep(PUBLISH_INTERVAL).await;
            if self.left.load(Ordering::Acquire) {
                return;
            }
            let counters: Vec<Counters> = control
                .canary_counters()
                .into_iter()
                .map(|(function, version, totals)| Counters {
                    function,
                    version,
                    requests: totals.requests,
                    errors: totals.errors,
                    buckets: totals.buckets,
                })
                .collect();
            if counters.is_empty() {
                continue;
            }
            if let Err(e) = self.registry.publish_counters(&self.id, &counters).await {
                tracing::debug!(error = %e, "cannot publish canary counters");
            }
        }
    }

    /// Re-reads the registry when woken by a notification, after the LISTEN
    /// connection comes back, and every poll interval.
    async fn listen_and_follow(self: Arc<Self>, control: Arc<Control>) {
        let hint = Arc::new(Notify::new());
        tokio::spawn(self.clone().listen(hint.clone()));
        let mut poll = tokio::time::interval(self.config.poll_interval);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = hint.notified() => {}
                _ = poll.tick() => {}
            }
            self.follow(&control).await;
        }
    }

    async fn follow(&self, control: &Control) {
        let before = control.applied_version();
        match control.follow_registry().await {
            Ok(applied) => {
                self.reached(Ok(()));
                if applied > before {
                    // Reported once the live versions are loaded: `--wait`
                    // then means "serves it", not "has read it".
                    control.load_live().await;
                    tracing::debug!(from = before, to = applied, "applied registry changes");
                }
                if self.applied.fetch_max(applied, Ordering::AcqRel) < applied {
                    self.report.notify_one();
                    let epoch = self.epoch.load(Ordering::Acquire);
                    if epoch != 0 {
                        control.lead_canaries(epoch, false).await;
                    }
                }
            }
            Err(e) => {
                let e = StoreError::Backend(format!("{e:#}"));
                self.reached(Err(&e));
            }
        }
    }

    /// Holds a LISTEN connection and turns each notification, and each
    /// reconnection, into a hint.
    async fn listen(self: Arc<Self>, hint: Arc<Notify>) {
        loop {
            let mut listener = match self.registry.listener(&self.id).await {
                Ok(listener) => listener,
                Err(e) => {
                    tracing::debug!(error = %e, "cannot LISTEN on the registry; retrying");
                    tokio::time::sleep(START_RETRY).await;
                    continue;
                }
            };
            // Whatever was notified while no connection listened is lost.
            hint.notify_one();
            loop {
                match listener.try_recv().await {
                    Ok(Some(_)) => hint.notify_one(),
                    Ok(None) => {
                        tracing::info!("the registry's LISTEN connection was lost; re-reading");
                        hint.notify_one();
                    }
                    Err(e) => {
                        tracing::info!(error = %e, "the registry's LISTEN connection failed; reconnecting");
                        break;
                    }
                }
            }
            tokio::time::sleep(START_RETRY).await;
        }
    }
}

impl Membership for Node {
    fn state(&self) -> NodeState {
        state_of(self.state.load(Ordering::Acquire))
    }

    fn leader_epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    fn counters(&self, function: &str, version: u32) -> BoxFuture<'_, Option<Totals>> {
        let function = function.to_string();
        Box::pin(async move {
            let rows = self.registry.counters(&function, version).await.ok()?;
            let mut sum = Totals::default();
            for row in rows {
                let mut node = Totals {
                    requests: row.requests,
                    errors: row.errors,
                    ..Totals::default()
                };
                for (slot, n) in node.buckets.iter_mut().zip(row.buckets) {
                    *slot = n;
                }
                sum.add(&node);
            }
            Some(sum)
        })
    }

    fn nodes(&self) -> BoxFuture<'_, NodesView> {
        Box::pin(async move {
            let live_ms = (self.config.heartbeat_interval * LIVE_HEARTBEATS).as_millis() as u64;
            match self.registry.nodes(FORGET_AFTER).await {
                Ok(list) => NodesView {
                    registry_version: list.version,
                    registry: "shared",
                    registry_reachable: true,
                    leader_epoch: list.epoch,
                    nodes: list
                        .nodes
                        .into_iter()
                        .map(|row| NodeView {
                            lag: list.version.saturating_sub(row.applied_version),
                            leader: row.id == list.leader,
                            live: row.heartbeat_age_ms <= live_ms && row.state != "draining",
                            this: row.id == self.id,
                            id: row.id,
                            address: row.address,
                            applied_version: row.applied_version,
                            state: row.state,
                            heartbeat_age_ms: row.heartbeat_age_ms,
                        })
                        .collect(),
                },
                Err(e) => {
                    tracing::debug!(error = %e, "cannot read the node list");
                    NodesView::only_this(
                        "shared",
                        false,
                        (self.id.clone(), self.address.clone()),
                        self.applied.load(Ordering::Acquire),
                        self.state(),
                        self.leader_epoch() != 0,
                    )
                }
            }
        })
    }
}
