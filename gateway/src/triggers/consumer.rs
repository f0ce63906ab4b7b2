//! One consumer per binding: it declares the binding's queues, takes
//! messages up to its prefetch, and runs each through the core's invoke
//! path like an HTTP request, then settles it by the outcome policy.
//!
//! Delivery is at least once: a message is acked only after its outcome is
//! safely handled, so a crash may deliver it again and functions should be
//! idempotent on `ce-id`.

use super::acks::Acks;
use super::cloudevents;
use super::outcome::{Failure, Settle};
use crate::core::{Control, Invoker, Target};
use flint_spec::TriggerSpec;
use futures::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::{BasicQosOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// Deliveries of one message that the broker allows before it dead-letters
/// it (quorum queues Flint declares): a message that kills the process, or
/// that can never be settled, stops coming back after this many.
pub const DELIVERY_LIMIT: i64 = 5;

/// Declares the queue, its delay queue and its dead-letter queue (durable)
/// and sets the channel's prefetch.
///
/// A queue that does not exist yet is declared as a quorum queue with
/// [`DELIVERY_LIMIT`] and the dead-letter queue as its dead-letter target,
/// so the limit holds across crashes. A queue that exists is used as it was
/// declared: redeclaring it with other arguments would fail, and a classic
/// queue keeps working (without a broker-side delivery limit).
pub async fn declare(
    connection: &Connection,
    channel: &Channel,
    spec: &TriggerSpec,
    prefetch: u32,
) -> lapin::Result<()> {
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
    if exists(connection, &spec.queue).await? {
        tracing::info!(queue = %spec.queue, "the queue exists; consuming it as it was declared");
    } else {
        let mut quorum = FieldTable::default();
        quorum.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
        quorum.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongLongInt(DELIVERY_LIMIT),
        );
        quorum.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString("".into()),
        );
        quorum.insert(
            "x-dead-letter-routing-key".into(),
            AMQPValue::LongString(spec.dead_letter_queue().as_str().into()),
        );
        channel
            .queue_declare(spec.queue.as_str().into(), durable, quorum)
            .await?;
    }
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

/// Whether `queue` exists. Asked on a channel of its own: the broker closes
/// the channel of a passive declare that finds nothing.
async fn exists(connection: &Connection, queue: &str) -> lapin::Result<bool> {
    let probe = connection.create_channel().await?;
    let passive = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let found = probe
        .queue_declare(queue.into(), passive, FieldTable::default())
        .await
        .is_ok();
    if found {
        let _ = probe.close(200, "checked".into()).await;
    }
    Ok(found)
}

/// What every delivery of one consumer shares.
struct Binding {
    control: Arc<Control>,
    invoker: Invoker,
    function: String,
    spec: TriggerSpec,
    /// `amqp://HOST/VHOST/QUEUE`, the messages' `ce-source`.
    source: String,
    channel: Channel,
    acks: Acks,
}

/// Consumes until the consumer ends; each delivery runs in a task of its
/// own, and stopping the consumer aborts them (their unacked messages go
/// back to the queue). This loop sends the acks (see [`Acks`]); once the
/// consumer ends it waits for the deliveries in flight and acks them.
pub async fn consume(
    control: Arc<Control>,
    function: String,
    spec: TriggerSpec,
    source: String,
    channel: Channel,
    prefetch: u32,
    mut consumer: lapin::Consumer,
) {
    let binding = Arc::new(Binding {
        invoker: control.invoker(),
        control,
        function,
        spec,
        source,
        channel,
        acks: Acks::new(prefetch),
    });
    let mut tasks = tokio::task::JoinSet::new();
    let mut recheck = Recheck::new();
    loop {
        tokio::select! {
            next = consumer.next() => match next {
                Some(Ok(delivery)) => {
                    binding.control.metrics().message(&binding.function, &binding.spec.queue, "received");
                    binding.acks.received(delivery.delivery_tag);
                    tasks.spawn(deliver(binding.clone(), delivery));
                }
                Some(Err(e)) => {
                    tracing::warn!(function = %binding.function, error = %e, "consumer error");
                    break;
                }
                None => break,
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            () = binding.acks.changed() => recheck.at(binding.flush_acks().await),
            () = recheck.fired() => recheck.at(binding.flush_acks().await),
        }
    }
    while !tasks.is_empty() {
        tokio::select! {
            _ = tasks.join_next() => {}
            () = binding.acks.changed() => recheck.at(binding.flush_acks().await),
            () = recheck.fired() => recheck.at(binding.flush_acks().await),
        }
    }
    // Everything is settled now: no delivery waits behind another.
    while !binding.acks.is_empty() && binding.flush_acks().await.is_some() {
        tokio::time::sleep(super::acks::HOLD).await;
    }
}

/// The consumer loop's one timer for acks that are due later. It is moved
/// only to an earlier time or once it has fired: a timer set anew on every
/// turn of the loop (every message) would cost a wake-up of the runtime's
/// timer each time.
struct Recheck {
    sleep: Pin<Box<tokio::time::Sleep>>,
    armed: bool,
}

impl Recheck {
    fn new() -> Self {
        Self {
            sleep: Box::pin(tokio::time::sleep(Duration::ZERO)),
            armed: false,
        }
    }

    /// Fires at `at` at the latest, if it is set.
    fn at(&mut self, at: Option<std::time::Instant>) {
        let Some(at) = at.map(tokio::time::Instant::from_std) else {
            return;
        };
        if !self.armed || at < self.sleep.deadline() {
            self.sleep.as_mut().reset(at);
            self.armed = true;
        }
    }

    /// Waits until the timer fires; never, while it is not set.
    async fn fired(&mut self) {
        if !self.armed {
            return std::future::pending().await;
        }
        self.sleep.as_mut().await;
        self.armed = false;
    }
}

impl Binding {
    fn settle<'a>(&'a self, delivery: &'a Delivery) -> Settle<'a> {
        Settle {
            function: &self.function,
            spec: &self.spec,
            channel: &self.channel,
            acks: &self.acks,
            delivery,
            attempt: cloudevents::attempt(delivery),
        }
    }

    async fn flush_acks(&self) -> Option<std::time::Instant> {
        self.acks
            .flush(
                &self.channel,
                self.control.metrics(),
                &self.function,
                &self.spec.queue,
            )
            .await
    }
}

/// Runs one delivery to its settlement. A panic on the way still settles
/// it (the retry path): a swallowed panic would leave the message unacked,
/// holding a prefetch slot until the connection drops.
async fn deliver(binding: Arc<Binding>, delivery: Delivery) {
    let handled = AssertUnwindSafe(handle(&binding, &delivery))
        .catch_unwind()
        .await;
    if handled.is_err() {
        let id = cloudevents::message_id(&delivery, &binding.spec.queue);
        tracing::error!(function = %binding.function, message_id = %id.escape_debug(), "the delivery panicked; the message takes the retry path");
        binding.settle(&delivery).fail(Failure::panicked()).await;
    }
}

async fn handle(binding: &Binding, delivery: &Delivery) {
    let settle = binding.settle(delivery);
    let limits = binding.control.limits();
    if let Err(e) = limits.request_body.check_len(delivery.data.len()) {
        settle.fail(Failure::error(&e.into())).await;
        return;
    }
    let id = cloudevents::message_id(delivery, &binding.spec.queue);
    let request = match cloudevents::to_request(delivery, &binding.source, &id, settle.attempt) {
        Ok(request) => request,
        Err(why) => return settle.fail(Failure::bad_message(why)).await,
    };
    let invoked = match binding
        .invoker
        .invoke(&binding.function, Target::Default, request)
        .await
    {
        Ok(invoked) => invoked,
        Err(e) => return settle.fail(Failure::error(&e)).await,
    };
    let status = invoked.response.status();
    let content_type = invoked
        .response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|c| c.to_str().ok())
        .map(String::from);
    if !status.is_success() {
        return settle.fail(Failure::status(status)).await;
    }
    let body =
        crate::limits::read_limited(invoked.response.into_body(), limits.buffered_response).await;
    match body {
        Ok(body) => settle.succeed(&body, content_type.as_deref()).await,
        Err(e) => {
            settle
                .fail(Failure {
                    reason: "response_failed".into(),
                    status: Some(status.as_u16()),
                    message: format!("reading the response failed: {e}"),
                    fatal: false,
                })
                .await
        }
    }
}

/// The consumer's tag, so operators can tell consumers apart.
pub fn tag(function: &str) -> String {
    format!("flint-{function}")
}
