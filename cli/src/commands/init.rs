//! `flint init`: writes a commented example manifest (`flint.toml`).

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;

/// The example manifest: one function with every key documented, and a
/// staging and a prod overlay.
pub const TEMPLATE: &str = include_str!("flint.example.toml");

/// Flags of `flint init`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  flint init
  flint init --file deploy/flint.toml
  flint init --force")]
pub struct InitArgs {
    /// Where to write
    #[arg(long, short = 'f', value_name = "FILE", default_value = flint_spec::manifest::MANIFEST_FILE)]
    pub file: PathBuf,
    /// Overwrite an existing file
    #[arg(long)]
    pub force: bool,
}

/// Runs `flint init`.
pub fn run(args: InitArgs) -> anyhow::Result<()> {
    let path = &args.file;
    let written = if args.force {
        std::fs::write(path, TEMPLATE)
    } else {
        // create_new: checking first and then writing could still clobber
        // a file created in between.
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .and_then(|mut file| file.write_all(TEMPLATE.as_bytes()))
    };
    match written {
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => anyhow::bail!(
            "{} already exists; use --force to overwrite it",
            path.display()
        ),
        other => other.with_context(|| format!("cannot write {}", path.display()))?,
    }
    let env = |command: &str| {
        if path == &PathBuf::from(flint_spec::manifest::MANIFEST_FILE) {
            format!("flint {command} --env staging")
        } else {
            format!("flint {command} --env staging --file {}", path.display())
        }
    };
    eprintln!(
        "Wrote {} (one function, `hello`, and the environments staging and prod).\n\
         Next: edit it for your functions, then\n  {}   # what would change\n  {}  # build, upload, make the server match",
        path.display(),
        env("plan"),
        env("apply"),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use flint_spec::manifest::{ComponentSource, Manifest};
    use std::path::Path;

    #[test]
    fn the_template_is_a_valid_manifest() {
        let manifest = Manifest::parse(TEMPLATE, Path::new("/app/flint.toml")).unwrap();
        assert_eq!(manifest.environments(), ["prod", "staging"]);
        for env in [None, Some("staging"), Some("prod")] {
            let resolved = manifest.resolve(env).unwrap();
            let hello = &resolved.functions["hello"];
            assert_eq!(
                hello.source,
                ComponentSource::Build {
                    command: "cargo build --release --target wasm32-wasip2".into(),
                    dir: "/app".into(),
                    output: "/app/target/wasm32-wasip2/release/hello.wasm".into(),
                },
                "{env:?}"
            );
        }
        let prod = manifest.resolve(Some("prod")).unwrap();
        assert_eq!(prod.functions["hello"].config.min_instances, 2);
        assert_eq!(prod.functions["hello"].config.env["GREETING"], "Hello");
    }

    #[test]
    fn refuses_to_overwrite_without_force() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("flint.toml");
        std::fs::write(&file, "mine").unwrap();
        let err = run(InitArgs {
            file: file.clone(),
            force: false,
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("already exists; use --force"), "{err}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "mine");

        run(InitArgs {
            file: file.clone(),
            force: true,
        })
        .unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), TEMPLATE);
    }

    #[test]
    fn writes_a_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("deploy.toml");
        run(InitArgs {
            file: file.clone(),
            force: false,
        })
        .unwrap();
        Manifest::load(&file).unwrap();
    }
}
