//! The server's request limits, defined once, and the one bounded body
//! reader every adapter uses.
//!
//! hyper does not cap bodies: every body Flint reads whole goes through
//! [`read_limited`], and a body streamed to a function through
//! [`Limit::stream`], so a limit is checked the same way at every door
//! (the invoke path, the admin API, `/async`, queue messages).

use crate::body_timeout::{self, BodyTimeout};
use crate::config::{DEFAULT_MAX_REQUEST_BODY_BYTES, DEFAULT_MAX_UPLOAD_BYTES};
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};

/// Largest JSON body the admin API reads.
pub const MAX_JSON_BODY_BYTES: u64 = 1 << 20;
/// Largest response body Flint buffers: a shadow run's comparison, a
/// queue message's reply.
pub const MAX_BUFFERED_RESPONSE_BYTES: u64 = 16 << 20;

/// One bounded body: its limit, what it is and how to raise the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Largest size in bytes.
    pub bytes: u64,
    /// What the body is, for messages ("request body").
    pub what: &'static str,
    /// The server flag that sets it, for messages.
    pub flag: &'static str,
}

/// Why a bounded body could not be read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LimitError {
    /// The body is larger than its limit.
    #[error("{} exceeds the limit of {} bytes (server flag {})", .0.what, .0.bytes, .0.flag)]
    TooLarge(Limit),
    /// The body arrived too slowly (see [`crate::body_timeout`]).
    #[error(transparent)]
    TimedOut(#[from] BodyTimeout),
    /// The body failed before its end.
    #[error("could not read the body: {0}")]
    Read(String),
}

impl Limit {
    /// Whether a declared `content-length` is already over the limit, so
    /// the body need not be read to refuse it.
    pub fn check_declared(&self, headers: &http::HeaderMap) -> Result<(), LimitError> {
        let declared = headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        match declared {
            Some(len) if len > self.bytes => Err(LimitError::TooLarge(*self)),
            _ => Ok(()),
        }
    }

    /// Whether a body of `len` bytes fits.
    pub fn check_len(&self, len: usize) -> Result<(), LimitError> {
        if len as u64 > self.bytes {
            Err(LimitError::TooLarge(*self))
        } else {
            Ok(())
        }
    }

    /// `body` cut off with an error after the limit, for streaming.
    pub fn stream<B: http_body::Body>(&self, body: B) -> Limited<B> {
        Limited::new(body, self.bytes as usize)
    }
}

/// Whether a body error is [`Limit::stream`]'s "over the limit".
pub fn is_over_limit(error: &(dyn std::error::Error + Send + Sync + 'static)) -> bool {
    error.is::<LengthLimitError>()
}

/// Reads a whole body, up to `limit`.
pub async fn read_limited<B>(body: B, limit: Limit) -> Result<Bytes, LimitError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match limit.stream(body).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if is_over_limit(&*e) => Err(LimitError::TooLarge(limit)),
        Err(e) => match body_timeout::as_timeout(&*e) {
            Some(timeout) => Err(LimitError::TimedOut(timeout.clone())),
            None => Err(LimitError::Read(e.to_string())),
        },
    }
}

/// The limits of one server, from its configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    /// Component uploads.
    pub upload: Limit,
    /// Request bodies passed to functions (HTTP, `/async`, queue messages).
    pub request_body: Limit,
    /// JSON bodies of the admin API.
    pub json_body: Limit,
    /// Response bodies Flint buffers (shadow comparisons, queue replies).
    pub buffered_response: Limit,
}

impl RequestLimits {
    /// The limits for these configured sizes.
    pub fn new(max_upload_bytes: u64, max_request_body_bytes: u64) -> Self {
        Self {
            upload: Limit {
                bytes: max_upload_bytes,
                what: "component",
                flag: "--max-upload-bytes",
            },
            request_body: Limit {
                bytes: max_request_body_bytes,
                what: "request body",
                flag: "--max-request-body-bytes",
            },
            json_body: Limit {
                bytes: MAX_JSON_BODY_BYTES,
                what: "JSON body",
                flag: "(fixed 1 MiB)",
            },
            buffered_response: Limit {
                bytes: MAX_BUFFERED_RESPONSE_BYTES,
                what: "response body",
                flag: "(fixed 16 MiB)",
            },
        }
    }
}

impl Default for RequestLimits {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_UPLOAD_BYTES, DEFAULT_MAX_REQUEST_BODY_BYTES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;

    #[tokio::test]
    async fn bodies_over_the_limit_are_refused_by_declaration_and_by_reading() {
        let limit = RequestLimits::new(10, 4).request_body;
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::CONTENT_LENGTH, "5".parse().unwrap());
        assert!(matches!(
            limit.check_declared(&headers),
            Err(LimitError::TooLarge(_))
        ));
        headers.insert(http::header::CONTENT_LENGTH, "4".parse().unwrap());
        assert!(limit.check_declared(&headers).is_ok());
        let read = read_limited(Full::new(Bytes::from_static(b"12345")), limit).await;
        assert_eq!(
            read.unwrap_err().to_string(),
            "request body exceeds the limit of 4 bytes (server flag --max-request-body-bytes)"
        );
        let read = read_limited(Full::new(Bytes::from_static(b"1234")), limit).await;
        assert_eq!(read.unwrap(), Bytes::from_static(b"1234"));
        assert!(limit.check_len(5).is_err() && limit.check_len(4).is_ok());
    }
}
