//! Runs a guest call on the caller's task until the response head is ready.
//!
//! A `wasi:http` handler hands its response over (through the response
//! outparam) before it returns: the rest of the call streams the body. The
//! usual host spawns the call as a task of its own so the body can go on
//! while the caller returns the head. That costs a spawn per request and, on
//! a multi-threaded runtime, a wake-up of another worker that finds nothing
//! to do: measured in `benches/`, most of the difference between a cold start
//! on a current-thread and a multi-threaded runtime.
//!
//! Most handlers (every small one) finish within the first poll. So the call
//! is polled in place, and only what is left of it once the response head is
//! out is spawned: nothing for a handler that has returned, the body's tail
//! for one that streams. A caller that goes away mid-call (the client hung
//! up) also spawns the rest, so a started call always runs to its end, as it
//! would as a task of its own.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

type Call<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A guest call polled in place; what is left of it when it is dropped runs
/// on as a task.
pub(crate) struct InlineCall<T: Send + 'static> {
    call: Option<Call<T>>,
}

impl<T: Send + 'static> InlineCall<T> {
    pub(crate) fn new(call: impl Future<Output = T> + Send + 'static) -> Self {
        Self {
            call: Some(Box::pin(call)),
        }
    }

    /// Polls the call; once it is ready it is gone and dropping does nothing.
    pub(crate) fn poll_call(&mut self, cx: &mut Context<'_>) -> Poll<T> {
        let call = self
            .call
            .as_mut()
            .expect("an InlineCall is not polled after it finished");
        let output = std::task::ready!(call.as_mut().poll(cx));
        self.call = None;
        Poll::Ready(output)
    }

    /// Waits for the call to end on this task.
    pub(crate) async fn finish(mut self) -> T {
        std::future::poll_fn(|cx| self.poll_call(cx)).await
    }
}

impl<T: Send + 'static> Drop for InlineCall<T> {
    fn drop(&mut self) {
        if let Some(call) = self.call.take() {
            // Outside a runtime (it is shutting down) the call is dropped,
            // as its task would be.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(call);
            }
        }
    }
}

/// What came first: the response head, or the end of the call.
pub(crate) enum First<R, T> {
    /// The handler set its response; the call may still be streaming.
    Response(R),
    /// The call ended (before or together with setting a response).
    Ended(T),
}

/// Polls the call until the response arrives on `response` or the call ends,
/// whichever is first. The call is polled first: what it sends in that poll
/// is seen in the same one, and a call that ended may have sent its response
/// too (its caller then finds it on `response`).
pub(crate) async fn until_response<R, T: Send + 'static>(
    call: &mut InlineCall<T>,
    response: &mut (impl Future<Output = R> + Unpin),
) -> First<R, T> {
    std::future::poll_fn(|cx| {
        if let Poll::Ready(ended) = call.poll_call(cx) {
            return Poll::Ready(First::Ended(ended));
        }
        Pin::new(&mut *response).poll(cx).map(First::Response)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[tokio::test]
    async fn a_finished_call_leaves_nothing_to_spawn() {
        let mut call = InlineCall::new(async { 7 });
        let mut never = std::pin::pin!(std::future::pending::<()>());
        let first = until_response(&mut call, &mut never).await;
        assert!(matches!(first, First::Ended(7)));
        assert!(call.call.is_none());
    }

    #[tokio::test]
    async fn the_response_first_and_the_rest_runs_on_after_drop() {
        let (head_tx, mut head_rx) = tokio::sync::oneshot::channel();
        let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
        let ended = Arc::new(AtomicBool::new(false));
        let mut call = InlineCall::new({
            let ended = ended.clone();
            async move {
                head_tx.send("head").unwrap();
                go_rx.await.unwrap();
                ended.store(true, Ordering::SeqCst);
            }
        });
        let first = until_response(&mut call, &mut head_rx).await;
        assert!(matches!(first, First::Response(Ok("head"))));
        drop(call);
        go_tx.send(()).unwrap();
        for _ in 0..100 {
            if ended.load(Ordering::SeqCst) {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("the rest of the call did not run after the caller dropped it");
    }

    #[tokio::test]
    async fn finish_waits_for_the_end() {
        let call = InlineCall::new(async {
            tokio::task::yield_now().await;
            "done"
        });
        assert_eq!(call.finish().await, "done");
    }
}
