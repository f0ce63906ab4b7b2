//! The per-instance host state: the sandboxed WASI context, the wasi:http
//! context with the outbound policy, the memory cap, the host-resource
//! budget and the deadline.

use crate::budget::{
    BODY_CHUNK_BYTES, HostLimit, LogBudget, MAX_CONCURRENT_OUTBOUND, MAX_FIELD_MAP_BYTES,
    MAX_HELD_BYTES, MAX_RESOURCES, Tripwire, held_bytes,
};
use crate::guest_log::{GuestLog, LogSink, Stream};
use crate::outbound::{IoFuture, OutboundPolicy, SendFuture};
use flint_spec::FunctionConfig;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Store, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{
    Error as HttpError, RequestOptions, WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks,
    WasiHttpView,
};

/// Largest `wasi:random` request a guest may make in one call.
const MAX_RANDOM_BYTES: u64 = 1 << 20;
/// Bytes a guest may pass to the host in one call (hostcall fuel).
const HOSTCALL_FUEL: usize = 16 << 20;
/// Largest table a guest may grow to, in elements.
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

/// Enforces `memory_mb` over all of an instance's linear memories together
/// (a component may define several) and remembers whether the guest ran
/// into it, so a resulting trap is reported as `memory_limit_exceeded` and
/// not as a bug.
pub(crate) struct MemoryCap {
    limit_bytes: usize,
    used_bytes: usize,
    pub(crate) hit: bool,
}

impl MemoryCap {
    /// A cap of `memory_mb` MiB.
    pub(crate) fn new(memory_mb: u32) -> Self {
        Self {
            limit_bytes: memory_mb as usize * 1024 * 1024,
            used_bytes: 0,
            hit: false,
        }
    }

    /// The instance's linear memories together, in bytes.
    pub(crate) fn used_bytes(&self) -> usize {
        self.used_bytes
    }
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Instantiation reports each memory's initial size as growth from 0.
        let total = self.used_bytes - current.min(self.used_bytes) + desired;
        if total > self.limit_bytes {
            self.hit = true;
            return Ok(false);
        }
        self.used_bytes = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

/// The data of one instance's `Store`.
pub struct HostState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    hooks: Hooks,
    pub(crate) memory: MemoryCap,
    pub(crate) budget: Budget,
    pub(crate) deadline: Instant,
}

/// One instance's host-resource budget, reset at the start of each
/// invocation.
pub(crate) struct Budget {
    pub(crate) tripwire: Arc<Tripwire>,
    log: Arc<Mutex<LogBudget>>,
    outbound: Arc<OutboundCount>,
}

impl Budget {
    /// Starts a new invocation's count. A tripped instance is never reused,
    /// so the tripwire needs no reset.
    pub(crate) fn reset(&self) {
        self.log.lock().unwrap().reset();
        self.outbound.sent.store(0, Ordering::Relaxed);
    }
}

/// Outgoing requests of the current invocation: sent, and in flight.
#[derive(Default)]
struct OutboundCount {
    sent: AtomicU32,
    in_flight: AtomicU32,
}

/// Holds one in-flight slot until the request's connection ends.
struct InFlight(Arc<OutboundCount>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The `wasi:http` hooks of one instance: the outbound policy, behind the
/// outbound part of the budget, and the size of body writes.
struct Hooks {
    policy: OutboundPolicy,
    tripwire: Arc<Tripwire>,
    max_requests: u32,
    count: Arc<OutboundCount>,
}

impl Hooks {
    fn admit(&self) -> Result<InFlight, HostLimit> {
        if self.count.sent.fetch_add(1, Ordering::Relaxed) >= self.max_requests {
            return Err(HostLimit::OutboundRequests(self.max_requests));
        }
        if self.count.in_flight.fetch_add(1, Ordering::Relaxed) >= MAX_CONCURRENT_OUTBOUND {
            self.count.in_flight.fetch_sub(1, Ordering::Relaxed);
            return Err(HostLimit::ConcurrentOutbound);
        }
        Ok(InFlight(self.count.clone()))
    }
}

impl WasiHttpHooks for Hooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> SendFuture {
        let in_flight = match self.admit() {
            Ok(slot) => slot,
            Err(limit) => {
                // The guest is interrupted at its next epoch check.
                drop(self.tripwire.trip(limit));
                return Box::new(async { Err(HttpError::ConnectionLimitReached) });
            }
        };
        let send = Box::into_pin(self.policy.send_request(request, options, fut));
        Box::new(async move {
            let (response, io) = send.await?;
            let io = Box::into_pin(io);
            let io: IoFuture = Box::new(async move {
                let _in_flight = in_flight;
                io.await
            });
            Ok((response, io))
        })
    }

    fn p2_outgoing_body_chunk_size(&mut self) -> usize {
        BODY_CHUNK_BYTES
    }
}

impl HostState {
    /// Entries in the resource table: what the guest still holds, between
    /// calls too.
    pub(crate) fn resources_held(&mut self) -> usize {
        self.table.iter_mut().count()
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// What the epoch callback of a store decides for a guest running with
/// `deadline`: stop it when it crossed a host limit or holds more host
/// memory than its budget, interrupt it past the deadline, else let other
/// tasks run for a tick.
pub(crate) fn epoch_check(
    state: &mut HostState,
    deadline: Instant,
) -> wasmtime::Result<UpdateDeadline> {
    if let Some(limit) = state.budget.tripwire.tripped() {
        return Err(state.budget.tripwire.trip(limit));
    }
    if held_bytes(&mut state.table) > MAX_HELD_BYTES {
        return Err(state.budget.tripwire.trip(HostLimit::HeldBytes));
    }
    if Instant::now() >= deadline {
        Ok(UpdateDeadline::Interrupt)
    } else {
        Ok(UpdateDeadline::Yield(1))
    }
}

/// What an instance's store needs to know about its function.
pub(crate) struct Sandbox {
    pub(crate) config: Arc<FunctionConfig>,
    pub(crate) outbound: OutboundPolicy,
    pub(crate) log: Arc<GuestLog>,
    pub(crate) version: u32,
}

/// The output sinks of one instance, kept to flush partial lines.
pub(crate) struct Sinks {
    pub(crate) request_id: Arc<AtomicU64>,
    stdout: LogSink,
    stderr: LogSink,
}

impl Sinks {
    pub(crate) fn flush(&self) {
        self.stdout.flush_partial();
        self.stderr.flush_partial();
    }
}

/// Builds a sandboxed store: no preopened directories, no sockets, no host
/// environment (only the function's `env`), captured and budgeted
/// stdout/stderr, the memory cap, a bounded resource table, and an epoch
/// callback that interrupts the guest at its deadline or when it holds more
/// host memory than its budget.
pub(crate) fn new_store(engine: &wasmtime::Engine, sandbox: &Sandbox) -> (Store<HostState>, Sinks) {
    let request_id = Arc::new(AtomicU64::new(0));
    let tripwire = Arc::new(Tripwire::default());
    let log = Arc::new(Mutex::new(LogBudget::new(sandbox.config.max_log_bytes)));
    let outbound = Arc::new(OutboundCount::default());
    let sink = |stream| {
        LogSink::new(
            sandbox.log.clone(),
            sandbox.version,
            stream,
            request_id.clone(),
            log.clone(),
            tripwire.clone(),
        )
    };
    let stdout = sink(Stream::Stdout);
    let stderr = sink(Stream::Stderr);
    let mut wasi = WasiCtx::builder();
    wasi.stdout(stdout.clone())
        .stderr(stderr.clone())
        .max_random_size(MAX_RANDOM_BYTES)
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
    for (k, v) in &sandbox.config.env {
        wasi.env(k, v);
    }
    let mut http = WasiHttpCtx::new();
    http.set_field_size_limit(MAX_FIELD_MAP_BYTES);
    let mut table = ResourceTable::new();
    table.set_max_capacity(MAX_RESOURCES);
    let state = HostState {
        wasi: wasi.build(),
        http,
        table,
        hooks: Hooks {
            policy: sandbox.outbound.clone(),
            tripwire: tripwire.clone(),
            max_requests: sandbox.config.max_outbound_requests,
            count: outbound.clone(),
        },
        memory: MemoryCap::new(sandbox.config.memory_mb),
        budget: Budget {
            tripwire,
            log,
            outbound,
        },
        deadline: Instant::now(),
    };
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.memory);
    store.set_hostcall_fuel(HOSTCALL_FUEL);
    store.epoch_deadline_callback(|mut ctx| {
        let state = ctx.data_mut();
        let deadline = state.deadline;
        epoch_check(state, deadline)
    });
    (
        store,
        Sinks {
            request_id,
            stdout,
            stderr,
        },
    )
}
