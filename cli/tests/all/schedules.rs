//! Cron schedules against the real server: ticks at whole seconds as
//! CloudEvents with the schedule's body, once per tick across a restart,
//! the catch-up policies, every malformed input and limit, the CLI and the
//! manifest.
//!
//! What a function receives is read back three ways: `probe`'s `/headers`
//! and `/body` answer with the request, and a run keeps the start of the
//! answer; `queue-probe` answers 200 only to a CloudEvent and logs `begin
//! <ce-id> ...` for each tick it received; `order-processor` logs the order
//! of the JSON body it received with the event's id.

use crate::support::{Server, assert_error, flint};
use flint_spec::schedule::rfc3339;
use flint_test_artifacts as artifacts;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::process::Output;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a test waits for ticks that are due.
const WAIT: Duration = Duration::from_secs(60);

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

async fn add(server: &Server, name: &str, body: Value) -> (StatusCode, String) {
    server
        .post(&format!("/v1/functions/{name}/schedules"), body)
        .await
}

async fn added(server: &Server, name: &str, body: Value) -> Value {
    let (status, text) = add(server, name, body).await;
    assert_eq!(status, StatusCode::CREATED, "{text}");
    serde_json::from_str(&text).unwrap()
}

async fn schedule(server: &Server, name: &str, id: &str) -> Value {
    let (status, body) = server
        .get_json(&format!("/v1/functions/{name}/schedules/{id}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Polls a schedule until `check` holds on it (bounded).
async fn wait_for(
    server: &Server,
    name: &str,
    id: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let schedule = schedule(server, name, id).await;
        if check(&schedule) {
            return schedule;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {schedule}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn runs(schedule: &Value) -> Vec<Value> {
    schedule["runs"].as_array().cloned().unwrap_or_default()
}

/// The ticks of a schedule's runs, by their `scheduled_at`.
fn ticks(schedule: &Value) -> Vec<String> {
    runs(schedule)
        .iter()
        .map(|r| r["scheduled_at"].as_str().unwrap().to_string())
        .collect()
}

/// The ce-ids the function logged (`begin <ce-id> <attempt>`), in order.
async fn logged_ids(server: &Server, name: &str) -> Vec<String> {
    let (_, logs) = server
        .get_json(&format!("/v1/functions/{name}/logs?limit=1000"))
        .await;
    logs["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["line"].as_str()?.strip_prefix("begin ").map(String::from))
        .map(|rest| rest.split_whitespace().next().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn ticks_fire_at_whole_scheduled_seconds_as_cloud_events_with_the_body() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    server.deploy("ticker", artifacts::QUEUE_PROBE).await;
    server.deploy("orders", artifacts::ORDER_PROCESSOR).await;

    let created = added(
        &server,
        "ticker",
        json!({"cron": "*/2 * * * * *", "path": "/tick", "body": "{\"mode\":\"ok\"}"}),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["function"], "ticker");
    assert_eq!(created["tz"], "UTC");
    assert_eq!(created["catch_up"], "skip");
    assert_eq!(created["runs"], json!([]));
    assert_eq!(created["last_tick"], Value::Null);
    let next = created["next_fire"].as_str().unwrap();
    assert!(next.ends_with('Z'), "{created}");

    // Three ticks arrive, each a CloudEvent the function accepted (200).
    let done = wait_for(&server, "ticker", &id, "three runs", |s| runs(s).len() >= 3).await;
    for run in runs(&done) {
        assert_eq!(run["outcome"], "ok", "{run}");
        assert_eq!(run["status"], 200, "{run}");
        assert_eq!(run["catch_up"], false, "{run}");
    }
    // The function saw `ce-id` = `<id>-<tick>`: every tick a whole even
    // second, each once, and each the `scheduled_at` (= `ce-time`) of a run.
    let seen = logged_ids(&server, "ticker").await;
    let mut seconds = BTreeSet::new();
    for ce_id in &seen {
        let (prefix, tick) = ce_id.rsplit_once('-').unwrap();
        assert_eq!(prefix, id);
        let tick: i64 = tick.parse().unwrap();
        assert_eq!(tick % 2, 0, "{ce_id} is not on the schedule");
        assert!(seconds.insert(tick), "{ce_id} arrived twice: {seen:?}");
    }
    let scheduled: BTreeSet<String> = ticks(&done).into_iter().collect();
    for tick in &scheduled {
        assert!(
            seconds.iter().any(|s| rfc3339(*s) == *tick),
            "the run of {tick} is not among the events the function saw: {seen:?}"
        );
    }
    let last_tick = done["last_tick"].as_str().unwrap();
    assert!(
        last_tick >= ticks(&done)[0].as_str(),
        "the newest run's tick is claimed: {done}"
    );

    // What the function received, as `probe` reads it back: its answer is
    // kept with each run.
    server.deploy("probe", artifacts::PROBE).await;
    let headers = added(
        &server,
        "probe",
        json!({"cron": "* * * * * *", "path": "/headers?from=cron", "body": "hello"}),
    )
    .await;
    let headers_id = headers["id"].as_str().unwrap();
    let seen = wait_for(&server, "probe", headers_id, "a run", |s| {
        !runs(s).is_empty()
    })
    .await;
    let run = &runs(&seen)[0];
    let echoed: Value = serde_json::from_str(run["response"].as_str().unwrap()).unwrap();
    assert_eq!(echoed["method"], "POST", "{echoed}");
    assert_eq!(echoed["path"], "/headers", "{echoed}");
    assert_eq!(echoed["query"], "from=cron", "{echoed}");
    let got = &echoed["headers"];
    assert_eq!(got["ce-specversion"], "1.0", "{echoed}");
    assert_eq!(got["ce-type"], "com.flint.schedule", "{echoed}");
    assert_eq!(got["ce-source"], format!("flint/schedules/{headers_id}"));
    let tick = got["ce-id"]
        .as_str()
        .unwrap()
        .strip_prefix(&format!("{headers_id}-"))
        .unwrap()
        .parse::<i64>()
        .unwrap();
    assert_eq!(
        got["ce-time"],
        rfc3339(tick),
        "ce-time is the tick: {echoed}"
    );
    assert_eq!(run["scheduled_at"], rfc3339(tick), "{run}");
    assert_eq!(got["content-type"], "text/plain; charset=utf-8");
    let body = added(
        &server,
        "probe",
        json!({"cron": "* * * * * *", "path": "/body", "body": "the body"}),
    )
    .await;
    let body_id = body["id"].as_str().unwrap();
    let seen = wait_for(&server, "probe", body_id, "a run", |s| !runs(s).is_empty()).await;
    assert_eq!(runs(&seen)[0]["response"], "the body", "{seen}");
    for id in [headers_id, body_id] {
        let response = server
            .http
            .delete(server.at(&format!("/v1/functions/probe/schedules/{id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
    }

    // The body arrives as the request body (JSON: order-processor reads it).
    let order = json!({"order_id": "tick-7", "items": [{"sku": "a", "qty": 2, "price_cents": 5}]});
    let every = added(
        &server,
        "orders",
        json!({"cron": "* * * * * *", "body": order.to_string(), "catch_up": "once"}),
    )
    .await;
    let every_id = every["id"].as_str().unwrap();
    wait_for(&server, "orders", every_id, "a run", |s| {
        !runs(s).is_empty()
    })
    .await;
    let (_, logs) = server
        .get_json("/v1/functions/orders/logs?limit=1000")
        .await;
    let line = logs["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["line"].as_str())
        .find(|l| l.starts_with("order tick-7"))
        .unwrap_or_else(|| panic!("no order logged: {logs}"))
        .to_string();
    assert!(
        line.starts_with(&format!("order tick-7 total 10 cents (event {every_id}-")),
        "{line}"
    );

    // Firings are counted by function and outcome.
    let (_, metrics) = server.get("/metrics").await;
    assert!(
        metrics.contains("flint_schedule_firings_total{function=\"ticker\",outcome=\"ok\"}"),
        "{metrics}"
    );

    // Removed, a schedule fires no more and is gone.
    let response = server
        .http
        .delete(server.at(&format!("/v1/functions/ticker/schedules/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let count = logged_ids(&server, "ticker").await.len();
    let (_, list) = server.get_json("/v1/functions/ticker/schedules").await;
    assert_eq!(list, json!({"function": "ticker", "schedules": []}));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(logged_ids(&server, "ticker").await.len(), count);

    // Deleting a function deletes its schedules: deployed again, it has none.
    let response = server
        .http
        .delete(server.at("/v1/functions/orders"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    server.deploy("orders", artifacts::ORDER_PROCESSOR).await;
    let (_, list) = server.get_json("/v1/functions/orders/schedules").await;
    assert_eq!(list["schedules"], json!([]), "{list}");
}

#[tokio::test]
async fn a_restart_fires_no_tick_twice_and_missed_ticks_follow_the_catch_up_policy() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &[]);
    let mut ids = Vec::new();
    for (name, catch_up) in [("skipper", "skip"), ("catcher", "once")] {
        server.deploy(name, artifacts::QUEUE_PROBE).await;
        let created = added(
            &server,
            name,
            json!({"cron": "*/2 * * * * *", "catch_up": catch_up}),
        )
        .await;
        ids.push((name, created["id"].as_str().unwrap().to_string()));
    }
    let mut last_before = Vec::new();
    for (name, id) in &ids {
        let s = wait_for(&server, name, id, "two runs", |s| runs(s).len() >= 2).await;
        last_before.push(ticks(&s)[0].clone());
    }
    server.terminate();
    // Down for a while: ticks pass that no scheduler runs.
    let stopped = now_unix();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let restarted = now_unix();
    let server = Server::start_with(dir.path(), &[]);

    for ((name, id), before) in ids.iter().zip(&last_before) {
        // Two on-time ticks after the restart.
        let s = wait_for(&server, name, id, "runs after the restart", |s| {
            ticks(s)
                .iter()
                .filter(|t| **t >= rfc3339(restarted))
                .count()
                >= 2
        })
        .await;
        let all = ticks(&s);
        let unique: BTreeSet<&String> = all.iter().collect();
        assert_eq!(unique.len(), all.len(), "{name}: a tick fired twice: {s}");
        let catch_ups: Vec<Value> = runs(&s)
            .into_iter()
            .filter(|r| r["catch_up"] == true)
            .collect();
        // Ticks certainly missed: after the server stopped, before it
        // started again.
        let missed: Vec<&String> = all
            .iter()
            .filter(|t| **t > rfc3339(stopped) && **t < rfc3339(restarted))
            .collect();
        match *name {
            "skipper" => {
                assert!(catch_ups.is_empty(), "{s}");
                assert!(missed.is_empty(), "skip fired missed ticks {missed:?}: {s}");
            }
            _ => {
                assert_eq!(catch_ups.len(), 1, "one catch-up run: {s}");
                let tick = catch_ups[0]["scheduled_at"].as_str().unwrap();
                assert!(tick > before.as_str(), "{tick} after {before}: {s}");
                assert!(missed.len() <= 1, "{missed:?}: {s}");
                assert_eq!(catch_ups[0]["outcome"], "ok");
            }
        }
    }
}

#[tokio::test]
async fn malformed_schedules_and_limits_are_refused_with_their_code_and_the_server_serves_on() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    server.deploy("hello", artifacts::HELLO).await;
    let big = "x".repeat(64 * 1024 + 1);
    for (body, needle) in [
        (json!({"cron": "61 * * * *"}), "minute field"),
        (json!({"cron": "* * * * * * *"}), "7 field(s)"),
        (json!({"cron": "*/0 * * * *"}), "*/5 * * * *"),
        (json!({"cron": "0 0 31 2 *"}), "never fires"),
        (
            json!({"cron": "* * * * *", "tz": "Mars/Olympus"}),
            "IANA time zone",
        ),
        (
            json!({"cron": "* * * * *", "catch_up": "always"}),
            "`catch_up`",
        ),
        (json!({"cron": "* * * * *", "path": "tick"}), "`path`"),
        (json!({"cron": "* * * * *", "body": big}), "`body`"),
        (json!({"cron": "* * * * *", "bogus": 1}), "bogus"),
        (json!({"tz": "UTC"}), "cron"),
    ] {
        let (status, text) = add(&server, "hello", body.clone()).await;
        let message = assert_error(status, &text, 400, "invalid_schedule");
        assert!(message.contains(needle), "{body}: {message}");
        assert_eq!(server.get("/fn/hello/").await.0, StatusCode::OK);
    }

    // A request over the JSON body limit (1 MiB) is refused before it is
    // read.
    let huge = json!({"cron": "* * * * *", "body": "x".repeat(2 << 20)});
    let (status, text) = add(&server, "hello", huge).await;
    assert_error(status, &text, 413, "payload_too_large");
    assert_eq!(server.get("/fn/hello/").await.0, StatusCode::OK);

    let (status, text) = add(&server, "ghost", json!({"cron": "* * * * *"})).await;
    assert_error(status, &text, 404, "function_not_found");
    let (status, text) = server.get("/v1/functions/ghost/schedules").await;
    assert_error(status, &text, 404, "function_not_found");
    let (status, text) = server
        .get("/v1/functions/hello/schedules/000000000000")
        .await;
    let message = assert_error(status, &text, 404, "schedule_not_found");
    assert!(message.contains("flint schedule ls hello"), "{message}");
    let response = server
        .http
        .delete(server.at("/v1/functions/hello/schedules/000000000000"))
        .send()
        .await
        .unwrap();
    let status = response.status();
    assert_error(
        status,
        &response.text().await.unwrap(),
        404,
        "schedule_not_found",
    );
    assert_eq!(server.get("/fn/hello/").await.0, StatusCode::OK);

    // At most ten schedules per function.
    for _ in 0..10 {
        added(&server, "hello", json!({"cron": "0 0 1 1 *"})).await;
    }
    let (status, text) = add(&server, "hello", json!({"cron": "0 0 1 1 *"})).await;
    let message = assert_error(status, &text, 400, "invalid_schedule");
    assert!(message.contains("flint schedule rm hello"), "{message}");
    let (_, list) = server.get_json("/v1/functions/hello/schedules").await;
    assert_eq!(list["schedules"].as_array().unwrap().len(), 10);
    assert_eq!(server.get("/fn/hello/").await.0, StatusCode::OK);
}

fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

#[tokio::test]
async fn schedule_commands_add_list_and_remove() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    server.deploy("report", artifacts::QUEUE_PROBE).await;

    let out = ok(&flint(
        &server.url,
        &[
            "schedule",
            "add",
            "report",
            "--cron",
            "*/2 * * * * *",
            "--tz",
            "Europe/Berlin",
            "--path",
            "/daily",
            "--catch-up",
            "once",
        ],
    ));
    assert!(out.starts_with("Scheduled report ("), "{out}");
    let added: Value = serde_json::from_str(&ok(&flint(
        &server.url,
        &[
            "--json",
            "schedule",
            "add",
            "report",
            "--cron",
            "0 9 * * MON-FRI",
        ],
    )))
    .unwrap();
    let quiet = added["id"].as_str().unwrap().to_string();
    assert_eq!(added["cron"], "0 9 * * MON-FRI");

    let list: Value = serde_json::from_str(&ok(&flint(
        &server.url,
        &["--json", "schedule", "ls", "report"],
    )))
    .unwrap();
    let schedules = list["schedules"].as_array().unwrap();
    assert_eq!(schedules.len(), 2, "{list}");
    let busy = schedules
        .iter()
        .find(|s| s["cron"] == "*/2 * * * * *")
        .unwrap();
    assert_eq!(busy["tz"], "Europe/Berlin");
    assert_eq!(busy["path"], "/daily");
    assert_eq!(busy["catch_up"], "once");
    let busy_id = busy["id"].as_str().unwrap().to_string();
    wait_for(&server, "report", &busy_id, "a run", |s| {
        !runs(s).is_empty()
    })
    .await;

    let table = ok(&flint(&server.url, &["schedule", "ls", "report"]));
    let header = table.lines().next().unwrap();
    for column in ["ID", "CRON", "TZ", "PATH", "CATCH_UP", "NEXT"] {
        assert!(header.contains(column), "{table}");
    }
    assert!(
        table.contains(&busy_id) && table.contains(&quiet),
        "{table}"
    );
    assert!(
        table.contains(&format!("Last runs of {busy_id}")),
        "{table}"
    );
    assert!(
        table.contains(&format!("Last runs of {quiet}: none yet")),
        "{table}"
    );
    for column in ["SCHEDULED", "STARTED", "OUTCOME", "STATUS", "DURATION"] {
        assert!(table.contains(column), "{table}");
    }
    assert!(table.contains("  ok  "), "{table}");

    let out = ok(&flint(&server.url, &["schedule", "rm", "report", &quiet]));
    assert!(
        out.contains(&format!("Removed schedule {quiet} of report")),
        "{out}"
    );
    let again = flint(&server.url, &["schedule", "rm", "report", &quiet]);
    assert!(!again.status.success());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("flint schedule ls report"), "{stderr}");

    // A bad expression: the error names the field and shows a valid one.
    let bad = flint(
        &server.url,
        &["schedule", "add", "report", "--cron", "* 24 * * *"],
    );
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("hour field") && stderr.contains("*/5 * * * *"),
        "{stderr}"
    );
    let bad = flint(
        &server.url,
        &[
            "schedule",
            "add",
            "report",
            "--cron",
            "* * * * *",
            "--catch-up",
            "all",
        ],
    );
    assert!(!bad.status.success());
    let empty = ok(&flint(&server.url, &["schedule", "ls", "report"]));
    assert!(empty.contains(&busy_id), "{empty}");

    let help = ok(&flint(&server.url, &["schedule", "add", "--help"]));
    assert!(
        help.contains("Examples:") && help.contains("--catch-up"),
        "{help}"
    );
}

#[tokio::test]
async fn the_manifest_declares_a_schedule_that_plan_shows_and_apply_sets_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    // A copy of its own: the bytes stay the same between the applies.
    let component = dir.path().join("nightly.wasm");
    std::fs::write(&component, artifacts::bytes(artifacts::QUEUE_PROBE)).unwrap();
    let manifest = |schedule: &str| {
        format!(
            "[functions.nightly]\ncomponent = \"{}\"\n{schedule}",
            component.display()
        )
    };
    let file = dir.path().join("flint.toml");
    let file_arg = file.display().to_string();
    std::fs::write(
        &file,
        manifest(
            "[functions.nightly.schedule]\ncron = \"*/2 * * * * *\"\ntz = \"Europe/Berlin\"\npath = \"/nightly\"\nbody = '{\"mode\":\"ok\"}'\ncatch_up = \"once\"\n",
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(crate::support::FLINT)
            .args(args)
            .env("FLINT_SERVER", &server.url)
            .env_remove("FLINT_ENV")
            .output()
            .unwrap()
    };
    let plan: Value =
        serde_json::from_str(&ok(&run(&["plan", "-f", &file_arg, "--json"]))).unwrap();
    let actions: Vec<&str> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["create", "set_schedule"], "{plan}");
    let table = ok(&run(&["plan", "-f", &file_arg]));
    assert!(
        table.contains("set_schedule") && table.contains("*/2 * * * * *"),
        "{table}"
    );

    ok(&run(&["apply", "-f", &file_arg]));
    let (_, list) = server.get_json("/v1/functions/nightly/schedules").await;
    let schedules = list["schedules"].as_array().unwrap();
    assert_eq!(schedules.len(), 1, "{list}");
    let id = schedules[0]["id"].as_str().unwrap().to_string();
    assert_eq!(schedules[0]["tz"], "Europe/Berlin");
    assert_eq!(schedules[0]["path"], "/nightly");
    assert_eq!(schedules[0]["catch_up"], "once");
    wait_for(&server, "nightly", &id, "a run", |s| {
        runs(s).first().is_some_and(|r| r["outcome"] == "ok")
    })
    .await;

    // A second apply changes nothing: the same schedule keeps its id.
    let again = ok(&run(&["apply", "-f", &file_arg]));
    assert!(again.contains("No changes"), "{again}");
    let (_, list) = server.get_json("/v1/functions/nightly/schedules").await;
    assert_eq!(list["schedules"][0]["id"], id.as_str());

    // A schedule added by hand is drift: apply makes the manifest's the
    // only one. Without a schedule in the manifest, apply removes them.
    added(&server, "nightly", json!({"cron": "0 0 1 1 *"})).await;
    let plan: Value =
        serde_json::from_str(&ok(&run(&["plan", "-f", &file_arg, "--json"]))).unwrap();
    assert_eq!(plan["changes"][0]["action"], "set_schedule", "{plan}");
    ok(&run(&["apply", "-f", &file_arg]));
    let (_, list) = server.get_json("/v1/functions/nightly/schedules").await;
    assert_eq!(list["schedules"].as_array().unwrap().len(), 1, "{list}");
    std::fs::write(&file, manifest("")).unwrap();
    let plan: Value =
        serde_json::from_str(&ok(&run(&["plan", "-f", &file_arg, "--json"]))).unwrap();
    assert_eq!(plan["changes"][0]["action"], "remove_schedule", "{plan}");
    ok(&run(&["apply", "-f", &file_arg]));
    let (_, list) = server.get_json("/v1/functions/nightly/schedules").await;
    assert_eq!(list["schedules"], json!([]), "{list}");

    // A bad schedule in the manifest is refused before anything changes.
    std::fs::write(
        &file,
        manifest("[functions.nightly.schedule]\ncron = \"* * * *\"\n"),
    )
    .unwrap();
    let out = run(&["apply", "-f", &file_arg]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("functions.nightly.schedule") && stderr.contains("4 field(s)"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_tick_in_flight_at_sigterm_finishes_and_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &[]);
    server.deploy("slow", artifacts::PROBE).await;
    let created = added(
        &server,
        "slow",
        json!({"cron": "*/2 * * * * *", "path": "/sleep?ms=1500"}),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_string();
    wait_for(&server, "slow", &id, "a run", |s| !runs(s).is_empty()).await;
    // Stop the server 0.3 s into the call of the next tick.
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let next = (now.as_secs() / 2 + 1) * 2;
    let at = Duration::from_secs(next) + Duration::from_millis(300);
    tokio::time::sleep(at - now).await;
    assert!(server.terminate().success());
    let server = Server::start_with(dir.path(), &[]);
    let s = schedule(&server, "slow", &id).await;
    let run = runs(&s)
        .into_iter()
        .find(|r| r["scheduled_at"] == rfc3339(next as i64))
        .unwrap_or_else(|| panic!("the tick in flight was not recorded: {s}"));
    assert_eq!(run["outcome"], "ok", "{run}");
    assert_eq!(run["response"], "slept 1500 ms", "{run}");
}

/// A schedule calls a WASI 0.3 component as it calls a 0.2 one: each tick
/// is a request whose body the component reads (`/echo` streams it back).
#[tokio::test]
async fn a_schedule_fires_a_wasi_03_component() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    let deployed = server.deploy("p3", artifacts::HTTP_P3).await;
    assert_eq!(deployed["kind"], "http-p3", "{deployed}");
    let created = added(
        &server,
        "p3",
        json!({"cron": "* * * * * *", "path": "/echo", "body": "tick body"}),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_string();
    let done = wait_for(&server, "p3", &id, "two runs", |s| runs(s).len() >= 2).await;
    for run in runs(&done) {
        assert_eq!(run["outcome"], "ok", "{run}");
        assert_eq!(run["status"], 200, "{run}");
        assert_eq!(run["response"], "tick body", "{run}");
    }
}
