//! Releases: aliases, splits, stickiness, rules, blue-green under load,
//! rollback, canaries, shadow runs, history, restarts.

use crate::support::{Server, assert_error};
use flint_test_artifacts as artifacts;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const HELLO: &str = "Hello from Flint!\n";
const PLAIN: &str = "Hello from plain wasi:http!\n";

/// `name` with version 1 = hello and version 2 = wasi-hello (visibly different).
async fn two_versions(server: &Server, name: &str) {
    server.deploy(name, artifacts::HELLO).await;
    server.deploy(name, artifacts::WASI_HELLO).await;
}

async fn post(server: &Server, path: &str, body: Value) -> (u16, Value) {
    let response = server
        .http
        .post(server.at(path))
        .json(&body)
        .send()
        .await
        .unwrap();
    (
        response.status().as_u16(),
        response.json().await.unwrap_or(Value::Null),
    )
}

async fn put(server: &Server, path: &str, body: Value) -> (u16, Value) {
    let response = server
        .http
        .put(server.at(path))
        .json(&body)
        .send()
        .await
        .unwrap();
    (
        response.status().as_u16(),
        response.json().await.unwrap_or(Value::Null),
    )
}

/// Calls `path` and returns the version that answered.
async fn version_of(server: &Server, path: &str, headers: &[(&str, &str)]) -> u32 {
    let mut request = server.http.get(server.at(path));
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.headers()["x-flint-version"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn alias_switches_under_load_fail_nothing_and_never_serve_a_stale_version() {
    let dir = tempfile::tempdir().unwrap();
    let server = Arc::new(Server::start(&dir));
    two_versions(&server, "bg").await;
    assert_eq!(
        post(&server, "/v1/functions/bg/release", json!({"to": 1}))
            .await
            .0,
        200
    );
    let t0 = Instant::now();
    // (sent, acked, version) of every switch; requests (start, end, version).
    let switches: Arc<Mutex<Vec<(Duration, Duration, u32)>>> =
        Arc::new(Mutex::new(vec![(Duration::ZERO, Duration::ZERO, 1)]));
    let requests: Arc<Mutex<Vec<(Duration, Duration, u32)>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..6)
        .map(|_| {
            let (server, requests, stop) = (server.clone(), requests.clone(), stop.clone());
            tokio::spawn(async move {
                for _ in 0..3000 {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    let start = t0.elapsed();
                    let response = server.http.get(server.at("/fn/bg/")).send().await.unwrap();
                    let status = response.status();
                    let version: u32 = response.headers()["x-flint-version"]
                        .to_str()
                        .unwrap()
                        .parse()
                        .unwrap();
                    let body = response.text().await.unwrap();
                    assert_eq!(status, 200, "{body}");
                    assert_eq!(body, if version == 1 { HELLO } else { PLAIN });
                    requests
                        .lock()
                        .unwrap()
                        .push((start, t0.elapsed(), version));
                }
            })
        })
        .collect();
    for to in [2, 1, 2, 1, 2] {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let sent = t0.elapsed();
        assert_eq!(
            post(&server, "/v1/functions/bg/release", json!({"to": to}))
                .await
                .0,
            200
        );
        switches.lock().unwrap().push((sent, t0.elapsed(), to));
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let switches = switches.lock().unwrap();
    let requests = requests.lock().unwrap();
    assert!(requests.len() > 100, "{} requests", requests.len());
    for &(start, end, version) in requests.iter() {
        // The target in force when the request started, plus any switch
        // that was under way during it.
        let at_start = switches.iter().rfind(|s| s.1 <= start).unwrap().2;
        let during: HashSet<u32> = switches
            .iter()
            .filter(|s| s.0 < end && s.1 > start)
            .map(|s| s.2)
            .collect();
        assert!(
            version == at_start || during.contains(&version),
            "request {start:?}..{end:?} got v{version}"
        );
    }
}

#[tokio::test]
async fn weighted_splits_sticky_callers_and_header_rules() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    two_versions(&server, "split").await;
    let (status, _) = put(
        &server,
        "/v1/functions/split/aliases/prod",
        json!({"routes": [{"version": 1, "weight": 70}, {"version": 2, "weight": 30}]}),
    )
    .await;
    assert_eq!(status, 200);
    let mut twos = 0;
    for _ in 0..1000 {
        if version_of(&server, "/fn/split@prod/", &[]).await == 2 {
            twos += 1;
        }
    }
    // 30% of 1000 with a tolerance of about 3.5 standard deviations.
    assert!(
        (250..=350).contains(&twos),
        "{twos} of 1000 went to the 30% version"
    );

    put(
        &server,
        "/v1/functions/split/aliases/sticky",
        json!({"routes": [{"version": 1, "weight": 50}, {"version": 2, "weight": 50}], "sticky": {"header": "x-user"}}),
    )
    .await;
    let mut seen = HashSet::new();
    for user in 0..20 {
        let user = format!("user-{user}");
        let first = version_of(&server, "/fn/split@sticky/", &[("x-user", &user)]).await;
        for _ in 0..5 {
            assert_eq!(
                version_of(&server, "/fn/split@sticky/", &[("x-user", &user)]).await,
                first
            );
        }
        seen.insert(first);
    }
    assert_eq!(seen.len(), 2, "20 users should land on both versions");
    put(
        &server,
        "/v1/functions/split/aliases/cookie",
        json!({"routes": [{"version": 1, "weight": 50}, {"version": 2, "weight": 50}], "sticky": {"cookie": "uid"}}),
    )
    .await;
    let first = version_of(
        &server,
        "/fn/split@cookie/",
        &[("cookie", "theme=dark; uid=42")],
    )
    .await;
    for _ in 0..10 {
        assert_eq!(
            version_of(
                &server,
                "/fn/split@cookie/",
                &[("cookie", "uid=42; theme=dark")]
            )
            .await,
            first
        );
    }

    put(
        &server,
        "/v1/functions/split/aliases/beta",
        json!({"version": 1, "rules": [{"header": "x-beta", "value": "1", "version": 2}]}),
    )
    .await;
    for _ in 0..10 {
        assert_eq!(
            version_of(&server, "/fn/split@beta/", &[("x-beta", "1")]).await,
            2
        );
        assert_eq!(version_of(&server, "/fn/split@beta/", &[]).await, 1);
    }

    // Bad targets are refused and change nothing.
    for (body, needle) in [
        (
            json!({"routes": [{"version": 1, "weight": 60}, {"version": 2, "weight": 30}]}),
            "sum to 90",
        ),
        (json!({"version": 9}), "version 9"),
        (json!({"version": 1, "routes": []}), "either"),
    ] {
        let (status, error) = put(&server, "/v1/functions/split/aliases/prod", body).await;
        assert_eq!(status, 400, "{error}");
        assert!(
            error["error"]["message"].as_str().unwrap().contains(needle),
            "{error}"
        );
    }
    for bad in ["123", "latest", "Prod"] {
        let (status, _) = put(
            &server,
            &format!("/v1/functions/split/aliases/{bad}"),
            json!({"version": 1}),
        )
        .await;
        assert_eq!(status, 400, "{bad}");
    }
    let (status, body) = server.get("/fn/split@nope/").await;
    assert_error(status, &body, 404, "alias_not_found");
    assert_eq!(version_of(&server, "/fn/split@latest/", &[]).await, 2);
    assert_eq!(version_of(&server, "/fn/split@1/", &[]).await, 1);
}

#[tokio::test]
async fn release_rollback_and_history() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    two_versions(&server, "rb").await;
    // Plain calls follow latest until the first release.
    assert_eq!(version_of(&server, "/fn/rb/", &[]).await, 2);
    post(
        &server,
        "/v1/functions/rb/release",
        json!({"to": 1, "reason": "first"}),
    )
    .await;
    assert_eq!(version_of(&server, "/fn/rb/", &[]).await, 1);
    post(&server, "/v1/functions/rb/release", json!({"to": 2})).await;
    assert_eq!(version_of(&server, "/fn/rb/", &[]).await, 2);
    let (status, aliases) = post(
        &server,
        "/v1/functions/rb/rollback",
        json!({"reason": "bad deploy"}),
    )
    .await;
    assert_eq!(status, 200, "{aliases}");
    assert_eq!(aliases["aliases"]["prod"]["routes"][0]["version"], 1);
    assert_eq!(version_of(&server, "/fn/rb/", &[]).await, 1);
    let response = server
        .http
        .post(server.at("/v1/functions/rb/release"))
        .header("x-flint-actor", "ada")
        .json(&json!({"to": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (_, history) = server.get_json("/v1/functions/rb/history").await;
    let actions: Vec<&str> = history["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["release", "release", "rollback", "release"]);
    let rollback = &history["history"][2];
    assert_eq!(rollback["reason"], "bad deploy");
    assert_eq!(rollback["from"]["routes"][0]["version"], 2);
    assert_eq!(rollback["to"]["routes"][0]["version"], 1);
    assert_eq!(history["history"][3]["actor"], "ada");
    let (status, _) = post(&server, "/v1/functions/rb/release", json!({"to": 7})).await;
    assert_eq!(status, 400);
}

/// Calls `path` until the canary leaves `running` (bounded); returns its state.
async fn drive_traffic_until_done(server: &Server, name: &str, path: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for _ in 0..20 {
            let _ = server
                .http
                .get(server.at(path))
                .send()
                .await
                .unwrap()
                .bytes()
                .await;
        }
        let (_, status) = server
            .get_json(&format!("/v1/functions/{name}/canary"))
            .await;
        if status["status"] != "running" {
            return status;
        }
        assert!(Instant::now() < deadline, "canary still running: {status}");
    }
}

#[tokio::test]
async fn a_failing_canary_rolls_back_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    server.deploy("cn", artifacts::HELLO).await;
    server.deploy("cn", artifacts::PROBE).await; // answers /status?code=500 with a 500
    post(&server, "/v1/functions/cn/release", json!({"to": 1})).await;
    let (status, started) = post(
        &server,
        "/v1/functions/cn/canary",
        json!({"to": 2, "steps": [50, 100], "interval_ms": 2000, "max_error_rate": 0.01}),
    )
    .await;
    assert_eq!(status, 202, "{started}");
    let (status, _) = post(&server, "/v1/functions/cn/release", json!({"to": 2})).await;
    assert_eq!(status, 409, "no release while a canary runs");
    let done = drive_traffic_until_done(&server, "cn", "/fn/cn/status?code=500").await;
    assert_eq!(done["status"], "rolled_back", "{done}");
    assert!(
        done["reason"].as_str().unwrap().contains("error rate"),
        "{done}"
    );
    let (_, aliases) = server.get_json("/v1/functions/cn/aliases").await;
    assert_eq!(
        aliases["aliases"]["prod"],
        json!({"routes": [{"version": 1, "weight": 100}]})
    );
    assert_eq!(version_of(&server, "/fn/cn/", &[]).await, 1);
    let (_, history) = server.get_json("/v1/functions/cn/history").await;
    let last = history["history"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["action"], "canary_rolled_back", "{history}");
    assert!(
        last["reason"].as_str().unwrap().contains("error rate"),
        "{last}"
    );
}

#[tokio::test]
async fn a_healthy_canary_completes_the_release() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    two_versions(&server, "ok").await;
    post(&server, "/v1/functions/ok/release", json!({"to": 1})).await;
    let (status, _) = post(
        &server,
        "/v1/functions/ok/canary",
        json!({"to": 2, "steps": [25, 100], "interval_ms": 300, "max_error_rate": 0.01, "max_p99_ms": 5000.0}),
    )
    .await;
    assert_eq!(status, 202);
    let done = drive_traffic_until_done(&server, "ok", "/fn/ok/").await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["reports"].as_array().unwrap().len(), 2, "{done}");
    assert_eq!(version_of(&server, "/fn/ok/", &[]).await, 2);
    let (status, body) = server.get("/v1/functions/ok/canary").await;
    assert_eq!(status, 200, "{body}");
    // Rolling back undoes the whole canary.
    let (status, _) = post(&server, "/v1/functions/ok/rollback", json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(version_of(&server, "/fn/ok/", &[]).await, 1);
}

/// A call the function's gate refuses counts as an error of the version it
/// was routed to, as it does in the metrics and `flint info`.
#[tokio::test]
async fn an_overloaded_call_counts_against_its_version_in_the_canary() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    server.deploy("ov", artifacts::HELLO).await;
    server.deploy("ov", artifacts::PROBE).await;
    post(&server, "/v1/functions/ov/release", json!({"to": 1})).await;
    server
        .configure("ov", json!({"max_concurrency": 1, "max_queue": 0}))
        .await;
    let (status, started) = post(
        &server,
        "/v1/functions/ov/canary",
        json!({"to": 2, "steps": [50, 100], "interval_ms": 1500, "max_error_rate": 1.0}),
    )
    .await;
    assert_eq!(status, 202, "{started}");
    let slow = server.http.get(server.at("/fn/ov@2/sleep?ms=800")).send();
    let rejected = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut statuses = Vec::new();
        for _ in 0..10 {
            let response = server.http.get(server.at("/fn/ov/")).send().await.unwrap();
            statuses.push(response.status().as_u16());
        }
        statuses
    };
    let (slow, statuses) = tokio::join!(slow, rejected);
    assert_eq!(slow.unwrap().status(), 200);
    assert_eq!(statuses, [429; 10]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let report = loop {
        let (_, canary) = server.get_json("/v1/functions/ov/canary").await;
        if let Some(first) = canary["reports"].get(0) {
            break first.clone();
        }
        assert!(Instant::now() < deadline, "no step report: {canary}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let count = |side: &str, i: usize| report[side][i].as_u64().unwrap();
    assert_eq!(count("canary", 1) + count("stable", 1), 10, "{report}");
    assert_eq!(count("canary", 0) + count("stable", 0), 11, "{report}");
    let (_, info) = server.get_json("/v1/functions/ov").await;
    assert_eq!(info["stats"]["errors"], 10, "{info}");
}

#[tokio::test]
async fn shadow_runs_compare_without_touching_live_calls() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    server.deploy("sh", artifacts::HELLO).await;
    server.deploy("sh", artifacts::PROBE).await;
    post(&server, "/v1/functions/sh/release", json!({"to": 1})).await;
    let port = server.url.rsplit(':').next().unwrap().to_string();
    // Live traffic may call the admin port; the shadow candidate may not.
    server
        .configure(
            "sh",
            json!({"allowed_outbound_hosts": [format!("127.0.0.1:{port}")]}),
        )
        .await;
    let outbound = format!("/outbound?url=http://127.0.0.1:{port}/healthz");
    assert_eq!(
        server.get(&format!("/fn/sh@2{outbound}")).await.1,
        "upstream status 200"
    );

    let (status, report) = put(&server, "/v1/functions/sh/shadow", json!({"candidate": 2})).await;
    assert_eq!(status, 200, "{report}");
    for _ in 0..10 {
        let (status, body) = server.get(&format!("/fn/sh{outbound}")).await;
        assert_eq!(
            (status.as_u16(), body.as_str()),
            (200, HELLO),
            "the caller gets the live answer"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let report = loop {
        let (_, report) = server.get_json("/v1/functions/sh/shadow").await;
        if report["mismatched"].as_u64().unwrap() + report["errors"].as_u64().unwrap() >= 10 {
            break report;
        }
        assert!(Instant::now() < deadline, "{report}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(report["mismatched"], 10, "{report}");
    let sample = &report["samples"][0];
    assert_eq!(sample["live_status"], 200, "{sample}");
    assert_eq!(sample["candidate_status"], 502, "{sample}");
    assert!(
        sample["candidate_body"]
            .as_str()
            .unwrap()
            .contains("HttpRequestDenied"),
        "{sample}"
    );
    let (_, metrics) = server.get("/metrics").await;
    assert!(
        metrics.contains(r#"flint_shadow_comparisons_total{function="sh",result="mismatch"} 10"#),
        "{metrics}"
    );

    // Same answers match; ignored JSON fields do not count.
    server.deploy("same", artifacts::ECHO).await;
    server.deploy("same", artifacts::PROBE).await;
    server.deploy("same", artifacts::ECHO).await; // same bytes as v1, not the latest: a new version
    let (_, info) = server.get_json("/v1/functions/same").await;
    assert_eq!(info["latest_version"], 3);
    post(&server, "/v1/functions/same/release", json!({"to": 1})).await;
    put(
        &server,
        "/v1/functions/same/shadow",
        json!({"candidate": 3}),
    )
    .await;
    for _ in 0..5 {
        server
            .http
            .post(server.at("/fn/same/x"))
            .body(r#"{"message":"m"}"#)
            .send()
            .await
            .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, report) = server.get_json("/v1/functions/same/shadow").await;
        if report["matched"] == 5 {
            assert_eq!(report["mismatched"], 0);
            break;
        }
        assert!(Instant::now() < deadline, "{report}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let response = server
        .http
        .delete(server.at("/v1/functions/same/shadow"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
}

#[tokio::test]
async fn release_state_survives_a_restart_and_an_interrupted_canary_rolls_back() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    two_versions(&server, "keep").await;
    post(&server, "/v1/functions/keep/release", json!({"to": 1})).await;
    put(
        &server,
        "/v1/functions/keep/aliases/beta",
        json!({"version": 1, "rules": [{"header": "x-beta", "value": "1", "version": 2}]}),
    )
    .await;
    put(
        &server,
        "/v1/functions/keep/shadow",
        json!({"candidate": 2, "sample_percent": 50}),
    )
    .await;
    let (status, _) = post(
        &server,
        "/v1/functions/keep/canary",
        json!({"to": 2, "steps": [50, 100], "interval_ms": 600000, "max_error_rate": 0.5}),
    )
    .await;
    assert_eq!(status, 202);
    // Wait until the canary has moved the alias to its first split.
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.get_json("/v1/functions/keep/aliases").await.1["aliases"]["prod"]["routes"]
        .as_array()
        .unwrap()
        .len()
        != 2
    {
        assert!(
            Instant::now() < deadline,
            "the canary never took its first step"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill();

    let server = Server::start(&dir);
    let (_, aliases) = server.get_json("/v1/functions/keep/aliases").await;
    assert_eq!(aliases["default"], "prod", "{aliases}");
    assert_eq!(
        aliases["aliases"]["prod"],
        json!({"routes": [{"version": 1, "weight": 100}]}),
        "{aliases}"
    );
    assert_eq!(
        version_of(&server, "/fn/keep@beta/", &[("x-beta", "1")]).await,
        2
    );
    let (_, shadow) = server.get_json("/v1/functions/keep/shadow").await;
    assert_eq!(shadow["shadow"]["sample_percent"], 50);
    let (_, canary) = server.get_json("/v1/functions/keep/canary").await;
    assert_eq!(canary["status"], "rolled_back", "{canary}");
    assert!(
        canary["reason"].as_str().unwrap().contains("restarted"),
        "{canary}"
    );
    let (_, history) = server.get_json("/v1/functions/keep/history").await;
    let actions: Vec<&str> = history["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"canary_started") && actions.ends_with(&["canary_rolled_back"]),
        "{actions:?}"
    );
}
