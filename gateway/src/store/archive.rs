//! Backup archives of a data directory: a tar file holding `registry.db`
//! (a consistent copy, taken with SQLite's online backup) and
//! `blobs/<sha256>.wasm` for every component the registry names. Compiled
//! artifacts are left out: they are rebuilt from the blobs, for the engine
//! that restores them.

use flint_runtime::fsutil::write_atomic;
use flint_spec::Digest;
use std::io::Read;
use std::path::Path;

/// The registry's name, in an archive and in a data directory.
pub const REGISTRY_FILE: &str = "registry.db";
/// The blob directory's name, in an archive and in a data directory.
pub const BLOB_DIR: &str = "blobs";

/// Writes archives entry by entry.
pub struct ArchiveWriter {
    tar: tar::Builder<std::fs::File>,
}

impl ArchiveWriter {
    /// An archive at `path` (created or truncated).
    pub fn create(path: &Path) -> std::io::Result<Self> {
        Ok(Self {
            tar: tar::Builder::new(std::fs::File::create(path)?),
        })
    }

    /// Adds the registry copy at `file`.
    pub fn add_registry(&mut self, file: &Path) -> std::io::Result<()> {
        self.tar.append_path_with_name(file, REGISTRY_FILE)
    }

    /// Adds the bytes of `digest`.
    pub fn add_blob(&mut self, digest: &Digest, bytes: &[u8]) -> std::io::Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        self.tar.append_data(
            &mut header,
            format!("{BLOB_DIR}/{}.wasm", digest.hex()),
            bytes,
        )
    }

    /// Finishes the archive and flushes it to disk.
    pub fn finish(self) -> std::io::Result<()> {
        let file = self.tar.into_inner()?;
        file.sync_all()
    }
}

/// What a restore wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restored {
    /// Components restored.
    pub blobs: usize,
    /// Bytes written.
    pub bytes: u64,
}

/// Restores the archive at `archive` into `data_dir`, which must not hold a
/// registry yet. Every blob is checked against its digest; an archive with
/// a damaged blob, an unknown entry or no registry is refused.
pub fn restore(archive: &Path, data_dir: &Path) -> anyhow::Result<Restored> {
    let registry = data_dir.join(REGISTRY_FILE);
    anyhow::ensure!(
        !registry.exists(),
        "{} already holds a registry; restore into an empty data dir",
        data_dir.display()
    );
    let file = std::fs::File::open(archive)
        .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", archive.display()))?;
    std::fs::create_dir_all(data_dir.join(BLOB_DIR))?;
    let mut restored = Restored { blobs: 0, bytes: 0 };
    // Written last: a restore that fails half-way leaves no registry, so it
    // can simply be run again.
    let mut registry_bytes = None;
    let mut entries = tar::Archive::new(file);
    for entry in entries.entries()? {
        let mut entry = entry?;
        let name = entry.path()?.to_string_lossy().into_owned();
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        entry.read_to_end(&mut bytes)?;
        restored.bytes += bytes.len() as u64;
        if name == REGISTRY_FILE {
            registry_bytes = Some(bytes);
            continue;
        }
        if let Some(hex) = name
            .strip_prefix(&format!("{BLOB_DIR}/"))
            .and_then(|n| n.strip_suffix(".wasm"))
        {
            let digest =
                Digest::parse(hex).ok_or_else(|| anyhow::anyhow!("{name}: not a blob name"))?;
            anyhow::ensure!(
                Digest::of(&bytes) == digest,
                "{name}: its bytes do not match its digest; the archive is damaged"
            );
            restored.blobs += 1;
        } else {
            anyhow::bail!("{name}: not part of a Flint backup");
        }
        write_atomic(&data_dir.join(&name), &bytes)?;
    }
    let registry_bytes = registry_bytes.ok_or_else(|| {
        anyhow::anyhow!(
            "{} holds no {REGISTRY_FILE}; it is not a Flint backup",
            archive.display()
        )
    })?;
    write_atomic(&registry, &registry_bytes)?;
    Ok(restored)
}
