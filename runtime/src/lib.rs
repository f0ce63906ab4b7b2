//! Flint's runtime: the Wasm engine and the instance pools.
//!
//! A function is a WebAssembly component exporting
//! `wasi:http/incoming-handler`, or a WASI 0.1 command module run as CGI
//! (WAGI, see [`Program`]). The runtime compiles it once (at upload),
//! caches the compiled artifact on disk, pre-links it per version, and runs
//! each request in a sandboxed instance under the function's limits:
//!
//! - [`Runtime`] owns the one [`wasmtime::Engine`] (component model, epoch
//!   interruption, pooling allocator, copy-on-write images), the linkers
//!   (WASI 0.2 and `wasi:http` for components, WASI 0.1 for modules) and
//!   the [`ArtifactCache`];
//!   [`Runtime::compile_limited`] compiles uploads under admission and a
//!   deadline, in a worker process ([`run_compile_worker`]) when one is
//!   configured.
//! - [`InstancePool`] holds one version's pre-linked program and its warm
//!   instances, and runs [`InstancePool::invoke`].
//! - [`ConcurrencyGate`] bounds a function's in-flight invocations and its
//!   wait queue.
//! - Each invocation runs under `memory_mb` (all its linear memories
//!   together) and a budget of host resources ([`HostLimit`]).
//! - [`FunctionConfig`] is the per-function configuration with every limit
//!   and its default. It, [`ConfigPatch`], [`ConfigError`], the config
//!   constants, [`Digest`] and [`HostPattern`] are defined in `flint-spec`
//!   (plain data, free of wasmtime) and re-exported here.
//! - Guest-controlled bodies (responses, outbound requests) lose their
//!   empty data frames before hyper sees them.
//!
//! A function's outbound HTTP requests go only to the hosts it lists, and
//! connect to exactly the addresses that were checked against the list
//! (one lookup; loopback, private and other non-public addresses refused
//! unless an entry names the address literally).
//!
//! This crate knows nothing of HTTP routing, storage or queues.
//!
//! ```no_run
//! # async fn demo(bytes: Vec<u8>, observer: std::sync::Arc<dyn flint_runtime::InvocationObserver>) -> anyhow::Result<()> {
//! use flint_runtime::*;
//! use std::sync::Arc;
//! let runtime = Runtime::new(&RuntimeConfig::new("/tmp/flint-cache"))?;
//! let compiled = runtime.compile(&bytes)?;
//! let config = Arc::new(FunctionConfig::default());
//! let log = Arc::new(GuestLog::new("hello", DEFAULT_LOG_LINES));
//! let pool = InstancePool::new(&runtime, "hello", 1, &compiled.program, config.clone(), log, observer)?;
//! let gate = ConcurrencyGate::new(config.max_concurrency, config.max_queue,
//!     std::time::Duration::from_millis(config.queue_timeout_ms));
//! # let request: http::Request<wasmtime_wasi_http::p2::body::HyperIncomingBody> = unimplemented!();
//! let response = pool.invoke(gate.acquire().await?, next_request_id(), request).await?;
//! # Ok(()) }
//! ```

mod artifact;
mod body;
mod budget;
mod compile;
mod engine;
mod error;
pub mod fsutil;
mod gate;
mod guest_log;
mod host;
mod http_p3;
mod inline_call;
mod outbound;
mod pool;
mod program;
mod response_body;
mod wagi;
mod worker;

pub use artifact::{ArtifactCache, CompileError, detect_kind};
pub use budget::{
    BODY_CHUNK_BYTES, HostLimit, MAX_CONCURRENT_OUTBOUND, MAX_FIELD_MAP_BYTES, MAX_HELD_BYTES,
    MAX_LOG_RATE, MAX_RESOURCES,
};
pub use engine::{
    Compiled, DEFAULT_COMPILE_QUEUE_TIMEOUT, DEFAULT_COMPILE_TIMEOUT, DEFAULT_MAX_INSTANCES,
    EPOCH_TICK, EngineKind, Runtime, RuntimeConfig, default_max_compiles, wasmtime_config,
};
pub use error::InvokeError;
pub use flint_spec::config::*;
pub use flint_spec::{Digest, HostPattern};
pub use gate::{ConcurrencyGate, GatePermit, RETRY_AFTER_SECS};
pub use guest_log::{
    DEFAULT_LOG_LINES, GuestLog, LogLine, MAX_LINE_BYTES, Stream, format_request_id,
};
pub use host::HostState;
pub use pool::{InstancePool, InvocationObserver, InvokeResponse, StartKind, next_request_id};
pub use program::Program;
pub use wasmtime_wasi_http::Error as WasiHttpError;
pub use wasmtime_wasi_http::p2::body::{HyperIncomingBody, HyperOutgoingBody};
pub use worker::{COMPILE_WORKER_COMMAND, run_compile_worker};
