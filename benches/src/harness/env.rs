//! The environment of a run: the machine, the tool versions, the `flint` and
//! `wasmtime` binaries (building or installing them when asked).

use anyhow::{Context, bail};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The machine a run measured on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// Logical CPUs available to this process.
    pub cores: usize,
    /// `model name` from /proc/cpuinfo.
    pub cpu_model: String,
    /// Kernel release.
    pub kernel: String,
    /// Total memory, GiB.
    pub memory_gib: f64,
    /// /proc/loadavg when the run started: anything else busy on the
    /// machine shows here (the figures are only comparable on an idle one).
    pub loadavg_at_start: String,
}

impl Machine {
    /// Reads /proc; `loadavg_at_start` as read by [`loadavg`] earlier.
    pub fn read(loadavg_at_start: String) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_else(|| "unknown".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "unknown".into());
        let memory_gib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            })
            .map(|kib| kib / (1024.0 * 1024.0))
            .unwrap_or(0.0);
        Self {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
            kernel,
            memory_gib,
            loadavg_at_start,
        }
    }
}

/// The first three fields of /proc/loadavg (1, 5 and 15 minutes).
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Versions of everything measured.
#[derive(Debug, Clone, Serialize)]
pub struct Versions {
    /// `flint --version`.
    pub flint: String,
    /// `wasmtime --version`, if it ran.
    pub wasmtime: Option<String>,
    /// wasmtime version pinned in Cargo.lock (the one Flint embeds).
    pub wasmtime_embedded: String,
    /// `wrk --version`.
    pub wrk: Option<String>,
    /// `rustc --version`.
    pub rustc: String,
    /// `git describe` of the repository, `-dirty` when it has changes.
    pub git: String,
    /// Cargo profile the harness and flint were built with.
    pub profile: &'static str,
}

/// The cargo profile this binary was built with.
pub fn profile() -> &'static str {
    if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    }
}

/// First line of `program args`'s stdout, trimmed.
pub fn first_line(program: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .map(|l| l.trim().to_owned())
}

/// `git describe --always --dirty` in `repo`.
pub fn git_describe(repo: &Path) -> String {
    first_line(
        Path::new("git"),
        &[
            "-C",
            &repo.display().to_string(),
            "describe",
            "--always",
            "--dirty",
        ],
    )
    .unwrap_or_else(|| "unknown".into())
}

/// The version of package `name` in a Cargo.lock.
pub fn locked_version(lock: &Path, name: &str) -> anyhow::Result<String> {
    let text =
        std::fs::read_to_string(lock).with_context(|| format!("reading {}", lock.display()))?;
    let needle = format!("name = \"{name}\"\nversion = \"");
    let start = text
        .find(&needle)
        .with_context(|| format!("{name} is not in {}", lock.display()))?
        + needle.len();
    let end = text[start..].find('"').context("unterminated version")?;
    Ok(text[start..start + end].to_owned())
}

/// The cargo target dir this binary lives in (`<target>/<profile>/harness`).
pub fn target_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the harness binary")?;
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .context("the harness binary is not in a cargo target dir")
}

/// Builds `flint` (package flint-cli) with cargo in this binary's profile and
/// target dir (a no-op when it is up to date) and returns its path.
pub fn build_flint(repo: &Path) -> anyhow::Result<PathBuf> {
    let target = target_dir()?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(repo)
        .args(["build", "--locked", "-p", "flint-cli", "--bin", "flint"])
        .arg("--target-dir")
        .arg(&target);
    if profile() == "release" {
        cmd.arg("--release");
    }
    eprintln!("==> building flint ({} profile)", profile());
    let status = cmd.status().context("running cargo to build flint")?;
    if !status.success() {
        bail!("building flint failed ({status})");
    }
    let flint = target.join(profile()).join("flint");
    if !flint.is_file() {
        bail!("cargo built flint, but {} is missing", flint.display());
    }
    Ok(flint)
}

/// The cached tools dir: `$FLINT_TOOLS_DIR`, else `~/.cache/flint/tools`.
pub fn default_tools_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("FLINT_TOOLS_DIR") {
        return dir.into();
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache").join("flint").join("tools")
}

/// `tools/bin/wasmtime` when it is there and reports `version`.
pub fn find_wasmtime(tools: &Path, version: &str) -> Option<PathBuf> {
    let path = tools.join("bin").join("wasmtime");
    let reported = first_line(&path, &["--version"])?;
    // "wasmtime 48.0.8 (abcdef 2025-..)"
    (reported.split_whitespace().nth(1) == Some(version)).then_some(path)
}

/// Installs wasmtime-cli `version` from crates.io into `tools` (several
/// minutes on 2 cores; cached afterwards).
pub fn install_wasmtime(tools: &Path, version: &str) -> anyhow::Result<PathBuf> {
    eprintln!(
        "==> installing wasmtime-cli {version} into {} (cargo install; takes several minutes once)",
        tools.display()
    );
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["install", "--locked", "--root"])
        .arg(tools)
        .args(["wasmtime-cli", "--version", &format!("={version}")])
        // Its own temporary target dir: the shared one may be locked by the
        // cargo that runs this harness.
        .env_remove("CARGO_TARGET_DIR")
        .status()
        .context("running cargo install")?;
    if !status.success() {
        bail!("cargo install wasmtime-cli {version} failed ({status})");
    }
    find_wasmtime(tools, version).with_context(|| {
        format!(
            "installed wasmtime-cli, but {}/bin/wasmtime does not report {version}",
            tools.display()
        )
    })
}
