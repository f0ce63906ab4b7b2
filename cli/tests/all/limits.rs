//! Every limit crossed: the caller's error, then the next request succeeds.

use crate::support::{Server, assert_error};
use flint_test_artifacts as artifacts;
use serde_json::json;
use std::time::{Duration, Instant};

/// Generous slack for a loaded CI machine; the point is "stopped near its
/// limit", not a latency figure.
const SLACK: Duration = Duration::from_secs(5);

#[tokio::test]
async fn endless_loop_and_slow_host_call_time_out() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    server.deploy("probe", artifacts::PROBE).await;
    server.configure("probe", json!({"timeout_ms": 300})).await;
    for path in ["/fn/probe/spin", "/fn/probe/sleep?ms=60000"] {
        let started = Instant::now();
        let (status, body) = server.get(path).await;
        let message = assert_error(status, &body, 504, "timeout");
        assert!(message.contains("300 ms"), "{message}");
        assert!(
            started.elapsed() < Duration::from_millis(300) + SLACK,
            "{path} took {:?}",
            started.elapsed()
        );
        assert_eq!(
            server.get("/fn/probe/counter").await,
            (reqwest::StatusCode::OK, "1".into())
        );
    }
}

#[tokio::test]
async fn memory_cap_is_reported_with_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    server.deploy("probe", artifacts::PROBE).await;
    server
        .configure(
            "probe",
            json!({"memory_mb": 32, "max_requests_per_instance": 10}),
        )
        .await;
    let (status, body) = server.get("/fn/probe/alloc?mb=64").await;
    let message = assert_error(status, &body, 500, "memory_limit_exceeded");
    assert!(message.contains("32 MiB"), "{message}");
    assert_eq!(
        server.get("/fn/probe/alloc?mb=8").await.1,
        "allocated 8 MiB"
    );
    assert_eq!(server.get("/fn/probe/counter").await.1, "1");
}

#[tokio::test]
async fn traps_are_contained() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    server.deploy("probe", artifacts::PROBE).await;
    let (status, body) = server.get("/fn/probe/trap").await;
    let message = assert_error(status, &body, 500, "trap");
    assert!(message.contains("unreachable"), "{message}");
    assert_eq!(server.get("/fn/probe/counter").await.1, "1");
}

#[tokio::test]
async fn over_concurrency_and_queue_gets_429() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    server.deploy("slow", artifacts::PROBE).await;
    server
        .configure(
            "slow",
            json!({"max_concurrency": 2, "max_queue": 1, "queue_timeout_ms": 30000}),
        )
        .await;
    let slow: Vec<_> = (0..3)
        .map(|_| server.spawn_get("/fn/slow/sleep?ms=1500"))
        .collect();
    server
        .wait_for_info("slow", "2 in flight and 1 queued", |i| {
            i["stats"]["in_flight"] == 2 && i["stats"]["queued"] == 1
        })
        .await;
    let response = server
        .http
        .get(server.at("/fn/slow/counter"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["retry-after"], "1");
    let status = response.status();
    let message = assert_error(status, &response.text().await.unwrap(), 429, "overloaded");
    assert!(message.contains("max_concurrency 2"), "{message}");
    for task in slow {
        assert_eq!(task.await.unwrap().0, 200);
    }
    assert_eq!(server.get("/fn/slow/counter").await.0, 200);
}

#[tokio::test]
async fn no_free_instance_slot_gets_429_not_a_trap() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--max-instances", "2"]);
    server.deploy("slow", artifacts::PROBE).await;
    let busy: Vec<_> = (0..2)
        .map(|_| server.spawn_get("/fn/slow/sleep?ms=1500"))
        .collect();
    server
        .wait_for_info("slow", "2 in flight", |i| i["stats"]["in_flight"] == 2)
        .await;
    let response = server
        .http
        .get(server.at("/fn/slow/counter"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["retry-after"], "1");
    let status = response.status();
    let message = assert_error(status, &response.text().await.unwrap(), 429, "overloaded");
    assert!(message.contains("--max-instances"), "{message}");
    for task in busy {
        assert_eq!(task.await.unwrap().0, 200);
    }
    assert_eq!(server.get("/fn/slow/counter").await.0, 200);
}

#[tokio::test]
async fn queue_wait_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    server.deploy("slow", artifacts::PROBE).await;
    server
        .configure(
            "slow",
            json!({"max_concurrency": 1, "max_queue": 5, "queue_timeout_ms": 100}),
        )
        .await;
    let busy = server.spawn_get("/fn/slow/sleep?ms=1500");
    server
        .wait_for_info("slow", "1 in flight", |i| i["stats"]["in_flight"] == 1)
        .await;
    let (status, body) = server.get("/fn/slow/counter").await;
    let message = assert_error(status, &body, 429, "overloaded");
    assert!(message.contains("queue_timeout_ms 100"), "{message}");
    assert_eq!(busy.await.unwrap().0, 200);
    assert_eq!(server.get("/fn/slow/counter").await.0, 200);
}

#[tokio::test]
async fn request_body_and_upload_limits_give_413() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        dir.path(),
        &[
            "--max-request-body-bytes",
            "1024",
            "--max-upload-bytes",
            "170000",
        ],
    );
    server.deploy("probe", artifacts::PROBE).await;
    let response = server
        .http
        .post(server.at("/fn/probe/body"))
        .body(vec![b'x'; 2048])
        .send()
        .await
        .unwrap();
    let status = response.status();
    let message = assert_error(
        status,
        &response.text().await.unwrap(),
        413,
        "payload_too_large",
    );
    assert!(message.contains("1024"), "{message}");
    let response = server
        .http
        .post(server.at("/fn/probe/body"))
        .body(vec![b'y'; 1000])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap().len(), 1000);

    // A chunked body (no content-length) over the limit is cut off, and the
    // function sees a failed read rather than the whole body.
    let chunks = futures::stream::iter((0..4).map(|_| Ok::<_, std::io::Error>(vec![b'z'; 512])));
    let response = server
        .http
        .post(server.at("/fn/probe/body"))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert!(!response.status().is_success(), "{}", response.status());

    let (status, body) = server.deploy_bytes("big", vec![0u8; 200_000]).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "payload_too_large");
    assert_eq!(server.get("/fn/probe/counter").await.1, "1");
}

#[tokio::test]
async fn config_values_are_validated() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    server.deploy("f", artifacts::PROBE).await;
    let cases = [
        (json!({"memory_mb": 0}), "memory_mb"),
        (json!({"memory_mb": 1_000_000}), "memory_mb"),
        (json!({"timeout_ms": 900_001}), "timeout_ms"),
        (json!({"max_concurrency": 0}), "max_concurrency"),
        (
            json!({"max_requests_per_instance": 0}),
            "max_requests_per_instance",
        ),
        (
            json!({"allowed_outbound_hosts": ["http://x/"]}),
            "allowed_outbound_hosts",
        ),
        (json!({"env": {"A=B": "x"}}), "env"),
        (json!({"memroy_mb": 5}), "memroy_mb"),
        (json!({"memory_mb": "lots"}), "memory_mb"),
    ];
    for (patch, field) in cases {
        let (status, body) = server.patch_config("f", patch.clone()).await;
        assert_eq!(status, 400, "{patch}: {body}");
        assert_eq!(body["error"]["code"], "invalid_config");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(field),
            "{patch}: {body}"
        );
    }
    let (_, config) = server.get_json("/v1/functions/f/config").await;
    assert_eq!(config["memory_mb"], 128);
    assert_eq!(config["timeout_ms"], 30000);
    let (status, config) = server
        .patch_config("f", json!({"timeout_ms": 900_000}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(config["timeout_ms"], 900_000);
    assert_eq!(config["memory_mb"], 128);
    assert_eq!(server.get("/fn/f/counter").await.0, 200);
}

#[tokio::test]
async fn compile_time_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--compile-timeout-ms", "1"]);
    let (status, body) = server
        .deploy_bytes("slow-compile", artifacts::bytes(artifacts::PROBE))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "compile_timeout");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--compile-timeout-ms"),
        "{body}"
    );
    assert_eq!(server.get("/v1/functions/slow-compile").await.0, 404);
    assert_eq!(server.get("/healthz").await.0, 200);
}
