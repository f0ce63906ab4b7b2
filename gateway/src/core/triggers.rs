//! Queue triggers in the core: the bindings (mirrored from the store), the
//! [`Broker`] port a queue adapter provides, and the operations on both.

use super::{Control, CoreError, CoreResult};
use crate::store::Change;
use flint_spec::TriggerSpec;
use futures::future::BoxFuture;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use tokio::sync::Notify;

/// How long setting a trigger waits for this node to consume its queue.
const CONSUMING_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Whether queue triggers can run now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerState {
    /// No broker configured: Flint runs without queue triggers.
    Disabled,
    /// Connected to the broker.
    Up,
    /// Configured but not connected (reconnecting).
    Down,
}

impl BrokerState {
    /// Lowercase name for APIs and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disabled => "disabled",
            Self::Up => "up",
            Self::Down => "down",
        }
    }
}

/// What the core needs of a queue broker; the AMQP adapter provides it.
pub trait Broker: Send + Sync {
    /// Whether the broker is reachable now.
    fn state(&self) -> BrokerState;
    /// Publishes an invocation to `queue`; the message id once the broker
    /// confirmed it, or why it could not.
    fn publish<'a>(
        &'a self,
        queue: &'a str,
        body: &'a [u8],
        content_type: Option<&'a str>,
    ) -> BoxFuture<'a, Result<String, String>>;
    /// Waits until this node consumes `function`'s queue as `spec` says (its
    /// queues declared, so that a publish to it is routed).
    fn consuming<'a>(&'a self, function: &'a str, spec: &'a TriggerSpec) -> BoxFuture<'a, ()>;
}

/// One binding as shown to callers.
#[derive(Debug, Clone, Serialize)]
pub struct TriggerBinding {
    /// The function.
    pub function: String,
    /// Its queue.
    pub queue: String,
    /// Messages handled at once.
    pub concurrency: u32,
    /// Retries before dead-lettering.
    pub max_retries: u32,
    /// Delay between attempts.
    pub retry_delay_ms: u64,
    /// Where messages go after the last retry.
    pub dead_letter: String,
}

impl TriggerBinding {
    fn new(function: &str, spec: &TriggerSpec) -> Self {
        Self {
            function: function.to_string(),
            queue: spec.queue.clone(),
            concurrency: spec.concurrency,
            max_retries: spec.max_retries,
            retry_delay_ms: spec.retry_delay_ms,
            dead_letter: spec.dead_letter_queue(),
        }
    }
}

/// The bindings of this server, by function, and a signal for consumers
/// to follow their changes.
#[derive(Default)]
pub(super) struct Bindings {
    by_function: RwLock<BTreeMap<String, TriggerSpec>>,
    changed: Arc<Notify>,
}

impl Bindings {
    pub fn list(&self) -> Vec<(String, TriggerSpec)> {
        let bindings = self.by_function.read().unwrap();
        bindings
            .iter()
            .map(|(f, s)| (f.clone(), s.clone()))
            .collect()
    }

    pub fn get(&self, function: &str) -> Option<TriggerSpec> {
        self.by_function.read().unwrap().get(function).cloned()
    }

    pub fn set(&self, function: &str, spec: Option<TriggerSpec>) {
        {
            let mut bindings = self.by_function.write().unwrap();
            match spec {
                Some(spec) => bindings.insert(function.to_string(), spec),
                None => bindings.remove(function),
            };
        }
        self.changed.notify_one();
    }

    pub fn replace(&self, all: Vec<(String, TriggerSpec)>) {
        *self.by_function.write().unwrap() = all.into_iter().collect();
        self.changed.notify_one();
    }
}

impl Control {
    /// Installs the queue broker (the AMQP adapter does, at start).
    pub fn set_broker(&self, broker: Arc<dyn Broker>) {
        *self.s.broker.write().unwrap() = Some(broker);
    }

    /// The broker's state (`Disabled` without one).
    pub fn broker_state(&self) -> BrokerState {
        self.s
            .broker
            .read()
            .unwrap()
            .as_ref()
            .map_or(BrokerState::Disabled, |b| b.state())
    }

    /// Every binding, by function.
    pub fn bindings(&self) -> Vec<(String, TriggerSpec)> {
        self.s.bindings.list()
    }

    /// Resolves when bindings change (consumers follow them).
    pub fn bindings_changed(&self) -> Arc<Notify> {
        self.s.bindings.changed.clone()
    }

    /// Messages a binding of `function` may have in flight on this node:
    /// its concurrency, never above the function's `max_concurrency` nor
    /// the node's instance slots. Each node of a cluster consumes with its
    /// own prefetch, so the broker hands a node no more than it can run.
    /// `None` when the function is gone.
    pub fn prefetch(&self, function: &str, spec: &TriggerSpec) -> Option<u32> {
        let entry = self.s.table.get(function)?;
        Some(
            spec.concurrency
                .min(entry.config().max_concurrency)
                .min(self.s.config.max_instances),
        )
    }

    /// Every binding as shown to callers.
    pub fn list_triggers(&self) -> Vec<TriggerBinding> {
        self.s
            .bindings
            .list()
            .iter()
            .map(|(f, s)| TriggerBinding::new(f, s))
            .collect()
    }

    /// A function's binding.
    pub fn trigger(&self, name: &str) -> CoreResult<TriggerBinding> {
        self.entry(name)?;
        let spec = self
            .s
            .bindings
            .get(name)
            .ok_or_else(|| CoreError::TriggerNotFound(name.into()))?;
        Ok(TriggerBinding::new(name, &spec))
    }

    /// Binds a function to a queue (replacing its binding).
    pub async fn set_trigger(&self, name: &str, spec: TriggerSpec) -> CoreResult<TriggerBinding> {
        spec.validate().map_err(CoreError::InvalidTrigger)?;
        let writing = self.s.writes.lock().await;
        self.entry(name)?;
        let binding = TriggerBinding::new(name, &spec);
        let outcomes = self
            .write(
                vec![Change::SetTrigger {
                    function: name.into(),
                    spec: Some(spec.clone()),
                }],
                &Default::default(),
            )
            .await?;
        if !outcomes[0].applied() {
            return Err(CoreError::FunctionNotFound(name.into()));
        }
        tracing::info!(function = name, queue = %binding.queue, "trigger set");
        drop(writing);
        self.await_consuming(name, &spec).await;
        Ok(binding)
    }

    /// Waits (bounded) until this node consumes the queue of a binding just
    /// stored, so that an `/async` call right after is routed. A broker that
    /// is down gets the binding when it is back.
    pub(crate) async fn await_consuming(&self, name: &str, spec: &TriggerSpec) {
        let broker = self.s.broker.read().unwrap().clone();
        if let Some(broker) = broker
            && broker.state() == BrokerState::Up
            && tokio::time::timeout(CONSUMING_WAIT, broker.consuming(name, spec))
                .await
                .is_err()
        {
            tracing::warn!(function = name, queue = %spec.queue, "the trigger is stored, but its queue is not consumed yet");
        }
    }

    /// Removes a function's binding.
    pub async fn remove_trigger(&self, name: &str) -> CoreResult<()> {
        let _writing = self.s.writes.lock().await;
        self.entry(name)?;
        let outcomes = self
            .write(
                vec![Change::SetTrigger {
                    function: name.into(),
                    spec: None,
                }],
                &Default::default(),
            )
            .await?;
        if !outcomes[0].applied() {
            return Err(CoreError::TriggerNotFound(name.into()));
        }
        Ok(())
    }

    /// Queues an invocation of `name` on its trigger's queue; returns the
    /// message id and the queue once the broker confirmed it.
    pub async fn enqueue(
        &self,
        name: &str,
        body: &[u8],
        content_type: Option<&str>,
    ) -> CoreResult<(String, String)> {
        self.entry(name)?;
        let spec = self
            .s
            .bindings
            .get(name)
            .ok_or_else(|| CoreError::TriggerNotFound(name.into()))?;
        self.s.limits.request_body.check_len(body.len())?;
        let broker = self.s.broker.read().unwrap().clone();
        let broker = match broker {
            Some(broker) if broker.state() == BrokerState::Up => broker,
            Some(_) => {
                return Err(CoreError::BrokerUnavailable(
                    "RabbitMQ is unreachable; retry shortly".into(),
                ));
            }
            None => {
                return Err(CoreError::BrokerDisabled(
                    "queue triggers are disabled; start flint serve with --amqp-url".into(),
                ));
            }
        };
        let id = broker
            .publish(&spec.queue, body, content_type)
            .await
            .map_err(CoreError::BrokerUnavailable)?;
        Ok((id, spec.queue))
    }
}
