//! The registry: what functions exist, their versions and configuration.
//!
//! Storage sits behind the [`Registry`] trait so that a PostgreSQL backend
//! (several gateways sharing one registry) can follow without touching the
//! router or the runtime. The embedded default is [`SqliteRegistry`]: WAL
//! journal with `synchronous=FULL`, so a commit that an API call
//! acknowledged survives a process kill and a power loss.

use crate::releases::HistoryEntry;
use crate::triggers::TriggerSpec;
use flint_runtime::{Digest, FunctionConfig};
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
}

/// What [`Registry::add_version`] did.
#[derive(Debug, Clone)]
pub struct AddedVersion {
    /// The version now latest.
    pub record: VersionRecord,
    /// False when the bytes equal the latest version's (no new version).
    pub created: bool,
}

/// A registry failure.
#[derive(Debug, thiserror::Error)]
#[error("registry: {0}")]
pub struct RegistryError(String);

impl From<rusqlite::Error> for RegistryError {
    fn from(e: rusqlite::Error) -> Self {
        Self(e.to_string())
    }
}

impl From<serde_json::Error> for RegistryError {
    fn from(e: serde_json::Error) -> Self {
        Self(e.to_string())
    }
}

/// Result of registry calls.
pub type RegistryResult<T> = Result<T, RegistryError>;

/// One write to the registry. [`Registry::commit`] makes a list of them in
/// one transaction: all or none.
#[derive(Debug, Clone, Copy)]
pub enum Change<'a> {
    /// Records a new version unless `digest` equals the latest one's;
    /// creates the function with `default_config` if it does not exist.
    AddVersion {
        /// The function.
        name: &'a str,
        /// The component's digest.
        digest: &'a Digest,
        /// Its size.
        size_bytes: u64,
        /// Its compile time at upload.
        compile_ms: f64,
        /// The configuration of a function created by this change.
        default_config: &'a FunctionConfig,
    },
    /// Replaces a function's configuration.
    SetConfig {
        /// The function.
        name: &'a str,
        /// Its new configuration.
        config: &'a FunctionConfig,
    },
    /// Deletes a function with its versions, triggers, routes and release
    /// state.
    DeleteFunction {
        /// The function.
        name: &'a str,
    },
    /// Sets (`Some`) or removes (`None`) a function's trigger.
    SetTrigger {
        /// The function.
        function: &'a str,
        /// The binding.
        spec: Option<&'a TriggerSpec>,
    },
    /// Sets (`Some`) or removes (`None`) one release-state row and appends
    /// `history`. Kinds are `alias`, `default`, `canary` and `shadow`.
    ReleaseState {
        /// The function.
        function: &'a str,
        /// The row's kind.
        kind: &'a str,
        /// The row's key within its kind (the alias name, or empty).
        key: &'a str,
        /// The row's value.
        value: Option<&'a serde_json::Value>,
        /// The history entry recorded with it.
        history: Option<&'a HistoryEntry>,
    },
    /// Replaces a function's route patterns.
    SetRoutes {
        /// The function.
        function: &'a str,
        /// Its patterns, normalised.
        patterns: &'a [String],
    },
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
    fn applied(self) -> bool {
        matches!(self, Self::Applied(true))
    }
}

/// Persistent function metadata.
pub trait Registry: Send + Sync {
    /// Every function with its versions, by name.
    fn load_all(&self) -> RegistryResult<Vec<(FunctionRecord, Vec<VersionRecord>)>>;
    /// Whether any version of any function uses `digest`.
    fn digest_in_use(&self, digest: &Digest) -> RegistryResult<bool>;
    /// Every trigger binding, by function.
    fn load_triggers(&self) -> RegistryResult<Vec<(String, TriggerSpec)>>;
    /// Every release-state row: (function, kind, key, value).
    fn load_release_state(
        &self,
    ) -> RegistryResult<Vec<(String, String, String, serde_json::Value)>>;
    /// A function's release history, oldest first.
    fn history(&self, function: &str) -> RegistryResult<Vec<HistoryEntry>>;
    /// Every route: (function, pattern).
    fn load_routes(&self) -> RegistryResult<Vec<(String, String)>>;
    /// Makes `changes` in one transaction; one outcome per change.
    fn commit(&self, changes: &[Change<'_>]) -> RegistryResult<Vec<Outcome>>;

    /// [`Change::AddVersion`] on its own.
    fn add_version(
        &self,
        name: &str,
        digest: &Digest,
        size_bytes: u64,
        compile_ms: f64,
        default_config: &FunctionConfig,
    ) -> RegistryResult<AddedVersion> {
        let change = Change::AddVersion {
            name,
            digest,
            size_bytes,
            compile_ms,
            default_config,
        };
        match self.commit(&[change])?.pop() {
            Some(Outcome::Version(added)) => Ok(added),
            other => Err(RegistryError(format!("unexpected outcome {other:?}"))),
        }
    }
    /// Replaces a function's configuration; false if the function is unknown.
    fn set_config(&self, name: &str, config: &FunctionConfig) -> RegistryResult<bool> {
        self.commit_one(Change::SetConfig { name, config })
    }
    /// Deletes a function and its versions; false if it did not exist.
    fn delete_function(&self, name: &str) -> RegistryResult<bool> {
        self.commit_one(Change::DeleteFunction { name })
    }
    /// [`Change::ReleaseState`] on its own.
    fn put_release_state(
        &self,
        function: &str,
        kind: &str,
        key: &str,
        value: Option<&serde_json::Value>,
        history: Option<&HistoryEntry>,
    ) -> RegistryResult<()> {
        self.commit_one(Change::ReleaseState {
            function,
            kind,
            key,
            value,
            history,
        })
        .map(drop)
    }
    /// Sets (`Some`) or removes (`None`) a function's trigger; false if the
    /// function is unknown (set) or had no trigger (remove).
    fn set_trigger(&self, function: &str, spec: Option<&TriggerSpec>) -> RegistryResult<bool> {
        self.commit_one(Change::SetTrigger { function, spec })
    }
    /// One change other than [`Change::AddVersion`]; whether it applied.
    fn commit_one(&self, change: Change<'_>) -> RegistryResult<bool> {
        Ok(self.commit(&[change])?.pop().is_some_and(Outcome::applied))
    }
}

/// The embedded SQLite registry.
pub struct SqliteRegistry {
    conn: Mutex<Connection>,
}

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
";

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64
}

fn from_ms(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

impl SqliteRegistry {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> RegistryResult<Self> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }
}

fn latest_version(conn: &Connection, name: &str) -> rusqlite::Result<Option<VersionRecord>> {
    conn.query_row(
        "SELECT version, digest, size_bytes, compile_ms, created_at_ms FROM versions
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
    })
}

/// Makes one change inside the caller's transaction.
fn write(tx: &rusqlite::Transaction<'_>, change: &Change<'_>) -> RegistryResult<Outcome> {
    let now = now_ms();
    let n = match *change {
        Change::AddVersion {
            name,
            digest,
            size_bytes,
            compile_ms,
            default_config,
        } => {
            if let Some(latest) = latest_version(tx, name)?
                && &latest.digest == digest
            {
                return Ok(Outcome::Version(AddedVersion {
                    record: latest,
                    created: false,
                }));
            }
            tx.execute(
                "INSERT INTO functions (name, config, created_at_ms, updated_at_ms) VALUES (?1, ?2, ?3, ?3)
                 ON CONFLICT(name) DO UPDATE SET updated_at_ms = excluded.updated_at_ms",
                params![name, serde_json::to_string(default_config)?, now],
            )?;
            let version: u32 = tx.query_row(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM versions WHERE function = ?1",
                params![name],
                |r| r.get(0),
            )?;
            tx.execute(
                "INSERT INTO versions (function, version, digest, size_bytes, compile_ms, created_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![name, version, digest.to_string(), size_bytes as i64, compile_ms, now],
            )?;
            return Ok(Outcome::Version(AddedVersion {
                record: VersionRecord {
                    version,
                    digest: digest.clone(),
                    size_bytes,
                    compile_ms,
                    created_at: from_ms(now),
                },
                created: true,
            }));
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
        Change::ReleaseState {
            function,
            kind,
            key,
            value,
            history,
        } => {
            let n = match value {
                Some(v) => tx.execute(
                    "INSERT INTO release_state (function, kind, key, value) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT(function, kind, key) DO UPDATE SET value = excluded.value",
                    params![function, kind, key, v.to_string()],
                )?,
                None => tx.execute(
                    "DELETE FROM release_state WHERE function = ?1 AND kind = ?2 AND key = ?3",
                    params![function, kind, key],
                )?,
            };
            if let Some(entry) = history {
                tx.execute(
                    "INSERT INTO release_history (function, entry) VALUES (?1, ?2)",
                    params![function, serde_json::to_string(entry)?],
                )?;
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
    };
    Ok(Outcome::Applied(n >= 1))
}

impl Registry for SqliteRegistry {
    fn load_all(&self) -> RegistryResult<Vec<(FunctionRecord, Vec<VersionRecord>)>> {
        let conn = self.conn.lock().unwrap();
        let mut stmt = conn.prepare(
            "SELECT name, config, created_at_ms, updated_at_ms FROM functions ORDER BY name",
        )?;
        let functions = stmt
            .query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get(2)?,
                    row.get(3)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut versions = conn.prepare(
            "SELECT version, digest, size_bytes, compile_ms, created_at_ms FROM versions
             WHERE function = ?1 ORDER BY version",
        )?;
        let mut out = Vec::with_capacity(functions.len());
        for (name, config, created, updated) in functions {
            let config: FunctionConfig = serde_json::from_str(&config)?;
            let list = versions
                .query_map(params![name], version_row)?
                .collect::<Result<Vec<_>, _>>()?;
            out.push((
                FunctionRecord {
                    name,
                    config,
                    created_at: from_ms(created),
                    updated_at: from_ms(updated),
                },
                list,
            ));
        }
        Ok(out)
    }

    fn digest_in_use(&self, digest: &Digest) -> RegistryResult<bool> {
        let conn = self.conn.lock().unwrap();
        let n: i64 = conn.query_row(
            "SELECT COUNT(*) FROM versions WHERE digest = ?1",
            params![digest.to_string()],
            |r| r.get(0),
        )?;
        Ok(n > 0)
    }

    fn load_release_state(
        &self,
    ) -> RegistryResult<Vec<(String, String, String, serde_json::Value)>> {
        let conn = self.conn.lock().unwrap();
        let mut stmt = conn.prepare(
            "SELECT function, kind, key, value FROM release_state ORDER BY function, kind, key",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, String>(3)?))
            })?
            .collect::<Result<Vec<(String, String, String, String)>, _>>()?;
        rows.into_iter()
            .map(|(f, k, key, v)| Ok((f, k, key, serde_json::from_str(&v)?)))
            .collect()
    }

    fn history(&self, function: &str) -> RegistryResult<Vec<HistoryEntry>> {
        let conn = self.conn.lock().unwrap();
        let mut stmt =
            conn.prepare("SELECT entry FROM release_history WHERE function = ?1 ORDER BY id")?;
        let rows = stmt
            .query_map(params![function], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        rows.iter().map(|e| Ok(serde_json::from_str(e)?)).collect()
    }

    fn load_triggers(&self) -> RegistryResult<Vec<(String, TriggerSpec)>> {
        let conn = self.conn.lock().unwrap();
        let mut stmt = conn.prepare("SELECT function, spec FROM triggers ORDER BY function")?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(f, spec)| Ok((f, serde_json::from_str(&spec)?)))
            .collect()
    }

    fn load_routes(&self) -> RegistryResult<Vec<(String, String)>> {
        let conn = self.conn.lock().unwrap();
        let mut stmt =
            conn.prepare("SELECT function, pattern FROM routes ORDER BY function, pattern")?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn commit(&self, changes: &[Change<'_>]) -> RegistryResult<Vec<Outcome>> {
        let mut conn = self.conn.lock().unwrap();
        let tx = conn.transaction()?;
        let outcomes = changes
            .iter()
            .map(|change| write(&tx, change))
            .collect::<RegistryResult<Vec<_>>>()?;
        tx.commit()?;
        Ok(outcomes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_numbered_deduplicated_and_persisted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let cfg = FunctionConfig::default();
        let (a, b) = (Digest::of(b"a"), Digest::of(b"b"));
        {
            let reg = SqliteRegistry::open(&path).unwrap();
            assert_eq!(
                reg.add_version("f", &a, 1, 1.0, &cfg)
                    .unwrap()
                    .record
                    .version,
                1
            );
            let again = reg.add_version("f", &a, 1, 1.0, &cfg).unwrap();
            assert!(!again.created);
            assert_eq!(again.record.version, 1);
            assert_eq!(
                reg.add_version("f", &b, 1, 1.0, &cfg)
                    .unwrap()
                    .record
                    .version,
                2
            );
            let mut changed = cfg.clone();
            changed.memory_mb = 64;
            assert!(reg.set_config("f", &changed).unwrap());
        }
        let reg = SqliteRegistry::open(&path).unwrap();
        let all = reg.load_all().unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].0.config.memory_mb, 64);
        assert_eq!(all[0].1.len(), 2);
        assert!(reg.digest_in_use(&a).unwrap());
        assert!(reg.delete_function("f").unwrap());
        assert!(!reg.digest_in_use(&a).unwrap());
        assert!(!reg.delete_function("f").unwrap());
    }
}
