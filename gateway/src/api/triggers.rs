//! Trigger bindings (`/v1/functions/{name}/triggers`, `/v1/triggers`) and
//! asynchronous invocation (`POST /async/{name}`).

use super::{ApiError, Body, RequestBody, json};
use crate::state::AppState;
use crate::triggers::{BrokerState, TriggerSpec, amqp};
use http::{Request, Response, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;

fn binding_json(function: &str, spec: &TriggerSpec) -> Value {
    json!({
        "function": function,
        "queue": spec.queue,
        "concurrency": spec.concurrency,
        "max_retries": spec.max_retries,
        "retry_delay_ms": spec.retry_delay_ms,
        "dead_letter": spec.dead_letter_queue(),
    })
}

fn no_trigger(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "trigger_not_found",
        format!(
            "function `{name}` has no queue trigger; add one with `flint trigger add {name} --queue QUEUE`"
        ),
    )
}

pub(super) fn list(state: &AppState) -> Result<Response<Body>, ApiError> {
    let triggers: Vec<Value> = state
        .triggers
        .list()
        .iter()
        .map(|(f, s)| binding_json(f, s))
        .collect();
    Ok(json(
        StatusCode::OK,
        &json!({ "broker": state.triggers.state().as_str(), "triggers": triggers }),
    ))
}

pub(super) fn get(state: &AppState, name: &str) -> Result<Response<Body>, ApiError> {
    if state.table.get(name).is_none() {
        return Err(ApiError::function_not_found(name));
    }
    let spec = state.triggers.get(name).ok_or_else(|| no_trigger(name))?;
    Ok(json(StatusCode::OK, &binding_json(name, &spec)))
}

pub(super) async fn put(
    state: &Arc<AppState>,
    name: &str,
    request: Request<impl RequestBody>,
) -> Result<Response<Body>, ApiError> {
    let body = super::admin::read_json_body(request).await?;
    let invalid =
        |message: String| ApiError::new(StatusCode::BAD_REQUEST, "invalid_trigger", message);
    let spec: TriggerSpec =
        serde_json::from_slice(&body).map_err(|e| invalid(format!("invalid trigger JSON: {e}")))?;
    spec.validate().map_err(invalid)?;
    let _deploying = state.deploy_lock.lock().await;
    if state.table.get(name).is_none() || !state.registry.set_trigger(name, Some(&spec))? {
        return Err(ApiError::function_not_found(name));
    }
    state.triggers.set(name, Some(spec.clone()));
    tracing::info!(function = name, queue = %spec.queue, "trigger set");
    Ok(json(StatusCode::OK, &binding_json(name, &spec)))
}

pub(super) async fn delete(state: &Arc<AppState>, name: &str) -> Result<Response<Body>, ApiError> {
    let _deploying = state.deploy_lock.lock().await;
    if state.table.get(name).is_none() {
        return Err(ApiError::function_not_found(name));
    }
    if !state.registry.set_trigger(name, None)? {
        return Err(no_trigger(name));
    }
    state.triggers.set(name, None);
    let mut response = Response::new(super::full(bytes::Bytes::new()));
    *response.status_mut() = StatusCode::NO_CONTENT;
    Ok(response)
}

/// `POST /async/{name}`: queue an invocation, answer 202 with its id.
pub(super) async fn enqueue(
    state: &Arc<AppState>,
    name: &str,
    request: Request<impl RequestBody>,
) -> Result<Response<Body>, ApiError> {
    if state.table.get(name).is_none() {
        return Err(ApiError::function_not_found(name));
    }
    let spec = state.triggers.get(name).ok_or_else(|| no_trigger(name))?;
    let unavailable = |message: String| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "broker_unavailable",
            message,
        )
    };
    match state.triggers.state() {
        BrokerState::Disabled => {
            return Err(unavailable(
                "queue triggers are disabled; start flint serve with --amqp-url".into(),
            ));
        }
        BrokerState::Down => {
            return Err(unavailable("RabbitMQ is unreachable; retry shortly".into()));
        }
        BrokerState::Up => {}
    }
    let content_type = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let limit = state.config.max_request_body_bytes;
    let body = super::admin::read_body(
        request.into_body(),
        limit,
        "request body",
        "--max-request-body-bytes",
    )
    .await?;
    let id = amqp::enqueue(state, &spec.queue, &body, content_type.as_deref())
        .await
        .map_err(unavailable)?;
    Ok(json(
        StatusCode::ACCEPTED,
        &json!({ "message_id": id, "function": name, "queue": spec.queue }),
    ))
}
