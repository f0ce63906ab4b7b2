#![expect(
    missing_docs,
    reason = "criterion_group! generates an undocumented function"
)]

//! One invocation of `hello` per start kind (DESIGN.md, "Start kinds"):
//!
//! - `compile`: validate and compile the component from bytes (an upload);
//! - `disk`: map the cached artifact, pre-link, instantiate, handle (after a
//!   restart or an idle unload);
//! - `cold`: instantiate from the pre-linked component and handle;
//! - `warm`: take a pre-instantiated instance from the pool and handle;
//! - `reuse`: handle on an instance reused from an earlier request.
//!
//! Preparation (and refilling the warm pool) stays outside the timed part.
//! Run: `cargo bench -p flint-benches --bench start_kinds`.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use flint_runtime::{
    ConcurrencyGate, FunctionConfig, GuestLog, HyperIncomingBody, InstancePool, InvocationObserver,
    InvokeError, Runtime, RuntimeConfig, StartKind, next_request_id,
};
use flint_test_artifacts as artifacts;
use http_body_util::{BodyExt, Empty};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct NoObserver;

impl InvocationObserver for NoObserver {
    fn started(&self, _: &str, _: u32, _: StartKind) {}
    fn finished(&self, _: &str, _: u32, _: Result<(), &InvokeError>, _: Duration) {}
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

async fn invoke(pool: &Arc<InstancePool>, gate: &ConcurrencyGate) {
    let response = pool
        .invoke(gate.acquire().await.unwrap(), next_request_id(), request())
        .await
        .unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"Hello from Flint!\n");
}

fn pool(
    runtime: &Runtime,
    component: &flint_runtime::Component,
    config: FunctionConfig,
) -> Arc<InstancePool> {
    let log = Arc::new(GuestLog::new("hello", 16));
    InstancePool::new(
        runtime,
        "hello",
        1,
        component,
        Arc::new(config),
        log,
        Arc::new(NoObserver),
    )
    .unwrap()
}

fn start_kinds(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let bytes = artifacts::bytes(artifacts::HELLO);
    let cache = tempfile::tempdir().unwrap();
    let gate = ConcurrencyGate::new(64, 0, Duration::ZERO);
    let mut group = c.benchmark_group("hello");

    for (pooling, cow) in [(true, true), (true, false), (false, true), (false, false)] {
        let mut config = RuntimeConfig::new(cache.path().join(format!("{pooling}-{cow}")));
        config.pooling = pooling;
        config.memory_init_cow = cow;
        let runtime = Runtime::new(&config).unwrap();
        let variant = format!("pooling={pooling},cow={cow}");
        let compiled = runtime.compile(&bytes).unwrap();

        if pooling && cow {
            group.bench_function("compile", |b| b.iter(|| runtime.compile(&bytes).unwrap()));
            group.bench_function(BenchmarkId::new("disk", &variant), |b| {
                b.iter(|| {
                    let component = runtime.load_cached(&compiled.digest).unwrap();
                    let pool = pool(&runtime, &component, FunctionConfig::default());
                    rt.block_on(invoke(&pool, &gate));
                })
            });
        }

        let cold = pool(&runtime, &compiled.component, FunctionConfig::default());
        group.bench_function(BenchmarkId::new("cold", &variant), |b| {
            b.iter(|| rt.block_on(invoke(&cold, &gate)))
        });

        let warm = pool(
            &runtime,
            &compiled.component,
            FunctionConfig {
                min_instances: 1,
                ..Default::default()
            },
        );
        group.bench_function(BenchmarkId::new("warm", &variant), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        while warm.warm_instances() == 0 {
                            warm.fill();
                            tokio::task::yield_now().await;
                        }
                        let start = Instant::now();
                        invoke(&warm, &gate).await;
                        total += start.elapsed();
                    }
                    total
                })
            })
        });

        let reuse = pool(
            &runtime,
            &compiled.component,
            FunctionConfig {
                max_requests_per_instance: 1_000_000,
                ..Default::default()
            },
        );
        group.bench_function(BenchmarkId::new("reuse", &variant), |b| {
            b.iter(|| rt.block_on(invoke(&reuse, &gate)))
        });
    }
    group.finish();
}

criterion_group!(benches, start_kinds);
criterion_main!(benches);
