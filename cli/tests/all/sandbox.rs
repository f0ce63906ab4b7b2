//! The sandbox: configured env only, outbound HTTP denied unless allowed,
//! captured output.

use crate::support::{Server, assert_error};
use flint_test_artifacts as artifacts;
use serde_json::{Value, json};

#[tokio::test]
async fn guests_see_configured_env_and_never_the_hosts() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    server.deploy("probe", artifacts::PROBE).await;
    let (_, all) = server.get_json("/fn/probe/env").await;
    assert_eq!(all, json!({}));
    server
        .configure("probe", json!({"env": {"GREETING": "hi", "MODE": "test"}}))
        .await;
    assert_eq!(server.get("/fn/probe/env?name=GREETING").await.1, "hi");
    let (_, all) = server.get_json("/fn/probe/env").await;
    assert_eq!(all, json!({"GREETING": "hi", "MODE": "test"}));
    // The server process has PATH and HOME; the guest must not.
    for host_var in ["PATH", "HOME"] {
        let (status, body) = server.get(&format!("/fn/probe/env?name={host_var}")).await;
        assert_error(status, &body, 404, "env_not_set");
    }
}

#[tokio::test]
async fn outbound_http_is_denied_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    server.deploy("probe", artifacts::PROBE).await;
    let port = server.url.rsplit(':').next().unwrap().to_string();
    let target = format!("/fn/probe/outbound?url=http://127.0.0.1:{port}/healthz");

    let (status, body) = server.get(&target).await;
    let message = assert_error(status, &body, 502, "outbound_failed");
    assert!(message.contains("HttpRequestDenied"), "{message}");

    // A name resolving to loopback is refused even when listed...
    server
        .configure(
            "probe",
            json!({"allowed_outbound_hosts": [format!("localhost:{port}")]}),
        )
        .await;
    let (status, body) = server
        .get(&format!(
            "/fn/probe/outbound?url=http://localhost:{port}/healthz"
        ))
        .await;
    let message = assert_error(status, &body, 502, "outbound_failed");
    assert!(message.contains("DestinationIpProhibited"), "{message}");

    // ...while an explicitly listed IP literal is allowed.
    server
        .configure(
            "probe",
            json!({"allowed_outbound_hosts": [format!("127.0.0.1:{port}")]}),
        )
        .await;
    assert_eq!(server.get(&target).await.1, "upstream status 200");
    // Another port on the same host is still denied.
    let (status, body) = server
        .get("/fn/probe/outbound?url=http://127.0.0.1:9/")
        .await;
    assert_error(status, &body, 502, "outbound_failed");
}

#[tokio::test]
async fn guest_output_is_captured_per_function() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    server.deploy("talker", artifacts::PROBE).await;
    server.deploy("quiet", artifacts::PROBE).await;
    let response = server
        .http
        .get(server.at("/fn/talker/print?msg=hello-logs"))
        .send()
        .await
        .unwrap();
    let request_id = response.headers()["x-flint-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let (status, logs) = server.get_json("/v1/functions/talker/logs").await;
    assert_eq!(status, 200);
    let lines: Vec<&Value> = logs["lines"].as_array().unwrap().iter().collect();
    assert!(
        lines.iter().any(|l| l["line"] == "hello-logs"
            && l["stream"] == "stdout"
            && l["request_id"] == request_id),
        "{logs}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["line"] == "hello-logs" && l["stream"] == "stderr"),
        "{logs}"
    );
    let first_seq = lines[0]["seq"].as_u64().unwrap();
    let (_, after) = server
        .get_json(&format!("/v1/functions/talker/logs?after={first_seq}"))
        .await;
    assert_eq!(after["lines"].as_array().unwrap().len(), lines.len() - 1);
    let (_, quiet) = server.get_json("/v1/functions/quiet/logs").await;
    assert_eq!(quiet["lines"], json!([]));
    let (status, body) = server.get("/v1/functions/talker/logs?limit=abc").await;
    assert_error(status, &body, 400, "bad_request");
}
