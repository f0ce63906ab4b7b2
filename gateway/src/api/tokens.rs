//! API tokens: `POST /v1/tokens` creates one and answers its secret, once;
//! listing and revoking are one core call each (see the router).

use super::{ApiError, Body, RequestBody, json, read_body};
use crate::core::{Control, CoreError};
use flint_spec::TokenSpec;
use http::{Request, Response, StatusCode};

pub(super) async fn create(
    control: &Control,
    request: Request<impl RequestBody>,
) -> Result<Response<Body>, ApiError> {
    let body = read_body(request, control.limits().json_body).await?;
    let spec: TokenSpec = serde_json::from_slice(&body)
        .map_err(|e| CoreError::BadRequest(format!("invalid token request: {e}")))?;
    Ok(json(
        StatusCode::CREATED,
        &control.create_token(spec).await?,
    ))
}
