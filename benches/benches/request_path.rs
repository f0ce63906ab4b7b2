#![expect(
    missing_docs,
    reason = "criterion_group! generates an undocumented function"
)]

//! One `GET /fn/NAME/` through the whole application in process
//! ([`flint_gateway::api::App::handle`]: routing, alias resolution, the
//! concurrency gate, the pool, metrics and response headers), without
//! sockets or HTTP parsing. Set beside `start_kinds` (the pool alone) it is
//! what Flint's layers add to an invocation; set beside the load harness it
//! is what the network and HTTP/1 cost.
//!
//! - `fresh`: `hello` with the default config (a fresh instance per request,
//!   `min_instances` warm);
//! - `reuse`: `hello` opted in to instance reuse.
//!
//! Run: `cargo bench -p flint-benches --bench request_path`.
//!
//! Timings on a shared host move by a quarter between runs of one binary, so
//! the bench also counts: `request_path count SUBJECT N` sends N requests
//! untimed and exits, to run under `valgrind --tool=callgrind`. Two counts
//! give the instructions per request without the set-up:
//! `(total(N2) - total(N1)) / (N2 - N1)` (`scripts/instructions` does this).
//!
//! The server runs a connection thread per core, all on one application, so
//! what the threads share costs each of them cache-line transfers that a
//! single-threaded timing never sees. `request_path cpu SUBJECT N THREADS`
//! sends N requests from each of THREADS threads (a current-thread runtime
//! each, as the server's connection threads) after a warm-up, and prints
//! the CPU time per request of each thread, read from the kernel's
//! per-thread scheduler statistics: with one thread and with two, the
//! difference is what the sharing costs.

/// The allocator `flint` runs with, so timings match the server.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{Criterion, criterion_group};
use flint_gateway::GatewayConfig;
use flint_gateway::api::App;
use flint_gateway::core::Control;
use flint_test_artifacts as artifacts;
use http_body_util::{BodyExt, Full};
use std::sync::Arc;
use std::time::{Duration, Instant};

type Body = Full<bytes::Bytes>;

fn request(method: http::Method, uri: &str, body: impl Into<bytes::Bytes>) -> http::Request<Body> {
    http::Request::builder()
        .method(method)
        .uri(uri)
        .body(Full::new(body.into()))
        .unwrap()
}

/// Sends one request to the application and returns its status and body.
async fn call(app: &App, request: http::Request<Body>) -> (u16, bytes::Bytes) {
    let response = app.handle(request).await;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, body)
}

async fn deploy(app: &App, name: &str, config: Option<&str>) {
    let wasm = artifacts::bytes(artifacts::HELLO);
    let uri = format!("/v1/functions/{name}");
    let (status, body) = call(app, request(http::Method::PUT, &uri, wasm)).await;
    assert!(status < 300, "deploy {name}: {status} {body:?}");
    if let Some(config) = config {
        let uri = format!("/v1/functions/{name}/config");
        let patch = request(http::Method::PATCH, &uri, config.to_string());
        let (status, body) = call(app, patch).await;
        assert_eq!(status, 200, "config {name}: {body:?}");
    }
}

/// A single-threaded runtime, as a connection thread of the server has, and
/// an application with `max_instances` pool slots and `hello` deployed as
/// `fresh` (the defaults) and as `reuse` (opted in to instance reuse).
fn application(max_instances: u32) -> (tokio::runtime::Runtime, Arc<App>, tempfile::TempDir) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let data = tempfile::tempdir().unwrap();
    let config = GatewayConfig {
        data_dir: data.path().to_path_buf(),
        max_instances,
        ..GatewayConfig::default()
    };
    let app: Arc<App> = rt.block_on(async {
        let app = App::new(Control::open(config).await.unwrap());
        deploy(&app, "fresh", None).await;
        deploy(
            &app,
            "reuse",
            Some(r#"{"max_requests_per_instance": 1000000}"#),
        )
        .await;
        app
    });
    (rt, app, data)
}

/// Sends `count` requests to `/fn/NAME/` from a runtime task, as a
/// connection task does, checking each answer.
async fn send(app: Arc<App>, name: &str, count: u64) {
    let uri = format!("/fn/{name}/");
    for _ in 0..count {
        let get = request(http::Method::GET, &uri, bytes::Bytes::new());
        let (status, body) = call(&app, get).await;
        assert_eq!(status, 200);
        assert_eq!(&body[..], b"Hello from Flint!\n");
    }
}

fn request_path(c: &mut Criterion) {
    let (rt, app, _data) = application(GatewayConfig::default().max_instances);
    let _guard = rt.enter();
    let mut group = c.benchmark_group("request_path");
    for name in ["fresh", "reuse"] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let app = app.clone();
                rt.block_on(tokio::spawn(async move {
                    let start = Instant::now();
                    send(app, name, iters).await;
                    start.elapsed()
                }))
                .unwrap()
            })
        });
    }
    group.finish();
}

/// `count SUBJECT N`: N untimed requests, for an instruction count. The
/// pool has a few slots only: valgrind cannot map the address space of the
/// default thousand.
fn count(subject: &str, requests: u64) {
    assert!(
        ["fresh", "reuse"].contains(&subject),
        "count takes fresh or reuse, not {subject:?}"
    );
    let (rt, app, _data) = application(4);
    let _guard = rt.enter();
    let subject = subject.to_string();
    rt.block_on(tokio::spawn(
        async move { send(app, &subject, requests).await },
    ))
    .unwrap();
}

/// CPU time this thread has run, from `/proc/thread-self/schedstat`.
fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat")
        .expect("cpu needs Linux's /proc/thread-self/schedstat");
    let nanos = stat
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .expect("schedstat starts with the nanoseconds on CPU");
    Duration::from_nanos(nanos)
}

/// Requests each thread sends before its measured ones.
const CPU_WARM_UP: u64 = 2_000;

/// `cpu SUBJECT N THREADS`: N requests from each of THREADS threads at once
/// on one application; prints each thread's CPU time per request.
fn cpu(subject: &str, requests: u64, threads: usize) {
    assert!(
        ["fresh", "reuse"].contains(&subject),
        "cpu takes fresh or reuse, not {subject:?}"
    );
    let (rt, app, _data) = application(GatewayConfig::default().max_instances);
    let start = Arc::new(std::sync::Barrier::new(threads));
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (app, start, subject) = (app.clone(), start.clone(), subject.to_string());
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(send(app.clone(), &subject, CPU_WARM_UP));
                start.wait();
                let (cpu, wall) = (thread_cpu(), Instant::now());
                rt.block_on(send(app, &subject, requests));
                (thread_cpu() - cpu, wall.elapsed())
            })
        })
        .collect();
    for (i, worker) in workers.into_iter().enumerate() {
        let (cpu, wall) = worker.join().unwrap();
        let per_request = cpu.as_secs_f64() * 1e6 / requests as f64;
        let rate = requests as f64 / wall.as_secs_f64();
        println!(
            "{subject} thread {i}/{threads}: {per_request:.2} µs CPU per request, {rate:.0} req/s"
        );
    }
    drop(rt);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = request_path
}

// criterion_main!, plus the font (see `start_kinds`).
fn main() {
    flint_benches::install_server_tracing();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [mode, subject, requests] = &args[..]
        && mode == "count"
    {
        let requests = requests.parse().expect("count SUBJECT N: N is a number");
        return count(subject, requests);
    }
    if let [mode, subject, requests, threads] = &args[..]
        && mode == "cpu"
    {
        let requests = requests
            .parse()
            .expect("cpu SUBJECT N THREADS: N is a number");
        let threads = threads
            .parse()
            .expect("cpu SUBJECT N THREADS: THREADS is a number");
        return cpu(subject, requests, threads);
    }
    flint_benches::register_fonts();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
