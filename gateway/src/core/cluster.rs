//! This node among others: what the core knows of cluster mode.
//!
//! The cluster adapter (`crate::cluster`) follows a shared registry and
//! installs itself as the [`Membership`]; the core then answers "which
//! nodes serve which registry version" through it. Without one, Flint is a
//! single node and the view holds only itself.

use super::Control;
use super::window::Totals;
use futures::future::BoxFuture;
use serde::Serialize;
use std::sync::Arc;

/// A node's own account of itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    /// Loading the registry: not ready for traffic.
    Starting,
    /// Serving, and following the registry.
    Ready,
    /// Serving what it has, but the registry cannot be reached: changes
    /// made meanwhile are not served here yet.
    Degraded,
    /// Stopping: finishing what it has, taking nothing new.
    Draining,
}

impl NodeState {
    /// The name as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Ready => "ready",
            Self::Degraded => "degraded",
            Self::Draining => "draining",
        }
    }
}

/// One node as the registry last heard of it.
#[derive(Debug, Clone, Serialize)]
pub struct NodeView {
    /// Its id (unique per process).
    pub id: String,
    /// The address it advertises.
    pub address: String,
    /// The registry version its memory reflects.
    pub applied_version: u64,
    /// Registry versions it is behind.
    pub lag: u64,
    /// What it last said of itself (`starting`, `ready`, `degraded`,
    /// `draining`).
    pub state: String,
    /// Milliseconds since its last heartbeat.
    pub heartbeat_age_ms: u64,
    /// Whether its heartbeat is recent enough to count it as live.
    pub live: bool,
    /// Whether it is the node that answered.
    pub this: bool,
    /// Whether it leads: the one node that collects garbage in the shared
    /// blob store.
    pub leader: bool,
}

/// The nodes serving the registry.
#[derive(Debug, Clone, Serialize)]
pub struct NodesView {
    /// The registry version now (0 for an embedded registry).
    pub registry_version: u64,
    /// `shared` (PostgreSQL, several nodes) or `embedded` (one node).
    pub registry: &'static str,
    /// Whether the answering node could read the registry: when it cannot,
    /// `nodes` holds only itself, and says nothing of the others.
    pub registry_reachable: bool,
    /// The leader's epoch: one more with each change of leader (0 for an
    /// embedded registry).
    pub leader_epoch: u64,
    /// Every node with a recent heartbeat.
    pub nodes: Vec<NodeView>,
}

impl NodesView {
    /// A view that holds only the answering node: a single node, or one
    /// that cannot read the shared registry (and so says nothing of the
    /// others).
    pub fn only_this(
        registry: &'static str,
        registry_reachable: bool,
        node: (String, String),
        applied_version: u64,
        state: NodeState,
        leader: bool,
    ) -> Self {
        let (id, address) = node;
        Self {
            registry_version: 0,
            registry,
            registry_reachable,
            leader_epoch: 0,
            nodes: vec![NodeView {
                id,
                address,
                applied_version,
                lag: 0,
                state: state.as_str().into(),
                heartbeat_age_ms: 0,
                live: true,
                this: true,
                leader,
            }],
        }
    }
}

/// What the cluster adapter tells the core.
pub trait Membership: Send + Sync + 'static {
    /// This node's state.
    fn state(&self) -> NodeState;
    /// The nodes and the registry version, as the registry has them.
    fn nodes(&self) -> BoxFuture<'_, NodesView>;
    /// The epoch of this node's leadership; 0 while it does not lead.
    fn leader_epoch(&self) -> u64;
    /// The sum of every node's published counters of `function`'s
    /// `version`; `None` when the registry cannot be read.
    fn counters(&self, function: &str, version: u32) -> BoxFuture<'_, Option<Totals>>;
}

impl Control {
    /// Loads the live versions (those the default alias reaches) that are
    /// not loaded yet, and returns when they are: a node is ready only
    /// then.
    pub async fn load_live(&self) {
        self.s.table.load_live().await;
    }

    /// Installs the cluster adapter (it does, at start).
    pub fn set_membership(&self, membership: Arc<dyn Membership>) {
        *self.s.membership.write().unwrap() = Some(membership);
    }

    /// Whether this node shares its registry with others.
    pub(super) fn in_cluster(&self) -> bool {
        self.s.membership.read().unwrap().is_some()
    }

    fn membership(&self) -> Option<Arc<dyn Membership>> {
        self.s.membership.read().unwrap().clone()
    }

    /// Whether this node does the work only one node may do (a single
    /// node always does).
    pub fn leads(&self) -> bool {
        self.membership().is_none_or(|m| m.leader_epoch() != 0)
    }

    /// The epoch of this node's leadership in a cluster (0 when it does
    /// not lead, and on a single node).
    pub fn leader_epoch(&self) -> u64 {
        self.membership().map_or(0, |m| m.leader_epoch())
    }

    /// In a cluster, every node's counters of `function`'s `version`
    /// summed; `None` on a single node or when the registry is out of
    /// reach.
    pub(super) async fn cluster_counters(&self, function: &str, version: u32) -> Option<Totals> {
        let membership = self.membership()?;
        membership.counters(function, version).await
    }

    /// This node's counters of every version of the functions under a
    /// running canary: what it publishes for the leader.
    pub fn canary_counters(&self) -> Vec<(String, u32, Totals)> {
        let running = self.s.running_canaries.read().unwrap().clone();
        running
            .into_iter()
            .filter_map(|function| self.s.table.get(&function))
            .flat_map(|entry| {
                let name = entry.name.clone();
                entry
                    .windows
                    .all()
                    .into_iter()
                    .map(move |(version, totals)| (name.clone(), version, totals))
            })
            .collect()
    }

    /// This node's state (`ready` for a single node once it serves).
    pub fn node_state(&self) -> NodeState {
        self.membership().map_or(NodeState::Ready, |m| m.state())
    }

    /// The nodes serving the registry, this one included.
    pub async fn nodes(&self) -> NodesView {
        match self.membership() {
            Some(membership) => membership.nodes().await,
            None => NodesView::only_this(
                "embedded",
                true,
                ("local".into(), self.s.config.listen.to_string()),
                0,
                NodeState::Ready,
                true,
            ),
        }
    }
}
