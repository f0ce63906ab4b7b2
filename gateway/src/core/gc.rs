//! Garbage collection of the data dir: blobs and compiled artifacts that no
//! version references.
//!
//! What becomes garbage: uploads never applied (`PUT /v1/components`
//! without an apply), the components of deleted functions (when the delete
//! could not remove them), artifacts of another engine (an upgrade, other
//! engine settings) and the temp files of writes and compiles that never
//! finished. "Referenced" means the digest of any version in the registry,
//! read in one snapshot under the write lock, so no write lands between the
//! reading and the sweeping.
//!
//! Nothing younger than the grace period (`--gc-grace-secs`, by file
//! modification time) is collected: an upload stores its blob and artifact
//! before it records its version, and one that reuses a blob or artifact
//! already held touches it first. The grace must therefore exceed the
//! longest upload (compile queue wait plus compile time); the default of 10
//! minutes does by far. Every removal is logged.

use super::{Control, CoreError, CoreResult};
use crate::store::BrokenKind;
use flint_runtime::fsutil::Swept;
use flint_spec::Digest;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// Shortest pause between two sweeps.
const MIN_GC_INTERVAL: Duration = Duration::from_secs(1);
/// Longest pause between two sweeps.
const MAX_GC_INTERVAL: Duration = Duration::from_secs(60);
/// Age past which a shared registry's change log and the rows of silent
/// nodes are removed (by the leader).
const PRUNE_AFTER: Duration = Duration::from_secs(3600);

/// What one sweep removed.
#[derive(Debug, Clone, Default)]
pub struct GcReport {
    /// The files removed.
    pub removed: Vec<Swept>,
}

impl GcReport {
    /// Bytes freed.
    pub fn bytes(&self) -> u64 {
        self.removed.iter().map(|s| s.bytes).sum()
    }
}

impl Control {
    /// How often the server sweeps: often enough that garbage goes soon
    /// after its grace, rarely enough that reading the registry costs
    /// nothing noticeable.
    pub fn gc_interval(&self) -> Duration {
        (self.s.config.gc_grace / 2).clamp(MIN_GC_INTERVAL, MAX_GC_INTERVAL)
    }

    /// Removes the blobs and artifacts no version references, and leftover
    /// temp files, that are older than the grace period; logs each.
    pub async fn collect_garbage(&self) -> CoreResult<GcReport> {
        let grace = self.s.config.gc_grace;
        let _writing = self.s.writes.lock().await;
        let snapshot = self.s.store.load().await?;
        let referenced: Arc<BTreeSet<Digest>> = Arc::new(
            snapshot
                .functions
                .iter()
                .flat_map(|(_, versions)| versions.iter().map(|v| v.digest.clone()))
                .collect(),
        );
        let mut report = GcReport::default();
        // A version row whose digest does not parse may name any blob: no
        // blob is known to be unused until `flint doctor` has dealt with it.
        // The blobs of a shared registry are collected by the leader only;
        // every node sweeps its own artifact cache.
        if snapshot
            .broken
            .iter()
            .any(|row| row.kind == BrokenKind::Version)
        {
            tracing::warn!(
                "garbage collection skips blobs: a version row of the registry does not parse; run `flint doctor`"
            );
        } else if self.leads() {
            report.removed = self
                .s
                .blobs
                .sweep(referenced.clone(), grace)
                .await
                .map_err(CoreError::internal)?;
        }
        if self.leads() {
            match self.s.store.prune(PRUNE_AFTER).await {
                Ok(0) => {}
                Ok(rows) => {
                    tracing::info!(rows, "pruned the registry's change log and silent nodes")
                }
                Err(e) => tracing::warn!(error = %e, "could not prune the registry's bookkeeping"),
            }
        }
        let runtime = self.s.runtime.clone();
        let artifacts =
            tokio::task::spawn_blocking(move || runtime.cache().sweep(&referenced, grace))
                .await
                .map_err(CoreError::internal)?
                .map_err(CoreError::internal)?;
        report.removed.extend(artifacts);
        for swept in &report.removed {
            tracing::info!(path = %swept.path.display(), bytes = swept.bytes, reason = swept.reason, "garbage collected");
        }
        if !report.removed.is_empty() {
            tracing::info!(
                files = report.removed.len(),
                bytes = report.bytes(),
                "garbage collection freed storage"
            );
        }
        Ok(report)
    }
}
