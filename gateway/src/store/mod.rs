//! Storage: the registry of what functions exist ([`Store`]) and the
//! component bytes ([`BlobStore`]).
//!
//! Both are traits with two implementations: the embedded defaults
//! (SQLite, blob files) for one node, and PostgreSQL ([`PgRegistry`],
//! [`PgBlobStore`]) for several nodes on one source of truth; the core, the
//! router and the runtime are the same on either. Every call is asynchronous: a
//! commit waits for its fsync off the runtime's workers ([`SqliteStore`]
//! runs SQLite on a thread of its own).
//!
//! The store knows rows, not rules: the core decides what to write and
//! keeps memory in step with it ([`crate::core`]).

pub mod archive;
mod blobs;
mod postgres;
mod rows;
mod sqlite;

pub use blobs::{BlobStore, FsBlobStore};
pub use postgres::{
    CHANNEL, Counters, Leadership, Migrated, NodeList, NodeRow, PgBlobStore, PgRegistry,
    SCHEMA_VERSION, migrate, redact,
};
pub use sqlite::SqliteStore;

use flint_spec::alias::AliasTarget;
use flint_spec::canary::CanaryState;
use flint_spec::history::HistoryEntry;
use flint_spec::shadow::ShadowSpec;
use flint_spec::{Digest, FunctionConfig, FunctionKind, Glob, ScheduleSpec, Scope, TriggerSpec};
use futures::future::BoxFuture;
use std::time::SystemTime;

/// A function as stored.
#[derive(Debug, Clone)]
pub struct FunctionRecord {
    /// Its name.
    pub name: String,
    /// Its effective configuration.
    pub config: FunctionConfig,
    /// When it was first deployed.
    pub created_at: SystemTime,
    /// When it last changed (version or config).
    pub updated_at: SystemTime,
}

/// One immutable version of a function.
#[derive(Debug, Clone)]
pub struct VersionRecord {
    /// 1, 2, ... per function.
    pub version: u32,
    /// Content digest of the component.
    pub digest: Digest,
    /// Component size in bytes.
    pub size_bytes: u64,
    /// Compile time at upload, in milliseconds.
    pub compile_ms: f64,
    /// When it was deployed.
    pub created_at: SystemTime,
    /// What its Wasm is: a `wasi:http` component or a WAGI module.
    pub kind: FunctionKind,
}

/// An API token as stored: its secret only as a hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// Its unique name, the actor of what it changes.
    pub name: String,
    /// SHA-256 of the secret, in hex.
    pub hash: String,
    /// What it may do.
    pub scope: Scope,
    /// The functions it covers (none: every function).
    pub functions: Vec<Glob>,
    /// The secrets it may reference (none: no secret, unless admin).
    pub secrets: Vec<Glob>,
    /// When it was created.
    pub created_at: SystemTime,
    /// When it stops working, if ever.
    pub expires_at: Option<SystemTime>,
    /// When it was last used, as last recorded.
    pub last_used_at: Option<SystemTime>,
}

/// A cron schedule as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleRecord {
    /// Its id, unique in the registry.
    pub id: String,
    /// The function it invokes.
    pub function: String,
    /// What it does.
    pub spec: ScheduleSpec,
    /// The last tick claimed (Unix seconds): no tick at or before it fires
    /// again. At creation, the creation time.
    pub last_tick: i64,
    /// When it was created.
    pub created_at: SystemTime,
}

/// One firing of a schedule, as recorded after it ran.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    /// The tick it ran for (Unix seconds).
    pub scheduled: i64,
    /// When the call started.
    pub started_at: SystemTime,
    /// `ok`, `bad_status` (the function answered other than 2xx),
    /// `response_failed` or the error code of the call.
    pub outcome: String,
    /// The function's HTTP status, when it answered.
    pub status: Option<u16>,
    /// How long the call took, in milliseconds.
    pub duration_ms: f64,
    /// Whether it was the catch-up run of a missed tick.
    pub catch_up: bool,
    /// The start of the function's response body (at most
    /// [`flint_spec::schedule::MAX_RUN_RESPONSE_BYTES`], as text), or the
    /// error's message when the call failed.
    pub response: Option<String>,
}

/// One row of a function's release state.
#[derive(Debug, Clone)]
pub enum ReleaseRow {
    /// A named alias and where it points.
    Alias(String, AliasTarget),
    /// The alias plain calls follow (none stored: `latest`).
    DefaultAlias(String),
    /// The function's most recent canary.
    Canary(CanaryState),
    /// The shadow run that is on.
    Shadow(ShadowSpec),
}

/// A change of one release-state row.
#[derive(Debug, Clone)]
pub enum ReleaseChange {
    /// Sets an alias.
    SetAlias(String, AliasTarget),
    /// Removes an alias (and the default, if it was the default).
    RemoveAlias(String),
    /// Sets (`Some`) or clears (`None`: back to `latest`) the default alias.
    SetDefault(Option<String>),
    /// Records the canary's state.
    SetCanary(CanaryState),
    /// Starts (`Some`) or stops (`None`) the shadow run.
    SetShadow(Option<ShadowSpec>),
}

/// What the store holds, read in one transaction.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The registry version it reflects: every write to a shared registry
    /// bumps it, in commit order (always 0 for the embedded one).
    pub version: u64,
    /// Every function with its versions (oldest first), by name.
    pub functions: Vec<(FunctionRecord, Vec<VersionRecord>)>,
    /// Every trigger binding, by function.
    pub triggers: Vec<(String, TriggerSpec)>,
    /// Every release-state row, by function.
    pub releases: Vec<(String, ReleaseRow)>,
    /// Every route: (function, pattern).
    pub routes: Vec<(String, String)>,
    /// Every API token that parses (one that does not is logged and left
    /// out: it cannot be used).
    pub tokens: Vec<TokenRecord>,
    /// Rows that did not parse, by function: the rest of the snapshot is
    /// whole, and the core disables only these functions. A function whose
    /// config row is broken is in `functions` with the default config.
    pub broken: Vec<BrokenRow>,
}

/// What changed in a shared registry after a version: the functions the
/// changes touched, as they are now (see [`Store::load_since`]).
#[derive(Debug, Clone)]
pub struct Changed {
    /// Those functions (the ones still there) with their versions,
    /// triggers, release state and routes; no tokens.
    pub snapshot: Snapshot,
    /// The functions the changes touched, deleted ones included.
    pub functions: std::collections::BTreeSet<String>,
}

/// A stored row that did not parse (a config, a version's digest, a
/// trigger or a release-state row), reported against its function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenRow {
    /// The function the row belongs to.
    pub function: String,
    /// Which kind of row it is.
    pub kind: BrokenKind,
    /// The version, for a version row.
    pub version: Option<u32>,
    /// What is wrong with it.
    pub reason: String,
}

/// The kinds of row a [`BrokenRow`] can be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokenKind {
    /// The function's config.
    Config,
    /// A version (its digest).
    Version,
    /// The queue trigger.
    Trigger,
    /// A release-state row (alias, default alias, canary, shadow).
    Release,
    /// A schedule (reported by [`Store::broken_schedules`]; it never
    /// disables its function).
    Schedule,
}

/// One write. [`Store::commit`] makes a list of them in one transaction:
/// all or none.
#[derive(Debug, Clone)]
pub enum Change {
    /// Records a new version unless `digest` equals the latest one's;
    /// creates the function with `default_config` if it does not exist.
    AddVersion {
        /// The function.
        name: String,
        /// The component's digest.
        digest: Digest,
        /// Its size.
        size_bytes: u64,
        /// Its compile time at upload.
        compile_ms: f64,
        /// What its Wasm is.
        kind: FunctionKind,
        /// The configuration of a function created by this change (boxed:
        /// it is most of the change's size).
        default_config: Box<FunctionConfig>,
        /// The number the version must get (a plan's promise); another
        /// number is a [`StoreError::Conflict`].
        expected: Option<u32>,
    },
    /// Replaces a function's configuration.
    SetConfig {
        /// The function.
        name: String,
        /// Its new configuration (boxed, as in `AddVersion`).
        config: Box<FunctionConfig>,
    },
    /// Deletes a function with its versions, trigger, schedules, routes
    /// and release state.
    DeleteFunction {
        /// The function.
        name: String,
    },
    /// Sets (`Some`) or removes (`None`) a function's trigger.
    SetTrigger {
        /// The function.
        function: String,
        /// The binding.
        spec: Option<TriggerSpec>,
    },
    /// Changes one release-state row and appends its history entry
    /// (boxed: release rows are most of a change's size).
    Release(Box<ReleaseWrite>),
    /// Replaces a function's route patterns.
    SetRoutes {
        /// The function.
        function: String,
        /// Its patterns, normalised.
        patterns: Vec<String>,
    },
    /// Adds an API token unless one of that name exists.
    AddToken(Box<TokenRecord>),
    /// Deletes an API token.
    RevokeToken {
        /// The token's name.
        name: String,
    },
    /// Refuses the whole transaction (a [`StoreError::Conflict`]) unless
    /// `epoch` is the leader's epoch and `function`'s canary is running: the
    /// fence of a canary driver's writes in a cluster. The embedded
    /// registry has one node and nothing to fence.
    Fence {
        /// The leadership the writer drives under.
        epoch: u64,
        /// The function whose canary it drives.
        function: String,
    },
    /// Adds a schedule to its function (nothing if the function is gone).
    AddSchedule(Box<ScheduleRecord>),
    /// Removes one schedule of a function, with its runs.
    RemoveSchedule {
        /// The function.
        function: String,
        /// The schedule's id.
        id: String,
    },
    /// Claims ticks of a schedule: moves its last tick from `from` to `to`
    /// only if it is still `from` (compare-and-set). Of several claimers
    /// of one tick, on one node or many, exactly one finds it applied; it
    /// alone fires. Changes nothing a node serves (no registry version).
    ClaimTick {
        /// The function.
        function: String,
        /// The schedule's id.
        id: String,
        /// The last tick the claimer read.
        from: i64,
        /// The tick it claims.
        to: i64,
    },
    /// Records a run of a schedule, keeping only its most recent
    /// [`flint_spec::schedule::MAX_RUNS`] runs. Changes nothing a node
    /// serves (no registry version).
    RecordRun {
        /// The function.
        function: String,
        /// The schedule's id.
        id: String,
        /// The run (boxed: it is most of the change's size).
        run: Box<RunRecord>,
    },
    /// Records when a token was last used.
    TokenUsed {
        /// The token's name.
        name: String,
        /// When.
        at: SystemTime,
    },
}

/// A release-state change with the history entry recorded with it.
#[derive(Debug, Clone)]
pub struct ReleaseWrite {
    /// The function.
    pub function: String,
    /// The row's change.
    pub change: ReleaseChange,
    /// The history entry recorded with it.
    pub history: Option<HistoryEntry>,
}

impl Change {
    /// The function the change is about, if it is about one.
    pub fn function(&self) -> Option<&str> {
        match self {
            Self::AddVersion { name, .. }
            | Self::SetConfig { name, .. }
            | Self::DeleteFunction { name } => Some(name),
            Self::SetTrigger { function, .. }
            | Self::SetRoutes { function, .. }
            | Self::Fence { function, .. }
            | Self::RemoveSchedule { function, .. }
            | Self::ClaimTick { function, .. }
            | Self::RecordRun { function, .. } => Some(function),
            Self::AddSchedule(record) => Some(&record.function),
            Self::Release(release) => Some(&release.function),
            Self::AddToken(_) | Self::RevokeToken { .. } | Self::TokenUsed { .. } => None,
        }
    }

    /// A [`Change::Release`].
    pub fn release(function: &str, change: ReleaseChange, history: Option<HistoryEntry>) -> Self {
        Self::Release(Box::new(ReleaseWrite {
            function: function.to_string(),
            change,
            history,
        }))
    }
}

/// What [`Change::AddVersion`] did.
#[derive(Debug, Clone)]
pub struct AddedVersion {
    /// The version now latest.
    pub record: VersionRecord,
    /// False when the bytes equal the latest version's (no new version).
    pub created: bool,
}

/// What one [`Change`] did.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Of [`Change::AddVersion`].
    Version(AddedVersion),
    /// Of the other changes: whether a row was there to change.
    Applied(bool),
}

impl Outcome {
    /// Whether a change other than [`Change::AddVersion`] found its row.
    pub fn applied(&self) -> bool {
        matches!(self, Self::Applied(true))
    }
}

/// A storage failure.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Another writer got there first (a version number was taken
    /// meanwhile); reading again and retrying can succeed.
    #[error("concurrent change: {0}")]
    Conflict(String),
    /// The backend failed.
    #[error("storage: {0}")]
    Backend(String),
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        Self::Backend(format!("bad stored JSON: {e}"))
    }
}

/// Result of store calls.
pub type StoreResult<T> = Result<T, StoreError>;

/// Persistent function metadata.
pub trait Store: Send + Sync + 'static {
    /// Everything, read in one transaction.
    fn load(&self) -> BoxFuture<'_, StoreResult<Snapshot>>;
    /// What changed after `version`, when every change since touched only
    /// functions and is still recorded; `None` when only a whole
    /// [`Store::load`] will do (always, for the embedded registry).
    fn load_since(&self, version: u64) -> BoxFuture<'_, StoreResult<Option<Changed>>> {
        let _ = version;
        Box::pin(async { Ok(None) })
    }
    /// Every release-state row, by function (canary states among them).
    fn releases(&self) -> BoxFuture<'_, StoreResult<Vec<(String, ReleaseRow)>>>;
    /// Whether any version of any function uses `digest`.
    fn digest_in_use(&self, digest: Digest) -> BoxFuture<'_, StoreResult<bool>>;
    /// A function's release history, oldest first.
    fn history(&self, function: String) -> BoxFuture<'_, StoreResult<Vec<HistoryEntry>>>;
    /// Makes `changes` in one transaction; one outcome per change.
    fn commit(&self, changes: Vec<Change>) -> BoxFuture<'_, StoreResult<Vec<Outcome>>>;
    /// Writes a consistent copy of the whole registry to the file `to`
    /// while the store stays in use.
    fn backup(&self, to: std::path::PathBuf) -> BoxFuture<'_, StoreResult<()>>;
    /// Removes bookkeeping older than `age` that nothing needs any more:
    /// a shared registry's change log and the rows of nodes silent that
    /// long. Returns the rows removed (always 0 for the embedded registry).
    fn prune(&self, age: std::time::Duration) -> BoxFuture<'_, StoreResult<u64>> {
        let _ = age;
        Box::pin(async { Ok(0) })
    }
    /// Every schedule, or those of `function`, oldest first. A row whose
    /// spec does not parse is logged and left out: it cannot fire.
    fn schedules(
        &self,
        function: Option<String>,
    ) -> BoxFuture<'_, StoreResult<Vec<ScheduleRecord>>>;
    /// The stored schedules that cannot fire: a spec that does not parse,
    /// or one this build cannot use (a time zone it does not know, say).
    fn broken_schedules(&self) -> BoxFuture<'_, StoreResult<Vec<BrokenRow>>>;
    /// The recorded runs of `function`'s schedules, by schedule id, newest
    /// first.
    fn schedule_runs(
        &self,
        function: String,
    ) -> BoxFuture<'_, StoreResult<Vec<(String, RunRecord)>>>;
    /// The registry version now (see [`Snapshot::version`]); 0 for a
    /// registry that only this process writes.
    fn version(&self) -> BoxFuture<'_, StoreResult<u64>> {
        Box::pin(async { Ok(0) })
    }
}
