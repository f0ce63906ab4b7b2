//! The one error shape of the API: `{"error": {"code": ..., "message": ...}}`.

use super::{Body, full};
use flint_runtime::{CompileError, ConfigError, InvokeError};
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

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 404 `function_not_found`.
    pub fn function_not_found(name: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "function_not_found",
            format!("function `{name}` not found; deploy it with `flint deploy {name} FILE.wasm`"),
        )
    }

    /// 404 `version_not_found`.
    pub fn version_not_found(name: &str, version: u32, latest: Option<u32>) -> Self {
        let hint = latest.map_or(String::new(), |l| format!("; versions are 1..={l}"));
        Self::new(
            StatusCode::NOT_FOUND,
            "version_not_found",
            format!("function `{name}` has no version {version}{hint}"),
        )
    }

    /// 413 `payload_too_large`.
    pub fn too_large(what: &str, limit: u64, flag: &str) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("{what} exceeds the limit of {limit} bytes (server flag {flag})"),
        )
    }

    /// 400 `bad_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 500 `internal_error`.
    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            error.to_string(),
        )
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
        if self.status == StatusCode::PAYLOAD_TOO_LARGE {
            // The rest of the body is left unread: the connection cannot be
            // reused, and saying so keeps clients from sending on it.
            response
                .headers_mut()
                .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<InvokeError> for ApiError {
    fn from(e: InvokeError) -> Self {
        let status = match &e {
            InvokeError::Overloaded { .. } => StatusCode::TOO_MANY_REQUESTS,
            InvokeError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            InvokeError::Guest(_) => StatusCode::BAD_GATEWAY,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let retry_after = match &e {
            InvokeError::Overloaded {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            _ => None,
        };
        Self {
            status,
            code: e.code(),
            message: e.to_string(),
            retry_after,
        }
    }
}

impl From<CompileError> for ApiError {
    fn from(e: CompileError) -> Self {
        match e {
            CompileError::Cache(io) => Self::internal(io),
            other => Self::new(
                StatusCode::BAD_REQUEST,
                "invalid_component",
                other.to_string(),
            ),
        }
    }
}

impl From<ConfigError> for ApiError {
    fn from(e: ConfigError) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_config", e.to_string())
    }
}

impl From<crate::registry::RegistryError> for ApiError {
    fn from(e: crate::registry::RegistryError) -> Self {
        Self::internal(e)
    }
}
