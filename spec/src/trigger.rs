//! A function's queue trigger binding and its validation.

use serde::{Deserialize, Serialize};

/// Default messages processed at once per trigger (also the prefetch).
pub const DEFAULT_CONCURRENCY: u32 = 8;
/// Largest trigger concurrency.
pub const MAX_CONCURRENCY: u32 = 1000;
/// Default retries after the first attempt before dead-lettering.
pub const DEFAULT_MAX_RETRIES: u32 = 5;
/// Largest `max_retries`.
pub const MAX_RETRIES: u32 = 100;
/// Default delay before a failed message is tried again.
pub const DEFAULT_RETRY_DELAY_MS: u64 = 1000;
/// Largest retry delay (1 hour).
pub const MAX_RETRY_DELAY_MS: u64 = 3_600_000;

fn default_concurrency() -> u32 {
    DEFAULT_CONCURRENCY
}
fn default_max_retries() -> u32 {
    DEFAULT_MAX_RETRIES
}
fn default_retry_delay_ms() -> u64 {
    DEFAULT_RETRY_DELAY_MS
}

/// Binds a function to a RabbitMQ queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerSpec {
    /// The queue to consume (declared durable if missing).
    pub queue: String,
    /// Messages processed at once (the consumer's prefetch); never more
    /// than the function's `max_concurrency`.
    #[serde(default = "default_concurrency")]
    pub concurrency: u32,
    /// Retries after the first attempt; then the message is dead-lettered.
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// Delay before each retry, in milliseconds.
    #[serde(default = "default_retry_delay_ms")]
    pub retry_delay_ms: u64,
    /// Dead-letter queue (default `<queue>.dlq`).
    #[serde(default)]
    pub dead_letter: Option<String>,
}

impl TriggerSpec {
    /// The dead-letter queue.
    pub fn dead_letter_queue(&self) -> String {
        self.dead_letter
            .clone()
            .unwrap_or_else(|| format!("{}.dlq", self.queue))
    }

    /// The delay queue that holds messages between attempts.
    pub fn retry_queue(&self) -> String {
        format!("{}.retry", self.queue)
    }

    /// Checks every field; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        validate_queue("queue", &self.queue)?;
        if let Some(dlq) = &self.dead_letter {
            validate_queue("dead_letter", dlq)?;
            if dlq == &self.queue {
                return Err("invalid `dead_letter`: must differ from `queue`".into());
            }
        }
        if !(1..=MAX_CONCURRENCY).contains(&self.concurrency) {
            return Err(format!(
                "invalid `concurrency`: {} is out of range; allowed 1..={MAX_CONCURRENCY}",
                self.concurrency
            ));
        }
        if self.max_retries > MAX_RETRIES {
            return Err(format!(
                "invalid `max_retries`: {} is out of range; allowed 0..={MAX_RETRIES}",
                self.max_retries
            ));
        }
        if self.retry_delay_ms > MAX_RETRY_DELAY_MS {
            return Err(format!(
                "invalid `retry_delay_ms`: {} is out of range; allowed 0..={MAX_RETRY_DELAY_MS}",
                self.retry_delay_ms
            ));
        }
        Ok(())
    }
}

fn validate_queue(field: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && !name.starts_with("amq.")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid `{field}`: {name:?}; use 1-200 characters of letters, digits, `-_.:`, not starting with `amq.`"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> Result<TriggerSpec, String> {
        let spec: TriggerSpec = serde_json::from_str(json).map_err(|e| e.to_string())?;
        spec.validate().map(|()| spec)
    }

    #[test]
    fn defaults_and_derived_queues() {
        let s = spec(r#"{"queue":"orders"}"#).unwrap();
        assert_eq!(s.concurrency, DEFAULT_CONCURRENCY);
        assert_eq!(s.dead_letter_queue(), "orders.dlq");
        assert_eq!(s.retry_queue(), "orders.retry");
    }

    #[test]
    fn invalid_specs_name_the_field() {
        for (json, field) in [
            (r#"{"queue":""}"#, "queue"),
            (r#"{"queue":"amq.x"}"#, "queue"),
            (r#"{"queue":"a b"}"#, "queue"),
            (r#"{"queue":"q","concurrency":0}"#, "concurrency"),
            (r#"{"queue":"q","max_retries":101}"#, "max_retries"),
            (
                r#"{"queue":"q","retry_delay_ms":3600001}"#,
                "retry_delay_ms",
            ),
            (r#"{"queue":"q","dead_letter":"q"}"#, "dead_letter"),
            (r#"{"queue":"q","bogus":1}"#, "bogus"),
        ] {
            let err = spec(json).unwrap_err();
            assert!(err.contains(field), "{json}: {err}");
        }
    }
}
