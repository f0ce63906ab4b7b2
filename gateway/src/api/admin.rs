//! Functions under `/v1/functions`: deploy, configure, read logs; and
//! `/v1/doctor`. Listing, details and deletes are one core call each (see
//! the router).

use super::{ApiError, Body, BoxError, RequestBody, caller, json, kind_query, read_body};
use crate::core::{Control, CoreError};
use bytes::Bytes;
use flint_runtime::ConfigPatch;
use futures::TryStreamExt;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use serde_json::json;
use tokio::io::AsyncReadExt;

/// Bytes read from a backup archive per body chunk.
const BACKUP_CHUNK: usize = 64 << 10;

/// `PUT /v1/functions/{name}`: the body is the component.
pub(super) async fn deploy(
    control: &Control,
    name: &str,
    request: Request<impl RequestBody>,
) -> Result<Response<Body>, ApiError> {
    // Read the (bounded) body before judging the name and the query, so the
    // client gets the 400 on a connection it can keep using.
    let query = request.uri().query().map(String::from);
    let bytes = read_body(request, control.limits().upload).await?;
    let deployed = control
        .deploy(name, bytes, kind_query(query.as_deref())?)
        .await?;
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
    let caller = caller(&request);
    let body = read_body(request, control.limits().json_body).await?;
    let patch = parse_patch(&body)?;
    if let Some(env) = &patch.env {
        caller.allow_secrets(env)?;
    }
    let config = control.patch_config(name, patch).await?;
    Ok(json(StatusCode::OK, &config))
}

/// Parses a config patch; a bad value is reported with its field's name.
fn parse_patch(body: &[u8]) -> Result<ConfigPatch, ApiError> {
    let invalid = |message: String| ApiError::new("invalid_config", message);
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
                    "bad_request",
                    format!("unknown query parameter `{key}`; use limit and after"),
                ));
            }
        }
    }
    let lines = control.logs(name, after, limit)?;
    Ok(json(StatusCode::OK, &json!({ "lines": lines })))
}

/// `POST /v1/doctor?repair=true|false`: checks the stored state, repairs
/// what it can (unless `repair=false`) and reports the rest.
pub(super) async fn doctor(
    control: &Control,
    query: Option<&str>,
) -> Result<Response<Body>, ApiError> {
    let bad = |message: String| ApiError::new("bad_request", message);
    let mut repair = true;
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        match pair.split_once('=').unwrap_or((pair, "")) {
            ("repair", "true" | "") => repair = true,
            ("repair", "false") => repair = false,
            ("repair", other) => {
                return Err(bad(format!(
                    "`repair` must be true or false, got {other:?}"
                )));
            }
            (key, _) => return Err(bad(format!("unknown query parameter `{key}`; use repair"))),
        }
    }
    Ok(json(StatusCode::OK, &control.doctor(repair).await?))
}

/// `GET /v1/backup`: a consistent backup archive of the server, streamed.
pub(super) async fn backup(control: &Control) -> Result<Response<Body>, ApiError> {
    let path = control.config().data_dir.join(format!(
        "backup-{}.tar",
        flint_runtime::format_request_id(flint_runtime::next_request_id())
    ));
    let summary = control.backup(&path).await;
    let file = match summary {
        Ok(_) => tokio::fs::File::open(&path).await,
        Err(e) => {
            let _ = tokio::fs::remove_file(&path).await;
            return Err(e.into());
        }
    };
    // The open file keeps its bytes: the name can go at once.
    let _ = tokio::fs::remove_file(&path).await;
    let summary = summary?;
    let file = file.map_err(|e| CoreError::internal(format!("reading the backup: {e}")))?;
    let chunks = futures::stream::try_unfold(file, |mut file| async move {
        let mut buffer = vec![0u8; BACKUP_CHUNK];
        let n = file.read(&mut buffer).await?;
        buffer.truncate(n);
        Ok::<_, std::io::Error>((n > 0).then(|| (Frame::data(Bytes::from(buffer)), file)))
    });
    let body = StreamBody::new(chunks.map_err(|e| Box::new(e) as BoxError)).boxed_unsync();
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-tar"),
    );
    headers.insert(
        "x-flint-backup-functions",
        HeaderValue::from(summary.functions),
    );
    headers.insert("x-flint-backup-blobs", HeaderValue::from(summary.blobs));
    Ok(response)
}
