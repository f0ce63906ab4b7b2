//! Acks of one consumer's channel, sent in batches.
//!
//! A message that is handled is not acked by its own task: it is marked
//! done here, and the consumer's loop acks every done message at the front
//! of the channel's delivery order with one `basic.ack` (`multiple`). One
//! frame then settles many messages, where an ack each cost a frame, a
//! wake-up of the connection's I/O thread and a confirmation back.
//!
//! A message still running at the front must not hold back the ones behind
//! it for long: they keep their prefetch slots while unacked, and a crash
//! would deliver them again. Done messages that have waited [`HOLD`] behind
//! an unfinished one are acked one by one.
//!
//! Only the consumer's loop sends acks, in order, so a `multiple` ack never
//! overtakes a single one that it covers. A message that is nacked (handed
//! back to its queue) leaves the batch once its nack is sent, so a later
//! `multiple` ack never touches it.

use crate::metrics::Metrics;
use lapin::Channel;
use lapin::options::BasicAckOptions;
use lapin::types::DeliveryTag;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Longest a done message waits behind an unfinished one before it is acked
/// on its own.
pub const HOLD: Duration = Duration::from_millis(5);

/// The channel's unsettled deliveries, in delivery order.
#[derive(Default)]
pub struct Acks {
    pending: Mutex<BTreeMap<DeliveryTag, Pending>>,
    done: Notify,
}

struct Pending {
    since: Instant,
    /// The outcome to count once the ack is sent; `None` while running.
    outcome: Option<&'static str>,
}

/// What to send now.
#[derive(Debug, Default, PartialEq)]
struct Batch {
    /// Ack every delivery up to this tag (`multiple`), counting these.
    front: Option<(DeliveryTag, Vec<&'static str>)>,
    /// Ack these one by one.
    singles: Vec<(DeliveryTag, &'static str)>,
    /// When done deliveries that must still wait are due on their own.
    recheck: Option<Instant>,
}

impl Acks {
    /// A delivery arrived.
    pub fn received(&self, tag: DeliveryTag) {
        self.pending.lock().unwrap().insert(
            tag,
            Pending {
                since: Instant::now(),
                outcome: None,
            },
        );
    }

    /// The delivery is handled: ack it (with the next batch) and count
    /// `outcome` then.
    pub fn done(&self, tag: DeliveryTag, outcome: &'static str) {
        if let Some(pending) = self.pending.lock().unwrap().get_mut(&tag) {
            pending.outcome = Some(outcome);
        }
        self.done.notify_one();
    }

    /// The delivery was settled otherwise (nacked): it leaves the batch.
    pub fn forget(&self, tag: DeliveryTag) {
        self.pending.lock().unwrap().remove(&tag);
        self.done.notify_one();
    }

    /// Waits until a delivery is done or forgotten.
    pub async fn changed(&self) {
        self.done.notified().await;
    }

    fn take(&self, now: Instant) -> Batch {
        let mut pending = self.pending.lock().unwrap();
        let mut batch = Batch::default();
        let mut counted = Vec::new();
        while let Some(entry) = pending.first_entry() {
            let Some(outcome) = entry.get().outcome else {
                break;
            };
            counted.push(outcome);
            batch.front = Some((*entry.key(), Vec::new()));
            entry.remove();
        }
        if let Some((_, outcomes)) = &mut batch.front {
            *outcomes = counted;
        }
        let Some(oldest) = pending.values().next().map(|p| p.since) else {
            return batch;
        };
        let due = oldest + HOLD;
        if now >= due {
            pending.retain(|&tag, p| match p.outcome {
                Some(outcome) => {
                    batch.singles.push((tag, outcome));
                    false
                }
                None => true,
            });
        } else if pending.values().any(|p| p.outcome.is_some()) {
            batch.recheck = Some(due);
        }
        batch
    }

    /// Sends the acks that are due; returns when to look again, if done
    /// deliveries wait behind an unfinished one.
    pub async fn flush(
        &self,
        channel: &Channel,
        metrics: &Metrics,
        function: &str,
        queue: &str,
    ) -> Option<Instant> {
        let batch = self.take(Instant::now());
        let acked = |outcome: &str| metrics.message(function, queue, outcome);
        if let Some((tag, outcomes)) = batch.front {
            let multiple = BasicAckOptions { multiple: true };
            match channel.basic_ack(tag, multiple).await {
                Ok(()) => outcomes.iter().for_each(|o| acked(o)),
                Err(e) => {
                    tracing::warn!(function, error = %e, "ack failed; the broker will redeliver")
                }
            }
        }
        for (tag, outcome) in batch.singles {
            match channel.basic_ack(tag, BasicAckOptions::default()).await {
                Ok(()) => acked(outcome),
                Err(e) => {
                    tracing::warn!(function, error = %e, "ack failed; the broker will redeliver")
                }
            }
        }
        batch.recheck
    }

    /// Whether any delivery is still unsettled.
    pub fn is_empty(&self) -> bool {
        self.pending.lock().unwrap().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acks(tags: &[DeliveryTag]) -> Acks {
        let acks = Acks::default();
        for &tag in tags {
            acks.received(tag);
        }
        acks
    }

    #[test]
    fn done_messages_at_the_front_go_in_one_ack() {
        let acks = acks(&[1, 2, 3, 4]);
        acks.done(2, "acked");
        acks.done(1, "acked");
        acks.done(3, "retried");
        let batch = acks.take(Instant::now());
        assert_eq!(batch.front, Some((3, vec!["acked", "acked", "retried"])));
        assert!(batch.singles.is_empty());
        assert_eq!(batch.recheck, None);
        // 4 still runs: nothing more to send.
        assert_eq!(acks.take(Instant::now()), Batch::default());
        assert!(!acks.is_empty());
    }

    #[test]
    fn done_messages_behind_a_running_one_wait_then_go_alone() {
        let acks = acks(&[1, 2, 3]);
        acks.done(2, "acked");
        acks.done(3, "acked");
        let now = Instant::now();
        let batch = acks.take(now);
        assert_eq!(batch.front, None);
        assert!(batch.singles.is_empty());
        let recheck = batch.recheck.expect("2 and 3 wait behind 1");
        assert!(recheck > now && recheck <= now + HOLD);

        let batch = acks.take(now + HOLD);
        assert_eq!(batch.front, None);
        assert_eq!(batch.singles, vec![(2, "acked"), (3, "acked")]);
        assert_eq!(batch.recheck, None);

        acks.done(1, "acked");
        assert_eq!(acks.take(now + HOLD).front, Some((1, vec!["acked"])));
        assert!(acks.is_empty());
    }

    #[test]
    fn a_nacked_message_leaves_the_batch() {
        let acks = acks(&[1, 2]);
        acks.done(2, "acked");
        acks.forget(1);
        assert_eq!(acks.take(Instant::now()).front, Some((2, vec!["acked"])));
        assert!(acks.is_empty());
    }
}
