//! Desired state over the API: `PUT /v1/components` uploads a component by
//! content (no function yet), `POST /v1/plan` and `POST /v1/apply` compare
//! and apply a desired state, `GET /v1/routes` lists the custom routes.

use super::admin::{prepare, read_component, read_json_body};
use super::{ApiError, Body, RequestBody, json};
use crate::desired::DesiredState;
use crate::desired::apply::{apply, checked_plan};
use crate::state::AppState;
use flint_runtime::Digest;
use http::{Request, Response, StatusCode};
use serde_json::json;
use std::sync::Arc;

pub(super) async fn upload_component(
    state: &Arc<AppState>,
    request: Request<impl RequestBody>,
) -> Result<Response<Body>, ApiError> {
    let bytes = read_component(state, request).await?;
    let digest = Digest::of(&bytes);
    let held = state.blobs.size(&digest).is_some() && state.runtime.cache().contains(&digest);
    let (_, _, compile_ms, size) = prepare(state, &digest, bytes).await?;
    let status = if held {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok(json(
        status,
        &json!({"digest": digest.to_string(), "size_bytes": size, "compile_ms": compile_ms, "created": !held}),
    ))
}

/// Reads `?prune=true|false`.
fn prune(query: Option<&str>) -> Result<bool, ApiError> {
    let mut prune = false;
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        match pair.split_once('=').unwrap_or((pair, "true")) {
            ("prune", "true" | "1") => prune = true,
            ("prune", "false" | "0") => prune = false,
            (key, value) => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter `{key}={value}`; use prune=true or prune=false"
                )));
            }
        }
    }
    Ok(prune)
}

async fn desired(
    request: Request<impl RequestBody>,
) -> Result<(DesiredState, bool, String), ApiError> {
    let prune = prune(request.uri().query())?;
    let actor = super::releases::actor(&request);
    let body = read_json_body(request).await?;
    let desired = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_desired_state",
            format!("invalid desired state: {e}"),
        )
    })?;
    Ok((desired, prune, actor))
}

pub(super) async fn plan(
    state: &Arc<AppState>,
    request: Request<impl RequestBody>,
) -> Result<Response<Body>, ApiError> {
    let (desired, prune, _) = desired(request).await?;
    let plan = checked_plan(state, &desired, prune)?;
    Ok(json(StatusCode::OK, &json!(plan)))
}

pub(super) async fn apply_desired(
    state: &Arc<AppState>,
    request: Request<impl RequestBody>,
) -> Result<Response<Body>, ApiError> {
    let (desired, prune, actor) = desired(request).await?;
    let applied = apply(state, &desired, prune, &actor).await?;
    let mut body = json!(applied);
    body["changed"] = json!(!applied.changes.is_empty());
    Ok(json(StatusCode::OK, &body))
}

pub(super) fn routes(state: &AppState) -> Result<Response<Body>, ApiError> {
    let routes: Vec<_> = state
        .routes
        .by_function()
        .into_iter()
        .flat_map(|(function, patterns)| {
            patterns
                .into_iter()
                .map(move |pattern| json!({"pattern": pattern, "function": function}))
        })
        .collect();
    Ok(json(StatusCode::OK, &json!({ "routes": routes })))
}
