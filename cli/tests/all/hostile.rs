//! Hostile guests: each kind runs 32 calls at once while the server's RSS
//! and `/healthz` are watched. Every call must end with the right error, the
//! server must stay within its stated memory bound and keep answering, and
//! the next call must be served as usual.

use crate::support::{Server, assert_error, rss_kib};
use flint_test_artifacts as artifacts;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

/// Calls of one kind at once.
const CALLS: usize = 32;
/// Each hostile function's `memory_mb`.
const MEMORY_MB: u64 = 16;
/// The host memory each call may make the server hold besides its linear
/// memory (`flint_runtime::MAX_HELD_BYTES`, in MiB).
const HELD_MB: u64 = 8;
/// What the server may hold beyond that for the calls' other needs: stacks,
/// tables, instances, buffers.
const SLACK_MB: u64 = 64;
/// How long `/healthz` may take while the guests run. A liveness bound for a
/// debug build on a two-core CI machine that runs the other suites at the
/// same time, not a latency figure: the README gives the figure, measured by
/// this suite alone.
const HEALTH_BOUND: Duration = Duration::from_secs(2);

/// The hostile tests take turns: each loads the machine on purpose, and
/// what one measures must not be another's load.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What the watcher saw while the calls ran.
struct Watched {
    peak_rss_mb: u64,
    slowest_health: Duration,
}

/// Samples the server's RSS and the time `/healthz` takes, every 20 ms,
/// until `stop` is set.
fn watch(server: &Server, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<Watched> {
    let pid = server.pid();
    let health = server.at("/healthz");
    tokio::spawn(async move {
        // A client of its own, so its connection never waits behind the
        // calls' connections.
        let http = reqwest::Client::new();
        let mut peak = 0;
        let mut slowest = Duration::ZERO;
        while !stop.load(Ordering::Relaxed) {
            peak = peak.max(rss_mb(pid));
            let started = Instant::now();
            let status = http.get(&health).send().await.unwrap().status();
            assert!(status.is_success(), "/healthz answered {status}");
            slowest = slowest.max(started.elapsed());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Watched {
            peak_rss_mb: peak,
            slowest_health: slowest,
        }
    })
}

fn rss_mb(pid: u32) -> u64 {
    rss_kib(pid) / 1024
}

/// Runs `CALLS` GETs of `path` at once under the watcher; returns each
/// call's status and body, and what the watcher saw.
async fn storm(server: &Server, path: &str) -> (Vec<(reqwest::StatusCode, String)>, Watched) {
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watch(server, stop.clone());
    let calls: Vec<_> = (0..CALLS).map(|_| server.spawn_get(path)).collect();
    let mut answers = Vec::new();
    for call in calls {
        answers.push(call.await.unwrap());
    }
    stop.store(true, Ordering::Relaxed);
    (answers, watcher.await.unwrap())
}

/// The bound the server's RSS must stay under while `CALLS` calls run.
fn rss_bound(baseline_mb: u64) -> u64 {
    baseline_mb + CALLS as u64 * (MEMORY_MB + HELD_MB) + SLACK_MB
}

async fn hostile_server(dir: &tempfile::TempDir) -> Server {
    let server = Server::start(dir);
    server.deploy("hostile", artifacts::HOSTILE).await;
    server
        .configure(
            "hostile",
            json!({
                "memory_mb": MEMORY_MB,
                "timeout_ms": 10_000,
                "max_response_bytes": 1 << 20,
                "max_log_bytes": 64 << 10,
            }),
        )
        .await;
    server
}

/// Asserts that the server still serves the function as usual.
async fn assert_still_serves(server: &Server) {
    let (got, body) = server.get("/fn/hostile/none").await;
    assert_eq!((got.as_u16(), body.as_str()), (404, "no such route\n"));
}

/// Reads a response body to its end: how many bytes came, and whether it
/// ended in an error rather than as if complete.
async fn read_body(mut response: reqwest::Response) -> (usize, bool) {
    let mut received = 0;
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => received += chunk.len(),
            Ok(None) => return (received, false),
            Err(_) => return (received, true),
        }
    }
}

/// Asserts the storm's answers, the server's bound and its next answer.
async fn assert_contained(
    server: &Server,
    baseline_mb: u64,
    path: &str,
    status: u16,
    code: &str,
    names: &str,
) {
    let (answers, watched) = storm(server, path).await;
    for (got, body) in &answers {
        let message = assert_error(*got, body, status, code);
        assert!(message.contains(names), "{path}: {message}");
    }
    assert!(
        watched.peak_rss_mb <= rss_bound(baseline_mb),
        "{path}: server RSS reached {} MiB, over the bound of {} MiB",
        watched.peak_rss_mb,
        rss_bound(baseline_mb)
    );
    println!(
        "{path}: peak RSS {} MiB (baseline {baseline_mb} MiB), slowest /healthz {:?}",
        watched.peak_rss_mb, watched.slowest_health
    );
    assert!(
        watched.slowest_health < HEALTH_BOUND,
        "{path}: /healthz took {:?}",
        watched.slowest_health
    );
    assert_still_serves(server).await;
}

#[tokio::test]
async fn guests_that_hoard_host_resources_are_stopped() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let server = hostile_server(&dir).await;
    let baseline = rss_mb(server.pid());
    let cases = [
        ("/fn/hostile/fields", "header fields"),
        ("/fn/hostile/handles", "resource handles"),
        ("/fn/hostile/bodies", "body buffers"),
        ("/fn/hostile/stdout", "stdout and stderr"),
        ("/fn/hostile/huge?declared", "response body bytes"),
    ];
    for (path, names) in cases {
        assert_contained(
            &server,
            baseline,
            path,
            500,
            "resource_limit_exceeded",
            names,
        )
        .await;
    }
    assert_contained(
        &server,
        baseline,
        "/fn/hostile/recurse",
        500,
        "trap",
        "stack",
    )
    .await;
}

#[tokio::test]
async fn an_outbound_flood_is_cut_at_its_budget() {
    let _turn = ONE_AT_A_TIME.lock().await;
    // The flood's target: a server of the test's own on loopback, which
    // answers every request and closes.
    let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = upstream.local_addr().unwrap().port();
    let served = Arc::new(AtomicU64::new(0));
    tokio::spawn({
        let served = served.clone();
        async move {
            while let Ok((mut socket, _)) = upstream.accept().await {
                served.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    let _ = socket
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        )
                        .await;
                });
            }
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let server = hostile_server(&dir).await;
    server
        .configure(
            "hostile",
            json!({"allowed_outbound_hosts": [format!("127.0.0.1:{port}")], "max_outbound_requests": 20}),
        )
        .await;
    let baseline = rss_mb(server.pid());
    let path = format!("/fn/hostile/outbound?url=http://127.0.0.1:{port}/");
    assert_contained(
        &server,
        baseline,
        &path,
        500,
        "resource_limit_exceeded",
        "outgoing requests",
    )
    .await;
    let sent = served.load(Ordering::Relaxed);
    assert!(
        sent <= (CALLS * 20) as u64,
        "{sent} requests reached the upstream, more than {CALLS} calls x 20"
    );
}

#[tokio::test]
async fn a_response_past_its_limit_is_cut_and_counted() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let server = hostile_server(&dir).await;
    let http = reqwest::Client::new();
    let response = http
        .get(server.at("/fn/hostile/huge"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // The head went out before the body crossed the limit: the body is cut
    // short of its end, never longer than the limit.
    let (received, in_error) = read_body(response).await;
    assert!(
        in_error,
        "the body ended as if complete after {received} bytes"
    );
    assert!(received <= 1 << 20, "received {received} bytes");
    let metric = r#"flint_invocations_total{function="hostile",version="1",outcome="resource_limit_exceeded"} 1"#;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, metrics) = server.get("/metrics").await;
        if metrics.contains(metric) {
            break;
        }
        assert!(Instant::now() < deadline, "no `{metric}` in\n{metrics}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_still_serves(&server).await;
}

#[tokio::test]
async fn a_body_cut_off_by_the_time_limit_ends_in_an_error() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let server = hostile_server(&dir).await;
    server
        .configure(
            "hostile",
            json!({"timeout_ms": 300, "max_response_bytes": 4_u64 << 30}),
        )
        .await;
    for h2 in [false, true] {
        let http = if h2 {
            reqwest::Client::builder()
                .http2_prior_knowledge()
                .build()
                .unwrap()
        } else {
            reqwest::Client::new()
        };
        let response = http
            .get(server.at("/fn/hostile/huge"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let (received, in_error) = read_body(response).await;
        assert!(
            in_error,
            "HTTP/2: {h2}: the body ended as if complete after {received} bytes"
        );
    }
    assert_still_serves(&server).await;
}

#[tokio::test]
async fn empty_body_writes_cost_nothing_over_http2() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let server = hostile_server(&dir).await;
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let baseline = rss_mb(server.pid());
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watch(&server, stop.clone());
    let calls: Vec<_> = (0..CALLS)
        .map(|_| {
            let request = h2.get(server.at("/fn/hostile/empty-writes"));
            tokio::spawn(async move {
                let response = request.send().await.unwrap();
                assert_eq!(response.version(), reqwest::Version::HTTP_2);
                (response.status(), response.text().await.unwrap())
            })
        })
        .collect();
    for call in calls {
        let (status, body) = call.await.unwrap();
        assert_eq!((status.as_u16(), body.as_str()), (200, "done\n"));
    }
    stop.store(true, Ordering::Relaxed);
    let watched = watcher.await.unwrap();
    assert!(
        watched.peak_rss_mb <= rss_bound(baseline),
        "server RSS reached {} MiB",
        watched.peak_rss_mb
    );
}

#[tokio::test]
async fn every_linear_memory_counts_against_the_cap() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    let wat = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../functions/hostile/multi-memory.wat"
    );
    let component = wat::parse_file(wat).unwrap();
    let (status, body) = server.deploy_bytes("memories", component).await;
    assert!(status.is_success(), "{status} {body}");
    server
        .configure("memories", json!({"memory_mb": MEMORY_MB}))
        .await;
    let baseline = rss_mb(server.pid());
    let (answers, watched) = storm(&server, "/fn/memories").await;
    for (got, body) in &answers {
        let message = assert_error(*got, body, 500, "memory_limit_exceeded");
        assert!(message.contains("16 MiB"), "{message}");
    }
    assert!(watched.peak_rss_mb <= rss_bound(baseline));
    // Each memory alone stays under the cap: with more room the same call
    // grows both and returns without a response.
    server
        .configure("memories", json!({"memory_mb": 2 * MEMORY_MB + 1}))
        .await;
    let (got, body) = server.get("/fn/memories").await;
    assert_error(got, &body, 500, "no_response");
}
