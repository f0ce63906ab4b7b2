//! The RabbitMQ adapter: functions bound to queues.
//!
//! The bindings live in the core; this adapter makes them real. A
//! supervisor keeps one connection up and one consumer per binding
//! ([`supervisor`]); each message becomes a CloudEvents request
//! ([`cloudevents`]) on the core's one invoke path, and its function's
//! answer decides its fate ([`outcome`]: ack, reply, retry, dead-letter).
//! [`AmqpBroker`] is the core's [`Broker`] port: `POST /async/NAME`
//! publishes through it.

mod acks;
mod cloudevents;
mod consumer;
mod outcome;
mod supervisor;

pub use cloudevents::{ATTEMPT_HEADER, DEFAULT_CE_TYPE};

use crate::core::{Broker, BrokerState, Control};
use flint_spec::TriggerSpec;
use futures::future::BoxFuture;
use lapin::{BasicProperties, Channel};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The broker connection as the core sees it: up or down, and a confirmed
/// publishing channel while up.
pub struct AmqpBroker {
    connected: AtomicBool,
    publisher: tokio::sync::Mutex<Option<Channel>>,
    /// The bindings this node consumes now, by function.
    consuming: watch::Sender<HashMap<String, TriggerSpec>>,
}

impl AmqpBroker {
    fn set_connected(&self, control: &Control, connected: bool) {
        self.connected.store(connected, Ordering::Relaxed);
        control.metrics().set_broker_connected(connected);
    }
}

impl Broker for AmqpBroker {
    fn state(&self) -> BrokerState {
        if self.connected.load(Ordering::Relaxed) {
            BrokerState::Up
        } else {
            BrokerState::Down
        }
    }

    fn publish<'a>(
        &'a self,
        queue: &'a str,
        body: &'a [u8],
        content_type: Option<&'a str>,
    ) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            // Cloned out of the lock: a publish waiting for its confirm must
            // not hold up the others.
            let channel = self.publisher.lock().await.clone();
            let Some(channel) = channel else {
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
            outcome::publish(&channel, queue.into(), body, properties, true).await?;
            Ok(id)
        })
    }

    fn consuming<'a>(&'a self, function: &'a str, spec: &'a TriggerSpec) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let mut consuming = self.consuming.subscribe();
            let _ = consuming
                .wait_for(|bindings| bindings.get(function) == Some(spec))
                .await;
        })
    }
}

/// The running adapter: its supervisor and the signal that drains it.
pub struct Running {
    stop: watch::Sender<bool>,
    supervisor: JoinHandle<()>,
}

impl Running {
    /// Stops taking messages, lets the ones in flight finish and settle,
    /// and closes the connection; what is still running after `grace` is
    /// cut off, and its messages go back to their queues (unacked).
    pub async fn drain(self, grace: Duration) {
        let _ = self.stop.send(true);
        let mut supervisor = self.supervisor;
        if tokio::time::timeout(grace, &mut supervisor).await.is_err() {
            tracing::warn!(
                "grace period over; queue messages still in flight go back to their queues"
            );
            supervisor.abort();
        }
    }
}

/// Connects the core to the broker at `url`: installs the [`Broker`] port
/// and starts the supervisor, which runs until [`Running::drain`].
pub fn start(control: &Arc<Control>, url: String) -> Running {
    let broker = Arc::new(AmqpBroker {
        connected: AtomicBool::new(false),
        publisher: tokio::sync::Mutex::new(None),
        consuming: watch::Sender::new(HashMap::new()),
    });
    control.set_broker(broker.clone());
    let (stop, stopping) = watch::channel(false);
    let supervisor = tokio::spawn(supervisor::supervise(
        control.clone(),
        broker,
        url,
        stopping,
    ));
    Running { stop, supervisor }
}
