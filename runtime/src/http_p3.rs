//! WASI 0.3 components: each instance is a task that drives its store's
//! event loop and serves up to `max_concurrent_requests_per_instance`
//! requests at once.
//!
//! A request takes room on an instance of the pool that has some, or on a
//! new one, and is sent to that instance's task. The task starts the
//! guest's `wasi:http/handler#handle` in the store's event loop and answers
//! with the response head as soon as the guest returns it; the body then
//! streams from the event loop. A request ends when its response body does,
//! or when it fails. An instance is dropped once it has taken
//! `max_requests_per_instance` requests and all of them ended, or when it
//! sits idle too long.
//!
//! Requests in flight on one instance share its fate. The memory cap, the
//! host-resource budget and the store belong to the instance, so a request
//! that crosses a limit, its time limit included, ends the instance, and
//! the other requests in flight on it fail with the same error.

use crate::InvokeError;
use crate::budget::{HostLimit, Tripwire};
use crate::gate::GatePermit;
use crate::host::{HostState, Sinks, epoch_check, new_store};
use crate::pool::{InstancePool, InvokeResponse, StartKind};
use crate::response_body::GuestBody;
use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt as _};
use futures::task::AtomicWaker;
use http_body::{Body, Frame, SizeHint};
use std::collections::BTreeSet;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};
use wasmtime::Store;
use wasmtime::component::Accessor;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::body::HyperIncomingBody;
use wasmtime_wasi_http::p3::Request;
use wasmtime_wasi_http::p3::bindings::{Service, ServicePre};

/// How often a busy instance looks at the limits its requests can cross
/// outside the guest's code (a response body past `max_response_bytes`).
const LIMIT_CHECK: Duration = Duration::from_millis(10);

/// How the host's handling of a request's body ended, for the guest.
type RequestIo =
    Pin<Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send + 'static>>;

/// The live instances of one version that may take more requests.
#[derive(Default)]
pub(crate) struct P3Instances {
    open: Mutex<Vec<Arc<Handle>>>,
}

impl P3Instances {
    /// Keeps `instance` to take requests.
    pub(crate) fn add(&self, instance: Arc<Handle>) {
        self.open.lock().unwrap().push(instance);
    }

    /// Instances with no request in flight.
    pub(crate) fn idle(&self) -> usize {
        let open = self.open.lock().unwrap();
        open.iter().filter(|i| i.shared.is_idle()).count()
    }

    /// Takes room for one request on the first instance that has some;
    /// an instance that has taken its last request leaves the list.
    fn reserve(&self, max_requests: u32, max_concurrent: u32) -> Option<Arc<Handle>> {
        let mut open = self.open.lock().unwrap();
        let at = open
            .iter()
            .position(|i| !i.shared.failed() && i.shared.in_flight() < max_concurrent as usize)?;
        let instance = &open[at];
        Some(if instance.shared.take() >= max_requests {
            open.remove(at)
        } else {
            instance.clone()
        })
    }

    /// Drops instances idle longer than `max_idle`, keeping `min` idle
    /// ones, and instances that failed.
    pub(crate) fn trim(&self, min: usize, max_idle: Duration) {
        let dropped: Vec<Arc<Handle>> = {
            let mut open = self.open.lock().unwrap();
            let mut idle = open.iter().filter(|i| i.shared.is_idle()).count();
            let mut dropped = Vec::new();
            open.retain(|i| {
                let expired = i.shared.is_idle()
                    && idle > min
                    && i.shared.idle_since.lock().unwrap().elapsed() > max_idle;
                if expired {
                    idle -= 1;
                }
                if expired || i.shared.failed() {
                    dropped.push(i.clone());
                    return false;
                }
                true
            });
            dropped
        };
        drop(dropped);
    }
}

/// The pool's side of an instance: where its requests go. The instance's
/// task ends when every handle is dropped and its requests have ended.
pub(crate) struct Handle {
    jobs: mpsc::UnboundedSender<Job>,
    shared: Arc<Shared>,
}

/// What an instance's task and its requests share.
struct Shared {
    /// Requests that took room on the instance and have not ended.
    in_flight: AtomicUsize,
    /// Requests the instance took, in all.
    accepted: AtomicU32,
    /// The deadlines of the requests in flight, with their ids.
    deadlines: Mutex<BTreeSet<(Instant, u64)>>,
    /// Why the instance ended, once it failed.
    failure: OnceLock<InvokeError>,
    /// When the last request ended.
    idle_since: Mutex<Instant>,
    /// The task, to wake when a request ends.
    task: AtomicWaker,
    tripwire: Arc<Tripwire>,
    /// The id log lines of the instance carry: its latest request's.
    request_id: Arc<AtomicU64>,
    /// Requests dropped unfinished, whose outcome is the instance's: known
    /// at its task's next turn (a trap drops them before it is reported).
    /// `None` once the task has ended.
    unsettled: Mutex<Option<Vec<Finished>>>,
    /// Turns true when the instance's task has ended, its failure (if any)
    /// recorded.
    ended: watch::Sender<bool>,
}

impl Shared {
    fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    fn failed(&self) -> bool {
        self.failure.get().is_some()
    }

    /// Takes room for one more request; returns the requests taken in all.
    fn take(&self) -> u32 {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.accepted.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Whether the instance waits for requests with none in flight.
    fn is_idle(&self) -> bool {
        !self.failed() && self.in_flight() == 0
    }

    /// The first deadline of a request in flight.
    fn earliest_deadline(&self) -> Option<Instant> {
        self.deadlines.lock().unwrap().first().map(|&(at, _)| at)
    }

    /// Records the instance's failure (the first one wins) and fails the
    /// bodies still streaming, so that their callers see an error and not
    /// a clean end.
    fn fail(&self, error: InvokeError) {
        let _ = self.failure.set(error);
        self.tripwire.fail();
    }

    fn failure(&self) -> Option<InvokeError> {
        self.failure.get().cloned()
    }

    /// How the instance's requests end unless they say otherwise.
    fn outcome(&self) -> Result<(), InvokeError> {
        self.failure().map_or(Ok(()), Err)
    }

    /// Reports `finished` with the instance's outcome once it is known.
    fn settle_later(&self, pool: &InstancePool, finished: Finished) {
        let mut unsettled = self.unsettled.lock().unwrap();
        match unsettled.as_mut() {
            Some(waiting) => {
                waiting.push(finished);
                self.task.wake();
            }
            None => {
                drop(unsettled);
                finished.report(pool, self.outcome());
            }
        }
    }

    /// Reports the requests dropped unfinished with the instance's outcome
    /// so far; `last` when the task ends.
    fn settle(&self, pool: &InstancePool, last: bool) {
        let settled = {
            let mut unsettled = self.unsettled.lock().unwrap();
            if last {
                unsettled.take().unwrap_or_default()
            } else {
                unsettled.as_mut().map(std::mem::take).unwrap_or_default()
            }
        };
        let outcome = self.outcome();
        for finished in settled {
            finished.report(pool, outcome.clone());
        }
    }

    /// A request ended.
    fn end(&self, request_id: u64, deadline: Instant) {
        self.deadlines
            .lock()
            .unwrap()
            .remove(&(deadline, request_id));
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            *self.idle_since.lock().unwrap() = Instant::now();
        }
        self.task.wake();
    }
}

/// One request on its way to an instance's task.
struct Job {
    request: http::Request<HyperIncomingBody>,
    answer: oneshot::Sender<Result<InvokeResponse, InvokeError>>,
    ending: Ending,
}

/// One request's end: reports it and frees its room when dropped, which is
/// when its response body ends or the request fails.
struct Ending {
    pool: Arc<InstancePool>,
    shared: Arc<Shared>,
    request_id: u64,
    deadline: Instant,
    started: Instant,
    memory_bytes: usize,
    /// How the request ended, once known; unknown means it was dropped
    /// unfinished: by the caller (fine), or by a failed instance.
    outcome: Option<Result<(), InvokeError>>,
    _permit: GatePermit,
}

impl Drop for Ending {
    fn drop(&mut self) {
        self.shared.end(self.request_id, self.deadline);
        let finished = Finished {
            elapsed: self.started.elapsed(),
            memory_bytes: self.memory_bytes,
        };
        match self.outcome.take() {
            Some(outcome) => finished.report(&self.pool, outcome),
            None => self.shared.settle_later(&self.pool, finished),
        }
    }
}

/// A request that ended, to report.
struct Finished {
    elapsed: Duration,
    memory_bytes: usize,
}

impl Finished {
    fn report(&self, pool: &InstancePool, outcome: Result<(), InvokeError>) {
        pool.observer.finished(
            &pool.function,
            pool.version,
            outcome.as_ref().map(|_| ()),
            self.elapsed,
            self.memory_bytes,
        );
    }
}

/// A response body that ends its request when it ends.
struct EndingBody {
    inner: GuestBody,
    ending: Option<Ending>,
}

impl Body for EndingBody {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        let outcome = match &frame {
            None => Some(Ok(())),
            Some(Err(e)) => Some(Err(self.failure_of(e))),
            Some(Ok(_)) => None,
        };
        if let Some(outcome) = outcome
            && let Some(mut ending) = self.ending.take()
        {
            ending.outcome = Some(outcome);
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl EndingBody {
    /// What a body that ended in `error` means for its request.
    fn failure_of(&self, error: &wasmtime_wasi_http::Error) -> InvokeError {
        let Some(ending) = &self.ending else {
            return InvokeError::Guest(format!("{error:?}"));
        };
        if let Some(limit) = ending.shared.tripwire.tripped() {
            return InvokeError::ResourceLimitExceeded(limit);
        }
        ending
            .shared
            .failure()
            .unwrap_or_else(|| InvokeError::Guest(format!("{error:?}")))
    }
}

impl InstancePool {
    /// Runs one request on an instance of this WASI 0.3 component.
    pub(crate) async fn invoke_p3(
        self: &Arc<Self>,
        pre: &ServicePre<HostState>,
        permit: GatePermit,
        request_id: u64,
        request: http::Request<HyperIncomingBody>,
    ) -> Result<InvokeResponse, InvokeError> {
        let started = Instant::now();
        *self.last_used.lock().unwrap() = started;
        let config = &self.sandbox.config;
        let (max_requests, max_concurrent) = (
            config.max_requests_per_instance,
            config.max_concurrent_requests_per_instance,
        );
        let (instance, start) = match self.p3.reserve(max_requests, max_concurrent) {
            Some(instance) => (instance, StartKind::Warm),
            None => match self.spawn_p3(pre).await {
                Ok(instance) => {
                    if instance.shared.take() < max_requests {
                        self.p3.add(instance.clone());
                    }
                    (instance, StartKind::Cold)
                }
                Err(e) => return Err(self.no_start(started, e)),
            },
        };
        self.fill();
        self.observer.started(&self.function, self.version, start);
        let deadline = Instant::now() + self.timeout();
        instance
            .shared
            .deadlines
            .lock()
            .unwrap()
            .insert((deadline, request_id));
        let (answer, answered) = oneshot::channel();
        let job = Job {
            request,
            answer,
            ending: Ending {
                pool: self.clone(),
                shared: instance.shared.clone(),
                request_id,
                deadline,
                started,
                memory_bytes: 0,
                outcome: None,
                _permit: permit,
            },
        };
        let shared = instance.shared.clone();
        // Refused when the instance ended meanwhile: the job, and with it
        // the answer's sender, is dropped, and the failure says why.
        let _ = instance.jobs.send(job);
        drop(instance);
        match answered.await {
            Ok(answer) => answer,
            Err(_) => {
                // The instance ended without answering: its end says why.
                let _ = shared.ended.subscribe().wait_for(|ended| *ended).await;
                Err(shared.failure().unwrap_or(InvokeError::NoResponse))
            }
        }
    }

    /// Instantiates the component in a store of its own and starts the
    /// instance's task.
    pub(crate) async fn spawn_p3(
        self: &Arc<Self>,
        pre: &ServicePre<HostState>,
    ) -> Result<Arc<Handle>, InvokeError> {
        let (mut store, sinks) = new_store(&self.engine, &self.sandbox);
        let shared = Arc::new(Shared {
            in_flight: AtomicUsize::new(0),
            accepted: AtomicU32::new(0),
            deadlines: Mutex::new(BTreeSet::new()),
            failure: OnceLock::new(),
            idle_since: Mutex::new(Instant::now()),
            task: AtomicWaker::new(),
            tripwire: store.data().budget.tripwire.clone(),
            request_id: sinks.request_id.clone(),
            unsettled: Mutex::new(Some(Vec::new())),
            ended: watch::Sender::new(false),
        });
        // Instantiation runs under the function's time limit too.
        store.data_mut().deadline = Instant::now() + self.timeout();
        store.set_epoch_deadline(1);
        let service = match pre.instantiate_async(&mut store).await {
            Ok(service) => service,
            Err(e) => return Err(self.classify(e, store.data())),
        };
        store.epoch_deadline_callback({
            let shared = shared.clone();
            move |mut ctx| {
                let deadline = shared
                    .earliest_deadline()
                    .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
                epoch_check(ctx.data_mut(), deadline)
            }
        });
        let (jobs, queue) = mpsc::unbounded_channel();
        tokio::spawn(serve(
            self.clone(),
            store,
            service,
            queue,
            shared.clone(),
            sinks,
        ));
        Ok(Arc::new(Handle { jobs, shared }))
    }
}

/// The task of one instance: runs its store's event loop until the
/// instance has no more requests to take and none in flight, or fails.
async fn serve(
    pool: Arc<InstancePool>,
    mut store: Store<HostState>,
    service: Service,
    mut queue: mpsc::UnboundedReceiver<Job>,
    shared: Arc<Shared>,
    sinks: Sinks,
) {
    let ended = {
        let calls = store.run_concurrent(async |accessor| {
            serve_calls(accessor, &pool, &service, &mut queue, &shared).await
        });
        let mut calls = pin!(calls);
        let mut check = pin!(tokio::time::sleep(LIMIT_CHECK));
        std::future::poll_fn(|cx| match calls.as_mut().poll(cx) {
            Poll::Ready(Ok(ended)) => Poll::Ready(ended.map_err(Ended::Failed)),
            Poll::Ready(Err(trap)) => Poll::Ready(Err(Ended::Trapped(trap))),
            Poll::Pending => {
                // No trap ended the requests dropped meanwhile.
                shared.settle(&pool, false);
                // The guest awaits: the limits only the host can see.
                let now = Instant::now();
                if let Some(limit) = shared.tripwire.tripped() {
                    return Poll::Ready(Err(Ended::Failed(InvokeError::ResourceLimitExceeded(
                        limit,
                    ))));
                }
                let deadline = shared.earliest_deadline();
                if deadline.is_some_and(|at| at <= now) {
                    return Poll::Ready(Err(Ended::Failed(InvokeError::Timeout {
                        limit_ms: pool.sandbox.config.timeout_ms,
                    })));
                }
                if shared.in_flight() > 0 {
                    let next = deadline.map_or(now + LIMIT_CHECK, |at| at.min(now + LIMIT_CHECK));
                    check.as_mut().reset(next.into());
                    if check.as_mut().poll(cx).is_ready() {
                        cx.waker().wake_by_ref();
                    }
                }
                Poll::Pending
            }
        })
        .await
    };
    let failure = match ended {
        Ok(()) => None,
        Err(Ended::Failed(failure)) => Some(failure),
        Err(Ended::Trapped(trap)) => Some(pool.classify(trap, store.data())),
    };
    if let Some(failure) = failure {
        shared.fail(failure);
    }
    shared.settle(&pool, true);
    sinks.flush();
    drop(store);
    shared.ended.send_replace(true);
}

/// Why an instance's event loop stopped early.
enum Ended {
    /// A request or the host ended it.
    Failed(InvokeError),
    /// The event loop itself failed: a trap, say.
    Trapped(wasmtime::Error),
}

/// Inside the event loop: takes the instance's requests and runs their
/// calls, until no more can come and none is in flight.
async fn serve_calls(
    accessor: &Accessor<HostState>,
    pool: &Arc<InstancePool>,
    service: &Service,
    queue: &mut mpsc::UnboundedReceiver<Job>,
    shared: &Arc<Shared>,
) -> Result<(), InvokeError> {
    let mut calls = FuturesUnordered::new();
    let mut open = true;
    std::future::poll_fn(|cx| {
        loop {
            if let Poll::Ready(Some(result)) = calls.poll_next_unpin(cx) {
                result?;
                continue;
            }
            if open {
                match queue.poll_recv(cx) {
                    Poll::Ready(Some(job)) => {
                        calls.push(call(accessor, pool, service, shared, job));
                        continue;
                    }
                    Poll::Ready(None) => open = false,
                    Poll::Pending => {}
                }
            }
            let done = || !open && calls.is_empty() && shared.in_flight() == 0;
            if done() {
                return Poll::Ready(Ok(()));
            }
            shared.task.register(cx.waker());
            if done() {
                return Poll::Ready(Ok(()));
            }
            return Poll::Pending;
        }
    })
    .await
}

/// One request: the guest's `handle`, then the response head to the
/// caller. An error that ends the instance is returned; one that ends only
/// the request is answered.
async fn call(
    accessor: &Accessor<HostState>,
    pool: &Arc<InstancePool>,
    service: &Service,
    shared: &Arc<Shared>,
    job: Job,
) -> Result<(), InvokeError> {
    let Job {
        request,
        answer,
        mut ending,
    } = job;
    shared
        .request_id
        .store(ending.request_id, Ordering::Relaxed);
    let first = shared.in_flight() == 1;
    let (request, request_io) = accessor.with(|mut store| {
        let state = store.data_mut();
        if first {
            state.budget.reset();
        }
        let (request, io) = Request::from_http(state.http().hooks, request);
        let io: RequestIo = Box::pin(io);
        (request, io)
    });
    let handled = match service.handle(accessor, request).await {
        Ok(handled) => handled,
        Err(e) => {
            let failure = accessor.with(|mut store| pool.classify(e, store.data_mut()));
            ending.outcome = Some(Err(failure.clone()));
            let _ = answer.send(Err(failure.clone()));
            return Err(failure);
        }
    };
    let response = match handled {
        Ok(response) => response,
        Err(code) => {
            let failure = InvokeError::Guest(format!("{code:?}"));
            ending.outcome = Some(Err(failure.clone()));
            let _ = answer.send(Err(failure));
            return Ok(());
        }
    };
    let converted = accessor.with(|mut store| {
        ending.memory_bytes = store.data_mut().memory.used_bytes();
        response.into_http(&mut store, request_io)
    });
    let response = match converted {
        Ok(response) => response,
        Err(e) => {
            let failure = InvokeError::Guest(format!("{e:#}"));
            ending.outcome = Some(Err(failure.clone()));
            let _ = answer.send(Err(failure));
            return Ok(());
        }
    };
    let max = pool.sandbox.config.max_response_bytes;
    let declared = response
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max) {
        let limit = HostLimit::ResponseBytes(max);
        drop(shared.tripwire.trip(limit));
        ending.outcome = Some(Err(InvokeError::ResourceLimitExceeded(limit)));
        let _ = answer.send(Err(InvokeError::ResourceLimitExceeded(limit)));
        return Err(InvokeError::ResourceLimitExceeded(limit));
    }
    let tripwire = shared.tripwire.clone();
    let response = response.map(|body| {
        http_body_util::BodyExt::boxed_unsync(EndingBody {
            inner: GuestBody::new(body, max, tripwire),
            ending: Some(ending),
        })
    });
    let _ = answer.send(Ok(response));
    Ok(())
}
