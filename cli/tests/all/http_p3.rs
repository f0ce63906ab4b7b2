//! WASI 0.3 components (`wasi:http/handler`), run by the real server:
//! streaming bodies both ways, many requests at once in one instance, and
//! every limit, each followed by a request that succeeds.

use crate::support::{Server, assert_error, flint};
use flint_test_artifacts as artifacts;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;

/// Deploys the example as `name` and checks the kind the server detected.
async fn deploy_p3(server: &Server, name: &str) {
    let deployed = server.deploy(name, artifacts::HTTP_P3).await;
    assert_eq!(deployed["kind"], "http-p3", "{deployed}");
}

/// The example's answer to `GET /`.
const GREETING: &str = "hello from a WASI 0.3 component\n";

/// Checks that `path` answers 200 with the example's greeting.
async fn assert_greets(server: &Server, path: &str) {
    let (status, body) = server.get(path).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, GREETING),
        "{path}"
    );
}

/// A WASI 0.3 component is detected as such, answers, and streams its
/// response while it writes it and the request's body while it arrives.
#[tokio::test]
async fn a_wasi_03_component_streams_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    deploy_p3(&server, "p3").await;
    assert_greets(&server, "/fn/p3/").await;

    // The first line comes while the guest waits to write the next ones.
    let mut response = server
        .http
        .get(server.at("/fn/p3/stream?chunks=4&delay_ms=300"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let first = response.chunk().await.unwrap().unwrap();
    assert_eq!(&first[..], b"chunk 0\n");
    let mut rest = Vec::new();
    while let Some(chunk) = response.chunk().await.unwrap() {
        rest.extend_from_slice(&chunk);
    }
    assert_eq!(rest, b"chunk 1\nchunk 2\nchunk 3\n");

    // The echo of the first part arrives before the second part is sent.
    let (parts, body) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    let body = reqwest::Body::wrap_stream(tokio_stream_of(body));
    parts.send(Ok(b"first part;".to_vec())).await.unwrap();
    let request = server
        .http
        .post(server.at("/fn/p3/echo"))
        .header("content-type", "text/x-parts")
        .body(body)
        .send();
    let mut response = tokio::time::timeout(Duration::from_secs(30), request)
        .await
        .expect("the head comes before the request body ends")
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/x-parts");
    let echoed = response.chunk().await.unwrap().unwrap();
    assert_eq!(&echoed[..], b"first part;");
    parts.send(Ok(b"second part".to_vec())).await.unwrap();
    drop(parts);
    let mut rest = Vec::new();
    while let Some(chunk) = response.chunk().await.unwrap() {
        rest.extend_from_slice(&chunk);
    }
    assert_eq!(rest, b"second part");

    let info = flint(&server.url, &["info", "p3"]);
    let text = String::from_utf8_lossy(&info.stdout);
    assert!(info.status.success(), "{text}");
    assert!(text.contains("1 (latest)  http-p3"), "{text}");
    assert_eq!(server.info("p3").await["versions"][0]["kind"], "http-p3");
}

/// A stream over the receiving end of `parts`.
fn tokio_stream_of(
    mut parts: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures::stream::poll_fn(move |cx| parts.poll_recv(cx))
}

/// What `/sleep` says about the instance that served it.
struct Served {
    instance: u64,
    max_in_flight: u64,
    served: u64,
}

async fn sleep_on(server: &Server, function: &str, ms: u64) -> Served {
    let (status, body) = server.get(&format!("/fn/{function}/sleep?ms={ms}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let json: Value = serde_json::from_str(&body).unwrap();
    Served {
        instance: json["instance"].as_u64().unwrap(),
        max_in_flight: json["max_in_flight"].as_u64().unwrap(),
        served: json["served"].as_u64().unwrap(),
    }
}

/// With `max_concurrent_requests_per_instance`, one instance serves 100
/// requests at once; by default each request has an instance of its own.
#[tokio::test]
async fn one_instance_serves_a_hundred_requests_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    deploy_p3(&server, "p3").await;

    let apart = futures::future::join_all((0..5).map(|_| sleep_on(&server, "p3", 200))).await;
    let instances: BTreeSet<u64> = apart.iter().map(|s| s.instance).collect();
    assert_eq!(
        instances.len(),
        5,
        "by default no request shares an instance"
    );
    assert!(apart.iter().all(|s| s.served == 1 && s.max_in_flight == 1));

    server
        .configure(
            "p3",
            json!({
                "max_requests_per_instance": 1000,
                "max_concurrent_requests_per_instance": 100,
                "max_concurrency": 100,
            }),
        )
        .await;
    let first = sleep_on(&server, "p3", 0).await;
    let together = futures::future::join_all((0..100).map(|_| sleep_on(&server, "p3", 1500))).await;
    let instances: BTreeSet<u64> = together.iter().map(|s| s.instance).collect();
    assert_eq!(instances, BTreeSet::from([first.instance]));
    let most = together.iter().map(|s| s.max_in_flight).max().unwrap();
    assert_eq!(most, 100, "all 100 were in the handler at once");
    let last = sleep_on(&server, "p3", 0).await;
    assert_eq!((last.instance, last.served), (first.instance, 102));

    let (_, metrics) = server.get("/metrics").await;
    let ok = r#"flint_invocations_total{function="p3",version="1",outcome="ok"} 107"#;
    assert!(metrics.contains(ok), "{ok} missing:\n{metrics}");
}

/// Each limit ends the request that crossed it with its own error, and the
/// function serves the next request.
#[tokio::test]
async fn each_limit_ends_its_request_and_the_next_one_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    deploy_p3(&server, "p3").await;
    server
        .configure(
            "p3",
            json!({"timeout_ms": 500, "memory_mb": 16, "max_response_bytes": 100000}),
        )
        .await;
    let (status, body) = server.get("/fn/p3/log").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "logged\n"));
    let (_, logs) = server.get("/v1/functions/p3/logs").await;
    assert!(logs.contains("stdout line"), "{logs}");
    assert!(logs.contains("stderr line"), "{logs}");

    let cases = [
        ("/trap", 500, "trap", ""),
        ("/spin", 504, "timeout", "500 ms"),
        ("/sleep?ms=5000", 504, "timeout", "500 ms"),
        ("/alloc?mb=64", 500, "memory_limit_exceeded", "16 MiB"),
        (
            "/fields",
            500,
            "resource_limit_exceeded",
            "bytes held by the host",
        ),
        (
            "/handles",
            500,
            "resource_limit_exceeded",
            "resource handles",
        ),
        ("/log", 500, "resource_limit_exceeded", "max_log_bytes"),
    ];
    for (path, status, code, says) in cases {
        if path == "/log" {
            server.configure("p3", json!({"max_log_bytes": 4})).await;
        }
        let (got, body) = server.get(&format!("/fn/p3{path}")).await;
        let message = assert_error(got, &body, status, code);
        assert!(message.contains(says), "{path}: {message}");
        let (got, body) = server.get("/fn/p3/").await;
        assert_eq!(got, StatusCode::OK, "after {path}: {body}");
    }

    // A body past max_response_bytes is cut off with an error, never
    // passed off as whole.
    let response = server
        .http
        .get(server.at("/fn/p3/big?bytes=1000000"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.bytes().await.is_err(),
        "a cut body ends in an error"
    );
    let (status, body) = server.get("/fn/p3/big?bytes=50000").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.len(), 50000);

    let (_, metrics) = server.get("/metrics").await;
    for (outcome, count) in [
        ("trap", 1),
        ("timeout", 2),
        ("memory_limit_exceeded", 1),
        // /fields, /handles, /log and the cut body.
        ("resource_limit_exceeded", 4),
        ("ok", 9),
    ] {
        let series = format!(
            r#"flint_invocations_total{{function="p3",version="1",outcome="{outcome}"}} {count}"#
        );
        assert!(metrics.contains(&series), "{series} missing:\n{metrics}");
    }
}

/// Outbound HTTP from a 0.3 component passes the same allow-list as from a
/// 0.2 one: denied by default, allowed to a listed address, and denied to
/// another port of it.
#[tokio::test]
async fn outbound_http_follows_the_allow_list() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    deploy_p3(&server, "p3").await;
    let port = server.url.rsplit(':').next().unwrap().to_string();
    let target = format!("/fn/p3/outbound?url=http://127.0.0.1:{port}/healthz");

    let (status, body) = server.get(&target).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert!(body.contains("HttpRequestDenied"), "{body}");

    server
        .configure(
            "p3",
            json!({"allowed_outbound_hosts": [format!("127.0.0.1:{port}")]}),
        )
        .await;
    let (status, body) = server.get(&target).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "upstream status 200\n")
    );
    let (status, body) = server.get("/fn/p3/outbound?url=http://127.0.0.1:9/").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert!(body.contains("HttpRequestDenied"), "{body}");
    let (status, _) = server.get("/fn/p3/").await;
    assert_eq!(status, StatusCode::OK);
}

/// Requests in flight on one instance share its fate: one that spins past
/// its time limit ends the instance, and the others on it fail with it.
/// The next request gets a new instance.
#[tokio::test]
async fn requests_sharing_an_instance_share_its_fate() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    deploy_p3(&server, "p3").await;
    server
        .configure(
            "p3",
            json!({
                "timeout_ms": 1000,
                "max_requests_per_instance": 100,
                "max_concurrent_requests_per_instance": 10,
            }),
        )
        .await;
    let before = sleep_on(&server, "p3", 0).await;
    let sleepers: Vec<_> = (0..3)
        .map(|_| server.spawn_get("/fn/p3/sleep?ms=800"))
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, body) = server.get("/fn/p3/spin").await;
    assert_error(status, &body, 504, "timeout");
    for sleeper in sleepers {
        let (status, body) = sleeper.await.unwrap();
        assert_error(status, &body, 504, "timeout");
    }
    let after = sleep_on(&server, "p3", 0).await;
    assert_ne!(after.instance, before.instance);
    assert_eq!(after.served, 1);
}

/// The new setting is checked against the others, and the server goes on.
#[tokio::test]
async fn the_concurrency_per_instance_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    deploy_p3(&server, "p3").await;
    for (patch, says) in [
        (
            json!({"max_concurrent_requests_per_instance": 0}),
            "out of range",
        ),
        (
            json!({"max_concurrent_requests_per_instance": 1001, "max_requests_per_instance": 5000}),
            "out of range",
        ),
        (
            json!({"max_concurrent_requests_per_instance": 2}),
            "exceeds max_requests_per_instance 1",
        ),
    ] {
        let (status, body) = server.patch_config("p3", patch).await;
        let message = assert_error(status, &body.to_string(), 400, "invalid_config");
        assert!(
            message.contains("max_concurrent_requests_per_instance"),
            "{message}"
        );
        assert!(message.contains(says), "{message}");
        let (status, _) = server.get("/fn/p3/").await;
        assert_eq!(status, StatusCode::OK);
    }
    let out = flint(
        &server.url,
        &[
            "config",
            "p3",
            "--max-requests-per-instance",
            "50",
            "--max-concurrent-requests-per-instance",
            "8",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config = server.info("p3").await["config"].clone();
    assert_eq!(
        config["max_concurrent_requests_per_instance"], 8,
        "{config}"
    );
}

/// A stated kind must match the upload's; versions of different kinds
/// share a function, and releases route between them.
#[tokio::test]
async fn kinds_are_checked_and_releases_route_between_them() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    for (name, file, kind, says) in [
        ("a", artifacts::HTTP_P3, "http", "not the `http` asked for"),
        (
            "b",
            artifacts::HELLO,
            "http-p3",
            "not the `http-p3` asked for",
        ),
    ] {
        let (status, body) = server
            .deploy_bytes(&format!("{name}?kind={kind}"), artifacts::bytes(file))
            .await;
        let message = assert_error(status, &body.to_string(), 400, "invalid_component");
        assert!(message.contains(says), "{message}");
    }
    let (status, body) = server
        .deploy_bytes("mixed?kind=http-p3", artifacts::bytes(artifacts::HTTP_P3))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let v2 = server.deploy("mixed", artifacts::HELLO).await;
    assert_eq!(v2["kind"], "http");
    assert_greets(&server, "/fn/mixed@1/").await;
    let (status, _) = server.get("/fn/mixed@2/").await;
    assert_eq!(status, StatusCode::OK);
    let out = flint(&server.url, &["release", "mixed", "--to", "1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_greets(&server, "/fn/mixed/").await;
}

/// `min_instances` keeps instances of a WASI 0.3 component ready ahead of
/// requests, and an unloaded version, or one of a restarted server, comes
/// back from its compiled artifact on disk, not from a compile.
#[tokio::test]
async fn instances_are_kept_warm_and_versions_come_back_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--unload-after-secs", "1"]);
    deploy_p3(&server, "p3").await;
    server.configure("p3", json!({"min_instances": 2})).await;
    server
        .wait_for_info("p3", "2 warm instances", |i| {
            i["stats"]["warm_instances"] == 2
        })
        .await;
    assert_eq!(server.get("/fn/p3/").await.0, StatusCode::OK);
    let info = server.info("p3").await;
    assert_eq!(info["stats"]["warm_starts"], 1, "{info}");
    assert_eq!(info["stats"]["cold_starts"], 0, "{info}");
    server
        .wait_for_info("p3", "refilled", |i| i["stats"]["warm_instances"] == 2)
        .await;

    server.configure("p3", json!({"min_instances": 0})).await;
    server
        .wait_for_info("p3", "unloaded", |i| i["versions"][0]["loaded"] == false)
        .await;
    assert_greets(&server, "/fn/p3/").await;
    let info = server.info("p3").await;
    assert_eq!(info["stats"]["disk_loads"], 1, "{info}");
    assert_eq!(info["stats"]["compiles"], 1, "{info}");

    // A restarted server builds the engine with concurrency support for the
    // cached artifact and maps it: no recompile.
    server.kill();
    let server = Server::start(&dir);
    server
        .wait_for_info("p3", "the preload from disk", |i| {
            i["stats"]["disk_loads"] == 1
        })
        .await;
    assert_greets(&server, "/fn/p3/").await;
    let info = server.info("p3").await;
    assert_eq!(info["stats"]["compiles"], 0, "{info}");
}
