//! Builds `functions/` for wasm32-wasip2 and writes a constant per component.

use std::env;
use std::path::PathBuf;
use std::process::Command;

/// (constant name, wasm file stem) of every function in functions/.
const FUNCTIONS: &[(&str, &str)] = &[
    ("HELLO", "hello"),
    ("ECHO", "echo"),
    ("WASI_HELLO", "wasi_hello"),
    ("PROBE", "probe"),
    ("ORDER_PROCESSOR", "order_processor"),
    ("QUEUE_PROBE", "queue_probe"),
];

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.parent().unwrap();
    let functions = root.join("functions");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    // OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out: build the guests
    // in <target>/wasm-functions, a target dir of their own (sharing ours
    // would deadlock on cargo's lock) that survives rebuilds of this crate.
    let target_dir = out_dir.ancestors().nth(4).unwrap().join("wasm-functions");

    for dir in ["functions", "sdk-guest"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }

    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(&functions)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(&target_dir)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .status()
        .expect("failed to run cargo to build functions/");
    if !status.success() {
        panic!(
            "building functions/ for wasm32-wasip2 failed; if the target is missing, run `rustup target add wasm32-wasip2`"
        );
    }

    let release = target_dir.join("wasm32-wasip2").join("release");
    let mut consts = String::new();
    for (name, stem) in FUNCTIONS {
        let path = release.join(format!("{stem}.wasm"));
        assert!(
            path.is_file(),
            "expected {} after the build",
            path.display()
        );
        consts.push_str(&format!(
            "/// Path of the `{stem}` component.\npub const {name}: &str = {:?};\n",
            path.display().to_string()
        ));
    }
    std::fs::write(out_dir.join("artifacts.rs"), consts).unwrap();
}
