//! The RabbitMQ adapter: a supervisor that keeps one connection up
//! (reconnecting with backoff), one consumer per binding, and the delivery
//! flow of each message.
//!
//! Delivery is at least once. A message is acked only after its outcome is
//! safely handled, and every publish that outcome needs (the reply, the
//! retry, the dead letter) is confirmed by the broker first. A crash at any
//! moment therefore loses nothing; it may deliver a message again, so
//! functions should be idempotent on `ce-id`.
//!
//! Outcomes: a 2xx response acks (after publishing the body to `reply_to`,
//! if set, with the same `correlation_id`). Anything else is published to
//! `<queue>.retry`, a durable queue whose messages expire after
//! `retry_delay_ms` and dead-letter back into the queue, with the attempt
//! count in `x-flint-attempt`; after `max_retries` retries, or at once for a
//! body over the request limit, the message goes to the dead-letter queue
//! with `x-flint-reason`, `x-flint-attempts` and the last status or error.

use crate::state::AppState;
use crate::triggers::TriggerSpec;
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Full, Limited};
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::task::JoinHandle;

/// First reconnect delay; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often a connected supervisor checks the connection and bindings.
const CHECK_INTERVAL: Duration = Duration::from_millis(500);
/// Header carrying the 1-based attempt number.
pub const ATTEMPT_HEADER: &str = "x-flint-attempt";
/// Default `ce-type` of messages without a `type` property.
pub const DEFAULT_CE_TYPE: &str = "com.flint.amqp.message";
/// Largest reply body published to `reply_to`.
const MAX_REPLY_BYTES: usize = 16 << 20;

/// Keeps the broker connection and the consumers up until the process ends.
pub async fn supervise(state: Arc<AppState>) {
    let Some(url) = state.triggers.amqp_url().map(String::from) else {
        return;
    };
    let mut backoff = MIN_BACKOFF;
    loop {
        // A name per process lets operators (and tests) find this
        // connection in `rabbitmqctl list_connections`.
        let properties = ConnectionProperties::default()
            .with_connection_name(format!("flint serve pid {}", std::process::id()).into());
        match Connection::connect(&url, properties).await {
            Ok(connection) => {
                tracing::info!(broker = %redact(&url), "connected to RabbitMQ");
                backoff = MIN_BACKOFF;
                state.triggers.set_connected(true);
                state.metrics.set_broker_connected(true);
                let error = run_connected(&state, &url, &connection).await;
                state.triggers.set_connected(false);
                state.metrics.set_broker_connected(false);
                *state.triggers.publisher.lock().await = None;
                tracing::warn!(error = %error, "lost the RabbitMQ connection; reconnecting");
                let _ = connection.close(200, "reconnecting".into()).await;
            }
            Err(e) => {
                tracing::warn!(broker = %redact(&url), error = %e, retry_in_ms = backoff.as_millis() as u64, "cannot connect to RabbitMQ")
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}***{}", &url[..s + 3], &url[at..]),
        _ => url.to_string(),
    }
}

/// `amqp://HOST/VHOST` of the broker URL, without credentials or query.
fn source_prefix(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let rest = rest.split('?').next().unwrap_or(rest);
    let (host, vhost) = rest.split_once('/').unwrap_or((rest, "%2f"));
    format!(
        "amqp://{host}/{}",
        if vhost.is_empty() { "%2f" } else { vhost }
    )
}

struct Consumer {
    spec: TriggerSpec,
    prefetch: u32,
    channel: Channel,
    task: JoinHandle<()>,
}

impl Consumer {
    /// Stops consuming; closing the channel hands every unacked message
    /// back to the queue.
    async fn stop(self) {
        self.task.abort();
        let _ = self.channel.close(200, "consumer stopped".into()).await;
    }
}

/// Runs consumers for the current bindings until the connection fails.
async fn run_connected(state: &Arc<AppState>, url: &str, connection: &Connection) -> String {
    let publisher = match open_publisher(connection).await {
        Ok(channel) => channel,
        Err(e) => return format!("cannot open the publishing channel: {e}"),
    };
    *state.triggers.publisher.lock().await = Some(publisher);
    let mut events = connection.events_listener();
    let mut consumers: HashMap<String, Consumer> = HashMap::new();
    let source = source_prefix(url);
    let result = loop {
        if let Err(e) = reconcile(state, connection, &source, &mut consumers).await {
            break e;
        }
        tokio::select! {
            event = events.next() => match event {
                Some(lapin::Event::Error(e)) => break e.to_string(),
                None => break "connection closed".to_string(),
                Some(_) => {}
            },
            () = state.triggers.changed.notified() => {}
            () = tokio::time::sleep(CHECK_INTERVAL) => {}
        }
        if !connection.status().connected() {
            break "connection closed".to_string();
        }
        if let Some((function, _)) = consumers.iter().find(|(_, c)| c.task.is_finished()) {
            let function = function.clone();
            tracing::warn!(%function, "consumer stopped; restarting it");
            if let Some(consumer) = consumers.remove(&function) {
                consumer.stop().await;
            }
        }
    };
    for (_, consumer) in consumers {
        consumer.stop().await;
    }
    result
}

async fn open_publisher(connection: &Connection) -> lapin::Result<Channel> {
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok(channel)
}

/// Starts consumers for new or changed bindings and stops removed ones.
async fn reconcile(
    state: &Arc<AppState>,
    connection: &Connection,
    source: &str,
    consumers: &mut HashMap<String, Consumer>,
) -> Result<(), String> {
    let wanted: HashMap<String, TriggerSpec> = state.triggers.list().into_iter().collect();
    let stale: Vec<String> = consumers
        .iter()
        .filter(|(f, c)| {
            wanted.get(*f) != Some(&c.spec) || Some(c.prefetch) != prefetch_for(state, f, &c.spec)
        })
        .map(|(f, _)| f.clone())
        .collect();
    for function in stale {
        if let Some(consumer) = consumers.remove(&function) {
            tracing::info!(%function, queue = %consumer.spec.queue, "stopping consumer");
            consumer.stop().await;
        }
    }
    for (function, spec) in wanted {
        if consumers.contains_key(&function) {
            continue;
        }
        let Some(prefetch) = prefetch_for(state, &function, &spec) else {
            continue;
        };
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| format!("cannot open a channel: {e}"))?;
        if let Err(e) = declare(&channel, &spec, prefetch).await {
            tracing::error!(%function, queue = %spec.queue, error = %e, "cannot set up the trigger's queues");
            let _ = channel.close(200, "setup failed".into()).await;
            continue;
        }
        let consumer = channel
            .basic_consume(
                spec.queue.as_str().into(),
                format!("flint-{function}").into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| format!("cannot consume {}: {e}", spec.queue))?;
        tracing::info!(%function, queue = %spec.queue, prefetch, "consuming");
        let task = tokio::spawn(consume(
            state.clone(),
            function.clone(),
            spec.clone(),
            format!("{source}/{}", spec.queue),
            channel.clone(),
            consumer,
        ));
        consumers.insert(
            function,
            Consumer {
                spec,
                prefetch,
                channel,
                task,
            },
        );
    }
    Ok(())
}

/// The prefetch of a binding: its concurrency, never above the function's
/// `max_concurrency`. `None` when the function is gone.
fn prefetch_for(state: &AppState, function: &str, spec: &TriggerSpec) -> Option<u32> {
    let entry = state.table.get(function)?;
    Some(spec.concurrency.min(entry.config().max_concurrency))
}

/// Declares the queue, its delay queue and its dead-letter queue (durable).
async fn declare(channel: &Channel, spec: &TriggerSpec, prefetch: u32) -> lapin::Result<()> {
    channel
        .basic_qos(
            prefetch.min(u16::MAX as u32) as u16,
            BasicQosOptions::default(),
        )
        .await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(spec.queue.as_str().into(), durable, FieldTable::default())
        .await?;
    let mut retry_args = FieldTable::default();
    retry_args.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString("".into()),
    );
    retry_args.insert(
        "x-dead-letter-routing-key".into(),
        AMQPValue::LongString(spec.queue.as_str().into()),
    );
    channel
        .queue_declare(spec.retry_queue().as_str().into(), durable, retry_args)
        .await?;
    channel
        .queue_declare(
            spec.dead_letter_queue().as_str().into(),
            durable,
            FieldTable::default(),
        )
        .await?;
    Ok(())
}

async fn consume(
    state: Arc<AppState>,
    function: String,
    spec: TriggerSpec,
    source: String,
    channel: Channel,
    mut consumer: lapin::Consumer,
) {
    // Per-delivery tasks live in this set: stopping the consumer aborts them,
    // and their unacked messages go back to the queue.
    let mut tasks = tokio::task::JoinSet::new();
    let spec = Arc::new(spec);
    let source = Arc::new(source);
    loop {
        tokio::select! {
            next = consumer.next() => match next {
                Some(Ok(delivery)) => {
                    state.metrics.message(&function, &spec.queue, "received");
                    tasks.spawn(handle(state.clone(), function.clone(), spec.clone(), source.clone(), channel.clone(), delivery));
                }
                Some(Err(e)) => {
                    tracing::warn!(%function, error = %e, "consumer error");
                    break;
                }
                None => break,
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    while tasks.join_next().await.is_some() {}
}

fn header_str(table: Option<&FieldTable>, key: &str) -> Option<String> {
    table?.inner().get(key).and_then(amqp_to_string)
}

fn amqp_to_string(value: &AMQPValue) -> Option<String> {
    Some(match value {
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        AMQPValue::ShortString(s) => s.as_str().to_string(),
        AMQPValue::Boolean(b) => b.to_string(),
        AMQPValue::ShortShortInt(v) => v.to_string(),
        AMQPValue::ShortShortUInt(v) => v.to_string(),
        AMQPValue::ShortInt(v) => v.to_string(),
        AMQPValue::ShortUInt(v) => v.to_string(),
        AMQPValue::LongInt(v) => v.to_string(),
        AMQPValue::LongUInt(v) => v.to_string(),
        AMQPValue::LongLongInt(v) => v.to_string(),
        AMQPValue::Timestamp(v) => v.to_string(),
        _ => return None,
    })
}

fn now_rfc3339(timestamp: Option<u64>) -> String {
    let time = timestamp.map_or_else(SystemTime::now, |s| UNIX_EPOCH + Duration::from_secs(s));
    humantime::format_rfc3339_millis(time).to_string()
}

/// Builds the CloudEvents (binary mode) request for a message.
fn to_request(
    delivery: &Delivery,
    source: &str,
    message_id: &str,
    attempt: u32,
) -> http::Request<flint_runtime::HyperIncomingBody> {
    let props = &delivery.properties;
    let content_type = props
        .content_type()
        .as_ref()
        .map(|c| c.as_str().to_string());
    let mut builder = http::Request::builder()
        .method(http::Method::POST)
        .uri("http://localhost/")
        .header(ATTEMPT_HEADER, attempt.to_string());
    if let Some(ct) = &content_type {
        builder = builder.header(http::header::CONTENT_TYPE, ct.as_str());
    }
    let structured = content_type
        .as_deref()
        .is_some_and(|ct| ct.starts_with("application/cloudevents+json"));
    if !structured {
        let ce_type = props
            .kind()
            .as_ref()
            .map_or(DEFAULT_CE_TYPE.to_string(), |k| k.as_str().to_string());
        builder = builder
            .header("ce-specversion", "1.0")
            .header("ce-id", message_id)
            .header("ce-source", source)
            .header("ce-type", ce_type)
            .header("ce-time", now_rfc3339(*props.timestamp()));
    }
    if let Some(headers) = props.headers() {
        for (key, value) in headers.inner() {
            if key.as_str().starts_with("x-flint-") {
                continue;
            }
            let Some(value) = amqp_to_string(value) else {
                continue;
            };
            let name = format!("x-amqp-{}", key.as_str().to_ascii_lowercase());
            if let (Ok(name), Ok(value)) = (
                http::HeaderName::from_bytes(name.as_bytes()),
                http::HeaderValue::from_str(&value),
            ) {
                builder = builder.header(name, value);
            }
        }
    }
    let body = Full::new(Bytes::from(delivery.data.clone()))
        .map_err(|never| match never {})
        .boxed_unsync();
    builder.body(body).expect("valid request parts")
}

/// Why a message failed, for the retry and dead-letter headers.
struct Failure {
    reason: String,
    status: Option<u16>,
    message: String,
}

async fn handle(
    state: Arc<AppState>,
    function: String,
    spec: Arc<TriggerSpec>,
    source: Arc<String>,
    channel: Channel,
    delivery: Delivery,
) {
    let props = delivery.properties.clone();
    let headers = props.headers().as_ref();
    let attempt: u32 = header_str(headers, ATTEMPT_HEADER)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1);
    let message_id = props
        .message_id()
        .as_ref()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| format!("amqp-{}-{}", spec.queue, delivery.delivery_tag));

    let limit = state.config.max_request_body_bytes;
    if delivery.data.len() as u64 > limit {
        // It can never succeed: straight to the dead-letter queue.
        let failure = Failure {
            reason: "payload_too_large".into(),
            status: None,
            message: format!(
                "message body of {} bytes exceeds the limit of {limit} bytes",
                delivery.data.len()
            ),
        };
        finish(
            &state, &function, &spec, &channel, &delivery, attempt, failure, true,
        )
        .await;
        return;
    }
    let request = to_request(&delivery, &source, &message_id, attempt);
    let failure = match crate::invoke::invoke(
        &state,
        &function,
        crate::invoke::Target::Default,
        request,
    )
    .await
    {
        Ok(invoked) => {
            let status = invoked.response.status();
            let content_type = invoked
                .response
                .headers()
                .get(http::header::CONTENT_TYPE)
                .cloned();
            let body = Limited::new(invoked.response.into_body(), MAX_REPLY_BYTES)
                .collect()
                .await;
            match body {
                Ok(body) if status.is_success() => {
                    let body = body.to_bytes();
                    if let Some(reply_to) = props.reply_to() {
                        let mut reply = BasicProperties::default();
                        if let Some(id) = props.correlation_id() {
                            reply = reply.with_correlation_id(id.clone());
                        }
                        if let Some(ct) = content_type.as_ref().and_then(|c| c.to_str().ok()) {
                            reply = reply.with_content_type(ct.into());
                        }
                        if let Err(e) =
                            publish(&channel, reply_to.clone(), &body, reply, false).await
                        {
                            tracing::warn!(%function, error = %e, "reply not confirmed; the message will be redelivered");
                            requeue(&delivery).await;
                            return;
                        }
                    }
                    ack(&state, &function, &spec, &delivery, "acked").await;
                    return;
                }
                Ok(_) => Failure {
                    reason: format!("status_{}", status.as_u16()),
                    status: Some(status.as_u16()),
                    message: format!("function answered {status}"),
                },
                Err(e) => Failure {
                    reason: "response_failed".into(),
                    status: Some(status.as_u16()),
                    message: format!("reading the response failed: {e}"),
                },
            }
        }
        Err(e) => Failure {
            reason: e.code.to_string(),
            status: Some(e.status.as_u16()),
            message: e.message,
        },
    };
    finish(
        &state, &function, &spec, &channel, &delivery, attempt, failure, false,
    )
    .await;
}

/// Retries a failed message, or dead-letters it when out of retries (or
/// when `fatal`), then acks the original.
#[expect(clippy::too_many_arguments, reason = "one delivery's whole context")]
async fn finish(
    state: &AppState,
    function: &str,
    spec: &TriggerSpec,
    channel: &Channel,
    delivery: &Delivery,
    attempt: u32,
    failure: Failure,
    fatal: bool,
) {
    let mut headers = delivery.properties.headers().clone().unwrap_or_default();
    let retry = !fatal && attempt <= spec.max_retries;
    let (queue, outcome, properties) = if retry {
        headers.insert(ATTEMPT_HEADER.into(), AMQPValue::LongUInt(attempt + 1));
        let props = delivery
            .properties
            .clone()
            .with_headers(headers)
            .with_expiration(spec.retry_delay_ms.to_string().into());
        (spec.retry_queue(), "retried", props)
    } else {
        headers.insert(
            "x-flint-reason".into(),
            AMQPValue::LongString(failure.reason.as_str().into()),
        );
        headers.insert(
            "x-flint-error".into(),
            AMQPValue::LongString(failure.message.as_str().into()),
        );
        headers.insert("x-flint-attempts".into(), AMQPValue::LongUInt(attempt));
        headers.insert(
            "x-flint-function".into(),
            AMQPValue::LongString(function.into()),
        );
        if let Some(status) = failure.status {
            headers.insert("x-flint-last-status".into(), AMQPValue::ShortUInt(status));
        }
        let props = delivery.properties.clone().with_headers(headers);
        (spec.dead_letter_queue(), "dead_lettered", props)
    };
    tracing::info!(function, queue = %spec.queue, attempt, reason = %failure.reason, outcome, "message failed");
    match publish(
        channel,
        queue.as_str().into(),
        &delivery.data,
        properties,
        true,
    )
    .await
    {
        Ok(()) => ack(state, function, spec, delivery, outcome).await,
        Err(e) => {
            tracing::warn!(function, error = %e, "could not hand the message on; it will be redelivered");
            requeue(delivery).await;
        }
    }
}

/// Publishes to the default exchange and waits for the broker's confirm.
async fn publish(
    channel: &Channel,
    routing_key: ShortString,
    body: &[u8],
    properties: BasicProperties,
    mandatory: bool,
) -> Result<(), String> {
    let confirm = channel
        .basic_publish(
            "".into(),
            routing_key,
            BasicPublishOptions {
                mandatory,
                ..BasicPublishOptions::default()
            },
            body,
            properties,
        )
        .await
        .map_err(|e| e.to_string())?
        .await
        .map_err(|e| e.to_string())?;
    match confirm {
        Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
        Confirmation::Ack(Some(_)) => Err("unroutable: the broker returned the message".into()),
        Confirmation::Nack(_) => Err("the broker refused the message".into()),
    }
}

async fn ack(
    state: &AppState,
    function: &str,
    spec: &TriggerSpec,
    delivery: &Delivery,
    outcome: &str,
) {
    match delivery.ack(BasicAckOptions::default()).await {
        Ok(true) => state.metrics.message(function, &spec.queue, outcome),
        // The channel is gone: the broker will redeliver, so this does not count.
        Ok(false) => tracing::warn!(
            function,
            "ack not delivered (channel closed); the broker will redeliver"
        ),
        Err(e) => tracing::warn!(function, error = %e, "ack failed; the broker will redeliver"),
    }
}

async fn requeue(delivery: &Delivery) {
    let options = BasicNackOptions {
        requeue: true,
        ..BasicNackOptions::default()
    };
    if let Err(e) = delivery.nack(options).await {
        tracing::warn!(error = %e, "nack failed; the broker will redeliver when the channel closes");
    }
}

/// Publishes an invocation to a function's queue (`POST /async/{name}`);
/// returns the message id once the broker confirmed it.
pub async fn enqueue(
    state: &AppState,
    queue: &str,
    body: &[u8],
    content_type: Option<&str>,
) -> Result<String, String> {
    let publisher = state.triggers.publisher.lock().await;
    let Some(channel) = publisher.as_ref() else {
        return Err("not connected to RabbitMQ".into());
    };
    let id = format!(
        "async-{}",
        flint_runtime::format_request_id(flint_runtime::next_request_id())
    );
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let mut properties = BasicProperties::default()
        .with_message_id(id.as_str().into())
        .with_delivery_mode(2)
        .with_timestamp(now);
    if let Some(ct) = content_type {
        properties = properties.with_content_type(ct.into());
    }
    publish(channel, queue.into(), body, properties, true).await?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_and_redaction_hide_credentials() {
        let url = "amqp://guest:secret@127.0.0.1:5672/%2f?heartbeat=10";
        assert_eq!(source_prefix(url), "amqp://127.0.0.1:5672/%2f");
        assert_eq!(source_prefix("amqp://localhost"), "amqp://localhost/%2f");
        assert!(!redact(url).contains("secret"));
    }
}
