//! The one error shape of the API, `{"error": {"code": ..., "message": ...}}`,
//! and the one place where a core error becomes an HTTP status.

use super::{Body, full};
use crate::core::CoreError;
use flint_runtime::InvokeError;
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

/// The HTTP status of a core error.
fn status(error: &CoreError) -> StatusCode {
    match error {
        CoreError::FunctionNotFound(_)
        | CoreError::VersionNotFound { .. }
        | CoreError::AliasNotFound(_)
        | CoreError::CanaryNotFound(_)
        | CoreError::TriggerNotFound(_)
        | CoreError::TokenNotFound(_) => StatusCode::NOT_FOUND,
        CoreError::InvalidName(_)
        | CoreError::InvalidConfig(_)
        | CoreError::InvalidTrigger(_)
        | CoreError::InvalidRelease(_)
        | CoreError::InvalidComponent(_)
        | CoreError::CompileTimeout { .. }
        | CoreError::InvalidDesiredState(_)
        | CoreError::BadRequest(_) => StatusCode::BAD_REQUEST,
        CoreError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        CoreError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
        CoreError::CompilerBusy { .. } => StatusCode::TOO_MANY_REQUESTS,
        CoreError::InsufficientStorage { .. } => StatusCode::INSUFFICIENT_STORAGE,
        CoreError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
        CoreError::Forbidden(_) => StatusCode::FORBIDDEN,
        CoreError::ReleaseConflict(_)
        | CoreError::ComponentMissing(_)
        | CoreError::Conflict(_)
        | CoreError::ConfirmationRequired(_) => StatusCode::CONFLICT,
        CoreError::BrokerDisabled(_)
        | CoreError::BrokerUnavailable(_)
        | CoreError::FunctionDisabled { .. } => StatusCode::SERVICE_UNAVAILABLE,
        CoreError::Invoke(e) => match e {
            InvokeError::Overloaded { .. } | InvokeError::NoInstanceSlot { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            InvokeError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            InvokeError::Guest(_) => StatusCode::BAD_GATEWAY,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        },
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        Self {
            status: status(&e),
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
    /// An error of the HTTP layer itself (unknown path, wrong method).
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
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
        ] {
            let code = source.split("#[cfg(test)]").next().unwrap();
            for call in code.split("ApiError::new(").skip(1) {
                codes.extend(literals(call).next());
            }
        }
        codes
    }

    #[test]
    fn the_document_lists_every_error_code_the_server_answers_with() {
        let doc: serde_json::Value = serde_json::from_str(super::super::OPENAPI).unwrap();
        let listed: BTreeSet<&str> = doc["components"]["schemas"]["Error"]["properties"]["error"]
            ["properties"]["code"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        let made = codes_in_source();
        assert!(made.len() > 30, "{made:?}");
        assert_eq!(
            listed.difference(&made).collect::<Vec<_>>(),
            Vec::<&&str>::new(),
            "listed in openapi.json, made nowhere"
        );
        assert_eq!(
            made.difference(&listed).collect::<Vec<_>>(),
            Vec::<&&str>::new(),
            "made by the server, missing from openapi.json's Error enum"
        );
    }
}
