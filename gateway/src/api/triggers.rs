//! Trigger bindings (`/v1/functions/{name}/triggers`, `/v1/triggers`) and
//! asynchronous invocation (`POST /async/{name}`).

use super::{ApiError, Body, RequestBody, json, read_body};
use crate::core::{Control, CoreError};
use flint_spec::TriggerSpec;
use http::{Request, Response, StatusCode};
use serde_json::json;

pub(super) fn list(control: &Control) -> Result<Response<Body>, ApiError> {
    Ok(json(
        StatusCode::OK,
        &json!({ "broker": control.broker_state().as_str(), "triggers": control.list_triggers() }),
    ))
}

pub(super) async fn put(
    control: &Control,
    name: &str,
    request: Request<impl RequestBody>,
) -> Result<Response<Body>, ApiError> {
    let body = read_body(request, control.limits().json_body).await?;
    let spec: TriggerSpec = serde_json::from_slice(&body)
        .map_err(|e| CoreError::InvalidTrigger(format!("invalid trigger JSON: {e}")))?;
    Ok(json(
        StatusCode::OK,
        &control.set_trigger(name, spec).await?,
    ))
}

/// `POST /async/{name}`: queue an invocation, answer 202 with its id.
pub(super) async fn enqueue(
    control: &Control,
    name: &str,
    request: Request<impl RequestBody>,
) -> Result<Response<Body>, ApiError> {
    // Refuse before reading a body that cannot be queued anyway.
    control.trigger(name)?;
    let content_type = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let body = read_body(request, control.limits().request_body).await?;
    let (id, queue) = control
        .enqueue(name, &body, content_type.as_deref())
        .await?;
    Ok(json(
        StatusCode::ACCEPTED,
        &json!({ "message_id": id, "function": name, "queue": queue }),
    ))
}
