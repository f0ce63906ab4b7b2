//! What the core shows of functions: listings, details, logs. Plain data
//! that adapters serialise as they like (the HTTP API as JSON).

use super::functions::FunctionEntry;
use super::{Control, CoreError, CoreResult};
use crate::metrics::StatsSnapshot;
use flint_runtime::FunctionConfig;
use flint_spec::FunctionKind;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

/// Default number of log lines per request.
pub const DEFAULT_LOG_LIMIT: usize = 100;
/// Most log lines per request.
pub const MAX_LOG_LIMIT: usize = 1000;

fn time(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// A function in a listing.
#[derive(Debug, Clone, Serialize)]
pub struct FunctionSummary {
    /// Its name.
    pub name: String,
    /// Its newest version.
    pub latest_version: Option<u32>,
    /// The newest version's digest.
    pub digest: Option<String>,
    /// How many versions it has.
    pub versions: usize,
    /// The newest version's size.
    pub size_bytes: Option<u64>,
    /// Last change, RFC 3339.
    pub updated_at: String,
    /// Invocations since the server started.
    pub invocations: u64,
    /// Why calls fail (`null` while it serves): its stored state is broken,
    /// or a version plain calls reach lost its component.
    pub disabled: Option<String>,
}

/// A function that cannot serve, and why (readiness details).
#[derive(Debug, Clone, Serialize)]
pub struct DisabledFunction {
    /// The function.
    pub function: String,
    /// Why.
    pub reason: String,
}

/// One version in [`FunctionInfo`].
#[derive(Debug, Clone, Serialize)]
pub struct VersionInfo {
    /// Its number.
    pub version: u32,
    /// Its component's digest.
    pub digest: String,
    /// Component size.
    pub size_bytes: u64,
    /// Compile time at upload.
    pub compile_ms: f64,
    /// What its Wasm is, as in [`Deployed`].
    pub kind: FunctionKind,
    /// When it was deployed, RFC 3339.
    pub created_at: String,
    /// Whether it is in memory now.
    pub loaded: bool,
    /// Instances waiting in its pool.
    pub warm_instances: usize,
}

/// A function in detail.
#[derive(Debug, Clone, Serialize)]
pub struct FunctionInfo {
    /// Its name.
    pub name: String,
    /// Its newest version.
    pub latest_version: Option<u32>,
    /// First deploy, RFC 3339.
    pub created_at: String,
    /// Last change, RFC 3339.
    pub updated_at: String,
    /// Its configuration.
    pub config: FunctionConfig,
    /// Every version, oldest first.
    pub versions: Vec<VersionInfo>,
    /// Counters since start.
    pub stats: StatsSnapshot,
    /// Why calls fail (`null` while it serves), as in [`FunctionSummary`].
    pub disabled: Option<String>,
}

/// What a deploy did.
#[derive(Debug, Clone, Serialize)]
pub struct Deployed {
    /// The function.
    pub name: String,
    /// The version that now holds the bytes.
    pub version: u32,
    /// The component's digest.
    pub digest: String,
    /// False when the bytes equal the latest version's.
    pub created: bool,
    /// Component size.
    pub size_bytes: u64,
    /// Compile time (0 when the artifact was cached).
    pub compile_ms: f64,
    /// What the bytes are: `http` (a wasi:http component) or `wagi` (a
    /// WASI 0.1 command module).
    pub kind: FunctionKind,
}

/// What a component upload (no function yet) did.
#[derive(Debug, Clone, Serialize)]
pub struct ComponentUpload {
    /// The component's digest.
    pub digest: String,
    /// Its size.
    pub size_bytes: u64,
    /// Compile time (0 when the artifact was cached).
    pub compile_ms: f64,
    /// False when the server held it already.
    pub created: bool,
    /// What the bytes are, as in [`Deployed`].
    pub kind: FunctionKind,
}

/// A function's aliases.
#[derive(Debug, Clone, Serialize)]
pub struct Aliases {
    /// The alias plain calls follow.
    pub default: String,
    /// Every alias (with `latest`) and where it points.
    pub aliases: BTreeMap<String, flint_spec::alias::AliasTarget>,
}

/// One captured line of guest output.
#[derive(Debug, Clone, Serialize)]
pub struct LogLineView {
    /// Its sequence number (for `after`).
    pub seq: u64,
    /// When, RFC 3339.
    pub time: String,
    /// The version that wrote it.
    pub version: u32,
    /// The invocation that wrote it.
    pub request_id: String,
    /// `stdout` or `stderr`.
    pub stream: flint_runtime::Stream,
    /// The line.
    pub line: String,
}

impl Control {
    pub(super) fn entry(&self, name: &str) -> CoreResult<Arc<FunctionEntry>> {
        self.s
            .table
            .get(name)
            .ok_or_else(|| CoreError::FunctionNotFound(name.into()))
    }

    /// Every function, by name.
    pub fn list(&self) -> Vec<FunctionSummary> {
        self.s
            .table
            .list()
            .into_iter()
            .map(|e| {
                let latest = e.latest();
                FunctionSummary {
                    name: e.name.clone(),
                    latest_version: latest.as_ref().map(|v| v.record.version),
                    digest: latest.as_ref().map(|v| v.record.digest.to_string()),
                    versions: e.versions().len(),
                    size_bytes: latest.as_ref().map(|v| v.record.size_bytes),
                    updated_at: time(e.times().1),
                    invocations: e.stats.invocations(),
                    disabled: e.problem(),
                }
            })
            .collect()
    }

    /// One function in detail.
    pub fn info(&self, name: &str) -> CoreResult<FunctionInfo> {
        let e = self.entry(name)?;
        let versions = e
            .versions()
            .iter()
            .map(|v| VersionInfo {
                version: v.record.version,
                digest: v.record.digest.to_string(),
                size_bytes: v.record.size_bytes,
                compile_ms: v.record.compile_ms,
                kind: v.record.kind,
                created_at: time(v.record.created_at),
                loaded: v.pool().is_some(),
                warm_instances: v.pool().map_or(0, |p| p.warm_instances()),
            })
            .collect();
        let (created, updated) = e.times();
        let gate = e.gate();
        Ok(FunctionInfo {
            name: e.name.clone(),
            latest_version: e.latest().map(|v| v.record.version),
            created_at: time(created),
            updated_at: time(updated),
            config: (*e.config()).clone(),
            versions,
            stats: e
                .stats
                .snapshot(gate.in_flight(), gate.waiting(), e.warm_instances()),
            disabled: e.problem(),
        })
    }

    /// The functions that cannot serve, and why.
    pub fn disabled_functions(&self) -> Vec<DisabledFunction> {
        self.s
            .table
            .list()
            .into_iter()
            .filter_map(|e| {
                Some(DisabledFunction {
                    reason: e.problem()?,
                    function: e.name.clone(),
                })
            })
            .collect()
    }

    /// A function's configuration.
    pub fn function_config(&self, name: &str) -> CoreResult<FunctionConfig> {
        Ok((*self.entry(name)?.config()).clone())
    }

    /// Captured guest output: up to `limit` lines (at most
    /// [`MAX_LOG_LIMIT`]) after sequence number `after`.
    pub fn logs(
        &self,
        name: &str,
        after: Option<u64>,
        limit: usize,
    ) -> CoreResult<Vec<LogLineView>> {
        let e = self.entry(name)?;
        Ok(e.log
            .tail(after, limit.min(MAX_LOG_LIMIT))
            .into_iter()
            .map(|l| LogLineView {
                seq: l.seq,
                time: time(l.time),
                version: l.version,
                request_id: l.request_id,
                stream: l.stream,
                line: l.line,
            })
            .collect())
    }

    /// Every custom route: (pattern, function).
    pub fn routes(&self) -> Vec<(String, String)> {
        self.s
            .routes
            .by_function()
            .into_iter()
            .flat_map(|(function, patterns)| {
                patterns
                    .into_iter()
                    .map(move |pattern| (pattern, function.clone()))
            })
            .collect()
    }
}
