//! `flint new NAME`: scaffolds a Rust function project that builds and deploys as it is.
//!
//! The project is a standalone cdylib crate depending on `flint-sdk` by path (the SDK is
//! not on crates.io), with `.cargo/config.toml` making `wasm32-wasip2` the default target
//! so that a plain `cargo build --release` produces the component, and a `flint.toml`
//! manifest declaring how to build it and where to serve it.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::Args;
use flint_spec::{MAX_NAME_LEN, is_valid_name};
use serde_json::json;

use crate::GlobalArgs;
use crate::output;

/// Where the flint-sdk crate is in the Flint checkout this binary was built from: the
/// default of `--sdk`, used when it still exists.
const BUILT_FROM_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../sdk-guest");

/// Flags of `flint new`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  flint new greeter
  cd greeter
  cargo build --release
  flint deploy greeter target/wasm32-wasip2/release/greeter.wasm
  flint invoke greeter /Ada

  flint new greeter --dir ~/src --sdk ~/flint/sdk-guest
  flint new greeter --json | jq -r .dir")]
pub struct NewArgs {
    /// Name of the function, its Cargo package and its directory
    #[arg(value_parser = parse_new_name)]
    pub name: String,
    /// Parent directory (default: current)
    #[arg(long, default_value = ".", value_name = "DIR")]
    pub dir: PathBuf,
    /// Path to the flint-sdk crate (the sdk-guest/ directory of a Flint checkout); default:
    /// the checkout this flint was built from
    #[arg(long, env = "FLINT_SDK_PATH", value_name = "PATH")]
    pub sdk: Option<PathBuf>,
}

/// Parses the name of a new function: one the server accepts ([`is_valid_name`]) that is
/// also a valid Cargo package name (it starts with a letter).
fn parse_new_name(name: &str) -> Result<String, String> {
    let starts_with_letter = name.starts_with(|c: char| c.is_ascii_lowercase());
    if !is_valid_name(name) || !starts_with_letter {
        return Err(format!(
            "invalid name {name:?}: a function name is 1-{MAX_NAME_LEN} characters: lowercase \
             letters, digits and '-', starting with a letter (Cargo package names cannot start \
             with a digit)"
        ));
    }
    Ok(name.to_owned())
}

/// Runs `flint new`.
pub fn run(global: &GlobalArgs, args: NewArgs) -> anyhow::Result<()> {
    let sdk = find_sdk(args.sdk.as_deref())?;
    let sdk = sdk
        .to_str()
        .with_context(|| format!("the flint-sdk path {} is not UTF-8", sdk.display()))?;
    let project = args.dir.join(&args.name);
    ensure_empty_or_absent(&project)?;

    let files = project_files(&args.name, sdk);
    for (relative, contents) in &files {
        let path = project.join(relative);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        fs::write(&path, contents).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let absolute = project
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", project.display()))?;
    let names: Vec<&str> = files.iter().map(|(relative, _)| *relative).collect();

    if global.json {
        output::print_json(&json!({
            "name": args.name,
            "dir": absolute.display().to_string(),
            "files": names,
        }))?;
        return Ok(());
    }
    eprintln!("Created {} in {}:", args.name, project.display());
    for name in &names {
        eprintln!("  {name}");
    }
    eprintln!(
        "\nNext steps (the build needs `rustup target add wasm32-wasip2` once):\n  \
         cd {dir}\n  \
         cargo build --release\n  \
         flint deploy {name} {output}\n  \
         flint invoke {name} /",
        dir = project.display(),
        name = args.name,
        output = wasm_output(&args.name),
    );
    Ok(())
}

/// The flint-sdk crate to depend on, as an absolute path: `--sdk` (or `FLINT_SDK_PATH`),
/// else the checkout this binary was built from.
fn find_sdk(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = given {
        if !is_sdk(path) {
            bail!(
                "--sdk {}: not the flint-sdk crate (expected a Cargo.toml of package \
                 \"flint-sdk\"); give the sdk-guest/ directory of a Flint checkout",
                path.display()
            );
        }
        return path
            .canonicalize()
            .with_context(|| format!("cannot resolve --sdk {}", path.display()));
    }
    let built_from = Path::new(BUILT_FROM_SDK);
    if is_sdk(built_from) {
        return built_from
            .canonicalize()
            .with_context(|| format!("cannot resolve {}", built_from.display()));
    }
    bail!(
        "cannot find the flint-sdk crate (it is not on crates.io, and {} no longer exists); \
         pass --sdk PATH or set FLINT_SDK_PATH to the sdk-guest/ directory of a Flint checkout",
        built_from.display()
    )
}

/// Whether `dir` holds the flint-sdk crate.
fn is_sdk(dir: &Path) -> bool {
    fs::read_to_string(dir.join("Cargo.toml"))
        .is_ok_and(|manifest| manifest.contains("name = \"flint-sdk\""))
}

/// Fails unless `dir` is absent or an empty directory: scaffolding never overwrites.
fn ensure_empty_or_absent(dir: &Path) -> anyhow::Result<()> {
    match fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                bail!(
                    "{} already exists and is not empty; choose another name or --dir, or \
                     remove it",
                    dir.display()
                );
            }
            Ok(())
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(_) if dir.exists() => bail!(
            "{} already exists and is not a directory; choose another name or --dir",
            dir.display()
        ),
        Err(err) => Err(err).with_context(|| format!("cannot read {}", dir.display())),
    }
}

/// Where `cargo build --release` puts the component, relative to the project (without
/// `CARGO_TARGET_DIR`): Cargo names it after the crate, with `-` turned into `_`.
fn wasm_output(name: &str) -> String {
    format!(
        "target/wasm32-wasip2/release/{}.wasm",
        name.replace('-', "_")
    )
}

/// The project's files, as (path relative to the project, contents), in the order they
/// are listed.
fn project_files(name: &str, sdk: &str) -> Vec<(&'static str, String)> {
    let fill = |template: &str| {
        template
            .replace("__NAME__", name)
            .replace("__OUTPUT__", &wasm_output(name))
            .replace("__SDK__", &toml_string(sdk))
    };
    vec![
        ("Cargo.toml", fill(CARGO_TOML)),
        (".cargo/config.toml", CARGO_CONFIG.to_owned()),
        (".gitignore", GITIGNORE.to_owned()),
        ("README.md", fill(README)),
        ("flint.toml", fill(FLINT_TOML)),
        ("src/lib.rs", fill(LIB_RS)),
    ]
}

/// `value` as a TOML basic string, quotes included.
fn toml_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

const CARGO_TOML: &str = r#"[package]
name = "__NAME__"
version = "0.1.0"
edition = "2024"
publish = false

# A workspace of its own, so that the project builds alone even when it sits
# inside another Cargo workspace.
[workspace]

[lib]
# A component is built from a cdylib.
crate-type = ["cdylib"]

[dependencies]
# flint-sdk is not on crates.io: this is the sdk-guest/ directory of a Flint
# checkout (`flint new --sdk PATH` chooses another).
flint-sdk = { path = __SDK__ }
serde_json = "1"

# Small, fast components: Flint compiles each upload with Cranelift, so less
# code means a faster deploy, a smaller artifact and cheaper instantiation.
[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
# A panic must end the invocation as a trap; on wasm32-wasip2 `abort` is an
# `unreachable` instruction, and it drops the unwinding machinery.
panic = "abort"
strip = true
"#;

const CARGO_CONFIG: &str = r#"# Build for wasm32-wasip2 by default, so that a plain `cargo build --release`
# makes the component. Native unit tests: `cargo test --target <host triple>`.
[build]
target = "wasm32-wasip2"
"#;

const GITIGNORE: &str = "target/\n";

const FLINT_TOML: &str = r#"# How to build this function and how Flint serves it.

[functions.__NAME__]
build = { command = "cargo build --release", output = "__OUTPUT__" }
routes = ["/__NAME__/..."]

# The function's configuration; `env` is the only environment it sees.
[functions.__NAME__.config]
env = { GREETING = "Hello" }
"#;

const README: &str = r#"# __NAME__

A Flint function written in Rust with `flint-sdk`: a WebAssembly
component (`wasm32-wasip2`) exporting `wasi:http/incoming-handler`.

`GET /Ada` or `GET /?name=Ada` answers
`{"message":"Hello, Ada!","method":"GET","path":"/Ada"}` (without a name, it
greets the world). The greeting comes from the function's `GREETING`
environment variable, `Hello` when it is not set.

## Build

Needs the target once: `rustup target add wasm32-wasip2`.

```sh
cargo build --release
```

`.cargo/config.toml` makes `wasm32-wasip2` the default target, so the
component lands in `__OUTPUT__` (under `$CARGO_TARGET_DIR` instead of
`target/` when that is set).

## Deploy and invoke

With a Flint server running (`flint serve`; the commands talk to
`http://127.0.0.1:8080` unless `--server` or `FLINT_SERVER` says otherwise):

```sh
flint deploy __NAME__ __OUTPUT__
flint invoke __NAME__ /
flint invoke __NAME__ /Ada
flint config __NAME__ --env GREETING=Howdy
curl 'http://127.0.0.1:8080/fn/__NAME__/?name=Ada'
```

Deploying makes a new immutable version; deploying the same bytes again
changes nothing.

## Test

The handler is a plain function, so its unit tests run natively:

```sh
cargo test --target "$(rustc -vV | sed -n 's/^host: //p')"
```

## Files

- `src/lib.rs`: the handler.
- `flint.toml`: the Flint manifest: how to build the function, its routes
  and its configuration.
- `Cargo.toml`: the crate (a `cdylib`), with `flint-sdk` by path and a
  release profile tuned for small components.
"#;

const LIB_RS: &str = r#"//! `__NAME__`: a Flint function.
//!
//! `GET /Ada` or `GET /?name=Ada` answers
//! `{"message": "Hello, Ada!", "method": "GET", "path": "/Ada"}`; without a
//! name it greets the world. The greeting comes from the `GREETING`
//! environment variable of the function's configuration (`flint config
//! __NAME__ --env GREETING=Howdy`), [`DEFAULT_GREETING`] when it is not set.

use flint_sdk::{Request, Response};
use serde_json::json;

/// The greeting when the function's configuration sets no `GREETING`.
const DEFAULT_GREETING: &str = "Hello";

/// Whom to greet when the request names no one.
const DEFAULT_NAME: &str = "world";

/// Answers every request with a JSON greeting.
fn handle(req: Request) -> Response {
    // Only the variables set in the function's configuration are visible,
    // never the host's environment.
    let greeting = flint_sdk::env("GREETING").unwrap_or_else(|| DEFAULT_GREETING.to_owned());
    let name = name(&req);
    Response::json(
        200,
        &json!({
            "message": format!("{greeting}, {name}!"),
            "method": req.method().as_str(),
            "path": req.path(),
        }),
    )
}

/// Whom to greet: the `name` query parameter, else the first segment of the
/// path, else [`DEFAULT_NAME`].
fn name(req: &Request) -> String {
    req.query_param("name")
        .filter(|name| !name.is_empty())
        .or_else(|| {
            req.path()
                .split('/')
                .find(|segment| !segment.is_empty())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| DEFAULT_NAME.to_owned())
}

flint_sdk::export!(handle);

#[cfg(test)]
mod tests {
    use super::*;
    use flint_sdk::Method;
    use serde_json::Value;

    fn message(path_with_query: &str) -> String {
        let response = handle(Request::new(Method::Get, path_with_query));
        assert_eq!(response.status(), 200);
        let body: Value = serde_json::from_slice(response.body_bytes()).unwrap();
        body["message"].as_str().unwrap().to_owned()
    }

    #[test]
    fn greets_by_query_path_or_default() {
        let greeting = flint_sdk::env("GREETING").unwrap_or_else(|| DEFAULT_GREETING.to_owned());
        assert_eq!(message("/?name=Ada"), format!("{greeting}, Ada!"));
        assert_eq!(message("/Grace/more"), format!("{greeting}, Grace!"));
        assert_eq!(message("/"), format!("{greeting}, world!"));
    }
}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["greeter", "a", "my-func-2", &"a".repeat(MAX_NAME_LEN)] {
            assert_eq!(parse_new_name(good).unwrap(), good);
        }
        for bad in [
            "",
            "Greeter",
            "my_func",
            "2fast",
            "-x",
            "a/b",
            "é",
            &"a".repeat(MAX_NAME_LEN + 1),
        ] {
            let err = parse_new_name(bad).unwrap_err();
            assert!(err.contains("lowercase letters, digits and '-'"), "{err}");
        }
    }

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_string("/a/b"), r#""/a/b""#);
        assert_eq!(toml_string(r#"C:\x "y""#), r#""C:\\x \"y\"""#);
        assert_eq!(toml_string("a\nb"), r#""a\u000Ab""#);
    }

    #[test]
    fn files_name_the_function_and_the_sdk() {
        let files = project_files("my-func", "/opt/flint/sdk-guest");
        let file = |name: &str| {
            &files
                .iter()
                .find(|(relative, _)| *relative == name)
                .unwrap()
                .1
        };
        assert!(file("Cargo.toml").contains("name = \"my-func\""));
        assert!(file("Cargo.toml").contains(r#"flint-sdk = { path = "/opt/flint/sdk-guest" }"#));
        assert!(file("flint.toml").contains("[functions.my-func]"));
        assert!(file("flint.toml").contains("target/wasm32-wasip2/release/my_func.wasm"));
        assert!(file("flint.toml").contains(r#"routes = ["/my-func/..."]"#));
        assert!(file("README.md").contains("flint deploy my-func target/"));
        for (relative, contents) in &files {
            assert!(
                !contents.contains("__"),
                "{relative} has a placeholder left"
            );
        }
    }
}
