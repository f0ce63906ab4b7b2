//! The body of a guest's response on its way to the caller: counted against
//! `max_response_bytes`, without empty data frames ([`SkipEmptyFrames`]),
//! and ending in an error, not as if complete, when the call that wrote it
//! failed. (wasmtime ends a body whose guest never finished it as if it
//! were whole; a caller would take a truncated body for the response.)

use crate::body::SkipEmptyFrames;
use crate::budget::{HostLimit, Tripwire};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use wasmtime_wasi_http::Error as HttpError;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// A guest's response body, metered.
pub(crate) struct GuestBody {
    inner: SkipEmptyFrames<HyperOutgoingBody>,
    sent: u64,
    max: u64,
    tripwire: Arc<Tripwire>,
}

impl GuestBody {
    pub(crate) fn new(inner: HyperOutgoingBody, max: u64, tripwire: Arc<Tripwire>) -> Self {
        Self {
            inner: SkipEmptyFrames::new(inner),
            sent: 0,
            max,
            tripwire,
        }
    }

    /// As the body type the rest of the host passes around.
    pub(crate) fn boxed(self) -> HyperOutgoingBody {
        http_body_util::BodyExt::boxed_unsync(self)
    }
}

impl Body for GuestBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let frame = match ready!(Pin::new(&mut self.inner).poll_frame(cx)) {
            Some(Ok(frame)) => frame,
            None if self.tripwire.failed() => {
                return Poll::Ready(Some(Err(HttpError::InternalError(Some(
                    "the function failed before it finished its response body".into(),
                )))));
            }
            other => return Poll::Ready(other),
        };
        if let Some(data) = frame.data_ref() {
            self.sent += data.len() as u64;
            if self.sent > self.max {
                // Ends the stream to the caller; the guest is interrupted at
                // its next epoch check and the call counts as
                // `resource_limit_exceeded`.
                drop(self.tripwire.trip(HostLimit::ResponseBytes(self.max)));
                return Poll::Ready(Some(Err(HttpError::HttpResponseBodySize(Some(self.max)))));
            }
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        !self.tripwire.failed() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};

    fn body(chunks: &[&'static [u8]]) -> HyperOutgoingBody {
        let frames: Vec<Result<Frame<Bytes>, HttpError>> = chunks
            .iter()
            .map(|c| Ok(Frame::data(Bytes::from_static(c))))
            .collect();
        StreamBody::new(futures::stream::iter(frames)).boxed_unsync()
    }

    #[tokio::test]
    async fn empty_frames_are_dropped_and_bytes_counted() {
        let tripwire = Arc::new(Tripwire::default());
        let mut body = GuestBody::new(body(&[b"", b"ab", b"", b"", b"cd"]), 10, tripwire.clone());
        let mut frames = Vec::new();
        while let Some(frame) = body.frame().await {
            frames.push(frame.unwrap().into_data().unwrap());
        }
        assert_eq!(
            frames,
            [Bytes::from_static(b"ab"), Bytes::from_static(b"cd")]
        );
        assert_eq!(tripwire.tripped(), None);
    }

    #[tokio::test]
    async fn the_body_of_a_failed_call_ends_in_an_error() {
        let tripwire = Arc::new(Tripwire::default());
        let mut body = GuestBody::new(body(&[b"ab"]), 10, tripwire.clone());
        tripwire.fail();
        assert!(body.frame().await.unwrap().is_ok());
        assert!(matches!(
            body.frame().await,
            Some(Err(HttpError::InternalError(_)))
        ));
    }

    #[tokio::test]
    async fn a_body_past_its_limit_ends_with_an_error_and_trips() {
        let tripwire = Arc::new(Tripwire::default());
        let mut body = GuestBody::new(body(&[b"abc", b"def"]), 4, tripwire.clone());
        assert!(body.frame().await.unwrap().is_ok());
        assert!(matches!(
            body.frame().await.unwrap(),
            Err(HttpError::HttpResponseBodySize(Some(4)))
        ));
        assert_eq!(tripwire.tripped(), Some(HostLimit::ResponseBytes(4)));
    }
}
