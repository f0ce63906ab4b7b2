//! A WAGI module's stdout: kept in memory up to a bound, since it is the
//! response. A write past the bound fails, and the run is answered as over
//! `max_response_bytes`.

use bytes::{Bytes, BytesMut};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

#[derive(Default)]
struct Captured {
    bytes: BytesMut,
    overflowed: bool,
}

/// The captured stdout of one run; clones share it.
#[derive(Clone)]
pub(crate) struct CgiStdout {
    captured: Arc<Mutex<Captured>>,
    capacity: usize,
}

impl CgiStdout {
    /// Keeps at most `capacity` bytes.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            captured: Arc::default(),
            capacity,
        }
    }

    /// What was written.
    pub(crate) fn contents(&self) -> Bytes {
        self.captured.lock().unwrap().bytes.clone().freeze()
    }

    /// Whether a write went past the capacity.
    pub(crate) fn overflowed(&self) -> bool {
        self.captured.lock().unwrap().overflowed
    }

    /// Keeps `buf`, or refuses it whole when it does not fit.
    fn append(&self, buf: &[u8]) -> bool {
        let mut captured = self.captured.lock().unwrap();
        if captured.bytes.len() + buf.len() > self.capacity {
            captured.overflowed = true;
            return false;
        }
        captured.bytes.extend_from_slice(buf);
        true
    }
}

impl IsTerminal for CgiStdout {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CgiStdout {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CgiStdout {
    async fn ready(&mut self) {}
}

#[wasmtime_wasi::async_trait]
impl OutputStream for CgiStdout {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        if self.append(&bytes) {
            Ok(())
        } else {
            Err(StreamError::trap("stdout is over max_response_bytes"))
        }
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        let captured = self.captured.lock().unwrap();
        // Room for one more write past the bound, so that the module's
        // write fails (and the run is known to be over) instead of waiting.
        Ok(self.capacity.saturating_sub(captured.bytes.len()).max(1))
    }
}

impl AsyncWrite for CgiStdout {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(if self.append(buf) {
            Ok(buf.len())
        } else {
            Err(std::io::Error::other("stdout is over max_response_bytes"))
        })
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
