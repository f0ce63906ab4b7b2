//! Captured guest output: stdout and stderr of a function's instances, kept
//! in a bounded ring per function so the API can show recent lines.
//!
//! A guest's writes reach the ring through [`LogSink`], Flint's own WASI
//! output stream, charged against the invocation's log budget. It does not
//! go through wasmtime's `AsyncWriteStream`, whose buffering of empty writes
//! let a guest grow host memory without bound (GHSA-5m8g-xhq4-4h93).

use crate::budget::{HostLimit, LogBudget, Tripwire};
use bytes::Bytes;
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::SystemTime;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

/// Largest single write a guest may make to stdout or stderr.
const WRITE_PERMIT: usize = 64 << 10;

/// Lines kept per function; older lines are dropped.
pub const DEFAULT_LOG_LINES: usize = 1000;
/// Longest line kept; the rest of a longer line is cut off.
pub const MAX_LINE_BYTES: usize = 4096;

/// Which guest stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// The guest's stdout.
    Stdout,
    /// The guest's stderr.
    Stderr,
}

/// One captured line.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LogLine {
    /// Position in the function's log; increases by one per line.
    pub seq: u64,
    /// When the line was written.
    #[serde(skip)]
    pub time: SystemTime,
    /// The version whose instance wrote it.
    pub version: u32,
    /// The invocation that wrote it.
    pub request_id: String,
    /// stdout or stderr.
    pub stream: Stream,
    /// The text, lossily decoded as UTF-8, without the newline.
    pub line: String,
}

#[derive(Default)]
struct Ring {
    lines: VecDeque<LogLine>,
    next_seq: u64,
}

/// The bounded log of one function.
pub struct GuestLog {
    function: String,
    capacity: usize,
    ring: Mutex<Ring>,
}

impl GuestLog {
    /// A log for `function` keeping at most `capacity` lines.
    pub fn new(function: &str, capacity: usize) -> Self {
        Self {
            function: function.to_string(),
            capacity,
            ring: Mutex::default(),
        }
    }

    fn push(&self, version: u32, request_id: u64, stream: Stream, line: &[u8]) {
        let line = String::from_utf8_lossy(&line[..line.len().min(MAX_LINE_BYTES)]).into_owned();
        let request_id = format_request_id(request_id);
        tracing::debug!(target: "flint::guest", function = %self.function, version, %request_id, ?stream, "{line}");
        let mut ring = self.ring.lock().unwrap();
        let seq = ring.next_seq;
        ring.next_seq += 1;
        if ring.lines.len() == self.capacity {
            ring.lines.pop_front();
        }
        ring.lines.push_back(LogLine {
            seq,
            time: SystemTime::now(),
            version,
            request_id,
            stream,
            line,
        });
    }

    /// Without `after`: the newest `limit` lines. With `after`: the oldest
    /// `limit` lines with `seq > after`, so a follower paging forward never
    /// skips a burst. Oldest first either way.
    pub fn tail(&self, after: Option<u64>, limit: usize) -> Vec<LogLine> {
        let ring = self.ring.lock().unwrap();
        match after {
            Some(after) => ring
                .lines
                .iter()
                .filter(|l| l.seq > after)
                .take(limit)
                .cloned()
                .collect(),
            None => ring
                .lines
                .iter()
                .skip(ring.lines.len().saturating_sub(limit))
                .cloned()
                .collect(),
        }
    }
}

/// Formats an invocation id as shown in logs and response headers: `r-`
/// and its lowercase hex digits, at least 12. Every response carries one,
/// so the digits are written directly rather than through `format!`, which
/// costs a fresh-instance request 2k instructions more.
pub fn format_request_id(id: u64) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let significant = (u64::BITS - id.leading_zeros()).div_ceil(4);
    let digits = significant.max(12);
    let mut text = String::with_capacity(2 + digits as usize);
    text.push_str("r-");
    for nibble in (0..digits).rev() {
        text.push(char::from(HEX[(id >> (nibble * 4) & 0xf) as usize]));
    }
    text
}

/// The stdout or stderr of one instance: charges writes to the invocation's
/// log budget, splits them into lines and appends them to the function's log
/// under the current request id.
#[derive(Clone)]
pub(crate) struct LogSink {
    log: Arc<GuestLog>,
    version: u32,
    stream: Stream,
    request_id: Arc<AtomicU64>,
    partial: Arc<Mutex<Vec<u8>>>,
    budget: Arc<Mutex<LogBudget>>,
    tripwire: Arc<Tripwire>,
}

impl LogSink {
    pub(crate) fn new(
        log: Arc<GuestLog>,
        version: u32,
        stream: Stream,
        request_id: Arc<AtomicU64>,
        budget: Arc<Mutex<LogBudget>>,
        tripwire: Arc<Tripwire>,
    ) -> Self {
        Self {
            log,
            version,
            stream,
            request_id,
            partial: Arc::default(),
            budget,
            tripwire,
        }
    }

    /// Charges a write to the budget, then keeps it.
    fn charged_write(&self, buf: &[u8]) -> Result<(), HostLimit> {
        self.budget.lock().unwrap().charge(buf.len())?;
        self.write(buf);
        Ok(())
    }

    fn write(&self, buf: &[u8]) {
        let id = self.request_id.load(Ordering::Relaxed);
        let mut partial = self.partial.lock().unwrap();
        for chunk in buf.split_inclusive(|b| *b == b'\n') {
            if let Some(line) = chunk.strip_suffix(b"\n") {
                partial.extend_from_slice(line);
                self.log.push(self.version, id, self.stream, &partial);
                partial.clear();
            } else if partial.len() < MAX_LINE_BYTES {
                let room = MAX_LINE_BYTES - partial.len();
                partial.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
        }
    }

    /// Writes out a line left without its newline (at the end of a request).
    pub(crate) fn flush_partial(&self) {
        let mut partial = self.partial.lock().unwrap();
        if !partial.is_empty() {
            self.log.push(
                self.version,
                self.request_id.load(Ordering::Relaxed),
                self.stream,
                &partial,
            );
            partial.clear();
        }
    }
}

impl IsTerminal for LogSink {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogSink {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LogSink {
    async fn ready(&mut self) {}
}

#[wasmtime_wasi::async_trait]
impl OutputStream for LogSink {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        if bytes.len() > WRITE_PERMIT {
            return Err(StreamError::trap(
                "write exceeded the permit of check-write",
            ));
        }
        self.charged_write(&bytes)
            .map_err(|limit| StreamError::Trap(self.tripwire.trip(limit)))
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

impl AsyncWrite for LogSink {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(match self.charged_write(buf) {
            Ok(()) => Ok(buf.len()),
            Err(limit) => Err(std::io::Error::other(self.tripwire.trip(limit))),
        })
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_r_and_at_least_twelve_hex_digits() {
        for id in [0, 7, 0xabc, (1 << 48) - 1, 1 << 48, u64::MAX] {
            assert_eq!(format_request_id(id), format!("r-{id:012x}"), "{id}");
        }
        assert_eq!(format_request_id(0x1f), "r-00000000001f");
        assert_eq!(format_request_id(u64::MAX), "r-ffffffffffffffff");
    }

    #[test]
    fn lines_are_split_bounded_and_tailed() {
        let log = Arc::new(GuestLog::new("f", 3));
        let sink = sink(&log, 1 << 20);
        sink.write(b"a\nb");
        sink.write(b"c\nd\ne\n");
        let lines: Vec<String> = log.tail(None, 10).into_iter().map(|l| l.line).collect();
        assert_eq!(lines, ["bc", "d", "e"]);
        assert_eq!(log.tail(Some(2), 10).len(), 1);
        assert_eq!(log.tail(Some(0), 1)[0].line, "bc");
        assert_eq!(log.tail(None, 1)[0].line, "e");
        assert_eq!(log.tail(None, 1)[0].request_id, "r-000000000007");
    }

    fn sink(log: &Arc<GuestLog>, max_bytes: u64) -> LogSink {
        LogSink::new(
            log.clone(),
            1,
            Stream::Stdout,
            Arc::new(AtomicU64::new(7)),
            Arc::new(Mutex::new(LogBudget::new(max_bytes))),
            Arc::new(Tripwire::default()),
        )
    }

    #[test]
    fn writes_past_the_budget_trap_and_trip() {
        let log = Arc::new(GuestLog::new("f", 10));
        let mut sink = sink(&log, 8);
        OutputStream::write(&mut sink, Bytes::from_static(b"1234\n")).unwrap();
        for _ in 0..3 {
            OutputStream::write(&mut sink, Bytes::new()).unwrap();
        }
        let error = OutputStream::write(&mut sink, Bytes::new()).unwrap_err();
        assert!(matches!(error, StreamError::Trap(_)), "{error}");
        assert_eq!(sink.tripwire.tripped(), Some(HostLimit::LogBytes(8)));
        assert_eq!(log.tail(None, 10).len(), 1);
    }
}
