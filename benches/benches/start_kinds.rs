#![expect(
    missing_docs,
    reason = "criterion_group! generates an undocumented function"
)]

//! One invocation per start kind (DESIGN.md, "Start kinds"), for a small
//! component (`hello`, Rust, ~100 KB), the same size of WASI 0.3 component
//! (`http-p3`, Rust with `wasip3`, ~150 KB, run on the engine with
//! concurrency support) and a large one (`js-hello`, JavaScript built with
//! componentize-js, ~13 MB with SpiderMonkey inside):
//!
//! - `compile`: validate and compile the component from bytes (an upload);
//! - `disk`: map the cached artifact, pre-link, instantiate, handle (after a
//!   restart or an idle unload);
//! - `cold`: instantiate from the pre-linked component and handle;
//! - `warm`: take a pre-instantiated instance from the pool and handle;
//! - `reuse`: handle on an instance reused from an earlier request.
//!
//! `cold`, `warm` and `reuse` run under each allocator setting
//! (`pooling={true,false},cow={true,false}`), `compile` and `disk` under the
//! default (pooling and copy-on-write on). Preparation (compiling, pre-linking,
//! refilling the warm pool) stays outside the timed part, and the timed loops
//! run inside a task of a single-threaded tokio runtime, as the server's
//! connection tasks do on their connection threads (see [`in_task`]).
//!
//! WAGI modules (`wagi-rust`, `wagi-c`) have a `cold` start only (a fresh
//! instance per request, its environment being the request) and `compile`.
//!
//! Run: `cargo bench -p flint-benches --bench start_kinds` (a filter such as
//! `-- hello/` or `-- js-hello/cold` picks a subset).

/// The allocator `flint` runs with, so timings match the server.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{BenchmarkId, Criterion, SamplingMode, criterion_group};
use flint_runtime::{
    ConcurrencyGate, FunctionConfig, GuestLog, HyperIncomingBody, InstancePool, InvocationObserver,
    InvokeError, Runtime, RuntimeConfig, StartKind, next_request_id,
};
use flint_test_artifacts as artifacts;
use http_body_util::{BodyExt, Empty};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A component under test: its benchmark group name, path and the body it
/// answers `GET /` with (checked on every invocation, so a broken instance
/// cannot pass as a fast one).
struct Subject {
    name: &'static str,
    path: &'static str,
    body: &'static [u8],
    /// Compiling takes seconds: time fewer, equal samples.
    slow_compile: bool,
}

const SUBJECTS: &[Subject] = &[
    Subject {
        name: "hello",
        path: artifacts::HELLO,
        body: b"Hello from Flint!\n",
        slow_compile: false,
    },
    Subject {
        name: "http-p3",
        path: artifacts::HTTP_P3,
        body: b"hello from a WASI 0.3 component\n",
        slow_compile: false,
    },
    Subject {
        name: "js-hello",
        path: artifacts::JS_HELLO,
        body: b"Hello from JavaScript!\n",
        slow_compile: true,
    },
];

/// The WAGI modules under test, run with the server's allocator settings.
const WAGI_SUBJECTS: &[Subject] = &[
    Subject {
        name: "wagi-rust",
        path: artifacts::WAGI_RUST,
        body: b"Hello from WAGI, world!\n",
        slow_compile: false,
    },
    Subject {
        name: "wagi-c",
        path: artifacts::WAGI_C,
        body: b"Hello from C, world! You sent 0 bytes\n",
        slow_compile: false,
    },
];

/// The allocator settings compared: (pooling, copy-on-write images).
const VARIANTS: &[(bool, bool)] = &[(true, true), (true, false), (false, true), (false, false)];

struct NoObserver;

impl InvocationObserver for NoObserver {
    fn started(&self, _: &str, _: u32, _: StartKind) {}
    fn finished(&self, _: &str, _: u32, _: Result<(), &InvokeError>, _: Duration, _: usize) {}
}

fn request() -> http::Request<HyperIncomingBody> {
    let body = Empty::<bytes::Bytes>::new()
        .map_err(|never| match never {})
        .boxed_unsync();
    http::Request::builder()
        .uri("http://localhost/")
        .body(body)
        .unwrap()
}

async fn invoke(pool: &Arc<InstancePool>, gate: &ConcurrencyGate, expected: &[u8]) {
    let response = pool
        .invoke(gate.acquire().await.unwrap(), next_request_id(), request())
        .await
        .unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], expected);
}

fn pool(
    runtime: &Runtime,
    name: &str,
    component: &flint_runtime::Program,
    config: FunctionConfig,
) -> Arc<InstancePool> {
    let log = Arc::new(GuestLog::new(name, 16));
    InstancePool::new(
        runtime,
        name,
        1,
        component,
        Arc::new(config),
        log,
        Arc::new(NoObserver),
    )
    .unwrap()
}

/// Runs `iters` iterations inside one task on the runtime and adds up the
/// durations they report. Inside a task, as in the server (where a
/// connection task invokes and the guest call runs on it).
fn in_task<F, Fut>(rt: &tokio::runtime::Runtime, iters: u64, iteration: F) -> Duration
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = Duration> + Send,
{
    rt.block_on(tokio::spawn(async move {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            total += iteration().await;
        }
        total
    }))
    .unwrap()
}

/// `iters` invocations on `pool`, timed as a whole inside a runtime task.
fn timed_invokes(
    rt: &tokio::runtime::Runtime,
    iters: u64,
    pool: &Arc<InstancePool>,
    gate: &Arc<ConcurrencyGate>,
    expected: &'static [u8],
) -> Duration {
    let (pool, gate) = (pool.clone(), gate.clone());
    rt.block_on(tokio::spawn(async move {
        let start = Instant::now();
        for _ in 0..iters {
            invoke(&pool, &gate, expected).await;
        }
        start.elapsed()
    }))
    .unwrap()
}

/// The single-threaded runtime, artifact cache and concurrency gate every
/// group runs with.
fn bench_env() -> (
    tokio::runtime::Runtime,
    tempfile::TempDir,
    Arc<ConcurrencyGate>,
) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cache = tempfile::tempdir().unwrap();
    (
        rt,
        cache,
        Arc::new(ConcurrencyGate::new(64, 0, Duration::ZERO)),
    )
}

fn start_kinds(c: &mut Criterion) {
    let (rt, cache, gate) = bench_env();
    let _guard = rt.enter();

    for subject in SUBJECTS {
        let bytes = artifacts::bytes(subject.path);
        let expected = subject.body;
        let name = subject.name;
        let mut group = c.benchmark_group(name);
        let mut default_runtime = None;

        for &(pooling, cow) in VARIANTS {
            let mut config =
                RuntimeConfig::new(cache.path().join(format!("{name}-{pooling}-{cow}")));
            config.pooling = pooling;
            config.memory_init_cow = cow;
            let runtime = Arc::new(Runtime::new(&config).unwrap());
            let variant = format!("pooling={pooling},cow={cow}");
            let compiled = runtime.compile(&bytes).unwrap();

            if pooling && cow {
                group.bench_function(BenchmarkId::new("disk", &variant), |b| {
                    b.iter_custom(|iters| {
                        let (runtime, gate, digest) =
                            (runtime.clone(), gate.clone(), compiled.digest.clone());
                        in_task(&rt, iters, move || {
                            let (runtime, gate, digest) =
                                (runtime.clone(), gate.clone(), digest.clone());
                            async move {
                                let start = Instant::now();
                                let component = runtime.load_cached(&digest).unwrap();
                                let pool =
                                    pool(&runtime, name, &component, FunctionConfig::default());
                                invoke(&pool, &gate, expected).await;
                                start.elapsed()
                            }
                        })
                    })
                });
            }

            let cold = pool(&runtime, name, &compiled.program, FunctionConfig::default());
            group.bench_function(BenchmarkId::new("cold", &variant), |b| {
                b.iter_custom(|iters| timed_invokes(&rt, iters, &cold, &gate, expected))
            });

            let warm = pool(
                &runtime,
                name,
                &compiled.program,
                FunctionConfig {
                    min_instances: 1,
                    ..Default::default()
                },
            );
            group.bench_function(BenchmarkId::new("warm", &variant), |b| {
                b.iter_custom(|iters| {
                    let (warm, gate) = (warm.clone(), gate.clone());
                    in_task(&rt, iters, move || {
                        let (warm, gate) = (warm.clone(), gate.clone());
                        async move {
                            // Refilling the pool is not part of a warm start.
                            while warm.warm_instances() == 0 {
                                warm.fill();
                                tokio::task::yield_now().await;
                            }
                            let start = Instant::now();
                            invoke(&warm, &gate, expected).await;
                            start.elapsed()
                        }
                    })
                })
            });

            let reuse = pool(
                &runtime,
                name,
                &compiled.program,
                FunctionConfig {
                    max_requests_per_instance: 1_000_000,
                    ..Default::default()
                },
            );
            group.bench_function(BenchmarkId::new("reuse", &variant), |b| {
                b.iter_custom(|iters| timed_invokes(&rt, iters, &reuse, &gate, expected))
            });
            if pooling && cow {
                default_runtime = Some(runtime);
            }
        }

        // Last in its group, because the settings below stay with the group.
        if subject.slow_compile {
            // Ten equal samples of one compile each: criterion's default of
            // 100 growing samples would take most of an hour.
            group
                .sampling_mode(SamplingMode::Flat)
                .sample_size(10)
                .measurement_time(Duration::from_secs(60));
        }
        let runtime: Arc<Runtime> = default_runtime.expect("the default variant ran");
        group.bench_function("compile", |b| b.iter(|| runtime.compile(&bytes).unwrap()));
        group.finish();
    }
}

fn wagi_starts(c: &mut Criterion) {
    let (rt, cache, gate) = bench_env();
    let _guard = rt.enter();
    for subject in WAGI_SUBJECTS {
        let bytes = artifacts::bytes(subject.path);
        let mut group = c.benchmark_group(subject.name);
        let runtime = Runtime::new(&RuntimeConfig::new(cache.path().join(subject.name))).unwrap();
        let compiled = runtime.compile(&bytes).unwrap();
        let cold = pool(
            &runtime,
            subject.name,
            &compiled.program,
            FunctionConfig::default(),
        );
        group.bench_function("cold", |b| {
            b.iter_custom(|iters| timed_invokes(&rt, iters, &cold, &gate, subject.body))
        });
        group.bench_function("compile", |b| b.iter(|| runtime.compile(&bytes).unwrap()));
        group.finish();
    }
}

criterion_group!(benches, start_kinds, wagi_starts);

// criterion_main!, plus the font: the workspace builds plotters with its
// `ab_glyph` feature (for the harness's chart), which makes criterion's plots
// look their font up in plotters' registry.
fn main() {
    flint_benches::install_server_tracing();
    flint_benches::register_fonts();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
