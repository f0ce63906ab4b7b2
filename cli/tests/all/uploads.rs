//! Uploads under load and the data dir over time: compile admission
//! (`--max-compiles`, `--compile-queue-timeout-ms`), compiles killed at
//! `--compile-timeout-ms`, the storage cap (`--max-storage-bytes`) and the
//! garbage collection of unused blobs and artifacts (`--gc-grace-secs`).

use crate::support::{Server, rss_kib};
use flint_spec::Digest;
use flint_test_artifacts as artifacts;
use reqwest::StatusCode;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The largest growth of the server's resident memory the flood may cause.
/// Compiles run in worker processes, so the server only holds the bodies
/// of the uploads in flight and the artifacts it maps.
const FLOOD_RSS_GROWTH_BOUND_KIB: u64 = 128 * 1024;

/// `component` with a custom section holding `n`: distinct bytes (so a
/// distinct digest) that are still the same valid component.
fn unique(component: &[u8], n: u64) -> Vec<u8> {
    fn leb128(mut value: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (value & 0x7f) as u8;
            value >>= 7;
            if value == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let name = b"flint-test-nonce";
    let mut content = Vec::new();
    leb128(name.len(), &mut content);
    content.extend_from_slice(name);
    content.extend_from_slice(&n.to_le_bytes());
    let mut out = component.to_vec();
    out.push(0);
    leb128(content.len(), &mut out);
    out.extend(content);
    out
}

/// The server's data dir (see `Server::start_with`).
fn data_dir(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("data")
}

/// The files of the blob store and the artifact cache.
fn stored_files(data: &Path) -> Vec<PathBuf> {
    ["blobs", "cache"]
        .iter()
        .filter_map(|sub| std::fs::read_dir(data.join(sub)).ok())
        .flat_map(|entries| entries.map(|e| e.unwrap().path()))
        .collect()
}

/// The stored files (blob, artifacts) of `digest`.
fn files_of(data: &Path, digest: &Digest) -> Vec<PathBuf> {
    stored_files(data)
        .into_iter()
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(digest.hex())
        })
        .collect()
}

/// Bytes of the blob store and the artifact cache.
fn stored_bytes(data: &Path) -> u64 {
    stored_files(data)
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum()
}

/// The child processes of `pid` (over all its threads).
fn children(pid: u32) -> Vec<u32> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    tasks
        .filter_map(|t| std::fs::read_to_string(t.unwrap().path().join("children")).ok())
        .flat_map(|list| {
            list.split_whitespace()
                .map(|p| p.parse().unwrap())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// `PUT /v1/components`: status, `Retry-After`, JSON body.
async fn upload(
    http: &reqwest::Client,
    url: &str,
    bytes: Vec<u8>,
) -> (StatusCode, Option<String>, Value) {
    let response = http
        .put(format!("{url}/v1/components"))
        .header("content-type", "application/wasm")
        .body(bytes)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    (
        status,
        retry_after,
        response.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn an_upload_flood_is_compiled_one_at_a_time_and_the_rest_refused_cleanly() {
    const UPLOADS: u64 = 24;
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(&dir);
    let server = Server::start_with(
        dir.path(),
        &["--max-compiles", "1", "--compile-queue-timeout-ms", "500"],
    );
    let pid = server.pid();
    let before = rss_kib(pid);
    let peak = Arc::new(AtomicU64::new(before));
    let most_workers = Arc::new(AtomicU64::new(0));
    let flooding = Arc::new(AtomicBool::new(true));
    let sampler = tokio::spawn({
        let (peak, most_workers, flooding) = (peak.clone(), most_workers.clone(), flooding.clone());
        async move {
            while flooding.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                most_workers.fetch_max(children(pid).len() as u64, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    });
    let probe = artifacts::bytes(artifacts::PROBE);
    let uploads: Vec<_> = (0..UPLOADS)
        .map(|n| {
            let bytes = unique(&probe, n);
            let digest = Digest::of(&bytes);
            let (http, url) = (server.http.clone(), server.url.clone());
            tokio::spawn(async move { (digest, upload(&http, &url, bytes).await) })
        })
        .collect();
    let mut admitted = Vec::new();
    let mut refused = Vec::new();
    for task in uploads {
        let (digest, (status, retry_after, body)) = task.await.unwrap();
        match status {
            StatusCode::CREATED => {
                assert_eq!(body["digest"], digest.to_string(), "{body}");
                admitted.push(digest);
            }
            StatusCode::TOO_MANY_REQUESTS => {
                assert_eq!(body["error"]["code"], "overloaded", "{body}");
                let message = body["error"]["message"].as_str().unwrap();
                assert!(message.contains("--max-compiles"), "{message}");
                assert!(retry_after.is_some(), "429 without Retry-After: {body}");
                refused.push(digest);
            }
            other => panic!("an upload got {other}: {body}"),
        }
    }
    flooding.store(false, Ordering::Relaxed);
    sampler.await.unwrap();
    assert!(!admitted.is_empty(), "no upload was admitted");
    assert_eq!(
        most_workers.load(Ordering::Relaxed),
        1,
        "compile workers at once, with --max-compiles 1"
    );
    assert!(
        !refused.is_empty(),
        "no upload was refused: admission did not bound the compiles"
    );
    let growth = peak.load(Ordering::Relaxed).saturating_sub(before);
    eprintln!(
        "{} admitted, {} refused; RSS {before} KiB before, peak growth {growth} KiB",
        admitted.len(),
        refused.len()
    );
    assert!(
        growth < FLOOD_RSS_GROWTH_BOUND_KIB,
        "the server's RSS grew by {growth} KiB (from {before} KiB), over the bound of {FLOOD_RSS_GROWTH_BOUND_KIB} KiB"
    );
    for digest in &refused {
        assert_eq!(
            files_of(&data, digest),
            Vec::<PathBuf>::new(),
            "refused {digest}"
        );
    }
    for digest in &admitted {
        assert_eq!(
            files_of(&data, digest).len(),
            2,
            "admitted {digest}: blob and artifact"
        );
    }
    assert_eq!(
        stored_files(&data).len(),
        2 * admitted.len(),
        "leftovers: {:?}",
        stored_files(&data)
    );
    assert_eq!(
        children(pid),
        Vec::<u32>::new(),
        "compile workers outlived their uploads"
    );
    server.deploy("after", artifacts::PROBE).await;
    assert_eq!(server.get("/fn/after/counter").await.1, "1");
}

#[tokio::test]
async fn a_compile_past_its_deadline_is_killed_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(&dir);
    // Room for the small probe's compile (~0.2 s here) even on a busy
    // machine, none for the JavaScript component (~13 MB, SpiderMonkey
    // inside), which takes about 8 s.
    let server = Server::start_with(dir.path(), &["--compile-timeout-ms", "3000"]);
    let pid = server.pid();
    let big = artifacts::bytes(artifacts::JS_HELLO);
    let digest = Digest::of(&big);
    let deploy = tokio::spawn({
        let (http, url) = (server.http.clone(), server.at("/v1/functions/big"));
        async move {
            let response = http
                .put(url)
                .header("content-type", "application/wasm")
                .body(big)
                .send()
                .await
                .unwrap();
            (response.status(), response.json::<Value>().await.unwrap())
        }
    });
    let mut workers = Vec::new();
    while !deploy.is_finished() {
        workers.extend(children(pid));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (status, body) = deploy.await.unwrap();
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "compile_timeout");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--compile-timeout-ms"),
        "{body}"
    );
    assert!(!workers.is_empty(), "the compile ran in no worker process");
    assert_eq!(
        children(pid),
        Vec::<u32>::new(),
        "the worker outlived its deadline"
    );
    for worker in workers {
        assert!(
            !Path::new(&format!("/proc/{worker}")).exists(),
            "worker {worker} still exists"
        );
    }
    assert_eq!(stored_files(&data), Vec::<PathBuf>::new(), "left behind");
    assert!(files_of(&data, &digest).is_empty());
    assert_eq!(server.get("/v1/functions/big").await.0, 404);
    server.deploy("after", artifacts::PROBE).await;
    assert_eq!(server.get("/fn/after/counter").await.1, "1");
}

#[tokio::test]
async fn an_upload_past_the_storage_cap_is_refused_and_stores_nothing() {
    let probe = artifacts::bytes(artifacts::PROBE);
    let (first, second) = (unique(&probe, 1), unique(&probe, 2));
    // One component's footprint (blob and artifact), measured.
    let footprint = {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(&dir);
        let (status, _, body) = upload(&server.http, &server.url, first.clone()).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        server.kill();
        stored_bytes(&data_dir(&dir))
    };
    let cap = footprint + first.len() as u64 / 2;
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(&dir);
    let server = Server::start_with(dir.path(), &["--max-storage-bytes", &cap.to_string()]);
    let (status, body) = server.deploy_bytes("first", first.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(stored_bytes(&data), footprint);

    let (status, body) = server.deploy_bytes("second", second.clone()).await;
    assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE, "{body}");
    assert_eq!(body["error"]["code"], "insufficient_storage");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("--max-storage-bytes") && message.contains("flint rm"),
        "{message}"
    );
    assert!(files_of(&data, &Digest::of(&second)).is_empty());
    assert_eq!(stored_bytes(&data), footprint);
    assert_eq!(server.get("/v1/functions/second").await.0, 404);
    let (status, _, body) = upload(&server.http, &server.url, second).await;
    assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE, "{body}");

    // What is held already needs no room: the same bytes deploy again.
    let (status, body) = server.deploy_bytes("first-again", first).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(server.get("/fn/first/counter").await.1, "1");
    assert_eq!(server.get("/fn/first-again/counter").await.1, "1");
}

#[tokio::test]
async fn unused_blobs_and_artifacts_are_collected_after_the_grace() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(&dir);
    let server = Server::start_with(dir.path(), &["--gc-grace-secs", "2"]);
    let live = Digest::parse(
        server.deploy("live", artifacts::PROBE).await["digest"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let live_artifact = files_of(&data, &live)
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .expect("the live version's artifact");
    let engine_key = live_artifact
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .rsplit_once('-')
        .unwrap()
        .1
        .to_string();

    // Uploaded, never applied.
    let orphan_bytes = unique(&artifacts::bytes(artifacts::PROBE), 7);
    let orphan = Digest::of(&orphan_bytes);
    let (status, _, body) = upload(&server.http, &server.url, orphan_bytes).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(files_of(&data, &orphan).len(), 2);
    // A stray artifact, the live component's artifact of another engine,
    // and the temp file of a compile that never finished.
    let cache = data.join("cache");
    let strays = [
        cache.join(format!("{}-{engine_key}.cwasm", "ab".repeat(32))),
        cache.join(format!("{}-0123456789abcdef.cwasm", live.hex())),
        cache.join(".compile-1-1.tmp"),
    ];
    for stray in &strays {
        std::fs::write(stray, b"not an artifact").unwrap();
    }
    // Not Flint's: left alone.
    std::fs::write(cache.join("README"), b"mine").unwrap();

    let deadline = Instant::now() + Duration::from_secs(30);
    while !files_of(&data, &orphan).is_empty() || strays.iter().any(|s| s.exists()) {
        assert!(
            Instant::now() < deadline,
            "not collected within 30 s: {:?}",
            stored_files(&data)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut left: Vec<_> = stored_files(&data)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    left.sort();
    let mut expected = vec![
        "README".to_string(),
        format!("{}-{engine_key}.cwasm", live.hex()),
        format!("{}.wasm", live.hex()),
    ];
    expected.sort();
    assert_eq!(left, expected);
    assert_eq!(server.get("/fn/live/counter").await.1, "1");
    // The collected upload can be uploaded again.
    let (status, _, body) = upload(
        &server.http,
        &server.url,
        unique(&artifacts::bytes(artifacts::PROBE), 7),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}
