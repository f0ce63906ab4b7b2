//! Backups of a running server under load, restored into a fresh data dir.

use crate::support::{Server, flint};
use flint_test_artifacts as artifacts;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// Most calls the load makes while the backup runs.
const LOAD_CALLS: u32 = 5_000;

#[tokio::test]
async fn a_backup_under_load_restores_functions_versions_aliases_config_triggers_and_schedules() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    server.deploy("hello", artifacts::HELLO).await;
    server.deploy("hello", artifacts::WASI_HELLO).await;
    server.deploy("echo", artifacts::ECHO).await;
    let (status, body) = server
        .post("/v1/functions/hello/release", json!({"to": 1}))
        .await;
    assert_eq!(status, 200, "{body}");
    server.configure("echo", json!({"memory_mb": 64})).await;
    let bound = server
        .http
        .put(server.at("/v1/functions/echo/triggers"))
        .json(&json!({"queue": "orders"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bound.status(), 200);
    let (status, body) = server
        .post(
            "/v1/functions/echo/schedules",
            json!({"cron": "0 6 1 1 *", "tz": "Europe/Berlin", "body": "{}"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let schedule: serde_json::Value = serde_json::from_str(&body).unwrap();

    // Calls keep being served while the backup is taken.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let load = tokio::spawn({
        let (http, url) = (server.http.clone(), server.at("/fn/hello/"));
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        async move {
            for _ in 0..LOAD_CALLS {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                match http.get(&url).send().await {
                    Ok(r) if r.status() == 200 => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }
    });
    let archive = dir.path().join("flint-backup.tar");
    let out = tokio::task::spawn_blocking({
        let (url, archive) = (server.url.clone(), archive.clone());
        move || flint(&url, &["backup", archive.to_str().unwrap()])
    })
    .await
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("2 function(s) and 3 component(s)"),
        "{stdout}"
    );
    assert_eq!(failed.load(Ordering::Relaxed), 0);
    assert!(ok.load(Ordering::Relaxed) > 0);
    drop(server);

    let target = tempfile::tempdir().unwrap();
    let data = target.path().join("data");
    let restore = |extra: &[&str]| {
        let mut args = vec!["restore", archive.to_str().unwrap(), "--data-dir"];
        args.push(data.to_str().unwrap());
        args.extend_from_slice(extra);
        flint("http://127.0.0.1:1", &args)
    };
    let out = restore(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again = restore(&[]);
    assert!(!again.status.success());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("already holds a registry"), "{stderr}");

    let server = Server::start(&target);
    let info = server.info("hello").await;
    assert_eq!(info["latest_version"], 2, "{info}");
    let response = server
        .http
        .get(server.at("/fn/hello/"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["x-flint-version"],
        "1",
        "the release came back"
    );
    assert_eq!(server.info("echo").await["config"]["memory_mb"], 64);
    let (status, binding) = server.get_json("/v1/functions/echo/triggers").await;
    assert_eq!(
        (status.as_u16(), binding["queue"].as_str()),
        (200, Some("orders"))
    );
    let (status, list) = server.get_json("/v1/functions/echo/schedules").await;
    assert_eq!(status, 200, "{list}");
    let restored = &list["schedules"][0];
    for field in ["id", "cron", "tz", "body", "created_at"] {
        assert_eq!(restored[field], schedule[field], "{field}: {list}");
    }
}

#[tokio::test]
async fn a_damaged_archive_is_refused_and_restores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    server.deploy("hello", artifacts::HELLO).await;
    let archive = dir.path().join("b.tar");
    let out = tokio::task::spawn_blocking({
        let (url, archive) = (server.url.clone(), archive.clone());
        move || flint(&url, &["backup", archive.to_str().unwrap()])
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Flip a byte near the end: inside the last component.
    let mut bytes = std::fs::read(&archive).unwrap();
    let at = bytes.len() - 2048 - 100;
    bytes[at] ^= 0xff;
    std::fs::write(&archive, bytes).unwrap();
    let data = dir.path().join("restored");
    let out = flint(
        &server.url,
        &[
            "restore",
            archive.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("do not match its digest"), "{stderr}");
    assert!(
        !data.join("registry.db").exists(),
        "no registry after a failed restore"
    );
}
