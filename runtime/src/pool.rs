//! The instance pool of one function version.
//!
//! Every request gets a fresh instance by default (`max_requests_per_instance`
//! = 1), instantiated from the pre-linked component; `min_instances` are kept
//! instantiated ahead of requests so a burst after idle pays no
//! instantiation. A function that opts in to reuse gets its instance back
//! into the pool after a successful request, up to `max_requests_per_instance`
//! requests or until it sits idle too long. An instance that trapped, timed
//! out or hit its memory cap or host-resource budget is dropped, never
//! reused, and an instance never leaves the pool of its version.
//!
//! A WAGI module's pool keeps no instances: each request runs in a fresh
//! one (see [`crate::wagi`]). A WASI 0.3 component's instances are tasks
//! that may serve several requests at once (see [`crate::http_p3`]).

use crate::budget::{HostLimit, Tripwire};
use crate::engine::EngineKind;
use crate::gate::GatePermit;
use crate::guest_log::GuestLog;
use crate::host::{HostState, Sandbox, Sinks, new_store};
use crate::http_p3::P3Instances;
use crate::inline_call::{First, InlineCall, until_response};
use crate::outbound::OutboundPolicy;
use crate::program::Program;
use crate::response_body::GuestBody;
use crate::wagi::WagiState;
use crate::{InvokeError, Runtime};
use flint_spec::FunctionConfig;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmtime::component::ResourceTableError;
use wasmtime::{InstancePre, Store, Trap};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::bindings::{Proxy, ProxyPre};
use wasmtime_wasi_http::p2::body::{HyperIncomingBody, HyperOutgoingBody};
use wasmtime_wasi_http::p3::bindings::ServicePre;

/// How an invocation got its instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartKind {
    /// Instantiated from the pre-linked component on the request path.
    Cold,
    /// Taken from the pool: pre-instantiated ahead of time, or reused.
    Warm,
}

impl StartKind {
    /// Metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cold => "cold",
            Self::Warm => "warm",
        }
    }
}

/// Receives what happened to each invocation (metrics, stats).
pub trait InvocationObserver: Send + Sync {
    /// An invocation got its instance.
    fn started(&self, function: &str, version: u32, start: StartKind);
    /// An invocation ended: `Ok` or the error code, its duration (response
    /// body included) and the linear memory its instance held at the end (0
    /// when no instance started).
    fn finished(
        &self,
        function: &str,
        version: u32,
        outcome: Result<(), &InvokeError>,
        elapsed: Duration,
        memory_bytes: usize,
    );
}

/// Resource-table entries an instance may hold between calls and still be
/// reused: half the table, so a reused call has as much room as a fresh one
/// needs.
const MAX_RESOURCES_HELD_FOR_REUSE: usize = crate::budget::MAX_RESOURCES / 2;

static NEXT_REQUEST_ID: AtomicU64 = AtomicU64::new(1);

/// A fresh process-wide invocation id.
pub fn next_request_id() -> u64 {
    NEXT_REQUEST_ID.fetch_add(1, Ordering::Relaxed)
}

struct Instance {
    store: Store<HostState>,
    proxy: Proxy,
    sinks: Sinks,
    served: u32,
}

struct Idle {
    instance: Instance,
    since: Instant,
}

/// What the guest answers through its response outparam, on its way to the
/// caller of [`InstancePool::invoke`].
struct Head {
    /// What the outparam sends.
    receiver: tokio::sync::oneshot::Receiver<Result<http::Response<HyperOutgoingBody>, ErrorCode>>,
    /// To the caller, until the head is forwarded.
    sender: Option<tokio::sync::oneshot::Sender<Result<InvokeResponse, InvokeError>>>,
    /// How the guest answered, once it did: `Ok` for a response, the error
    /// for an error code or a declared body over `max_response_bytes`.
    answered: Option<Result<(), InvokeError>>,
}

impl Head {
    /// Forwards the head if the guest has set it.
    fn poll_forward(
        &mut self,
        cx: &mut std::task::Context<'_>,
        pool: &InstancePool,
        tripwire: &Arc<Tripwire>,
    ) {
        if self.sender.is_some()
            && let std::task::Poll::Ready(set) = std::pin::Pin::new(&mut self.receiver).poll(cx)
        {
            self.forward(set.ok(), pool, tripwire);
        }
    }

    /// Forwards a head that is ready, without waiting.
    fn forward_ready(&mut self, pool: &InstancePool, tripwire: &Arc<Tripwire>) {
        if self.sender.is_some() {
            let set = self.receiver.try_recv().ok();
            self.forward(set, pool, tripwire);
        }
    }

    /// Checks what the guest set (`None`: it dropped its outparam unset, or
    /// has not set it yet at the call's end) and passes it on.
    fn forward(
        &mut self,
        set: Option<Result<http::Response<HyperOutgoingBody>, ErrorCode>>,
        pool: &InstancePool,
        tripwire: &Arc<Tripwire>,
    ) {
        let Some(sender) = self.sender.take() else {
            return;
        };
        let Some(set) = set else {
            // Dropping the sender tells the caller there is no head.
            return;
        };
        let answer = match set {
            Err(code) => Err(InvokeError::Guest(format!("{code:?}"))),
            Ok(head) => {
                let max = pool.sandbox.config.max_response_bytes;
                let declared = head
                    .headers()
                    .get(http::header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
                if declared.is_some_and(|len| len > max) {
                    let limit = HostLimit::ResponseBytes(max);
                    drop(tripwire.trip(limit));
                    Err(InvokeError::ResourceLimitExceeded(limit))
                } else {
                    Ok(head.map(|body| GuestBody::new(body, max, tripwire.clone()).boxed()))
                }
            }
        };
        self.answered = Some(answer.as_ref().map(|_| ()).map_err(Clone::clone));
        let _ = sender.send(answer);
    }
}

/// A program pre-linked against the host's interfaces.
pub(crate) enum Prelinked {
    /// A `wasi:http` 0.2 component.
    Http(ProxyPre<HostState>),
    /// A `wasi:http` 0.3 component.
    HttpP3(ServicePre<HostState>),
    /// A WAGI module.
    Wagi(InstancePre<WagiState>),
}

/// The warm pool and pre-linked program of one function version.
pub struct InstancePool {
    pub(crate) function: Arc<str>,
    pub(crate) version: u32,
    pub(crate) engine: wasmtime::Engine,
    pre: Prelinked,
    pub(crate) sandbox: Sandbox,
    pub(crate) observer: Arc<dyn InvocationObserver>,
    idle: Mutex<Vec<Idle>>,
    pub(crate) p3: P3Instances,
    refilling: AtomicBool,
    pub(crate) last_used: Mutex<Instant>,
}

/// The response of an invocation; its body streams from the guest.
pub type InvokeResponse = http::Response<HyperOutgoingBody>;

impl InstancePool {
    /// Pre-links `program` and creates its (empty) pool; call
    /// [`InstancePool::fill`] to instantiate `min_instances` ahead of time.
    pub fn new(
        runtime: &Runtime,
        function: &str,
        version: u32,
        program: &Program,
        config: Arc<FunctionConfig>,
        log: Arc<GuestLog>,
        observer: Arc<dyn InvocationObserver>,
    ) -> anyhow::Result<Arc<Self>> {
        let pre = runtime.prelink(program)?;
        let outbound = OutboundPolicy::new(&config.allowed_outbound_hosts);
        Ok(Arc::new(Self {
            function: function.into(),
            version,
            engine: runtime.engine(EngineKind::of(program.kind()))?.clone(),
            pre,
            sandbox: Sandbox {
                config,
                outbound,
                log,
                version,
            },
            observer,
            idle: Mutex::new(Vec::new()),
            p3: P3Instances::default(),
            refilling: AtomicBool::new(false),
            last_used: Mutex::new(Instant::now()),
        }))
    }

    /// The configuration this pool was built with.
    pub fn config(&self) -> &FunctionConfig {
        &self.sandbox.config
    }

    /// The version this pool runs.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Instances waiting in the pool with no request in flight.
    pub fn warm_instances(&self) -> usize {
        self.idle.lock().unwrap().len() + self.p3.idle()
    }

    /// Time since the pool last served a request.
    pub fn idle_for(&self) -> Duration {
        self.last_used.lock().unwrap().elapsed()
    }

    pub(crate) fn timeout(&self) -> Duration {
        Duration::from_millis(self.sandbox.config.timeout_ms)
    }

    /// Whether instances are made ahead of requests and reused: not for a
    /// WAGI module, whose instance is made from its request.
    fn pools_instances(&self) -> bool {
        !matches!(self.pre, Prelinked::Wagi(_))
    }

    async fn instantiate(&self) -> Result<Instance, InvokeError> {
        let Prelinked::Http(pre) = &self.pre else {
            return Err(InvokeError::Internal(
                "only a WASI 0.2 component has instances of this shape".into(),
            ));
        };
        let (mut store, sinks) = new_store(&self.engine, &self.sandbox);
        store.data_mut().deadline = Instant::now() + self.timeout();
        store.set_epoch_deadline(1);
        match pre.instantiate_async(&mut store).await {
            Ok(proxy) => Ok(Instance {
                store,
                proxy,
                sinks,
                served: 0,
            }),
            Err(e) => Err(self.classify(e, store.data())),
        }
    }

    /// Instantiates instances until `min_instances` wait in the pool. Runs in
    /// the background; at most one fill runs at a time.
    pub fn fill(self: &Arc<Self>) {
        let min = self.sandbox.config.min_instances as usize;
        if min == 0
            || !self.pools_instances()
            || self.warm_instances() >= min
            || self.refilling.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let pool = self.clone();
        tokio::spawn(async move {
            while pool.warm_instances() < min {
                match pool.prewarm().await {
                    Ok(()) => {}
                    Err(e) => {
                        tracing::warn!(function = %pool.function, version = pool.version, error = %e, "pre-instantiation failed");
                        break;
                    }
                }
            }
            pool.refilling.store(false, Ordering::Release);
        });
    }

    /// Instantiates one instance into the pool now, so the next invocation
    /// starts warm, and says why when instantiation fails (a benchmark's warm
    /// start; [`InstancePool::fill`] keeps `min_instances` in the background).
    /// A WAGI module has no warm start: this fails for one.
    pub async fn prewarm(self: &Arc<Self>) -> Result<(), InvokeError> {
        match &self.pre {
            Prelinked::Http(_) => {
                let instance = self.instantiate().await?;
                self.idle.lock().unwrap().push(Idle {
                    instance,
                    since: Instant::now(),
                });
            }
            Prelinked::HttpP3(pre) => {
                let instance = self.spawn_p3(pre).await?;
                self.p3.add(instance);
            }
            Prelinked::Wagi(_) => {
                return Err(InvokeError::Internal(
                    "a WAGI module has no warm start: each request runs in a fresh instance".into(),
                ));
            }
        }
        Ok(())
    }

    /// Drops pooled instances idle longer than `max_idle`, keeping
    /// `min_instances`.
    pub fn trim(&self, max_idle: Duration) {
        let min = self.sandbox.config.min_instances as usize;
        let expired: Vec<Idle> = {
            let mut idle = self.idle.lock().unwrap();
            // Instances are pushed as they become idle, so the oldest lead.
            let excess = idle.len().saturating_sub(min);
            let n = idle
                .iter()
                .take(excess)
                .take_while(|i| i.since.elapsed() > max_idle)
                .count();
            idle.drain(..n).collect()
        };
        // Tearing instances down returns their slots; do it outside the lock.
        drop(expired);
        self.p3.trim(min, max_idle);
    }

    fn take(&self) -> Option<Instance> {
        // Most recently used first: its memory is most likely still in cache.
        self.idle.lock().unwrap().pop().map(|i| i.instance)
    }

    fn give_back(&self, mut instance: Instance) {
        // A guest that keeps handles across requests (some language
        // runtimes never drop their stdout stream or pollables) would fill
        // its table over many reuses and then fail a request: it is retired
        // while it still has room for a whole call.
        let reusable = instance.served < self.sandbox.config.max_requests_per_instance
            && instance.store.data_mut().resources_held() <= MAX_RESOURCES_HELD_FOR_REUSE;
        if reusable {
            instance.store.data_mut().memory.hit = false;
            self.idle.lock().unwrap().push(Idle {
                instance,
                since: Instant::now(),
            });
        }
    }

    /// Runs one request on an instance of this version. `permit` is held
    /// until the invocation ends, response body included.
    pub async fn invoke(
        self: &Arc<Self>,
        permit: GatePermit,
        request_id: u64,
        request: http::Request<HyperIncomingBody>,
    ) -> Result<InvokeResponse, InvokeError> {
        match &self.pre {
            Prelinked::Http(_) => {}
            Prelinked::HttpP3(pre) => {
                return self.invoke_p3(pre, permit, request_id, request).await;
            }
            Prelinked::Wagi(pre) => {
                return self.invoke_wagi(pre, permit, request_id, request).await;
            }
        }
        let started = Instant::now();
        *self.last_used.lock().unwrap() = started;
        let (mut instance, start) = match self.take() {
            Some(instance) => (instance, StartKind::Warm),
            None => match self.instantiate().await {
                Ok(instance) => (instance, StartKind::Cold),
                Err(e) => return Err(self.no_start(started, e)),
            },
        };
        self.fill();
        self.observer.started(&self.function, self.version, start);
        instance.served += 1;
        instance
            .sinks
            .request_id
            .store(request_id, Ordering::Relaxed);
        let timeout = self.timeout();
        instance.store.data_mut().deadline = Instant::now() + timeout;
        instance.store.data().budget.reset();
        instance.store.set_epoch_deadline(1);
        let tripwire = instance.store.data().budget.tripwire.clone();

        // The guest's outparam sends on `receiver`; the call forwards what it
        // sets, checked, on `head` to this caller. So the call itself knows
        // whether and how it answered, and reports the outcome once.
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let (head_tx, mut head_rx) = tokio::sync::oneshot::channel();
        let mut http = instance.store.data_mut().http();
        let prepared = http
            .new_incoming_request(Scheme::Http, request)
            .and_then(|req| Ok((req, http.new_response_outparam(sender)?)));
        let (req, out) = match prepared {
            Ok(pair) => pair,
            Err(e) => {
                let e = InvokeError::Internal(format!("{e:#}"));
                let memory = instance.store.data().memory.used_bytes();
                self.observer.finished(
                    &self.function,
                    self.version,
                    Err(&e),
                    started.elapsed(),
                    memory,
                );
                return Err(e);
            }
        };

        let pool = self.clone();
        let mut call = InlineCall::new(async move {
            let _permit = permit;
            let mut head = Head {
                receiver,
                sender: Some(head_tx),
                answered: None,
            };
            let ended = {
                let call = instance.proxy.wasi_http_incoming_handler().call_handle(
                    &mut instance.store,
                    req,
                    out,
                );
                let mut call = std::pin::pin!(tokio::time::timeout(timeout, call));
                std::future::poll_fn(|cx| {
                    head.poll_forward(cx, &pool, &tripwire);
                    call.as_mut().poll(cx)
                })
                .await
            };
            // A head set in the call's last poll.
            head.forward_ready(&pool, &tripwire);
            let outcome = match ended {
                Err(_elapsed) => Err(InvokeError::Timeout {
                    limit_ms: pool.sandbox.config.timeout_ms,
                }),
                Ok(Err(e)) => Err(pool.classify(e, instance.store.data())),
                // A guest that returns normally after a limit cut it off (its
                // response body, say) still crossed it.
                Ok(Ok(())) => match instance.store.data().budget.tripwire.tripped() {
                    Some(limit) => Err(InvokeError::ResourceLimitExceeded(limit)),
                    None => head.answered.unwrap_or(Err(InvokeError::NoResponse)),
                },
            };
            if outcome.is_err() {
                // Before the instance (and with it the body's sender) is
                // dropped, so the body sees it when its stream ends.
                instance.store.data().budget.tripwire.fail();
            }
            instance.sinks.flush();
            pool.observer.finished(
                &pool.function,
                pool.version,
                outcome.as_ref().map(|_| ()),
                started.elapsed(),
                instance.store.data().memory.used_bytes(),
            );
            if outcome.is_ok() {
                pool.give_back(instance);
            }
            outcome
        });

        match until_response(&mut call, &mut head_rx).await {
            // Dropping `call` runs the rest of it (the body's tail) as a task.
            First::Response(Ok(answer)) => answer,
            // The handler dropped its outparam unset: its end says why.
            First::Response(Err(_)) => {
                Err(call.finish().await.err().unwrap_or(InvokeError::NoResponse))
            }
            First::Ended(outcome) => match head_rx.try_recv() {
                Ok(answer) => answer,
                Err(_) => Err(outcome.err().unwrap_or(InvokeError::NoResponse)),
            },
        }
    }

    /// Reports an invocation that got no instance, and passes its error on.
    pub(crate) fn no_start(&self, started: Instant, error: InvokeError) -> InvokeError {
        self.observer.finished(
            &self.function,
            self.version,
            Err(&error),
            started.elapsed(),
            0,
        );
        error
    }

    pub(crate) fn classify(&self, error: wasmtime::Error, state: &HostState) -> InvokeError {
        if let Some(limit) = state.budget.tripwire.tripped() {
            return InvokeError::ResourceLimitExceeded(limit);
        }
        self.classify_error(error, state.memory.hit)
    }

    /// What a failed call means, once no host limit explains it; `memory_hit`
    /// says whether the guest ran into `memory_mb`.
    pub(crate) fn classify_error(&self, error: wasmtime::Error, memory_hit: bool) -> InvokeError {
        if memory_hit {
            return InvokeError::MemoryLimitExceeded {
                limit_mb: self.sandbox.config.memory_mb,
            };
        }
        if error.chain().any(|e| {
            matches!(
                e.downcast_ref::<ResourceTableError>(),
                Some(ResourceTableError::Full)
            )
        }) {
            return InvokeError::ResourceLimitExceeded(HostLimit::ResourceEntries);
        }
        if error
            .downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
            .is_some()
        {
            return InvokeError::NoInstanceSlot {
                retry_after_secs: crate::gate::RETRY_AFTER_SECS,
            };
        }
        match error.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => InvokeError::Timeout {
                limit_ms: self.sandbox.config.timeout_ms,
            },
            Some(trap) => InvokeError::Trap(trap.to_string()),
            None => InvokeError::Trap(error.root_cause().to_string()),
        }
    }
}
