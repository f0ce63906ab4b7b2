//! `flint dev [DIR]`: the edit-save-see loop of a function project.
//!
//! It builds the project (the builds of its `flint.toml`, or `cargo build`
//! for `wasm32-wasip2` in a Cargo project without one), applies it to a
//! server as `flint apply` does, calls each function once and says how long
//! the whole cycle took from the save. Then it waits for the next save. A
//! failed build is shown and the loop goes on: the server keeps serving the
//! version it has. The functions' log lines are printed as they come.
//!
//! Without a server answering at `--server`, it starts one of its own on a
//! free loopback port with a temporary data dir, stopped and removed when
//! `flint dev` ends.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Args;
use flint_spec::desired::DesiredState;
use flint_spec::manifest::{
    ComponentSource, LoadedComponents, MANIFEST_FILE, Manifest, load_components,
};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;

use super::logs;
use crate::{Context, GlobalArgs, output};

/// How long the loop waits after a change for the rest of a save (editors
/// write a file in several steps) before it builds.
const SETTLE: Duration = Duration::from_millis(150);

/// How often the loop asks for new log lines.
const LOG_POLL: Duration = Duration::from_millis(300);

/// How long a started server may take to listen.
const SERVER_START: Duration = Duration::from_secs(30);

/// Flags of `flint dev`.
#[derive(Debug, Args)]
#[command(after_help = "\
Each cycle prints what changed, how long the build and the deploy took,
each function's first answer, and the time from the save to that answer.

Examples:
  flint dev                         the project in this directory
  flint dev ~/src/greeter --path /Ada
  flint dev --env staging           the manifest's [env.staging] overlay
  flint dev --json                  one JSON object per event (newline-delimited)
  FLINT_SERVER=http://127.0.0.1:9000 flint dev")]
pub struct DevArgs {
    /// The project: a directory with a flint.toml whose functions are built, or a Cargo
    /// project that builds a wasm32-wasip2 component
    #[arg(default_value = ".", value_name = "DIR")]
    pub dir: PathBuf,
    /// The environment whose overlay applies ([env.NAME] in flint.toml)
    #[arg(long, env = "FLINT_ENV", value_name = "NAME")]
    pub env: Option<String>,
    /// The path each function is called at after a deploy, with an optional query
    #[arg(long, default_value = "/", value_name = "PATH")]
    pub path: String,
}

/// What `flint dev` builds: a manifest, from the project's `flint.toml` or
/// made for a Cargo project.
struct Project {
    dir: PathBuf,
    manifest: Manifest,
    /// Build outputs, whose writes are not edits.
    outputs: Vec<PathBuf>,
}

impl Project {
    fn find(dir: &Path) -> anyhow::Result<Self> {
        let dir = dir
            .canonicalize()
            .with_context(|| format!("no project directory {}", dir.display()))?;
        let file = dir.join(MANIFEST_FILE);
        let manifest = if file.is_file() {
            Manifest::load(&file)?
        } else if dir.join("Cargo.toml").is_file() {
            Manifest::parse(&cargo_manifest(&dir)?, &file)?
        } else {
            bail!(
                "{} has neither a {MANIFEST_FILE} nor a Cargo.toml; start a project with `flint new NAME`",
                dir.display()
            );
        };
        let resolved = manifest.resolve(None)?;
        let outputs = resolved
            .functions
            .values()
            .filter_map(|f| match &f.source {
                ComponentSource::Build { output, .. } => Some(output.clone()),
                _ => None,
            })
            .collect();
        Ok(Self {
            dir,
            manifest,
            outputs,
        })
    }

    /// Whether a change to `path` is an edit to rebuild for: not in a build
    /// directory, version control or an output, nor the lock file cargo
    /// rewrites as it builds.
    fn is_edit(&self, path: &Path) -> bool {
        let Ok(relative) = path.strip_prefix(&self.dir) else {
            return false;
        };
        let generated = relative == Path::new("Cargo.lock")
            || relative.components().any(|c| {
                matches!(
                    c.as_os_str().to_str(),
                    Some("target" | ".git" | "node_modules")
                )
            });
        !generated && !self.outputs.iter().any(|o| o == path)
    }

    /// Builds every component; blocking.
    fn build(&self, env: Option<&str>) -> anyhow::Result<(DesiredState, LoadedComponents)> {
        let resolved = self.manifest.resolve(env)?;
        let components = load_components(&resolved, &mut |line| eprintln!("{line}"))?;
        Ok((resolved.desired(&components), components))
    }

    fn functions(&self) -> Vec<String> {
        self.manifest
            .resolve(None)
            .map(|r| r.functions.keys().cloned().collect())
            .unwrap_or_default()
    }
}

/// The manifest of a Cargo project without one: its package as a function
/// of the same name, built by cargo for `wasm32-wasip2` into the target
/// directory cargo itself reports (so `CARGO_TARGET_DIR` is honoured).
fn cargo_manifest(dir: &Path) -> anyhow::Result<String> {
    let output = std::process::Command::new("cargo")
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .current_dir(dir)
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run cargo; is Rust installed (https://rustup.rs)?")?;
    if !output.status.success() {
        bail!("`cargo metadata` failed in {}", dir.display());
    }
    let metadata: Value = serde_json::from_slice(&output.stdout)?;
    let name = metadata["packages"][0]["name"]
        .as_str()
        .context("the Cargo project has no package")?;
    let target = metadata["target_directory"]
        .as_str()
        .context("cargo did not say where it builds")?;
    manifest_for_crate(name, Path::new(target))
}

fn manifest_for_crate(package: &str, target: &Path) -> anyhow::Result<String> {
    if !flint_spec::is_valid_name(package) {
        bail!(
            "the package name {package:?} is not a function name (1-63 lowercase letters, digits and '-'); add a {MANIFEST_FILE} that names the function (see `flint new`)"
        );
    }
    let output = target
        .join("wasm32-wasip2/release")
        .join(format!("{}.wasm", package.replace('-', "_")));
    let output = serde_json::to_string(&output.to_string_lossy())?;
    Ok(format!(
        "[functions.{package}]\nbuild = {{ command = \"cargo build --release --target wasm32-wasip2\", output = {output} }}\n"
    ))
}

/// A server `flint dev` started: stopped (killed if need be when dropped)
/// and its data dir removed.
struct OwnServer {
    child: tokio::process::Child,
    dir: tempfile::TempDir,
}

impl OwnServer {
    /// Stops the server, then removes its data.
    async fn stop(mut self) {
        let _ = self.child.kill().await;
        drop(self.dir);
    }
}

/// Starts `flint serve` on a free loopback port; returns it and its URL.
async fn start_server() -> anyhow::Result<(OwnServer, String)> {
    let dir = tempfile::Builder::new().prefix("flint-dev-").tempdir()?;
    let log = std::fs::File::create(dir.path().join("server.log"))?;
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .context("cannot start `flint serve`")?;
    let stdout = child.stdout.take().context("no stdout of the server")?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let url = tokio::time::timeout(SERVER_START, async {
        while let Some(line) = lines.next_line().await? {
            if let Some(url) = line.strip_prefix("flint listening on ") {
                return Ok(url.trim().to_string());
            }
        }
        Err(anyhow::anyhow!("the server ended before it listened"))
    })
    .await
    .context("the server did not listen within 30 s")??;
    // Keep reading its stdout, so that it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((OwnServer { child, dir }, url))
}

/// Prints an event: a JSON line with `--json`, else `text` on stderr.
fn report(ctx: &Context, event: Value, text: impl FnOnce() -> String) -> anyhow::Result<()> {
    if ctx.json {
        output::print(&event.to_string())?;
    } else {
        eprintln!("{}", text());
    }
    Ok(())
}

/// Runs `flint dev`.
pub async fn run(global: &GlobalArgs, args: DevArgs) -> anyhow::Result<()> {
    let project = Project::find(&args.dir)?;
    let mut ctx = Context::new(global)?;
    let answering = ctx.client.get(ctx.client.url(&["healthz"])).await.is_ok();
    let own = if answering {
        report(
            &ctx,
            json!({"event": "server", "url": global.server, "started": false}),
            || format!("Using the server at {}", global.server),
        )?;
        None
    } else {
        let (own, url) = start_server().await?;
        ctx = Context::new(&GlobalArgs {
            server: url.clone(),
            token: None,
            ..global.clone()
        })?;
        let data = own.dir.path().display().to_string();
        report(
            &ctx,
            json!({"event": "server", "url": url, "started": true, "dir": data}),
            || {
                format!(
                    "No server answered at {}; started one at {url} (data and server.log in {data}, removed on exit)",
                    global.server
                )
            },
        )?;
        Some(own)
    };

    let (changes_tx, mut changes) = mpsc::unbounded_channel::<PathBuf>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && !matches!(event.kind, notify::EventKind::Access(_))
        {
            for path in event.paths {
                let _ = changes_tx.send(path);
            }
        }
    })?;
    notify::Watcher::watch(&mut watcher, &project.dir, notify::RecursiveMode::Recursive)
        .with_context(|| format!("cannot watch {}", project.dir.display()))?;

    let since = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    for name in project.functions() {
        tokio::spawn(follow_logs(ctx.clone(), name, since.clone()));
    }
    report(
        &ctx,
        json!({"event": "watching", "dir": project.dir}),
        || format!("Watching {} (Ctrl-C to stop)", project.dir.display()),
    )?;

    let looping = async {
        let mut cycle = 0u64;
        let mut saved = Instant::now();
        let mut changed: Vec<String> = Vec::new();
        let mut deployed = false;
        loop {
            cycle += 1;
            deployed |= run_cycle(&ctx, &project, &args, cycle, saved, &changed, deployed).await?;
            // The next edit, then the rest of its save.
            changed.clear();
            loop {
                let path = changes.recv().await.context("the file watcher stopped")?;
                if project.is_edit(&path) {
                    saved = Instant::now();
                    changed.push(relative(&project.dir, &path));
                    break;
                }
            }
            tokio::time::sleep(SETTLE).await;
            while let Ok(path) = changes.try_recv() {
                if project.is_edit(&path) {
                    changed.push(relative(&project.dir, &path));
                }
            }
            // An editor's temporary files come and go within the save.
            changed.retain(|path| project.dir.join(path).exists());
            changed.sort();
            changed.dedup();
        }
    };
    let result = tokio::select! {
        result = looping => result,
        _ = tokio::signal::ctrl_c() => Ok(()),
    };
    if let Some(own) = own {
        own.stop().await;
    }
    result
}

fn relative(dir: &Path, path: &Path) -> String {
    path.strip_prefix(dir).unwrap_or(path).display().to_string()
}

/// One build, deploy and call; returns whether it deployed. A failed build
/// or deploy is reported, not returned, so that the loop goes on.
async fn run_cycle(
    ctx: &Context,
    project: &Project,
    args: &DevArgs,
    cycle: u64,
    saved: Instant,
    changed: &[String],
    deployed_before: bool,
) -> anyhow::Result<bool> {
    if !changed.is_empty() && !ctx.json {
        eprintln!("\nChanged: {}", changed.join(", "));
    }
    let started = Instant::now();
    let built = tokio::task::block_in_place(|| project.build(args.env.as_deref()));
    let build_ms = started.elapsed().as_secs_f64() * 1e3;
    let failed = |stage: &str, error: &anyhow::Error| {
        let serving = if deployed_before {
            "the server keeps serving what was deployed before"
        } else {
            "nothing is deployed yet"
        };
        report(
            ctx,
            json!({"event": "cycle", "cycle": cycle, "changed": changed, "ok": false,
                   "stage": stage, "error": format!("{error:#}"), "build_ms": build_ms}),
            || format!("✗ {stage} failed: {error:#}\n  {serving}; waiting for the next save"),
        )
        .map(|()| false)
    };
    let (state, components) = match built {
        Ok(built) => built,
        Err(error) => return failed("build", &error),
    };
    let deploying = Instant::now();
    if let Err(error) = super::desired::upload_and_apply(ctx, &state, &components, false).await {
        return failed("deploy", &error);
    }
    let deploy_ms = deploying.elapsed().as_secs_f64() * 1e3;
    let mut answers = Vec::new();
    for name in state.functions.keys() {
        answers.push(first_response(ctx, name, &args.path).await?);
    }
    let save_to_response_ms = saved.elapsed().as_secs_f64() * 1e3;
    report(
        ctx,
        json!({"event": "cycle", "cycle": cycle, "changed": changed, "ok": true,
               "build_ms": build_ms, "deploy_ms": deploy_ms, "functions": answers,
               "save_to_response_ms": save_to_response_ms}),
        || {
            let mut text = format!("✓ built in {}, deployed in {}", ms(build_ms), ms(deploy_ms));
            for a in &answers {
                text.push_str(&format!(
                    "\n  {} v{} {} {} answered {} in {}",
                    a["name"].as_str().unwrap_or_default(),
                    a["version"],
                    a["method"].as_str().unwrap_or_default(),
                    a["url"].as_str().unwrap_or_default(),
                    a["status"],
                    ms(a["first_response_ms"].as_f64().unwrap_or_default()),
                ));
            }
            text.push_str(&format!(
                "\n  {} from {} to the first response",
                ms(save_to_response_ms),
                if changed.is_empty() { "start" } else { "save" }
            ));
            text
        },
    )?;
    Ok(true)
}

fn ms(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.2} s", ms / 1e3)
    } else {
        format!("{ms:.0} ms")
    }
}

/// Calls a function at `path` and times its answer, body included.
async fn first_response(ctx: &Context, name: &str, path: &str) -> anyhow::Result<Value> {
    let url = super::invoke::invoke_url(&ctx.client, name, path)?;
    let started = Instant::now();
    let (status, version) = match ctx
        .client
        .send(ctx.client.request(Method::GET, url.clone()))
        .await
    {
        Ok(response) => {
            let status = response.status().as_u16();
            let version = response
                .headers()
                .get("x-flint-version")
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
            let _ = response.bytes().await;
            (Some(status), version)
        }
        Err(_) => (None, None),
    };
    Ok(json!({
        "name": name,
        "method": "GET",
        "url": url.as_str(),
        "status": status,
        "version": version,
        "first_response_ms": started.elapsed().as_secs_f64() * 1e3,
    }))
}

/// Prints a function's log lines from `since` on as they come, until the
/// loop ends.
async fn follow_logs(ctx: Context, name: String, since: String) {
    let mut after = None;
    loop {
        // Before the first deploy the function may not exist yet.
        if let Ok(page) = logs::fetch(&ctx, &name, 1000, after).await
            && let Ok(lines) = logs::parse_page(page)
        {
            after = lines.iter().map(|(line, _)| line.seq).max().or(after);
            // Lines older than `flint dev` are not its business.
            for (line, raw) in lines.iter().filter(|(line, _)| line.time >= since) {
                let _ = report(
                    &ctx,
                    json!({"event": "log", "function": name, "line": raw}),
                    || format!("  [{name}] {}", logs::format_line(line)),
                );
            }
        }
        tokio::time::sleep(LOG_POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cargo_project_builds_its_package_for_wasip2() {
        let text = manifest_for_crate("my-func", Path::new("/t")).unwrap();
        assert_eq!(
            text,
            "[functions.my-func]\nbuild = { command = \"cargo build --release --target wasm32-wasip2\", output = \"/t/wasm32-wasip2/release/my_func.wasm\" }\n"
        );
        let manifest = Manifest::parse(&text, Path::new("/p/flint.toml")).unwrap();
        assert_eq!(manifest.resolve(None).unwrap().functions.len(), 1);
        let refused = manifest_for_crate("My_Func", Path::new("/t")).unwrap_err();
        assert!(refused.to_string().contains("flint.toml"), "{refused}");
    }

    #[test]
    fn builds_and_version_control_are_not_edits() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Cargo.toml"), "").unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::write(
            root.join(MANIFEST_FILE),
            "[functions.f]\nbuild = { command = \"true\", output = \"out/f.wasm\" }\n",
        )
        .unwrap();
        let project = Project::find(&root).unwrap();
        assert!(project.is_edit(&root.join("src/lib.rs")));
        assert!(project.is_edit(&root.join(MANIFEST_FILE)));
        assert!(!project.is_edit(&root.join("target/debug/x")));
        assert!(!project.is_edit(&root.join(".git/index")));
        assert!(!project.is_edit(&root.join("Cargo.lock")));
        assert!(!project.is_edit(&root.join("out/f.wasm")));
        assert!(!project.is_edit(Path::new("/elsewhere/lib.rs")));
    }
}
