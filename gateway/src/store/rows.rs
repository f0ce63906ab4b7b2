//! Rows as both registries store them, and how they parse: the parts of a
//! [`Snapshot`](super::Snapshot) that do not depend on the database. A row
//! that does not parse becomes a [`BrokenRow`] against its function.

use super::{
    AddedVersion, BrokenKind, BrokenRow, FunctionRecord, Outcome, ReleaseRow, RunRecord,
    ScheduleRecord, StoreError, StoreResult, TokenRecord, VersionRecord,
};
use flint_spec::{Digest, FunctionConfig, FunctionKind, TriggerSpec};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Release-state kinds as stored (the `kind` column).
pub(super) const ALIAS: &str = "alias";
pub(super) const DEFAULT: &str = "default";
pub(super) const CANARY: &str = "canary";
pub(super) const SHADOW: &str = "shadow";

pub(super) fn now_ms() -> i64 {
    to_ms(SystemTime::now())
}

pub(super) fn from_ms(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

pub(super) fn to_ms(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64
}

/// A function row as stored: name, config JSON, created and updated times.
pub(super) type RawFunction = (String, String, i64, i64);
/// A version row as stored, its digest and kind not yet parsed.
pub(super) type RawVersion = (u32, String, i64, f64, i64, String);
/// A release-state row as stored: function, kind, key, value.
pub(super) type RawRelease = (String, String, String, String);
/// A token row as stored: name, hash, scope, globs, times.
pub(super) type RawToken = (
    String,
    String,
    String,
    String,
    String,
    i64,
    Option<i64>,
    Option<i64>,
);

/// The release-state row of `kind`, `None` for a kind this build does not
/// know (a newer node's).
pub(super) fn release_row(kind: &str, key: String, value: &str) -> StoreResult<Option<ReleaseRow>> {
    Ok(Some(match kind {
        ALIAS => ReleaseRow::Alias(key, serde_json::from_str(value)?),
        DEFAULT => ReleaseRow::DefaultAlias(serde_json::from_str(value)?),
        CANARY => ReleaseRow::Canary(serde_json::from_str(value)?),
        SHADOW => ReleaseRow::Shadow(serde_json::from_str(value)?),
        other => {
            tracing::warn!(kind = other, "unknown release state ignored");
            return Ok(None);
        }
    }))
}

/// The function record; a config that does not parse is reported and
/// replaced by the default.
pub(super) fn function(raw: RawFunction, broken: &mut Vec<BrokenRow>) -> FunctionRecord {
    let (name, config, created, updated) = raw;
    let config = serde_json::from_str(&config).unwrap_or_else(|e| {
        broken.push(BrokenRow {
            function: name.clone(),
            kind: BrokenKind::Config,
            version: None,
            reason: format!("its stored config does not parse: {e}"),
        });
        FunctionConfig::default()
    });
    FunctionRecord {
        name,
        config,
        created_at: from_ms(created),
        updated_at: from_ms(updated),
    }
}

/// The versions of `function` whose digest parses; the others are
/// reported.
pub(super) fn versions(
    function: &str,
    raw: Vec<RawVersion>,
    broken: &mut Vec<BrokenRow>,
) -> Vec<VersionRecord> {
    let mut list = Vec::with_capacity(raw.len());
    for (version, digest, size, compile_ms, created_at, kind) in raw {
        let parsed = Digest::parse(&digest)
            .ok_or_else(|| format!("version {version} has a malformed stored digest `{digest}`"))
            .and_then(|digest| {
                let kind = kind.parse::<FunctionKind>().map_err(|e| {
                    format!("version {version}: {e} (was it written by a newer Flint?)")
                })?;
                Ok((digest, kind))
            });
        match parsed {
            Ok((digest, kind)) => list.push(VersionRecord {
                version,
                digest,
                size_bytes: size as u64,
                compile_ms,
                created_at: from_ms(created_at),
                kind,
            }),
            Err(reason) => broken.push(BrokenRow {
                function: function.to_string(),
                kind: BrokenKind::Version,
                version: Some(version),
                reason,
            }),
        }
    }
    list
}

/// The triggers that parse; the others are reported.
/// A schedule row as stored: id, function, spec JSON, last tick, created.
pub(super) type RawSchedule = (String, String, String, i64, i64);
/// A run row as stored: schedule id, tick, started, outcome, status,
/// duration, catch-up, response.
pub(super) type RawRun = (
    String,
    i64,
    i64,
    String,
    Option<i32>,
    f64,
    bool,
    Option<String>,
);

/// The schedules whose spec parses; one that does not is logged and left
/// out (it cannot fire; removing it or its function clears it).
pub(super) fn schedules(raw: Vec<RawSchedule>) -> Vec<ScheduleRecord> {
    raw.into_iter()
        .filter_map(|(id, function, spec, last_tick, created)| {
            match serde_json::from_str(&spec) {
                Ok(spec) => Some(ScheduleRecord {
                    id,
                    function,
                    spec,
                    last_tick,
                    created_at: from_ms(created),
                }),
                Err(e) => {
                    tracing::error!(%function, schedule = %id, error = %e, "a stored schedule does not parse; it is left out");
                    None
                }
            }
        })
        .collect()
}

/// The schedule rows that cannot fire, against their function.
pub(super) fn broken_schedules(raw: Vec<RawSchedule>) -> Vec<BrokenRow> {
    raw.into_iter()
        .filter_map(|(id, function, spec, _, _)| {
            let problem = match serde_json::from_str::<flint_spec::ScheduleSpec>(&spec) {
                Ok(spec) => spec.cadence().err()?,
                Err(e) => format!("its stored spec does not parse: {e}"),
            };
            Some(BrokenRow {
                function,
                kind: BrokenKind::Schedule,
                version: None,
                reason: format!("schedule `{id}` cannot fire: {problem}"),
            })
        })
        .collect()
}

/// The runs, by schedule id.
pub(super) fn runs(raw: Vec<RawRun>) -> Vec<(String, RunRecord)> {
    raw.into_iter()
        .map(
            |(id, scheduled, started, outcome, status, duration_ms, catch_up, response)| {
                (
                    id,
                    RunRecord {
                        scheduled,
                        started_at: from_ms(started),
                        outcome,
                        status: status.and_then(|s| u16::try_from(s).ok()),
                        duration_ms,
                        catch_up,
                        response,
                    },
                )
            },
        )
        .collect()
}

pub(super) fn triggers(
    raw: Vec<(String, String)>,
    broken: &mut Vec<BrokenRow>,
) -> Vec<(String, TriggerSpec)> {
    let mut out = Vec::with_capacity(raw.len());
    for (function, spec) in raw {
        match serde_json::from_str(&spec) {
            Ok(spec) => out.push((function, spec)),
            Err(e) => broken.push(BrokenRow {
                function,
                kind: BrokenKind::Trigger,
                version: None,
                reason: format!("its stored queue trigger does not parse: {e}"),
            }),
        }
    }
    out
}

/// The release-state rows that parse, by function; the others are
/// reported.
pub(super) fn releases(
    raw: Vec<RawRelease>,
    broken: &mut Vec<BrokenRow>,
) -> Vec<(String, ReleaseRow)> {
    let mut out = Vec::new();
    for (function, kind, key, value) in raw {
        let what = if key.is_empty() {
            kind.clone()
        } else {
            format!("{kind} `{key}`")
        };
        match release_row(&kind, key, &value) {
            Ok(Some(row)) => out.push((function, row)),
            Ok(None) => {}
            Err(e) => broken.push(BrokenRow {
                function,
                kind: BrokenKind::Release,
                version: None,
                reason: format!("its stored release state ({what}) does not parse: {e}"),
            }),
        }
    }
    out
}

/// The tokens that parse; one that does not is logged and left out (it
/// cannot be used).
pub(super) fn tokens(raw: Vec<RawToken>) -> Vec<TokenRecord> {
    let mut out = Vec::with_capacity(raw.len());
    for raw in raw {
        let name = raw.0.clone();
        match token(raw) {
            Ok(record) => out.push(record),
            Err(e) => {
                tracing::error!(token = %name, error = %e, "a stored token does not parse; it cannot be used until it is revoked and created again")
            }
        }
    }
    out
}

fn token(raw: RawToken) -> Result<TokenRecord, String> {
    let (name, hash, scope, functions, secrets, created, expires, used) = raw;
    Ok(TokenRecord {
        scope: scope.parse()?,
        functions: serde_json::from_str(&functions).map_err(|e| e.to_string())?,
        secrets: serde_json::from_str(&secrets).map_err(|e| e.to_string())?,
        name,
        hash,
        created_at: from_ms(created),
        expires_at: expires.map(from_ms),
        last_used_at: used.map(from_ms),
    })
}

/// What adding `digest` to `name` makes, given its latest version.
pub(super) enum NextVersion {
    /// The bytes are the latest version's: nothing to add.
    Same(Outcome),
    /// A new version with this number.
    New(u32),
}

/// Decides what [`super::Change::AddVersion`] adds: nothing for the latest
/// version's bytes, else the next number, which must be the one a plan
/// promised (`expected`), if it promised one.
pub(super) fn next_version(
    name: &str,
    latest: Option<VersionRecord>,
    digest: &Digest,
    expected: Option<u32>,
) -> StoreResult<NextVersion> {
    if let Some(latest) = latest.as_ref().filter(|l| &l.digest == digest) {
        return Ok(NextVersion::Same(Outcome::Version(AddedVersion {
            record: latest.clone(),
            created: false,
        })));
    }
    let version = latest.map_or(1, |l| l.version + 1);
    if let Some(expected) = expected
        && expected != version
    {
        return Err(StoreError::Conflict(format!(
            "`{name}` would get version {version}, not the planned {expected}: it changed meanwhile"
        )));
    }
    Ok(NextVersion::New(version))
}

/// The outcome of a version just recorded.
pub(super) fn added(
    version: u32,
    digest: &Digest,
    size_bytes: u64,
    compile_ms: f64,
    kind: FunctionKind,
    at_ms: i64,
) -> Outcome {
    Outcome::Version(AddedVersion {
        record: VersionRecord {
            version,
            digest: digest.clone(),
            size_bytes,
            compile_ms,
            created_at: from_ms(at_ms),
            kind,
        },
        created: true,
    })
}

/// A [`super::Change::AddVersion`] of `digest` to `name`, for the stores'
/// tests.
#[cfg(test)]
pub(super) fn add_version(name: &str, digest: &Digest, expected: Option<u32>) -> super::Change {
    super::Change::AddVersion {
        name: name.into(),
        digest: digest.clone(),
        size_bytes: 1,
        compile_ms: 1.0,
        kind: FunctionKind::Http,
        default_config: Box::default(),
        expected,
    }
}

/// Two registries on one database (two nodes, or two processes on one
/// file) claim the same tick of a schedule at once: exactly one claim is
/// applied. Then the claimed tick, the runs kept and the cascade of a
/// function's deletion are checked.
#[cfg(test)]
pub(super) async fn claims_of_one_tick_have_one_winner(
    a: std::sync::Arc<dyn super::Store>,
    b: std::sync::Arc<dyn super::Store>,
) {
    use super::Change;
    a.commit(vec![add_version("f", &Digest::of(b"f"), None)])
        .await
        .unwrap();
    let spec: flint_spec::ScheduleSpec =
        serde_json::from_str(r#"{"cron":"*/2 * * * * *","body":"hi"}"#).unwrap();
    let record = ScheduleRecord {
        id: "s1".into(),
        function: "f".into(),
        spec,
        last_tick: 100,
        created_at: from_ms(100_000),
    };
    let added = a
        .commit(vec![Change::AddSchedule(Box::new(record.clone()))])
        .await
        .unwrap();
    assert!(added[0].applied());
    let claim = |from: i64, to: i64| {
        vec![Change::ClaimTick {
            function: "f".into(),
            id: "s1".into(),
            from,
            to,
        }]
    };
    for round in 0..20 {
        let from = 100 + round * 2;
        let (x, y) = tokio::join!(
            a.commit(claim(from, from + 2)),
            b.commit(claim(from, from + 2))
        );
        let won = [x.unwrap()[0].applied(), y.unwrap()[0].applied()];
        assert_eq!(
            won.iter().filter(|w| **w).count(),
            1,
            "round {round}: {won:?}"
        );
    }
    // A claimer that read a stale tick loses.
    assert!(!a.commit(claim(100, 102)).await.unwrap()[0].applied());
    let stored = b.schedules(Some("f".into())).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].last_tick, 140);
    assert_eq!(stored[0].spec, record.spec);
    assert!(b.schedules(Some("g".into())).await.unwrap().is_empty());
    for tick in 0..(flint_spec::schedule::MAX_RUNS as i64 + 5) {
        let run = RunRecord {
            scheduled: tick,
            started_at: from_ms(tick * 1000),
            outcome: "ok".into(),
            status: Some(200),
            duration_ms: 1.5,
            catch_up: tick == 0,
            response: Some(format!("run {tick}")),
        };
        a.commit(vec![Change::RecordRun {
            function: "f".into(),
            id: "s1".into(),
            run: Box::new(run),
        }])
        .await
        .unwrap();
    }
    let runs = b.schedule_runs("f".into()).await.unwrap();
    assert_eq!(
        runs.len(),
        flint_spec::schedule::MAX_RUNS,
        "only the newest kept"
    );
    assert_eq!(
        runs[0].1.scheduled,
        flint_spec::schedule::MAX_RUNS as i64 + 4
    );
    assert_eq!(runs[0].1.status, Some(200));
    assert_eq!(
        runs[0].1.response.as_deref(),
        Some(format!("run {}", flint_spec::schedule::MAX_RUNS + 4).as_str())
    );
    // Deleting the function deletes its schedules and their runs.
    a.commit(vec![Change::DeleteFunction { name: "f".into() }])
        .await
        .unwrap();
    assert!(b.schedules(None).await.unwrap().is_empty());
    assert!(b.schedule_runs("f".into()).await.unwrap().is_empty());
}
