//! Fresh instances by default, opt-in reuse, isolation, warm pools, unload.

use crate::support::Server;
use flint_test_artifacts as artifacts;
use serde_json::json;

/// Calls `path` and waits until the invocation has fully ended: a reusable
/// instance goes back to the pool only after its response body is sent, so
/// the next call could otherwise race it and get a fresh instance.
async fn call_settled(server: &Server, name: &str, path: &str) -> (u16, String) {
    let (status, body) = server.get(&format!("/fn/{name}{path}")).await;
    server
        .wait_for_info(name, "the call to end", |i| i["stats"]["in_flight"] == 0)
        .await;
    (status.as_u16(), body)
}

async fn counter(server: &Server, name: &str, path: &str) -> String {
    let (status, body) = call_settled(server, name, path).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn counters(server: &Server, name: &str, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(counter(server, name, "/counter").await);
    }
    out
}

#[tokio::test]
async fn every_request_gets_a_fresh_instance_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    server.deploy("probe", artifacts::PROBE).await;
    assert_eq!(counters(&server, "probe", 5).await, ["1"; 5]);
}

#[tokio::test]
async fn reuse_counts_up_to_the_limit_and_restarts_after_a_trap() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    server.deploy("probe", artifacts::PROBE).await;
    server
        .configure("probe", json!({"max_requests_per_instance": 3}))
        .await;
    assert_eq!(
        counters(&server, "probe", 7).await,
        ["1", "2", "3", "1", "2", "3", "1"]
    );

    server
        .configure("probe", json!({"max_requests_per_instance": 100}))
        .await;
    assert_eq!(counters(&server, "probe", 2).await, ["1", "2"]);
    assert_eq!(call_settled(&server, "probe", "/trap").await.0, 500);
    assert_eq!(counters(&server, "probe", 2).await, ["1", "2"]);
    // A timed-out instance is never reused either.
    server.configure("probe", json!({"timeout_ms": 200})).await;
    assert_eq!(counters(&server, "probe", 1).await, ["1"]);
    assert_eq!(call_settled(&server, "probe", "/spin").await.0, 504);
    assert_eq!(counters(&server, "probe", 1).await, ["1"]);
}

#[tokio::test]
async fn functions_from_the_same_bytes_never_share_an_instance() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    for name in ["iso-a", "iso-b"] {
        server.deploy(name, artifacts::PROBE).await;
        server
            .configure(name, json!({"max_requests_per_instance": 10}))
            .await;
    }
    let mut seen = Vec::new();
    for name in ["iso-a", "iso-a", "iso-b", "iso-a", "iso-b"] {
        seen.push(counter(&server, name, "/counter").await);
    }
    assert_eq!(seen, ["1", "2", "1", "3", "2"]);
    // Nor do two versions of one function.
    server.deploy("iso-a", artifacts::HELLO).await;
    server.deploy("iso-a", artifacts::PROBE).await;
    assert_eq!(counter(&server, "iso-a", "@3/counter").await, "1");
    assert_eq!(counter(&server, "iso-a", "@1/counter").await, "4");
}

#[tokio::test]
async fn min_instances_are_warm_before_requests_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    server.deploy("warm", artifacts::HELLO).await;
    server.configure("warm", json!({"min_instances": 2})).await;
    server
        .wait_for_info("warm", "2 warm instances", |i| {
            i["stats"]["warm_instances"] == 2
        })
        .await;
    assert_eq!(server.get("/fn/warm/").await.0, 200);
    let info = server.info("warm").await;
    assert_eq!(info["stats"]["warm_starts"], 1, "{info}");
    assert_eq!(info["stats"]["cold_starts"], 0, "{info}");
    // The pool is topped up again off the request path.
    server
        .wait_for_info("warm", "refilled", |i| i["stats"]["warm_instances"] == 2)
        .await;
}

#[tokio::test]
async fn idle_versions_unload_and_come_back_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--unload-after-secs", "1"]);
    server.deploy("idle", artifacts::HELLO).await;
    assert_eq!(server.get("/fn/idle/").await.0, 200);
    server
        .wait_for_info("idle", "unloaded", |i| i["versions"][0]["loaded"] == false)
        .await;
    assert_eq!(server.get("/fn/idle/").await.1, "Hello from Flint!\n");
    let info = server.info("idle").await;
    assert_eq!(info["stats"]["disk_loads"], 1, "{info}");
    assert_eq!(info["stats"]["compiles"], 1, "{info}");
}

/// A body larger than the host's body buffer: the guest hands its response
/// over, then keeps writing while the client reads. The call runs on after
/// the response head leaves the invoke path, to its end, and its instance
/// goes back to the pool; a client that hangs up mid-body does not lose the
/// instance's bookkeeping either.
#[tokio::test]
async fn streamed_bodies_finish_and_give_the_instance_back() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    server.deploy("probe", artifacts::PROBE).await;
    server
        .configure("probe", json!({"max_requests_per_instance": 100}))
        .await;
    assert_eq!(counter(&server, "probe", "/counter").await, "1");

    let sent: Vec<u8> = (0..4 << 20).map(|i: u32| (i % 251) as u8).collect();
    let response = server
        .http
        .post(server.at("/fn/probe/body"))
        .body(sent.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let echoed = response.bytes().await.unwrap();
    assert!(echoed[..] == sent[..], "echoed {} bytes", echoed.len());
    server
        .wait_for_info("probe", "the call to end", |i| i["stats"]["in_flight"] == 0)
        .await;
    // The same instance answers: it was given back after its body.
    assert_eq!(counter(&server, "probe", "/counter").await, "2");

    // Read the head, then hang up with most of the body unread.
    let response = server
        .http
        .post(server.at("/fn/probe/body"))
        .body(sent)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    drop(response);
    server
        .wait_for_info("probe", "the abandoned call to end", |i| {
            i["stats"]["in_flight"] == 0
        })
        .await;
    let info = server.info("probe").await;
    assert_eq!(info["stats"]["invocations"], 4, "{info}");
    assert_eq!(server.get("/fn/probe/counter").await.0, 200);
}

/// The warm starts of `name` so far, as `/metrics` counts them.
async fn metric_warm_starts(server: &Server, name: &str) -> u64 {
    let metrics = server.get("/metrics").await.1;
    let series = format!("flint_starts_total{{function=\"{name}\",kind=\"warm\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&series))
        .map_or(0, |n| n.trim().parse().unwrap())
}

/// `min_instances` keeps warm what plain calls reach: after a release to
/// version 3, a deploy of version 4 leaves the warm slots with version 3, on
/// the first call and after an idle unload.
#[tokio::test]
async fn warm_instances_follow_the_release_not_the_latest_version() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--unload-after-secs", "1"]);
    for component in [artifacts::HELLO, artifacts::ECHO, artifacts::WASI_HELLO] {
        server.deploy("warm", component).await;
    }
    server.configure("warm", json!({"min_instances": 2})).await;
    let (status, body) = server
        .post("/v1/functions/warm/release", json!({"to": 3}))
        .await;
    assert_eq!(status, 200, "{body}");
    server.deploy("warm", artifacts::PROBE).await;
    let released_warm = |i: &serde_json::Value| i["versions"][2]["warm_instances"] == 2;

    server
        .wait_for_info("warm", "version 3 warm", released_warm)
        .await;
    let before = metric_warm_starts(&server, "warm").await;
    let (status, version) = {
        let response = server
            .http
            .get(server.at("/fn/warm/"))
            .send()
            .await
            .unwrap();
        let version = response.headers()["x-flint-version"]
            .to_str()
            .unwrap()
            .to_string();
        (response.status(), version)
    };
    assert_eq!((status.as_u16(), version.as_str()), (200, "3"));
    assert_eq!(
        metric_warm_starts(&server, "warm").await,
        before + 1,
        "the first call is warm"
    );

    // Past --unload-after-secs with no traffic: version 4 unloads, version 3
    // stays loaded with its warm instances.
    let info = server
        .wait_for_info("warm", "the idle latest version to unload", |i| {
            i["versions"][3]["loaded"] == false
        })
        .await;
    assert_eq!(info["versions"][2]["loaded"], true, "{info}");
    server
        .wait_for_info("warm", "version 3 warm", released_warm)
        .await;
    let before = metric_warm_starts(&server, "warm").await;
    assert_eq!(server.get("/fn/warm/").await.0, 200);
    assert_eq!(
        metric_warm_starts(&server, "warm").await,
        before + 1,
        "still warm"
    );
}
