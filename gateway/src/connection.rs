//! What one connection may cost: how long it may sit without a request,
//! and how long a write to a client that does not read may block.
//!
//! - [`Activity`] counts a connection's requests in flight (HTTP/2 streams
//!   included) from the call of the service until its response body is
//!   dropped, and remembers when the last one ended.
//! - [`drive`] drives a connection and closes it (gracefully: HTTP/2 gets a
//!   GOAWAY) once it has had no request in flight for too long: the header
//!   timeout before its first request head is complete, which covers a
//!   silent socket, a half-sent head and an HTTP/2 preface with nothing
//!   after it; the idle timeout after a response. hyper's own HTTP/1
//!   `header_read_timeout` is off: it would not cover the first case (the
//!   auto builder waits for the bytes that tell HTTP/1 from HTTP/2 before
//!   hyper's timer is armed, so a socket that sends nothing would stay
//!   open), and for the others it would make a timer for every request.
//! - [`WriteTimeout`] fails a write that stays blocked too long, so hyper
//!   drops the connection and the response body with it, which ends the
//!   guest call and frees its instance.
//! - An HTTP/2 client stalls a response without blocking any write: it
//!   just grants no flow-control window, and hyper stops asking the body
//!   for data. So an HTTP/2 response body records when it handed hyper a
//!   frame that hyper has not come back for, and [`drive`] drops the
//!   connection once one has waited for the write timeout.

use crate::config::ConnectionConfig;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};

/// How long a connection told to close may take to finish its close (a
/// GOAWAY, a last flush) before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// A connection's requests in flight, shared by its service and
/// [`drive`].
pub(crate) struct Activity {
    opened: Instant,
    in_flight: AtomicUsize,
    /// Requests seen so far.
    started: AtomicU64,
    /// When the last request ended, in milliseconds after `opened`.
    last_ended_ms: AtomicU64,
    /// The HTTP/2 response bodies' waits for the writer (see [`Tracked`]).
    waits: Mutex<Vec<Weak<AtomicU64>>>,
}

/// A response body's wait for the writer: not waiting.
const NOT_WAITING: u64 = u64::MAX;

impl Activity {
    /// A connection accepted now.
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            started: AtomicU64::new(0),
            last_ended_ms: AtomicU64::new(0),
            waits: Mutex::new(Vec::new()),
        })
    }

    /// Milliseconds since the connection opened.
    fn now_ms(&self) -> u64 {
        self.opened.elapsed().as_millis() as u64
    }

    /// Counts a request in flight until the guard is dropped.
    pub(crate) fn request(self: &Arc<Self>) -> InFlight {
        self.started.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }

    /// When the connection is to be closed if no request starts before:
    /// `None` while a request is in flight.
    fn idle_deadline(&self, config: &ConnectionConfig) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        if self.started.load(Ordering::Relaxed) == 0 {
            return Some(self.opened + config.header_timeout);
        }
        let ended = Duration::from_millis(self.last_ended_ms.load(Ordering::Relaxed));
        Some(self.opened + ended + config.idle_timeout)
    }

    /// When the HTTP/2 response that has waited longest for the writer will
    /// have waited the write timeout; `None` when none waits.
    fn stall_deadline(&self, config: &ConnectionConfig) -> Option<Instant> {
        let mut waits = self.waits.lock().unwrap();
        waits.retain(|wait| wait.strong_count() > 0);
        let oldest = waits
            .iter()
            .filter_map(Weak::upgrade)
            .map(|wait| wait.load(Ordering::Relaxed))
            .min()
            .filter(|&ms| ms != NOT_WAITING)?;
        Some(self.opened + Duration::from_millis(oldest) + config.write_timeout)
    }
}

/// One request in flight on a connection, while it lives.
pub(crate) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let ended = self.0.opened.elapsed().as_millis() as u64;
        self.0.last_ended_ms.fetch_max(ended, Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that counts its request in flight until it is
/// dropped (sent whole, or abandoned with its connection). On HTTP/2 it
/// also records when it handed hyper its head or a frame that hyper has
/// not come back for: the time, in milliseconds after the connection
/// opened, or [`NOT_WAITING`].
pub(crate) struct Tracked<B> {
    body: B,
    in_flight: InFlight,
    wait: Option<Arc<AtomicU64>>,
}

impl<B> Tracked<B> {
    /// `body`, counted in flight; `http2` also watches it for stalls.
    pub(crate) fn new(body: B, in_flight: InFlight, http2: bool) -> Self {
        let wait = http2.then(|| {
            let activity = &in_flight.0;
            let wait = Arc::new(AtomicU64::new(activity.now_ms()));
            let mut waits = activity.waits.lock().unwrap();
            // Ended streams are swept before the list would grow, so it
            // stays near the streams in flight however many a long-lived
            // connection serves.
            if waits.len() == waits.capacity() {
                waits.retain(|wait| wait.strong_count() > 0);
            }
            waits.push(Arc::downgrade(&wait));
            wait
        });
        Self {
            body,
            in_flight,
            wait,
        }
    }
}

impl<B: http_body::Body + Unpin> http_body::Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<B::Data>, B::Error>>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.body).poll_frame(cx);
        if let Some(wait) = &this.wait {
            // A frame handed over waits for hyper's next call; while the
            // body is pending, or done, hyper is not the one stalling.
            let since = match &poll {
                Poll::Ready(Some(Ok(_))) => this.in_flight.0.now_ms(),
                _ => NOT_WAITING,
            };
            wait.store(since, Ordering::Relaxed);
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Why [`drive`] stopped waiting for a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// It finished by itself (the client closed, or an error).
    Done,
    /// It sat without a request for too long and was closed.
    Idle,
    /// An HTTP/2 response waited for the client past the write timeout;
    /// the connection was dropped.
    Stalled,
    /// The server shut down; it was told to finish.
    Shutdown,
}

/// Drives `connection` until it ends, closing it when it is idle too long,
/// dropping it when an HTTP/2 response has waited for the client past the
/// write timeout (see the module doc), and closing it gracefully when
/// `shutdown` turns true.
/// `graceful` starts a graceful close (hyper's `graceful_shutdown`). After
/// a shutdown the connection may finish its requests for as long as the
/// caller lets this future run.
pub(crate) async fn drive<C, E>(
    mut connection: Pin<&mut C>,
    graceful: impl Fn(Pin<&mut C>),
    activity: &Activity,
    config: &ConnectionConfig,
    shutdown: &mut watch::Receiver<bool>,
) -> (Ended, Result<(), E>)
where
    C: Future<Output = Result<(), E>>,
{
    let ended = loop {
        // While a request is in flight, look again after a while: by then
        // it may have ended (the idle deadline counts from its end), or its
        // response may have begun to wait for the client.
        let idle = activity.idle_deadline(config);
        let stall = activity.stall_deadline(config);
        let wake = [
            idle,
            stall,
            Some(Instant::now() + config.idle_timeout.min(config.write_timeout)),
        ]
        .into_iter()
        .flatten()
        .min()
        .expect("one deadline is always set");
        tokio::select! {
            result = connection.as_mut() => return (Ended::Done, result),
            () = tokio::time::sleep_until(wake) => {
                let now = Instant::now();
                if activity.idle_deadline(config).is_some_and(|d| d <= now) {
                    break Ended::Idle;
                }
                if activity.stall_deadline(config).is_some_and(|d| d <= now) {
                    // A graceful close would wait for the stalled stream.
                    return (Ended::Stalled, Ok(()));
                }
            }
            changed = shutdown.wait_for(|stop| *stop) => {
                // A dropped sender means the server is gone too.
                let _ = changed;
                break Ended::Shutdown;
            }
        }
    };
    graceful(connection.as_mut());
    let result = match ended {
        Ended::Shutdown => connection.await,
        _ => match tokio::time::timeout(CLOSE_GRACE, connection).await {
            Ok(result) => result,
            Err(_) => Ok(()),
        },
    };
    (ended, result)
}

/// An IO stream whose writes fail with [`io::ErrorKind::TimedOut`] once
/// one has stayed blocked (the client reads nothing) for the timeout.
/// Reads are passed through.
pub(crate) struct WriteTimeout<T> {
    io: T,
    timeout: Duration,
    /// Armed while a write is blocked; made on the first blocked write.
    timer: Option<Pin<Box<Sleep>>>,
    blocked: bool,
}

impl<T> WriteTimeout<T> {
    pub(crate) fn new(io: T, timeout: Duration) -> Self {
        Self {
            io,
            timeout,
            timer: None,
            blocked: false,
        }
    }

    /// Passes a finished write through and disarms the timer; on a blocked
    /// one, arms it (once per blockage) and fails when it has fired.
    fn check<R>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        if poll.is_ready() {
            self.blocked = false;
            return poll;
        }
        let deadline = Instant::now() + self.timeout;
        let timer = match &mut self.timer {
            Some(timer) => {
                if !self.blocked {
                    timer.as_mut().reset(deadline);
                }
                timer
            }
            None => self
                .timer
                .insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        self.blocked = true;
        ready!(timer.as_mut().poll(cx));
        tracing::debug!(
            timeout_ms = self.timeout.as_millis() as u64,
            "write blocked past the write timeout; closing the connection"
        );
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the client read nothing for the write timeout (server flag --write-timeout)",
        )))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteTimeout<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteTimeout<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_write(cx, buf);
        this.check(cx, poll)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.check(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_flush(cx);
        this.check(cx, poll)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_shutdown(cx);
        this.check(cx, poll)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    fn config(header: u64, idle: u64) -> ConnectionConfig {
        ConnectionConfig {
            header_timeout: Duration::from_millis(header),
            idle_timeout: Duration::from_millis(idle),
            ..ConnectionConfig::default()
        }
    }

    #[test]
    fn idle_deadline_counts_from_the_open_then_from_the_last_response() {
        let config = config(1000, 5000);
        let activity = Activity::new();
        let opened = activity.opened;
        assert_eq!(
            activity.idle_deadline(&config),
            Some(opened + config.header_timeout)
        );
        let request = activity.request();
        assert_eq!(activity.idle_deadline(&config), None);
        drop(request);
        let deadline = activity.idle_deadline(&config).unwrap();
        assert!(deadline >= opened + config.idle_timeout, "{deadline:?}");
    }

    #[tokio::test]
    async fn an_http2_response_waits_for_the_writer_between_its_frames() {
        use http_body_util::BodyExt;
        let config = config(1000, 1000);
        let activity = Activity::new();
        let body = http_body_util::Full::new(bytes::Bytes::from_static(b"x"));
        let mut body = Tracked::new(body, activity.request(), true);
        // Its head is with hyper until hyper asks for the body.
        let waiting = activity.stall_deadline(&config).expect("the head waits");
        assert!(waiting >= activity.opened + config.write_timeout);
        body.frame().await.unwrap().unwrap();
        assert!(activity.stall_deadline(&config).is_some(), "a frame waits");
        assert!(body.frame().await.is_none());
        assert_eq!(activity.stall_deadline(&config), None);
        drop(body);
        assert_eq!(activity.stall_deadline(&config), None);
        // HTTP/1.1 bodies are left to the write timeout of the socket.
        let _body = Tracked::new(
            http_body_util::Empty::<bytes::Bytes>::new(),
            activity.request(),
            false,
        );
        assert_eq!(activity.stall_deadline(&config), None);
    }

    #[tokio::test]
    async fn a_connection_without_requests_is_closed_after_the_header_timeout() {
        let config = config(50, 10_000);
        let activity = Activity::new();
        let (_stop, mut shutdown) = watch::channel(false);
        let connection = std::future::pending::<Result<(), ()>>();
        tokio::pin!(connection);
        let (ended, _) = tokio::time::timeout(
            Duration::from_secs(10),
            drive(connection, |_| {}, &activity, &config, &mut shutdown),
        )
        .await
        .expect("closed well before 10 s");
        assert_eq!(ended, Ended::Idle);
    }

    #[tokio::test]
    async fn a_connection_is_kept_while_a_request_is_in_flight_and_told_at_shutdown() {
        let config = config(20, 20);
        let activity = Activity::new();
        let _request = activity.request();
        let (stop, mut shutdown) = watch::channel(false);
        let told = std::sync::atomic::AtomicBool::new(false);
        let (finish, finished) = tokio::sync::oneshot::channel::<()>();
        let connection = async move { finished.await.map_err(|_| ()) };
        tokio::pin!(connection);
        let watching = drive(
            connection,
            |_| told.store(true, Ordering::Relaxed),
            &activity,
            &config,
            &mut shutdown,
        );
        let stopper = async {
            // Several idle timeouts pass with the request in flight.
            tokio::time::sleep(Duration::from_millis(200)).await;
            stop.send_replace(true);
            tokio::time::sleep(Duration::from_millis(20)).await;
            finish.send(()).unwrap();
        };
        let ((ended, result), ()) = tokio::join!(watching, stopper);
        assert_eq!((ended, result), (Ended::Shutdown, Ok(())));
        assert!(told.load(Ordering::Relaxed));
    }

    #[tokio::test]
    async fn a_write_the_client_never_reads_fails_after_the_write_timeout() {
        let (server, _client) = tokio::io::duplex(64);
        let mut io = WriteTimeout::new(server, Duration::from_millis(50));
        io.write_all(&[0; 64]).await.unwrap();
        let error = tokio::time::timeout(Duration::from_secs(10), io.write_all(&[0; 64]))
            .await
            .expect("the write fails well before 10 s")
            .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }
}
