//! WAGI: WASI 0.1 command modules run as CGI scripts.
//!
//! A core module that exports `_start` is a WAGI function. Each request
//! runs it once, in an instance of its own made from the pre-linked module
//! (as a CGI server starts a process per request): the request's method,
//! path, query and headers are its environment ([`cgi::environment`]), the
//! body its stdin, and what it writes to stdout is parsed as a CGI response
//! ([`cgi::parse_response`]). stderr goes to the function's log.
//!
//! The limits of a `wasi:http` function hold: `memory_mb` over its linear
//! memory, `timeout_ms` over the whole call (body read included), stdout
//! bounded by `max_response_bytes` (plus the headers), log bytes and rate.
//! An instance is never reused and never pre-made: its environment is its
//! request.

mod cgi;
mod stdout;

use crate::InvokeError;
use crate::budget::{HostLimit, LogBudget, Tripwire};
use crate::gate::GatePermit;
use crate::guest_log::{LogSink, Stream};
use crate::host::MemoryCap;
use crate::pool::{InstancePool, InvokeResponse, StartKind};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use wasmtime::{InstancePre, Linker, Store, UpdateDeadline};
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi_http::p2::body::HyperIncomingBody;

pub(crate) use cgi::MAX_HEADER_BYTES;

/// The module WASI 0.1 imports come from; the only one Flint provides to
/// core modules.
pub(crate) const WASI_P1_MODULE: &str = "wasi_snapshot_preview1";
/// The export a WASI command runs.
pub(crate) const START: &str = "_start";

/// Bytes a module may pass to the host in one call (hostcall fuel).
const HOSTCALL_FUEL: usize = 16 << 20;

/// The data of one WAGI instance's `Store`.
pub(crate) struct WagiState {
    p1: WasiP1Ctx,
    memory: MemoryCap,
    tripwire: Arc<Tripwire>,
    deadline: Instant,
}

/// The linker with WASI 0.1 for command modules.
pub(crate) fn linker(engine: &wasmtime::Engine) -> anyhow::Result<Linker<WagiState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p1::add_to_linker_async(&mut linker, |s: &mut WagiState| &mut s.p1)?;
    Ok(linker)
}

/// What one request gives its instance.
struct Invocation {
    env: Vec<(String, String)>,
    stdin: Bytes,
    request_id: u64,
}

impl InstancePool {
    /// Runs one request on a fresh instance of a WAGI module.
    pub(crate) async fn invoke_wagi(
        self: &Arc<Self>,
        pre: &InstancePre<WagiState>,
        permit: GatePermit,
        request_id: u64,
        request: http::Request<HyperIncomingBody>,
    ) -> Result<InvokeResponse, InvokeError> {
        let _permit = permit;
        let started = Instant::now();
        *self.last_used.lock().unwrap() = started;
        let timeout = self.timeout();
        let mut memory = 0;
        let answer = match tokio::time::timeout(
            timeout,
            self.run_wagi(pre, request_id, request, &mut memory),
        )
        .await
        {
            Ok(answer) => answer,
            Err(_elapsed) => Err(InvokeError::Timeout {
                limit_ms: self.sandbox.config.timeout_ms,
            }),
        };
        self.observer.finished(
            &self.function,
            self.version,
            answer.as_ref().map(|_| ()),
            started.elapsed(),
            memory,
        );
        answer.map(|response| {
            response.map(|body| {
                Full::new(body)
                    .map_err(|never| match never {})
                    .boxed_unsync()
            })
        })
    }

    async fn run_wagi(
        &self,
        pre: &InstancePre<WagiState>,
        request_id: u64,
        request: http::Request<HyperIncomingBody>,
        memory: &mut usize,
    ) -> Result<http::Response<Bytes>, InvokeError> {
        let (parts, body) = request.into_parts();
        let stdin = body
            .collect()
            .await
            .map_err(|e| InvokeError::RequestBody(e.to_string()))?
            .to_bytes();
        let env = cgi::environment(&parts, stdin.len(), &self.sandbox.config.env);
        let max_body = self.sandbox.config.max_response_bytes;
        let stdout = stdout::CgiStdout::new(max_body as usize + MAX_HEADER_BYTES);
        let (mut store, stderr) = self.wagi_store(
            Invocation {
                env,
                stdin,
                request_id,
            },
            stdout.clone(),
        );
        self.observer
            .started(&self.function, self.version, StartKind::Cold);
        let ran = async {
            let instance = pre.instantiate_async(&mut store).await?;
            let start = instance.get_typed_func::<(), ()>(&mut store, START)?;
            start.call_async(&mut store, ()).await
        }
        .await;
        stderr.flush_partial();
        *memory = store.data().memory.used_bytes();
        if let Err(e) = ran {
            match e.downcast_ref::<wasmtime_wasi::I32Exit>() {
                Some(wasmtime_wasi::I32Exit(0)) => {}
                Some(wasmtime_wasi::I32Exit(status)) => {
                    return Err(InvokeError::Exited(*status));
                }
                None => return Err(self.classify_wagi(e, &store)),
            }
        }
        if stdout.overflowed() {
            return Err(InvokeError::ResourceLimitExceeded(
                HostLimit::ResponseBytes(max_body),
            ));
        }
        let response = cgi::parse_response(stdout.contents())
            .map_err(|e| InvokeError::BadCgiResponse(e.to_string()))?;
        if response.body().len() as u64 > max_body {
            return Err(InvokeError::ResourceLimitExceeded(
                HostLimit::ResponseBytes(max_body),
            ));
        }
        Ok(response)
    }

    /// A store for one WAGI run: the request as environment and stdin,
    /// stdout captured, stderr to the log, and the limits of a `wasi:http`
    /// instance. Returns the stderr sink too, to flush its last line.
    fn wagi_store(
        &self,
        run: Invocation,
        stdout: stdout::CgiStdout,
    ) -> (Store<WagiState>, LogSink) {
        let sandbox = &self.sandbox;
        let tripwire = Arc::new(Tripwire::default());
        let stderr = LogSink::new(
            sandbox.log.clone(),
            sandbox.version,
            Stream::Stderr,
            Arc::new(AtomicU64::new(run.request_id)),
            Arc::new(Mutex::new(LogBudget::new(sandbox.config.max_log_bytes))),
            tripwire.clone(),
        );
        let mut wasi = WasiCtx::builder();
        wasi.stdin(MemoryInputPipe::new(run.stdin))
            .stdout(stdout)
            .stderr(stderr.clone())
            .arg(&*self.function)
            .envs(&run.env)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        let state = WagiState {
            p1: wasi.build_p1(),
            memory: MemoryCap::new(sandbox.config.memory_mb),
            tripwire,
            deadline: Instant::now() + self.timeout(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.memory);
        store.set_hostcall_fuel(HOSTCALL_FUEL);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|ctx| {
            let state = ctx.data();
            if let Some(limit) = state.tripwire.tripped() {
                return Err(state.tripwire.trip(limit));
            }
            if Instant::now() >= state.deadline {
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        (store, stderr)
    }

    fn classify_wagi(&self, error: wasmtime::Error, store: &Store<WagiState>) -> InvokeError {
        let state = store.data();
        if let Some(limit) = state.tripwire.tripped() {
            return InvokeError::ResourceLimitExceeded(limit);
        }
        self.classify_error(error, state.memory.hit)
    }
}
