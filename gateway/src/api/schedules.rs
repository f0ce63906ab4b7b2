//! Cron schedules (`/v1/functions/{name}/schedules[/{id}]`).

use super::{ApiError, Body, RequestBody, json, read_body};
use crate::core::{Control, CoreError};
use flint_spec::ScheduleSpec;
use http::{Request, Response, StatusCode};
use serde_json::json;

pub(super) async fn list(control: &Control, name: &str) -> Result<Response<Body>, ApiError> {
    let schedules = control.schedules(name).await?;
    Ok(json(
        StatusCode::OK,
        &json!({ "function": name, "schedules": schedules }),
    ))
}

pub(super) async fn get(
    control: &Control,
    name: &str,
    id: &str,
) -> Result<Response<Body>, ApiError> {
    Ok(json(StatusCode::OK, &control.schedule(name, id).await?))
}

pub(super) async fn add(
    control: &Control,
    name: &str,
    request: Request<impl RequestBody>,
) -> Result<Response<Body>, ApiError> {
    let body = read_body(request, control.limits().json_body).await?;
    let spec: ScheduleSpec = serde_json::from_slice(&body)
        .map_err(|e| CoreError::InvalidSchedule(format!("invalid schedule JSON: {e}")))?;
    Ok(json(
        StatusCode::CREATED,
        &control.add_schedule(name, spec).await?,
    ))
}
