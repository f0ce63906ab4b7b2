//! The one invoke path every adapter (HTTP, AMQP) goes through: name and
//! version -> the function's concurrency gate -> the version's pool.

use crate::api::ApiError;
use crate::state::AppState;
use flint_runtime::{HyperIncomingBody, InvokeResponse, next_request_id};

/// A function's answer and what produced it.
pub struct Invoked {
    /// The response; its body streams from the guest.
    pub response: InvokeResponse,
    /// The invocation id (as in logs).
    pub request_id: u64,
    /// The version that ran.
    pub version: u32,
}

/// Runs `request` on function `name`, version `pinned` or the latest.
pub async fn invoke(
    state: &AppState,
    name: &str,
    pinned: Option<u32>,
    request: http::Request<HyperIncomingBody>,
) -> Result<Invoked, ApiError> {
    let entry = state
        .table
        .get(name)
        .ok_or_else(|| ApiError::function_not_found(name))?;
    let latest = entry.latest();
    let version = match pinned {
        Some(n) => entry.version(n),
        None => latest.clone(),
    }
    .ok_or_else(|| {
        ApiError::version_not_found(name, pinned.unwrap_or(0), latest.map(|l| l.record.version))
    })?;
    let permit = entry.gate().acquire().await?;
    let pool = state
        .table
        .pool(&entry, &version)
        .await
        .map_err(ApiError::internal)?;
    let request_id = next_request_id();
    let response = pool.invoke(permit, request_id, request).await?;
    Ok(Invoked {
        response,
        request_id,
        version: pool.version(),
    })
}
