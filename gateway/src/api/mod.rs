//! The HTTP surface: routing of the invoke path (`/fn/...`), the admin API
//! (`/v1/...`), health and metrics. [`handle`] is the whole application as a
//! function of a request, so it can be served by any accept loop.

mod admin;
mod desired;
mod error;
mod invoke;
mod releases;
mod triggers;

pub(crate) use admin::prepare as prepare_component;
pub use error::ApiError;

use crate::state::AppState;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use std::sync::Arc;

/// Errors of response bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The body of every response.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// A request body the API accepts (hyper's, or any other in tests).
pub trait RequestBody:
    http_body::Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static
{
}

impl<T> RequestBody for T where
    T: http_body::Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static
{
}

/// The `content-length` a request declares, if any.
pub(crate) fn declared_length<B>(request: &Request<B>) -> Option<u64> {
    request
        .headers()
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Whether `path` is the admin API's (`/v1/...`): calls that wait on the
/// registry and on compiles, unlike invocations.
pub(crate) fn is_admin(path: &str) -> bool {
    path.starts_with("/v1/")
}

/// A complete body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A JSON response.
pub(crate) fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut response = Response::new(full(value.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

const OPENAPI: &str = include_str!("openapi.json");

/// Handles one request: the whole application.
pub async fn handle(state: Arc<AppState>, request: Request<impl RequestBody>) -> Response<Body> {
    let path = request.uri().path().to_string();
    let result = route(&state, request, &path).await;
    result.unwrap_or_else(ApiError::into_response)
}

async fn route(
    state: &Arc<AppState>,
    request: Request<impl RequestBody>,
    path: &str,
) -> Result<Response<Body>, ApiError> {
    if let Some(target) = path.strip_prefix("/fn/") {
        return invoke::invoke(state, request, target).await;
    }
    if let Some(name) = path.strip_prefix("/async/") {
        let name = name.trim_end_matches('/');
        if request.method() != Method::POST {
            return Err(ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("use POST /async/{name} to queue an invocation"),
            ));
        }
        return triggers::enqueue(state, name, request).await;
    }
    let method = request.method().clone();
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    match (&method, segments.as_slice()) {
        (&Method::GET, ["healthz"]) => {
            Ok(json(StatusCode::OK, &serde_json::json!({"status": "ok"})))
        }
        (&Method::GET, ["readyz"]) => {
            let broker = state.triggers.state();
            let (status, text) = match broker {
                crate::triggers::BrokerState::Down => (StatusCode::SERVICE_UNAVAILABLE, "degraded"),
                _ => (StatusCode::OK, "ok"),
            };
            Ok(json(
                status,
                &serde_json::json!({"status": text, "broker": broker.as_str()}),
            ))
        }
        (&Method::GET, ["v1", "triggers"]) => triggers::list(state),
        (&Method::GET, ["v1", "routes"]) => desired::routes(state),
        (&Method::PUT, ["v1", "components"]) => desired::upload_component(state, request).await,
        (&Method::POST, ["v1", "plan"]) => desired::plan(state, request).await,
        (&Method::POST, ["v1", "apply"]) => desired::apply_desired(state, request).await,
        (&Method::GET, ["v1", "functions", name, "aliases"]) => releases::list_aliases(state, name),
        (&Method::PUT, ["v1", "functions", name, "aliases", alias]) => {
            releases::put_alias(state, name, alias, request).await
        }
        (&Method::DELETE, ["v1", "functions", name, "aliases", alias]) => {
            releases::delete_alias(state, name, alias, &request).await
        }
        (&Method::POST, ["v1", "functions", name, "release"]) => {
            releases::release(state, name, request).await
        }
        (&Method::POST, ["v1", "functions", name, "rollback"]) => {
            releases::rollback(state, name, request).await
        }
        (&Method::GET, ["v1", "functions", name, "history"]) => releases::history(state, name),
        (&Method::POST, ["v1", "functions", name, "canary"]) => {
            releases::start_canary(state, name, request).await
        }
        (&Method::GET, ["v1", "functions", name, "canary"]) => releases::canary_status(state, name),
        (&Method::DELETE, ["v1", "functions", name, "canary"]) => {
            releases::abort_canary(state, name)
        }
        (&Method::PUT, ["v1", "functions", name, "shadow"]) => {
            releases::put_shadow(state, name, request).await
        }
        (&Method::GET, ["v1", "functions", name, "shadow"]) => releases::shadow_report(state, name),
        (&Method::DELETE, ["v1", "functions", name, "shadow"]) => {
            releases::delete_shadow(state, name, &request).await
        }
        (&Method::GET, ["v1", "functions", name, "triggers"]) => triggers::get(state, name),
        (&Method::PUT, ["v1", "functions", name, "triggers"]) => {
            triggers::put(state, name, request).await
        }
        (&Method::DELETE, ["v1", "functions", name, "triggers"]) => {
            triggers::delete(state, name).await
        }
        (&Method::GET, ["metrics"]) => {
            state.table.refresh_gauges();
            let mut response = Response::new(full(state.metrics.encode()));
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            Ok(response)
        }
        (&Method::GET, ["v1", "openapi.json"]) => {
            let mut response = Response::new(full(OPENAPI));
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            Ok(response)
        }
        (&Method::GET, ["v1", "functions"]) => admin::list(state),
        (&Method::PUT, ["v1", "functions", name]) => admin::deploy(state, name, request).await,
        (&Method::GET, ["v1", "functions", name]) => admin::info(state, name),
        (&Method::DELETE, ["v1", "functions", name]) => admin::delete(state, name).await,
        (&Method::GET, ["v1", "functions", name, "config"]) => admin::get_config(state, name),
        (&Method::PATCH, ["v1", "functions", name, "config"]) => {
            admin::patch_config(state, name, request).await
        }
        (&Method::GET, ["v1", "functions", name, "logs"]) => {
            admin::logs(state, name, request.uri().query())
        }
        (
            _,
            ["healthz" | "readyz" | "metrics"]
            | ["v1", "openapi.json"]
            | [
                "v1",
                "triggers" | "routes" | "components" | "plan" | "apply",
            ]
            | ["v1", "functions", ..],
        ) => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{method} is not allowed on {path}; see GET /v1/openapi.json"),
        )),
        _ => match state.routes.lookup(path) {
            Some(function) => invoke::routed(state, request, &function).await,
            None => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!(
                    "no route for {path}; invoke functions at /fn/NAME/..., manage them under /v1/functions"
                ),
            )),
        },
    }
}
