//! The metrics contract: every failure kind counts once, as an error, in the
//! metrics and in `flint info`, and a real scrape lints clean with
//! Prometheus's own `promtool`.

use crate::support::{Server, assert_error};
use flint_test_artifacts as artifacts;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::io::Write as _;
use std::process::{Command, Stdio};

/// The value of one sample of the scrape, 0 when absent.
fn sample(scrape: &str, name: &str, labels: &str) -> u64 {
    let series = format!("{name}{{{labels}}} ");
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(&series))
        .map_or(0, |v| v.trim().parse().unwrap())
}

async fn errors(server: &Server, function: &str) -> (u64, u64) {
    let info: Value = server.info(function).await;
    (
        info["stats"]["invocations"].as_u64().unwrap(),
        info["stats"]["errors"].as_u64().unwrap(),
    )
}

#[tokio::test]
async fn every_failure_kind_counts_once_as_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    server.deploy("probe", artifacts::PROBE).await;
    server.deploy("hostile", artifacts::HOSTILE).await;
    server.deploy("busy", artifacts::PROBE).await;
    server
        .configure("probe", json!({"timeout_ms": 300, "memory_mb": 32}))
        .await;
    server
        .configure("busy", json!({"max_concurrency": 1, "max_queue": 0}))
        .await;
    let cases: [(&str, &str, u16, &str); 6] = [
        ("probe", "/trap", 500, "trap"),
        ("probe", "/spin", 504, "timeout"),
        ("probe", "/alloc?mb=64", 500, "memory_limit_exceeded"),
        ("hostile", "/silent", 500, "no_response"),
        ("hostile", "/error-code", 502, "function_error"),
        ("busy", "overload", 429, "overloaded"),
    ];
    for (function, path, status, code) in cases {
        let (_, scrape) = server.get("/metrics").await;
        let labels = format!("function=\"{function}\",version=\"1\",outcome=\"{code}\"");
        let before_metric = sample(&scrape, "flint_invocations_total", &labels);
        let (calls, errs) = errors(&server, function).await;
        let (got, body) = if path == "overload" {
            // The only slot is taken and nothing may queue.
            let busy = server.spawn_get("/fn/busy/sleep?ms=1500");
            server
                .wait_for_info("busy", "the slot taken", |i| i["stats"]["in_flight"] == 1)
                .await;
            let refused = server.get("/fn/busy/counter").await;
            assert_eq!(busy.await.unwrap().0, StatusCode::OK);
            refused
        } else {
            server.get(&format!("/fn/{function}{path}")).await
        };
        assert_error(got, &body, status, code);
        let (_, scrape) = server.get("/metrics").await;
        assert_eq!(
            sample(&scrape, "flint_invocations_total", &labels),
            before_metric + 1,
            "{code} counted once in the metrics"
        );
        let extra_ok = u64::from(path == "overload"); // the call that held the slot
        assert_eq!(
            errors(&server, function).await,
            (calls + 1 + extra_ok, errs + 1),
            "{code} counted once in flint info, as an error"
        );
        // The function serves the next request.
        let (got, _) = server.get(&format!("/fn/{function}/counter")).await;
        assert!(
            got.is_success() || got == StatusCode::NOT_FOUND,
            "{function}: {got}"
        );
    }
}

#[tokio::test]
async fn a_scrape_after_every_outcome_lints_clean() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    server.deploy("probe", artifacts::PROBE).await;
    server.deploy("hostile", artifacts::HOSTILE).await;
    server
        .configure("probe", json!({"timeout_ms": 300, "memory_mb": 32}))
        .await;
    for path in [
        "/fn/probe/counter",
        "/fn/probe/trap",
        "/fn/probe/spin",
        "/fn/probe/alloc?mb=64",
        "/fn/hostile/silent",
        "/fn/hostile/error-code",
    ] {
        server.get(path).await;
    }
    // A schedule's firings are in the scrape too.
    let (status, body) = server
        .post(
            "/v1/functions/probe/schedules",
            json!({"cron": "* * * * * *", "path": "/counter"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !server
        .get("/metrics")
        .await
        .1
        .contains("flint_schedule_firings_total{")
    {
        assert!(std::time::Instant::now() < deadline, "no schedule fired");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let response = server.http.get(server.at("/metrics")).send().await.unwrap();
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let scrape = response.text().await.unwrap();
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package; scripts/env.sh's ensure_promtool)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(scrape.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}\n{scrape}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Prometheus itself asks for OpenMetrics and gets it.
    let open = server
        .http
        .get(server.at("/metrics"))
        .header(
            "accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        )
        .send()
        .await
        .unwrap();
    assert!(
        open.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    assert!(open.text().await.unwrap().ends_with("# EOF\n"));
}
