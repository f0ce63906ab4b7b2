//! The CGI side of WAGI: a request as a script's environment, and a
//! script's output as a response.
//!
//! The environment follows RFC 3875 as WAGI set it: `REQUEST_METHOD`,
//! `PATH_INFO`, `QUERY_STRING`, `CONTENT_TYPE`, `CONTENT_LENGTH`, one
//! `HTTP_*` variable per request header, the `SERVER_*` variables and
//! WAGI's `X_FULL_URL`. The output is header lines, a blank line, then the
//! body; `Status` sets the status, and a `Location` without one redirects
//! with 302.

use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};
use std::collections::BTreeMap;

/// Most bytes of header lines a script may write before its body.
pub(crate) const MAX_HEADER_BYTES: usize = 64 << 10;

/// The CGI environment of a request with `content_length` body bytes,
/// after `base` (the function's own `env`); a CGI variable of the same
/// name replaces the function's.
pub(crate) fn environment(
    parts: &http::request::Parts,
    content_length: usize,
    base: &BTreeMap<String, String>,
) -> Vec<(String, String)> {
    let uri = &parts.uri;
    let mut env: Vec<(String, String)> = Vec::new();
    let mut set = |name: &str, value: String| env.push((name.to_string(), value));
    let host = parts
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(String::from)
        .or_else(|| uri.authority().map(|a| a.to_string()))
        .unwrap_or_else(|| "localhost".into());
    let (server_name, server_port) = split_host(&host);
    set("GATEWAY_INTERFACE", "CGI/1.1".into());
    set(
        "SERVER_SOFTWARE",
        concat!("Flint/", env!("CARGO_PKG_VERSION")).into(),
    );
    set("SERVER_PROTOCOL", format!("{:?}", parts.version));
    set("SERVER_NAME", server_name);
    set("SERVER_PORT", server_port);
    set("REQUEST_METHOD", parts.method.to_string());
    set("SCRIPT_NAME", String::new());
    set("PATH_INFO", uri.path().to_string());
    set("PATH_TRANSLATED", uri.path().to_string());
    set("QUERY_STRING", uri.query().unwrap_or("").to_string());
    set(
        "X_FULL_URL",
        format!(
            "http://{host}{}",
            uri.path_and_query().map_or("/", |p| p.as_str())
        ),
    );
    set("X_RAW_PATH_INFO", uri.path().to_string());
    set("CONTENT_LENGTH", content_length.to_string());
    set(
        "CONTENT_TYPE",
        parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string(),
    );
    for (name, value) in &parts.headers {
        // The body's own variables, and credentials, which RFC 3875 keeps
        // from scripts.
        if name == http::header::CONTENT_TYPE
            || name == http::header::CONTENT_LENGTH
            || name == http::header::AUTHORIZATION
        {
            continue;
        }
        let Ok(value) = value.to_str() else { continue };
        let var = format!(
            "HTTP_{}",
            name.as_str().to_ascii_uppercase().replace('-', "_")
        );
        // Repeated headers join as one variable, as proxies join them.
        match env.iter_mut().find(|(k, _)| *k == var) {
            Some((_, joined)) => {
                joined.push_str(", ");
                joined.push_str(value);
            }
            None => env.push((var, value.to_string())),
        }
    }
    // The function's own variables first, unless the request sets one of
    // the same name: a guest reads the first of duplicates.
    let mut all: Vec<(String, String)> = base
        .iter()
        .filter(|(k, _)| !env.iter().any(|(set, _)| set == *k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    all.append(&mut env);
    all
}

/// A `Host` value as `SERVER_NAME` and `SERVER_PORT` (80 when it names
/// none): `name:8080`, `name`, `[::1]:8080`, `[::1]`.
fn split_host(host: &str) -> (String, String) {
    if let Some((addr, after)) = host.strip_prefix('[').and_then(|h| h.split_once(']')) {
        let port = after.strip_prefix(':').filter(|p| !p.is_empty());
        return (format!("[{addr}]"), port.unwrap_or("80").to_string());
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            (name.to_string(), port.to_string())
        }
        _ => (host.to_string(), "80".to_string()),
    }
}

/// Why a script's output is no CGI response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CgiError {
    /// No blank line ends the headers (or the output is empty).
    #[error(
        "the module wrote no CGI headers: its output must start with header lines such as `Content-Type: text/plain`, then an empty line, then the body{0}"
    )]
    NoHeaders(String),
    /// A header line that does not parse.
    #[error("the module wrote a malformed CGI header line {0:?}: expected `Name: value`")]
    BadHeader(String),
    /// A `Status` that is not a status code.
    #[error(
        "the module wrote a malformed CGI `Status` {0:?}: expected a code such as `404 Not Found`"
    )]
    BadStatus(String),
}

/// Parses a script's stdout into a response head and body.
pub(crate) fn parse_response(output: Bytes) -> Result<http::Response<Bytes>, CgiError> {
    let (end, separator) = match header_end(&output) {
        Some(found) => found,
        None => {
            let hint = if output.is_empty() {
                " (it wrote nothing to stdout)".to_string()
            } else {
                let start = String::from_utf8_lossy(&output[..output.len().min(40)]).into_owned();
                format!(" (it wrote {start:?}...)")
            };
            return Err(CgiError::NoHeaders(hint));
        }
    };
    let head = std::str::from_utf8(&output[..end])
        .map_err(|_| CgiError::BadHeader("(not UTF-8)".into()))?;
    let mut response = http::Response::new(output.slice(end + separator..));
    let mut status = None;
    for line in head.lines() {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| CgiError::BadHeader(line.to_string()))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split_whitespace().next().unwrap_or("");
            status = Some(
                code.parse::<u16>()
                    .ok()
                    .and_then(|c| StatusCode::from_u16(c).ok())
                    .ok_or_else(|| CgiError::BadStatus(value.to_string()))?,
            );
            continue;
        }
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| CgiError::BadHeader(line.to_string()))?;
        let value =
            HeaderValue::from_str(value).map_err(|_| CgiError::BadHeader(line.to_string()))?;
        response.headers_mut().append(name, value);
    }
    let redirect = response.headers().contains_key(http::header::LOCATION);
    *response.status_mut() = match status {
        Some(status) => status,
        None if redirect => StatusCode::FOUND,
        None => StatusCode::OK,
    };
    Ok(response)
}

/// Where the header block ends: the offset of the blank line and the
/// length of the separator (`\n\n` or `\r\n\r\n`). Only the first
/// [`MAX_HEADER_BYTES`] are searched.
fn header_end(output: &[u8]) -> Option<(usize, usize)> {
    let head = &output[..output.len().min(MAX_HEADER_BYTES)];
    let lf = head.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2));
    let crlf = head
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 < b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(out: &'static [u8]) -> Result<http::Response<Bytes>, CgiError> {
        parse_response(Bytes::from_static(out))
    }

    #[test]
    fn headers_status_and_body() {
        let r = parse(b"Content-Type: text/plain\r\nStatus: 418 I'm a teapot\r\nX-A: 1\r\nX-A: 2\r\n\r\nhi\n\nthere").unwrap();
        assert_eq!(r.status(), StatusCode::IM_A_TEAPOT);
        assert_eq!(r.headers()["content-type"], "text/plain");
        assert_eq!(r.headers().get_all("x-a").iter().count(), 2);
        assert_eq!(r.body(), "hi\n\nthere");
        let r = parse(b"Location: /elsewhere\n\n").unwrap();
        assert_eq!(r.status(), StatusCode::FOUND);
        assert_eq!(r.headers()["location"], "/elsewhere");
        assert_eq!(r.body(), "");
    }

    #[test]
    fn output_without_headers_is_refused_with_a_reason() {
        let e = parse(b"just a body").unwrap_err();
        assert!(e.to_string().contains("\"just a body\""), "{e}");
        assert!(
            parse(b"")
                .unwrap_err()
                .to_string()
                .contains("wrote nothing")
        );
        assert_eq!(
            parse(b"no colon here\n\nbody").unwrap_err(),
            CgiError::BadHeader("no colon here".into())
        );
        assert_eq!(
            parse(b"Status: teapot\n\n").unwrap_err(),
            CgiError::BadStatus("teapot".into())
        );
    }

    #[test]
    fn the_environment_carries_the_request() {
        let request = http::Request::builder()
            .method("POST")
            .uri("http://example.com:8080/a/b?x=1&y=2")
            .header("host", "example.com:8080")
            .header("content-type", "application/json")
            .header("x-trace", "t1")
            .header("x-trace", "t2")
            .header("authorization", "Bearer secret")
            .body(())
            .unwrap();
        let (parts, ()) = request.into_parts();
        let base = BTreeMap::from([
            ("GREETING".to_string(), "hi".to_string()),
            ("PATH_INFO".to_string(), "shadowed".to_string()),
        ]);
        let env = environment(&parts, 5, &base);
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(env.iter().filter(|(n, _)| n == "PATH_INFO").count(), 1);
        assert_eq!(get("GREETING"), Some("hi"));
        assert_eq!(get("REQUEST_METHOD"), Some("POST"));
        assert_eq!(get("PATH_INFO"), Some("/a/b"));
        assert_eq!(get("QUERY_STRING"), Some("x=1&y=2"));
        assert_eq!(get("CONTENT_TYPE"), Some("application/json"));
        assert_eq!(get("CONTENT_LENGTH"), Some("5"));
        assert_eq!(get("SERVER_NAME"), Some("example.com"));
        assert_eq!(get("SERVER_PORT"), Some("8080"));
        assert_eq!(get("HTTP_X_TRACE"), Some("t1, t2"));
        assert_eq!(get("HTTP_AUTHORIZATION"), None);
        assert_eq!(
            get("X_FULL_URL"),
            Some("http://example.com:8080/a/b?x=1&y=2")
        );
    }

    #[test]
    fn hosts_split_into_name_and_port() {
        let split = |h: &str| split_host(h);
        assert_eq!(split("a.test:8080"), ("a.test".into(), "8080".into()));
        assert_eq!(split("a.test"), ("a.test".into(), "80".into()));
        assert_eq!(split("[::1]:3000"), ("[::1]".into(), "3000".into()));
        assert_eq!(split("[::1]"), ("[::1]".into(), "80".into()));
    }
}
