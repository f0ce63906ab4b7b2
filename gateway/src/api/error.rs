//! The one error shape of the API, `{"error": {"code": ..., "message": ...}}`,
//! and the list of its codes, the one place where a code gets its HTTP
//! status.

use super::{Body, full};
use crate::core::CoreError;
use http::{HeaderValue, Response, StatusCode};

/// An error answered to a caller.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// What happened and, where possible, what to do.
    pub message: String,
    /// `Retry-After` seconds, for 429.
    pub retry_after: Option<u64>,
}

/// An error code of the API: the status it is answered with and what it
/// means. [`CODES`] is the one list; the OpenAPI document, the README's
/// error table and every answer take their codes and statuses from it.
#[derive(Debug)]
pub struct Code {
    /// The stable machine-readable code.
    pub name: &'static str,
    /// The HTTP status it is always answered with.
    pub status: StatusCode,
    /// When the server answers with it.
    pub meaning: &'static str,
}

const fn code(name: &'static str, status: StatusCode, meaning: &'static str) -> Code {
    Code {
        name,
        status,
        meaning,
    }
}

/// Every error code the server answers with.
pub const CODES: &[Code] = &[
    code(
        "bad_request",
        StatusCode::BAD_REQUEST,
        "a malformed request: the message names the field or value",
    ),
    code(
        "invalid_name",
        StatusCode::BAD_REQUEST,
        "a name that is not 1-63 lowercase letters, digits and `-`",
    ),
    code(
        "invalid_config",
        StatusCode::BAD_REQUEST,
        "a config field with a bad value (named)",
    ),
    code(
        "invalid_trigger",
        StatusCode::BAD_REQUEST,
        "a trigger with a bad field (named)",
    ),
    code(
        "invalid_schedule",
        StatusCode::BAD_REQUEST,
        "a schedule with a bad field (named: which cron field, the time zone, the path, the body's size), or a function that has as many schedules as allowed",
    ),
    code(
        "invalid_release",
        StatusCode::BAD_REQUEST,
        "a bad alias name, weights, steps or versions (named)",
    ),
    code(
        "invalid_component",
        StatusCode::BAD_REQUEST,
        "not a program Flint can run: not wasm, a component without a `wasi:http/incoming-handler` (WASI 0.2) or `wasi:http/handler` (WASI 0.3) export, a core module without `_start`, imports Flint does not provide (listed), or another kind than `?kind=` asked for",
    ),
    code(
        "compile_timeout",
        StatusCode::BAD_REQUEST,
        "compiling the upload took longer than `--compile-timeout-ms`; nothing was stored",
    ),
    code(
        "invalid_desired_state",
        StatusCode::BAD_REQUEST,
        "a plan or apply found problems (all listed); nothing changed",
    ),
    code(
        "unauthorized",
        StatusCode::UNAUTHORIZED,
        "no token, or a wrong, expired or revoked one",
    ),
    code(
        "forbidden",
        StatusCode::FORBIDDEN,
        "the token's scope or globs do not cover the request (the message names the scope needed)",
    ),
    code(
        "forbidden_host",
        StatusCode::FORBIDDEN,
        "a loopback listener got a `Host` other than localhost, 127.0.0.1, [::1] or an `--allowed-host`",
    ),
    code(
        "forbidden_origin",
        StatusCode::FORBIDDEN,
        "an admin request from a web page of another origin",
    ),
    code("not_found", StatusCode::NOT_FOUND, "no route for the path"),
    code(
        "function_not_found",
        StatusCode::NOT_FOUND,
        "no function of that name",
    ),
    code(
        "version_not_found",
        StatusCode::NOT_FOUND,
        "the function has no such version",
    ),
    code(
        "alias_not_found",
        StatusCode::NOT_FOUND,
        "the function has no such alias",
    ),
    code(
        "canary_not_found",
        StatusCode::NOT_FOUND,
        "the function has no canary",
    ),
    code(
        "trigger_not_found",
        StatusCode::NOT_FOUND,
        "the function has no queue trigger",
    ),
    code(
        "schedule_not_found",
        StatusCode::NOT_FOUND,
        "the function has no schedule of that id",
    ),
    code(
        "token_not_found",
        StatusCode::NOT_FOUND,
        "no token of that name",
    ),
    code(
        "method_not_allowed",
        StatusCode::METHOD_NOT_ALLOWED,
        "the path does not take that method",
    ),
    code(
        "request_timeout",
        StatusCode::REQUEST_TIMEOUT,
        "a request body arrived too slowly: under `--body-min-rate` bytes/s after `--body-grace`, or longer than `--body-timeout` in all (the message names the rule and its flags)",
    ),
    code(
        "release_conflict",
        StatusCode::CONFLICT,
        "a canary is running, or there is nothing to roll back to",
    ),
    code(
        "confirmation_required",
        StatusCode::CONFLICT,
        "a benchmark of a function that may call out to other hosts, without `allow_side_effects`",
    ),
    code(
        "component_missing",
        StatusCode::CONFLICT,
        "apply needs a component the server does not hold (`PUT /v1/components` it first)",
    ),
    code(
        "conflict",
        StatusCode::CONFLICT,
        "the registry changed under a concurrent write, or the name is taken; retry",
    ),
    code(
        "payload_too_large",
        StatusCode::PAYLOAD_TOO_LARGE,
        "an upload or request body over its limit (the message names the flag)",
    ),
    code(
        "unsupported_media_type",
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "an admin write whose body is not `application/json` (uploads: `application/wasm` or `application/octet-stream`)",
    ),
    code(
        "overloaded",
        StatusCode::TOO_MANY_REQUESTS,
        "over `max_concurrency` with the queue full or its wait expired, all `--max-instances` slots busy, or (uploads) all `--max-compiles` slots busy for `--compile-queue-timeout-ms`; `Retry-After` says when to retry",
    ),
    code(
        "trap",
        StatusCode::INTERNAL_SERVER_ERROR,
        "the guest trapped (the message has the trap)",
    ),
    code(
        "memory_limit_exceeded",
        StatusCode::INTERNAL_SERVER_ERROR,
        "the guest hit `memory_mb` (the message names the cap)",
    ),
    code(
        "resource_limit_exceeded",
        StatusCode::INTERNAL_SERVER_ERROR,
        "the guest made the host hold more than its budget: handles, header or body bytes, outgoing requests, response bytes or log output (the message names the limit)",
    ),
    code(
        "no_response",
        StatusCode::INTERNAL_SERVER_ERROR,
        "the guest returned without setting a response",
    ),
    code(
        "internal_error",
        StatusCode::INTERNAL_SERVER_ERROR,
        "a fault of the server (logged)",
    ),
    code(
        "function_error",
        StatusCode::BAD_GATEWAY,
        "the guest answered with a `wasi:http` error code, or a WAGI module exited with a failure status or wrote no CGI response (the message says which)",
    ),
    code(
        "function_disabled",
        StatusCode::SERVICE_UNAVAILABLE,
        "the function's stored state is broken (a registry row that does not parse, or its component is gone); run `flint doctor`",
    ),
    code(
        "broker_unavailable",
        StatusCode::SERVICE_UNAVAILABLE,
        "RabbitMQ is down or triggers are disabled; `Retry-After` says when to retry",
    ),
    code(
        "timeout",
        StatusCode::GATEWAY_TIMEOUT,
        "the call exceeded `timeout_ms` (the message names the limit)",
    ),
    code(
        "insufficient_storage",
        StatusCode::INSUFFICIENT_STORAGE,
        "storing the upload would take the data dir past `--max-storage-bytes`; nothing was stored",
    ),
];

/// The status a code is answered with.
pub fn status_of(name: &str) -> StatusCode {
    CODES
        .iter()
        .find(|c| c.name == name)
        .map_or(StatusCode::INTERNAL_SERVER_ERROR, |c| c.status)
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        Self {
            status: status_of(e.code()),
            code: e.code(),
            retry_after: e.retry_after_secs(),
            message: e.to_string(),
        }
    }
}

impl From<crate::limits::LimitError> for ApiError {
    fn from(e: crate::limits::LimitError) -> Self {
        CoreError::from(e).into()
    }
}

impl ApiError {
    /// An error of the HTTP layer itself (unknown path, wrong method), with
    /// its code's status.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: status_of(code),
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// The JSON response.
    pub fn into_response(self) -> Response<Body> {
        let body = serde_json::json!({ "error": { "code": self.code, "message": self.message } });
        let mut response = Response::new(full(body.to_string()));
        *response.status_mut() = self.status;
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if matches!(
            self.status,
            StatusCode::PAYLOAD_TOO_LARGE | StatusCode::REQUEST_TIMEOUT
        ) {
            // The rest of the body is left unread: the connection cannot be
            // reused, and saying so keeps clients from sending on it.
            response
                .headers_mut()
                .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"flint\""),
            );
        }
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// The snake_case string literals in `text`.
    fn literals(text: &str) -> impl Iterator<Item = &str> {
        text.split('"')
            .skip(1)
            .step_by(2)
            .filter(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
    }

    /// Every error code the server can answer with, read from the code that
    /// makes them: the `code()` of the core's and the runtime's errors, and
    /// the adapter's own `ApiError::new` calls (the code is their first
    /// string literal).
    fn codes_in_source() -> BTreeSet<&'static str> {
        let mut codes = BTreeSet::new();
        for source in [
            include_str!("../core/error.rs"),
            include_str!("../../../runtime/src/error.rs"),
        ] {
            let body = &source[source.find("pub fn code(&self)").unwrap()..];
            let body = &body[..body.find("\n    }\n").unwrap()];
            codes.extend(literals(body));
        }
        for source in [
            include_str!("mod.rs"),
            include_str!("access.rs"),
            include_str!("admin.rs"),
            include_str!("bench.rs"),
            include_str!("desired.rs"),
            include_str!("invoke.rs"),
            include_str!("releases.rs"),
            include_str!("tokens.rs"),
            include_str!("triggers.rs"),
            include_str!("schedules.rs"),
        ] {
            let code = source.split("#[cfg(test)]").next().unwrap();
            for call in code.split("ApiError::new(").skip(1) {
                codes.extend(literals(call).next());
            }
        }
        codes
    }

    #[test]
    fn every_code_the_server_makes_is_listed_once() {
        let listed: BTreeSet<&str> = super::CODES.iter().map(|c| c.name).collect();
        assert_eq!(listed.len(), super::CODES.len(), "a code is listed twice");
        let made = codes_in_source();
        assert!(made.len() > 30, "{made:?}");
        assert_eq!(
            listed.difference(&made).collect::<Vec<_>>(),
            Vec::<&&str>::new(),
            "listed in CODES, made nowhere"
        );
        assert_eq!(
            made.difference(&listed).collect::<Vec<_>>(),
            Vec::<&&str>::new(),
            "made by the server, missing from CODES"
        );
    }

    /// The README's error table: each row's codes and the status they share.
    fn readme_table() -> Vec<(Vec<&'static str>, u16)> {
        let readme = include_str!("../../../README.md");
        let table = &readme[readme
            .find("| code | HTTP | when |")
            .expect("the error table")..];
        table
            .lines()
            .skip(2)
            .take_while(|l| l.starts_with('|'))
            .map(|row| {
                let cells: Vec<&str> = row.split('|').collect();
                let codes = cells[1].split('`').skip(1).step_by(2).collect();
                let status = cells[2].trim()[..3].parse().expect("a status");
                (codes, status)
            })
            .collect()
    }

    #[test]
    fn the_readme_s_error_table_lists_every_code_with_its_status() {
        let rows = readme_table();
        let mut documented = BTreeSet::new();
        for (codes, status) in &rows {
            for code in codes {
                assert_eq!(super::status_of(code).as_u16(), *status, "README: `{code}`");
                assert!(documented.insert(*code), "README lists `{code}` twice");
            }
        }
        let listed: BTreeSet<&str> = super::CODES.iter().map(|c| c.name).collect();
        assert_eq!(documented, listed, "README's error table against CODES");
    }
}
