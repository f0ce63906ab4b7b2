//! Body wrappers for guest-controlled HTTP bodies.
//!
//! A guest decides how its bodies are framed, down to writing zero bytes at
//! a time. Each empty write becomes an empty data frame, which carries
//! nothing but still costs the peer protocol work; with HTTP/2 in hyper,
//! empty frames can make heap use grow without bound (wasmtime advisory
//! GHSA-f8mm, fixed in wasmtime 48.0.9; Flint is on 48.0.8).
//! [`SkipEmptyFrames`] drops them before they reach hyper. The outbound
//! client wraps every outgoing request body in it, and every guest response
//! body goes through it on its way to the caller.

use bytes::Buf;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

/// Empty frames skipped in one poll before yielding to the executor, so a
/// body that produces nothing but empty frames cannot hold its thread.
const MAX_SKIPPED_PER_POLL: usize = 64;

/// A body that passes on every frame of `B` except empty data frames.
///
/// Trailers and non-empty data frames pass unchanged; the size hint and the
/// end of the stream are `B`'s, since empty frames change neither.
#[derive(Debug)]
pub struct SkipEmptyFrames<B> {
    inner: B,
}

impl<B> SkipEmptyFrames<B> {
    /// Wraps `inner`.
    pub fn new(inner: B) -> Self {
        Self { inner }
    }
}

impl<B> Body for SkipEmptyFrames<B>
where
    B: Body + Unpin,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        for _ in 0..MAX_SKIPPED_PER_POLL {
            match ready!(Pin::new(&mut self.inner).poll_frame(cx)) {
                Some(Ok(frame)) if frame.data_ref().is_some_and(|d| !d.has_remaining()) => {}
                other => return Poll::Ready(other),
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http::HeaderMap;
    use http_body_util::BodyExt;
    use std::collections::VecDeque;
    use std::convert::Infallible;
    use std::task::Waker;

    /// A body that yields the given frames, each ready at once.
    struct Frames(VecDeque<Frame<Bytes>>);

    impl Body for Frames {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            Poll::Ready(self.0.pop_front().map(Ok))
        }
    }

    fn body(frames: Vec<Frame<Bytes>>) -> SkipEmptyFrames<Frames> {
        SkipEmptyFrames::new(Frames(frames.into()))
    }

    #[tokio::test]
    async fn empty_data_frames_are_dropped_and_the_rest_pass_in_order() {
        let mut trailers = HeaderMap::new();
        trailers.insert("x-sum", "3".parse().unwrap());
        let mut body = body(vec![
            Frame::data(Bytes::new()),
            Frame::data(Bytes::from_static(b"ab")),
            Frame::data(Bytes::new()),
            Frame::data(Bytes::new()),
            Frame::data(Bytes::from_static(b"c")),
            Frame::trailers(trailers.clone()),
        ]);
        let mut seen = Vec::new();
        while let Some(frame) = body.frame().await {
            seen.push(frame.unwrap());
        }
        assert_eq!(seen.len(), 3, "{seen:?}");
        assert_eq!(seen[0].data_ref().unwrap(), &Bytes::from_static(b"ab"));
        assert_eq!(seen[1].data_ref().unwrap(), &Bytes::from_static(b"c"));
        assert_eq!(seen[2].trailers_ref().unwrap(), &trailers);
    }

    #[tokio::test]
    async fn a_long_run_of_empty_frames_yields_then_ends_without_data() {
        let empty = (0..3 * MAX_SKIPPED_PER_POLL + 1).map(|_| Frame::data(Bytes::new()));
        let mut body = body(empty.collect());
        let mut cx = Context::from_waker(Waker::noop());
        assert!(Pin::new(&mut body).poll_frame(&mut cx).is_pending());
        assert_eq!(body.inner.0.len(), 2 * MAX_SKIPPED_PER_POLL + 1);
        let collected = body.collect().await.unwrap();
        assert!(collected.to_bytes().is_empty());
    }
}
