//! A core on a temporary data dir, requests, and answers.

use bytes::Bytes;
use flint_gateway::GatewayConfig;
use flint_gateway::api::{App, Body};
use flint_gateway::core::{Control, CoreError, Target};
use flint_runtime::HyperIncomingBody;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use std::sync::Arc;

pub use flint_test_artifacts as artifacts;

/// Instance slots per test server: enough for the tests, cheap to reserve.
const TEST_MAX_INSTANCES: u32 = 32;

/// A settings set on a fresh data dir inside `dir`.
pub fn config(dir: &tempfile::TempDir) -> GatewayConfig {
    GatewayConfig {
        data_dir: dir.path().join("data"),
        max_instances: TEST_MAX_INSTANCES,
        ..GatewayConfig::default()
    }
}

/// A core on `config`.
pub async fn open(config: GatewayConfig) -> Arc<Control> {
    Control::open(config).await.expect("the core opens")
}

/// A component's bytes.
pub fn component(path: &str) -> Bytes {
    Bytes::from(artifacts::bytes(path))
}

/// Deploys `path` as the next version of `name`; returns its number.
pub async fn deploy(control: &Control, name: &str, path: &str) -> u32 {
    control
        .deploy(name, component(path), None)
        .await
        .expect("deploy")
        .version
}

/// A request with a complete body, as the invoker takes it.
pub fn invocation(path: &str, body: impl Into<Bytes>) -> Request<HyperIncomingBody> {
    let body = Full::new(body.into())
        .map_err(|never| match never {})
        .boxed_unsync();
    Request::builder()
        .uri(format!("http://localhost{path}"))
        .body(body)
        .unwrap()
}

/// Invokes `name` through `target`; the version that ran and the body.
pub async fn invoke(
    control: &Control,
    name: &str,
    target: Target<'_>,
    path: &str,
) -> Result<(u32, StatusCode, String), CoreError> {
    let invoked = control
        .invoker()
        .invoke(name, target, invocation(path, Bytes::new()))
        .await?;
    let status = invoked.response.status();
    let body = invoked.response.into_body().collect().await.unwrap();
    Ok((
        invoked.version,
        status,
        String::from_utf8_lossy(&body.to_bytes()).into_owned(),
    ))
}

/// Calls the HTTP application in process.
pub async fn call(
    app: &App,
    method: Method,
    path: &str,
    body: impl Into<Bytes>,
) -> (StatusCode, http::HeaderMap, Bytes) {
    let body: Bytes = body.into();
    // Admin writes are typed as the API requires: uploads as Wasm, the
    // rest as JSON.
    let upload = method == Method::PUT
        && (path == "/v1/components"
            || path
                .strip_prefix("/v1/functions/")
                .is_some_and(|name| !name.contains('/')));
    let content_type = if upload {
        "application/wasm"
    } else {
        "application/json"
    };
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::CONTENT_LENGTH, body.len());
    if path.starts_with("/v1/") && !body.is_empty() {
        request = request.header(http::header::CONTENT_TYPE, content_type);
    }
    let request = request.body(Full::new(body)).unwrap();
    read(app.handle(request).await).await
}

/// Calls the HTTP application with a JSON body.
pub async fn call_json(
    app: &App,
    method: Method,
    path: &str,
    body: serde_json::Value,
) -> (StatusCode, serde_json::Value) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let (status, _, body) = read(app.handle(request).await).await;
    (status, serde_json::from_slice(&body).unwrap_or_default())
}

async fn read(response: Response<Body>) -> (StatusCode, http::HeaderMap, Bytes) {
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("a complete body").to_bytes();
    (parts.status, parts.headers, body)
}

/// The error code of a JSON error body.
pub fn code(body: &[u8]) -> String {
    let value: serde_json::Value = serde_json::from_slice(body).expect("a JSON error body");
    value["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}
