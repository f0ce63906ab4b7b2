//! The embedded registry: SQLite in the data directory, WAL journal with
//! `synchronous=FULL`, so a commit that an API call acknowledged survives a
//! process kill and a power loss.
//!
//! The connection lives on a thread of its own and every call is a job sent
//! to it: a commit's fsync blocks that thread, never a runtime worker that
//! also runs invocations, queue consumers and canary drivers. Writes take
//! the database lock at their start (`BEGIN IMMEDIATE`), so two processes
//! sharing a file serialise instead of failing half-way.

use super::rows::{
    self, ALIAS, CANARY, DEFAULT, NextVersion, RawFunction, RawRelease, RawRun, RawSchedule,
    RawToken, RawVersion, SHADOW, from_ms, now_ms, to_ms,
};
use super::{
    BrokenRow, Change, Outcome, ReleaseChange, ReleaseRow, RunRecord, ScheduleRecord, Snapshot,
    Store, StoreError, StoreResult, TokenRecord, VersionRecord,
};
use flint_spec::Digest;
use flint_spec::history::HistoryEntry;
use futures::future::BoxFuture;
use rusqlite::{Connection, ErrorCode, OptionalExtension, TransactionBehavior, params};
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS functions (
    name TEXT PRIMARY KEY,
    config TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS versions (
    function TEXT NOT NULL REFERENCES functions(name) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    digest TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    compile_ms REAL NOT NULL,
    created_at_ms INTEGER NOT NULL,
    kind TEXT NOT NULL DEFAULT 'http',
    PRIMARY KEY (function, version)
);
CREATE INDEX IF NOT EXISTS versions_digest ON versions(digest);
CREATE TABLE IF NOT EXISTS release_state (
    function TEXT NOT NULL REFERENCES functions(name) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (function, kind, key)
);
CREATE TABLE IF NOT EXISTS release_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    function TEXT NOT NULL REFERENCES functions(name) ON DELETE CASCADE,
    entry TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS triggers (
    function TEXT PRIMARY KEY REFERENCES functions(name) ON DELETE CASCADE,
    spec TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS routes (
    pattern TEXT PRIMARY KEY,
    function TEXT NOT NULL REFERENCES functions(name) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS schedules (
    id TEXT PRIMARY KEY,
    function TEXT NOT NULL REFERENCES functions(name) ON DELETE CASCADE,
    spec TEXT NOT NULL,
    last_tick INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS schedules_function ON schedules(function);
CREATE TABLE IF NOT EXISTS schedule_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    schedule TEXT NOT NULL REFERENCES schedules(id) ON DELETE CASCADE,
    scheduled INTEGER NOT NULL,
    started_at_ms INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    status INTEGER,
    duration_ms REAL NOT NULL,
    catch_up INTEGER NOT NULL,
    response TEXT
);
CREATE INDEX IF NOT EXISTS schedule_runs_schedule ON schedule_runs(schedule, id);
CREATE TABLE IF NOT EXISTS tokens (
    name TEXT PRIMARY KEY,
    hash TEXT NOT NULL UNIQUE,
    scope TEXT NOT NULL,
    functions TEXT NOT NULL,
    secrets TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER,
    last_used_at_ms INTEGER
);
";

/// How long a write waits for another process's write to the same file.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// The SQLite registry; cheap to share, every call runs on its thread.
pub struct SqliteStore {
    jobs: mpsc::Sender<Job>,
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            // The version number (the primary key) was taken meanwhile.
            Some(ErrorCode::ConstraintViolation) => Self::Conflict(e.to_string()),
            _ => Self::Backend(e.to_string()),
        }
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and starts its
    /// thread, which ends when the store is dropped.
    pub fn open(path: &Path) -> StoreResult<Self> {
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.execute_batch(SCHEMA)?;
        add_missing_columns(&conn)?;
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("flint-sqlite".into())
            .spawn(move || {
                for job in queue {
                    job(&mut conn);
                }
            })
            .map_err(|e| StoreError::Backend(format!("cannot start the SQLite thread: {e}")))?;
        Ok(Self { jobs })
    }

    /// Runs `work` on the connection's thread.
    fn call<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    ) -> BoxFuture<'_, StoreResult<T>> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let sent = self.jobs.send(Box::new(move |conn| {
            let _ = reply.send(work(conn));
        }));
        Box::pin(async move {
            sent.map_err(|_| StoreError::Backend("the SQLite thread has stopped".into()))?;
            answer
                .await
                .map_err(|_| StoreError::Backend("the SQLite thread has stopped".into()))?
        })
    }
}

/// Columns added to a table after its first release, each with the default
/// its rows had before: `CREATE TABLE IF NOT EXISTS` leaves an older
/// registry's tables as they were.
const ADDED_COLUMNS: &[(&str, &str, &str)] =
    &[("versions", "kind", "TEXT NOT NULL DEFAULT 'http'")];

/// Brings an older registry's tables up to [`SCHEMA`].
fn add_missing_columns(conn: &Connection) -> rusqlite::Result<()> {
    for (table, column, definition) in ADDED_COLUMNS {
        let present: bool = conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2)",
            params![table, column],
            |r| r.get(0),
        )?;
        if !present {
            conn.execute_batch(&format!(
                "ALTER TABLE {table} ADD COLUMN {column} {definition}"
            ))?;
        }
    }
    Ok(())
}

fn latest_version(conn: &Connection, name: &str) -> rusqlite::Result<Option<VersionRecord>> {
    conn.query_row(
        "SELECT version, digest, size_bytes, compile_ms, created_at_ms, kind FROM versions
         WHERE function = ?1 ORDER BY version DESC LIMIT 1",
        params![name],
        version_row,
    )
    .optional()
}

fn version_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<VersionRecord> {
    let digest: String = row.get(1)?;
    Ok(VersionRecord {
        version: row.get(0)?,
        digest: Digest::parse(&digest).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                1,
                rusqlite::types::Type::Text,
                "bad digest".into(),
            )
        })?,
        size_bytes: row.get::<_, i64>(2)? as u64,
        compile_ms: row.get(3)?,
        created_at: from_ms(row.get(4)?),
        kind: row.get::<_, String>(5)?.parse().map_err(|e: String| {
            rusqlite::Error::FromSqlConversionFailure(5, rusqlite::types::Type::Text, e.into())
        })?,
    })
}

fn put_release(
    tx: &rusqlite::Transaction<'_>,
    function: &str,
    kind: &str,
    key: &str,
    value: Option<String>,
) -> rusqlite::Result<usize> {
    match value {
        Some(value) => tx.execute(
            "INSERT INTO release_state (function, kind, key, value)
             SELECT name, ?2, ?3, ?4 FROM functions WHERE name = ?1
             ON CONFLICT(function, kind, key) DO UPDATE SET value = excluded.value",
            params![function, kind, key, value],
        ),
        None => tx.execute(
            "DELETE FROM release_state WHERE function = ?1 AND kind = ?2 AND key = ?3",
            params![function, kind, key],
        ),
    }
}

fn write_release(
    tx: &rusqlite::Transaction<'_>,
    function: &str,
    change: &ReleaseChange,
) -> StoreResult<usize> {
    Ok(match change {
        ReleaseChange::SetAlias(alias, target) => put_release(
            tx,
            function,
            ALIAS,
            alias,
            Some(serde_json::to_string(target)?),
        )?,
        ReleaseChange::RemoveAlias(alias) => {
            // A default that named the alias goes with it: plain calls fall
            // back to `latest` after a restart as they do at once.
            tx.execute(
                "DELETE FROM release_state WHERE function = ?1 AND kind = ?2 AND value = ?3",
                params![function, DEFAULT, serde_json::to_string(alias)?],
            )?;
            put_release(tx, function, ALIAS, alias, None)?
        }
        ReleaseChange::SetDefault(alias) => {
            let value = alias.as_ref().map(serde_json::to_string).transpose()?;
            put_release(tx, function, DEFAULT, "", value)?
        }
        ReleaseChange::SetCanary(canary) => put_release(
            tx,
            function,
            CANARY,
            "",
            Some(serde_json::to_string(canary)?),
        )?,
        ReleaseChange::SetShadow(spec) => {
            let value = spec.as_ref().map(serde_json::to_string).transpose()?;
            put_release(tx, function, SHADOW, "", value)?
        }
    })
}

fn add_history(
    tx: &rusqlite::Transaction<'_>,
    function: &str,
    entry: &HistoryEntry,
) -> StoreResult<()> {
    tx.execute(
        "INSERT INTO release_history (function, entry) SELECT name, ?2 FROM functions WHERE name = ?1",
        params![function, serde_json::to_string(entry)?],
    )?;
    Ok(())
}

/// Makes one change inside the caller's transaction.
fn write(tx: &rusqlite::Transaction<'_>, change: &Change) -> StoreResult<Outcome> {
    let now = now_ms();
    let n = match change {
        Change::AddVersion {
            name,
            digest,
            size_bytes,
            compile_ms,
            kind,
            default_config,
            expected,
        } => {
            let version = match rows::next_version(name, latest_version(tx, name)?, digest, *expected)? {
                NextVersion::Same(outcome) => return Ok(outcome),
                NextVersion::New(version) => version,
            };
            tx.execute(
                "INSERT INTO functions (name, config, created_at_ms, updated_at_ms) VALUES (?1, ?2, ?3, ?3)
                 ON CONFLICT(name) DO UPDATE SET updated_at_ms = excluded.updated_at_ms",
                params![name, serde_json::to_string(default_config)?, now],
            )?;
            // The (function, version) key refuses a number another writer
            // took first: a conflict the caller can retry.
            tx.execute(
                "INSERT INTO versions (function, version, digest, size_bytes, compile_ms, created_at_ms, kind)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![name, version, digest.to_string(), *size_bytes as i64, compile_ms, now, kind.as_str()],
            )?;
            return Ok(rows::added(version, digest, *size_bytes, *compile_ms, *kind, now));
        }
        Change::SetConfig { name, config } => tx.execute(
            "UPDATE functions SET config = ?2, updated_at_ms = ?3 WHERE name = ?1",
            params![name, serde_json::to_string(config)?, now],
        )?,
        Change::DeleteFunction { name } => {
            tx.execute("DELETE FROM functions WHERE name = ?1", params![name])?
        }
        Change::SetTrigger {
            function,
            spec: Some(spec),
        } => tx.execute(
            "INSERT INTO triggers (function, spec)
             SELECT name, ?2 FROM functions WHERE name = ?1
             ON CONFLICT(function) DO UPDATE SET spec = excluded.spec",
            params![function, serde_json::to_string(spec)?],
        )?,
        Change::SetTrigger {
            function,
            spec: None,
        } => tx.execute(
            "DELETE FROM triggers WHERE function = ?1",
            params![function],
        )?,
        Change::Release(release) => {
            let n = write_release(tx, &release.function, &release.change)?;
            if let Some(entry) = &release.history {
                add_history(tx, &release.function, entry)?;
            }
            n
        }
        Change::SetRoutes { function, patterns } => {
            tx.execute("DELETE FROM routes WHERE function = ?1", params![function])?;
            for pattern in patterns {
                tx.execute(
                    "INSERT INTO routes (pattern, function) VALUES (?1, ?2)",
                    params![pattern, function],
                )?;
            }
            1
        }
        Change::AddToken(token) => tx.execute(
            "INSERT INTO tokens (name, hash, scope, functions, secrets, created_at_ms, expires_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(name) DO NOTHING",
            params![
                token.name,
                token.hash,
                token.scope.as_str(),
                serde_json::to_string(&token.functions)?,
                serde_json::to_string(&token.secrets)?,
                to_ms(token.created_at),
                token.expires_at.map(to_ms),
            ],
        )?,
        Change::RevokeToken { name } => {
            tx.execute("DELETE FROM tokens WHERE name = ?1", params![name])?
        }
        Change::AddSchedule(record) => tx.execute(
            "INSERT INTO schedules (id, function, spec, last_tick, created_at_ms)
             SELECT ?1, name, ?3, ?4, ?5 FROM functions WHERE name = ?2",
            params![
                record.id,
                record.function,
                serde_json::to_string(&record.spec)?,
                record.last_tick,
                to_ms(record.created_at),
            ],
        )?,
        Change::RemoveSchedule { function, id } => tx.execute(
            "DELETE FROM schedules WHERE id = ?1 AND function = ?2",
            params![id, function],
        )?,
        Change::ClaimTick {
            function,
            id,
            from,
            to,
        } => tx.execute(
            "UPDATE schedules SET last_tick = ?4 WHERE id = ?1 AND function = ?2 AND last_tick = ?3",
            params![id, function, from, to],
        )?,
        Change::RecordRun { function, id, run } => {
            let n = tx.execute(
                "INSERT INTO schedule_runs (schedule, scheduled, started_at_ms, outcome, status, duration_ms, catch_up, response)
                 SELECT id, ?3, ?4, ?5, ?6, ?7, ?8, ?9 FROM schedules WHERE id = ?1 AND function = ?2",
                params![
                    id,
                    function,
                    run.scheduled,
                    to_ms(run.started_at),
                    run.outcome,
                    run.status,
                    run.duration_ms,
                    run.catch_up,
                    run.response,
                ],
            )?;
            tx.execute(
                "DELETE FROM schedule_runs WHERE schedule = ?1 AND id NOT IN (
                     SELECT id FROM schedule_runs WHERE schedule = ?1 ORDER BY id DESC LIMIT ?2)",
                params![id, flint_spec::schedule::MAX_RUNS as i64],
            )?;
            n
        }
        Change::Fence { .. } => 1,
        Change::TokenUsed { name, at } => tx.execute(
            "UPDATE tokens SET last_used_at_ms = ?2 WHERE name = ?1",
            params![name, to_ms(*at)],
        )?,
    };
    Ok(Outcome::Applied(n >= 1))
}

/// Every token row that parses; one that does not is logged and left out.
fn tokens(conn: &Connection) -> StoreResult<Vec<TokenRecord>> {
    let mut stmt = conn.prepare(
        "SELECT name, hash, scope, functions, secrets, created_at_ms, expires_at_ms, last_used_at_ms
         FROM tokens ORDER BY name",
    )?;
    let raw = stmt
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
            ))
        })?
        .collect::<Result<Vec<RawToken>, _>>()?;
    Ok(rows::tokens(raw))
}

/// Every release-state row that parses, by function; the rows that do not
/// are added to `broken`.
fn releases(
    conn: &Connection,
    broken: &mut Vec<BrokenRow>,
) -> StoreResult<Vec<(String, ReleaseRow)>> {
    let mut stmt = conn.prepare(
        "SELECT function, kind, key, value FROM release_state ORDER BY function, kind, key",
    )?;
    let raw = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<Result<Vec<RawRelease>, _>>()?;
    Ok(rows::releases(raw, broken))
}

fn load(conn: &mut Connection) -> StoreResult<Snapshot> {
    let tx = conn.transaction()?;
    let functions = {
        let mut stmt = tx.prepare(
            "SELECT name, config, created_at_ms, updated_at_ms FROM functions ORDER BY name",
        )?;
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect::<Result<Vec<RawFunction>, _>>()?
    };
    let mut snapshot = Snapshot::default();
    {
        let mut versions = tx.prepare(
            "SELECT version, digest, size_bytes, compile_ms, created_at_ms, kind FROM versions
             WHERE function = ?1 ORDER BY version",
        )?;
        for raw in functions {
            let record = rows::function(raw, &mut snapshot.broken);
            let raw = versions
                .query_map(params![record.name], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ))
                })?
                .collect::<Result<Vec<RawVersion>, _>>()?;
            let list = rows::versions(&record.name, raw, &mut snapshot.broken);
            snapshot.functions.push((record, list));
        }
        let mut triggers = tx.prepare("SELECT function, spec FROM triggers ORDER BY function")?;
        let raw = triggers
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        snapshot.triggers = rows::triggers(raw, &mut snapshot.broken);
        snapshot.releases = releases(&tx, &mut snapshot.broken)?;
        let mut routes =
            tx.prepare("SELECT function, pattern FROM routes ORDER BY function, pattern")?;
        snapshot.routes = routes
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        snapshot.tokens = tokens(&tx)?;
    }
    tx.finish()?;
    Ok(snapshot)
}

impl Store for SqliteStore {
    fn load(&self) -> BoxFuture<'_, StoreResult<Snapshot>> {
        self.call(load)
    }

    fn releases(&self) -> BoxFuture<'_, StoreResult<Vec<(String, ReleaseRow)>>> {
        // Rows that do not parse are reported by `load`, against their
        // function; here they are left out.
        self.call(|conn| releases(conn, &mut Vec::new()))
    }

    fn digest_in_use(&self, digest: Digest) -> BoxFuture<'_, StoreResult<bool>> {
        self.call(move |conn| {
            let n: i64 = conn.query_row(
                "SELECT COUNT(*) FROM versions WHERE digest = ?1",
                params![digest.to_string()],
                |r| r.get(0),
            )?;
            Ok(n > 0)
        })
    }

    fn history(&self, function: String) -> BoxFuture<'_, StoreResult<Vec<HistoryEntry>>> {
        self.call(move |conn| {
            let mut stmt =
                conn.prepare("SELECT entry FROM release_history WHERE function = ?1 ORDER BY id")?;
            let rows = stmt
                .query_map(params![function], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            rows.iter().map(|e| Ok(serde_json::from_str(e)?)).collect()
        })
    }

    fn schedules(
        &self,
        function: Option<String>,
    ) -> BoxFuture<'_, StoreResult<Vec<ScheduleRecord>>> {
        self.call(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT id, function, spec, last_tick, created_at_ms FROM schedules
                 WHERE ?1 IS NULL OR function = ?1 ORDER BY created_at_ms, id",
            )?;
            let raw = stmt
                .query_map(params![function], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })?
                .collect::<Result<Vec<RawSchedule>, _>>()?;
            Ok(rows::schedules(raw))
        })
    }

    fn broken_schedules(&self) -> BoxFuture<'_, StoreResult<Vec<BrokenRow>>> {
        self.call(|conn| {
            let mut stmt = conn.prepare(
                "SELECT id, function, spec, last_tick, created_at_ms FROM schedules ORDER BY function, id",
            )?;
            let raw = stmt
                .query_map([], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })?
                .collect::<Result<Vec<RawSchedule>, _>>()?;
            Ok(rows::broken_schedules(raw))
        })
    }

    fn schedule_runs(
        &self,
        function: String,
    ) -> BoxFuture<'_, StoreResult<Vec<(String, RunRecord)>>> {
        self.call(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT r.schedule, r.scheduled, r.started_at_ms, r.outcome, r.status, r.duration_ms, r.catch_up, r.response
                 FROM schedule_runs r JOIN schedules s ON s.id = r.schedule
                 WHERE s.function = ?1 ORDER BY r.id DESC",
            )?;
            let raw = stmt
                .query_map(params![function], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                        r.get(7)?,
                    ))
                })?
                .collect::<Result<Vec<RawRun>, _>>()?;
            Ok(rows::runs(raw))
        })
    }

    fn backup(&self, to: std::path::PathBuf) -> BoxFuture<'_, StoreResult<()>> {
        // SQLite's online backup: a consistent copy, page by page, while
        // the connection keeps serving (on its own thread, between jobs).
        self.call(move |conn| Ok(conn.backup(rusqlite::MAIN_DB, &to, None)?))
    }

    fn commit(&self, changes: Vec<Change>) -> BoxFuture<'_, StoreResult<Vec<Outcome>>> {
        self.call(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let outcomes = changes
                .iter()
                .map(|change| write(&tx, change))
                .collect::<StoreResult<Vec<_>>>()?;
            tx.commit()?;
            Ok(outcomes)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::AddedVersion;
    use flint_spec::alias::AliasTarget;
    use flint_spec::{FunctionConfig, FunctionKind};

    use crate::store::rows::add_version as add;

    async fn version(store: &SqliteStore, change: Change) -> StoreResult<AddedVersion> {
        match store.commit(vec![change]).await?.pop() {
            Some(Outcome::Version(added)) => Ok(added),
            other => panic!("unexpected outcome {other:?}"),
        }
    }

    #[tokio::test]
    async fn versions_are_numbered_deduplicated_and_persisted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let (a, b) = (Digest::of(b"a"), Digest::of(b"b"));
        {
            let store = SqliteStore::open(&path).unwrap();
            assert_eq!(
                version(&store, add("f", &a, None))
                    .await
                    .unwrap()
                    .record
                    .version,
                1
            );
            let again = version(&store, add("f", &a, None)).await.unwrap();
            assert!(!again.created);
            assert_eq!(again.record.version, 1);
            assert_eq!(
                version(&store, add("f", &b, None))
                    .await
                    .unwrap()
                    .record
                    .version,
                2
            );
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
        }
        let store = SqliteStore::open(&path).unwrap();
        let snapshot = store.load().await.unwrap();
        assert_eq!(snapshot.functions.len(), 1);
        assert_eq!(snapshot.functions[0].0.config.memory_mb, 64);
        assert_eq!(snapshot.functions[0].1.len(), 2);
        assert!(store.digest_in_use(a.clone()).await.unwrap());
        let delete = || Change::DeleteFunction { name: "f".into() };
        assert!(store.commit(vec![delete()]).await.unwrap()[0].applied());
        assert!(!store.digest_in_use(a).await.unwrap());
        assert!(!store.commit(vec![delete()]).await.unwrap()[0].applied());
    }

    #[tokio::test]
    async fn two_claimers_of_one_tick_on_one_file_have_one_winner() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let a = std::sync::Arc::new(SqliteStore::open(&path).unwrap());
        let b = std::sync::Arc::new(SqliteStore::open(&path).unwrap());
        crate::store::rows::claims_of_one_tick_have_one_winner(a, b).await;
    }

    #[tokio::test]
    async fn a_schedule_that_cannot_fire_is_left_out_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let store = SqliteStore::open(&path).unwrap();
        version(&store, add("f", &Digest::of(b"f"), None))
            .await
            .unwrap();
        for (id, tz) in [("good", "UTC"), ("bad", "UTC"), ("zone", "UTC")] {
            let record = ScheduleRecord {
                id: id.into(),
                function: "f".into(),
                spec: serde_json::from_str(&format!(r#"{{"cron":"* * * * *","tz":"{tz}"}}"#))
                    .unwrap(),
                last_tick: 0,
                created_at: from_ms(0),
            };
            store
                .commit(vec![Change::AddSchedule(Box::new(record))])
                .await
                .unwrap();
        }
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            r#"UPDATE schedules SET spec = '{not json' WHERE id = 'bad';
               UPDATE schedules SET spec = '{"cron":"* * * * *","tz":"Atlantis/Capital"}' WHERE id = 'zone';"#,
        )
        .unwrap();
        let ids: Vec<String> = store
            .schedules(None)
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(
            ids,
            ["good", "zone"],
            "the row that does not parse is left out"
        );
        let broken = store.broken_schedules().await.unwrap();
        let reasons: Vec<&str> = broken.iter().map(|b| b.reason.as_str()).collect();
        assert_eq!(broken.len(), 2, "{reasons:?}");
        assert!(
            reasons[0].starts_with("schedule `bad` cannot fire: its stored spec does not parse")
        );
        assert!(reasons[1].starts_with("schedule `zone` cannot fire: invalid `tz`"));
        assert!(
            broken
                .iter()
                .all(|b| b.function == "f" && b.kind == crate::store::BrokenKind::Schedule)
        );
    }

    #[tokio::test]
    async fn a_version_number_taken_meanwhile_is_a_conflict_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("r.db")).unwrap();
        version(&store, add("f", &Digest::of(b"a"), Some(1)))
            .await
            .unwrap();
        // A plan made before that write promised version 1 to other bytes.
        let stale = vec![
            add("f", &Digest::of(b"b"), Some(1)),
            Change::SetRoutes {
                function: "f".into(),
                patterns: vec!["/f".into()],
            },
        ];
        let error = store.commit(stale).await.unwrap_err();
        assert!(matches!(error, StoreError::Conflict(_)), "{error}");
        let snapshot = store.load().await.unwrap();
        assert_eq!(snapshot.functions[0].1.len(), 1);
        assert!(snapshot.routes.is_empty(), "the transaction rolled back");
        // Retried with the number it now gets, it succeeds.
        let added = version(&store, add("f", &Digest::of(b"b"), Some(2)))
            .await
            .unwrap();
        assert_eq!(added.record.version, 2);
    }

    #[tokio::test]
    async fn removing_the_default_alias_clears_the_stored_default() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("r.db")).unwrap();
        version(&store, add("f", &Digest::of(b"a"), None))
            .await
            .unwrap();
        let release = |change| Change::release("f", change, None);
        store
            .commit(vec![
                release(ReleaseChange::SetAlias(
                    "prod".into(),
                    AliasTarget::version(1),
                )),
                release(ReleaseChange::SetDefault(Some("prod".into()))),
            ])
            .await
            .unwrap();
        assert_eq!(store.load().await.unwrap().releases.len(), 2);
        store
            .commit(vec![release(ReleaseChange::RemoveAlias("prod".into()))])
            .await
            .unwrap();
        assert!(store.load().await.unwrap().releases.is_empty());
    }

    #[tokio::test]
    async fn a_registry_from_before_version_kinds_opens_with_its_versions_as_components() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(&format!(
            "CREATE TABLE functions (name TEXT PRIMARY KEY, config TEXT NOT NULL,
                 created_at_ms INTEGER NOT NULL, updated_at_ms INTEGER NOT NULL);
             CREATE TABLE versions (function TEXT NOT NULL REFERENCES functions(name) ON DELETE CASCADE,
                 version INTEGER NOT NULL, digest TEXT NOT NULL, size_bytes INTEGER NOT NULL,
                 compile_ms REAL NOT NULL, created_at_ms INTEGER NOT NULL,
                 PRIMARY KEY (function, version));
             INSERT INTO functions VALUES ('old', '{{}}', 1, 1);
             INSERT INTO versions VALUES ('old', 1, '{}', 10, 1.0, 1);",
            Digest::of(b"old")
        ))
        .unwrap();
        drop(conn);
        let store = SqliteStore::open(&path).unwrap();
        let mut wagi = add("new", &Digest::of(b"new"), None);
        if let Change::AddVersion { kind, .. } = &mut wagi {
            *kind = FunctionKind::Wagi;
        }
        version(&store, wagi).await.unwrap();
        let snapshot = store.load().await.unwrap();
        assert!(snapshot.broken.is_empty(), "{:?}", snapshot.broken);
        let kinds: Vec<(&str, FunctionKind)> = snapshot
            .functions
            .iter()
            .map(|(f, versions)| (f.name.as_str(), versions[0].kind))
            .collect();
        assert_eq!(
            kinds,
            [("new", FunctionKind::Wagi), ("old", FunctionKind::Http)]
        );
        drop(store);
        // Opening it again adds nothing twice.
        SqliteStore::open(&path).unwrap();
    }

    #[tokio::test]
    async fn an_unknown_version_kind_is_reported_against_its_function_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        {
            let store = SqliteStore::open(&path).unwrap();
            for name in ["a", "b"] {
                version(&store, add(name, &Digest::of(name.as_bytes()), None))
                    .await
                    .unwrap();
            }
        }
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("UPDATE versions SET kind = 'future' WHERE function = 'a'")
            .unwrap();
        drop(conn);
        let snapshot = SqliteStore::open(&path).unwrap().load().await.unwrap();
        assert_eq!(snapshot.broken.len(), 1, "{:?}", snapshot.broken);
        assert_eq!(snapshot.broken[0].function, "a");
        assert!(
            snapshot.broken[0]
                .reason
                .contains("unknown function kind `future`"),
            "{:?}",
            snapshot.broken
        );
        assert_eq!(snapshot.functions[1].1.len(), 1, "b is whole");
    }

    #[tokio::test]
    async fn a_row_that_does_not_parse_is_reported_against_its_function_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        {
            let store = SqliteStore::open(&path).unwrap();
            for name in ["a", "b", "c"] {
                version(&store, add(name, &Digest::of(name.as_bytes()), None))
                    .await
                    .unwrap();
            }
        }
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "UPDATE functions SET config = '{not json' WHERE name = 'a';
             UPDATE versions SET digest = 'sha256:zz' WHERE function = 'b';
             INSERT INTO triggers (function, spec) VALUES ('c', '[1]');
             INSERT INTO release_state (function, kind, key, value) VALUES ('c', 'alias', 'prod', 'x');",
        )
        .unwrap();
        drop(conn);
        let store = SqliteStore::open(&path).unwrap();
        let snapshot = store.load().await.unwrap();
        assert_eq!(snapshot.functions.len(), 3, "every function is there");
        let broken: Vec<_> = snapshot
            .broken
            .iter()
            .map(|b| (b.function.as_str(), b.version))
            .collect();
        assert_eq!(
            broken,
            [("a", None), ("b", Some(1)), ("c", None), ("c", None)],
            "{:?}",
            snapshot.broken
        );
        assert!(
            snapshot.broken[0].reason.contains("config"),
            "{:?}",
            snapshot.broken
        );
        assert!(
            snapshot.functions[1].1.is_empty(),
            "the bad version is left out"
        );
        assert!(snapshot.triggers.is_empty() && snapshot.releases.is_empty());
        assert!(store.releases().await.unwrap().is_empty());
    }
}
