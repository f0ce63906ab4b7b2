//! The benchmarked components answer correctly through `flint-runtime`, on a
//! fresh instance and on a reused one, so that a benchmark never times a
//! broken invocation.

use flint_runtime::{
    Compiled, ConcurrencyGate, FunctionConfig, GuestLog, HyperIncomingBody, InstancePool,
    InvocationObserver, InvokeError, Runtime, RuntimeConfig, StartKind, next_request_id,
};
use flint_test_artifacts as artifacts;
use http_body_util::{BodyExt, Empty};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

struct NoObserver;

impl InvocationObserver for NoObserver {
    fn started(&self, _: &str, _: u32, _: StartKind) {}
    fn finished(&self, _: &str, _: u32, _: Result<(), &InvokeError>, _: Duration, _: usize) {}
}

async fn get(pool: &Arc<InstancePool>, gate: &ConcurrencyGate, path: &str) -> (String, String) {
    let body: HyperIncomingBody = Empty::<bytes::Bytes>::new()
        .map_err(|never| match never {})
        .boxed_unsync();
    let request = http::Request::builder()
        .uri(format!("http://localhost{path}"))
        .body(body)
        .unwrap();
    let response = pool
        .invoke(gate.acquire().await.unwrap(), next_request_id(), request)
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let x_path = response
        .headers()
        .get("x-path")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (String::from_utf8(body.to_vec()).unwrap(), x_path)
}

/// The JavaScript component compiled in a runtime of its own.
struct JsHello {
    _cache: tempfile::TempDir,
    runtime: Runtime,
    compiled: Compiled,
}

impl JsHello {
    fn compile() -> Self {
        let cache = tempfile::tempdir().unwrap();
        let runtime = Runtime::new(&RuntimeConfig::new(cache.path())).unwrap();
        let compiled = runtime
            .compile(&artifacts::bytes(artifacts::JS_HELLO))
            .unwrap();
        Self {
            _cache: cache,
            runtime,
            compiled,
        }
    }

    /// A pool of it with `max_requests_per_instance`.
    fn pool(
        &self,
        max_requests_per_instance: u32,
        observer: Arc<dyn InvocationObserver>,
    ) -> Arc<InstancePool> {
        InstancePool::new(
            &self.runtime,
            "js-hello",
            1,
            &self.compiled.program,
            Arc::new(FunctionConfig {
                max_requests_per_instance,
                ..Default::default()
            }),
            Arc::new(GuestLog::new("js-hello", 16)),
            observer,
        )
        .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn javascript_component_serves_fresh_and_reused_instances() {
    let js = JsHello::compile();
    let gate = ConcurrencyGate::new(4, 0, Duration::ZERO);
    for max_requests_per_instance in [1, 1000] {
        let pool = js.pool(max_requests_per_instance, Arc::new(NoObserver));
        for path in ["/", "/a/b?c=d", "/again"] {
            let (body, x_path) = get(&pool, &gate, path).await;
            assert_eq!(body, "Hello from JavaScript!\n");
            assert_eq!(x_path, path);
            if max_requests_per_instance > 1 {
                // The instance returns to the pool after the response; wait
                // for it, so the next request really runs on it again.
                let deadline = std::time::Instant::now() + Duration::from_secs(10);
                while pool.warm_instances() == 0 {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "instance not returned"
                    );
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            } else {
                assert_eq!(pool.warm_instances(), 0);
            }
        }
    }
}

/// Counts the instances a pool instantiated on the request path, and the
/// calls that ended (their instance back in the pool, or retired).
#[derive(Default)]
struct Counts {
    cold: AtomicU32,
    finished: AtomicU32,
}

impl InvocationObserver for Counts {
    fn started(&self, _: &str, _: u32, start: StartKind) {
        if start == StartKind::Cold {
            self.cold.fetch_add(1, Ordering::Relaxed);
        }
    }
    fn finished(&self, _: &str, _: u32, _: Result<(), &InvokeError>, _: Duration, _: usize) {
        self.finished.fetch_add(1, Ordering::Relaxed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_javascript_instance_is_retired_before_its_held_handles_fill_its_table() {
    // componentize-js holds about one resource handle more after each
    // request, so an instance reused for good would fill its table (4096
    // entries) after about 4000 requests and fail the next one. It is
    // retired while it still has room for a whole call.
    let js = JsHello::compile();
    let gate = ConcurrencyGate::new(4, 0, Duration::ZERO);
    let counts = Arc::new(Counts::default());
    let pool = js.pool(1_000_000, counts.clone());
    for i in 0..5000 {
        let (body, _) = get(&pool, &gate, &format!("/{i}")).await;
        assert_eq!(body, "Hello from JavaScript!\n", "request {i}");
        // The call ends after its response: then its instance is back in
        // the pool, or retired.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while counts.finished.load(Ordering::Relaxed) <= i {
            assert!(std::time::Instant::now() < deadline, "call did not end");
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }
    let cold = counts.cold.load(Ordering::Relaxed);
    assert!(
        cold >= 2,
        "5000 requests ran on {cold} instance(s): none was retired"
    );
}
