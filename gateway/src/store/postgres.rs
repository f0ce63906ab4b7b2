//! The shared registry of cluster mode: PostgreSQL through sqlx, so that
//! several identical nodes serve one source of truth.
//!
//! - Every write transaction first bumps the one-row `registry` version.
//!   The row lock serialises writers, so versions follow commit order (a
//!   sequence would not). The transaction records what it changed in
//!   `registry_changes` and sends `NOTIFY flint_registry` with the version:
//!   a hint, delivered at commit, that nodes re-read from.
//! - A [`Snapshot`] is read in one `REPEATABLE READ` transaction and carries
//!   the version it reflects.
//! - Component bytes live in `blob_chunks`, [`CHUNK`] bytes a row, behind
//!   [`PgBlobStore`]; compiled artifacts stay in each node's cache.
//! - `nodes` holds each node's address, applied version and heartbeat.
//! - The schema changes only through [`migrate`]: one step, under
//!   PostgreSQL's advisory lock, each migration in its own transaction.

use super::rows::{
    self, ALIAS, CANARY, DEFAULT, NextVersion, RawFunction, RawRelease, RawRun, RawSchedule,
    RawToken, RawVersion, SHADOW, from_ms, now_ms, to_ms,
};
use super::{
    BlobStore, Change, Changed, Outcome, ReleaseChange, ReleaseRow, RunRecord, ScheduleRecord,
    Snapshot, Store, StoreError, StoreResult, VersionRecord,
};
use bytes::Bytes;
use flint_runtime::fsutil::Swept;
use flint_spec::Digest;
use flint_spec::history::HistoryEntry;
use futures::future::BoxFuture;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use sqlx::{Connection, PgConnection, Postgres, Transaction};
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// The channel every write notifies, with its registry version.
pub const CHANNEL: &str = "flint_registry";

/// Bytes of a component per `blob_chunks` row.
const CHUNK: usize = 1 << 20;

/// Connections of a node's pool (its LISTEN connection is extra).
const POOL_SIZE: u32 = 8;

/// How long a call waits for a connection before the registry counts as
/// unreachable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// The schema's migrations, oldest first. A migration is never edited once
/// released (its checksum is recorded); a change is a new one, expand then
/// contract, so that nodes of the previous release keep working.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "registry",
        include_str!("../../migrations/0001_registry.sql"),
    ),
    (
        2,
        "leader",
        include_str!("../../migrations/0002_leader.sql"),
    ),
    (
        3,
        "version kind",
        include_str!("../../migrations/0003_version_kind.sql"),
    ),
    (
        4,
        "schedules",
        include_str!("../../migrations/0004_schedules.sql"),
    ),
];

/// The advisory lock whose holder leads (any constant; one per database).
const LEADER_LOCK: i64 = 0x666c_696e_745f_6c64;

/// The schema version this build needs.
pub const SCHEMA_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].0;

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e.as_database_error().and_then(|d| d.code()) {
            // unique_violation: a version number or name taken meanwhile.
            Some(code) if code == "23505" => Self::Conflict(e.to_string()),
            _ => Self::Backend(e.to_string()),
        }
    }
}

/// `url` without its password, for messages and logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

fn options(url: &str, application: &str) -> StoreResult<PgConnectOptions> {
    Ok(PgConnectOptions::from_str(url)
        .map_err(|e| {
            StoreError::Backend(format!(
                "`{}` is not a PostgreSQL URL ({e}); write postgres://USER:PASSWORD@HOST:5432/DATABASE",
                redact(url)
            ))
        })?
        .application_name(application))
}

/// The migrations as sqlx runs them.
fn migrations() -> Vec<Migration> {
    MIGRATIONS
        .iter()
        .map(|(version, name, sql)| {
            Migration::new(
                *version,
                (*name).into(),
                MigrationType::Simple,
                sqlx::SqlStr::from_static(sql),
                false,
            )
        })
        .collect()
}

/// What [`migrate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migrated {
    /// The schema version before.
    pub from: i64,
    /// The schema version after.
    pub to: i64,
}

/// Applies the schema migrations the registry at `url` lacks, on a
/// connection of its own, as one step: PostgreSQL's advisory lock lets one
/// migrator in at a time (the others wait, then find nothing to do), and
/// `lock_timeout` bounds every wait for a lock. Each migration runs in its
/// own transaction, so a failing one changes nothing. The connection is
/// closed at the end, and with it any lock it held.
pub async fn migrate(url: &str, lock_timeout: Duration) -> StoreResult<Migrated> {
    let mut migrator = Migrator::with_migrations(migrations());
    // A registry already migrated by a newer release stays usable by this
    // one: schemas change expand-then-contract.
    migrator.set_ignore_missing(true);
    migrate_with(url, lock_timeout, migrator).await
}

async fn migrate_with(
    url: &str,
    lock_timeout: Duration,
    migrator: Migrator,
) -> StoreResult<Migrated> {
    let timeout = format!("{}ms", lock_timeout.as_millis().max(1));
    let options = options(url, "flint-migrate")?.options([("lock_timeout", timeout.as_str())]);
    let mut conn = PgConnection::connect_with(&options)
        .await
        .map_err(|e| unreachable(url, e))?;
    let result = migrate_locked(&mut conn, migrator).await;
    let _ = conn.close().await;
    result
}

/// Takes the migration lock (so that `from` is what this run found), then
/// migrates; closing the connection releases the lock, also on failure.
async fn migrate_locked(conn: &mut PgConnection, mut migrator: Migrator) -> StoreResult<Migrated> {
    sqlx::query("SELECT pg_advisory_lock(hashtext('flint-migrate'))")
        .execute(&mut *conn)
        .await
        .map_err(|e| StoreError::Backend(format!("cannot take the migration lock: {e}")))?;
    let from = schema_version(conn).await?;
    migrator.set_locking(false);
    migrator
        .run(&mut *conn)
        .await
        .map_err(|e| StoreError::Backend(format!("migration failed: {e}")))?;
    let to = schema_version(conn).await?;
    sqlx::query("SELECT pg_advisory_unlock(hashtext('flint-migrate'))")
        .execute(&mut *conn)
        .await?;
    Ok(Migrated { from, to })
}

/// The newest migration applied (0: none).
async fn schema_version(conn: &mut PgConnection) -> StoreResult<i64> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(&mut *conn)
        .await?;
    if !exists {
        return Ok(0);
    }
    Ok(
        sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations WHERE success")
            .fetch_one(&mut *conn)
            .await?,
    )
}

fn unreachable(url: &str, e: sqlx::Error) -> StoreError {
    StoreError::Backend(format!("cannot reach the registry at {}: {e}", redact(url)))
}

/// The PostgreSQL registry: a connection pool; cheap to share.
#[derive(Clone)]
pub struct PgRegistry {
    pool: PgPool,
    url: Arc<str>,
}

/// This node's leadership: the connection that holds the leader lock, and
/// the epoch it was granted.
pub struct Leadership {
    conn: PgConnection,
    /// The epoch: one more than the previous leader's.
    pub epoch: u64,
}

impl Leadership {
    /// Whether it still holds: the connection answers and no later epoch
    /// was granted.
    pub async fn confirm(&mut self) -> bool {
        let epoch: Result<i64, _> = sqlx::query_scalar("SELECT epoch FROM leader")
            .fetch_one(&mut self.conn)
            .await;
        matches!(epoch, Ok(e) if e as u64 == self.epoch)
    }

    /// Gives the leadership up (closing the connection frees the lock).
    pub async fn resign(self) {
        let _ = self.conn.close().await;
    }
}

/// A node as the `nodes` table holds it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NodeRow {
    /// Its id, unique per process.
    pub id: String,
    /// The address it serves on, as it advertises it.
    pub address: String,
    /// The registry version its memory reflects.
    pub applied_version: u64,
    /// `ready`, `starting`, `degraded` or `draining`, as it last said.
    pub state: String,
    /// Milliseconds since its last heartbeat, by the database's clock.
    pub heartbeat_age_ms: u64,
}

/// The nodes, as [`PgRegistry::nodes`] reads them.
#[derive(Debug, Clone)]
pub struct NodeList {
    /// The registry version.
    pub version: u64,
    /// The leader's node id (empty before any node led).
    pub leader: String,
    /// The leader's epoch.
    pub epoch: u64,
    /// The nodes.
    pub nodes: Vec<NodeRow>,
}

impl PgRegistry {
    /// Connects to the registry at `url`. A schema older than this build
    /// needs is an error that says to run `flint migrate`.
    pub async fn connect(url: &str, node: &str) -> StoreResult<Self> {
        let options = options(url, &format!("flint-node-{node}"))?;
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|e| unreachable(url, e))?;
        let registry = Self {
            pool,
            url: url.into(),
        };
        let schema = schema_version(&mut *registry.pool.acquire().await?).await?;
        if schema < SCHEMA_VERSION {
            return Err(StoreError::Backend(format!(
                "the registry at {} has schema version {schema}, and this flint needs {SCHEMA_VERSION}: run `flint migrate --registry URL` first",
                redact(url)
            )));
        }
        Ok(registry)
    }

    /// The blob store on the same database.
    pub fn blobs(&self) -> PgBlobStore {
        PgBlobStore {
            pool: self.pool.clone(),
        }
    }

    /// A connection that listens on [`CHANNEL`], named for `node` (so that
    /// an operator can find it in `pg_stat_activity`).
    pub async fn listener(&self, node: &str) -> StoreResult<PgListener> {
        let options = options(&self.url, &format!("flint-listen-{node}"))?;
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy_with(options);
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.listen(CHANNEL).await?;
        Ok(listener)
    }

    /// Records `node`'s heartbeat, address, state and applied version.
    pub async fn heartbeat(&self, node: &NodeRow) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO nodes (id, address, applied_version, state) VALUES ($1, $2, $3, $4)
             ON CONFLICT (id) DO UPDATE SET address = excluded.address,
                 applied_version = excluded.applied_version, state = excluded.state,
                 heartbeat_at = now()",
        )
        .bind(&node.id)
        .bind(&node.address)
        .bind(node.applied_version as i64)
        .bind(&node.state)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Tries to become the leader: on a connection of its own (named for
    /// `node`), takes the leader lock without waiting; on success bumps the
    /// epoch and records `node` as leader. The lock lasts as long as the
    /// connection: a leader that dies or loses the database frees it.
    pub async fn try_lead(&self, node: &str) -> StoreResult<Option<Leadership>> {
        let options = options(&self.url, &format!("flint-leader-{node}"))?;
        let mut conn = PgConnection::connect_with(&options).await?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(LEADER_LOCK)
            .fetch_one(&mut conn)
            .await?;
        if !locked {
            let _ = conn.close().await;
            return Ok(None);
        }
        let epoch: i64 = sqlx::query_scalar(
            "UPDATE leader SET epoch = epoch + 1, node = $1, since = now() RETURNING epoch",
        )
        .bind(node)
        .fetch_one(&mut conn)
        .await?;
        Ok(Some(Leadership {
            conn,
            epoch: epoch as u64,
        }))
    }

    /// Removes a node's row and its published counters (it stopped
    /// cleanly).
    pub async fn leave(&self, node: &str) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM nodes WHERE id = $1")
            .bind(node)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM canary_counters WHERE node = $1")
            .bind(node)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Publishes `node`'s counters of versions under a canary.
    pub async fn publish_counters(&self, node: &str, counters: &[Counters]) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        for c in counters {
            let buckets: Vec<i64> = c.buckets.iter().map(|&n| n as i64).collect();
            sqlx::query(
                "INSERT INTO canary_counters (function, version, node, requests, errors, buckets)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (function, version, node) DO UPDATE SET requests = excluded.requests,
                     errors = excluded.errors, buckets = excluded.buckets, updated_at = now()",
            )
            .bind(&c.function)
            .bind(c.version as i32)
            .bind(node)
            .bind(c.requests as i64)
            .bind(c.errors as i64)
            .bind(buckets)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Every node's published counters of `function`'s `version`.
    pub async fn counters(&self, function: &str, version: u32) -> StoreResult<Vec<Counters>> {
        let rows: Vec<(i64, i64, Vec<i64>)> = sqlx::query_as(
            "SELECT requests, errors, buckets FROM canary_counters WHERE function = $1 AND version = $2",
        )
        .bind(function)
        .bind(version as i32)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(requests, errors, buckets)| Counters {
                function: function.to_string(),
                version,
                requests: requests as u64,
                errors: errors as u64,
                buckets: buckets.into_iter().map(|n| n as u64).collect(),
            })
            .collect())
    }

    /// Every node with a heartbeat younger than `forget_after`, the
    /// registry version and the leader, read together.
    pub async fn nodes(&self, forget_after: Duration) -> StoreResult<NodeList> {
        let mut tx = self.pool.begin().await?;
        let version: i64 = sqlx::query_scalar("SELECT version FROM registry")
            .fetch_one(&mut *tx)
            .await?;
        let (leader, epoch): (String, i64) = sqlx::query_as("SELECT node, epoch FROM leader")
            .fetch_one(&mut *tx)
            .await?;
        let rows: Vec<(String, String, i64, String, f64)> = sqlx::query_as(
            "SELECT id, address, applied_version, state,
                    (EXTRACT(EPOCH FROM (now() - heartbeat_at)) * 1000)::DOUBLE PRECISION
             FROM nodes
             WHERE heartbeat_at > now() - make_interval(secs => $1)
             ORDER BY address, id",
        )
        .bind(forget_after.as_secs_f64())
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(NodeList {
            version: version as u64,
            leader,
            epoch: epoch as u64,
            nodes: rows
                .into_iter()
                .map(|(id, address, applied, state, age)| NodeRow {
                    id,
                    address,
                    applied_version: applied as u64,
                    state,
                    heartbeat_age_ms: age.max(0.0) as u64,
                })
                .collect(),
        })
    }
}

/// One node's counters of one version under a canary, as published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counters {
    /// The function.
    pub function: String,
    /// The version.
    pub version: u32,
    /// Requests finished.
    pub requests: u64,
    /// Of which errors.
    pub errors: u64,
    /// The latency histogram's counts.
    pub buckets: Vec<u64>,
}

async fn latest_version(
    tx: &mut Transaction<'_, Postgres>,
    name: &str,
) -> StoreResult<Option<VersionRecord>> {
    let row: Option<(i32, String, i64, f64, i64, String)> = sqlx::query_as(
        "SELECT version, digest, size_bytes, compile_ms, created_at_ms, kind FROM versions
         WHERE function = $1 ORDER BY version DESC LIMIT 1",
    )
    .bind(name)
    .fetch_optional(&mut **tx)
    .await?;
    let Some((version, digest, size, compile_ms, created, kind)) = row else {
        return Ok(None);
    };
    Ok(Some(VersionRecord {
        version: version as u32,
        digest: Digest::parse(&digest)
            .ok_or_else(|| StoreError::Backend(format!("bad stored digest `{digest}`")))?,
        size_bytes: size as u64,
        compile_ms,
        created_at: from_ms(created),
        kind: kind.parse().map_err(StoreError::Backend)?,
    }))
}

async fn put_release(
    tx: &mut Transaction<'_, Postgres>,
    function: &str,
    kind: &str,
    key: &str,
    value: Option<String>,
) -> StoreResult<u64> {
    let done = match value {
        Some(value) => {
            sqlx::query(
                "INSERT INTO release_state (function, kind, key, value)
                 SELECT name, $2, $3, $4 FROM functions WHERE name = $1
                 ON CONFLICT (function, kind, key) DO UPDATE SET value = excluded.value",
            )
            .bind(function)
            .bind(kind)
            .bind(key)
            .bind(value)
            .execute(&mut **tx)
            .await?
        }
        None => {
            sqlx::query("DELETE FROM release_state WHERE function = $1 AND kind = $2 AND key = $3")
                .bind(function)
                .bind(kind)
                .bind(key)
                .execute(&mut **tx)
                .await?
        }
    };
    Ok(done.rows_affected())
}

async fn write_release(
    tx: &mut Transaction<'_, Postgres>,
    function: &str,
    change: &ReleaseChange,
) -> StoreResult<u64> {
    match change {
        ReleaseChange::SetAlias(alias, target) => {
            let value = serde_json::to_string(target)?;
            put_release(tx, function, ALIAS, alias, Some(value)).await
        }
        ReleaseChange::RemoveAlias(alias) => {
            // A default that named the alias goes with it, as in SQLite.
            sqlx::query(
                "DELETE FROM release_state WHERE function = $1 AND kind = $2 AND value = $3",
            )
            .bind(function)
            .bind(DEFAULT)
            .bind(serde_json::to_string(alias)?)
            .execute(&mut **tx)
            .await?;
            put_release(tx, function, ALIAS, alias, None).await
        }
        ReleaseChange::SetDefault(alias) => {
            let value = alias.as_ref().map(serde_json::to_string).transpose()?;
            put_release(tx, function, DEFAULT, "", value).await
        }
        ReleaseChange::SetCanary(canary) => {
            let value = serde_json::to_string(canary)?;
            put_release(tx, function, CANARY, "", Some(value)).await
        }
        ReleaseChange::SetShadow(spec) => {
            let value = spec.as_ref().map(serde_json::to_string).transpose()?;
            put_release(tx, function, SHADOW, "", value).await
        }
    }
}

/// Makes one change inside the caller's transaction.
async fn write(tx: &mut Transaction<'_, Postgres>, change: &Change) -> StoreResult<Outcome> {
    let now = now_ms();
    let done = match change {
        Change::AddVersion {
            name,
            digest,
            size_bytes,
            compile_ms,
            kind,
            default_config,
            expected,
        } => {
            let version = match rows::next_version(name, latest_version(tx, name).await?, digest, *expected)? {
                NextVersion::Same(outcome) => return Ok(outcome),
                NextVersion::New(version) => version,
            };
            sqlx::query(
                "INSERT INTO functions (name, config, created_at_ms, updated_at_ms) VALUES ($1, $2, $3, $3)
                 ON CONFLICT (name) DO UPDATE SET updated_at_ms = excluded.updated_at_ms",
            )
            .bind(name)
            .bind(serde_json::to_string(default_config)?)
            .bind(now)
            .execute(&mut **tx)
            .await?;
            sqlx::query(
                "INSERT INTO versions (function, version, digest, size_bytes, compile_ms, created_at_ms, kind)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(name)
            .bind(version as i32)
            .bind(digest.to_string())
            .bind(*size_bytes as i64)
            .bind(compile_ms)
            .bind(now)
            .bind(kind.as_str())
            .execute(&mut **tx)
            .await?;
            return Ok(rows::added(version, digest, *size_bytes, *compile_ms, *kind, now));
        }
        Change::SetConfig { name, config } => sqlx::query(
            "UPDATE functions SET config = $2, updated_at_ms = $3 WHERE name = $1",
        )
        .bind(name)
        .bind(serde_json::to_string(config)?)
        .bind(now)
        .execute(&mut **tx)
        .await?
        .rows_affected(),
        Change::DeleteFunction { name } => sqlx::query("DELETE FROM functions WHERE name = $1")
            .bind(name)
            .execute(&mut **tx)
            .await?
            .rows_affected(),
        Change::SetTrigger {
            function,
            spec: Some(spec),
        } => sqlx::query(
            "INSERT INTO triggers (function, spec)
             SELECT name, $2 FROM functions WHERE name = $1
             ON CONFLICT (function) DO UPDATE SET spec = excluded.spec",
        )
        .bind(function)
        .bind(serde_json::to_string(spec)?)
        .execute(&mut **tx)
        .await?
        .rows_affected(),
        Change::SetTrigger {
            function,
            spec: None,
        } => sqlx::query("DELETE FROM triggers WHERE function = $1")
            .bind(function)
            .execute(&mut **tx)
            .await?
            .rows_affected(),
        Change::Release(release) => {
            let n = write_release(tx, &release.function, &release.change).await?;
            if let Some(entry) = &release.history {
                sqlx::query(
                    "INSERT INTO release_history (function, entry) SELECT name, $2 FROM functions WHERE name = $1",
                )
                .bind(&release.function)
                .bind(serde_json::to_string(entry)?)
                .execute(&mut **tx)
                .await?;
            }
            n
        }
        Change::SetRoutes { function, patterns } => {
            sqlx::query("DELETE FROM routes WHERE function = $1")
                .bind(function)
                .execute(&mut **tx)
                .await?;
            for pattern in patterns {
                sqlx::query("INSERT INTO routes (pattern, function) VALUES ($1, $2)")
                    .bind(pattern)
                    .bind(function)
                    .execute(&mut **tx)
                    .await?;
            }
            1
        }
        Change::AddToken(token) => sqlx::query(
            "INSERT INTO tokens (name, hash, scope, functions, secrets, created_at_ms, expires_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (name) DO NOTHING",
        )
        .bind(&token.name)
        .bind(&token.hash)
        .bind(token.scope.as_str())
        .bind(serde_json::to_string(&token.functions)?)
        .bind(serde_json::to_string(&token.secrets)?)
        .bind(to_ms(token.created_at))
        .bind(token.expires_at.map(to_ms))
        .execute(&mut **tx)
        .await?
        .rows_affected(),
        Change::RevokeToken { name } => sqlx::query("DELETE FROM tokens WHERE name = $1")
            .bind(name)
            .execute(&mut **tx)
            .await?
            .rows_affected(),
        Change::Fence { epoch, function } => {
            let holds: bool = sqlx::query_scalar(
                "SELECT (SELECT epoch FROM leader) = $1 AND EXISTS (
                     SELECT 1 FROM release_state
                     WHERE function = $2 AND kind = $3 AND value::jsonb ->> 'status' = 'running')",
            )
            .bind(*epoch as i64)
            .bind(function)
            .bind(CANARY)
            .fetch_one(&mut **tx)
            .await?;
            if !holds {
                return Err(StoreError::Conflict(format!(
                    "the canary of `{function}` is no longer driven under leader epoch {epoch}: another leader drives it, or it was stopped"
                )));
            }
            1
        }
        Change::AddSchedule(record) => sqlx::query(
            "INSERT INTO schedules (id, function, spec, last_tick, created_at_ms)
             SELECT $1, name, $3, $4, $5 FROM functions WHERE name = $2",
        )
        .bind(&record.id)
        .bind(&record.function)
        .bind(serde_json::to_string(&record.spec)?)
        .bind(record.last_tick)
        .bind(to_ms(record.created_at))
        .execute(&mut **tx)
        .await?
        .rows_affected(),
        Change::RemoveSchedule { function, id } => {
            sqlx::query("DELETE FROM schedules WHERE id = $1 AND function = $2")
                .bind(id)
                .bind(function)
                .execute(&mut **tx)
                .await?
                .rows_affected()
        }
        // Under READ COMMITTED, a second claimer of the same tick waits for
        // the first one's row lock, then finds `last_tick` moved: 0 rows.
        Change::ClaimTick {
            function,
            id,
            from,
            to,
        } => sqlx::query(
            "UPDATE schedules SET last_tick = $4 WHERE id = $1 AND function = $2 AND last_tick = $3",
        )
        .bind(id)
        .bind(function)
        .bind(from)
        .bind(to)
        .execute(&mut **tx)
        .await?
        .rows_affected(),
        Change::RecordRun { function, id, run } => {
            let n = sqlx::query(
                "INSERT INTO schedule_runs (schedule, scheduled, started_at_ms, outcome, status, duration_ms, catch_up, response)
                 SELECT id, $3, $4, $5, $6, $7, $8, $9 FROM schedules WHERE id = $1 AND function = $2",
            )
            .bind(id)
            .bind(function)
            .bind(run.scheduled)
            .bind(to_ms(run.started_at))
            .bind(&run.outcome)
            .bind(run.status.map(i32::from))
            .bind(run.duration_ms)
            .bind(run.catch_up)
            .bind(&run.response)
            .execute(&mut **tx)
            .await?
            .rows_affected();
            sqlx::query(
                "DELETE FROM schedule_runs WHERE schedule = $1 AND id NOT IN (
                     SELECT id FROM schedule_runs WHERE schedule = $1 ORDER BY id DESC LIMIT $2)",
            )
            .bind(id)
            .bind(flint_spec::schedule::MAX_RUNS as i64)
            .execute(&mut **tx)
            .await?;
            n
        }
        Change::TokenUsed { name, at } => {
            sqlx::query("UPDATE tokens SET last_used_at_ms = $2 WHERE name = $1")
                .bind(name)
                .bind(to_ms(*at))
                .execute(&mut **tx)
                .await?
                .rows_affected()
        }
    };
    Ok(Outcome::Applied(done >= 1))
}

async fn releases(
    tx: &mut Transaction<'_, Postgres>,
    scope: Option<Vec<String>>,
    broken: &mut Vec<super::BrokenRow>,
) -> StoreResult<Vec<(String, ReleaseRow)>> {
    let raw: Vec<RawRelease> = sqlx::query_as(
        "SELECT function, kind, key, value FROM release_state
         WHERE $1::TEXT[] IS NULL OR function = ANY($1) ORDER BY function, kind, key",
    )
    .bind(scope)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows::releases(raw, broken))
}

/// Opens a consistent, read-only view of the registry.
async fn read_transaction(pool: &PgPool) -> StoreResult<Transaction<'static, Postgres>> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

async fn registry_version(tx: &mut Transaction<'_, Postgres>) -> StoreResult<u64> {
    let version: i64 = sqlx::query_scalar("SELECT version FROM registry")
        .fetch_one(&mut **tx)
        .await?;
    Ok(version as u64)
}

/// Reads every function, or only those of `scope` (then without tokens),
/// with their versions, triggers, release state and routes.
async fn read(
    tx: &mut Transaction<'_, Postgres>,
    scope: Option<Vec<String>>,
) -> StoreResult<Snapshot> {
    let mut snapshot = Snapshot {
        version: registry_version(tx).await?,
        ..Snapshot::default()
    };
    let functions: Vec<RawFunction> = sqlx::query_as(
        "SELECT name, config, created_at_ms, updated_at_ms FROM functions
         WHERE $1::TEXT[] IS NULL OR name = ANY($1) ORDER BY name",
    )
    .bind(&scope)
    .fetch_all(&mut **tx)
    .await?;
    let all_versions: Vec<(String, i32, String, i64, f64, i64, String)> = sqlx::query_as(
        "SELECT function, version, digest, size_bytes, compile_ms, created_at_ms, kind FROM versions
         WHERE $1::TEXT[] IS NULL OR function = ANY($1) ORDER BY function, version",
    )
    .bind(&scope)
    .fetch_all(&mut **tx)
    .await?;
    let mut by_function: BTreeMap<String, Vec<RawVersion>> = BTreeMap::new();
    for (function, version, digest, size, compile_ms, created, kind) in all_versions {
        by_function.entry(function).or_default().push((
            version as u32,
            digest,
            size,
            compile_ms,
            created,
            kind,
        ));
    }
    for raw in functions {
        let record = rows::function(raw, &mut snapshot.broken);
        let raw = by_function.remove(&record.name).unwrap_or_default();
        let list = rows::versions(&record.name, raw, &mut snapshot.broken);
        snapshot.functions.push((record, list));
    }
    let triggers: Vec<(String, String)> = sqlx::query_as(
        "SELECT function, spec FROM triggers
         WHERE $1::TEXT[] IS NULL OR function = ANY($1) ORDER BY function",
    )
    .bind(&scope)
    .fetch_all(&mut **tx)
    .await?;
    snapshot.triggers = rows::triggers(triggers, &mut snapshot.broken);
    snapshot.releases = releases(tx, scope.clone(), &mut snapshot.broken).await?;
    snapshot.routes = sqlx::query_as(
        "SELECT function, pattern FROM routes
         WHERE $1::TEXT[] IS NULL OR function = ANY($1) ORDER BY function, pattern",
    )
    .bind(&scope)
    .fetch_all(&mut **tx)
    .await?;
    if scope.is_none() {
        let tokens: Vec<RawToken> = sqlx::query_as(
            "SELECT name, hash, scope, functions, secrets, created_at_ms, expires_at_ms, last_used_at_ms
             FROM tokens ORDER BY name",
        )
        .fetch_all(&mut **tx)
        .await?;
        snapshot.tokens = rows::tokens(tokens);
    }
    Ok(snapshot)
}

async fn load(pool: &PgPool) -> StoreResult<Snapshot> {
    let mut tx = read_transaction(pool).await?;
    let snapshot = read(&mut tx, None).await?;
    tx.commit().await?;
    Ok(snapshot)
}

/// What changed after `version`: the functions the changes touched, read
/// as they are now. `None` when a change touched more than functions (a
/// token), so that only a whole read will do.
async fn load_since(pool: &PgPool, version: u64) -> StoreResult<Option<Changed>> {
    let mut tx = read_transaction(pool).await?;
    let now = registry_version(&mut tx).await?;
    let changes: Vec<Vec<String>> = sqlx::query_scalar(
        "SELECT functions FROM registry_changes WHERE version > $1 ORDER BY version",
    )
    .bind(version as i64)
    .fetch_all(&mut *tx)
    .await?;
    if changes.len() as u64 != now.saturating_sub(version) || changes.iter().any(Vec::is_empty) {
        return Ok(None);
    }
    let functions: BTreeSet<String> = changes.into_iter().flatten().collect();
    let snapshot = read(&mut tx, Some(functions.iter().cloned().collect())).await?;
    tx.commit().await?;
    Ok(Some(Changed {
        snapshot,
        functions,
    }))
}

async fn commit(pool: &PgPool, changes: Vec<Change>) -> StoreResult<Vec<Outcome>> {
    let mut tx = pool.begin().await?;
    // A token's last use, a schedule's claimed tick and its runs change
    // nothing a node serves: they neither take the registry lock nor wake
    // the other nodes.
    let bumps = changes.iter().any(|c| {
        !matches!(
            c,
            Change::TokenUsed { .. } | Change::ClaimTick { .. } | Change::RecordRun { .. }
        )
    });
    let version: Option<i64> = if bumps {
        Some(
            sqlx::query_scalar("UPDATE registry SET version = version + 1 RETURNING version")
                .fetch_one(&mut *tx)
                .await?,
        )
    } else {
        None
    };
    let mut outcomes = Vec::with_capacity(changes.len());
    for change in &changes {
        outcomes.push(write(&mut tx, change).await?);
    }
    if let Some(version) = version {
        let functions: BTreeSet<&str> = changes.iter().filter_map(Change::function).collect();
        sqlx::query("INSERT INTO registry_changes (version, functions) VALUES ($1, $2)")
            .bind(version)
            .bind(functions.into_iter().collect::<Vec<_>>())
            .execute(&mut *tx)
            .await?;
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(version.to_string())
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(outcomes)
}

impl Store for PgRegistry {
    fn load(&self) -> BoxFuture<'_, StoreResult<Snapshot>> {
        Box::pin(load(&self.pool))
    }

    fn load_since(&self, version: u64) -> BoxFuture<'_, StoreResult<Option<Changed>>> {
        Box::pin(load_since(&self.pool, version))
    }

    fn releases(&self) -> BoxFuture<'_, StoreResult<Vec<(String, ReleaseRow)>>> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await?;
            let rows = releases(&mut tx, None, &mut Vec::new()).await?;
            tx.commit().await?;
            Ok(rows)
        })
    }

    fn digest_in_use(&self, digest: Digest) -> BoxFuture<'_, StoreResult<bool>> {
        Box::pin(async move {
            Ok(
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM versions WHERE digest = $1)")
                    .bind(digest.to_string())
                    .fetch_one(&self.pool)
                    .await?,
            )
        })
    }

    fn history(&self, function: String) -> BoxFuture<'_, StoreResult<Vec<HistoryEntry>>> {
        Box::pin(async move {
            let rows: Vec<String> = sqlx::query_scalar(
                "SELECT entry FROM release_history WHERE function = $1 ORDER BY id",
            )
            .bind(function)
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(|e| Ok(serde_json::from_str(e)?)).collect()
        })
    }

    fn commit(&self, changes: Vec<Change>) -> BoxFuture<'_, StoreResult<Vec<Outcome>>> {
        Box::pin(commit(&self.pool, changes))
    }

    fn schedules(
        &self,
        function: Option<String>,
    ) -> BoxFuture<'_, StoreResult<Vec<ScheduleRecord>>> {
        Box::pin(async move {
            let raw: Vec<RawSchedule> = sqlx::query_as(
                "SELECT id, function, spec, last_tick, created_at_ms FROM schedules
                 WHERE $1::TEXT IS NULL OR function = $1 ORDER BY created_at_ms, id",
            )
            .bind(function)
            .fetch_all(&self.pool)
            .await?;
            Ok(rows::schedules(raw))
        })
    }

    fn broken_schedules(&self) -> BoxFuture<'_, StoreResult<Vec<super::BrokenRow>>> {
        Box::pin(async move {
            let raw: Vec<RawSchedule> = sqlx::query_as(
                "SELECT id, function, spec, last_tick, created_at_ms FROM schedules ORDER BY function, id",
            )
            .fetch_all(&self.pool)
            .await?;
            Ok(rows::broken_schedules(raw))
        })
    }

    fn schedule_runs(
        &self,
        function: String,
    ) -> BoxFuture<'_, StoreResult<Vec<(String, RunRecord)>>> {
        Box::pin(async move {
            let raw: Vec<RawRun> = sqlx::query_as(
                "SELECT r.schedule, r.scheduled, r.started_at_ms, r.outcome, r.status, r.duration_ms, r.catch_up, r.response
                 FROM schedule_runs r JOIN schedules s ON s.id = r.schedule
                 WHERE s.function = $1 ORDER BY r.id DESC",
            )
            .bind(function)
            .fetch_all(&self.pool)
            .await?;
            Ok(rows::runs(raw))
        })
    }

    fn version(&self) -> BoxFuture<'_, StoreResult<u64>> {
        Box::pin(async move {
            let version: i64 = sqlx::query_scalar("SELECT version FROM registry")
                .fetch_one(&self.pool)
                .await?;
            Ok(version as u64)
        })
    }

    fn prune(&self, age: Duration) -> BoxFuture<'_, StoreResult<u64>> {
        Box::pin(async move {
            // A node further behind than the change log reaches reads the
            // whole registry instead (see `load_since`).
            let mut tx = self.pool.begin().await?;
            let mut removed = 0;
            for sql in [
                "DELETE FROM registry_changes WHERE at < now() - make_interval(secs => $1)",
                "DELETE FROM nodes WHERE heartbeat_at < now() - make_interval(secs => $1)",
                "DELETE FROM canary_counters c WHERE updated_at < now() - make_interval(secs => $1)
                     AND NOT EXISTS (SELECT 1 FROM nodes n WHERE n.id = c.node)",
            ] {
                removed += sqlx::query(sql)
                    .bind(age.as_secs_f64())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
            tx.commit().await?;
            Ok(removed)
        })
    }

    fn backup(&self, _to: std::path::PathBuf) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async {
            Err(StoreError::Backend(
                "a shared registry is backed up with PostgreSQL's own tools (pg_dump), not `flint backup`".into(),
            ))
        })
    }
}

/// Component bytes in PostgreSQL, [`CHUNK`] bytes a row: every node reads
/// what any node stored.
#[derive(Clone)]
pub struct PgBlobStore {
    pool: PgPool,
}

fn io_error(e: sqlx::Error) -> io::Error {
    io::Error::other(format!("registry blob store: {e}"))
}

impl PgBlobStore {
    async fn put(&self, digest: Digest, bytes: Bytes) -> Result<(), sqlx::Error> {
        let key = digest.to_string();
        let mut tx = self.pool.begin().await?;
        // The row lock makes two uploads of the same bytes take turns; the
        // second finds the first's chunks and only refreshes the time.
        sqlx::query(
            "INSERT INTO blobs (digest, size_bytes) VALUES ($1, $2)
             ON CONFLICT (digest) DO UPDATE SET touched_at = now()",
        )
        .bind(&key)
        .bind(bytes.len() as i64)
        .execute(&mut *tx)
        .await?;
        let held: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM blob_chunks WHERE digest = $1")
            .bind(&key)
            .fetch_one(&mut *tx)
            .await?;
        if held == 0 {
            for (i, chunk) in bytes.chunks(CHUNK).enumerate() {
                sqlx::query("INSERT INTO blob_chunks (digest, chunk, bytes) VALUES ($1, $2, $3)")
                    .bind(&key)
                    .bind(i as i32)
                    .bind(chunk)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await
    }

    async fn get(&self, digest: Digest) -> io::Result<Vec<u8>> {
        let key = digest.to_string();
        let mut tx = self.pool.begin().await.map_err(io_error)?;
        let size: Option<i64> =
            sqlx::query_scalar("SELECT size_bytes FROM blobs WHERE digest = $1")
                .bind(&key)
                .fetch_optional(&mut *tx)
                .await
                .map_err(io_error)?;
        let Some(size) = size else {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no blob {digest} in the registry"),
            ));
        };
        let chunks: Vec<Vec<u8>> =
            sqlx::query_scalar("SELECT bytes FROM blob_chunks WHERE digest = $1 ORDER BY chunk")
                .bind(&key)
                .fetch_all(&mut *tx)
                .await
                .map_err(io_error)?;
        tx.commit().await.map_err(io_error)?;
        let bytes = chunks.concat();
        if bytes.len() as i64 != size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "blob {digest} holds {} of its {size} bytes in the registry",
                    bytes.len()
                ),
            ));
        }
        Ok(bytes)
    }
}

impl BlobStore for PgBlobStore {
    fn put(&self, digest: Digest, bytes: Bytes) -> BoxFuture<'_, io::Result<()>> {
        Box::pin(async move {
            PgBlobStore::put(self, digest, bytes)
                .await
                .map_err(io_error)
        })
    }

    fn get(&self, digest: Digest) -> BoxFuture<'_, io::Result<Vec<u8>>> {
        Box::pin(PgBlobStore::get(self, digest))
    }

    fn size(&self, digest: Digest) -> BoxFuture<'_, Option<u64>> {
        Box::pin(async move {
            sqlx::query_scalar::<_, i64>("SELECT size_bytes FROM blobs WHERE digest = $1")
                .bind(digest.to_string())
                .fetch_optional(&self.pool)
                .await
                .ok()
                .flatten()
                .map(|n| n as u64)
        })
    }

    fn remove(&self, digest: Digest) -> BoxFuture<'_, io::Result<()>> {
        Box::pin(async move {
            sqlx::query("DELETE FROM blobs WHERE digest = $1")
                .bind(digest.to_string())
                .execute(&self.pool)
                .await
                .map_err(io_error)?;
            Ok(())
        })
    }

    fn usage(&self) -> BoxFuture<'_, io::Result<u64>> {
        Box::pin(async move {
            let n: i64 =
                sqlx::query_scalar("SELECT COALESCE(SUM(size_bytes), 0)::BIGINT FROM blobs")
                    .fetch_one(&self.pool)
                    .await
                    .map_err(io_error)?;
            Ok(n as u64)
        })
    }

    fn sweep(
        &self,
        referenced: Arc<BTreeSet<Digest>>,
        grace: Duration,
    ) -> BoxFuture<'_, io::Result<Vec<Swept>>> {
        Box::pin(async move {
            let old: Vec<(String, i64)> = sqlx::query_as(
                "SELECT digest, size_bytes FROM blobs
                 WHERE touched_at < now() - make_interval(secs => $1)",
            )
            .bind(grace.as_secs_f64())
            .fetch_all(&self.pool)
            .await
            .map_err(io_error)?;
            let mut swept = Vec::new();
            for (key, size) in old {
                if Digest::parse(&key).is_some_and(|d| referenced.contains(&d)) {
                    continue;
                }
                // Only if it is still old: an upload may have touched it.
                let removed = sqlx::query(
                    "DELETE FROM blobs WHERE digest = $1
                     AND touched_at < now() - make_interval(secs => $2)",
                )
                .bind(&key)
                .bind(grace.as_secs_f64())
                .execute(&self.pool)
                .await
                .map_err(io_error)?;
                if removed.rows_affected() == 1 {
                    swept.push(Swept {
                        path: format!("registry:blobs/{key}").into(),
                        bytes: size as u64,
                        reason: "blob no version uses",
                    });
                }
            }
            Ok(swept)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flint_spec::FunctionConfig;
    use flint_test_artifacts::postgres::TestDb;

    use crate::store::rows::add_version as add;

    async fn migrated() -> (TestDb, PgRegistry) {
        let db = TestDb::create();
        let done = migrate(&db.url, Duration::from_secs(5)).await.unwrap();
        assert_eq!((done.from, done.to), (0, SCHEMA_VERSION));
        let registry = PgRegistry::connect(&db.url, "test").await.unwrap();
        (db, registry)
    }

    #[tokio::test]
    async fn a_version_keeps_its_kind() {
        let (_db, store) = migrated().await;
        let mut wagi = add("f", &Digest::of(b"module"), None);
        if let Change::AddVersion { kind, .. } = &mut wagi {
            *kind = flint_spec::FunctionKind::Wagi;
        }
        store
            .commit(vec![wagi, add("f", &Digest::of(b"component"), Some(2))])
            .await
            .unwrap();
        let kinds: Vec<_> = store.load().await.unwrap().functions[0]
            .1
            .iter()
            .map(|v| v.kind)
            .collect();
        use flint_spec::FunctionKind::{Http, Wagi};
        assert_eq!(kinds, [Wagi, Http]);
    }

    #[tokio::test]
    async fn two_nodes_claiming_one_tick_have_one_winner_and_bump_nothing() {
        let (db, a) = migrated().await;
        let b = PgRegistry::connect(&db.url, "test-b").await.unwrap();
        let (a, b) = (Arc::new(a), Arc::new(b));
        let before = a.version().await.unwrap();
        a.commit(vec![add("g", &Digest::of(b"g"), None)])
            .await
            .unwrap();
        let version = a.version().await.unwrap();
        assert_eq!(version, before + 1);
        crate::store::rows::claims_of_one_tick_have_one_winner(a.clone(), b).await;
        // Adding the schedule and deleting `f` bumped the version; the
        // claims and runs did not.
        assert_eq!(a.version().await.unwrap(), version + 3);
    }

    #[tokio::test]
    async fn every_write_bumps_the_registry_version_and_a_snapshot_carries_it() {
        let (_db, store) = migrated().await;
        assert_eq!(store.load().await.unwrap().version, 0);
        let (a, b) = (Digest::of(b"a"), Digest::of(b"b"));
        store.commit(vec![add("f", &a, None)]).await.unwrap();
        store.commit(vec![add("f", &b, Some(2))]).await.unwrap();
        let snapshot = store.load().await.unwrap();
        assert_eq!(snapshot.version, 2);
        assert_eq!(snapshot.functions[0].1.len(), 2);
        assert_eq!(store.version().await.unwrap(), 2);
        // A token's last use changes nothing a node serves.
        store
            .commit(vec![Change::TokenUsed {
                name: "nobody".into(),
                at: std::time::SystemTime::now(),
            }])
            .await
            .unwrap();
        assert_eq!(store.version().await.unwrap(), 2);
        // A promise broken meanwhile is a conflict, and nothing is written.
        let stale = vec![
            add("f", &Digest::of(b"c"), Some(2)),
            Change::SetRoutes {
                function: "f".into(),
                patterns: vec!["/f".into()],
            },
        ];
        let error = store.commit(stale).await.unwrap_err();
        assert!(matches!(error, StoreError::Conflict(_)), "{error}");
        let snapshot = store.load().await.unwrap();
        assert_eq!(snapshot.version, 2, "the failed write bumped nothing");
        assert!(snapshot.routes.is_empty());
        let config = FunctionConfig {
            memory_mb: 64,
            ..FunctionConfig::default()
        };
        let set = store
            .commit(vec![Change::SetConfig {
                name: "f".into(),
                config: Box::new(config),
            }])
            .await
            .unwrap();
        assert!(set[0].applied());
        assert!(store.digest_in_use(a.clone()).await.unwrap());
        assert!(
            store
                .commit(vec![Change::DeleteFunction { name: "f".into() }])
                .await
                .unwrap()[0]
                .applied()
        );
        assert!(!store.digest_in_use(a).await.unwrap());
        assert_eq!(store.version().await.unwrap(), 4);
    }

    #[tokio::test]
    async fn what_changed_since_a_version_is_read_by_function_until_a_token_changes() {
        let (_db, store) = migrated().await;
        store
            .commit(vec![add("f", &Digest::of(b"f"), None)])
            .await
            .unwrap();
        let seen = store.version().await.unwrap();
        store
            .commit(vec![add("g", &Digest::of(b"g"), None)])
            .await
            .unwrap();
        store
            .commit(vec![Change::DeleteFunction { name: "f".into() }])
            .await
            .unwrap();
        let changed = store.load_since(seen).await.unwrap().unwrap();
        assert_eq!(changed.snapshot.version, seen + 2);
        assert_eq!(
            changed.functions.iter().collect::<Vec<_>>(),
            ["f", "g"],
            "the deleted one too"
        );
        let names: Vec<_> = changed
            .snapshot
            .functions
            .iter()
            .map(|(f, _)| f.name.as_str())
            .collect();
        assert_eq!(names, ["g"]);
        let nothing = store.load_since(seen + 2).await.unwrap().unwrap();
        assert!(nothing.functions.is_empty());
        store
            .commit(vec![Change::RevokeToken {
                name: "nobody".into(),
            }])
            .await
            .unwrap();
        assert!(
            store.load_since(seen + 2).await.unwrap().is_none(),
            "a token change needs a whole read"
        );
    }

    #[tokio::test]
    async fn pruning_removes_old_bookkeeping_and_a_lagging_node_then_reads_everything() {
        let (db, store) = migrated().await;
        for name in ["f", "g"] {
            store
                .commit(vec![add(name, &Digest::of(name.as_bytes()), None)])
                .await
                .unwrap();
        }
        store
            .heartbeat(&NodeRow {
                id: "gone".into(),
                address: "127.0.0.1:1".into(),
                applied_version: 0,
                state: "ready".into(),
                heartbeat_age_ms: 0,
            })
            .await
            .unwrap();
        store
            .publish_counters(
                "gone",
                &[Counters {
                    function: "f".into(),
                    version: 1,
                    requests: 3,
                    errors: 0,
                    buckets: vec![0; 4],
                }],
            )
            .await
            .unwrap();
        assert_eq!(store.prune(Duration::from_secs(3600)).await.unwrap(), 0);
        db.sql(
            "UPDATE registry_changes SET at = now() - interval '2 hours' WHERE version = 1;
             UPDATE nodes SET heartbeat_at = now() - interval '2 hours';
             UPDATE canary_counters SET updated_at = now() - interval '2 hours';",
        );
        assert_eq!(store.prune(Duration::from_secs(3600)).await.unwrap(), 3);
        assert!(store.load_since(1).await.unwrap().is_some(), "still logged");
        assert!(
            store.load_since(0).await.unwrap().is_none(),
            "behind the log: a whole read"
        );
        assert_eq!(store.counters("f", 1).await.unwrap(), []);
        assert!(
            store
                .nodes(Duration::from_secs(86_400))
                .await
                .unwrap()
                .nodes
                .is_empty()
        );
    }

    #[tokio::test]
    async fn blobs_are_stored_in_chunks_and_read_back_whole() {
        let (_db, registry) = migrated().await;
        let blobs = registry.blobs();
        let bytes: Vec<u8> = (0..(CHUNK * 2 + 12_345)).map(|i| (i % 251) as u8).collect();
        let digest = Digest::of(&bytes);
        BlobStore::put(&blobs, digest.clone(), Bytes::from(bytes.clone()))
            .await
            .unwrap();
        // The same bytes again: a no-op that refreshes the time.
        BlobStore::put(&blobs, digest.clone(), Bytes::from(bytes.clone()))
            .await
            .unwrap();
        assert_eq!(BlobStore::get(&blobs, digest.clone()).await.unwrap(), bytes);
        assert_eq!(blobs.size(digest.clone()).await, Some(bytes.len() as u64));
        assert_eq!(blobs.usage().await.unwrap(), bytes.len() as u64);
        let missing = BlobStore::get(&blobs, Digest::of(b"none"))
            .await
            .unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
        let kept = Arc::new(BTreeSet::from([digest.clone()]));
        assert!(blobs.sweep(kept, Duration::ZERO).await.unwrap().is_empty());
        let swept = blobs.sweep(Arc::default(), Duration::ZERO).await.unwrap();
        assert_eq!(swept.len(), 1);
        assert_eq!(blobs.size(digest).await, None);
    }

    #[tokio::test]
    async fn a_failing_migration_changes_nothing_and_leaves_no_lock() {
        let db = TestDb::create();
        migrate(&db.url, Duration::from_secs(5)).await.unwrap();
        let mut next = migrations();
        next.push(Migration::new(
            SCHEMA_VERSION + 1,
            "broken".into(),
            MigrationType::Simple,
            sqlx::SqlStr::from_static(
                "CREATE TABLE half_done (x INTEGER); ALTER TABLE functions ADD COLUMN y INTEGER; SELECT 1 / 0;",
            ),
            false,
        ));
        let error = migrate_with(
            &db.url,
            Duration::from_secs(5),
            Migrator::with_migrations(next),
        )
        .await
        .unwrap_err();
        assert!(error.to_string().contains("migration failed"), "{error}");
        assert_eq!(
            db.sql("SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations WHERE success"),
            SCHEMA_VERSION.to_string()
        );
        assert_eq!(db.sql("SELECT to_regclass('half_done') IS NULL"), "t");
        assert_eq!(
            db.sql("SELECT count(*) FROM information_schema.columns WHERE table_name = 'functions' AND column_name = 'y'"),
            "0"
        );
        assert_eq!(db.advisory_locks(), 0);
        // The registry still works for nodes of this version.
        let registry = PgRegistry::connect(&db.url, "test").await.unwrap();
        assert_eq!(registry.version().await.unwrap(), 0);
    }

    #[test]
    fn passwords_never_reach_a_message() {
        assert_eq!(
            redact("postgres://flint:s3cret@db:5432/flint"),
            "postgres://flint:***@db:5432/flint"
        );
        assert_eq!(
            redact("postgres://flint@db/flint"),
            "postgres://flint@db/flint"
        );
    }
}
