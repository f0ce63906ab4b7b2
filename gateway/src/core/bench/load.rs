//! The pools a load run of `flint bench --load` drives over HTTP
//! (`Target::Bench`): one fresh-instance pool and one reuse pool of a
//! version, apart from the live ones, made on the run's first call and
//! dropped when it ends or sits idle.

use super::super::functions::{FunctionEntry, VersionEntry};
use super::super::{Control, CoreError, CoreResult, State};
use super::{load_for_bench, reuse_config};
use flint_runtime::{FunctionConfig, InstancePool};
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long bench pools for a load run stay after their last call.
pub const BENCH_POOLS_IDLE: Duration = Duration::from_secs(60);

/// How a load run's bench pool gets instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BenchMode {
    /// A fresh instance per request (warm ones as `min_instances` keeps).
    Fresh,
    /// Instances serve request after request.
    Reuse,
}

impl BenchMode {
    /// Parses `fresh` or `reuse`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "fresh" => Some(Self::Fresh),
            "reuse" => Some(Self::Reuse),
            _ => None,
        }
    }
}

/// The pools a load run over HTTP drives: one version, both modes.
pub struct BenchPools {
    version: u32,
    fresh: Arc<InstancePool>,
    reuse: Arc<InstancePool>,
    last_used: Instant,
}

impl BenchPools {
    /// Whether no call used them for `idle`.
    pub fn idle_past(&self, idle: Duration) -> bool {
        self.last_used.elapsed() > idle
    }
}

impl Control {
    /// Ends a load run on `name`: drops its bench pools.
    pub fn end_bench(&self, name: &str) -> CoreResult<()> {
        let entry = self
            .s
            .table
            .get(name)
            .ok_or_else(|| CoreError::FunctionNotFound(name.into()))?;
        entry.bench_pools.lock().unwrap().take();
        Ok(())
    }
}

/// The bench pool of `mode` for `version` of `entry`, made on the
/// first call of a load run and dropped [`BENCH_POOLS_IDLE`] after its
/// last.
pub(in crate::core) async fn bench_pool(
    s: &State,
    entry: &Arc<FunctionEntry>,
    version: &Arc<VersionEntry>,
    mode: BenchMode,
) -> CoreResult<Arc<InstancePool>> {
    let pick = |pools: &mut BenchPools| {
        pools.last_used = Instant::now();
        match mode {
            BenchMode::Fresh => pools.fresh.clone(),
            BenchMode::Reuse => pools.reuse.clone(),
        }
    };
    if let Some(pools) = entry.bench_pools.lock().unwrap().as_mut()
        && pools.version == version.record.version
    {
        return Ok(pick(pools));
    }
    let config = entry.config();
    if !config.allowed_outbound_hosts.is_empty() {
        return Err(CoreError::ConfirmationRequired(format!(
            "function `{}` may call out to other hosts; a load run over HTTP would run those calls at load. Bench it in process with `flint bench --yes`",
            entry.name
        )));
    }
    let component = match version.component() {
        Some(component) => component,
        None => load_for_bench(s, version).await?,
    };
    let table = &s.table;
    let make = |edit: fn(&mut FunctionConfig)| {
        table
            .pool_with(
                entry,
                version.record.version,
                &component,
                edit,
                entry.bench_observer.clone(),
            )
            .map_err(CoreError::internal)
    };
    let mut pools = BenchPools {
        version: version.record.version,
        fresh: make(|c| c.max_requests_per_instance = 1)?,
        reuse: make(reuse_config)?,
        last_used: Instant::now(),
    };
    pools.fresh.fill();
    let pool = pick(&mut pools);
    *entry.bench_pools.lock().unwrap() = Some(pools);
    Ok(pool)
}
