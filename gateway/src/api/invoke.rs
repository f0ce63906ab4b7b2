//! The invoke path: `/fn/{name}[@{version}]/{rest...}` runs a function.

use super::{ApiError, App, Body, BoxError, RequestBody};
use crate::core::{CoreError, Target};
use flint_runtime::{HyperIncomingBody, WasiHttpError, format_request_id};
use http::{HeaderName, HeaderValue, Request, Response, Uri};
use http_body_util::BodyExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

/// The headers every invocation's response carries: its request id and the
/// version that served it.
const REQUEST_ID: HeaderName = HeaderName::from_static("x-flint-request-id");
const VERSION: HeaderName = HeaderName::from_static("x-flint-version");

/// Splits `name@3/rest` or `name@prod/rest` into the name, the target and
/// the guest path. All digits after `@` name a version, anything else an
/// alias.
fn parse_target(target: &str) -> (&str, Target<'_>, &str) {
    let (head, rest) = match target.find('/') {
        Some(i) => (&target[..i], &target[i..]),
        None => (target, "/"),
    };
    match head.split_once('@') {
        Some((name, v)) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => {
            match v.parse() {
                Ok(n) => (name, Target::Version(n), rest),
                Err(_) => (name, Target::Alias(v), rest),
            }
        }
        Some((name, alias)) => (name, Target::Alias(alias), rest),
        None => (head, Target::Default, rest),
    }
}

fn body_error(error: BoxError) -> WasiHttpError {
    if crate::limits::is_over_limit(&*error) {
        return WasiHttpError::HttpRequestBodySize(None);
    }
    if crate::body_timeout::as_timeout(&*error).is_some() {
        return WasiHttpError::ConnectionReadTimeout;
    }
    match error.downcast::<hyper::Error>() {
        Ok(hyper) => WasiHttpError::Hyper(*hyper),
        Err(other) => WasiHttpError::InternalError(Some(other.to_string())),
    }
}

/// `/fn/{target}/...`: the function, version or alias named in the path.
pub(super) async fn invoke(
    app: &App,
    request: Request<impl RequestBody>,
    target: &str,
) -> Result<Response<Body>, ApiError> {
    let (name, target, rest) = parse_target(target);
    run(app, request, name, target, rest).await
}

/// A path a custom route gives to `function`: the function sees the whole
/// path and runs its default alias.
pub(super) async fn routed(
    app: &App,
    request: Request<impl RequestBody>,
    function: &str,
) -> Result<Response<Body>, ApiError> {
    let path = request.uri().path().to_string();
    run(app, request, function, Target::Default, &path).await
}

pub(super) async fn run(
    app: &App,
    request: Request<impl RequestBody>,
    name: &str,
    target: Target<'_>,
    rest: &str,
) -> Result<Response<Body>, ApiError> {
    super::access::check_invoke(&app.control, &request, name)?;
    let limit = app.control.limits().request_body;
    limit.check_declared(request.headers())?;

    let (mut parts, body) = request.into_parts();
    let path_and_query = match parts.uri.query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest.to_string(),
    };
    let authority = parts
        .uri
        .authority()
        .map(|a| a.to_string())
        .or_else(|| {
            parts
                .headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(String::from)
        })
        .unwrap_or_else(|| "localhost".to_string());
    parts.uri = Uri::builder()
        .scheme("http")
        .authority(authority)
        .path_and_query(path_and_query)
        .build()
        .map_err(|e| CoreError::BadRequest(format!("bad request target: {e}")))?;
    let overflowed = Arc::new(AtomicBool::new(false));
    // The guest sees a slow body as a failed read and may answer anything
    // (or trap); the caller is told the cause, 408, whatever it did.
    let timed_out = Arc::new(OnceLock::new());
    let body: HyperIncomingBody = limit
        .stream(body)
        .map_err({
            let (overflowed, timed_out) = (overflowed.clone(), timed_out.clone());
            move |e| {
                if crate::limits::is_over_limit(&*e) {
                    overflowed.store(true, Ordering::Relaxed);
                }
                if let Some(timeout) = crate::body_timeout::as_timeout(&*e) {
                    let _ = timed_out.set(timeout.clone());
                }
                body_error(e)
            }
        })
        .boxed_unsync();

    let invoked = app
        .invoker
        .invoke(name, target, Request::from_parts(parts, body))
        .await;
    if let Some(timeout) = timed_out.get() {
        return Err(CoreError::RequestTimeout(timeout.clone()).into());
    }
    let invoked = invoked?;
    let mut response = invoked
        .response
        .map(|b| b.map_err(|e| Box::new(e) as BoxError).boxed_unsync());
    let headers = response.headers_mut();
    if let Ok(id) = HeaderValue::try_from(format_request_id(invoked.request_id)) {
        headers.insert(REQUEST_ID, id);
    }
    headers.insert(VERSION, HeaderValue::from(invoked.version));
    if overflowed.load(Ordering::Relaxed) {
        // The function saw a truncated body; the rest is unread, so this
        // connection cannot carry another request.
        headers.insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::{Target, parse_target};

    #[test]
    fn targets_split_into_name_target_and_path() {
        assert_eq!(parse_target("hello"), ("hello", Target::Default, "/"));
        assert_eq!(
            parse_target("hello/a/b"),
            ("hello", Target::Default, "/a/b")
        );
        assert_eq!(
            parse_target("hello@3/x"),
            ("hello", Target::Version(3), "/x")
        );
        assert_eq!(
            parse_target("hello@prod/x"),
            ("hello", Target::Alias("prod"), "/x")
        );
    }
}
