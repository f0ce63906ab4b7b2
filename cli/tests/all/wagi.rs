//! WAGI: WASI 0.1 command modules, in Rust and in C, run as CGI scripts by
//! the real server.

use crate::support::{Server, assert_error, flint};
use flint_test_artifacts as artifacts;
use reqwest::StatusCode;
use serde_json::json;

/// GETs `path` on `server`, for its status, headers and body.
async fn fetch(server: &Server, path: &str) -> reqwest::Response {
    server.http.get(server.at(path)).send().await.unwrap()
}

/// A deployed Rust WAGI module answers from its CGI environment and stdin,
/// with its own headers and status, and says what it is.
#[tokio::test]
async fn a_rust_module_serves_as_cgi() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    let deployed = server.deploy("wagi", artifacts::WAGI_RUST).await;
    assert_eq!(deployed["kind"], "wagi", "{deployed}");
    assert_eq!(deployed["version"], 1, "{deployed}");

    let response = fetch(&server, "/fn/wagi/?name=Ada").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/plain");
    assert_eq!(response.headers()["x-flint-version"], "1");
    assert_eq!(response.text().await.unwrap(), "Hello from WAGI, Ada!\n");

    let response = server
        .http
        .post(server.at("/fn/wagi/echo"))
        .header("content-type", "application/json")
        .body(r#"{"n":1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.headers()["x-method"], "POST");
    assert_eq!(response.headers()["x-body-bytes"], "7");
    assert_eq!(response.text().await.unwrap(), r#"{"n":1}"#);

    let response = fetch(&server, "/fn/wagi/status").await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["x-created"], "yes");

    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = no_redirects
        .get(server.at("/fn/wagi/redirect"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    assert_eq!(response.headers()["location"], "/");

    let info = flint(&server.url, &["info", "wagi"]);
    let text = String::from_utf8_lossy(&info.stdout);
    assert!(info.status.success(), "{text}");
    assert!(text.contains("KIND"), "{text}");
    assert!(text.contains("1 (latest)  wagi"), "{text}");
    assert_eq!(server.info("wagi").await["versions"][0]["kind"], "wagi");
}

/// The environment carries the request (RFC 3875's variables, one
/// `HTTP_*` per header) after the function's own `env`, and no credentials.
#[tokio::test]
async fn the_cgi_environment_carries_the_request() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    server.deploy("wagi", artifacts::WAGI_RUST).await;
    server
        .configure(
            "wagi",
            json!({"env": {"GREETING": "hi", "PATH_INFO": "shadowed"}}),
        )
        .await;
    let port = server.url.rsplit(':').next().unwrap().to_string();
    let response = server
        .http
        .get(server.at("/fn/wagi/env?a=1&b=2"))
        .header("x-custom", "v")
        .header("authorization", "Bearer not-for-scripts")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    let vars: Vec<&str> = text.lines().collect();
    for want in [
        "GREETING=hi".to_string(),
        "REQUEST_METHOD=GET".into(),
        "PATH_INFO=/env".into(),
        "QUERY_STRING=a=1&b=2".into(),
        "CONTENT_LENGTH=0".into(),
        "GATEWAY_INTERFACE=CGI/1.1".into(),
        "SERVER_NAME=127.0.0.1".into(),
        format!("SERVER_PORT={port}"),
        "SERVER_PROTOCOL=HTTP/1.1".into(),
        "HTTP_X_CUSTOM=v".into(),
        format!("X_FULL_URL=http://127.0.0.1:{port}/env?a=1&b=2"),
    ] {
        assert!(
            vars.contains(&want.as_str()),
            "{want} missing from:\n{text}"
        );
    }
    assert!(!text.contains("PATH_INFO=shadowed"), "{text}");
    assert!(!text.contains("not-for-scripts"), "{text}");
}

/// A C module built with clang and wasi-libc: headers, status, query and
/// body.
#[tokio::test]
async fn a_c_module_serves_as_cgi() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    let out = flint(
        &server.url,
        &["deploy", "wagi-c", artifacts::WAGI_C, "--kind", "wagi"],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("WAGI module"), "{text}");

    let response = fetch(&server, "/fn/wagi-c/?name=Bob").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-language"], "C");
    assert_eq!(response.headers()["x-method"], "GET");
    assert_eq!(
        response.text().await.unwrap(),
        "Hello from C, Bob! You sent 0 bytes\n"
    );

    let (status, body) = server.post("/fn/wagi-c/", "abc").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "Hello from C, world! You sent 3 bytes: abc\n");

    let (status, body) = server.get("/fn/wagi-c/teapot").await;
    assert_eq!(status, StatusCode::IM_A_TEAPOT);
    assert_eq!(body, "short and stout\n");
}

/// What a module does wrong, and each limit it crosses, gets its own error;
/// the function serves the next request every time.
#[tokio::test]
async fn faults_and_limits_end_one_run_only() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    server.deploy("wagi", artifacts::WAGI_RUST).await;
    server
        .configure(
            "wagi",
            json!({"timeout_ms": 500, "memory_mb": 16, "max_response_bytes": 4096}),
        )
        .await;
    let (status, body) = server.get("/fn/wagi/log").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "logged\n"));
    let (_, logs) = server.get("/v1/functions/wagi/logs").await;
    assert!(logs.contains("wagi-rust: handling GET /log"), "{logs}");
    let cases = [
        ("/no-headers", 502, "function_error", "wrote no CGI headers"),
        ("/exit", 502, "function_error", "exited with status 3"),
        ("/trap", 500, "trap", ""),
        ("/spin", 504, "timeout", "500 ms"),
        ("/alloc?mb=64", 500, "memory_limit_exceeded", "16 MiB"),
        (
            "/big?bytes=5000",
            500,
            "resource_limit_exceeded",
            "max_response_bytes",
        ),
        ("/log", 500, "resource_limit_exceeded", "max_log_bytes"),
    ];
    for (path, status, code, says) in cases {
        if path == "/log" {
            server.configure("wagi", json!({"max_log_bytes": 16})).await;
        }
        let (got, body) = server.get(&format!("/fn/wagi{path}")).await;
        let message = assert_error(got, &body, status, code);
        assert!(message.contains(says), "{path}: {message}");
        let (got, body) = server.get("/fn/wagi/?name=again").await;
        assert_eq!(got, StatusCode::OK, "after {path}: {body}");
        assert_eq!(body, "Hello from WAGI, again!\n");
    }
    // Under the limits, the same paths succeed.
    let (status, body) = server.get("/fn/wagi/alloc?mb=4").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "held 4 MiB\n"));
    let (status, body) = server.get("/fn/wagi/big?bytes=4096").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.len(), 4096);

    let (_, metrics) = server.get("/metrics").await;
    for outcome in ["function_error", "timeout", "memory_limit_exceeded", "ok"] {
        let series = format!(r#"function="wagi",version="1",outcome="{outcome}""#);
        assert!(metrics.contains(&series), "{series} missing:\n{metrics}");
    }
}

/// Uploads that are no runnable module, and a kind that does not match,
/// are refused with the reason, and nothing is stored.
#[tokio::test]
async fn modules_that_cannot_run_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    let no_start =
        wat::parse_str(r#"(module (func (export "main")) (memory (export "memory") 1))"#).unwrap();
    let (status, body) = server.deploy_bytes("lib", no_start).await;
    let message = assert_error(status, &body.to_string(), 400, "invalid_component");
    assert!(message.contains("exports no `_start`"), "{message}");
    assert!(message.contains("[main, memory]"), "{message}");

    let foreign = wat::parse_str(
        r#"(module (import "env" "now" (func)) (func (export "_start")) (memory (export "memory") 1))"#,
    )
    .unwrap();
    let (status, body) = server.deploy_bytes("foreign", foreign).await;
    let message = assert_error(status, &body.to_string(), 400, "invalid_component");
    assert!(message.contains("[env::now]"), "{message}");

    let wrong_start = wat::parse_str(r#"(module (func (export "_start") (param i32)))"#).unwrap();
    let (status, body) = server.deploy_bytes("bad-start", wrong_start).await;
    assert_error(status, &body.to_string(), 400, "invalid_component");

    for (name, file, kind, says) in [
        ("h", artifacts::HELLO, "wagi", "not the `wagi` asked for"),
        (
            "w",
            artifacts::WAGI_RUST,
            "http",
            "not the `http` asked for",
        ),
    ] {
        // The query rides on the name: PUT /v1/functions/{name}?kind=...
        let (status, body) = server
            .deploy_bytes(&format!("{name}?kind={kind}"), artifacts::bytes(file))
            .await;
        let message = assert_error(status, &body.to_string(), 400, "invalid_component");
        assert!(message.contains(says), "{message}");
    }
    let module = || artifacts::bytes(artifacts::WAGI_RUST);
    let (status, body) = server.deploy_bytes("w?kind=cgi", module()).await;
    let message = assert_error(status, &body.to_string(), 400, "bad_request");
    assert!(message.contains("http, http-p3, wagi"), "{message}");

    let (status, list) = server.get_json("/v1/functions").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["functions"], json!([]), "{list}");
    // The server still takes a good upload, with the kind stated.
    let (status, body) = server.deploy_bytes("w?kind=wagi", module()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["kind"], "wagi", "{body}");
}

/// Versions of one function may be of different kinds; aliases and
/// releases route between them as between components.
#[tokio::test]
async fn releases_route_between_a_module_and_a_component() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    server.deploy("mixed", artifacts::WAGI_RUST).await;
    let v2 = server.deploy("mixed", artifacts::WAGI_C).await;
    assert_eq!(v2["version"], 2);
    let v3 = server.deploy("mixed", artifacts::HELLO).await;
    assert_eq!(v3["kind"], "http");

    let (_, body) = server.get("/fn/mixed@1/?name=x").await;
    assert_eq!(body, "Hello from WAGI, x!\n");
    let (_, body) = server.get("/fn/mixed@2/?name=x").await;
    assert!(body.starts_with("Hello from C, x!"), "{body}");
    let (status, _) = server.get("/fn/mixed/").await;
    assert_eq!(status, StatusCode::OK);

    let out = flint(&server.url, &["release", "mixed", "--to", "1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, body) = server.get("/fn/mixed/?name=back").await;
    assert_eq!(body, "Hello from WAGI, back!\n");
    let kinds: Vec<String> = server.info("mixed").await["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["wagi", "wagi", "http"]);
}

/// `flint bench` compares the start kinds of components; for a module it
/// says why not and what to run instead, and the function goes on serving.
#[tokio::test]
async fn bench_of_a_module_points_to_the_load_run() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    server.deploy("wagi", artifacts::WAGI_RUST).await;
    let out = flint(&server.url, &["bench", "wagi"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is a WAGI module"), "{stderr}");
    assert!(stderr.contains("flint bench wagi --load"), "{stderr}");
    let (status, body) = server.get("/fn/wagi/").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "Hello from WAGI, world!\n")
    );
}
