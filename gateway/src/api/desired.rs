//! Desired state over the API: `PUT /v1/components` uploads a component by
//! content (no function yet), `POST /v1/plan` and `POST /v1/apply` compare
//! and apply a desired state, `GET /v1/routes` lists the custom routes.

use super::{ApiError, Body, RequestBody, actor, caller, json, kind_query, read_body};
use crate::core::{Control, CoreError};
use flint_spec::desired::DesiredState;
use http::{Request, Response, StatusCode};
use serde_json::json;

pub(super) async fn upload_component(
    control: &Control,
    request: Request<impl RequestBody>,
) -> Result<Response<Body>, ApiError> {
    let query = request.uri().query().map(String::from);
    let bytes = read_body(request, control.limits().upload).await?;
    let upload = control
        .upload_component(bytes, kind_query(query.as_deref())?)
        .await?;
    let status = if upload.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(json(status, &upload))
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
                return Err(CoreError::BadRequest(format!(
                    "unknown query parameter `{key}={value}`; use prune=true or prune=false"
                ))
                .into());
            }
        }
    }
    Ok(prune)
}

async fn desired(
    control: &Control,
    request: Request<impl RequestBody>,
) -> Result<(DesiredState, bool, String), ApiError> {
    let prune = prune(request.uri().query())?;
    let actor = actor(&request);
    let caller = caller(&request);
    let body = read_body(request, control.limits().json_body).await?;
    let desired: DesiredState = serde_json::from_slice(&body)
        .map_err(|e| CoreError::InvalidDesiredState(format!("invalid desired state: {e}")))?;
    caller.allow_desired(&desired, prune)?;
    Ok((desired, prune, actor))
}

pub(super) async fn plan(
    control: &Control,
    request: Request<impl RequestBody>,
) -> Result<Response<Body>, ApiError> {
    let (desired, prune, _) = desired(control, request).await?;
    Ok(json(StatusCode::OK, &control.plan(&desired, prune).await?))
}

pub(super) async fn apply(
    control: &Control,
    request: Request<impl RequestBody>,
) -> Result<Response<Body>, ApiError> {
    let (desired, prune, actor) = desired(control, request).await?;
    let applied = control.apply(&desired, prune, &actor).await?;
    let mut body = json!(applied);
    body["changed"] = json!(!applied.changes.is_empty());
    Ok(json(StatusCode::OK, &body))
}

pub(super) fn routes(control: &Control) -> Result<Response<Body>, ApiError> {
    let routes: Vec<_> = control
        .routes()
        .into_iter()
        .map(|(pattern, function)| json!({"pattern": pattern, "function": function}))
        .collect();
    Ok(json(StatusCode::OK, &json!({ "routes": routes })))
}
