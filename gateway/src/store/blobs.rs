//! Component bytes by digest: the [`BlobStore`] trait and its embedded
//! default, files under `blobs/<sha256>.wasm`.

use bytes::Bytes;
use flint_runtime::fsutil::{self, Swept, write_atomic};
use flint_spec::Digest;
use futures::future::BoxFuture;
use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Content-addressed component bytes. The same bytes have one digest, so a
/// put of bytes already held is a no-op.
pub trait BlobStore: Send + Sync + 'static {
    /// Stores `bytes` under `digest` durably before it returns. Bytes
    /// already held count as just stored (the garbage collector's grace
    /// starts again).
    fn put(&self, digest: Digest, bytes: Bytes) -> BoxFuture<'_, io::Result<()>>;
    /// Reads the bytes of `digest`.
    fn get(&self, digest: Digest) -> BoxFuture<'_, io::Result<Vec<u8>>>;
    /// The size of the bytes of `digest`, if they are held.
    fn size(&self, digest: Digest) -> BoxFuture<'_, Option<u64>>;
    /// Removes the bytes of `digest` if present.
    fn remove(&self, digest: Digest) -> BoxFuture<'_, io::Result<()>>;
    /// Bytes held, leftovers of interrupted writes included.
    fn usage(&self) -> BoxFuture<'_, io::Result<u64>>;
    /// Removes the blobs of digests outside `referenced`, and leftovers of
    /// interrupted writes, once untouched for `grace`.
    fn sweep(
        &self,
        referenced: Arc<BTreeSet<Digest>>,
        grace: Duration,
    ) -> BoxFuture<'_, io::Result<Vec<Swept>>>;
}

/// Blobs as files, written crash-safely (temp file, fsync, rename).
pub struct FsBlobStore {
    dir: Arc<PathBuf>,
}

impl FsBlobStore {
    /// A store under `dir` (created if missing).
    pub fn new(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(Self {
            dir: Arc::new(dir.to_path_buf()),
        })
    }

    fn path(dir: &Path, digest: &Digest) -> PathBuf {
        dir.join(format!("{}.wasm", digest.hex()))
    }

    /// Runs file I/O on the blocking pool: writes wait for fsync.
    fn blocking<T: Send + 'static>(
        &self,
        digest: Digest,
        work: impl FnOnce(PathBuf) -> io::Result<T> + Send + 'static,
    ) -> BoxFuture<'_, io::Result<T>> {
        let path = Self::path(&self.dir, &digest);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || work(path))
                .await
                .map_err(io::Error::other)?
        })
    }
}

impl BlobStore for FsBlobStore {
    fn put(&self, digest: Digest, bytes: Bytes) -> BoxFuture<'_, io::Result<()>> {
        self.blocking(digest, move |path| {
            if path.is_file() {
                return fsutil::touch(&path);
            }
            write_atomic(&path, &bytes)
        })
    }

    fn get(&self, digest: Digest) -> BoxFuture<'_, io::Result<Vec<u8>>> {
        self.blocking(digest, std::fs::read)
    }

    fn size(&self, digest: Digest) -> BoxFuture<'_, Option<u64>> {
        let path = Self::path(&self.dir, &digest);
        // One metadata call: cheaper inline than a hop to the blocking pool.
        Box::pin(async move { std::fs::metadata(path).ok().map(|m| m.len()) })
    }

    fn remove(&self, digest: Digest) -> BoxFuture<'_, io::Result<()>> {
        self.blocking(digest, |path| match std::fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        })
    }

    fn usage(&self) -> BoxFuture<'_, io::Result<u64>> {
        let dir = self.dir.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || fsutil::dir_usage(&dir))
                .await
                .map_err(io::Error::other)?
        })
    }

    fn sweep(
        &self,
        referenced: Arc<BTreeSet<Digest>>,
        grace: Duration,
    ) -> BoxFuture<'_, io::Result<Vec<Swept>>> {
        let dir = self.dir.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                fsutil::sweep(&dir, grace, |name| {
                    if fsutil::is_temp_name(name) {
                        return Some("temp file of an upload that never finished");
                    }
                    let digest = Digest::parse(name.strip_suffix(".wasm")?)?;
                    (!referenced.contains(&digest)).then_some("blob no version uses")
                })
            })
            .await
            .map_err(io::Error::other)?
        })
    }
}
