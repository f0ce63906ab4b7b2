//! Builds the guest functions and writes a path constant per component:
//!
//! - the Rust functions of `functions/` (one cargo build for wasm32-wasip2,
//!   and one for wasm32-wasip1 of the WAGI example);
//! - the C WAGI example `functions/wagi-c` (clang with wasi-libc);
//! - the JavaScript function `functions/js-hello` (componentize-js from the
//!   npm registry, driven by node).
//!
//! Both build in caches under the cargo target dir, never in the source tree,
//! and both are skipped when their inputs have not changed: cargo reruns this
//! script only when a watched file changes, and the JavaScript build keeps
//! stamps of its inputs so that a change to a Rust function neither reruns
//! `npm ci` nor re-componentizes (about 10 s).

use std::env;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::Command;

/// (constant name, wasm file stem) of every Rust function in functions/.
const RUST_FUNCTIONS: &[(&str, &str)] = &[
    ("HELLO", "hello"),
    ("ECHO", "echo"),
    ("WASI_HELLO", "wasi_hello"),
    ("PROBE", "probe"),
    ("ORDER_PROCESSOR", "order_processor"),
    ("QUEUE_PROBE", "queue_probe"),
    ("HOSTILE", "hostile"),
    ("HTTP_P3", "http_p3"),
];

/// (constant name, package, wasm file stem) of every Rust WAGI function: a
/// binary built for wasm32-wasip1, a WASI 0.1 command module.
const RUST_WAGI_FUNCTIONS: &[(&str, &str, &str)] = &[("WAGI_RUST", "wagi-rust", "wagi_rust")];

/// (constant name, directory in functions/, source file) of every C WAGI
/// function: one file, built with `clang --target=wasm32-wasi`.
const C_WAGI_FUNCTIONS: &[(&str, &str, &str)] = &[("WAGI_C", "wagi-c", "hello.c")];

/// (constant name, directory in functions/, wasm file stem) of every
/// JavaScript function: an npm project with `package.json`,
/// `package-lock.json`, `build.mjs` (`node build.mjs OUT`), `src/` and `wit/`.
const JS_FUNCTIONS: &[(&str, &str, &str)] = &[("JS_HELLO", "js-hello", "js_hello")];

/// Oldest Node.js that componentize-js 0.23 supports.
const MIN_NODE_MAJOR: u32 = 18;

/// Entries of functions/ that are build output or handled elsewhere, never
/// inputs of the Rust build.
const NOT_RUST_INPUTS: &[&str] = &["target", "node_modules", "README.md", "wagi-c"];

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.parent().unwrap();
    let functions = root.join("functions");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    // OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out.
    let target = out_dir.ancestors().nth(4).unwrap();

    let mut consts = String::new();
    for (name, path) in build_rust(root, &functions, target) {
        consts.push_str(&constant(name, &path));
    }
    for &(name, dir, source) in C_WAGI_FUNCTIONS {
        let path = build_c(
            &functions.join(dir),
            source,
            &target.join("c-functions").join(dir),
        );
        consts.push_str(&constant(name, &path));
    }
    for &(name, dir, stem) in JS_FUNCTIONS {
        let path = build_js(
            &functions.join(dir),
            &target.join("js-functions").join(dir),
            stem,
        );
        consts.push_str(&constant(name, &path));
    }
    fs::write(out_dir.join("artifacts.rs"), consts).unwrap();
}

fn constant(name: &str, path: &Path) -> String {
    let stem = path.file_stem().unwrap().to_string_lossy();
    format!(
        "/// Path of the `{stem}` component.\npub const {name}: &str = {:?};\n",
        path.display().to_string()
    )
}

/// Builds the Rust guest workspace in `<target>/wasm-functions`, a target dir
/// of its own (sharing ours would deadlock on cargo's lock) that survives
/// rebuilds of this crate.
fn build_rust(root: &Path, functions: &Path, target: &Path) -> Vec<(&'static str, PathBuf)> {
    let target_dir = target.join("wasm-functions");
    println!(
        "cargo:rerun-if-changed={}",
        root.join("sdk-guest").display()
    );
    // Watch the workspace entry by entry: the JavaScript functions keep
    // node_modules and dist/ in their folders when built by hand, which must
    // neither rebuild the Rust guests nor be scanned on every build.
    for entry in fs::read_dir(functions).expect("reading functions/") {
        let entry = entry.unwrap();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let is_js = JS_FUNCTIONS.iter().any(|&(_, dir, _)| dir == name);
        if !is_js && !NOT_RUST_INPUTS.contains(&name.as_ref()) {
            println!("cargo:rerun-if-changed={}", entry.path().display());
        }
    }

    let components = ["--workspace"].into_iter().chain(
        RUST_WAGI_FUNCTIONS
            .iter()
            .flat_map(|&(_, package, _)| ["--exclude", package]),
    );
    cargo_build(functions, &target_dir, "wasm32-wasip2", components);
    let modules = RUST_WAGI_FUNCTIONS
        .iter()
        .flat_map(|&(_, package, _)| ["--package", package]);
    cargo_build(functions, &target_dir, "wasm32-wasip1", modules);

    let built = |target: &str, name: &'static str, stem: &str| {
        let path = target_dir
            .join(target)
            .join("release")
            .join(format!("{stem}.wasm"));
        assert!(
            path.is_file(),
            "expected {} after the build",
            path.display()
        );
        (name, path)
    };
    let components = RUST_FUNCTIONS
        .iter()
        .map(|&(name, stem)| built("wasm32-wasip2", name, stem));
    let modules = RUST_WAGI_FUNCTIONS
        .iter()
        .map(|&(name, _, stem)| built("wasm32-wasip1", name, stem));
    components.chain(modules).collect()
}

/// Runs `cargo build --release --target TARGET` with `args` in the guest
/// workspace.
fn cargo_build<'a>(
    functions: &Path,
    target_dir: &Path,
    target: &str,
    args: impl IntoIterator<Item = &'a str>,
) {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(functions)
        .args(["build", "--release", "--target", target])
        .args(args)
        .arg("--target-dir")
        .arg(target_dir)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .status()
        .expect("failed to run cargo to build functions/");
    if !status.success() {
        panic!(
            "building functions/ for {target} failed; if the target is missing, run `rustup target add {target}`"
        );
    }
}

/// Builds one C WAGI function with clang for `wasm32-wasi` against
/// wasi-libc (Debian: clang, lld, wasi-libc, libclang-rt-dev-wasm32), into
/// `out_dir`.
fn build_c(dir: &Path, source: &str, out_dir: &Path) -> PathBuf {
    let source = dir.join(source);
    println!("cargo:rerun-if-changed={}", dir.display());
    fs::create_dir_all(out_dir).unwrap();
    let stem = dir.file_name().unwrap().to_string_lossy().replace('-', "_");
    let output = out_dir.join(format!("{stem}.wasm"));
    let hint = "building the C WAGI example needs clang with a wasm32-wasi sysroot \
                (Debian: `apt-get install clang lld wasi-libc libclang-rt-dev-wasm32`)";
    let status = Command::new("clang")
        .args([
            "--target=wasm32-wasi",
            "-O2",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-Wl,--strip-all",
            "-o",
        ])
        .arg(&output)
        .arg(&source)
        .status()
        .unwrap_or_else(|e| panic!("running clang: {e}; {hint}"));
    assert!(
        status.success() && output.is_file(),
        "clang failed to build {} (the messages above say why); {hint}",
        source.display()
    );
    output
}

/// Builds one JavaScript function in `cache`: a copy of its sources, its
/// `node_modules` (installed by `npm ci` only when package.json or
/// package-lock.json changed) and the component `<stem>.wasm`.
fn build_js(source: &Path, cache: &Path, stem: &str) -> PathBuf {
    let inputs = js_inputs(source);
    for dir in [
        "package.json",
        "package-lock.json",
        "build.mjs",
        "src",
        "wit",
    ] {
        println!("cargo:rerun-if-changed={}", source.join(dir).display());
    }
    fs::create_dir_all(cache).unwrap();
    // A debug and a release build of this crate may run at once and share the
    // cache: one at a time.
    let lock = fs::File::create(cache.join(".lock")).unwrap();
    lock.lock().expect("locking the JavaScript build cache");

    let output = cache.join(format!("{stem}.wasm"));
    let stamp: Vec<u8> = inputs
        .iter()
        .flat_map(|(rel, bytes)| {
            let rel = rel.to_string_lossy();
            [
                rel.as_bytes(),
                b"\0",
                &(bytes.len() as u64).to_le_bytes(),
                bytes,
            ]
            .concat()
        })
        .collect();
    let build_stamp = cache.join(".flint-build-inputs");
    if output.is_file() && fs::read(&build_stamp).ok().as_deref() == Some(&stamp[..]) {
        return output;
    }

    let node = check_node(source);
    for (rel, bytes) in &inputs {
        let dest = cache.join(rel);
        fs::create_dir_all(dest.parent().unwrap()).unwrap();
        if fs::read(&dest).ok().as_deref() != Some(&bytes[..]) {
            fs::write(&dest, bytes).unwrap();
        }
    }
    npm_ci(source, cache, &inputs);

    let _ = fs::remove_file(&output);
    let _ = fs::remove_file(&build_stamp);
    let status = Command::new(&node)
        .current_dir(cache)
        .arg("build.mjs")
        .arg(&output)
        .status()
        .unwrap_or_else(|e| panic!("running `node build.mjs` for {}: {e}", source.display()));
    assert!(
        status.success() && output.is_file(),
        "componentize-js failed to build {} (the messages above say why)",
        source.display()
    );
    fs::write(&build_stamp, stamp).unwrap();
    output
}

/// Every input file of a JavaScript function, as (relative path, bytes), in a
/// stable order.
fn js_inputs(source: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    for name in ["package.json", "package-lock.json", "build.mjs"] {
        files.push(PathBuf::from(name));
    }
    for dir in ["src", "wit"] {
        collect_files(source, Path::new(dir), &mut files);
    }
    files
        .into_iter()
        .map(|rel| {
            let bytes = fs::read(source.join(&rel))
                .unwrap_or_else(|e| panic!("reading {}: {e}", source.join(&rel).display()));
            (rel, bytes)
        })
        .collect()
}

fn collect_files(base: &Path, rel: &Path, files: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(base.join(rel))
        .unwrap_or_else(|e| panic!("reading {}: {e}", base.join(rel).display()))
        .map(|e| e.unwrap())
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let rel = rel.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            collect_files(base, &rel, files);
        } else {
            files.push(rel);
        }
    }
}

/// Finds node and npm, or fails saying how to install them.
fn check_node(source: &Path) -> PathBuf {
    let hint = format!(
        "building the JavaScript function {} needs Node.js >= {MIN_NODE_MAJOR} and npm on PATH \
         (Debian: `apt-get install nodejs npm`)",
        source.display()
    );
    let version = match Command::new("node").arg("--version").output() {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        Ok(out) => panic!(
            "`node --version` failed: {}; {hint}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) if e.kind() == ErrorKind::NotFound => panic!("node was not found; {hint}"),
        Err(e) => panic!("running node: {e}; {hint}"),
    };
    let major: Option<u32> = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok());
    if major.is_none_or(|m| m < MIN_NODE_MAJOR) {
        panic!("node {version} is too old; {hint}");
    }
    match Command::new("npm").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        Ok(_) | Err(_) => panic!("npm was not found or does not run; {hint}"),
    }
    PathBuf::from("node")
}

/// Installs the function's pinned dependencies into `cache/node_modules`
/// unless they are already there for this very package.json and lock file.
fn npm_ci(source: &Path, cache: &Path, inputs: &[(PathBuf, Vec<u8>)]) {
    let manifest: Vec<u8> = inputs
        .iter()
        .filter(|(rel, _)| {
            rel == Path::new("package.json") || rel == Path::new("package-lock.json")
        })
        .flat_map(|(_, bytes)| bytes.iter().copied())
        .collect();
    // npm ci starts by deleting node_modules, so this stamp exists only after
    // an install that finished.
    let stamp = cache.join("node_modules").join(".flint-installed");
    if fs::read(&stamp).ok().as_deref() == Some(&manifest[..]) {
        return;
    }
    let status = Command::new("npm")
        .current_dir(cache)
        // No install scripts: none of the pinned packages needs one, and the
        // build stays free of anything that downloads beyond the registry.
        // --prefer-offline reuses npm's own cache (~/.npm) on a fresh target dir.
        .args([
            "ci",
            "--ignore-scripts",
            "--prefer-offline",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
        ])
        .status()
        .unwrap_or_else(|e| panic!("running `npm ci` for {}: {e}", source.display()));
    assert!(
        status.success(),
        "`npm ci` failed for {} (it needs the npm registry the first time; the messages above say why)",
        source.display()
    );
    fs::write(&stamp, manifest).unwrap();
}
