use std::fmt;

/// Why a request body could not be read as the type asked for.
///
/// Returned by [`Request::text`](crate::Request::text) and
/// [`Request::json`](crate::Request::json). Its `Display` text is written for
/// the caller, so it can go straight into
/// [`Response::error`](crate::Response::error).
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The body is not valid UTF-8.
    Utf8(std::str::Utf8Error),
    /// The body is not valid JSON, or not the shape of the requested type.
    Json(serde_json::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Utf8(err) => write!(f, "request body is not valid UTF-8: {err}"),
            Error::Json(err) => write!(f, "request body is not valid JSON: {err}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Utf8(err) => Some(err),
            Error::Json(err) => Some(err),
        }
    }
}
