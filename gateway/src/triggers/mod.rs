//! Queue triggers: functions bound to RabbitMQ queues.
//!
//! [`Triggers`] holds the bindings (mirrored from the registry) and, when a
//! broker is configured, the state of the connection that [`amqp`]'s
//! supervisor keeps up. Messages reach functions through the same invoke
//! path as HTTP requests ([`crate::invoke`]).

pub mod amqp;
mod spec;

pub use spec::*;

use std::collections::BTreeMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::Notify;

/// Whether queue triggers can run now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerState {
    /// No `--amqp-url`: Flint runs without queue triggers.
    Disabled,
    /// Connected to the broker.
    Up,
    /// Configured but not connected (reconnecting with backoff).
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

/// Trigger bindings and the broker connection state.
pub struct Triggers {
    bindings: RwLock<BTreeMap<String, TriggerSpec>>,
    /// Wakes the supervisor when bindings change.
    pub(crate) changed: Notify,
    amqp_url: Option<String>,
    connected: AtomicBool,
    pub(crate) publisher: tokio::sync::Mutex<Option<lapin::Channel>>,
}

impl Triggers {
    /// Bindings restored from the registry; `amqp_url` enables the broker.
    pub fn new(amqp_url: Option<String>, bindings: Vec<(String, TriggerSpec)>) -> Self {
        Self {
            bindings: RwLock::new(bindings.into_iter().collect()),
            changed: Notify::new(),
            amqp_url,
            connected: AtomicBool::new(false),
            publisher: tokio::sync::Mutex::new(None),
        }
    }

    /// The broker URL, if triggers are enabled.
    pub fn amqp_url(&self) -> Option<&str> {
        self.amqp_url.as_deref()
    }

    /// All bindings by function.
    pub fn list(&self) -> Vec<(String, TriggerSpec)> {
        self.bindings
            .read()
            .unwrap()
            .iter()
            .map(|(f, s)| (f.clone(), s.clone()))
            .collect()
    }

    /// A function's binding.
    pub fn get(&self, function: &str) -> Option<TriggerSpec> {
        self.bindings.read().unwrap().get(function).cloned()
    }

    /// Sets or removes a function's binding; consumers follow at once.
    pub fn set(&self, function: &str, spec: Option<TriggerSpec>) {
        {
            let mut bindings = self.bindings.write().unwrap();
            match spec {
                Some(spec) => bindings.insert(function.to_string(), spec),
                None => bindings.remove(function),
            };
        }
        self.changed.notify_one();
    }

    /// The broker connection state.
    pub fn state(&self) -> BrokerState {
        match (&self.amqp_url, self.connected.load(Ordering::Relaxed)) {
            (None, _) => BrokerState::Disabled,
            (Some(_), true) => BrokerState::Up,
            (Some(_), false) => BrokerState::Down,
        }
    }

    pub(crate) fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Ordering::Relaxed);
    }
}
