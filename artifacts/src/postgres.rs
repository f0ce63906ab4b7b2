//! A scratch database on the local PostgreSQL (127.0.0.1:5432, user
//! `postgres`, trust) for tests of the shared registry: created with a
//! random name, dropped with its connections when the value is dropped.

use std::process::Command;

/// The server the scratch databases live on.
pub const SERVER: &str = "postgres://postgres@127.0.0.1:5432";

/// psql on `database`, running `sql`, unaligned and without a header.
fn command(database: &str, sql: &str) -> Command {
    let mut command = Command::new("psql");
    command.args([
        "-h",
        "127.0.0.1",
        "-U",
        "postgres",
        "-d",
        database,
        "-XtAc",
        sql,
    ]);
    command
}

/// Runs `sql` on `database` with psql; returns its unaligned output.
pub fn psql(database: &str, sql: &str) -> String {
    let out = command(database, sql)
        .output()
        .expect("psql, which comes with PostgreSQL");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A database of its own.
pub struct TestDb {
    /// Its name.
    pub name: String,
    /// Its URL.
    pub url: String,
}

impl TestDb {
    /// Creates an empty database.
    pub fn create() -> Self {
        let mut suffix = [0u8; 8];
        getrandom::fill(&mut suffix).expect("random bytes");
        let name = format!(
            "flint_test_{}",
            suffix
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        psql("postgres", &format!("CREATE DATABASE {name}"));
        Self {
            url: format!("{SERVER}/{name}"),
            name,
        }
    }

    /// Runs `sql` on it; returns the unaligned output.
    pub fn sql(&self, sql: &str) -> String {
        psql(&self.name, sql)
    }

    /// The advisory locks held on it.
    pub fn advisory_locks(&self) -> u64 {
        self.sql(&format!(
            "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database
             WHERE l.locktype = 'advisory' AND d.datname = '{}'",
            self.name
        ))
        .parse()
        .unwrap()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let _ = command("postgres", &drop).output();
    }
}
