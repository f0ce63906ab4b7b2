//! `flint new`: the scaffolded project builds for wasm32-wasip2 as it is, deploys to a
//! real server and answers; bad names and occupied directories are refused.

use crate::support::{FLINT, Server};
use flint_spec::manifest::Manifest;
use flint_test_artifacts as artifacts;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The files `flint new` writes, relative to the project.
const FILES: [&str; 6] = [
    "Cargo.toml",
    ".cargo/config.toml",
    ".gitignore",
    "README.md",
    "flint.toml",
    "src/lib.rs",
];

fn flint(args: &[&str], server: Option<&Server>) -> Output {
    let mut command = Command::new(FLINT);
    command.args(args).env_remove("FLINT_SDK_PATH");
    if let Some(server) = server {
        command.env("FLINT_SERVER", &server.url);
    }
    command.output().unwrap()
}

fn succeeded(output: &Output) -> String {
    assert!(
        output.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn failed(output: &Output) -> String {
    assert!(
        !output.status.success(),
        "expected a failure; stdout: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The target dir the guests of functions/ are built in (`<target>/wasm-functions`, which
/// is `$CARGO_TARGET_DIR/wasm-functions` when that is set), read off a built artifact.
pub(crate) fn wasm_target_dir() -> PathBuf {
    // <target dir>/wasm32-wasip2/release/hello.wasm
    Path::new(artifacts::HELLO)
        .ancestors()
        .nth(3)
        .unwrap()
        .to_path_buf()
}

/// Runs `cargo build --release` in the project as a user would, but in the guests'
/// target dir, where the SDK's dependencies are compiled already.
fn cargo_build(project: &Path, target_dir: &Path) {
    // Start from the versions functions/ builds with, so that those compiled
    // dependencies are reused and no registry index is needed; cargo drops the
    // entries this project does not use.
    let lock = Path::new(env!("CARGO_MANIFEST_DIR")).join("../functions/Cargo.lock");
    std::fs::copy(&lock, project.join("Cargo.lock")).unwrap();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(project)
        .args(["build", "--release"])
        .env("CARGO_TARGET_DIR", target_dir)
        // What `cargo test` sets for its own build must not leak into the guest's.
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "cargo build --release of the scaffold failed (needs `rustup target add wasm32-wasip2`):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn new_project_builds_deploys_and_answers() {
    let dir = tempfile::tempdir().unwrap();
    let parent = dir.path().to_str().unwrap();

    let out = succeeded(&flint(&["new", "greeter", "--dir", parent, "--json"], None));
    let created: Value = serde_json::from_str(&out).unwrap();
    let project = dir.path().join("greeter").canonicalize().unwrap();
    assert_eq!(created["name"], "greeter", "{created}");
    assert_eq!(created["dir"], project.to_str().unwrap(), "{created}");
    assert_eq!(created["files"], serde_json::json!(FILES), "{created}");
    for file in FILES {
        assert!(project.join(file).is_file(), "{file} missing");
    }
    let read = |file: &str| std::fs::read_to_string(project.join(file)).unwrap();
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../sdk-guest")
        .canonicalize()
        .unwrap();
    let cargo_toml = read("Cargo.toml");
    for want in [
        "name = \"greeter\"".to_owned(),
        "edition = \"2024\"".to_owned(),
        "crate-type = [\"cdylib\"]".to_owned(),
        "\n[workspace]\n".to_owned(),
        format!("flint-sdk = {{ path = \"{}\" }}", sdk.display()),
        "[profile.release]".to_owned(),
    ] {
        assert!(cargo_toml.contains(&want), "no {want:?} in:\n{cargo_toml}");
    }
    assert!(read(".cargo/config.toml").contains("target = \"wasm32-wasip2\""));
    assert_eq!(read(".gitignore"), "target/\n");
    let manifest = read("flint.toml");
    assert!(
        manifest.contains("[functions.greeter]")
            && manifest.contains(r#"output = "target/wasm32-wasip2/release/greeter.wasm""#),
        "{manifest}"
    );
    let readme = read("README.md");
    assert!(
        readme.contains("flint deploy greeter target/wasm32-wasip2/release/greeter.wasm"),
        "{readme}"
    );
    assert!(read("src/lib.rs").contains("flint_sdk::export!(handle);"));

    let target_dir = wasm_target_dir();
    cargo_build(&project, &target_dir);
    let wasm = target_dir.join("wasm32-wasip2/release/greeter.wasm");
    assert!(wasm.is_file(), "no {} after the build", wasm.display());

    let data = tempfile::tempdir().unwrap();
    let server = Server::start(&data);
    let out = succeeded(&flint(
        &["deploy", "greeter", wasm.to_str().unwrap()],
        Some(&server),
    ));
    assert!(out.contains("Deployed greeter version 1"), "{out}");
    let answer: Value = serde_json::from_str(&succeeded(&flint(
        &["invoke", "greeter", "/Ada"],
        Some(&server),
    )))
    .unwrap();
    assert_eq!(answer["message"], "Hello, Ada!", "{answer}");
    assert_eq!(answer["path"], "/Ada", "{answer}");
    assert_eq!(answer["method"], "GET", "{answer}");

    // The greeting is configuration: the env the manifest declares, set here by hand.
    succeeded(&flint(
        &["config", "greeter", "--env", "GREETING=Howdy"],
        Some(&server),
    ));
    let answer: Value = serde_json::from_str(&succeeded(&flint(
        &["invoke", "greeter", "/?name=Grace"],
        Some(&server),
    )))
    .unwrap();
    assert_eq!(answer["message"], "Howdy, Grace!", "{answer}");
}

#[test]
fn new_tells_the_next_steps_and_refuses_what_it_cannot_do() {
    let dir = tempfile::tempdir().unwrap();
    let parent = dir.path().to_str().unwrap();

    // Without --json: nothing on stdout, the files and next steps on stderr.
    let out = flint(&["new", "my-func", "--dir", parent], None);
    assert_eq!(succeeded(&out), "");
    let stderr = String::from_utf8_lossy(&out.stderr);
    for want in [
        "src/lib.rs",
        "flint.toml",
        "cargo build --release",
        "flint deploy my-func target/wasm32-wasip2/release/my_func.wasm",
        "flint invoke my-func /",
    ] {
        assert!(stderr.contains(want), "no {want:?} in:\n{stderr}");
    }

    // Never over an existing project, nor into a non-empty directory.
    let stderr = failed(&flint(&["new", "my-func", "--dir", parent], None));
    assert!(
        stderr.contains("my-func") && stderr.contains("already exists and is not empty"),
        "{stderr}"
    );
    // An empty directory is fine.
    std::fs::create_dir(dir.path().join("empty")).unwrap();
    succeeded(&flint(&["new", "empty", "--dir", parent], None));

    for bad in ["Greeter", "my_func", "9lives", &"a".repeat(64)] {
        let stderr = failed(&flint(&["new", bad, "--dir", parent], None));
        assert!(
            stderr.contains("1-63 characters: lowercase letters, digits and '-'"),
            "{bad}: {stderr}"
        );
    }
    assert!(!dir.path().join("Greeter").exists());

    let stderr = failed(&flint(
        &["new", "other", "--dir", parent, "--sdk", "/no/such/sdk"],
        None,
    ));
    assert!(
        stderr.contains("--sdk /no/such/sdk") && stderr.contains("sdk-guest"),
        "{stderr}"
    );
    assert!(!dir.path().join("other").exists());
}

#[test]
fn new_manifest_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    succeeded(&flint(
        &["new", "my-func", "--dir", dir.path().to_str().unwrap()],
        None,
    ));
    let path = dir.path().join("my-func/flint.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let manifest = Manifest::parse(&text, &path).unwrap_or_else(|err| panic!("{err}\n{text}"));
    assert_eq!(manifest.functions.len(), 1, "{text}");
    let spec = &manifest.functions["my-func"];
    let build = spec.build.as_ref().expect("a build spec");
    assert_eq!(build.command, "cargo build --release");
    assert_eq!(
        build.output,
        Path::new("target/wasm32-wasip2/release/my_func.wasm")
    );
    assert_eq!(spec.routes, ["/my-func/..."]);
    assert_eq!(spec.config.env.as_ref().unwrap()["GREETING"], "Hello");
    manifest
        .resolve(None)
        .unwrap_or_else(|err| panic!("{err}\n{text}"));
}
