//! The admin API under `/v1/functions`: deploy, inspect, configure, delete,
//! read logs.

use super::{ApiError, Body, RequestBody, declared_length, json};
use crate::functions::MAX_NAME_LEN;
use crate::metrics::LoadSource;
use crate::state::AppState;
use bytes::Bytes;
use flint_runtime::{ConfigPatch, Digest, FunctionConfig};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::json;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// Largest JSON body the admin API reads.
const MAX_JSON_BODY: u64 = 1 << 20;
/// Default and largest number of log lines per request.
const DEFAULT_LOG_LIMIT: usize = 100;
const MAX_LOG_LIMIT: usize = 1000;

fn time(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Names: lowercase letters, digits and `-`, 1-63 characters.
pub fn validate_name(name: &str) -> Result<(), ApiError> {
    if crate::functions::is_valid_name(name) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_name",
            format!(
                "invalid function name {name:?}: use 1-{MAX_NAME_LEN} lowercase letters, digits or `-`"
            ),
        ))
    }
}

fn entry(state: &AppState, name: &str) -> Result<Arc<crate::functions::FunctionEntry>, ApiError> {
    state
        .table
        .get(name)
        .ok_or_else(|| ApiError::function_not_found(name))
}

/// Reads a whole body up to `limit` bytes; 413 beyond it.
pub(super) async fn read_body(
    body: impl RequestBody,
    limit: u64,
    what: &str,
    flag: &str,
) -> Result<Bytes, ApiError> {
    match Limited::new(body, limit as usize).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(ApiError::too_large(what, limit, flag)),
        Err(e) => Err(ApiError::bad_request(format!(
            "could not read the request body: {e}"
        ))),
    }
}

/// Reads an uploaded component, up to `--max-upload-bytes` (413 beyond).
pub(super) async fn read_component(
    state: &AppState,
    request: Request<impl RequestBody>,
) -> Result<Bytes, ApiError> {
    let limit = state.config.max_upload_bytes;
    if declared_length(&request).is_some_and(|len| len > limit) {
        return Err(ApiError::too_large(
            "component",
            limit,
            "--max-upload-bytes",
        ));
    }
    read_body(
        request.into_body(),
        limit,
        "component",
        "--max-upload-bytes",
    )
    .await
}

pub(super) async fn deploy(
    state: &Arc<AppState>,
    name: &str,
    request: Request<impl RequestBody>,
) -> Result<Response<Body>, ApiError> {
    // Read the (bounded) body before judging the name, so the client gets
    // the 400 on a connection it can keep using.
    let bytes = read_component(state, request).await?;
    validate_name(name)?;
    let digest = Digest::of(&bytes);

    // One deploy at a time: version numbers and the table stay in step.
    let _deploying = state.deploy_lock.lock().await;
    if let Some(latest) = state.table.get(name).and_then(|e| e.latest())
        && latest.record.digest == digest
    {
        return Ok(json(
            StatusCode::OK,
            &json!({
                "name": name, "version": latest.record.version, "digest": digest.to_string(),
                "created": false, "size_bytes": latest.record.size_bytes, "compile_ms": latest.record.compile_ms,
            }),
        ));
    }

    let (component, source, compile_ms, size) = prepare(state, &digest, bytes).await?;

    let added =
        state
            .registry
            .add_version(name, &digest, size, compile_ms, &FunctionConfig::default())?;
    let version = added.record.version;
    state
        .table
        .install(
            name,
            &FunctionConfig::default(),
            added.record,
            component,
            source,
        )
        .map_err(ApiError::internal)?;
    tracing::info!(function = name, version, %digest, compile_ms, "deployed");
    Ok(json(
        StatusCode::CREATED,
        &json!({
            "name": name, "version": version, "digest": digest.to_string(),
            "created": true, "size_bytes": size, "compile_ms": compile_ms,
        }),
    ))
}

/// Validates and compiles an upload (or maps its artifact when the same
/// bytes were compiled before) and stores its bytes; bounded by the compile
/// timeout. Returns the component, where it came from, the compile time in
/// ms and the size.
pub(crate) async fn prepare(
    state: &AppState,
    digest: &Digest,
    bytes: Bytes,
) -> Result<(flint_runtime::Component, LoadSource, f64, u64), ApiError> {
    let runtime = state.runtime.clone();
    let blobs = state.blobs.clone();
    let digest = digest.clone();
    let task = tokio::task::spawn_blocking(move || -> Result<_, ApiError> {
        // Identical bytes deployed before (under any name) are already
        // validated and compiled for this engine: map them instead.
        let (component, source, compile_ms) = match runtime.load_cached(&digest) {
            Some(component) => (component, LoadSource::Disk, 0.0),
            None => {
                let compiled = runtime.compile(&bytes)?;
                (
                    compiled.component,
                    LoadSource::Compile,
                    compiled.compile_time.as_secs_f64() * 1000.0,
                )
            }
        };
        blobs.put(&digest, &bytes).map_err(ApiError::internal)?;
        Ok((component, source, compile_ms, bytes.len() as u64))
    });
    // Cranelift cannot be interrupted: on timeout the compile finishes in
    // the background (its artifact may land in the cache), but the upload is
    // refused and nothing is recorded.
    let limit = state.config.compile_timeout;
    match tokio::time::timeout(limit, task).await {
        Ok(joined) => joined.map_err(ApiError::internal)?,
        Err(_) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "compile_timeout",
            format!(
                "compiling the component took longer than {} ms (server flag --compile-timeout-ms); make it smaller",
                limit.as_millis()
            ),
        )),
    }
}

pub(super) fn list(state: &AppState) -> Result<Response<Body>, ApiError> {
    let functions: Vec<_> = state
        .table
        .list()
        .into_iter()
        .map(|e| {
            let latest = e.latest();
            json!({
                "name": e.name,
                "latest_version": latest.as_ref().map(|v| v.record.version),
                "digest": latest.as_ref().map(|v| v.record.digest.to_string()),
                "versions": e.versions().len(),
                "size_bytes": latest.as_ref().map(|v| v.record.size_bytes),
                "updated_at": time(e.times().1),
                "invocations": e.stats.invocations(),
            })
        })
        .collect();
    Ok(json(StatusCode::OK, &json!({ "functions": functions })))
}

pub(super) fn info(state: &AppState, name: &str) -> Result<Response<Body>, ApiError> {
    let e = entry(state, name)?;
    let versions: Vec<_> = e
        .versions()
        .iter()
        .map(|v| {
            json!({
                "version": v.record.version,
                "digest": v.record.digest.to_string(),
                "size_bytes": v.record.size_bytes,
                "compile_ms": v.record.compile_ms,
                "created_at": time(v.record.created_at),
                "loaded": v.pool().is_some(),
            })
        })
        .collect();
    let (created, updated) = e.times();
    let gate = e.gate();
    let stats = e
        .stats
        .snapshot(gate.in_flight(), gate.waiting(), e.warm_instances());
    Ok(json(
        StatusCode::OK,
        &json!({
            "name": e.name,
            "latest_version": e.latest().map(|v| v.record.version),
            "created_at": time(created),
            "updated_at": time(updated),
            "config": *e.config(),
            "versions": versions,
            "stats": stats,
        }),
    ))
}

pub(super) async fn delete(state: &Arc<AppState>, name: &str) -> Result<Response<Body>, ApiError> {
    let _deploying = state.deploy_lock.lock().await;
    entry(state, name)?;
    state.registry.delete_function(name)?;
    state.forget_function(name)?;
    let mut response = Response::new(super::full(Bytes::new()));
    *response.status_mut() = StatusCode::NO_CONTENT;
    Ok(response)
}

pub(super) fn get_config(state: &AppState, name: &str) -> Result<Response<Body>, ApiError> {
    let e = entry(state, name)?;
    Ok(json(StatusCode::OK, &json!(*e.config())))
}

pub(super) async fn patch_config(
    state: &Arc<AppState>,
    name: &str,
    request: Request<impl RequestBody>,
) -> Result<Response<Body>, ApiError> {
    let e = entry(state, name)?;
    let body = read_json_body(request).await?;
    let patch = parse_patch(&body)?;
    let _deploying = state.deploy_lock.lock().await;
    let next = e.config().patched(patch)?;
    state
        .secrets
        .check(&next)
        .map_err(|message| ApiError::new(StatusCode::BAD_REQUEST, "invalid_config", message))?;
    if !state.registry.set_config(name, &next)? {
        return Err(ApiError::function_not_found(name));
    }
    let started = Instant::now();
    state
        .table
        .set_config(&e, next.clone(), SystemTime::now())
        .map_err(ApiError::internal)?;
    tracing::info!(
        function = name,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "config updated"
    );
    Ok(json(StatusCode::OK, &json!(next)))
}

/// Reads a JSON request body of at most [`MAX_JSON_BODY`] bytes.
pub(super) async fn read_json_body(request: Request<impl RequestBody>) -> Result<Bytes, ApiError> {
    read_body(
        request.into_body(),
        MAX_JSON_BODY,
        "JSON body",
        "(fixed 1 MiB)",
    )
    .await
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

pub(super) fn logs(
    state: &AppState,
    name: &str,
    query: Option<&str>,
) -> Result<Response<Body>, ApiError> {
    let e = entry(state, name)?;
    let mut limit = DEFAULT_LOG_LIMIT;
    let mut after = None;
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let number = || {
            value.parse::<u64>().map_err(|_| {
                ApiError::bad_request(format!("`{key}` must be a number, got {value:?}"))
            })
        };
        match key {
            "limit" => limit = (number()? as usize).min(MAX_LOG_LIMIT),
            "after" => after = Some(number()?),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter `{key}`; use limit and after"
                )));
            }
        }
    }
    let lines: Vec<_> = e
        .log
        .tail(after, limit)
        .into_iter()
        .map(|l| {
            json!({
                "seq": l.seq, "time": time(l.time), "version": l.version,
                "request_id": l.request_id, "stream": l.stream, "line": l.line,
            })
        })
        .collect();
    Ok(json(StatusCode::OK, &json!({ "lines": lines })))
}

#[cfg(test)]
mod tests {
    use super::validate_name;

    #[test]
    fn names_follow_the_rules() {
        for ok in ["a", "hello", "my-fn-2", &"x".repeat(63)] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Hello", "a_b", "a.b", "a b", &"x".repeat(64), "ünï"] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }
}
