//! The outcome policy of a message: what its function's answer means for
//! it (ack, reply, retry or dead-letter), and the confirmed publishes that
//! carry it out.
//!
//! A 2xx answer acks (after publishing the body to `reply_to`, if set, with
//! the same `correlation_id`). Anything else is published to
//! `<queue>.retry`, a durable queue whose messages expire after
//! `retry_delay_ms` and dead-letter back into the queue, with the attempt
//! count in `x-flint-attempt`; after `max_retries` retries, or at once for a
//! message that can never succeed, the message goes to the dead-letter
//! queue with `x-flint-reason`, `x-flint-attempts`, `x-flint-error` and the
//! function's last status; so does, at once, a message that cannot be a
//! request at all (`bad_message`). Every publish is confirmed by the broker
//! before the original is acked, so a crash at any moment loses nothing. A
//! publish that fails is tried again with backoff, and a message that still
//! cannot be settled goes back to its queue after a pause, never in a hot
//! loop.

use super::acks::Acks;
use super::cloudevents::ATTEMPT_HEADER;
use crate::core::CoreError;
use flint_spec::TriggerSpec;
use lapin::message::Delivery;
use lapin::options::{BasicNackOptions, BasicPublishOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Confirmation};
use std::time::Duration;

/// Longest wait for the broker to confirm a publish.
pub const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);
/// Tries of a publish that fails (a reply, a retry, a dead letter) before
/// the message goes back to its queue.
const PUBLISH_TRIES: u32 = 3;
/// Wait after the first failed try; doubles after each.
const PUBLISH_BACKOFF: Duration = Duration::from_millis(200);
/// Wait before a message that could not be settled goes back to its queue,
/// so that it does not come straight back in a hot loop.
const REQUEUE_DELAY: Duration = Duration::from_secs(1);

/// Why a message failed.
pub struct Failure {
    /// A stable reason: an error code of the contract, or `status_<N>`.
    pub reason: String,
    /// The function's answer, when it answered.
    pub status: Option<u16>,
    /// What happened, for people.
    pub message: String,
    /// Whether retrying cannot help (straight to the dead-letter queue).
    pub fatal: bool,
}

impl Failure {
    /// The function answered with a non-2xx status.
    pub fn status(status: http::StatusCode) -> Self {
        Self {
            reason: format!("status_{}", status.as_u16()),
            status: Some(status.as_u16()),
            message: format!("function answered {status}"),
            fatal: false,
        }
    }

    /// The message cannot be turned into a request: retrying cannot help.
    pub fn bad_message(why: String) -> Self {
        Self {
            reason: "bad_message".into(),
            status: None,
            message: why,
            fatal: true,
        }
    }

    /// The delivery task panicked; the message gets the retry path.
    pub fn panicked() -> Self {
        Self {
            reason: "panic".into(),
            status: None,
            message: "the delivery panicked in Flint; see the server log".into(),
            fatal: false,
        }
    }

    /// The call failed before or while the function answered.
    pub fn error(error: &CoreError) -> Self {
        Self {
            reason: error.code().to_string(),
            status: None,
            message: error.to_string(),
            // A body over the limit is over it on every attempt.
            fatal: matches!(error, CoreError::TooLarge { .. }),
        }
    }
}

/// What the consumer needs to settle one delivery.
pub struct Settle<'a> {
    /// The function.
    pub function: &'a str,
    /// Its binding.
    pub spec: &'a TriggerSpec,
    /// The channel the message came on.
    pub channel: &'a Channel,
    /// Where its ack goes, to be sent with others.
    pub acks: &'a Acks,
    /// The message.
    pub delivery: &'a Delivery,
    /// Its attempt number.
    pub attempt: u32,
}

impl Settle<'_> {
    /// Retries a failed message, or dead-letters it when out of retries (or
    /// when retrying cannot help), then acks the original.
    pub async fn fail(&self, failure: Failure) {
        let delivery = self.delivery;
        // The broker's redelivery count is already in `self.attempt`; a copy
        // of it travelling on would count the same redeliveries again.
        let mut headers = FieldTable::default();
        for (key, value) in delivery.properties.headers().iter().flat_map(|h| h.inner()) {
            if key.as_str() != "x-delivery-count" {
                headers.insert(key.clone(), value.clone());
            }
        }
        let retry = !failure.fatal && self.attempt <= self.spec.max_retries;
        let (queue, outcome, properties) = if retry {
            headers.insert(ATTEMPT_HEADER.into(), AMQPValue::LongUInt(self.attempt + 1));
            let props = delivery
                .properties
                .clone()
                .with_headers(headers)
                .with_expiration(self.spec.retry_delay_ms.to_string().into());
            (self.spec.retry_queue(), "retried", props)
        } else {
            headers.insert(
                "x-flint-reason".into(),
                AMQPValue::LongString(failure.reason.as_str().into()),
            );
            headers.insert(
                "x-flint-error".into(),
                AMQPValue::LongString(failure.message.as_str().into()),
            );
            headers.insert("x-flint-attempts".into(), AMQPValue::LongUInt(self.attempt));
            headers.insert(
                "x-flint-function".into(),
                AMQPValue::LongString(self.function.into()),
            );
            if let Some(status) = failure.status {
                headers.insert("x-flint-last-status".into(), AMQPValue::ShortUInt(status));
            }
            let props = delivery.properties.clone().with_headers(headers);
            (self.spec.dead_letter_queue(), "dead_lettered", props)
        };
        tracing::info!(function = self.function, queue = %self.spec.queue, attempt = self.attempt, reason = %failure.reason, outcome, "message failed");
        match self
            .publish_retrying(queue.as_str().into(), &delivery.data, properties, true)
            .await
        {
            Ok(()) => self.ack(outcome),
            Err(e) => {
                tracing::warn!(function = self.function, error = %e, "could not hand the message on; it will be redelivered");
                self.requeue().await;
            }
        }
    }

    /// Publishes the answer to `reply_to` (when the message asks for one),
    /// then acks.
    pub async fn succeed(&self, body: &[u8], content_type: Option<&str>) {
        let props = &self.delivery.properties;
        if let Some(reply_to) = props.reply_to() {
            let mut reply = BasicProperties::default();
            if let Some(id) = props.correlation_id() {
                reply = reply.with_correlation_id(id.clone());
            }
            if let Some(ct) = content_type {
                reply = reply.with_content_type(ct.into());
            }
            if let Err(e) = self
                .publish_retrying(reply_to.clone(), body, reply, false)
                .await
            {
                tracing::warn!(function = self.function, error = %e, "reply not confirmed; the message will be redelivered");
                self.requeue().await;
                return;
            }
        }
        self.ack("acked");
    }

    /// [`publish`], tried again with backoff when it fails.
    async fn publish_retrying(
        &self,
        routing_key: ShortString,
        body: &[u8],
        properties: BasicProperties,
        mandatory: bool,
    ) -> Result<(), String> {
        let mut wait = PUBLISH_BACKOFF;
        let mut tries = 1;
        loop {
            let sent = publish(
                self.channel,
                routing_key.clone(),
                body,
                properties.clone(),
                mandatory,
            )
            .await;
            match sent {
                Err(e) if tries < PUBLISH_TRIES => {
                    tracing::warn!(function = self.function, error = %e, retry_in_ms = wait.as_millis() as u64, "publish failed; trying again");
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                    tries += 1;
                }
                other => return other,
            }
        }
    }

    /// Marks the message done: the consumer acks it (with others) and then
    /// counts `outcome`.
    fn ack(&self, outcome: &'static str) {
        self.acks.done(self.delivery.delivery_tag, outcome);
    }

    /// Hands the message back to its queue, after a pause: it comes back at
    /// once, and whatever failed may not have mended yet.
    pub async fn requeue(&self) {
        tokio::time::sleep(REQUEUE_DELAY).await;
        let options = BasicNackOptions {
            requeue: true,
            ..BasicNackOptions::default()
        };
        if let Err(e) = self.delivery.nack(options).await {
            tracing::warn!(error = %e, "nack failed; the broker will redeliver when the channel closes");
        }
        self.acks.forget(self.delivery.delivery_tag);
    }
}

/// Publishes to the default exchange and waits for the broker's confirm, up
/// to [`PUBLISH_TIMEOUT`]: a broker that stops confirming (a memory alarm, a
/// black-holed connection) never holds a caller for good.
pub async fn publish(
    channel: &Channel,
    routing_key: ShortString,
    body: &[u8],
    properties: BasicProperties,
    mandatory: bool,
) -> Result<(), String> {
    tokio::time::timeout(
        PUBLISH_TIMEOUT,
        confirmed(channel, routing_key, body, properties, mandatory),
    )
    .await
    .unwrap_or_else(|_| {
        Err(format!(
            "RabbitMQ did not confirm the message within {} s; retry shortly",
            PUBLISH_TIMEOUT.as_secs()
        ))
    })
}

async fn confirmed(
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
