//! `flint dev`: a scaffolded project is built, deployed to a server that
//! `flint dev` starts itself (none answers at `--server`) and called; a
//! saved edit is rebuilt, redeployed and timed, its log lines arrive; a
//! broken edit shows the compiler's error and the previous version keeps
//! serving; Ctrl-C stops the server and removes its data. A Cargo project
//! without a flint.toml is built by cargo and deployed to the server that
//! answers, which keeps running after `flint dev` ends.

use crate::support::FLINT;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The first build compiles the project (its dependencies are built already).
const FIRST_CYCLE: Duration = Duration::from_secs(300);
const CYCLE: Duration = Duration::from_secs(120);

struct Dev {
    child: Child,
    events: mpsc::Receiver<Value>,
    stderr: Arc<Mutex<String>>,
}

impl Dev {
    /// The next event of `kind`, skipping others.
    fn next(&self, kind: &str, within: Duration) -> Value {
        let deadline = std::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.events.recv_timeout(left) {
                Ok(event) if event["event"] == kind => return event,
                Ok(_) => {}
                Err(_) => panic!(
                    "no {kind} event within {within:?}; stderr:\n{}",
                    self.stderr.lock().unwrap()
                ),
            }
        }
    }
}

impl Drop for Dev {
    /// Ctrl-C first, so that the server it started stops with it.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Status and body of a GET of `url`, or `None` when nothing answers.
fn try_get(url: &str) -> Option<(u16, String)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let response = reqwest::get(url).await.ok()?;
        let status = response.status().as_u16();
        Some((status, response.text().await.ok()?))
    })
}

fn http_get(url: &str) -> (u16, String) {
    try_get(url).unwrap_or_else(|| panic!("no answer from {url}"))
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn edit(file: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(file).unwrap();
    assert!(text.contains(from), "{from:?} not in {}", file.display());
    std::fs::write(file, text.replacen(from, to, 1)).unwrap();
}

/// Runs `flint dev PROJECT --json --path /Ada` against `server`, with the
/// environment of a user's shell (none of what `cargo test` sets) plus `env`.
fn spawn_dev(project: &Path, server: &str, env: &[(&str, &Path)]) -> Dev {
    let mut command = Command::new(FLINT);
    command
        .arg("dev")
        .arg(project)
        .args(["--json", "--path", "/Ada"])
        .env("FLINT_SERVER", server)
        .env_remove("FLINT_TOKEN")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().unwrap();
    let (tx, events) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let event: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("not a JSON event: {line:?}: {e}"));
            if tx.send(event).is_err() {
                break;
            }
        }
    });
    let stderr = Arc::new(Mutex::new(String::new()));
    let mut pipe = child.stderr.take().unwrap();
    let collected = stderr.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            collected
                .lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    Dev {
        child,
        events,
        stderr,
    }
}

/// `flint new NAME` in `dir`, with the lock file of functions/, so that the
/// build reuses the dependencies compiled there.
fn scaffold(dir: &Path, name: &str) -> std::path::PathBuf {
    let made = Command::new(FLINT)
        .args(["new", name, "--dir"])
        .arg(dir)
        .env_remove("FLINT_SDK_PATH")
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let project = dir.join(name);
    let lock = Path::new(env!("CARGO_MANIFEST_DIR")).join("../functions/Cargo.lock");
    std::fs::copy(&lock, project.join("Cargo.lock")).unwrap();
    project
}

#[test]
fn dev_rebuilds_redeploys_and_keeps_serving_through_a_broken_edit() {
    let dir = tempfile::tempdir().unwrap();
    let project = scaffold(dir.path(), "dev-greeter");
    // Build where the SDK's dependencies are compiled already, as the
    // scaffold test does.
    let target = crate::scaffold::wasm_target_dir();
    edit(
        &project.join("flint.toml"),
        "command = \"cargo build --release\"",
        &format!(
            "command = \"cargo build --release --target-dir {}\"",
            target.display()
        ),
    );
    edit(
        &project.join("flint.toml"),
        "output = \"target/wasm32-wasip2/release/dev_greeter.wasm\"",
        &format!(
            "output = \"{}/wasm32-wasip2/release/dev_greeter.wasm\"",
            target.display()
        ),
    );

    let dev = spawn_dev(
        &project,
        &format!("http://127.0.0.1:{}", closed_port()),
        &[],
    );

    // No server answered: flint dev started one.
    let server = dev.next("server", Duration::from_secs(60));
    assert_eq!(server["started"], true, "{server}");
    let url = server["url"].as_str().unwrap().to_string();
    let data = server["dir"].as_str().unwrap().to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    let first = dev.next("cycle", FIRST_CYCLE);
    assert_eq!(first["ok"], true, "{first}");
    let answer = &first["functions"][0];
    assert_eq!(answer["name"], "dev-greeter", "{first}");
    assert_eq!(answer["status"], 200, "{first}");
    assert_eq!(answer["version"], 1, "{first}");
    let (status, body) = http_get(&format!("{url}/fn/dev-greeter/Ada"));
    assert_eq!(status, 200);
    assert!(body.contains("Hello, Ada!"), "{body}");

    // A saved edit: rebuilt, redeployed, timed from the save; its log line arrives.
    let lib = project.join("src/lib.rs");
    edit(
        &lib,
        "format!(\"{greeting}, {name}!\")",
        "format!(\"{greeting} again, {name}!\")",
    );
    edit(
        &lib,
        "    let name = name(&req);\n",
        "    let name = name(&req);\n    println!(\"greeting {name}\");\n",
    );
    let second = dev.next("cycle", CYCLE);
    assert_eq!(second["ok"], true, "{second}");
    assert_eq!(
        second["changed"],
        serde_json::json!(["src/lib.rs"]),
        "{second}"
    );
    assert_eq!(second["functions"][0]["version"], 2, "{second}");
    let took = second["save_to_response_ms"].as_f64().unwrap();
    let build = second["build_ms"].as_f64().unwrap();
    assert!(took >= build && build > 0.0, "{second}");
    let (_, body) = http_get(&format!("{url}/fn/dev-greeter/Ada"));
    assert!(body.contains("Hello again, Ada!"), "{body}");
    let log = dev.next("log", Duration::from_secs(30));
    assert_eq!(log["function"], "dev-greeter", "{log}");
    assert_eq!(log["line"]["line"], "greeting Ada", "{log}");

    // A broken edit: the compiler's error is shown, the loop goes on and
    // version 2 keeps serving.
    edit(
        &lib,
        "fn handle(req: Request)",
        "fn handle(req: Request) -> !!",
    );
    let broken = dev.next("cycle", CYCLE);
    assert_eq!(broken["ok"], false, "{broken}");
    assert_eq!(broken["stage"], "build", "{broken}");
    assert!(
        broken["error"].as_str().unwrap().contains("cargo build"),
        "{broken}"
    );
    assert!(
        dev.stderr.lock().unwrap().contains("error"),
        "no compiler error shown:\n{}",
        dev.stderr.lock().unwrap()
    );
    let (status, body) = http_get(&format!("{url}/fn/dev-greeter/Ada"));
    assert_eq!(status, 200);
    assert!(body.contains("Hello again, Ada!"), "{body}");

    // Fixed again: the loop is still alive.
    edit(
        &lib,
        "fn handle(req: Request) -> !!",
        "fn handle(req: Request)",
    );
    let fixed = dev.next("cycle", CYCLE);
    assert_eq!(fixed["ok"], true, "{fixed}");

    // Ctrl-C: the server it started stops and its data dir is removed.
    let mut dev = dev;
    let interrupted = Command::new("kill")
        .args(["-INT", &dev.child.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = dev.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "flint dev did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    assert!(!Path::new(&data).exists(), "{data} left behind");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while try_get(&format!("{url}/healthz")).is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "the server it started still answers"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn dev_builds_a_cargo_project_for_the_server_that_answers() {
    let dir = tempfile::tempdir().unwrap();
    let project = scaffold(dir.path(), "dev-cargo");
    std::fs::remove_file(project.join("flint.toml")).unwrap();
    let data = tempfile::tempdir().unwrap();
    let server = crate::support::Server::start(&data);
    // cargo builds where CARGO_TARGET_DIR says, and flint dev finds it there.
    let target = crate::scaffold::wasm_target_dir();
    let dev = spawn_dev(&project, &server.url, &[("CARGO_TARGET_DIR", &target)]);
    let used = dev.next("server", Duration::from_secs(60));
    assert_eq!(used["started"], false, "{used}");
    let first = dev.next("cycle", FIRST_CYCLE);
    assert_eq!(first["ok"], true, "{first}");
    assert_eq!(first["functions"][0]["name"], "dev-cargo", "{first}");
    assert_eq!(first["functions"][0]["status"], 200, "{first}");
    drop(dev);
    // Not its server: it still serves after flint dev ended.
    let (status, body) = http_get(&format!("{}/fn/dev-cargo/Ada", server.url));
    assert_eq!(status, 200);
    assert!(body.contains("Hello, Ada!"), "{body}");
}
