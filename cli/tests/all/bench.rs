//! `flint bench`: every start kind of real components measured in the real
//! server, the table and `--json` from one report, failures that end a run
//! instead of hanging it, the function's limits and live state untouched, and
//! the HTML page in a real Chromium.

use crate::support::{Server, assert_error, flint, render_in_chromium};
use flint_cli::commands::bench::human_us;
use flint_test_artifacts as artifacts;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Runs `flint bench ARGS --json`; returns the report and whether it exited 0.
fn bench_json(server: &Server, args: &[&str]) -> (Value, bool, String) {
    let mut all = vec!["bench"];
    all.extend_from_slice(args);
    all.push("--json");
    let out = flint(&server.url, &all);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "not JSON: {}\n{stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    (report, out.status.success(), stderr)
}

fn kind<'a>(report: &'a Value, kind: &str) -> &'a Value {
    report["bench"]["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in {report}"))
}

fn p50(report: &Value, of: &str) -> f64 {
    kind(report, of)["p50_us"].as_f64().unwrap()
}

#[tokio::test]
async fn every_start_kind_of_rust_and_javascript_functions_is_measured() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    let subjects: [(&str, &str, &[&str]); 4] = [
        ("hello", artifacts::HELLO, &["--samples", "100"]),
        ("wasi-hello", artifacts::WASI_HELLO, &["--samples", "100"]),
        (
            "echo",
            artifacts::ECHO,
            &[
                "--samples",
                "100",
                "--data",
                r#"{"message": "hi"}"#,
                "-H",
                "content-type: application/json",
            ],
        ),
        ("js", artifacts::JS_HELLO, &["--samples", "40"]),
    ];
    for (name, component, args) in subjects {
        server.deploy(name, component).await;
        let mut all = vec![name];
        all.extend_from_slice(args);
        let (report, ok, stderr) = bench_json(&server, &all);
        assert!(ok, "{name}: {stderr}");
        let samples: u64 = args[1].parse().unwrap();
        let bench = &report["bench"];
        assert_eq!(bench["failure"], Value::Null, "{name}: {report}");
        assert_eq!(bench["response"]["status"], 200, "{name}: {report}");
        assert!(bench["compile_ms"].as_f64().unwrap() > 0.0, "{name}");
        for of in ["disk", "cold", "warm", "reuse"] {
            let k = kind(&report, of);
            assert_eq!(k["samples"].as_u64(), Some(samples), "{name} {of}");
            assert!(
                k["memory_bytes"].as_u64().unwrap() >= 64 << 10,
                "{name} {of}"
            );
            let [p50, p90, p99] = ["p50_us", "p90_us", "p99_us"].map(|p| k[p].as_f64().unwrap());
            assert!(0.0 < p50 && p50 <= p90 && p90 <= p99, "{name} {of}: {k}");
        }
        // Each kind does less than the one before it, so it takes no longer,
        // give or take the noise of a busy machine (the kinds are sampled in
        // turn, so noise weighs on all alike). Warm and reuse differ only by
        // the fresh instance's first touches of its memory, little beside a
        // guest's own work (echo parses JSON): reuse may come out as slow as
        // warm, but never near a cold start.
        let (disk, cold, warm, reuse) = (
            p50(&report, "disk"),
            p50(&report, "cold"),
            p50(&report, "warm"),
            p50(&report, "reuse"),
        );
        // A warm JavaScript instance saves nothing over a cold one (both pay
        // the first run of a fresh heap, see benches/README.md), so which of
        // the two comes out faster is noise.
        let noise = 1.10;
        let reuse_noise = (warm * 0.1).max((cold - warm) * 0.25);
        let warm_saves = name != "js";
        assert!(
            disk * noise >= cold
                && (!warm_saves || cold * noise >= warm)
                && warm + reuse_noise >= reuse,
            "{name}: disk {disk} cold {cold} warm {warm} reuse {reuse} µs"
        );
        assert_eq!(bench["reuse_check"]["verdict"], "identical", "{name}");
        // Reuse saves hello most of its start: the bench advises it, as
        // tested safe.
        if name == "hello" {
            assert!(
                report["advice"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|a| a.as_str().unwrap().contains("survives reuse")),
                "{}",
                report["advice"]
            );
        }
    }
}

#[tokio::test]
async fn the_table_shows_what_json_reports() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    server.deploy("hello", artifacts::HELLO).await;
    let (report, ok, stderr) = bench_json(&server, &["hello", "--samples", "30"]);
    assert!(ok, "{stderr}");
    let saved = dir.path().join("report.json");
    std::fs::write(&saved, report.to_string()).unwrap();

    let out = flint(&server.url, &["bench", "--report", saved.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let table = String::from_utf8(out.stdout).unwrap();
    for k in report["bench"]["kinds"].as_array().unwrap() {
        let name = k["kind"].as_str().unwrap();
        let row = table
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no {name} row in\n{table}"));
        let figures = ["p50_us", "p90_us", "p99_us"].map(|p| human_us(k[p].as_f64().unwrap()));
        let mut at = 0;
        for figure in &figures {
            at += row[at..]
                .find(figure.as_str())
                .unwrap_or_else(|| panic!("{figure} not in order in {row:?}"));
        }
        assert!(row.contains(&format!(" {} ", k["samples"])), "{row}");
    }
    let compile = human_us(report["bench"]["compile_ms"].as_f64().unwrap() * 1000.0);
    assert!(table.contains(&compile), "{compile} in\n{table}");
    for advice in report["advice"].as_array().unwrap() {
        assert!(
            table.contains(advice.as_str().unwrap()),
            "{advice} in\n{table}"
        );
    }
    // --json of a saved report prints it unchanged.
    let again = flint(
        &server.url,
        &["bench", "--report", saved.to_str().unwrap(), "--json"],
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&again.stdout).unwrap(),
        report
    );
}

#[tokio::test]
async fn a_function_that_traps_or_times_out_ends_the_bench_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    server.deploy("probe", artifacts::PROBE).await;
    server.configure("probe", json!({"timeout_ms": 400})).await;
    for (path, code) in [("/trap", "trap"), ("/spin", "timeout")] {
        let started = Instant::now();
        let (report, ok, stderr) = bench_json(&server, &["probe", "--path", path]);
        let took = started.elapsed();
        assert!(!ok, "{path}: a failed bench exits non-zero");
        assert!(stderr.contains("failed under bench"), "{stderr}");
        let bench = &report["bench"];
        assert_eq!(bench["failure"]["code"], code, "{path}: {report}");
        assert_eq!(bench["stopped_by"], "failure");
        // One failed sample, not 200 of them.
        assert!(took < Duration::from_secs(10), "{path} took {took:?}");
        assert_eq!(
            server.get("/fn/probe/counter").await,
            (StatusCode::OK, "1".into())
        );
    }
    // The table says so too.
    let out = flint(&server.url, &["bench", "probe", "--path", "/trap"]);
    assert!(!out.status.success());
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("FAILED"), "{table}");
}

#[tokio::test]
async fn the_bench_stays_within_max_concurrency_and_leaves_live_state_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    server.deploy("probe", artifacts::PROBE).await;
    server
        .configure(
            "probe",
            json!({"min_instances": 1, "max_concurrency": 1, "max_queue": 1, "queue_timeout_ms": 200}),
        )
        .await;
    server
        .wait_for_info("probe", "a warm instance", |i| {
            i["stats"]["warm_instances"] == 1
        })
        .await;
    let (_, config_before) = server.get_json("/v1/functions/probe/config").await;

    // A live call holds the function's only slot: the bench may not take
    // another (it waits in the queue, then gives up).
    let live = server.spawn_get("/fn/probe/sleep?ms=2000");
    server
        .wait_for_info("probe", "the live call in flight", |i| {
            i["stats"]["in_flight"] == 1
        })
        .await;
    let (report, ok, _) = bench_json(&server, &["probe", "--path", "/counter"]);
    assert!(!ok);
    assert_eq!(report["bench"]["failure"]["code"], "overloaded", "{report}");
    assert_eq!(
        live.await.unwrap(),
        (StatusCode::OK, "slept 2000 ms".into())
    );
    let before = server.info("probe").await;

    // Free again: the bench runs, and a load run over HTTP gets one
    // connection, as max_concurrency allows.
    let (report, ok, stderr) = bench_json(
        &server,
        &[
            "probe",
            "--path",
            "/counter",
            "--samples",
            "20",
            "--load",
            "--duration",
            "1s",
            "--connections",
            "4",
        ],
    );
    assert!(ok, "{stderr}");
    assert!(stderr.contains("1 connections"), "{stderr}");
    let load = &report["load"];
    assert_eq!(load["connections"], 1);
    for mode in load["modes"].as_array().unwrap() {
        assert!(mode["requests"].as_u64().unwrap() > 0, "{mode}");
        assert_eq!(mode["errors"], 0, "{mode}");
    }
    // /counter counts per instance: a reused instance answers 2, 3, ...
    let check = &report["bench"]["reuse_check"];
    assert_eq!(check["verdict"], "differs", "{check}");
    assert!(
        report["advice"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| !a.as_str().unwrap().contains("survives reuse")),
        "{}",
        report["advice"]
    );

    let after = server.info("probe").await;
    assert_eq!(
        server.get_json("/v1/functions/probe/config").await.1,
        config_before
    );
    for live_counter in ["invocations", "errors", "cold_starts", "warm_starts"] {
        assert_eq!(
            after["stats"][live_counter], before["stats"][live_counter],
            "{live_counter}: bench calls are not live calls"
        );
    }
    assert_eq!(after["stats"]["warm_instances"], 1, "{after}");
    let bench = &after["stats"]["bench"];
    assert!(bench["invocations"].as_u64().unwrap() > 80, "{bench}");
    let (_, metrics) = server.get("/metrics").await;
    assert!(
        metrics.contains("flint_bench_invocations_total{function=\"probe\",result=\"ok\"}"),
        "{metrics}"
    );
    // The live pools serve as before: a fresh instance counts from one.
    assert_eq!(server.get("/fn/probe/counter").await.1, "1");
}

#[tokio::test]
async fn the_html_report_loads_in_a_real_browser() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    server.deploy("hello", artifacts::HELLO).await;
    let page = dir.path().join("bench.html");
    let out = flint(
        &server.url,
        &[
            "bench",
            "hello",
            "--samples",
            "30",
            "--load",
            "--duration",
            "1s",
            "--html",
            page.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        !html.contains("http://") || html.contains(&server.url),
        "no outside URL"
    );
    let rendered = render_in_chromium(&page);
    assert_eq!(rendered.console_errors, Vec::<String>::new());
    let dom = rendered.dom;
    assert!(dom.contains("id=\"latency-chart\""), "{dom}");
    assert!(dom.contains("id=\"throughput-chart\""), "{dom}");
    for of in ["disk", "cold", "warm", "reuse"] {
        assert!(dom.contains(&format!("data-kind=\"{of}\"")), "{of}");
    }
    for mode in ["fresh", "reuse"] {
        assert!(dom.contains(&format!("data-mode=\"{mode}\"")), "{mode}");
    }
    assert!(dom.contains("<ul id=\"advice\">"), "{dom}");
}

#[tokio::test]
async fn a_function_that_calls_out_is_benched_only_when_confirmed() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    server.deploy("probe", artifacts::PROBE).await;
    server
        .configure(
            "probe",
            json!({"allowed_outbound_hosts": ["api.example.com"]}),
        )
        .await;
    let out = flint(&server.url, &["bench", "probe", "--path", "/counter"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("api.example.com"), "{stderr}");
    assert!(stderr.contains("--yes"), "{stderr}");
    let (_, info) = server.get_json("/v1/functions/probe").await;
    assert_eq!(info["stats"]["bench"]["invocations"], 0, "nothing ran");

    let (report, ok, stderr) = bench_json(
        &server,
        &["probe", "--path", "/counter", "--yes", "--samples", "5"],
    );
    assert!(ok, "{stderr}");
    assert_eq!(report["bench"]["failure"], Value::Null);
}

#[tokio::test]
async fn bad_bench_requests_get_clear_errors_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    server.deploy("hello", artifacts::HELLO).await;
    server.deploy("hello", artifacts::WASI_HELLO).await;
    let (status, body) = {
        let response = server
            .http
            .put(server.at("/v1/functions/hello/aliases/prod"))
            .json(&json!({"routes": [{"version": 1, "weight": 50}, {"version": 2, "weight": 50}]}))
            .send()
            .await
            .unwrap();
        (response.status(), response.text().await.unwrap())
    };
    assert!(status.is_success(), "{body}");

    let cases: [(Value, u16, &str, &str); 11] = [
        (
            json!({"samples": 0}),
            400,
            "bad_request",
            "samples must be 1..=2000",
        ),
        (
            json!({"samples": 5000}),
            400,
            "bad_request",
            "samples must be 1..=2000",
        ),
        (json!({"max_seconds": 0}), 400, "bad_request", "max_seconds"),
        (json!({"max_seconds": 61}), 400, "bad_request", "at most 60"),
        (
            json!({"max_seconds": -1}),
            400,
            "bad_request",
            "max_seconds",
        ),
        (
            json!({"path": "items"}),
            400,
            "bad_request",
            "absolute path",
        ),
        (
            json!({"method": "NOT A METHOD"}),
            400,
            "bad_request",
            "not an HTTP method",
        ),
        (
            json!({"body_base64": "***"}),
            400,
            "bad_request",
            "not base64",
        ),
        (json!({"bogus": 1}), 400, "bad_request", "unknown field"),
        (json!({"target": "prod"}), 400, "bad_request", "hello@1"),
        (
            json!({"target": "9"}),
            404,
            "version_not_found",
            "no version 9",
        ),
    ];
    for (request, status, code, says) in cases {
        let (got, body) = server
            .post("/v1/functions/hello/bench", request.clone())
            .await;
        let message = assert_error(got, &body, status, code);
        assert!(message.contains(says), "{request}: {message}");
        assert_eq!(server.get("/fn/hello@1/").await.0, StatusCode::OK);
    }
    let (got, body) = server.post("/v1/functions/hello/bench", "{not json").await;
    assert_error(got, &body, 400, "bad_request");
    let (got, body) = server.post("/v1/functions/nope/bench", json!({})).await;
    assert_error(got, &body, 404, "function_not_found");
    let (_, info) = server.get_json("/v1/functions/hello").await;
    assert_eq!(info["stats"]["bench"]["invocations"], 0, "nothing ran");
}
