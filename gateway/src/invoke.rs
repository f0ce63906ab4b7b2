//! The one invoke path every adapter (HTTP, AMQP) goes through: name and
//! target (default alias, alias or version) -> a version -> the function's
//! concurrency gate -> the version's pool. Shadow copies and the per-version
//! windows of canary analysis hang off this path too.

use crate::api::ApiError;
use crate::functions::{FunctionEntry, VersionEntry};
use crate::releases::LATEST;
use crate::releases::shadow::{Answer, ShadowSpec};
use crate::state::AppState;
use bytes::Bytes;
use flint_runtime::{HyperIncomingBody, InvokeResponse, next_request_id};
use http::StatusCode;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use std::sync::Arc;
use std::time::Instant;

/// Largest live or candidate response body buffered for a shadow comparison.
const MAX_SHADOW_BODY: usize = 16 << 20;

/// What a call names after the function: `/fn/name/`, `/fn/name@prod/`,
/// `/fn/name@3/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// The function's default alias (`latest` unless a release set one).
    Default,
    /// A named alias (or `latest`).
    Alias(&'a str),
    /// A pinned version.
    Version(u32),
}

/// A function's answer and what produced it.
pub struct Invoked {
    /// The response; its body streams from the guest.
    pub response: InvokeResponse,
    /// The invocation id (as in logs).
    pub request_id: u64,
    /// The version that ran.
    pub version: u32,
}

/// Picks the version a call goes to, at its start.
fn resolve(
    entry: &FunctionEntry,
    target: Target<'_>,
    headers: &http::HeaderMap,
) -> Result<u32, ApiError> {
    let releases = entry.releases.read().unwrap();
    let alias = match target {
        Target::Version(n) => return Ok(n),
        Target::Alias(a) => a,
        Target::Default => releases.default_alias(),
    };
    if alias == LATEST {
        return entry
            .latest()
            .map(|v| v.record.version)
            .ok_or_else(|| ApiError::version_not_found(&entry.name, 0, None));
    }
    let target = releases.aliases.get(alias).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "alias_not_found",
            format!(
                "function `{}` has no alias `{alias}`; see `flint alias ls {}`",
                entry.name, entry.name
            ),
        )
    })?;
    Ok(target.choose(headers))
}

/// Runs `request` on function `name` through `target`.
pub async fn invoke(
    state: &Arc<AppState>,
    name: &str,
    target: Target<'_>,
    request: http::Request<HyperIncomingBody>,
) -> Result<Invoked, ApiError> {
    let entry = state
        .table
        .get(name)
        .ok_or_else(|| ApiError::function_not_found(name))?;
    let number = resolve(&entry, target, request.headers())?;
    let version = entry.version(number).ok_or_else(|| {
        ApiError::version_not_found(name, number, entry.latest().map(|l| l.record.version))
    })?;
    let shadow = match target {
        Target::Version(_) => None,
        _ => entry.releases.read().unwrap().shadow.clone(),
    }
    .filter(|s| s.candidate != number && crate::releases::alias::percent_roll() < s.sample_percent);

    let started = Instant::now();
    let result = match shadow {
        Some(spec) => with_shadow(state, &entry, &version, spec, request).await,
        None => run(state, &entry, &version, request).await,
    };
    let server_error = match &result {
        Ok(invoked) => invoked.response.status().is_server_error(),
        Err(e) => e.status.is_server_error(),
    };
    entry
        .windows
        .record(number, server_error, started.elapsed());
    result
}

async fn run(
    state: &AppState,
    entry: &Arc<FunctionEntry>,
    version: &Arc<VersionEntry>,
    request: http::Request<HyperIncomingBody>,
) -> Result<Invoked, ApiError> {
    let permit = entry.gate().acquire().await?;
    let pool = state
        .table
        .pool(entry, version)
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

fn full_body(bytes: Bytes) -> HyperIncomingBody {
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

fn copy_request(parts: &http::request::Parts, body: Bytes) -> http::Request<HyperIncomingBody> {
    let mut request = http::Request::new(full_body(body));
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = parts.uri.clone();
    *request.version_mut() = parts.version;
    *request.headers_mut() = parts.headers.clone();
    request
}

/// Runs the live call with buffered bodies and hands a copy of the request
/// to the candidate in the background; the caller gets the live answer.
async fn with_shadow(
    state: &Arc<AppState>,
    entry: &Arc<FunctionEntry>,
    version: &Arc<VersionEntry>,
    spec: ShadowSpec,
    request: http::Request<HyperIncomingBody>,
) -> Result<Invoked, ApiError> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await.map_err(|e| match e {
        flint_runtime::WasiHttpError::HttpRequestBodySize(_) => ApiError::too_large(
            "request body",
            state.config.max_request_body_bytes,
            "--max-request-body-bytes",
        ),
        other => ApiError::bad_request(format!("could not read the request body: {other}")),
    })?;
    let body = body.to_bytes();
    let live = run(state, entry, version, copy_request(&parts, body.clone())).await?;
    let (response_parts, response_body) = live.response.into_parts();
    let live_body = Limited::new(response_body, MAX_SHADOW_BODY)
        .collect()
        .await
        .map_err(|e| ApiError::internal(format!("reading the live response: {e}")))?
        .to_bytes();
    let answer = Answer {
        status: response_parts.status.as_u16(),
        content_type: content_type(&response_parts.headers),
        body: live_body.clone(),
    };
    let candidate_request = copy_request(&parts, body);
    tokio::spawn(shadow_call(
        state.clone(),
        entry.clone(),
        spec,
        candidate_request,
        answer,
    ));
    Ok(Invoked {
        response: http::Response::from_parts(
            response_parts,
            Full::new(live_body)
                .map_err(|never| match never {})
                .boxed_unsync(),
        ),
        request_id: live.request_id,
        version: live.version,
    })
}

fn content_type(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(String::from)
}

async fn shadow_call(
    state: Arc<AppState>,
    entry: Arc<FunctionEntry>,
    spec: ShadowSpec,
    request: http::Request<HyperIncomingBody>,
    live: Answer,
) {
    let what = format!("{} {}", request.method(), request.uri().path());
    let Ok(permit) = entry.shadow_gate.acquire().await else {
        entry.shadow.skipped();
        state.metrics.shadow(&entry.name, "skipped");
        return;
    };
    let candidate = async {
        let version = entry
            .version(spec.candidate)
            .ok_or_else(|| format!("version {} does not exist", spec.candidate))?;
        let pool = state
            .table
            .shadow_pool(&entry, &version)
            .await
            .map_err(|e| e.to_string())?;
        let response = pool
            .invoke(permit, next_request_id(), request)
            .await
            .map_err(|e| format!("{} ({})", e, e.code()))?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, MAX_SHADOW_BODY)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<LengthLimitError>() {
                    "response too large to compare".to_string()
                } else {
                    e.to_string()
                }
            })?
            .to_bytes();
        Ok::<_, String>(Answer {
            status: parts.status.as_u16(),
            content_type: content_type(&parts.headers),
            body,
        })
    }
    .await;
    let outcome = entry
        .shadow
        .record(what, &live, candidate, &spec.ignore_fields);
    state.metrics.shadow(&entry.name, outcome);
}
