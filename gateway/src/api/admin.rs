//! Functions under `/v1/functions`: deploy, configure, read logs. Listing,
//! details and deletes are one core call each (see the router).

use super::{ApiError, Body, RequestBody, json, read_body};
use crate::core::Control;
use flint_runtime::ConfigPatch;
use http::{Request, Response, StatusCode};
use serde_json::json;

/// `PUT /v1/functions/{name}`: the body is the component.
pub(super) async fn deploy(
    control: &Control,
    name: &str,
    request: Request<impl RequestBody>,
) -> Result<Response<Body>, ApiError> {
    // Read the (bounded) body before judging the name, so the client gets
    // the 400 on a connection it can keep using.
    let bytes = read_body(request, control.limits().upload).await?;
    let deployed = control.deploy(name, bytes).await?;
    let status = if deployed.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(json(status, &deployed))
}

/// `PATCH /v1/functions/{name}/config`: a JSON object of config fields.
pub(super) async fn patch_config(
    control: &Control,
    name: &str,
    request: Request<impl RequestBody>,
) -> Result<Response<Body>, ApiError> {
    let body = read_body(request, control.limits().json_body).await?;
    let patch = parse_patch(&body)?;
    let config = control.patch_config(name, patch).await?;
    Ok(json(StatusCode::OK, &config))
}

/// Parses a config patch; a bad value is reported with its field's name.
fn parse_patch(body: &[u8]) -> Result<ConfigPatch, ApiError> {
    let invalid =
        |message: String| ApiError::new(StatusCode::BAD_REQUEST, "invalid_config", message);
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| invalid(format!("the body is not JSON: {e}")))?;
    let Some(fields) = value.as_object() else {
        return Err(invalid("expected a JSON object of config fields".into()));
    };
    for (field, v) in fields {
        let single = serde_json::Value::Object([(field.clone(), v.clone())].into_iter().collect());
        if let Err(e) = serde_json::from_value::<ConfigPatch>(single) {
            return Err(invalid(format!("invalid `{field}`: {e}")));
        }
    }
    serde_json::from_value(value).map_err(|e| invalid(e.to_string()))
}

/// `GET /v1/functions/{name}/logs?limit=N&after=SEQ`.
pub(super) fn logs(
    control: &Control,
    name: &str,
    query: Option<&str>,
) -> Result<Response<Body>, ApiError> {
    let mut limit = crate::core::DEFAULT_LOG_LIMIT;
    let mut after = None;
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let number = || {
            value.parse::<u64>().map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    format!("`{key}` must be a number, got {value:?}"),
                )
            })
        };
        match key {
            "limit" => limit = number()? as usize,
            "after" => after = Some(number()?),
            _ => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    format!("unknown query parameter `{key}`; use limit and after"),
                ));
            }
        }
    }
    let lines = control.logs(name, after, limit)?;
    Ok(json(StatusCode::OK, &json!({ "lines": lines })))
}
