//! A request body that must keep arriving.
//!
//! A timeout between reads alone does not stop a client that sends one byte
//! a second: each byte resets it, and the connection, the request and the
//! function's instance stay held for as long as the client likes. So, as
//! Apache's mod_reqtimeout does, a body gets a grace period, after which it
//! must keep up a minimum rate (each `min_rate` bytes buy one more second),
//! and a total time it may take however fast it trickles.
//!
//! Only time spent waiting for the client counts: a function that reads its
//! body slowly, or not at once, is not blamed on the client. When a body
//! trips, its next frame is a [`BodyTimeout`] error; the HTTP adapter turns
//! it into `408 request_timeout`.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// Errors of a wrapped body: the inner body's, or a [`BodyTimeout`].
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How slowly a request body may arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyTimeouts {
    /// Bytes per second the body must keep up after `grace`; 0 turns the
    /// rate check off.
    pub min_rate: u64,
    /// Waiting time allowed before the rate applies.
    pub grace: Duration,
    /// Longest waiting time in all.
    pub total: Duration,
}

/// Why a request body was cut off.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyTimeout {
    /// It fell below the minimum rate after the grace period.
    #[error(
        "the request body arrived slower than {rate} bytes/s after the first {} (server flags --body-min-rate and --body-grace); send the body at once, or ask the operator to lower them",
        humantime::format_duration(*grace)
    )]
    TooSlow {
        /// The minimum rate, bytes per second.
        rate: u64,
        /// The grace period.
        grace: Duration,
    },
    /// It took longer than the total time allowed.
    #[error(
        "the request body took longer than {} to arrive (server flag --body-timeout); send it faster, or ask the operator to raise the limit",
        humantime::format_duration(*limit)
    )]
    TooLong {
        /// The total time allowed.
        limit: Duration,
    },
}

/// Whether a body error is a [`BodyTimeout`]; returns it.
pub fn as_timeout<'a>(
    error: &'a (dyn std::error::Error + Send + Sync + 'static),
) -> Option<&'a BodyTimeout> {
    error.downcast_ref::<BodyTimeout>()
}

/// `inner`, cut off with a [`BodyTimeout`] when it arrives too slowly.
pub struct TimedBody<B> {
    inner: B,
    timeouts: BodyTimeouts,
    /// Data bytes received so far.
    received: u64,
    /// Waiting time of the waits that have ended.
    waited: Duration,
    /// When the current wait for the client began, if one is on.
    waiting_since: Option<Instant>,
    /// Wakes the reader at the current wait's deadline; made on the first
    /// wait, on the runtime that polls it.
    timer: Option<Pin<Box<Sleep>>>,
    tripped: Option<BodyTimeout>,
}

impl<B> TimedBody<B> {
    /// Wraps `inner`; the clock runs only while the reader waits for it.
    pub fn new(inner: B, timeouts: BodyTimeouts) -> Self {
        Self {
            inner,
            timeouts,
            received: 0,
            waited: Duration::ZERO,
            waiting_since: None,
            timer: None,
            tripped: None,
        }
    }

    /// The waiting time the bytes received so far have earned, and what
    /// runs out when it is spent.
    fn allowance(&self) -> (Duration, BodyTimeout) {
        let too_long = BodyTimeout::TooLong {
            limit: self.timeouts.total,
        };
        if self.timeouts.min_rate == 0 {
            return (self.timeouts.total, too_long);
        }
        let earned = self.timeouts.grace
            + Duration::from_secs_f64(self.received as f64 / self.timeouts.min_rate as f64);
        if earned < self.timeouts.total {
            let too_slow = BodyTimeout::TooSlow {
                rate: self.timeouts.min_rate,
                grace: self.timeouts.grace,
            };
            (earned, too_slow)
        } else {
            (self.timeouts.total, too_long)
        }
    }
}

impl<B> Body for TimedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Some(tripped) = &this.tripped {
            return Poll::Ready(Some(Err(Box::new(tripped.clone()))));
        }
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            if let Some(since) = this.waiting_since.take() {
                this.waited += since.elapsed();
            }
            if let Some(data) = frame.as_ref().and_then(|f| f.as_ref().ok()?.data_ref()) {
                this.received += data.len() as u64;
            }
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let since = *this.waiting_since.get_or_insert_with(Instant::now);
        let (allowed, reason) = this.allowance();
        if let Some(left) = allowed.checked_sub(this.waited) {
            let deadline = since + left;
            let timer = match &mut this.timer {
                Some(timer) => {
                    if timer.deadline() != deadline {
                        timer.as_mut().reset(deadline);
                    }
                    timer
                }
                None => this
                    .timer
                    .insert(Box::pin(tokio::time::sleep_until(deadline))),
            };
            ready!(timer.as_mut().poll(cx));
        }
        tracing::debug!(received = this.received, %reason, "request body timed out");
        this.tripped = Some(reason.clone());
        Poll::Ready(Some(Err(Box::new(reason))))
    }

    fn is_end_stream(&self) -> bool {
        self.tripped.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full, StreamBody};

    /// A body that sends `chunks` bytes, one every `every`.
    fn trickle(
        chunks: usize,
        every: Duration,
    ) -> impl Body<Data = Bytes, Error = std::convert::Infallible> + Unpin {
        let stream = futures::stream::unfold(0, move |sent| async move {
            if sent == chunks {
                return None;
            }
            tokio::time::sleep(every).await;
            Some((Ok(Frame::data(Bytes::from_static(b"x"))), sent + 1))
        });
        StreamBody::new(Box::pin(stream))
    }

    const TIMEOUTS: BodyTimeouts = BodyTimeouts {
        min_rate: 100,
        grace: Duration::from_millis(200),
        total: Duration::from_secs(30),
    };

    #[tokio::test]
    async fn a_body_that_arrives_in_time_is_read_whole() {
        let body = TimedBody::new(Full::new(Bytes::from_static(b"hello")), TIMEOUTS);
        assert_eq!(body.collect().await.unwrap().to_bytes(), "hello");
        let body = TimedBody::new(trickle(3, Duration::from_millis(10)), TIMEOUTS);
        assert_eq!(body.collect().await.unwrap().to_bytes(), "xxx");
    }

    #[tokio::test]
    async fn a_trickle_below_the_rate_trips_after_the_grace_period() {
        // One byte every 100 ms is 10 bytes/s, under the 100 bytes/s asked.
        let body = TimedBody::new(trickle(1000, Duration::from_millis(100)), TIMEOUTS);
        let error = body.collect().await.expect_err("the body trips");
        assert_eq!(
            as_timeout(&*error),
            Some(&BodyTimeout::TooSlow {
                rate: 100,
                grace: Duration::from_millis(200)
            })
        );
        assert!(error.to_string().contains("--body-min-rate"), "{error}");
    }

    #[tokio::test]
    async fn a_silent_body_trips_at_the_total_timeout_without_a_rate() {
        let timeouts = BodyTimeouts {
            min_rate: 0,
            total: Duration::from_millis(100),
            ..TIMEOUTS
        };
        let body = TimedBody::new(trickle(1, Duration::from_secs(3600)), timeouts);
        let error = body.collect().await.expect_err("the body trips");
        assert_eq!(
            as_timeout(&*error),
            Some(&BodyTimeout::TooLong {
                limit: Duration::from_millis(100)
            })
        );
    }

    #[tokio::test]
    async fn time_the_reader_spends_elsewhere_is_not_counted() {
        let mut body = TimedBody::new(Full::new(Bytes::from_static(b"late")), TIMEOUTS);
        // The reader is busy for longer than the grace period before it
        // reads; the client sent everything at once.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let frame = body.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "late");
    }
}
