//! Upload, invoke, versions, bad uploads, names, delete, API documents.

use crate::support::{Server, assert_error};
use flint_test_artifacts as artifacts;
use serde_json::Value;

#[tokio::test]
async fn upload_then_invoke_each_example() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    let body = server.deploy("hello", artifacts::HELLO).await;
    assert_eq!(body["version"], 1);
    assert!(body["digest"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(body["digest"].as_str().unwrap().len(), 7 + 64);
    assert_eq!(server.get("/fn/hello/").await.1, "Hello from Flint!\n");

    server.deploy("plain", artifacts::WASI_HELLO).await;
    let response = server
        .http
        .get(server.at("/fn/plain/some/path?q=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-path"], "/some/path");
    assert_eq!(
        response.text().await.unwrap(),
        "Hello from plain wasi:http!\n"
    );

    server.deploy("echo", artifacts::ECHO).await;
    let response = server
        .http
        .post(server.at("/fn/echo/x"))
        .body(r#"{"message":"hi"}"#)
        .send()
        .await
        .unwrap();
    let json: Value = response.json().await.unwrap();
    assert_eq!(json["upper"], "HI");
    assert_eq!(json["path"], "/x");
    assert_eq!(json["method"], "POST");

    // The guest sees the path after /fn/NAME, the query, method and headers.
    server.deploy("probe", artifacts::PROBE).await;
    let response = server
        .http
        .put(server.at("/fn/probe/a/headers?x=1&y=two"))
        .header("x-custom", "v")
        .send()
        .await
        .unwrap();
    let seen: Value = response.json().await.unwrap();
    assert_eq!(seen["method"], "PUT", "{seen}");
    assert_eq!(seen["path"], "/a/headers", "{seen}");
    assert_eq!(seen["query"], "x=1&y=two", "{seen}");
    assert_eq!(seen["headers"]["x-custom"], "v", "{seen}");
}

/// The SDK reads the body of a `GET` only when it declares a length; other
/// methods' bodies, chunked too, always reach the handler.
#[tokio::test]
async fn get_bodies_reach_the_handler_when_sized() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    server.deploy("probe", artifacts::PROBE).await;
    let echo = |request: reqwest::RequestBuilder| async move {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        let len = response.headers()["x-body-len"]
            .to_str()
            .unwrap()
            .to_owned();
        (len, response.text().await.unwrap())
    };
    let chunked = || {
        let chunks: Vec<Result<&'static str, std::io::Error>> = vec![Ok("chunked "), Ok("body")];
        reqwest::Body::wrap_stream(futures::stream::iter(chunks))
    };
    let url = server.at("/fn/probe/body");

    let (len, body) = echo(server.http.get(&url)).await;
    assert_eq!((len.as_str(), body.as_str()), ("0", ""));
    let sized = server.http.get(&url).body("with a length");
    let (len, body) = echo(sized).await;
    assert_eq!((len.as_str(), body.as_str()), ("13", "with a length"));
    // A chunked GET's content has no defined meaning: the handler sees none.
    let (len, _) = echo(server.http.get(&url).body(chunked())).await;
    assert_eq!(len, "0");
    let (len, body) = echo(server.http.post(&url).body(chunked())).await;
    assert_eq!((len.as_str(), body.as_str()), ("12", "chunked body"));
}

#[tokio::test]
async fn same_bytes_are_idempotent_and_new_bytes_make_a_version() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    let (status, first) = server
        .deploy_bytes("f", artifacts::bytes(artifacts::HELLO))
        .await;
    assert_eq!(status, 201);
    let (status, again) = server
        .deploy_bytes("f", artifacts::bytes(artifacts::HELLO))
        .await;
    assert_eq!(status, 200);
    assert_eq!(again["version"], 1);
    assert_eq!(again["digest"], first["digest"]);
    let (status, next) = server
        .deploy_bytes("f", artifacts::bytes(artifacts::ECHO))
        .await;
    assert_eq!(status, 201);
    assert_eq!(next["version"], 2);
    assert_eq!(
        server.info("f").await["versions"].as_array().unwrap().len(),
        2
    );
}

#[tokio::test]
async fn pinned_versions_and_unknown_targets() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    server.deploy("pin", artifacts::PROBE).await;
    server.deploy("pin", artifacts::HELLO).await;
    assert_eq!(server.get("/fn/pin@1/counter").await.1, "1");
    assert_eq!(server.get("/fn/pin@2/").await.1, "Hello from Flint!\n");
    assert_eq!(server.get("/fn/pin/").await.1, "Hello from Flint!\n");
    let (status, body) = server.get("/fn/pin@3/").await;
    let message = assert_error(status, &body, 404, "version_not_found");
    assert!(message.contains("version 3"), "{message}");
    let (status, body) = server.get("/fn/nope/").await;
    let message = assert_error(status, &body, 404, "function_not_found");
    assert!(message.contains("nope"), "{message}");
    let (status, body) = server.get("/v1/functions/nope").await;
    assert_error(status, &body, 404, "function_not_found");
    assert_eq!(server.get("/fn/pin/").await.0, 200);
}

#[tokio::test]
async fn bad_uploads_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    let not_a_handler = wat::parse_str("(component)").unwrap();
    let foreign_import = wat::parse_str(
        r#"(component (import "acme:billing/charge" (instance (export "charge" (func)))))"#,
    )
    .unwrap();
    let core_module = wat::parse_str("(module)").unwrap();
    let mut truncated = artifacts::bytes(artifacts::HELLO);
    truncated.truncate(truncated.len() / 2);
    let cases: [(&str, Vec<u8>, &str); 5] = [
        (
            "text",
            b"hello, not wasm".to_vec(),
            "not a WebAssembly binary",
        ),
        ("core module", core_module, "exports no `_start` function"),
        (
            "no handler",
            not_a_handler,
            "exports neither wasi:http/incoming-handler@0.2",
        ),
        ("foreign import", foreign_import, "acme:billing/charge"),
        ("truncated", truncated, "invalid component"),
    ];
    for (what, bytes, expected) in cases {
        let (status, body) = server.deploy_bytes("bad", bytes).await;
        assert_eq!(status, 400, "{what}: {body}");
        assert_eq!(body["error"]["code"], "invalid_component", "{what}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(expected), "{what}: {message}");
    }
    // Nothing was recorded, and the server carries on.
    assert_eq!(server.get("/v1/functions/bad").await.0, 404);
    server.deploy("good", artifacts::HELLO).await;
    assert_eq!(server.get("/fn/good/").await.0, 200);
}

#[tokio::test]
async fn names_are_validated() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    let long = "a".repeat(64);
    for bad in ["Hello", "under_score", "dot.name", long.as_str(), "%C3%BC"] {
        let (status, body) = server
            .deploy_bytes(bad, artifacts::bytes(artifacts::HELLO))
            .await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "invalid_name", "{bad}");
    }
    let ok = "a".repeat(63);
    server.deploy(&ok, artifacts::HELLO).await;
    server.deploy("my-fn-2", artifacts::HELLO).await;
    assert_eq!(server.get("/fn/my-fn-2/").await.0, 200);
}

#[tokio::test]
async fn delete_removes_the_function() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    server.deploy("gone", artifacts::HELLO).await;
    server.deploy("kept", artifacts::HELLO).await;
    let response = server
        .http
        .delete(server.at("/v1/functions/gone"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let (status, body) = server.get("/fn/gone/").await;
    assert_error(status, &body, 404, "function_not_found");
    let response = server
        .http
        .delete(server.at("/v1/functions/gone"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    // Same bytes under another name still run: the blob is shared.
    assert_eq!(server.get("/fn/kept/").await.1, "Hello from Flint!\n");
}

#[tokio::test]
async fn listing_health_metrics_and_openapi() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    server.deploy("hello", artifacts::HELLO).await;
    server.get("/fn/hello/").await;
    let (status, list) = server.get_json("/v1/functions").await;
    assert_eq!(status, 200);
    assert_eq!(list["functions"][0]["name"], "hello");
    assert_eq!(list["functions"][0]["invocations"], 1);
    assert_eq!(server.get("/healthz").await.0, 200);

    let (status, metrics) = server.get("/metrics").await;
    assert_eq!(status, 200);
    for needle in [
        r#"flint_invocations_total{function="hello",version="1",outcome="ok"} 1"#,
        "flint_invocation_duration_seconds_bucket",
        r#"flint_starts_total{function="hello",kind="cold"} 1"#,
        r#"flint_artifact_loads_total{function="hello",kind="compile"} 1"#,
        r#"flint_in_flight{function="hello"} 0"#,
        r#"flint_warm_instances{function="hello"}"#,
    ] {
        assert!(metrics.contains(needle), "missing {needle} in\n{metrics}");
    }

    let (status, doc) = server.get_json("/v1/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.0.3");
    assert!(doc["paths"]["/v1/functions/{name}/config"]["patch"].is_object());

    let (status, body) = server.get("/nowhere").await;
    assert_error(status, &body, 404, "not_found");
    let response = server
        .http
        .post(server.at("/v1/functions"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
}
