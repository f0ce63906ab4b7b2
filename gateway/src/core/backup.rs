//! Backups of a running server: the registry through the store's online
//! backup and the blob of every version, in one archive
//! ([`crate::store::archive`]). Writes wait while it is taken, so the
//! archive never names a blob a concurrent delete removed; calls go on.

use super::{Control, CoreError, CoreResult};
use crate::store::archive::ArchiveWriter;
use serde::Serialize;
use std::collections::BTreeSet;
use std::path::Path;

/// What a backup holds.
#[derive(Debug, Clone, Serialize)]
pub struct BackupSummary {
    /// Functions in the registry copy.
    pub functions: usize,
    /// Components (distinct blobs).
    pub blobs: usize,
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(std::io::Error::other)?
}

impl Control {
    /// Writes a consistent backup archive of this server to `to`.
    pub async fn backup(&self, to: &Path) -> CoreResult<BackupSummary> {
        let _writing = self.s.writes.lock().await;
        let registry = to.with_extension("registry.db");
        let _ = std::fs::remove_file(&registry);
        self.s.store.backup(registry.clone()).await?;
        let functions = self.s.table.list();
        let digests: BTreeSet<_> = functions
            .iter()
            .flat_map(|f| f.versions())
            .map(|v| v.record.digest.clone())
            .collect();
        let blobs = digests.len();
        // File writes run on the blocking pool, one blob at a time, so a
        // large backup neither blocks a runtime worker nor sits in memory.
        let write = async {
            let (to, copy) = (to.to_path_buf(), registry.clone());
            let mut archive = blocking(move || {
                let mut archive = ArchiveWriter::create(&to)?;
                archive.add_registry(&copy)?;
                Ok(archive)
            })
            .await?;
            for digest in digests {
                let bytes = self.s.blobs.get(digest.clone()).await?;
                archive = blocking(move || {
                    archive.add_blob(&digest, &bytes)?;
                    Ok(archive)
                })
                .await?;
            }
            blocking(move || archive.finish()).await
        };
        let written: std::io::Result<()> = write.await;
        let _ = std::fs::remove_file(&registry);
        written.map_err(|e| CoreError::internal(format!("writing the backup: {e}")))?;
        tracing::info!(functions = functions.len(), blobs, archive = %to.display(), "backup written");
        Ok(BackupSummary {
            functions: functions.len(),
            blobs,
        })
    }
}
