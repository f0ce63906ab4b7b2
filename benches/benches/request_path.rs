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
    flint_benches::register_fonts();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
