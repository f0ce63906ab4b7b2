//! Where components come from, and turning them into digests: builds run,
//! files read and hashed.

use super::{ManifestError, Resolved};
use crate::digest::Digest;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where a function's component comes from; paths are absolute (joined
/// with the manifest's directory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComponentSource {
    /// A `.wasm` file already built.
    Path(PathBuf),
    /// A command that writes the component.
    Build {
        /// Run with `sh -c`.
        command: String,
        /// Where it runs.
        dir: PathBuf,
        /// The file it writes.
        output: PathBuf,
    },
    /// A component already on the server (`sha256:<hex>`).
    Digest(String),
}

/// The components of a [`Resolved`] manifest, as digests and files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadedComponents {
    /// Each function's component digest (`sha256:<hex>`).
    pub digests: BTreeMap<String, String>,
    /// For each digest read from disk, a file holding those bytes (digests
    /// declared in the manifest have none: they are on the server already).
    pub files: BTreeMap<String, PathBuf>,
}

/// Runs the builds, reads the component files and computes their digests.
///
/// A build (the same command in the same directory) shared by several
/// functions runs once. Builds print to stderr, so that stdout stays
/// clean for `--json`; `progress` gets a line before each build.
pub fn load_components(
    resolved: &Resolved,
    progress: &mut dyn FnMut(String),
) -> Result<LoadedComponents, ManifestError> {
    // Group functions by build, in the order of their first function.
    let mut builds: Vec<(&str, &Path, Vec<&str>)> = Vec::new();
    for (name, function) in &resolved.functions {
        if let ComponentSource::Build { command, dir, .. } = &function.source {
            match builds
                .iter_mut()
                .find(|(c, d, _)| *c == command.as_str() && *d == dir.as_path())
            {
                Some((_, _, names)) => names.push(name),
                None => builds.push((command, dir, vec![name])),
            }
        }
    }
    for (command, dir, names) in &builds {
        progress(format!("building {}: {command}", names.join(", ")));
        run_build(command, dir, names)?;
    }

    let mut loaded = LoadedComponents::default();
    // The same file named by several functions is read once.
    let mut read: BTreeMap<&Path, String> = BTreeMap::new();
    for (name, function) in &resolved.functions {
        let path = match &function.source {
            ComponentSource::Digest(digest) => {
                loaded.digests.insert(name.clone(), digest.clone());
                continue;
            }
            ComponentSource::Path(path) => path.as_path(),
            ComponentSource::Build { output, .. } => {
                if !output.is_file() {
                    return Err(ManifestError::BuildOutput {
                        function: name.clone(),
                        output: output.clone(),
                    });
                }
                output.as_path()
            }
        };
        let digest = match read.get(path) {
            Some(digest) => digest.clone(),
            None => {
                let bytes = std::fs::read(path).map_err(|source| ManifestError::Component {
                    function: name.clone(),
                    path: path.to_path_buf(),
                    source,
                })?;
                let digest = Digest::of(&bytes).to_string();
                read.insert(path, digest.clone());
                loaded
                    .files
                    .entry(digest.clone())
                    .or_insert_with(|| path.to_path_buf());
                digest
            }
        };
        loaded.digests.insert(name.clone(), digest);
    }
    Ok(loaded)
}

fn run_build(command: &str, dir: &Path, names: &[&str]) -> Result<(), ManifestError> {
    let functions = names
        .iter()
        .map(|name| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let status = Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(dir)
        .stdin(Stdio::null())
        // The build's stdout is progress, not a result: keep stdout for
        // what the CLI prints (`--json`).
        .stdout(Stdio::from(std::io::stderr()))
        .stderr(Stdio::inherit())
        .status()
        .map_err(|source| ManifestError::BuildSpawn {
            functions: functions.clone(),
            command: command.to_owned(),
            dir: dir.to_path_buf(),
            source,
        })?;
    if !status.success() {
        return Err(ManifestError::BuildFailed {
            functions,
            command: command.to_owned(),
            dir: dir.to_path_buf(),
            status: status.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Manifest;

    fn manifest(dir: &Path, text: &str) -> Manifest {
        Manifest::parse(text, &dir.join("flint.toml")).unwrap()
    }

    #[test]
    fn environments_share_the_digest_and_differ_in_config() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("orders.wasm"), b"any bytes").unwrap();
        let m = manifest(
            dir.path(),
            r#"
[functions.orders]
component = "orders.wasm"
[functions.orders.config]
memory_mb = 64
[env.staging.functions.orders.config]
memory_mb = 32
[env.prod.functions.orders.config]
min_instances = 2
"#,
        );
        let mut digests = Vec::new();
        let mut configs = Vec::new();
        for env in ["staging", "prod"] {
            let resolved = m.resolve(Some(env)).unwrap();
            let loaded = load_components(&resolved, &mut |_| {}).unwrap();
            let desired = resolved.desired(&loaded);
            let orders = &desired.functions["orders"];
            assert_eq!(
                loaded.files[&orders.digest],
                dir.path().join("orders.wasm"),
                "{env}"
            );
            digests.push(orders.digest.clone());
            configs.push(orders.config.clone());
        }
        assert_eq!(digests[0], digests[1]);
        assert_eq!(digests[0], Digest::of(b"any bytes").to_string());
        assert_eq!((configs[0].memory_mb, configs[0].min_instances), (32, 0));
        assert_eq!((configs[1].memory_mb, configs[1].min_instances), (64, 2));
    }

    #[test]
    fn a_shared_build_runs_once() {
        let dir = tempfile::tempdir().unwrap();
        // Each run appends a line to runs.log: two lines would mean two runs.
        let m = manifest(
            dir.path(),
            r#"
[functions.a]
build = { command = "echo run >> runs.log && printf x > out.wasm", output = "out.wasm" }
[functions.b]
build = { command = "echo run >> runs.log && printf x > out.wasm", output = "out.wasm", dir = "." }
[functions.c]
digest = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
"#,
        );
        let mut lines = Vec::new();
        let loaded = load_components(&m.resolve(None).unwrap(), &mut |l| lines.push(l)).unwrap();
        let runs = std::fs::read_to_string(dir.path().join("runs.log")).unwrap();
        assert_eq!(runs.lines().count(), 1, "{runs}");
        assert_eq!(
            lines,
            ["building a, b: echo run >> runs.log && printf x > out.wasm"]
        );
        let x = Digest::of(b"x").to_string();
        assert_eq!(loaded.digests["a"], x);
        assert_eq!(loaded.digests["b"], x);
        assert_eq!(
            loaded.digests["c"],
            "sha256:0000000000000000000000000000000000000000000000000000000000000000"
        );
        assert_eq!(loaded.files.len(), 1);
        assert_eq!(loaded.files[&x], dir.path().join("out.wasm"));
    }

    #[test]
    fn a_failing_build_names_command_dir_and_status() {
        let dir = tempfile::tempdir().unwrap();
        let m = manifest(
            dir.path(),
            "[functions.orders]\nbuild = { command = \"exit 3\", output = \"o.wasm\" }\n",
        );
        let err = load_components(&m.resolve(None).unwrap(), &mut |_| {})
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("build of `orders` failed: `exit 3` in "),
            "{err}"
        );
        assert!(err.contains(&dir.path().display().to_string()), "{err}");
        assert!(err.contains("exit status: 3"), "{err}");
    }

    #[test]
    fn a_build_without_its_output_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let m = manifest(
            dir.path(),
            "[functions.orders]\nbuild = { command = \"true\", output = \"o.wasm\" }\n",
        );
        let err = load_components(&m.resolve(None).unwrap(), &mut |_| {})
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("build of `orders` succeeded but did not produce "),
            "{err}"
        );
        assert!(err.contains("o.wasm"), "{err}");
    }

    #[test]
    fn a_missing_component_names_function_and_path() {
        let dir = tempfile::tempdir().unwrap();
        let m = manifest(
            dir.path(),
            "[functions.orders]\ncomponent = \"nope.wasm\"\n",
        );
        let err = load_components(&m.resolve(None).unwrap(), &mut |_| {})
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("cannot read the component of `orders` at "),
            "{err}"
        );
        assert!(err.contains("nope.wasm"), "{err}");
        assert!(err.contains("build it first"), "{err}");
    }
}
