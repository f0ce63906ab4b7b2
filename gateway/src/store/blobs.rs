//! Component bytes by digest: the [`BlobStore`] trait and its embedded
//! default, files under `blobs/<sha256>.wasm`.

use bytes::Bytes;
use flint_runtime::fsutil::write_atomic;
use flint_spec::Digest;
use futures::future::BoxFuture;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Content-addressed component bytes. The same bytes have one digest, so a
/// put of bytes already held is a no-op.
pub trait BlobStore: Send + Sync + 'static {
    /// Stores `bytes` under `digest` durably before it returns.
    fn put(&self, digest: Digest, bytes: Bytes) -> BoxFuture<'_, io::Result<()>>;
    /// Reads the bytes of `digest`.
    fn get(&self, digest: Digest) -> BoxFuture<'_, io::Result<Vec<u8>>>;
    /// The size of the bytes of `digest`, if they are held.
    fn size(&self, digest: Digest) -> BoxFuture<'_, Option<u64>>;
    /// Removes the bytes of `digest` if present.
    fn remove(&self, digest: Digest) -> BoxFuture<'_, io::Result<()>>;
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
                return Ok(());
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
}
