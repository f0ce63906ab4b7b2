//! Deploys, component uploads, configuration changes and deletes.
//!
//! An upload is validated and compiled at once (or its artifact mapped when
//! the same bytes were compiled before), its bytes stored, and only then
//! recorded: no caller ever pays a compile, and a component that fails
//! never becomes a version.

use super::sync::Components;
use super::{ComponentUpload, Control, CoreError, CoreResult, Deployed};
use crate::metrics::LoadSource;
use crate::store::{Change, Outcome};
use bytes::Bytes;
use flint_runtime::{ConfigPatch, Digest, FunctionConfig, Program};
use flint_spec::FunctionKind;
use std::time::Instant;

/// Writes retried when another writer took a version number first.
const CONFLICT_RETRIES: usize = 3;

/// A validated, compiled and stored component.
pub(super) struct Prepared {
    pub component: Program,
    pub source: LoadSource,
    pub compile_ms: f64,
    pub size_bytes: u64,
}

/// Refuses an upload of kind `found` when the uploader asked for another.
fn check_kind(found: FunctionKind, expected: Option<FunctionKind>) -> CoreResult<()> {
    match expected {
        Some(expected) if expected != found => Err(CoreError::InvalidComponent(format!(
            "the upload is a {} (kind `{found}`), not the `{expected}` asked for; drop --kind to take it as it is",
            found.describe(),
        ))),
        _ => Ok(()),
    }
}

impl Control {
    /// Validates and compiles `bytes` (or maps their artifact when the same
    /// bytes were compiled before, under any name) and stores them. The
    /// compile goes through the runtime's admission and deadline; with
    /// `--max-storage-bytes`, an upload that would not fit stores nothing.
    /// Bytes of another kind than `expected` (when given) store nothing.
    pub(super) async fn prepare(
        &self,
        digest: &Digest,
        bytes: Bytes,
        expected: Option<FunctionKind>,
    ) -> CoreResult<Prepared> {
        let runtime = self.s.runtime.clone();
        let size_bytes = bytes.len() as u64;
        let blob_held = self.s.blobs.size(digest.clone()).await.is_some();
        let cached = {
            let digest = digest.clone();
            tokio::task::spawn_blocking(move || runtime.load_cached(&digest))
                .await
                .map_err(CoreError::internal)?
        };
        let new_blob = if blob_held { 0 } else { size_bytes };
        if !blob_held || cached.is_none() {
            // Refused before the compile, when the bytes alone do not fit.
            self.check_storage(new_blob).await?;
        }
        let (component, source, compile_ms) = match cached {
            Some(component) => {
                // The garbage collector's grace starts again: this upload
                // has not recorded its version yet.
                let _ = self.s.runtime.cache().touch(digest);
                (component, LoadSource::Disk, 0.0)
            }
            None => {
                let compiled = self.s.runtime.compile_limited(bytes.clone()).await?;
                let ms = compiled.compile_time.as_secs_f64() * 1000.0;
                (compiled.program, LoadSource::Compile, ms)
            }
        };
        check_kind(component.kind(), expected)?;
        let limited = self.s.config.max_storage_bytes > 0;
        let _storing = if limited {
            Some(self.s.storing.lock().await)
        } else {
            None
        };
        let compiled_now = source == LoadSource::Compile;
        if limited && (compiled_now || !blob_held) {
            // Checked again under the lock: a new artifact is on disk now
            // and counts, and so do the uploads stored meanwhile.
            if let Err(e) = self.check_storage(new_blob).await {
                if compiled_now {
                    self.s.runtime.cache().remove(digest);
                }
                return Err(e);
            }
        }
        self.s
            .blobs
            .put(digest.clone(), bytes)
            .await
            .map_err(CoreError::internal)?;
        Ok(Prepared {
            component,
            source,
            compile_ms,
            size_bytes,
        })
    }

    /// Refuses with [`CoreError::InsufficientStorage`] when `adding` more
    /// bytes would take the blobs and artifacts past `--max-storage-bytes`.
    async fn check_storage(&self, adding: u64) -> CoreResult<()> {
        let limit = self.s.config.max_storage_bytes;
        if limit == 0 {
            return Ok(());
        }
        let used = self.storage_used().await?;
        if used.saturating_add(adding) > limit {
            tracing::warn!(
                used,
                adding,
                limit,
                "upload refused: --max-storage-bytes reached"
            );
            return Err(CoreError::InsufficientStorage {
                would_hold: used.saturating_add(adding),
                limit,
            });
        }
        Ok(())
    }

    /// Bytes the blobs and compiled artifacts hold now.
    async fn storage_used(&self) -> CoreResult<u64> {
        let blobs = self.s.blobs.usage().await.map_err(CoreError::internal)?;
        let runtime = self.s.runtime.clone();
        let artifacts = tokio::task::spawn_blocking(move || runtime.cache().usage())
            .await
            .map_err(CoreError::internal)?
            .map_err(CoreError::internal)?;
        Ok(blobs + artifacts)
    }

    /// Deploys `bytes` as the next version of `name` (created with the
    /// default configuration if new). The same bytes as the latest version
    /// make no new version. With `kind`, bytes of another kind are refused.
    pub async fn deploy(
        &self,
        name: &str,
        bytes: Bytes,
        kind: Option<FunctionKind>,
    ) -> CoreResult<Deployed> {
        flint_spec::names::check_function_name(name).map_err(CoreError::InvalidName)?;
        let digest = Digest::of(&bytes);
        if let Some(latest) = self.s.table.get(name).and_then(|e| e.latest())
            && latest.record.digest == digest
        {
            // The same bytes restore a blob that is gone or damaged (see
            // `flint doctor`), and the artifact with it.
            if self.s.blobs.size(digest.clone()).await != Some(bytes.len() as u64) {
                self.s
                    .blobs
                    .remove(digest.clone())
                    .await
                    .map_err(CoreError::internal)?;
                self.prepare(&digest, bytes, kind).await?;
                latest.set_broken(None);
                tracing::info!(function = name, %digest, "component restored");
            }
            check_kind(latest.record.kind, kind)?;
            return Ok(Deployed {
                name: name.into(),
                version: latest.record.version,
                digest: digest.to_string(),
                created: false,
                size_bytes: latest.record.size_bytes,
                compile_ms: latest.record.compile_ms,
                kind: latest.record.kind,
            });
        }
        let prepared = self.prepare(&digest, bytes, kind).await?;
        let kind = prepared.component.kind();
        let components: Components = [(
            digest.clone(),
            (prepared.component.clone(), prepared.source),
        )]
        .into();
        let mut attempt = 0;
        let added = loop {
            let change = Change::AddVersion {
                name: name.into(),
                digest: digest.clone(),
                size_bytes: prepared.size_bytes,
                compile_ms: prepared.compile_ms,
                kind,
                default_config: Box::default(),
                expected: None,
            };
            let written = {
                let _writing = self.s.writes.lock().await;
                self.write(vec![change], &components).await
            };
            match written {
                Ok(mut outcomes) => match outcomes.pop() {
                    Some(Outcome::Version(added)) => break added,
                    other => {
                        return Err(CoreError::internal(format!("unexpected outcome {other:?}")));
                    }
                },
                Err(CoreError::Conflict(why)) if attempt < CONFLICT_RETRIES => {
                    attempt += 1;
                    tracing::info!(function = name, %why, attempt, "version number taken meanwhile; retrying");
                }
                Err(e) => return Err(e),
            }
        };
        let record = added.record;
        if added.created {
            tracing::info!(function = name, version = record.version, %digest, compile_ms = record.compile_ms, "deployed");
        }
        Ok(Deployed {
            name: name.into(),
            version: record.version,
            digest: digest.to_string(),
            created: added.created,
            size_bytes: record.size_bytes,
            compile_ms: record.compile_ms,
            kind: record.kind,
        })
    }

    /// Stores and compiles a component (or WAGI module) by content, for a
    /// later apply. With `kind`, bytes of another kind are refused.
    pub async fn upload_component(
        &self,
        bytes: Bytes,
        kind: Option<FunctionKind>,
    ) -> CoreResult<ComponentUpload> {
        let digest = Digest::of(&bytes);
        let held = self.s.blobs.size(digest.clone()).await.is_some()
            && self.s.runtime.cache().contains(&digest);
        let prepared = self.prepare(&digest, bytes, kind).await?;
        Ok(ComponentUpload {
            digest: digest.to_string(),
            size_bytes: prepared.size_bytes,
            compile_ms: prepared.compile_ms,
            created: !held,
            kind: prepared.component.kind(),
        })
    }

    /// Whether the server holds the bytes of `digest`.
    pub async fn has_component(&self, digest: &Digest) -> bool {
        self.s.blobs.size(digest.clone()).await.is_some()
    }

    /// Applies `patch` to a function's configuration. Loaded versions get
    /// fresh pools; calls in flight finish on their old instances.
    pub async fn patch_config(&self, name: &str, patch: ConfigPatch) -> CoreResult<FunctionConfig> {
        let _writing = self.s.writes.lock().await;
        let entry = self.entry(name)?;
        let next = entry.config().patched(patch)?;
        self.s
            .secrets
            .check(&next)
            .map_err(CoreError::InvalidConfig)?;
        let started = Instant::now();
        let outcomes = self
            .write(
                vec![Change::SetConfig {
                    name: name.into(),
                    config: Box::new(next.clone()),
                }],
                &Components::new(),
            )
            .await?;
        if !outcomes[0].applied() {
            return Err(CoreError::FunctionNotFound(name.into()));
        }
        tracing::info!(
            function = name,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "config updated"
        );
        Ok(next)
    }

    /// Deletes a function with its versions, trigger, routes and release
    /// state; blobs no other version uses go too.
    pub async fn delete(&self, name: &str) -> CoreResult<()> {
        let _writing = self.s.writes.lock().await;
        self.entry(name)?;
        self.write(
            vec![Change::DeleteFunction { name: name.into() }],
            &Components::new(),
        )
        .await?;
        Ok(())
    }
}
