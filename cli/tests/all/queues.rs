//! Queue triggers against the real RabbitMQ on 127.0.0.1:5672, with queue
//! names unique to each test.

use crate::support::{Server, assert_error};
use flint_test_artifacts as artifacts;
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicPublishOptions,
    ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "flint-test.{prefix}.{}.{}.{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The test's own broker connection.
struct Broker {
    connection: Connection,
    channel: Channel,
    queues: Vec<String>,
}

impl Broker {
    async fn connect() -> Broker {
        let connection = Connection::connect(AMQP_URL, ConnectionProperties::default())
            .await
            .expect("RabbitMQ must run on 127.0.0.1:5672 (scripts/test starts it)");
        let channel = connection.create_channel().await.unwrap();
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        Broker {
            connection,
            channel,
            queues: Vec::new(),
        }
    }

    /// Deletes `queue`, which the server declared, when the test ends.
    fn forget(&mut self, queue: &str) {
        self.queues.push(queue.to_string());
    }

    /// Declares a durable queue (deleted again when the test ends).
    async fn declare(&mut self, queue: &str) {
        let options = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        self.channel
            .queue_declare(queue.into(), options, FieldTable::default())
            .await
            .unwrap();
        self.queues.push(queue.to_string());
    }

    async fn publish(&self, queue: &str, body: &[u8], properties: BasicProperties) {
        let confirm = self
            .channel
            .basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                body,
                properties,
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(confirm.is_ack());
    }

    /// Polls `queue` until a message arrives (bounded). Declares it first:
    /// polling a queue Flint has not declared yet would close the channel.
    async fn get(&mut self, queue: &str, within: Duration) -> Option<lapin::message::Delivery> {
        self.declare(queue).await;
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(message) = self
                .channel
                .basic_get(queue.into(), BasicGetOptions { no_ack: true })
                .await
                .unwrap()
            {
                return Some(message.delivery);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// Collects JSON replies from `queue` until `done` holds (bounded). A
    /// channel of its own, closed at the end, hands what it did not take
    /// back to the queue.
    async fn replies(
        &self,
        queue: &str,
        within: Duration,
        done: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let channel = self.connection.create_channel().await.unwrap();
        let mut consumer = channel
            .basic_consume(
                queue.into(),
                unique("c").into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        let deadline = Instant::now() + within;
        let mut replies = Vec::new();
        while !done(&replies) {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, consumer.next()).await {
                Ok(Some(Ok(delivery))) => {
                    let mut reply: Value = serde_json::from_slice(&delivery.data).unwrap();
                    if let Some(id) = delivery.properties.correlation_id() {
                        reply["correlation_id"] = json!(id.as_str());
                    }
                    delivery.ack(BasicAckOptions::default()).await.unwrap();
                    replies.push(reply);
                }
                _ => break,
            }
        }
        channel.close(200, "done".into()).await.unwrap();
        replies
    }
}

impl Drop for Broker {
    /// Deletes this test's queues with their retry and dead-letter queues.
    /// On a thread and a connection of its own: the test's runtime is
    /// ending and would drop a task spawned on it unfinished.
    fn drop(&mut self) {
        let queues = std::mem::take(&mut self.queues);
        let cleaned = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let Ok(connection) =
                    Connection::connect(AMQP_URL, ConnectionProperties::default()).await
                else {
                    return;
                };
                let Ok(channel) = connection.create_channel().await else {
                    return;
                };
                for q in queues {
                    for name in [q.clone(), format!("{q}.retry"), format!("{q}.dlq")] {
                        let _ = channel
                            .queue_delete(name.into(), QueueDeleteOptions::default())
                            .await;
                    }
                }
                let _ = connection.close(200, "cleaned up".into()).await;
            });
        });
        let _ = cleaned.join();
    }
}

fn message(id: &str, body: Value, reply_to: Option<&str>) -> (Vec<u8>, BasicProperties) {
    let mut properties = BasicProperties::default()
        .with_message_id(id.into())
        .with_content_type("application/json".into())
        .with_delivery_mode(2);
    if let Some(reply_to) = reply_to {
        properties = properties
            .with_reply_to(reply_to.into())
            .with_correlation_id(format!("corr-{id}").into());
    }
    (serde_json::to_vec(&body).unwrap(), properties)
}

/// Publishes one message per id with the same body.
async fn publish_each(
    broker: &Broker,
    queue: &str,
    ids: impl Iterator<Item = String>,
    body: Value,
    reply_to: Option<&str>,
) {
    for id in ids {
        let (bytes, props) = message(&id, body.clone(), reply_to);
        broker.publish(queue, &bytes, props).await;
    }
}

/// Binds `name` to a queue; returns the status.
async fn bind(server: &Server, name: &str, spec: Value) -> u16 {
    let response = server
        .http
        .put(server.at(&format!("/v1/functions/{name}/triggers")))
        .json(&spec)
        .send()
        .await
        .unwrap();
    response.status().as_u16()
}

/// A server with queue triggers, `queue-probe` deployed as `name` and bound
/// to a fresh queue; returns the server, the broker helper and the queue.
async fn setup(
    dir: &tempfile::TempDir,
    name: &str,
    trigger: Value,
    extra: &[&str],
) -> (Server, Broker, String) {
    let mut args = vec!["--amqp-url", AMQP_URL];
    args.extend_from_slice(extra);
    let server = Server::start_with(dir.path(), &args);
    server.deploy(name, artifacts::QUEUE_PROBE).await;
    let mut broker = Broker::connect().await;
    let queue = unique(name);
    broker.declare(&queue).await;
    let mut spec = trigger;
    spec["queue"] = json!(queue);
    assert_eq!(bind(&server, name, spec).await, 200);
    (server, broker, queue)
}

async fn reply_queue(broker: &mut Broker) -> String {
    let q = unique("replies");
    broker.declare(&q).await;
    q
}

#[tokio::test]
async fn a_thousand_messages_are_all_processed() {
    let dir = tempfile::tempdir().unwrap();
    let (server, mut broker, queue) = setup(&dir, "bulk", json!({"concurrency": 16}), &[]).await;
    let replies_to = reply_queue(&mut broker).await;
    publish_each(
        &broker,
        &queue,
        (0..1000).map(|i| format!("m-{i}")),
        json!({"mode": "ok"}),
        Some(&replies_to),
    )
    .await;
    let replies = broker
        .replies(&replies_to, Duration::from_secs(120), |r| {
            r.iter()
                .map(|v| v["id"].as_str().unwrap().to_string())
                .collect::<HashSet<_>>()
                .len()
                == 1000
        })
        .await;
    let ids: HashSet<&str> = replies.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 1000, "distinct ids seen by the function");
    let (_, metrics) = server.get("/metrics").await;
    assert!(
        metrics.contains(&format!(
            r#"flint_messages_total{{function="bulk",queue="{queue}",outcome="acked"}} 1000"#
        )),
        "{metrics}"
    );
}

/// The `acked` count of `function` on `queue` in the metrics.
async fn acked(server: &Server, function: &str, queue: &str) -> u64 {
    let (_, metrics) = server.get("/metrics").await;
    let series = format!(
        r#"flint_messages_total{{function="{function}",queue="{queue}",outcome="acked"}} "#
    );
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&series)?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_slow_message_does_not_hold_back_the_acks_of_the_ones_after_it() {
    // Acks go in batches up to the first message still running; the ones
    // done behind a slow one are acked on their own shortly after.
    let dir = tempfile::tempdir().unwrap();
    let (server, broker, queue) = setup(&dir, "batch", json!({"concurrency": 16}), &[]).await;
    publish_each(
        &broker,
        &queue,
        std::iter::once("slow".to_string()),
        json!({"mode": "ok", "sleep_ms": 8000}),
        None,
    )
    .await;
    publish_each(
        &broker,
        &queue,
        (0..10).map(|i| format!("quick-{i}")),
        json!({"mode": "ok"}),
        None,
    )
    .await;
    let published = Instant::now();
    while acked(&server, "batch", &queue).await < 10 {
        assert!(
            published.elapsed() < Duration::from_secs(6),
            "the quick messages were not acked while the slow one ran"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        acked(&server, "batch", &queue).await,
        10,
        "the slow one too early"
    );
    while acked(&server, "batch", &queue).await < 11 {
        assert!(
            published.elapsed() < Duration::from_secs(60),
            "the slow message was never acked"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The next message is served as usual.
    publish_each(
        &broker,
        &queue,
        std::iter::once("after".to_string()),
        json!({"mode": "ok"}),
        None,
    )
    .await;
    while acked(&server, "batch", &queue).await < 12 {
        assert!(
            published.elapsed() < Duration::from_secs(90),
            "the next message was not acked"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn messages_arrive_as_cloudevents_and_replies_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, mut broker, queue) = setup(&dir, "ce", json!({}), &[]).await;
    let replies_to = reply_queue(&mut broker).await;
    let mut headers = FieldTable::default();
    headers.insert("tenant".into(), AMQPValue::LongString("acme".into()));
    let (body, props) = message("evt-1", json!({"mode": "ok"}), Some(&replies_to));
    broker
        .publish(
            &queue,
            &body,
            props
                .with_type("order.created".into())
                .with_headers(headers),
        )
        .await;
    let replies = broker
        .replies(&replies_to, Duration::from_secs(30), |r| !r.is_empty())
        .await;
    let seen = &replies[0];
    assert_eq!(seen["id"], "evt-1", "{seen}");
    assert_eq!(
        seen["source"],
        format!("amqp://127.0.0.1:5672/%2f/{queue}"),
        "{seen}"
    );
    assert_eq!(seen["type"], "order.created", "{seen}");
    assert_eq!(seen["specversion"], "1.0", "{seen}");
    assert!(seen["time"].as_str().unwrap().ends_with('Z'), "{seen}");
    assert_eq!(seen["content_type"], "application/json", "{seen}");
    assert_eq!(seen["attempt"], 1, "{seen}");
    assert_eq!(seen["amqp_headers"]["x-amqp-tenant"], "acme", "{seen}");
    assert_eq!(seen["correlation_id"], "corr-evt-1", "{seen}");
}

#[tokio::test]
async fn the_example_order_processor_reads_structured_events() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--amqp-url", AMQP_URL]);
    server.deploy("orders", artifacts::ORDER_PROCESSOR).await;
    let mut broker = Broker::connect().await;
    let queue = unique("orders");
    broker.declare(&queue).await;
    let replies_to = reply_queue(&mut broker).await;
    assert_eq!(bind(&server, "orders", json!({"queue": queue})).await, 200);
    let event = json!({
        "specversion": "1.0", "id": "order-evt-7", "source": "shop", "type": "order.created",
        "data": {"order_id": "A-7", "items": [{"sku": "x", "qty": 2, "price_cents": 150}, {"sku": "y", "qty": 1, "price_cents": 99}]}
    });
    let props = BasicProperties::default()
        .with_content_type("application/cloudevents+json".into())
        .with_reply_to(replies_to.as_str().into());
    broker
        .publish(&queue, event.to_string().as_bytes(), props)
        .await;
    let replies = broker
        .replies(&replies_to, Duration::from_secs(30), |r| !r.is_empty())
        .await;
    assert_eq!(replies[0]["total_cents"], 399, "{}", replies[0]);
    assert_eq!(replies[0]["event_id"], "order-evt-7");
}

#[tokio::test]
async fn a_failing_message_is_retried_then_acked() {
    let dir = tempfile::tempdir().unwrap();
    let (server, mut broker, queue) = setup(
        &dir,
        "flaky",
        json!({"max_retries": 5, "retry_delay_ms": 100}),
        &[],
    )
    .await;
    let replies_to = reply_queue(&mut broker).await;
    let (body, props) = message(
        "flaky-1",
        json!({"mode": "fail-times", "n": 2}),
        Some(&replies_to),
    );
    broker.publish(&queue, &body, props).await;
    let replies = broker
        .replies(&replies_to, Duration::from_secs(30), |r| !r.is_empty())
        .await;
    assert_eq!(replies[0]["attempt"], 3, "{}", replies[0]);
    assert!(
        broker
            .get(&format!("{queue}.dlq"), Duration::from_millis(300))
            .await
            .is_none()
    );
    let (_, metrics) = server.get("/metrics").await;
    assert!(
        metrics.contains(&format!(
            r#"flint_messages_total{{function="flaky",queue="{queue}",outcome="retried"}} 2"#
        )),
        "{metrics}"
    );
}

fn header(delivery: &lapin::message::Delivery, key: &str) -> String {
    let headers = delivery.properties.headers().as_ref().expect("headers");
    match headers.inner().get(key) {
        Some(AMQPValue::LongString(s)) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        Some(AMQPValue::LongUInt(n)) => n.to_string(),
        Some(AMQPValue::ShortUInt(n)) => n.to_string(),
        other => panic!("header {key}: {other:?}"),
    }
}

#[tokio::test]
async fn an_always_failing_message_ends_in_the_dead_letter_queue() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, mut broker, queue) = setup(
        &dir,
        "doomed",
        json!({"max_retries": 2, "retry_delay_ms": 50}),
        &[],
    )
    .await;
    let (body, props) = message("doomed-1", json!({"mode": "fail"}), None);
    broker.publish(&queue, &body, props).await;
    let dead = broker
        .get(&format!("{queue}.dlq"), Duration::from_secs(30))
        .await
        .expect("a dead letter");
    assert_eq!(header(&dead, "x-flint-reason"), "status_500");
    assert_eq!(header(&dead, "x-flint-attempts"), "3");
    assert_eq!(header(&dead, "x-flint-last-status"), "500");
    assert_eq!(header(&dead, "x-flint-function"), "doomed");
    assert_eq!(
        dead.properties.message_id().as_ref().unwrap().as_str(),
        "doomed-1"
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&dead.data).unwrap()["mode"],
        "fail"
    );
}

#[tokio::test]
async fn an_oversized_message_goes_straight_to_dead_letter() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, mut broker, queue) = setup(
        &dir,
        "small",
        json!({"max_retries": 5}),
        &["--max-request-body-bytes", "1024"],
    )
    .await;
    let (_, props) = message("big-1", json!({}), None);
    broker.publish(&queue, &vec![b'x'; 4096], props).await;
    let dead = broker
        .get(&format!("{queue}.dlq"), Duration::from_secs(30))
        .await
        .expect("a dead letter");
    assert_eq!(header(&dead, "x-flint-reason"), "payload_too_large");
    assert_eq!(header(&dead, "x-flint-attempts"), "1");
    // The next message is processed as usual.
    let replies_to = reply_queue(&mut broker).await;
    let (body, props) = message("small-1", json!({"mode": "ok"}), Some(&replies_to));
    broker.publish(&queue, &body, props).await;
    assert_eq!(
        broker
            .replies(&replies_to, Duration::from_secs(30), |r| !r.is_empty())
            .await[0]["id"],
        "small-1"
    );
}

/// A message whose properties cannot become request headers (a message id
/// with a newline) is dead-lettered as `bad_message`, and the trigger goes on.
#[tokio::test]
async fn a_message_that_cannot_be_a_request_is_dead_lettered_and_the_trigger_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, mut broker, queue) = setup(
        &dir,
        "poison",
        json!({"max_retries": 5, "concurrency": 1}),
        &[],
    )
    .await;
    for id in ["bad\nid-1", "bad\nid-2"] {
        let props = BasicProperties::default()
            .with_message_id(id.into())
            .with_content_type("application/json".into());
        broker.publish(&queue, b"{}", props).await;
    }
    for _ in 0..2 {
        let dead = broker
            .get(&format!("{queue}.dlq"), Duration::from_secs(30))
            .await
            .expect("a dead letter");
        assert_eq!(header(&dead, "x-flint-reason"), "bad_message");
        assert!(
            header(&dead, "x-flint-error").contains("header"),
            "{}",
            header(&dead, "x-flint-error")
        );
        assert_eq!(header(&dead, "x-flint-attempts"), "1");
    }
    // With concurrency 1, a stuck poison message would hold the only slot.
    let replies_to = reply_queue(&mut broker).await;
    let (body, props) = message("after-poison", json!({"mode": "ok"}), Some(&replies_to));
    broker.publish(&queue, &body, props).await;
    assert_eq!(
        broker
            .replies(&replies_to, Duration::from_secs(30), |r| !r.is_empty())
            .await[0]["id"],
        "after-poison"
    );
}

/// A message on which the function traps is retried, then dead-lettered
/// with the trap as its reason; the trigger goes on with the next one.
#[tokio::test]
async fn a_message_the_function_traps_on_is_dead_lettered_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, mut broker, queue) = setup(
        &dir,
        "trapping",
        json!({"max_retries": 1, "retry_delay_ms": 50, "concurrency": 1}),
        &[],
    )
    .await;
    let (body, props) = message("trap-1", json!({"mode": "trap"}), None);
    broker.publish(&queue, &body, props).await;
    let dead = broker
        .get(&format!("{queue}.dlq"), Duration::from_secs(30))
        .await
        .expect("a dead letter");
    assert_eq!(header(&dead, "x-flint-reason"), "trap");
    assert!(header(&dead, "x-flint-error").contains("trapped"));
    assert_eq!(header(&dead, "x-flint-attempts"), "2");
    let replies_to = reply_queue(&mut broker).await;
    let (body, props) = message("after-trap", json!({"mode": "ok"}), Some(&replies_to));
    broker.publish(&queue, &body, props).await;
    assert_eq!(
        broker
            .replies(&replies_to, Duration::from_secs(30), |r| !r.is_empty())
            .await[0]["id"],
        "after-trap"
    );
}

/// A TCP proxy on loopback between Flint and RabbitMQ whose faults the
/// test sets: pass, black-hole (bytes dropped both ways while the
/// connections stay open), slow (each chunk delayed), or down (every
/// connection cut and new ones refused).
struct Proxy {
    port: u16,
    mode: std::sync::Arc<std::sync::atomic::AtomicU8>,
    cuts: tokio::sync::watch::Sender<u64>,
    accept: tokio::task::JoinHandle<()>,
}

const PASS: u8 = 0;
const BLACKHOLE: u8 = 1;
const SLOW: u8 = 2;
const DOWN: u8 = 3;
/// Delay of each chunk in the slow mode.
const SLOW_CHUNK_DELAY: Duration = Duration::from_millis(20);

impl Proxy {
    async fn start() -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = std::sync::Arc::new(std::sync::atomic::AtomicU8::new(PASS));
        let (cuts, _) = tokio::sync::watch::channel(0);
        let accept = tokio::spawn({
            let (mode, cuts) = (mode.clone(), cuts.clone());
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    if mode.load(Ordering::Relaxed) == DOWN {
                        continue;
                    }
                    let Ok(broker) = tokio::net::TcpStream::connect("127.0.0.1:5672").await else {
                        continue;
                    };
                    let (client_in, client_out) = client.into_split();
                    let (broker_in, broker_out) = broker.into_split();
                    tokio::spawn(pump(client_in, broker_out, mode.clone(), cuts.subscribe()));
                    tokio::spawn(pump(broker_in, client_out, mode.clone(), cuts.subscribe()));
                }
            }
        });
        Proxy {
            port,
            mode,
            cuts,
            accept,
        }
    }

    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::Relaxed);
        if mode == DOWN {
            self.cuts.send_modify(|n| *n += 1);
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cuts.send_modify(|n| *n += 1);
    }
}

/// Copies bytes until either side closes or the proxy cuts the connection.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mode: std::sync::Arc<std::sync::atomic::AtomicU8>,
    mut cuts: tokio::sync::watch::Receiver<u64>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buffer = vec![0u8; 16 << 10];
    loop {
        let n = tokio::select! {
            read = from.read(&mut buffer) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            _ = cuts.changed() => return,
        };
        match mode.load(Ordering::Relaxed) {
            BLACKHOLE => continue,
            SLOW => tokio::time::sleep(SLOW_CHUNK_DELAY).await,
            _ => {}
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}

/// Waits (bounded) until `/readyz` answers `status`.
async fn wait_ready(server: &Server, status: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.get("/readyz").await.0 != status {
        assert!(Instant::now() < deadline, "/readyz never answered {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Broker faults between Flint and RabbitMQ: the connection cut (and new
/// ones refused), then slow. HTTP keeps serving, `/readyz` follows the
/// broker, and every message the broker confirmed is answered.
#[tokio::test]
async fn a_cut_or_slow_broker_loses_no_confirmed_message() {
    const EACH: usize = 20;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start().await;
    let url = format!("amqp://guest:guest@127.0.0.1:{}/%2f", proxy.port);
    let server = Server::start_with(dir.path(), &["--amqp-url", &url]);
    server.deploy("faulty", artifacts::QUEUE_PROBE).await;
    server.deploy("hello", artifacts::HELLO).await;
    let mut broker = Broker::connect().await;
    let queue = unique("faulty");
    broker.declare(&queue).await;
    let spec = json!({"queue": queue, "concurrency": 8});
    assert_eq!(bind(&server, "faulty", spec).await, 200);
    wait_ready(&server, 200).await;
    let replies_to = reply_queue(&mut broker).await;
    let batch = |from: usize| (from..from + EACH).map(|i| format!("f-{i}"));
    let body = json!({"mode": "ok", "sleep_ms": 20});
    publish_each(&broker, &queue, batch(0), body.clone(), Some(&replies_to)).await;

    proxy.set(DOWN);
    wait_ready(&server, 503).await;
    assert_eq!(server.get("/healthz").await.0, 200);
    assert_eq!(
        server.get("/fn/hello/").await.0,
        200,
        "calls go on without the broker"
    );
    publish_each(
        &broker,
        &queue,
        batch(EACH),
        body.clone(),
        Some(&replies_to),
    )
    .await;

    proxy.set(PASS);
    wait_ready(&server, 200).await;
    proxy.set(SLOW);
    publish_each(&broker, &queue, batch(2 * EACH), body, Some(&replies_to)).await;
    let replies = broker
        .replies(&replies_to, Duration::from_secs(60), |r| {
            let ids: HashSet<&str> = r.iter().filter_map(|v| v["id"].as_str()).collect();
            ids.len() == 3 * EACH
        })
        .await;
    let ids: HashSet<&str> = replies.iter().filter_map(|v| v["id"].as_str()).collect();
    assert_eq!(ids.len(), 3 * EACH, "every confirmed message is answered");
    proxy.set(PASS);
}

/// A broker that stops confirming does not hold `/async` callers: they get
/// 503 `broker_unavailable` with `Retry-After` once the publish times out,
/// and HTTP keeps serving.
#[tokio::test]
async fn async_invoke_answers_in_time_when_the_broker_stops_confirming() {
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start().await;
    let url = format!("amqp://guest:guest@127.0.0.1:{}/%2f", proxy.port);
    let server = Server::start_with(dir.path(), &["--amqp-url", &url]);
    server.deploy("stuck", artifacts::QUEUE_PROBE).await;
    let mut broker = Broker::connect().await;
    let queue = unique("stuck");
    broker.declare(&queue).await;
    assert_eq!(bind(&server, "stuck", json!({"queue": queue})).await, 200);
    wait_ready(&server, 200).await;
    let (status, body) = server.post("/async/stuck", json!({"mode": "ok"})).await;
    assert_eq!(status, 202, "{body}");

    proxy.set(BLACKHOLE);
    let started = Instant::now();
    let response = server
        .http
        .post(server.at("/async/stuck"))
        .json(&json!({"mode": "ok"}))
        .send()
        .await
        .unwrap();
    let waited = started.elapsed();
    assert_eq!(response.headers()["retry-after"], "1");
    let status = response.status();
    let message = assert_error(
        status,
        &response.text().await.unwrap(),
        503,
        "broker_unavailable",
    );
    assert!(message.contains("did not confirm"), "{message}");
    // The publish timeout is 5 s; the rest is slack for a loaded machine.
    assert!(waited < Duration::from_secs(15), "waited {waited:?}");
    assert_eq!(server.get("/healthz").await.0, 200);
}

/// SIGTERM with messages in flight: the consumers stop taking messages, the
/// ones in flight finish and are acked once, and the process exits within
/// its grace period; nothing goes back to the queue to run again.
#[tokio::test]
async fn sigterm_drains_the_messages_in_flight_and_redelivers_none() {
    let dir = tempfile::tempdir().unwrap();
    let (server, mut broker, queue) = setup(
        &dir,
        "drain",
        json!({"concurrency": 8}),
        &["--shutdown-grace-secs", "20"],
    )
    .await;
    let replies_to = reply_queue(&mut broker).await;
    publish_each(
        &broker,
        &queue,
        (0..8).map(|i| format!("d-{i}")),
        json!({"mode": "ok", "sleep_ms": 2000}),
        Some(&replies_to),
    )
    .await;
    server
        .wait_for_info("drain", "8 messages in flight", |i| {
            i["stats"]["in_flight"] == 8
        })
        .await;
    let started = Instant::now();
    let status = server.terminate();
    let took = started.elapsed();
    assert!(status.success(), "{status}");
    assert!(took < Duration::from_secs(20), "exited after {took:?}");

    let replies = broker
        .replies(&replies_to, Duration::from_secs(10), |r| r.len() >= 8)
        .await;
    let ids: HashSet<&str> = replies.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!((replies.len(), ids.len()), (8, 8), "{replies:?}");
    for name in [queue.clone(), format!("{queue}.retry")] {
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let left = broker
            .channel
            .queue_declare(name.as_str().into(), passive, FieldTable::default())
            .await
            .unwrap();
        assert_eq!(
            left.message_count(),
            0,
            "{name} holds messages to run again"
        );
    }
}

/// The `type` and `arguments` columns of `queue` in `rabbitmqctl
/// list_queues`, once the queue exists (bounded wait).
fn queue_listing(queue: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = std::process::Command::new("rabbitmqctl")
            .args([
                "list_queues",
                "--quiet",
                "--no-table-headers",
                "name",
                "type",
                "arguments",
            ])
            .output()
            .expect("rabbitmqctl");
        let listing = String::from_utf8_lossy(&out.stdout);
        if let Some(line) = listing
            .lines()
            .find(|l| l.split('\t').next() == Some(queue))
        {
            return line.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "queue {queue} was never declared"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A queue Flint declares is a quorum queue with a delivery limit, so a
/// message that keeps killing the process stops coming back; and a
/// redelivery after a crash counts as an attempt.
#[tokio::test]
async fn new_bindings_get_a_quorum_queue_and_a_crash_counts_as_an_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--amqp-url", AMQP_URL]);
    server.deploy("crashy", artifacts::QUEUE_PROBE).await;
    let mut broker = Broker::connect().await;
    let queue = unique("crashy");
    broker.queues.push(queue.clone());
    let spec = json!({"queue": queue, "concurrency": 1});
    assert_eq!(bind(&server, "crashy", spec).await, 200);
    let listing = queue_listing(&queue);
    assert!(listing.contains("quorum"), "{listing}");
    assert!(listing.contains("x-delivery-limit"), "{listing}");
    assert!(listing.contains(&format!("{queue}.dlq")), "{listing}");

    let replies_to = reply_queue(&mut broker).await;
    let (body, props) = message(
        "crash-1",
        json!({"mode": "ok", "sleep_ms": 3000}),
        Some(&replies_to),
    );
    broker.publish(&queue, &body, props).await;
    wait_for_log(&server, "crashy", "begin crash-1 1").await;
    server.kill();

    let _server = Server::start_with(dir.path(), &["--amqp-url", AMQP_URL]);
    let replies = broker
        .replies(&replies_to, Duration::from_secs(30), |r| !r.is_empty())
        .await;
    assert_eq!(replies[0]["id"], "crash-1");
    assert_eq!(
        replies[0]["attempt"], 2,
        "the broker's redelivery counts: {}",
        replies[0]
    );
}

/// Ten SIGKILLs in a row, each while deploys, config changes and messages
/// are in flight: every acknowledged change is there after the restarts,
/// every confirmed message is answered, and a message in flight at every
/// crash (as one that kills the process would be) ends in the dead-letter
/// queue after its delivery limit.
#[tokio::test]
async fn a_kill_loop_loses_no_acknowledged_change_and_no_confirmed_message() {
    const KILLS: usize = 10;
    const MESSAGES: usize = 40;
    let dir = tempfile::tempdir().unwrap();
    let args = ["--amqp-url", AMQP_URL];
    let server = Server::start_with(dir.path(), &args);
    server.deploy("crash", artifacts::QUEUE_PROBE).await;
    server.deploy("other", artifacts::HELLO).await;
    let mut broker = Broker::connect().await;
    let queue = unique("kill-loop");
    broker.queues.push(queue.clone());
    let spec = json!({"queue": queue, "concurrency": 8, "max_retries": 0});
    assert_eq!(bind(&server, "crash", spec).await, 200);
    queue_listing(&queue);
    let replies_to = reply_queue(&mut broker).await;
    let (body, props) = message("poison", json!({"mode": "ok", "sleep_ms": 60000}), None);
    broker.publish(&queue, &body, props).await;
    publish_each(
        &broker,
        &queue,
        (0..MESSAGES).map(|i| format!("m-{i}")),
        json!({"mode": "ok", "sleep_ms": 20}),
        Some(&replies_to),
    )
    .await;

    let mut server = Some(server);
    let (mut acked_version, mut acked_memory, mut poisoned) = (1, 128, None);
    for kill in 0..KILLS {
        let running = match server.take() {
            Some(running) => running,
            None => Server::start_with(dir.path(), &args),
        };
        // An acknowledged deploy and config change, then one of each in
        // flight when the process dies.
        let component = [artifacts::WASI_HELLO, artifacts::HELLO][kill % 2];
        acked_version = running.deploy("other", component).await["version"]
            .as_u64()
            .unwrap();
        acked_memory = 64 + kill as u64;
        running
            .configure("other", json!({"memory_mb": acked_memory}))
            .await;
        let in_flight = running
            .http
            .put(running.at("/v1/functions/other"))
            .header("content-type", "application/wasm")
            .body(artifacts::bytes(
                [artifacts::HELLO, artifacts::WASI_HELLO][kill % 2],
            ));
        let pending = tokio::spawn(in_flight.send());
        if poisoned.is_none() {
            poisoned = poison_begun_or_dead(&running, &mut broker, &queue).await;
        }
        running.kill();
        let _ = pending.await;
    }

    let server = Server::start_with(dir.path(), &args);
    let info = server.info("other").await;
    let latest = info["latest_version"].as_u64().unwrap();
    assert!(
        latest >= acked_version,
        "acknowledged version {acked_version} lost: {info}"
    );
    assert_eq!(info["config"]["memory_mb"], acked_memory, "{info}");
    let replies = broker
        .replies(&replies_to, Duration::from_secs(60), |r| {
            let ids: HashSet<&str> = r.iter().filter_map(|v| v["id"].as_str()).collect();
            ids.len() == MESSAGES
        })
        .await;
    let ids: HashSet<&str> = replies.iter().filter_map(|v| v["id"].as_str()).collect();
    assert_eq!(ids.len(), MESSAGES, "every confirmed message is answered");
    let poisoned = match poisoned {
        Some(dead) => dead,
        None => broker
            .get(&format!("{queue}.dlq"), Duration::from_secs(30))
            .await
            .expect("the message in flight at every crash is dead-lettered"),
    };
    assert_eq!(
        poisoned.properties.message_id().as_ref().unwrap().as_str(),
        "poison"
    );
    assert_eq!(header(&poisoned, "x-first-death-reason"), "delivery_limit");
}

/// The largest number of invocations that overlapped, from the function's
/// own `begin`/`end` lines.
fn max_overlap(lines: &[Value]) -> usize {
    let mut events: Vec<(String, i32)> = lines
        .iter()
        .filter_map(|l| {
            let text = l["line"].as_str()?;
            let time = l["time"].as_str()?.to_string();
            if text.starts_with("begin ") {
                Some((time, 1))
            } else if text.starts_with("end ") {
                Some((time, -1))
            } else {
                None
            }
        })
        .collect();
    // RFC 3339 UTC times sort as strings; ends before begins at a tie.
    events.sort();
    let (mut now, mut max) = (0i32, 0i32);
    for (_, delta) in events {
        now += delta;
        max = max.max(now);
    }
    max as usize
}

#[tokio::test]
async fn concurrency_never_exceeds_the_trigger_or_the_function() {
    let dir = tempfile::tempdir().unwrap();
    let (server, mut broker, queue) = setup(&dir, "par", json!({"concurrency": 3}), &[]).await;
    let replies_to = reply_queue(&mut broker).await;
    publish_each(
        &broker,
        &queue,
        (0..12).map(|i| format!("p-{i}")),
        json!({"mode": "ok", "sleep_ms": 150}),
        Some(&replies_to),
    )
    .await;
    assert_eq!(
        broker
            .replies(&replies_to, Duration::from_secs(60), |r| r.len() == 12)
            .await
            .len(),
        12
    );
    let (_, logs) = server.get_json("/v1/functions/par/logs?limit=1000").await;
    let overlap = max_overlap(logs["lines"].as_array().unwrap());
    assert!(
        (2..=3).contains(&overlap),
        "max concurrent invocations {overlap}"
    );

    // A function's max_concurrency caps a larger trigger concurrency.
    server.configure("par", json!({"max_concurrency": 2})).await;
    assert_eq!(
        bind(&server, "par", json!({"queue": queue, "concurrency": 8})).await,
        200
    );
    let (_, before) = server.get_json("/v1/functions/par/logs?limit=1").await;
    let after = before["lines"][0]["seq"].as_u64().unwrap();
    publish_each(
        &broker,
        &queue,
        (0..8).map(|i| format!("q-{i}")),
        json!({"mode": "ok", "sleep_ms": 150}),
        Some(&replies_to),
    )
    .await;
    assert_eq!(
        broker
            .replies(&replies_to, Duration::from_secs(60), |r| r.len() == 8)
            .await
            .len(),
        8
    );
    let (_, logs) = server
        .get_json(&format!("/v1/functions/par/logs?limit=1000&after={after}"))
        .await;
    let overlap = max_overlap(logs["lines"].as_array().unwrap());
    assert!(
        overlap <= 2,
        "max concurrent invocations {overlap} with max_concurrency 2"
    );
}

/// Waits until the kill loop's poison message runs on `server` (its log
/// says so), or has reached `queue`'s dead-letter queue after its last
/// delivery, which it returns. Checking both in one loop: a message taken
/// back at a kill may be dead-lettered at any moment of the next start.
async fn poison_begun_or_dead(
    server: &Server,
    broker: &mut Broker,
    queue: &str,
) -> Option<lapin::message::Delivery> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, logs) = server.get("/v1/functions/crash/logs?limit=1000").await;
        if logs.contains("begin poison") {
            return None;
        }
        let dead = broker
            .get(&format!("{queue}.dlq"), Duration::from_millis(10))
            .await;
        if dead.is_some() {
            return dead;
        }
        assert!(
            Instant::now() < deadline,
            "the poison message neither began nor was dead-lettered: {logs}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_for_log(server: &Server, function: &str, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, logs) = server
            .get(&format!("/v1/functions/{function}/logs?limit=1000"))
            .await;
        if logs.contains(needle) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no log line with {needle}: {logs}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn async_invoke_queues_a_call() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _broker, queue) = setup(&dir, "later", json!({}), &[]).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.get_json("/readyz").await.1["broker"] != "up" {
        assert!(Instant::now() < deadline, "broker never up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let accepted = queue_call(&server, "later").await;
    assert_eq!(accepted["queue"], queue.as_str());
    let id = accepted["message_id"].as_str().unwrap();
    wait_for_log(&server, "later", &format!("end {id}")).await;

    let (status, body) = server.get("/async/later").await;
    assert_error(status, &body, 405, "method_not_allowed");
    server.deploy("unbound", artifacts::HELLO).await;
    let response = server
        .http
        .post(server.at("/async/unbound"))
        .body("x")
        .send()
        .await
        .unwrap();
    let status = response.status();
    assert_error(
        status,
        &response.text().await.unwrap(),
        404,
        "trigger_not_found",
    );
}

/// Queues a call of `function` through `/async`; the 202's body.
async fn queue_call(server: &Server, function: &str) -> Value {
    let response = server
        .http
        .post(server.at(&format!("/async/{function}")))
        .header("content-type", "application/json")
        .body(r#"{"mode":"ok"}"#)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body = response.text().await.unwrap();
    assert_eq!(status, 202, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// Setting a trigger answers once its queue takes messages: an `/async`
/// call right after, on a queue nobody declared, is routed and runs.
#[tokio::test]
async fn a_call_queued_right_after_the_trigger_is_set_runs() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--amqp-url", AMQP_URL]);
    server.deploy("prompt", artifacts::QUEUE_PROBE).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.get_json("/readyz").await.1["broker"] != "up" {
        assert!(Instant::now() < deadline, "broker never up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut broker = Broker::connect().await;
    let queue = unique("prompt");
    broker.forget(&queue);
    assert_eq!(
        bind(&server, "prompt", json!({ "queue": queue })).await,
        200
    );
    let accepted = queue_call(&server, "prompt").await;
    let id = accepted["message_id"].as_str().unwrap();
    wait_for_log(&server, "prompt", &format!("end {id}")).await;

    // The same through `flint apply`: a new queue, called at once.
    let (_, info) = server.get_json("/v1/functions/prompt").await;
    let applied = unique("applied");
    broker.forget(&applied);
    let desired = json!({"functions": {"prompt": {
        "digest": info["versions"][0]["digest"],
        "trigger": {"queue": applied},
    }}});
    let (status, body) = server.post("/v1/apply?prune=false", desired).await;
    assert_eq!(status, 200, "{body}");
    let accepted = queue_call(&server, "prompt").await;
    assert_eq!(accepted["queue"], applied.as_str());
    let id = accepted["message_id"].as_str().unwrap();
    wait_for_log(&server, "prompt", &format!("end {id}")).await;
}

#[tokio::test]
async fn triggers_survive_restart_and_sigkill_loses_no_message() {
    let dir = tempfile::tempdir().unwrap();
    let (server, mut broker, queue) = setup(&dir, "durable", json!({"concurrency": 4}), &[]).await;
    let replies_to = reply_queue(&mut broker).await;
    publish_each(
        &broker,
        &queue,
        (0..40).map(|i| format!("k-{i}")),
        json!({"mode": "ok", "sleep_ms": 100}),
        Some(&replies_to),
    )
    .await;
    // Kill the server while messages are in flight.
    let first = broker
        .replies(&replies_to, Duration::from_secs(30), |r| r.len() >= 5)
        .await;
    assert!(first.len() >= 5);
    server.kill();

    let server = Server::start_with(dir.path(), &["--amqp-url", AMQP_URL]);
    let (status, binding) = server.get_json("/v1/functions/durable/triggers").await;
    assert_eq!(status, 200, "{binding}");
    assert_eq!(binding["queue"], queue.as_str());
    let seen = replied_ids(&broker, &replies_to, &first, 40).await;
    assert_eq!(seen.len(), 40, "every message processed at least once");
}

/// The ids of `first` and of the replies that follow on `replies_to`,
/// collected until `n` distinct ids have replied (bounded).
async fn replied_ids(
    broker: &Broker,
    replies_to: &str,
    first: &[Value],
    n: usize,
) -> HashSet<String> {
    let id = |r: &Value| r["id"].as_str().unwrap().to_string();
    let mut seen: HashSet<String> = first.iter().map(id).collect();
    let rest = broker
        .replies(replies_to, Duration::from_secs(60), |r| {
            let mut all = seen.clone();
            all.extend(r.iter().map(id));
            all.len() == n
        })
        .await;
    seen.extend(rest.iter().map(id));
    seen
}

fn flint_connection_pids(server_pid_name: &str) -> Vec<String> {
    let out = std::process::Command::new("rabbitmqctl")
        .args([
            "list_connections",
            "-q",
            "--no-table-headers",
            "pid",
            "client_properties",
        ])
        .output()
        .expect("rabbitmqctl");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(server_pid_name))
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect()
}

#[tokio::test]
async fn consumers_come_back_after_the_broker_drops_the_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (server, mut broker, queue) = setup(&dir, "resilient", json!({}), &[]).await;
    let name = format!("flint serve pid {}", server.pid());
    let deadline = Instant::now() + Duration::from_secs(30);
    let pids = loop {
        let pids = flint_connection_pids(&name);
        if !pids.is_empty() {
            break pids;
        }
        assert!(
            Instant::now() < deadline,
            "flint's connection never showed up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for pid in &pids {
        let status = std::process::Command::new("rabbitmqctl")
            .args([
                "close_connection",
                pid,
                "test: broker closes the connection",
            ])
            .output()
            .unwrap();
        assert!(status.status.success(), "{status:?}");
    }
    // HTTP keeps working meanwhile.
    assert_eq!(server.get("/healthz").await.0, 200);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = flint_connection_pids(&name);
        if !now.is_empty() && now.iter().all(|p| !pids.contains(p)) {
            break;
        }
        assert!(Instant::now() < deadline, "flint did not reconnect");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let replies_to = reply_queue(&mut broker).await;
    let (body, props) = message("after-reconnect", json!({"mode": "ok"}), Some(&replies_to));
    broker.publish(&queue, &body, props).await;
    assert_eq!(
        broker
            .replies(&replies_to, Duration::from_secs(30), |r| !r.is_empty())
            .await[0]["id"],
        "after-reconnect"
    );
    let (status, ready) = server.get_json("/readyz").await;
    assert_eq!(
        (status.as_u16(), ready["broker"].as_str()),
        (200, Some("up"))
    );
}

#[tokio::test]
async fn an_unreachable_broker_degrades_readiness_not_http() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        dir.path(),
        &["--amqp-url", "amqp://guest:guest@127.0.0.1:1/%2f"],
    );
    server.deploy("hello", artifacts::HELLO).await;
    assert_eq!(server.get("/fn/hello/").await.1, "Hello from Flint!\n");
    let (status, ready) = server.get_json("/readyz").await;
    assert_eq!(status, 503);
    assert_eq!(ready["broker"], "down");
    assert_eq!(
        bind(&server, "hello", json!({"queue": unique("never")})).await,
        200
    );
    let response = server
        .http
        .post(server.at("/async/hello"))
        .body("x")
        .send()
        .await
        .unwrap();
    let status = response.status();
    assert_error(
        status,
        &response.text().await.unwrap(),
        503,
        "broker_unavailable",
    );
    let (_, metrics) = server.get("/metrics").await;
    assert!(metrics.contains("flint_broker_connected 0"), "{metrics}");
}

#[tokio::test]
async fn trigger_specs_are_validated() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    server.deploy("f", artifacts::HELLO).await;
    for (spec, field) in [
        (json!({"queue": ""}), "queue"),
        (json!({"queue": "amq.nope"}), "queue"),
        (json!({"queue": "q", "concurrency": 0}), "concurrency"),
        (json!({"queue": "q", "max_retries": 1000}), "max_retries"),
        (json!({"queue": "q", "colour": "red"}), "colour"),
    ] {
        let response = server
            .http
            .put(server.at("/v1/functions/f/triggers"))
            .json(&spec)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let message = assert_error(
            status,
            &response.text().await.unwrap(),
            400,
            "invalid_trigger",
        );
        assert!(message.contains(field), "{spec}: {message}");
    }
    assert_eq!(bind(&server, "nope", json!({"queue": "q"})).await, 404);
    let (status, body) = server.get("/v1/functions/f/triggers").await;
    assert_error(status, &body, 404, "trigger_not_found");
    let (_, list) = server.get_json("/v1/triggers").await;
    assert_eq!(list, json!({"broker": "disabled", "triggers": []}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_nodes_of_a_cluster_share_a_queue_and_a_killed_node_loses_no_message() {
    let db = flint_test_artifacts::postgres::TestDb::create();
    let migrated = std::process::Command::new(crate::support::FLINT)
        .args(["migrate", "--registry", &db.url])
        .output()
        .unwrap();
    assert!(migrated.status.success());
    let dir = tempfile::tempdir().unwrap();
    let start = |name: &str| {
        let data = dir.path().join(name);
        std::fs::create_dir_all(&data).unwrap();
        Server::start_with(
            &data,
            &[
                "--amqp-url",
                AMQP_URL,
                "--registry",
                &db.url,
                "--registry-poll",
                "1s",
                "--heartbeat",
                "200ms",
            ],
        )
    };
    let (a, b) = (start("a"), start("b"));
    a.deploy("shared", artifacts::QUEUE_PROBE).await;
    let mut broker = Broker::connect().await;
    let queue = unique("shared");
    broker.declare(&queue).await;
    assert_eq!(
        bind(&a, "shared", json!({"queue": queue, "concurrency": 4})).await,
        200
    );
    // The binding reaches the other node through the registry.
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.get("/v1/functions/shared/triggers").await.0 != 200 {
        assert!(
            Instant::now() < deadline,
            "the binding never reached node b"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let replies_to = reply_queue(&mut broker).await;
    publish_each(
        &broker,
        &queue,
        (0..60).map(|i| format!("s-{i}")),
        json!({"mode": "ok", "sleep_ms": 100}),
        Some(&replies_to),
    )
    .await;
    let first = broker
        .replies(&replies_to, Duration::from_secs(30), |r| r.len() >= 10)
        .await;
    assert!(first.len() >= 10);
    // Both nodes consume; then one dies with messages in flight.
    let deadline = Instant::now() + Duration::from_secs(10);
    while acked(&b, "shared", &queue).await == 0 || acked(&a, "shared", &queue).await == 0 {
        assert!(
            Instant::now() < deadline,
            "both nodes should consume the queue"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    b.kill();
    let seen = replied_ids(&broker, &replies_to, &first, 60).await;
    assert_eq!(
        seen.len(),
        60,
        "every confirmed message processed at least once"
    );
}

#[tokio::test]
async fn a_wagi_module_takes_queue_messages_as_cloudevents() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--amqp-url", AMQP_URL]);
    server.deploy("wagi-queue", artifacts::WAGI_RUST).await;
    let mut broker = Broker::connect().await;
    let queue = unique("wagi-queue");
    broker.declare(&queue).await;
    assert_eq!(
        bind(&server, "wagi-queue", json!({"queue": queue})).await,
        200
    );
    let replies_to = reply_queue(&mut broker).await;
    publish_each(
        &broker,
        &queue,
        (0..5).map(|i| format!("w-{i}")),
        json!({"n": 1}),
        Some(&replies_to),
    )
    .await;
    let replies = broker
        .replies(&replies_to, Duration::from_secs(30), |r| r.len() == 5)
        .await;
    let mut ids: Vec<&str> = replies.iter().map(|r| r["id"].as_str().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, ["w-0", "w-1", "w-2", "w-3", "w-4"], "{replies:?}");
    for reply in &replies {
        assert_eq!(reply["body_bytes"], 7, "{reply}");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while acked(&server, "wagi-queue", &queue).await < 5 {
        assert!(Instant::now() < deadline, "the 5 messages were not acked");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_wasi_03_component_takes_queue_messages() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--amqp-url", AMQP_URL]);
    let deployed = server.deploy("p3-queue", artifacts::HTTP_P3).await;
    assert_eq!(deployed["kind"], "http-p3", "{deployed}");
    let mut broker = Broker::connect().await;
    let queue = unique("p3-queue");
    broker.declare(&queue).await;
    assert_eq!(
        bind(&server, "p3-queue", json!({"queue": queue})).await,
        200
    );
    publish_each(
        &broker,
        &queue,
        (0..5).map(|i| format!("p-{i}")),
        json!({"n": 1}),
        None,
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked(&server, "p3-queue", &queue).await < 5 {
        assert!(Instant::now() < deadline, "the 5 messages were not acked");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, metrics) = server.get("/metrics").await;
    let ok = r#"flint_invocations_total{function="p3-queue",version="1",outcome="ok"} 5"#;
    assert!(metrics.contains(ok), "{ok} missing:\n{metrics}");
}
