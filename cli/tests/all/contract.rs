//! The API contract as its users' tools check it: schemathesis (from PyPI,
//! installed by the test command) generates requests for every operation of
//! the served OpenAPI document, binary uploads included, and checks that each
//! answer is no server error and has a documented status, content type and
//! schema; and every example in the document fits its schema.

use crate::support::Server;
use flint_test_artifacts as artifacts;
use reqwest::Method;
use serde_json::json;
use std::path::PathBuf;
use std::process::Command;

/// Where the test command installs schemathesis (`FLINT_SCHEMATHESIS`
/// overrides).
fn schemathesis() -> PathBuf {
    if let Some(path) = std::env::var_os("FLINT_SCHEMATHESIS") {
        return path.into();
    }
    let home = std::env::var_os("HOME").expect("HOME");
    PathBuf::from(home).join(".cache/flint/venv-st/bin/st")
}

/// Most generated calls name a deployed function, so they reach the
/// operation's own logic and not only its 404. Two answers are 5xx by
/// design: `/async` answers 503 while the broker is unreachable, and a load
/// run's call answers what its function answers (a trap is a 500).
const CONFIG: &str = r#"
[dictionaries.functions]
values = ["hello", "echo", "probe"]

[parameters]
"path.name" = { dictionary = "functions", probability = 0.7 }

[[operations]]
include-path = "/async/{name}"
checks.not_a_server_error.expected-statuses = ["1XX", "2XX", "3XX", "4XX", "503"]

[[operations]]
include-path = "/v1/functions/{name}/bench/{version}/{mode}/{path}"
checks.not_a_server_error.expected-statuses = ["1XX", "2XX", "3XX", "4XX", "500", "502", "504"]
"#;

/// A RabbitMQ virtual host of the test's own, deleted with everything in it
/// (the queues of the bindings schemathesis makes) when dropped.
struct Vhost(String);

impl Vhost {
    fn create() -> Self {
        let vhost = Self(format!("flint-contract-{}", std::process::id()));
        rabbitmqctl(&["add_vhost", &vhost.0]);
        rabbitmqctl(&["set_permissions", "-p", &vhost.0, "guest", ".*", ".*", ".*"]);
        vhost
    }

    fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:5672/{}", self.0)
    }
}

impl Drop for Vhost {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl")
            .args(["delete_vhost", &self.0])
            .output();
    }
}

fn rabbitmqctl(args: &[&str]) {
    let output = Command::new("rabbitmqctl").args(args).output().unwrap();
    assert!(
        output.status.success(),
        "rabbitmqctl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

const TOKEN: &str = "flint_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

#[tokio::test]
async fn every_operation_answers_as_the_document_says() {
    let st = schemathesis();
    assert!(
        st.exists(),
        "{} is missing: scripts/test installs schemathesis (scripts/env.sh's ensure_schemathesis)",
        st.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let vhost = Vhost::create();
    let server = Server::start_with_env(
        dir.path(),
        &["--amqp-url", &vhost.url()],
        &[("FLINT_ADMIN_TOKEN", TOKEN)],
    );
    for (name, component) in [
        ("hello", artifacts::HELLO),
        ("echo", artifacts::ECHO),
        ("probe", artifacts::PROBE),
    ] {
        server.deploy_as(TOKEN, name, component).await;
    }
    // What the operations act on: a trigger, so that `/async` queues
    // calls, and a canary that runs through the whole test.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while server.get_json("/readyz").await.1["broker"] != "up" {
        assert!(
            std::time::Instant::now() < deadline,
            "the broker never came up"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    server.deploy_as(TOKEN, "echo", artifacts::WASI_HELLO).await;
    for (method, path, body) in [
        (
            Method::PUT,
            "/v1/functions/hello/triggers",
            json!({"queue": "hello-calls"}),
        ),
        (Method::POST, "/v1/functions/echo/release", json!({"to": 1})),
        (
            Method::POST,
            "/v1/functions/echo/canary",
            json!({"to": 2, "steps": [50, 100], "interval_ms": 600_000, "max_error_rate": 1.0}),
        ),
    ] {
        let (status, answer) = server
            .call_as(method.clone(), path, TOKEN, Some(&body))
            .await;
        assert!(status.is_success(), "{method} {path}: {status} {answer}");
    }
    let reports = dir.path().join("schemathesis");
    let config = dir.path().join("schemathesis.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let url = server.at("/v1/openapi.json");
    // Deleting the functions (a pruning apply, DELETE /v1/functions/NAME)
    // comes last, so that everything else meets them.
    let destructive = [
        "--include-path",
        "/v1/apply",
        "--include-path",
        "/v1/functions/{name}",
    ];
    let others = [
        "--exclude-path",
        "/v1/apply",
        "--exclude-path",
        "/v1/functions/{name}",
    ];
    let mut tested = 0;
    for filters in [others, destructive] {
        let (st, config, url, reports) = (st.clone(), config.clone(), url.clone(), reports.clone());
        let workdir = dir.path().to_path_buf();
        let output = tokio::task::spawn_blocking(move || {
            Command::new(&st)
                // Its caches go there, not into the source tree.
                .current_dir(&workdir)
                .arg("--config-file")
                .arg(&config)
                .args(["run", &url])
                .args(filters)
                .args(["--header", &format!("Authorization: Bearer {TOKEN}")])
                .args([
                    "--checks",
                    "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
                ])
                // Bounded and repeatable: a fixed number of cases per
                // operation from a fixed seed.
                .args(["--phases", "examples,coverage,fuzzing"])
                .args(["--max-examples", "30", "--seed", "1", "--generation-deterministic"])
                .args(["--request-timeout", "20", "--no-color"])
                .arg("--report-dir")
                .arg(&reports)
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "schemathesis found answers the document does not describe:\n{text}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let count = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("Tested: "))
            .and_then(|n| n.trim().parse::<usize>().ok())
            .unwrap_or_else(|| panic!("no count of tested operations: {text}"));
        tested += count;
    }
    // Every operation was run, uploads included (schemathesis leaves out
    // the document's own GET).
    let (_, doc) = server.get_json("/v1/openapi.json").await;
    let methods = ["get", "put", "post", "delete", "patch"];
    let operations: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| {
            let item = item.as_object().unwrap();
            item.keys()
                .filter(|k| methods.contains(&k.as_str()))
                .count()
        })
        .sum();
    assert_eq!(tested, operations - 1, "every operation tested");

    // Every example, of parameters, requests and answers, fits its schema.
    let served = dir.path().join("openapi.json");
    std::fs::write(&served, doc.to_string()).unwrap();
    let python = st.with_file_name("python");
    let check = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/all/examples_conform.py");
    let output = Command::new(&python)
        .arg(check)
        .arg(&served)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "examples that do not fit their schema:\n{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let checked: usize = text
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count of examples: {text}"));
    assert!(checked > operations, "{text}");
}
