//! A real `flint serve` process on an ephemeral loopback port, and helpers
//! to talk to it.

use flint_test_artifacts as artifacts;
use reqwest::StatusCode;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `flint` binary under test.
pub const FLINT: &str = env!("CARGO_BIN_EXE_flint");

/// Runs the `flint` CLI with `FLINT_SERVER` set to `server_url`.
pub fn flint(server_url: &str, args: &[&str]) -> std::process::Output {
    Command::new(FLINT)
        .args(args)
        .env("FLINT_SERVER", server_url)
        .output()
        .unwrap()
}

/// A running server; killed when dropped.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT` (`https://` with TLS).
    pub url: String,
    /// The admin listener's URL, when the server was started with
    /// `--admin-listen`.
    pub admin_url: Option<String>,
    /// HTTP client.
    pub http: reqwest::Client,
}

impl Server {
    /// Starts a server with a fresh data dir inside `dir`.
    pub fn start(dir: &tempfile::TempDir) -> Server {
        Self::start_with(dir.path(), &[])
    }

    /// Starts a server on `data_dir` with extra `flint serve` flags; waits
    /// (bounded) for its "listening on" line.
    pub fn start_with(data_dir: &Path, args: &[&str]) -> Server {
        Self::start_with_env(data_dir, args, &[])
    }

    /// As [`Self::start_with`], with extra environment variables.
    pub fn start_with_env(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        let data_dir = data_dir.join("data");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data_dir.with_extension("log"))
            .unwrap();
        // An ephemeral loopback port unless the test picks the address.
        let listen: &[&str] = if args.contains(&"--listen") {
            &[]
        } else {
            &["--listen", "127.0.0.1:0"]
        };
        let mut child = Command::new(FLINT)
            .arg("serve")
            .args(listen)
            .arg("--data-dir")
            .arg(&data_dir)
            .args(args)
            .envs(env.iter().copied())
            .env("FLINT_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawning flint serve");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(i) = line.find("listening on ") {
                    let admin = line.contains("admin listening");
                    let url = line[i + "listening on ".len()..].trim().to_string();
                    let _ = tx.send((admin, url));
                }
            }
        });
        let listening = || {
            rx.recv_timeout(Duration::from_secs(60))
                .expect("flint serve did not print its listening line within 60 s")
        };
        let (_, url) = listening();
        let admin_url = args.contains(&"--admin-listen").then(|| {
            let (admin, url) = listening();
            assert!(admin, "expected the admin listening line, got {url}");
            url
        });
        Server {
            child,
            url,
            admin_url,
            http: reqwest::Client::new(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process at once (SIGKILL): nothing gets to shut down cleanly.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits (bounded) for a clean exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "flint serve did not exit within 30 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The URL of `path`.
    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// Deploys component bytes as `name`; returns status and JSON.
    pub async fn deploy_bytes(&self, name: &str, bytes: Vec<u8>) -> (StatusCode, Value) {
        let response = self
            .http
            .put(self.at(&format!("/v1/functions/{name}")))
            .header("content-type", "application/wasm")
            .body(bytes)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Deploys a built function and asserts success.
    pub async fn deploy(&self, name: &str, component: &str) -> Value {
        let (status, body) = self.deploy_bytes(name, artifacts::bytes(component)).await;
        assert!(status.is_success(), "deploy {name}: {status} {body}");
        body
    }

    /// Sends `method path` with `token` and an optional JSON body; returns
    /// the status and the JSON answer (`null` when it is not JSON).
    pub async fn call_as(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.http.request(method, self.at(path)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Deploys a built function with `token` and asserts success.
    pub async fn deploy_as(&self, token: &str, name: &str, component: &str) {
        let response = self
            .http
            .put(self.at(&format!("/v1/functions/{name}")))
            .bearer_auth(token)
            .header("content-type", "application/wasm")
            .body(artifacts::bytes(component))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
    }

    /// GET returning status and text.
    pub async fn get(&self, path: &str) -> (StatusCode, String) {
        let response = self.http.get(self.at(path)).send().await.unwrap();
        (response.status(), response.text().await.unwrap())
    }

    /// Starts a GET in the background (for calls that must be in flight).
    pub fn spawn_get(&self, path: &str) -> tokio::task::JoinHandle<(StatusCode, String)> {
        let (http, url) = (self.http.clone(), self.at(path));
        tokio::spawn(async move {
            let response = http.get(url).send().await.unwrap();
            (response.status(), response.text().await.unwrap())
        })
    }

    /// GET returning status and JSON.
    pub async fn get_json(&self, path: &str) -> (StatusCode, Value) {
        let response = self.http.get(self.at(path)).send().await.unwrap();
        (
            response.status(),
            response.json().await.unwrap_or(Value::Null),
        )
    }

    /// POSTs a body (a string as is, anything else as JSON); returns status
    /// and text.
    pub async fn post(&self, path: &str, body: impl Into<Value>) -> (StatusCode, String) {
        let request = self.http.post(self.at(path));
        let request = match body.into() {
            // The admin API takes JSON bodies only; text sent there is
            // (malformed) JSON.
            Value::String(text) if path.starts_with("/v1/") => request
                .header("content-type", "application/json")
                .body(text),
            Value::String(text) => request.body(text),
            json => request.json(&json),
        };
        let response = request.send().await.unwrap();
        (response.status(), response.text().await.unwrap())
    }

    /// PATCHes a function's config; returns status and JSON.
    pub async fn patch_config(&self, name: &str, patch: Value) -> (StatusCode, Value) {
        let response = self
            .http
            .patch(self.at(&format!("/v1/functions/{name}/config")))
            .json(&patch)
            .send()
            .await
            .unwrap();
        (
            response.status(),
            response.json().await.unwrap_or(Value::Null),
        )
    }

    /// Sets config and asserts success.
    pub async fn configure(&self, name: &str, patch: Value) {
        let (status, body) = self.patch_config(name, patch).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    /// A function's info JSON.
    pub async fn info(&self, name: &str) -> Value {
        let (status, body) = self.get_json(&format!("/v1/functions/{name}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// Polls `check` on the function's info until it holds (bounded).
    pub async fn wait_for_info(
        &self,
        name: &str,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let info = self.info(name).await;
            if check(&info) {
                return info;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {info}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Asserts an error response's status and code; returns its message.
pub fn assert_error(status: StatusCode, body: &str, want_status: u16, want_code: &str) -> String {
    let json: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}"));
    assert_eq!(status.as_u16(), want_status, "{body}");
    assert_eq!(json["error"]["code"], want_code, "{body}");
    json["error"]["message"].as_str().unwrap().to_string()
}

/// The resident memory of process `pid`, in KiB (VmRSS).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS in /proc/PID/status");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// What a real headless Chromium made of a page.
pub struct RenderedPage {
    /// The DOM once the page's scripts (and timers, within a virtual 5 s) ran,
    /// serialised by `--dump-dom`.
    pub dom: String,
    /// Every console message and uncaught exception of the page, as its text
    /// (an exception as `Uncaught Error: …`). Chromium logs a web page's
    /// `console.log`, `.warn` and `.error` alike (at INFO, as `CONSOLE`), so
    /// all of them are here: a page under test should say nothing.
    pub console_errors: Vec<String>,
}

/// Chromium's switches for a headless run that reaches nothing but loopback:
/// no background, update, sync, metrics, safe-browsing or DNS traffic.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--dump-dom",
    // Lets timers run (in virtual time) before the DOM is dumped.
    "--virtual-time-budget=5000",
    "--enable-logging=stderr",
    "--v=0",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-domain-reliability",
    // Gone from recent Chromium (ignored there); kept for older ones.
    "--disable-client-side-phishing-detection",
    "--no-pings",
    "--metrics-recording-only",
    "--disable-features=OptimizationHints,MediaRouter,Translate",
    // Every host name fails to resolve, without a DNS query, but localhost.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost",
    "--no-proxy-server",
];

/// Loads `page` (a local file) in headless Chromium, lets it run, and returns
/// the DOM it built and any console errors or uncaught exceptions.
///
/// Panics, with Chromium's stderr, if Chromium is missing, fails, prints no
/// DOM or takes over 60 s (then its whole process group is killed).
pub fn render_in_chromium(page: &std::path::Path) -> RenderedPage {
    use std::os::unix::process::CommandExt;
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    let page = std::fs::canonicalize(page).expect("the page to render");
    let url: String = (page.to_str().expect("a UTF-8 path").chars())
        .map(|c| match c {
            '%' | ' ' | '#' | '?' => format!("%{:02X}", c as u32),
            c => c.to_string(),
        })
        .collect();
    let profile = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new("/usr/bin/chromium")
        .args(CHROMIUM_FLAGS)
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("file://{url}"))
        // Whatever Chromium writes under $HOME goes to the throwaway profile.
        .env("HOME", profile.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so a timeout kills its helpers too.
        .process_group(0)
        .spawn()
        .expect("spawning /usr/bin/chromium (scripts/env.sh's ensure_chromium installs it)");
    let drain = |mut r: Box<dyn std::io::Read + Send>| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            let _ = tx.send(String::from_utf8_lossy(&buf).into_owned());
        });
        rx
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let group = format!("-{}", child.id());
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &group])
                .status();
            let _ = child.wait();
            let err = stderr
                .recv_timeout(Duration::from_secs(5))
                .unwrap_or_default();
            panic!(
                "chromium took over 60 s on {}; its stderr:\n{err}",
                page.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // Helpers may hold the pipes a moment after the browser exits.
    let err = stderr
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_default();
    let dom = stdout
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_default();
    if !status.success() || dom.trim().is_empty() {
        panic!(
            "chromium failed ({status}) on {}; its stderr:\n{err}",
            page.display()
        );
    }
    RenderedPage {
        dom,
        console_errors: console_messages(&err),
    }
}

/// The console messages in Chromium's stderr log. Each is logged as
/// `[pid:tid:time:INFO:CONSOLE:LINE] "TEXT", source: URL (LINE)` (older
/// versions: `CONSOLE(LINE)`), TEXT running on over lines of its own if it
/// has newlines, up to the next log line.
fn console_messages(stderr: &str) -> Vec<String> {
    let is_log_line =
        |l: &str| l.starts_with('[') && l[1..].starts_with(|c: char| c.is_ascii_digit());
    let mut messages = Vec::new();
    let mut lines = stderr.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(end) = line.find("] ").filter(|_| is_log_line(line)) else {
            continue;
        };
        let Some(first) = line[end + 2..]
            .strip_prefix('"')
            .filter(|_| line[..end].contains(":CONSOLE"))
        else {
            continue;
        };
        let mut text = first.to_string();
        while let Some(more) = lines.next_if(|l| !is_log_line(l)) {
            text.push('\n');
            text.push_str(more);
        }
        // The last `", source: ` ends the text: the text may contain one too.
        text.truncate(text.rfind("\", source: ").unwrap_or(text.len()));
        messages.push(text);
    }
    messages
}
