//! The benchmarked components answer correctly through `flint-runtime`, on a
//! fresh instance and on a reused one, so that a benchmark never times a
//! broken invocation.

use flint_runtime::{
    ConcurrencyGate, FunctionConfig, GuestLog, HyperIncomingBody, InstancePool, InvocationObserver,
    InvokeError, Runtime, RuntimeConfig, StartKind, next_request_id,
};
use flint_test_artifacts as artifacts;
use http_body_util::{BodyExt, Empty};
use std::sync::Arc;
use std::time::Duration;

struct NoObserver;

impl InvocationObserver for NoObserver {
    fn started(&self, _: &str, _: u32, _: StartKind) {}
    fn finished(&self, _: &str, _: u32, _: Result<(), &InvokeError>, _: Duration) {}
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn javascript_component_serves_fresh_and_reused_instances() {
    let cache = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(&RuntimeConfig::new(cache.path())).unwrap();
    let compiled = runtime
        .compile(&artifacts::bytes(artifacts::JS_HELLO))
        .unwrap();
    let gate = ConcurrencyGate::new(4, 0, Duration::ZERO);
    for max_requests_per_instance in [1, 1000] {
        let pool = InstancePool::new(
            &runtime,
            "js-hello",
            1,
            &compiled.component,
            Arc::new(FunctionConfig {
                max_requests_per_instance,
                ..Default::default()
            }),
            Arc::new(GuestLog::new("js-hello", 16)),
            Arc::new(NoObserver),
        )
        .unwrap();
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
