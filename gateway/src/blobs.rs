//! Content-addressed storage of uploaded components (`blobs/<sha256>.wasm`).

use flint_runtime::Digest;
use flint_runtime::fsutil::write_atomic;
use std::path::{Path, PathBuf};

/// Component bytes by digest, written crash-safely.
pub struct BlobStore {
    dir: PathBuf,
}

impl BlobStore {
    /// A store under `dir`.
    pub fn new(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    fn path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(format!("{}.wasm", digest.hex()))
    }

    /// Stores `bytes` under their digest (a no-op if present).
    pub fn put(&self, digest: &Digest, bytes: &[u8]) -> std::io::Result<()> {
        let path = self.path(digest);
        if path.is_file() {
            return Ok(());
        }
        write_atomic(&path, bytes)
    }

    /// Reads the bytes of `digest`.
    pub fn get(&self, digest: &Digest) -> std::io::Result<Vec<u8>> {
        std::fs::read(self.path(digest))
    }

    /// The size of the bytes of `digest`, if they are stored.
    pub fn size(&self, digest: &Digest) -> Option<u64> {
        std::fs::metadata(self.path(digest)).ok().map(|m| m.len())
    }

    /// Removes the bytes of `digest` if present.
    pub fn remove(&self, digest: &Digest) -> std::io::Result<()> {
        match std::fs::remove_file(self.path(digest)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}
