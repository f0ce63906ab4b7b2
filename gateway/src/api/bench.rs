//! Benchmarks over the admin API: `POST /v1/functions/{name}/bench` measures
//! every start kind in the server; `/v1/functions/{name}/bench/{version}/
//! {fresh|reuse}/{path...}` is what a load run of `flint bench --load` calls,
//! and `DELETE /v1/functions/{name}/bench` ends it.

use super::{ApiError, App, Body, RequestBody, json, no_content, read_body};
use crate::core::{BenchMode, BenchRequest, Control, CoreError, Target};
use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use serde::Deserialize;
use std::time::Duration;

/// Samples of each start kind when the request names none.
const DEFAULT_SAMPLES: u32 = 200;
/// Time for all rounds when the request names none.
const DEFAULT_MAX_SECONDS: f64 = 10.0;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    name: String,
    value: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BenchBody {
    /// A version number or an alias; the default alias when absent.
    target: Option<String>,
    method: Option<String>,
    path: Option<String>,
    #[serde(default)]
    headers: Vec<Header>,
    /// The sample request's body, base64-encoded.
    body_base64: Option<String>,
    samples: Option<u32>,
    max_seconds: Option<f64>,
    #[serde(default)]
    allow_side_effects: bool,
}

fn bad(message: impl Into<String>) -> ApiError {
    CoreError::BadRequest(message.into()).into()
}

fn parse(body: BenchBody) -> Result<BenchRequest, ApiError> {
    let method = match body.method.as_deref() {
        None => Method::GET,
        Some(m) => Method::from_bytes(m.as_bytes())
            .map_err(|_| bad(format!("method {m:?} is not an HTTP method")))?,
    };
    let mut headers = HeaderMap::new();
    for Header { name, value } in body.headers {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| bad(format!("{name:?} is not a header name")))?;
        let value = HeaderValue::from_str(&value)
            .map_err(|_| bad(format!("the value of header {name} is not a header value")))?;
        headers.append(header, value);
    }
    let payload = match body.body_base64 {
        None => Bytes::new(),
        Some(text) => BASE64_STANDARD
            .decode(text)
            .map(Bytes::from)
            .map_err(|e| bad(format!("body_base64 is not base64: {e}")))?,
    };
    let max_seconds = body.max_seconds.unwrap_or(DEFAULT_MAX_SECONDS);
    let max_time = Duration::try_from_secs_f64(max_seconds).map_err(|_| {
        bad(format!(
            "max_seconds must be a positive number, not {max_seconds}"
        ))
    })?;
    Ok(BenchRequest {
        method,
        path: body.path.unwrap_or_else(|| "/".into()),
        headers,
        body: payload,
        samples: body.samples.unwrap_or(DEFAULT_SAMPLES),
        max_time,
        allow_side_effects: body.allow_side_effects,
    })
}

fn target(text: Option<&str>) -> Target<'_> {
    match text {
        None => Target::Default,
        Some(t) if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) => {
            t.parse().map_or(Target::Alias(t), Target::Version)
        }
        Some(alias) => Target::Alias(alias),
    }
}

/// `POST /v1/functions/{name}/bench`.
pub(super) async fn run(
    control: &Control,
    name: &str,
    request: Request<impl RequestBody>,
) -> Result<Response<Body>, ApiError> {
    let bytes = read_body(request, control.limits().json_body).await?;
    let body: BenchBody =
        serde_json::from_slice(&bytes).map_err(|e| bad(format!("invalid JSON: {e}")))?;
    let target_text = body.target.clone();
    let request = parse(body)?;
    let report = control
        .bench(name, target(target_text.as_deref()), request)
        .await?;
    Ok(json(StatusCode::OK, &report))
}

/// `DELETE /v1/functions/{name}/bench`.
pub(super) fn end(control: &Control, name: &str) -> Result<Response<Body>, ApiError> {
    control.end_bench(name)?;
    Ok(no_content())
}

/// Whether `path` is a benchmark's: it runs a function, changes nothing,
/// and so needs no catching up with the registry first.
pub(super) fn is_bench(path: &str) -> bool {
    path.strip_prefix("/v1/functions/")
        .and_then(|rest| rest.split('/').nth(1))
        == Some("bench")
}

/// Whether `path` (after `/v1/functions/`) is below a function's bench
/// resource: a call of a load run, or a mistaken one.
pub(super) fn is_load_path(path: &str) -> bool {
    let mut segments = path.splitn(3, '/');
    segments.next();
    segments.next() == Some("bench") && segments.next().is_some_and(|rest| !rest.is_empty())
}

/// Splits `{name}/bench/{version}/{mode}/{rest}` (the path after
/// `/v1/functions/`) into its parts.
pub(super) fn load_path(path: &str) -> Option<(&str, u32, BenchMode, &str)> {
    let (name, rest) = path.split_once('/')?;
    let rest = rest.strip_prefix("bench/")?;
    let (version, rest) = rest.split_once('/')?;
    let (mode, rest) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    Some((name, version.parse().ok()?, BenchMode::parse(mode)?, rest))
}

/// A call of a load run: the guest path `rest` on the bench pool of `mode`.
pub(super) async fn load_call(
    app: &App,
    request: Request<impl RequestBody>,
    name: &str,
    version: u32,
    mode: BenchMode,
    rest: &str,
) -> Result<Response<Body>, ApiError> {
    super::invoke::run(app, request, name, Target::Bench(version, mode), rest).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_paths_split() {
        assert_eq!(
            load_path("hello/bench/3/fresh/a/b"),
            Some(("hello", 3, BenchMode::Fresh, "/a/b"))
        );
        assert_eq!(
            load_path("hello/bench/1/reuse"),
            Some(("hello", 1, BenchMode::Reuse, "/"))
        );
        assert_eq!(load_path("hello/bench"), None);
        assert_eq!(load_path("hello/bench/x/fresh/"), None);
        assert_eq!(load_path("hello/bench/1/other/"), None);
        assert_eq!(load_path("hello/config"), None);
        assert!(is_load_path("hello/bench/1/fresh/a"));
        assert!(is_load_path("hello/bench/x"));
        assert!(!is_load_path("hello/bench"));
        assert!(!is_load_path("hello/bench/"));
        assert!(!is_load_path("hello/config/x"));
    }

    #[test]
    fn targets() {
        assert_eq!(target(None), Target::Default);
        assert_eq!(target(Some("3")), Target::Version(3));
        assert_eq!(target(Some("prod")), Target::Alias("prod"));
    }
}
