//! The HTTP application called in process: statuses, error bodies and
//! limits as a client sees them.

use crate::support::*;
use bytes::Bytes;
use flint_gateway::api::App;
use http::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn the_app_routes_invocations_and_the_admin_api() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::new(open(config(&dir)).await);

    let (status, _, _) = call(&app, Method::GET, "/healthz", Bytes::new()).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, body) = call(&app, Method::GET, "/nowhere", Bytes::new()).await;
    assert_eq!(
        (status, code(&body).as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let (status, _, body) = call(&app, Method::POST, "/healthz", Bytes::new()).await;
    assert_eq!(
        (status, code(&body).as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );

    let (status, _, _) = call(
        &app,
        Method::PUT,
        "/v1/functions/hello",
        component(artifacts::HELLO),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _, _) = call(
        &app,
        Method::PUT,
        "/v1/functions/hello",
        component(artifacts::HELLO),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the same bytes again make no version"
    );
    let (status, headers, body) = call(&app, Method::GET, "/fn/hello/", Bytes::new()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "Hello from Flint!\n");
    assert_eq!(headers["x-flint-version"], "1");
    let (status, _, body) = call(&app, Method::GET, "/fn/hello@7/", Bytes::new()).await;
    assert_eq!(
        (status, code(&body).as_str()),
        (StatusCode::NOT_FOUND, "version_not_found")
    );
    let (status, _, body) = call(&app, Method::PUT, "/v1/functions/hello", "not wasm").await;
    assert_eq!(
        (status, code(&body).as_str()),
        (StatusCode::BAD_REQUEST, "invalid_component")
    );

    let (status, body) = call_json(
        &app,
        Method::PATCH,
        "/v1/functions/hello/config",
        json!({"memory_mb": "big"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "invalid_config");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`memory_mb`"),
        "{body}"
    );
    let (status, body) = call_json(&app, Method::GET, "/v1/functions/hello", json!(null)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["versions"][0]["loaded"], true);
}

#[tokio::test]
async fn bodies_over_their_limit_get_413_and_the_next_request_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = config(&dir);
    settings.max_request_body_bytes = 1024;
    // The probe component is exactly at the upload limit.
    let probe = component(artifacts::PROBE);
    settings.max_upload_bytes = probe.len() as u64;
    let app = App::new(open(settings).await);
    let (status, _, _) = call(&app, Method::PUT, "/v1/functions/probe", probe.clone()).await;
    assert_eq!(status, StatusCode::CREATED);
    call(
        &app,
        Method::PUT,
        "/v1/functions/hello",
        component(artifacts::HELLO),
    )
    .await;
    let mut too_big = probe.to_vec();
    too_big.push(0);

    for (path, body, what) in [
        ("/fn/probe/body", vec![b'x'; 1025], "request body"),
        ("/v1/functions/big", too_big, "component"),
        (
            "/v1/functions/probe/config",
            vec![b' '; (1 << 20) + 1],
            "JSON body",
        ),
    ] {
        let method = if path.ends_with("config") {
            Method::PATCH
        } else if path.starts_with("/v1") {
            Method::PUT
        } else {
            Method::POST
        };
        let (status, headers, answer) = call(&app, method, path, body).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{path}");
        assert_eq!(code(&answer), "payload_too_large");
        assert!(String::from_utf8_lossy(&answer).contains(what), "{path}");
        assert_eq!(headers["connection"], "close");
    }
    let (status, _, body) = call(&app, Method::POST, "/fn/probe/body", vec![b'x'; 1024]).await;
    assert_eq!(
        (status, body.len()),
        (StatusCode::OK, 1024),
        "a body at the limit passes"
    );
    let (status, _, _) = call(&app, Method::GET, "/fn/hello/", Bytes::new()).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_shadow_run_never_fails_a_live_answer_larger_than_its_buffer() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = config(&dir);
    settings.max_request_body_bytes = 32 << 20;
    let app = App::new(open(settings).await);
    call(
        &app,
        Method::PUT,
        "/v1/functions/probe",
        component(artifacts::PROBE),
    )
    .await;
    call(
        &app,
        Method::PUT,
        "/v1/functions/probe",
        component(artifacts::HELLO),
    )
    .await;
    let (status, _) = call_json(
        &app,
        Method::PUT,
        "/v1/functions/probe/shadow",
        json!({"candidate": 2}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let large = vec![b'z'; (16 << 20) + 1];
    let (status, _, body) = call(&app, Method::POST, "/fn/probe@1/body", large.clone()).await;
    assert_eq!(status, StatusCode::OK, "a pinned version is never shadowed");
    assert_eq!(body.len(), large.len());
    let (status, _) = call_json(
        &app,
        Method::PUT,
        "/v1/functions/probe/aliases/live",
        json!({"version": 1, "default": true}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, body) = call(&app, Method::POST, "/fn/probe/body", large.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        Bytes::from(large),
        "the caller gets the whole live answer"
    );
    let (_, report) = call_json(&app, Method::GET, "/v1/functions/probe/shadow", json!(null)).await;
    assert_eq!(report["skipped"], 1, "{report}");
    let (status, _, body) = call(&app, Method::POST, "/fn/probe/body", "small").await;
    assert_eq!((status, body.as_ref()), (StatusCode::OK, b"small".as_ref()));
}

#[tokio::test]
async fn removing_an_alias_during_its_canary_is_a_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::new(open(config(&dir)).await);
    call(
        &app,
        Method::PUT,
        "/v1/functions/f",
        component(artifacts::HELLO),
    )
    .await;
    call(
        &app,
        Method::PUT,
        "/v1/functions/f",
        component(artifacts::WASI_HELLO),
    )
    .await;
    let (status, _) = call_json(
        &app,
        Method::POST,
        "/v1/functions/f/release",
        json!({"to": 1}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call_json(
        &app,
        Method::POST,
        "/v1/functions/f/canary",
        json!({"to": 2, "steps": [50, 100], "interval_ms": 600000, "max_error_rate": 0.5}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, _, body) = call(
        &app,
        Method::DELETE,
        "/v1/functions/f/aliases/prod",
        Bytes::new(),
    )
    .await;
    assert_eq!(
        (status, code(&body).as_str()),
        (StatusCode::CONFLICT, "release_conflict")
    );
    let (status, _, _) = call(&app, Method::DELETE, "/v1/functions/f/canary", Bytes::new()).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = call_json(
        &app,
        Method::POST,
        "/v1/functions/f/canary",
        json!({"to": 2, "steps": [50], "interval_ms": 1000, "max_error_rate": 0.5}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "invalid_release");
}
