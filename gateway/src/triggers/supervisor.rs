//! The supervisor: keeps one connection to RabbitMQ up (reconnecting with
//! backoff), one consumer per binding in step with the core's bindings, and
//! the publishing channel of [`AmqpBroker`].

use super::consumer::{self, consume};
use super::{AmqpBroker, cloudevents};
use crate::core::Control;
use flint_spec::TriggerSpec;
use futures::StreamExt;
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, ConfirmSelectOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// First reconnect delay; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often a connected supervisor checks the connection and bindings.
const CHECK_INTERVAL: Duration = Duration::from_millis(500);

/// The broker URL with its credentials hidden, for logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}***{}", &url[..s + 3], &url[at..]),
        _ => url.to_string(),
    }
}

struct Consumer {
    function: String,
    spec: TriggerSpec,
    prefetch: u32,
    channel: Channel,
    task: JoinHandle<()>,
}

impl Consumer {
    /// Stops consuming at once; closing the channel hands every unacked
    /// message back to the queue.
    async fn stop(self) {
        self.task.abort();
        let _ = self.channel.close(200, "consumer stopped".into()).await;
    }

    /// Stops taking messages (the broker cancels the consumer) and waits
    /// until the ones in flight are settled, so none comes again.
    async fn drain(self) {
        let tag = consumer::tag(&self.function);
        if let Err(e) = self
            .channel
            .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
            .await
        {
            tracing::warn!(function = %self.function, error = %e, "could not cancel the consumer");
        }
        let _ = self.task.await;
        let _ = self.channel.close(200, "consumer drained".into()).await;
    }
}

/// Keeps the broker connection and the consumers up until `stop` turns
/// true; then drains the consumers and closes the connection.
pub async fn supervise(
    control: Arc<Control>,
    broker: Arc<AmqpBroker>,
    url: String,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = MIN_BACKOFF;
    while !*stop.borrow() {
        // A name per process lets operators (and tests) find this
        // connection in `rabbitmqctl list_connections`.
        let properties = ConnectionProperties::default()
            .with_connection_name(format!("flint serve pid {}", std::process::id()).into());
        match Connection::connect(&url, properties).await {
            Ok(connection) => {
                tracing::info!(broker = %redact(&url), "connected to RabbitMQ");
                backoff = MIN_BACKOFF;
                let error = run_connected(&control, &broker, &url, &connection, &mut stop).await;
                broker.set_connected(&control, false);
                *broker.publisher.lock().await = None;
                if *stop.borrow() {
                    let _ = connection.close(200, "shutting down".into()).await;
                    tracing::info!("queue consumers drained");
                    return;
                }
                tracing::warn!(error = %error, "lost the RabbitMQ connection; reconnecting");
                let _ = connection.close(200, "reconnecting".into()).await;
            }
            Err(e) => {
                tracing::warn!(broker = %redact(&url), error = %e, retry_in_ms = backoff.as_millis() as u64, "cannot connect to RabbitMQ")
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Runs consumers for the current bindings until the connection fails;
/// returns why it did.
async fn run_connected(
    control: &Arc<Control>,
    broker: &AmqpBroker,
    url: &str,
    connection: &Connection,
    stop: &mut watch::Receiver<bool>,
) -> String {
    let publisher = match open_publisher(connection).await {
        Ok(channel) => channel,
        Err(e) => return format!("cannot open the publishing channel: {e}"),
    };
    *broker.publisher.lock().await = Some(publisher);
    broker.set_connected(control, true);
    let changed = control.bindings_changed();
    let mut events = connection.events_listener();
    let mut consumers: HashMap<String, Consumer> = HashMap::new();
    let source = cloudevents::source_prefix(url);
    let result = loop {
        let reconciled = reconcile(control, connection, &source, &mut consumers).await;
        broker.consuming.send_replace(
            consumers
                .iter()
                .map(|(f, c)| (f.clone(), c.spec.clone()))
                .collect(),
        );
        if let Err(e) = reconciled {
            break e;
        }
        tokio::select! {
            event = events.next() => match event {
                Some(lapin::Event::Error(e)) => break e.to_string(),
                None => break "connection closed".to_string(),
                Some(_) => {}
            },
            () = changed.notified() => {}
            () = tokio::time::sleep(CHECK_INTERVAL) => {}
            _ = stop.changed() => break "shutting down".to_string(),
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
    broker.consuming.send_replace(HashMap::new());
    if *stop.borrow() {
        futures::future::join_all(consumers.into_values().map(Consumer::drain)).await;
    } else {
        for (_, consumer) in consumers {
            consumer.stop().await;
        }
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
    control: &Arc<Control>,
    connection: &Connection,
    source: &str,
    consumers: &mut HashMap<String, Consumer>,
) -> Result<(), String> {
    let wanted: HashMap<String, TriggerSpec> = control.bindings().into_iter().collect();
    let stale: Vec<String> = consumers
        .iter()
        .filter(|(f, c)| {
            wanted.get(*f) != Some(&c.spec) || Some(c.prefetch) != control.prefetch(f, &c.spec)
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
        let Some(prefetch) = control.prefetch(&function, &spec) else {
            continue;
        };
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| format!("cannot open a channel: {e}"))?;
        if let Err(e) = consumer::declare(connection, &channel, &spec, prefetch).await {
            tracing::error!(%function, queue = %spec.queue, error = %e, "cannot set up the trigger's queues");
            let _ = channel.close(200, "setup failed".into()).await;
            continue;
        }
        let stream = channel
            .basic_consume(
                spec.queue.as_str().into(),
                consumer::tag(&function).into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| format!("cannot consume {}: {e}", spec.queue))?;
        tracing::info!(%function, queue = %spec.queue, prefetch, "consuming");
        let task = tokio::spawn(consume(
            control.clone(),
            function.clone(),
            spec.clone(),
            format!("{source}/{}", spec.queue),
            channel.clone(),
            prefetch,
            stream,
        ));
        consumers.insert(
            function.clone(),
            Consumer {
                function,
                spec,
                prefetch,
                channel,
                task,
            },
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redaction_hides_credentials() {
        let url = "amqp://guest:secret@127.0.0.1:5672/%2f?heartbeat=10";
        assert!(!redact(url).contains("secret"));
        assert!(redact(url).contains("127.0.0.1:5672"));
    }
}
