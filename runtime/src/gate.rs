//! Per-function concurrency limit with a bounded, time-limited wait queue.

use crate::InvokeError;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Seconds a rejected caller is told to wait (`Retry-After`).
pub const RETRY_AFTER_SECS: u64 = 1;

/// Admits at most `max_concurrency` invocations at once; up to `max_queue`
/// more wait up to `queue_timeout`, and the rest are refused at once.
#[derive(Debug)]
pub struct ConcurrencyGate {
    semaphore: Arc<Semaphore>,
    max_concurrency: u32,
    max_queue: u32,
    queue_timeout: Duration,
    waiting: AtomicU32,
}

/// A slot held for the whole invocation, response body included.
#[derive(Debug)]
pub struct GatePermit {
    _permit: OwnedSemaphorePermit,
}

struct Waiting<'a>(&'a AtomicU32);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ConcurrencyGate {
    /// A gate with the given limits.
    pub fn new(max_concurrency: u32, max_queue: u32, queue_timeout: Duration) -> Self {
        Self {
            semaphore: Arc::new(Semaphore::new(max_concurrency as usize)),
            max_concurrency,
            max_queue,
            queue_timeout,
            waiting: AtomicU32::new(0),
        }
    }

    /// Waits for a slot, or refuses with [`InvokeError::Overloaded`].
    pub async fn acquire(&self) -> Result<GatePermit, InvokeError> {
        if let Ok(permit) = self.semaphore.clone().try_acquire_owned() {
            return Ok(GatePermit { _permit: permit });
        }
        if self.waiting.fetch_add(1, Ordering::Relaxed) >= self.max_queue {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            return Err(self.overloaded(format!(
                "the wait queue is full (max_queue {})",
                self.max_queue
            )));
        }
        let _waiting = Waiting(&self.waiting);
        match tokio::time::timeout(self.queue_timeout, self.semaphore.clone().acquire_owned()).await
        {
            Ok(Ok(permit)) => Ok(GatePermit { _permit: permit }),
            _ => Err(self.overloaded(format!(
                "no slot freed within queue_timeout_ms {}",
                self.queue_timeout.as_millis()
            ))),
        }
    }

    fn overloaded(&self, reason: String) -> InvokeError {
        InvokeError::Overloaded {
            max_concurrency: self.max_concurrency,
            reason,
            retry_after_secs: RETRY_AFTER_SECS,
        }
    }

    /// Invocations holding a slot now.
    pub fn in_flight(&self) -> u32 {
        self.max_concurrency - self.semaphore.available_permits() as u32
    }

    /// Invocations waiting for a slot now.
    pub fn waiting(&self) -> u32 {
        self.waiting.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refuses_beyond_concurrency_plus_queue() {
        let gate = Arc::new(ConcurrencyGate::new(1, 1, Duration::from_secs(5)));
        let held = gate.acquire().await.unwrap();
        let queued = tokio::spawn({
            let gate = gate.clone();
            async move { gate.acquire().await.map(drop) }
        });
        while gate.waiting() == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(gate.acquire().await.unwrap_err().code(), "overloaded");
        drop(held);
        queued.await.unwrap().unwrap();
        assert_eq!(gate.in_flight(), 0);
    }

    #[tokio::test]
    async fn queue_wait_is_bounded() {
        let gate = ConcurrencyGate::new(1, 4, Duration::from_millis(20));
        let _held = gate.acquire().await.unwrap();
        assert_eq!(gate.acquire().await.unwrap_err().code(), "overloaded");
        assert_eq!(gate.waiting(), 0);
    }
}
