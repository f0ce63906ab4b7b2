//! Restarts and redeploys: nothing acknowledged is lost, no request fails.

use crate::support::Server;
use flint_test_artifacts as artifacts;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

#[tokio::test]
async fn a_killed_server_restarts_with_everything_and_no_recompile() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    server.deploy("hello", artifacts::HELLO).await;
    server.deploy("probe", artifacts::PROBE).await;
    server
        .configure("probe", json!({"env": {"KEPT": "yes"}, "memory_mb": 64}))
        .await;
    assert_eq!(server.info("hello").await["stats"]["compiles"], 1);
    server.kill();

    let server = Server::start(&dir);
    let (_, list) = server.get_json("/v1/functions").await;
    assert_eq!(list["functions"].as_array().unwrap().len(), 2, "{list}");
    // Live versions load from the disk cache at start, before any call.
    server
        .wait_for_info("hello", "the preload from disk", |i| {
            i["stats"]["disk_loads"] == 1
        })
        .await;
    assert_eq!(server.get("/fn/hello/").await.1, "Hello from Flint!\n");
    assert_eq!(server.get("/fn/probe/env?name=KEPT").await.1, "yes");
    let info = server.info("hello").await;
    assert_eq!(
        info["stats"]["compiles"], 0,
        "restart must not recompile: {info}"
    );
    assert_eq!(info["stats"]["disk_loads"], 1, "{info}");
    assert_eq!(server.info("probe").await["config"]["memory_mb"], 64);
    let (_, metrics) = server.get("/metrics").await;
    assert!(
        metrics.contains(r#"flint_artifact_loads_total{function="hello",kind="disk"} 1"#),
        "{metrics}"
    );
    // Versions keep counting from where they were.
    let (status, body) = server
        .deploy_bytes("hello", artifacts::bytes(artifacts::ECHO))
        .await;
    assert_eq!(status, 201);
    assert_eq!(body["version"], 2);
}

#[tokio::test]
async fn redeploy_under_load_fails_no_request() {
    let dir = tempfile::tempdir().unwrap();
    let server = Arc::new(Server::start(&dir));
    server.deploy("live", artifacts::HELLO).await;
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (server, stop, ok, failed) =
                (server.clone(), stop.clone(), ok.clone(), failed.clone());
            tokio::spawn(async move {
                // Bounded: stops when told, or after 2,000 requests.
                for _ in 0..2000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let (status, body) = server.get("/fn/live/").await;
                    if status == 200 && body.starts_with("Hello from") {
                        ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                        eprintln!("failed: {status} {body}");
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.deploy("live", artifacts::WASI_HELLO).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.deploy("live", artifacts::HELLO).await;
    server
        .configure("live", json!({"max_requests_per_instance": 5}))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0);
    assert!(ok.load(Ordering::Relaxed) > 0);
    assert_eq!(server.info("live").await["latest_version"], 3);
}

#[tokio::test]
async fn in_flight_calls_finish_on_their_version() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    server.deploy("slow", artifacts::PROBE).await;
    let in_flight = {
        let (http, url) = (server.http.clone(), server.at("/fn/slow/sleep?ms=1000"));
        tokio::spawn(async move {
            let response = http.get(url).send().await.unwrap();
            (
                response.headers()["x-flint-version"]
                    .to_str()
                    .unwrap()
                    .to_string(),
                response.text().await.unwrap(),
            )
        })
    };
    server
        .wait_for_info("slow", "the call in flight", |i| {
            i["stats"]["in_flight"] == 1
        })
        .await;
    server.deploy("slow", artifacts::HELLO).await;
    assert_eq!(server.get("/fn/slow/").await.1, "Hello from Flint!\n");
    assert_eq!(
        in_flight.await.unwrap(),
        ("1".to_string(), "slept 1000 ms".to_string())
    );
}

#[tokio::test]
async fn sigterm_lets_in_flight_calls_finish() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    server.deploy("slow", artifacts::PROBE).await;
    let call = server.spawn_get("/fn/slow/sleep?ms=1000");
    server
        .wait_for_info("slow", "the call in flight", |i| {
            i["stats"]["in_flight"] == 1
        })
        .await;
    let url = server.url.clone();
    let status = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .unwrap();
    assert!(status.success(), "{status}");
    assert_eq!(
        call.await.unwrap(),
        (reqwest::StatusCode::OK, "slept 1000 ms".to_string())
    );
    assert!(
        reqwest::get(format!("{url}/healthz")).await.is_err(),
        "the server should be gone"
    );
}
