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
