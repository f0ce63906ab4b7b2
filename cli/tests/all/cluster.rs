//! Cluster mode: several real `flint serve` nodes on loopback ports sharing
//! a registry in the real PostgreSQL (a database of their own per test).

use crate::support::{FLINT, Server, flint};
use flint_test_artifacts as artifacts;
use flint_test_artifacts::postgres::TestDb;
use reqwest::StatusCode;
use serde_json::Value;
use std::process::Command;
use std::time::{Duration, Instant};

/// `flint migrate` on `db`, asserting success.
fn migrate(db: &TestDb) {
    let out = Command::new(FLINT)
        .args(["migrate", "--registry", &db.url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "flint migrate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A node on `db` with a data dir (its artifact cache) of its own.
fn node(dir: &tempfile::TempDir, i: usize, db: &TestDb, extra: &[&str]) -> Server {
    let data = dir.path().join(format!("node{i}"));
    std::fs::create_dir_all(&data).unwrap();
    let mut args = vec!["--registry", db.url.as_str(), "--heartbeat", "200ms"];
    if !extra.contains(&"--registry-poll") {
        args.extend(["--registry-poll", "1s"]);
    }
    args.extend_from_slice(extra);
    Server::start_with(&data, &args)
}

/// `component` with a custom section that makes its digest unique: a new
/// version each deploy, the same behaviour.
fn variant(component: &[u8], n: u32) -> Vec<u8> {
    fn leb(mut v: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let name = b"flint-test";
    let payload = n.to_le_bytes();
    let mut body = Vec::new();
    leb(name.len(), &mut body);
    body.extend_from_slice(name);
    body.extend_from_slice(&payload);
    let mut out = component.to_vec();
    out.push(0);
    leb(body.len(), &mut out);
    out.extend_from_slice(&body);
    out
}

/// The version a node serves `name` at, if it serves it.
async fn served_version(server: &Server, name: &str) -> Option<u64> {
    let response = server
        .http
        .get(server.at(&format!("/fn/{name}/")))
        .send()
        .await
        .ok()?;
    if response.status() != StatusCode::OK {
        return None;
    }
    response
        .headers()
        .get("x-flint-version")?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Waits (up to 10 s) until every one of `servers` answers `name` with
/// `version`.
async fn wait_served(servers: &[Server], name: &str, version: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    for server in servers {
        while served_version(server, name).await != Some(version) {
            assert!(
                Instant::now() < deadline,
                "{} does not serve {name} version {version}",
                server.url
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn nodes(server: &Server) -> Value {
    let (status, body) = server.get_json("/v1/nodes").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Waits until `server` lists `n` live nodes.
async fn wait_for_live(server: &Server, n: usize) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let view = nodes(server).await;
        let live = view["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["live"] == true)
            .count();
        if live == n {
            return view;
        }
        assert!(Instant::now() < deadline, "expected {n} live nodes: {view}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_node_serves_a_deploy_within_two_seconds_and_none_lags_after_wait() {
    let db = TestDb::create();
    migrate(&db);
    let dir = tempfile::tempdir().unwrap();
    let nodes3: Vec<Server> = (0..3).map(|i| node(&dir, i, &db, &[])).collect();
    wait_for_live(&nodes3[0], 3).await;
    let hello = artifacts::bytes(artifacts::HELLO);
    let mut delays = Vec::new();
    for n in 1..=50u32 {
        let via = &nodes3[n as usize % 3];
        let (status, body) = via.deploy_bytes("f", variant(&hello, n)).await;
        assert!(status.is_success(), "{status} {body}");
        let version = body["version"].as_u64().unwrap();
        let deployed = Instant::now();
        for server in &nodes3 {
            loop {
                if served_version(server, "f").await == Some(version) {
                    break;
                }
                assert!(
                    deployed.elapsed() < Duration::from_secs(30),
                    "{} never served version {version}",
                    server.url
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        delays.push(deployed.elapsed());
    }
    delays.sort();
    let (p50, p99) = (percentile(&delays, 0.50), percentile(&delays, 0.99));
    println!("deploy to served on 3 nodes over 50 deploys: p50 {p50:?}, p99 {p99:?}");
    assert!(
        p99 <= Duration::from_secs(2),
        "p99 deploy-to-served {p99:?} (p50 {p50:?})"
    );

    // With --wait, every node serves the new version when the command
    // returns: none answers with an older one.
    let file = dir.path().join("next.wasm");
    for n in 51..=55u32 {
        std::fs::write(&file, variant(&hello, n)).unwrap();
        let out = flint(
            &nodes3[0].url,
            &["deploy", "f", file.to_str().unwrap(), "--wait", "--json"],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let deployed: Value = serde_json::from_slice(&out.stdout).unwrap();
        let version = deployed["version"].as_u64().unwrap();
        for server in &nodes3 {
            assert_eq!(
                served_version(server, "f").await,
                Some(version),
                "{} after --wait",
                server.url
            );
        }
    }

    let out = flint(&nodes3[1].url, &["nodes"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{table}");
    assert_eq!(table.matches(" ready ").count(), 3, "{table}");
    assert!(table.contains("Registry version"), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_whose_listen_connection_dies_converges_within_one_poll() {
    let db = TestDb::create();
    migrate(&db);
    let dir = tempfile::tempdir().unwrap();
    let writer = node(&dir, 0, &db, &[]);
    let follower = node(&dir, 1, &db, &["--registry-poll", "2s"]);
    wait_for_live(&writer, 2).await;
    let view = nodes(&follower).await;
    let id = view["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["this"] == true)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let listening = format!("application_name = 'flint-listen-{id}'");
    let deadline = Instant::now() + Duration::from_secs(10);
    while db.sql(&format!(
        "SELECT count(*) FROM pg_stat_activity WHERE {listening}"
    )) != "1"
    {
        assert!(Instant::now() < deadline, "the follower never LISTENed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let killed = db.sql(&format!(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE {listening}"
    ));
    assert_eq!(killed, "1", "the follower's LISTEN connection");
    let hello = artifacts::bytes(artifacts::HELLO);
    let mut last = 0;
    for n in 1..=5u32 {
        let (status, body) = writer.deploy_bytes("g", variant(&hello, n)).await;
        assert!(status.is_success(), "{status} {body}");
        last = body["version"].as_u64().unwrap();
    }
    let done = Instant::now();
    while served_version(&follower, "g").await != Some(last) {
        assert!(
            done.elapsed() < Duration::from_secs(4),
            "the follower did not converge within a poll (2 s) and a load"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_joining_after_fifty_deploys_serves_everything_before_it_answers() {
    let db = TestDb::create();
    migrate(&db);
    let dir = tempfile::tempdir().unwrap();
    let first = node(&dir, 0, &db, &[]);
    let hello = artifacts::bytes(artifacts::HELLO);
    for n in 0..50u32 {
        let name = format!("f{}", n % 10);
        let (status, body) = first.deploy_bytes(&name, variant(&hello, n)).await;
        assert!(status.is_success(), "{status} {body}");
    }
    // The joining node's port is fixed, so that probes can start before
    // it is up: any answer it gives must be a served function.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let addr = format!("127.0.0.1:{port}");
    let probe = tokio::spawn({
        let http = reqwest::Client::new();
        let base = format!("http://{addr}");
        async move {
            let mut answers = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let ready = http.get(format!("{base}/readyz")).send().await;
                let call = http.get(format!("{base}/fn/f7/")).send().await;
                if let Ok(r) = call {
                    answers.push(r.status());
                    let ready = ready.map(|r| r.status()).ok();
                    if ready == Some(StatusCode::OK) && answers.len() > 20 {
                        return answers;
                    }
                }
                assert!(Instant::now() < deadline, "the joining node never answered");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    });
    let joined = node(&dir, 1, &db, &["--listen", &addr]);
    let answers = probe.await.unwrap();
    assert!(
        answers.iter().all(|s| *s == StatusCode::OK),
        "every answer of the joining node is a served call: {answers:?}"
    );
    for n in 0..10 {
        assert_eq!(
            served_version(&joined, &format!("f{n}")).await,
            Some(5),
            "f{n}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_migrations_at_once_apply_once_and_leave_no_lock() {
    let db = TestDb::create();
    let runs: Vec<_> = (0..3)
        .map(|_| {
            Command::new(FLINT)
                .args(["migrate", "--registry", &db.url])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut outputs = Vec::new();
    for run in runs {
        let out = run.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        outputs.push(String::from_utf8_lossy(&out.stdout).to_string());
    }
    let applied = outputs.iter().filter(|o| o.contains("Migrated")).count();
    let nothing = outputs
        .iter()
        .filter(|o| o.contains("nothing to do"))
        .count();
    assert_eq!((applied, nothing), (1, 2), "{outputs:?}");
    assert_eq!(
        db.sql("SELECT count(*) FROM _sqlx_migrations WHERE success"),
        flint_gateway::store::SCHEMA_VERSION.to_string(),
        "each migration applied once"
    );
    assert_eq!(db.advisory_locks(), 0, "no advisory lock is left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_refuses_a_registry_that_is_not_migrated_and_says_what_to_run() {
    let db = TestDb::create();
    let dir = tempfile::tempdir().unwrap();
    // PostgreSQL here trusts loopback, so a password is accepted and unused.
    let url = db.url.replacen("postgres@", "postgres:hunter2@", 1);
    let out = Command::new(FLINT)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .args(["--registry", &url, "--registry-start-timeout", "1s"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("flint migrate"), "{stderr}");
    assert!(
        !stderr.contains("hunter2") && stderr.contains("postgres:***@"),
        "the URL is shown without its password: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_stopped_with_sigterm_under_load_fails_no_request_through_the_others() {
    let db = TestDb::create();
    migrate(&db);
    let dir = tempfile::tempdir().unwrap();
    let mut servers: Vec<Server> = (0..3).map(|i| node(&dir, i, &db, &[])).collect();
    servers[0].deploy("hello", artifacts::HELLO).await;
    for server in &servers {
        while served_version(server, "hello").await.is_none() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let stopping = servers.pop().unwrap();
    let load: Vec<_> = servers
        .iter()
        .map(|server| {
            let (http, url) = (server.http.clone(), server.at("/fn/hello/"));
            tokio::spawn(async move {
                let (mut ok, mut failed) = (0u32, 0u32);
                let until = Instant::now() + Duration::from_secs(3);
                while Instant::now() < until {
                    match http.get(&url).send().await {
                        Ok(r) if r.status() == StatusCode::OK => ok += 1,
                        _ => failed += 1,
                    }
                }
                (ok, failed)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = tokio::task::spawn_blocking(move || stopping.terminate())
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
    for task in load {
        let (ok, failed) = task.await.unwrap();
        assert!(ok > 0);
        assert_eq!(failed, 0, "{ok} ok");
    }
    // A clean stop leaves the node list.
    wait_for_live(&servers[0], 2).await;
    let view = nodes(&servers[0]).await;
    assert_eq!(view["nodes"].as_array().unwrap().len(), 2, "{view}");
}

/// A TCP proxy on loopback in front of PostgreSQL that the test can cut:
/// while cut, it closes every connection it carries and every new one.
struct Proxy {
    port: u16,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    carried: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start() -> Self {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let carried = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let accept = tokio::spawn({
            let (cut, carried) = (cut.clone(), carried.clone());
            async move {
                loop {
                    let Ok((mut client, _)) = listener.accept().await else {
                        continue;
                    };
                    if cut.load(Ordering::SeqCst) {
                        continue;
                    }
                    let task = tokio::spawn(async move {
                        if let Ok(mut server) =
                            tokio::net::TcpStream::connect("127.0.0.1:5432").await
                        {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                    carried.lock().unwrap().push(task.abort_handle());
                }
            }
        });
        Self {
            port,
            cut,
            carried,
            accept,
        }
    }

    fn url(&self, db: &TestDb) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{}", self.port, db.name)
    }

    fn set_cut(&self, cut: bool) {
        self.cut.store(cut, std::sync::atomic::Ordering::SeqCst);
        if cut {
            for task in self.carried.lock().unwrap().drain(..) {
                task.abort();
            }
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.set_cut(true);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_registry_outage_of_thirty_seconds_under_load_fails_almost_nothing_and_nodes_resync() {
    let db = TestDb::create();
    migrate(&db);
    let proxy = Proxy::start().await;
    let url = proxy.url(&db);
    let dir = tempfile::tempdir().unwrap();
    let start = |i: usize| {
        let data = dir.path().join(format!("node{i}"));
        std::fs::create_dir_all(&data).unwrap();
        Server::start_with(
            &data,
            &[
                "--registry",
                &url,
                "--registry-poll",
                "1s",
                "--heartbeat",
                "200ms",
            ],
        )
    };
    let servers = [start(0), start(1)];
    let hello = artifacts::bytes(artifacts::HELLO);
    servers[0].deploy_bytes("hello", variant(&hello, 0)).await;
    for server in &servers {
        while served_version(server, "hello").await != Some(1) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let outage = Duration::from_secs(30);
    let load: Vec<_> = servers
        .iter()
        .map(|server| {
            let (http, url) = (server.http.clone(), server.at("/fn/hello/"));
            tokio::spawn(async move {
                let (mut ok, mut failed) = (0u64, 0u64);
                let until = Instant::now() + outage + Duration::from_secs(4);
                while Instant::now() < until {
                    match http.get(&url).send().await {
                        Ok(r) if r.status() == StatusCode::OK => ok += 1,
                        _ => failed += 1,
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                (ok, failed)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    proxy.set_cut(true);
    // Both nodes notice, and say so without leaving rotation.
    for server in &servers {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let (status, ready) = server.get_json("/readyz").await;
            if ready["node"] == "degraded" {
                assert_eq!(status, StatusCode::OK, "{ready}");
                break;
            }
            assert!(Instant::now() < deadline, "never degraded: {ready}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // A write through a node that cannot reach the registry fails clearly.
    let (status, body) = servers[0].deploy_bytes("other", hello.clone()).await;
    assert!(status.is_server_error(), "{status} {body}");
    tokio::time::sleep(outage.saturating_sub(Duration::from_secs(2))).await;
    proxy.set_cut(false);
    let (mut ok, mut failed) = (0, 0);
    for task in load {
        let (o, f) = task.await.unwrap();
        ok += o;
        failed += f;
    }
    let success = ok as f64 / (ok + failed) as f64;
    println!("during a 30 s registry outage: {ok} ok, {failed} failed");
    assert!(success >= 0.999, "{ok} ok, {failed} failed");
    // They resync: ready again, and a deploy reaches both.
    for server in &servers {
        let deadline = Instant::now() + Duration::from_secs(15);
        while server.get_json("/readyz").await.1["node"] != "ready" {
            assert!(Instant::now() < deadline, "never ready again");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let (status, body) = servers[1].deploy_bytes("hello", variant(&hello, 1)).await;
    assert!(status.is_success(), "{status} {body}");
    wait_served(&servers, "hello", 2).await;
}

/// The node id of each server, in order.
async fn ids(servers: &[Server]) -> Vec<String> {
    let mut ids = Vec::new();
    for server in servers {
        let view = nodes(server).await;
        let this = view["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["this"] == true)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        ids.push(this);
    }
    ids
}

/// Waits (bounded) for a leader; returns its index in `servers` and epoch.
async fn wait_for_leader(servers: &[Server]) -> (usize, u64) {
    let ids = ids(servers).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some((id, epoch)) = leader(&servers[0]).await
            && let Some(at) = ids.iter().position(|i| *i == id)
        {
            return (at, epoch);
        }
        assert!(Instant::now() < deadline, "no node took the lead");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends `path` to `server` until the canary of `name` ends (bounded);
/// returns its final state.
async fn traffic_until_canary_ends(servers: &[&Server], name: &str, path: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for server in servers {
            for _ in 0..10 {
                let _ = server.http.get(server.at(path)).send().await;
            }
        }
        let (_, state) = servers[0]
            .get_json(&format!("/v1/functions/{name}/canary"))
            .await;
        if state["status"] != "running" {
            return state;
        }
        assert!(Instant::now() < deadline, "canary still running: {state}");
    }
}

async fn post_ok(server: &Server, path: &str, body: Value) -> Value {
    let (status, text) = server.post(path, body).await;
    assert!(status.is_success(), "{path}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// Deploys two versions of `cn` (the same behaviour) through `via`,
/// releases the first and starts a canary to the second.
async fn canary_to_v2(via: &Server, steps: &[u32], interval_ms: u64) {
    let hello = artifacts::bytes(artifacts::HELLO);
    for n in 0..2 {
        let (status, body) = via.deploy_bytes("cn", variant(&hello, n)).await;
        assert!(status.is_success(), "{status} {body}");
    }
    post_ok(
        via,
        "/v1/functions/cn/release",
        serde_json::json!({"to": 1}),
    )
    .await;
    post_ok(
        via,
        "/v1/functions/cn/canary",
        serde_json::json!({"to": 2, "steps": steps, "interval_ms": interval_ms, "max_error_rate": 0.01}),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_leader_judges_a_canary_by_the_traffic_of_the_other_nodes() {
    let db = TestDb::create();
    migrate(&db);
    let dir = tempfile::tempdir().unwrap();
    let servers = [node(&dir, 0, &db, &[]), node(&dir, 1, &db, &[])];
    let (lead, _) = wait_for_leader(&servers).await;
    let other = &servers[1 - lead];
    other.deploy("cn", artifacts::HELLO).await;
    // Version 2 answers /status?code=500 with a 500; version 1 ignores it.
    other.deploy("cn", artifacts::PROBE).await;
    post_ok(
        other,
        "/v1/functions/cn/release",
        serde_json::json!({"to": 1}),
    )
    .await;
    let started = post_ok(
        other,
        "/v1/functions/cn/canary",
        serde_json::json!({"to": 2, "steps": [50, 100], "interval_ms": 3000, "max_error_rate": 0.01}),
    )
    .await;
    assert_eq!(started["status"], "running", "{started}");
    // Every call goes to the node that does not lead: the leader sees the
    // errors only through the counters that node publishes.
    let done = traffic_until_canary_ends(&[other], "cn", "/fn/cn/status?code=500").await;
    assert_eq!(done["status"], "rolled_back", "{done}");
    assert!(
        done["reason"].as_str().unwrap().contains("error rate"),
        "{done}"
    );
    wait_served(&servers, "cn", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_canary_outlives_its_leader_and_the_history_says_who_continued() {
    let db = TestDb::create();
    migrate(&db);
    let dir = tempfile::tempdir().unwrap();
    let mut servers: Vec<Server> = (0..3).map(|i| node(&dir, i, &db, &[])).collect();
    let (lead, epoch) = wait_for_leader(&servers).await;
    canary_to_v2(&servers[1], &[20, 50, 100], 1500).await;
    // Once the first step has passed, the leader dies.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let all: Vec<&Server> = servers.iter().collect();
        for server in &all {
            let _ = server.get("/fn/cn/").await;
        }
        let (_, state) = servers[0].get_json("/v1/functions/cn/canary").await;
        if state["step"].as_u64().unwrap_or(0) >= 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the canary did not pass step 1: {state}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    servers.remove(lead).kill();
    let survivors: Vec<&Server> = servers.iter().collect();
    let done = traffic_until_canary_ends(&survivors, "cn", "/fn/cn/").await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let (_, next) = wait_for_leader(&servers).await;
    assert_eq!(next, epoch + 1);
    let (_, history) = servers[0].get_json("/v1/functions/cn/history").await;
    let actions: Vec<&str> = history["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["action"].as_str().unwrap())
        .collect();
    let continued = actions
        .iter()
        .position(|a| *a == "canary_continued")
        .unwrap_or_else(|| panic!("{history}"));
    assert_eq!(actions.last(), Some(&"canary_succeeded"), "{history}");
    assert!(
        actions[continued..].contains(&"canary_step"),
        "the new leader drove the remaining steps: {actions:?}"
    );
    wait_served(&servers, "cn", 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_canary_stopped_through_another_node_stays_stopped() {
    let db = TestDb::create();
    migrate(&db);
    let dir = tempfile::tempdir().unwrap();
    let servers = [node(&dir, 0, &db, &[]), node(&dir, 1, &db, &[])];
    let (lead, _) = wait_for_leader(&servers).await;
    let other = &servers[1 - lead];
    canary_to_v2(other, &[50, 100], 1000).await;
    // An alias write waits for the canary on every node.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, body) = other
        .post("/v1/functions/cn/release", serde_json::json!({"to": 2}))
        .await;
    crate::support::assert_error(status, &body, 409, "release_conflict");
    let response = other
        .http
        .delete(other.at("/v1/functions/cn/canary"))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let (_, state) = servers[lead].get_json("/v1/functions/cn/canary").await;
    assert_eq!(state["status"], "rolled_back", "{state}");
    // Every node follows the rollback; then, for longer than a step, the
    // leader's driver moves the alias off the stable version nowhere.
    let stable = serde_json::json!({"routes": [{"version": 1, "weight": 100}]});
    let prod = |server: &Server| {
        let (http, url) = (server.http.clone(), server.at("/v1/functions/cn/aliases"));
        async move {
            let aliases: Value = http.get(url).send().await.unwrap().json().await.unwrap();
            aliases["aliases"]["prod"].clone()
        }
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    for server in &servers {
        while prod(server).await != stable {
            assert!(Instant::now() < deadline, "{} kept the split", server.url);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    for _ in 0..30 {
        for server in &servers {
            assert_eq!(prod(server).await, stable, "{}", server.url);
            assert_eq!(served_version(server, "cn").await, Some(1));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, state) = servers[lead].get_json("/v1/functions/cn/canary").await;
    assert_eq!(state["status"], "rolled_back", "{state}");
}

/// The leader in `server`'s view: (node id, epoch).
async fn leader(server: &Server) -> Option<(String, u64)> {
    let view = nodes(server).await;
    let leaders: Vec<&Value> = view["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["leader"] == true)
        .collect();
    assert!(leaders.len() <= 1, "two leaders: {view}");
    leaders.first().map(|n| {
        (
            n["id"].as_str().unwrap().to_string(),
            view["leader_epoch"].as_u64().unwrap(),
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_leader_takes_over_within_a_second_of_the_leader_being_killed() {
    let db = TestDb::create();
    migrate(&db);
    let dir = tempfile::tempdir().unwrap();
    let mut servers: Vec<Server> = (0..3).map(|i| node(&dir, i, &db, &[])).collect();
    wait_for_live(&servers[0], 3).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let (first, epoch) = loop {
        if let Some(found) = leader(&servers[0]).await {
            break found;
        }
        assert!(Instant::now() < deadline, "no node took the lead");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let ids = ids(&servers).await;
    let at = ids.iter().position(|id| *id == first).unwrap();
    servers.remove(at).kill();
    let killed = Instant::now();
    let (second, next_epoch) = loop {
        if let Some((id, e)) = leader(&servers[0]).await
            && id != first
        {
            break (id, e);
        }
        assert!(
            killed.elapsed() < Duration::from_secs(5),
            "no new leader within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let took = killed.elapsed();
    println!("leader takeover after SIGKILL: {took:?}");
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert_eq!(next_epoch, epoch + 1, "one new epoch, one new leader");
    assert!(ids.contains(&second));
    // Both survivors agree, and only one holds the lock.
    for server in &servers {
        assert_eq!(leader(server).await, Some((second.clone(), next_epoch)));
    }
    assert_eq!(db.advisory_locks(), 1, "the leader lock alone");
}

/// The ticks of a schedule's runs as `server` reads them from the shared
/// registry.
async fn schedule_ticks(server: &Server, name: &str) -> Vec<String> {
    let (status, list) = server
        .get_json(&format!("/v1/functions/{name}/schedules"))
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list["schedules"][0]["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["scheduled_at"].as_str().unwrap().to_string())
        .collect()
}

/// Waits (bounded) until `server` reads at least `n` runs of `name`'s
/// schedule.
async fn wait_for_runs(server: &Server, name: &str, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ticks = schedule_ticks(server, name).await;
        if ticks.len() >= n {
            return ticks;
        }
        assert!(Instant::now() < deadline, "{ticks:?}: fewer than {n} runs");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_schedule_fires_each_tick_once_across_the_nodes_and_a_change_of_leader() {
    let db = TestDb::create();
    migrate(&db);
    let dir = tempfile::tempdir().unwrap();
    let mut servers: Vec<Server> = (0..2).map(|i| node(&dir, i, &db, &[])).collect();
    let (lead, _) = wait_for_leader(&servers).await;
    servers[0].deploy("ticker", artifacts::QUEUE_PROBE).await;
    // Added through the node that does not lead: the leader fires it.
    let other = 1 - lead;
    let (status, body) = servers[other]
        .post(
            "/v1/functions/ticker/schedules",
            serde_json::json!({"cron": "* * * * * *"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    wait_for_runs(&servers[other], "ticker", 3).await;
    servers.remove(lead).kill();
    let (now_leads, _) = wait_for_leader(&servers).await;
    assert_eq!(now_leads, 0, "the surviving node leads");
    let before = schedule_ticks(&servers[0], "ticker").await.len();
    let ticks = wait_for_runs(&servers[0], "ticker", before + 3).await;
    let unique: std::collections::BTreeSet<&String> = ticks.iter().collect();
    assert_eq!(unique.len(), ticks.len(), "a tick fired twice: {ticks:?}");
}
