//! The per-instance host state: the sandboxed WASI context, the wasi:http
//! context with the outbound policy, the memory cap and the deadline.

use crate::guest_log::{GuestLog, LogSink, Stream};
use crate::outbound::OutboundPolicy;
use flint_spec::FunctionConfig;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;
use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Store, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// Largest `wasi:random` request a guest may make in one call.
const MAX_RANDOM_BYTES: u64 = 1 << 20;
/// Bytes a guest may pass to the host in one call (hostcall fuel).
const HOSTCALL_FUEL: usize = 16 << 20;
/// Largest table a guest may grow to, in elements.
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

/// Enforces `memory_mb` and remembers whether the guest ran into it, so a
/// resulting trap is reported as `memory_limit_exceeded` and not as a bug.
pub(crate) struct MemoryCap {
    limit_bytes: usize,
    pub(crate) hit: bool,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit_bytes {
            self.hit = true;
            return Ok(false);
        }
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
    outbound: OutboundPolicy,
    pub(crate) memory: MemoryCap,
    pub(crate) deadline: Instant,
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
            hooks: &mut self.outbound,
        }
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
/// environment (only the function's `env`), captured stdout/stderr, the
/// memory cap and an epoch callback that interrupts the guest at its deadline.
pub(crate) fn new_store(engine: &wasmtime::Engine, sandbox: &Sandbox) -> (Store<HostState>, Sinks) {
    let request_id = Arc::new(AtomicU64::new(0));
    let stdout = LogSink::new(
        sandbox.log.clone(),
        sandbox.version,
        Stream::Stdout,
        request_id.clone(),
    );
    let stderr = LogSink::new(
        sandbox.log.clone(),
        sandbox.version,
        Stream::Stderr,
        request_id.clone(),
    );
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
    let state = HostState {
        wasi: wasi.build(),
        http: WasiHttpCtx::new(),
        table: ResourceTable::new(),
        outbound: sandbox.outbound.clone(),
        memory: MemoryCap {
            limit_bytes: sandbox.config.memory_mb as usize * 1024 * 1024,
            hit: false,
        },
        deadline: Instant::now(),
    };
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.memory);
    store.set_hostcall_fuel(HOSTCALL_FUEL);
    store.epoch_deadline_callback(|ctx| {
        if Instant::now() >= ctx.data().deadline {
            Ok(UpdateDeadline::Interrupt)
        } else {
            Ok(UpdateDeadline::Yield(1))
        }
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
