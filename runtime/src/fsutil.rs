//! Files in Flint's data directory: crash-safe writes shared by the
//! artifact cache and the blob store, and the measuring and sweeping that
//! the storage cap and the garbage collector use.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Writes `bytes` to `path` so that a crash leaves either the old file or the
/// whole new one: temp file in the same directory, fsync, rename, fsync dir.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    std::fs::File::open(dir)?.sync_all()
}

/// As [`write_atomic`], through the temp file `tmp` (in the same directory),
/// which the caller names so that it can remove it after a kill.
pub fn write_atomic_via(tmp: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(tmp);
    }
    written?;
    std::fs::File::open(dir)?.sync_all()
}

/// Whether `name` is the temp file of a write that never finished (one of
/// [`write_atomic`]'s, `.tmpXXXXXX`, or one named for [`write_atomic_via`],
/// `*.tmp`).
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with(".tmp") || name.ends_with(".tmp")
}

/// Marks `path` as just used (its modification time becomes now), so that a
/// sweep's grace period starts again.
pub fn touch(path: &Path) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)?
        .set_modified(SystemTime::now())
}

/// Bytes held by the regular files directly in `dir` (none if it is
/// missing).
pub fn dir_usage(dir: &Path) -> std::io::Result<u64> {
    let entries = match std::fs::read_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        other => other?,
    };
    let mut total = 0;
    for entry in entries {
        let entry = entry?;
        // A file removed meanwhile (a sweep, a finished temp file) holds
        // nothing any more.
        if let Ok(meta) = entry.metadata()
            && meta.is_file()
        {
            total += meta.len();
        }
    }
    Ok(total)
}

/// A file a sweep removed.
#[derive(Debug, Clone)]
pub struct Swept {
    /// Where it was.
    pub path: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// Why it was garbage.
    pub reason: &'static str,
}

/// Removes the regular files directly in `dir` that `garbage` names (by
/// file name, returning why) and that were not modified within `grace`.
/// A file that cannot be removed is logged and left.
pub fn sweep(
    dir: &Path,
    grace: Duration,
    garbage: impl Fn(&str) -> Option<&'static str>,
) -> std::io::Result<Vec<Swept>> {
    let entries = match std::fs::read_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        other => other?,
    };
    let now = SystemTime::now();
    let mut swept = Vec::new();
    for entry in entries {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let Some(reason) = garbage(&name) else {
            continue;
        };
        let Ok(meta) = entry.metadata() else { continue };
        let age = meta
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .unwrap_or_default();
        if !meta.is_file() || age < grace {
            continue;
        }
        let path = entry.path();
        match std::fs::remove_file(&path) {
            Ok(()) => swept.push(Swept {
                path,
                bytes: meta.len(),
                reason,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "could not remove garbage")
            }
        }
    }
    Ok(swept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_spares_the_young_and_what_is_not_garbage() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["old", "keep", ".tmpabc"] {
            std::fs::write(dir.path().join(name), b"1234").unwrap();
        }
        let judge = |name: &str| (name != "keep").then_some("test");
        assert!(
            sweep(dir.path(), Duration::from_secs(3600), judge)
                .unwrap()
                .is_empty()
        );
        let swept = sweep(dir.path(), Duration::ZERO, judge).unwrap();
        assert_eq!(swept.len(), 2);
        assert_eq!(dir_usage(dir.path()).unwrap(), 4);
        assert!(dir.path().join("keep").is_file());
    }

    #[test]
    fn a_failed_write_via_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("x.tmp");
        std::fs::create_dir(dir.path().join("target")).unwrap();
        // Renaming a file over a directory fails.
        assert!(write_atomic_via(&tmp, &dir.path().join("target"), b"data").is_err());
        assert!(!tmp.exists());
        write_atomic_via(&tmp, &dir.path().join("file"), b"data").unwrap();
        assert_eq!(std::fs::read(dir.path().join("file")).unwrap(), b"data");
        assert!(is_temp_name("x.tmp") && is_temp_name(".tmpAbC123") && !is_temp_name("a.wasm"));
    }
}
