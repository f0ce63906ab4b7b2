//! Acks of one consumer's channel, sent in batches.
//!
//! A message that is handled is not acked by its own task: it is marked
//! done here, and the consumer's loop acks the done messages at the front
//! of the channel's delivery order with one `basic.ack` (`multiple`). One
//! frame then settles many messages, where an ack each cost a frame, a
//! wake-up of the connection's I/O thread and the broker's handling of it.
//!
//! Messages finish one at a time, so the done run at the front is gathered
//! before it is sent: until it holds a quarter of the prefetch, for at most
//! [`GATHER`] after its first message finished, and never while nothing else
//! runs (a lone message is acked at once).
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

/// Longest the done run at the front gathers more messages before its ack
/// is sent.
pub const GATHER: Duration = Duration::from_millis(1);

/// The channel's unsettled deliveries, in delivery order.
pub struct Acks {
    pending: Mutex<BTreeMap<DeliveryTag, Pending>>,
    done: Notify,
    /// Done messages at the front that are sent at once while others run.
    batch: usize,
}

struct Pending {
    since: Instant,
    /// The outcome to count once the ack is sent, and when the message
    /// finished; `None` while running.
    done: Option<(&'static str, Instant)>,
}

/// What to send now.
#[derive(Debug, Default, PartialEq)]
struct Batch {
    /// Ack every delivery up to this tag (`multiple`), counting these.
    front: Option<(DeliveryTag, Vec<&'static str>)>,
    /// Ack these one by one.
    singles: Vec<(DeliveryTag, &'static str)>,
    /// When to look again: the front's gathering ends, or done deliveries
    /// behind an unfinished one are due on their own.
    recheck: Option<Instant>,
}

impl Acks {
    /// The acks of a channel with `prefetch` deliveries in flight at most.
    pub fn new(prefetch: u32) -> Self {
        Self {
            pending: Mutex::default(),
            done: Notify::new(),
            batch: (prefetch as usize / 4).max(1),
        }
    }

    /// A delivery arrived.
    pub fn received(&self, tag: DeliveryTag) {
        self.pending.lock().unwrap().insert(
            tag,
            Pending {
                since: Instant::now(),
                done: None,
            },
        );
    }

    /// The delivery is handled: ack it (with the next batch) and count
    /// `outcome` then.
    pub fn done(&self, tag: DeliveryTag, outcome: &'static str) {
        if let Some(pending) = self.pending.lock().unwrap().get_mut(&tag) {
            pending.done = Some((outcome, Instant::now()));
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
        let front: Vec<(DeliveryTag, &'static str, Instant)> = pending
            .iter()
            .map_while(|(&tag, p)| p.done.map(|(outcome, at)| (tag, outcome, at)))
            .collect();
        if let Some(&(_, _, first_done)) = front.first() {
            let running = front.len() < pending.len();
            let gathered = first_done + GATHER;
            if front.len() >= self.batch || !running || now >= gathered {
                for (tag, _, _) in &front {
                    pending.remove(tag);
                }
                let last = front.last().map(|&(tag, _, _)| tag);
                let outcomes = front.iter().map(|&(_, outcome, _)| outcome).collect();
                batch.front = last.map(|tag| (tag, outcomes));
            } else {
                batch.recheck = Some(gathered);
                return batch;
            }
        }
        let Some(oldest) = pending.values().next().map(|p| p.since) else {
            return batch;
        };
        let due = oldest + HOLD;
        if now >= due {
            pending.retain(|&tag, p| match p.done {
                Some((outcome, _)) => {
                    batch.singles.push((tag, outcome));
                    false
                }
                None => true,
            });
        } else if pending.values().any(|p| p.done.is_some()) {
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

    fn acks(prefetch: u32, tags: &[DeliveryTag]) -> Acks {
        let acks = Acks::new(prefetch);
        for &tag in tags {
            acks.received(tag);
        }
        acks
    }

    /// When `tag` finished.
    fn done_at(acks: &Acks, tag: DeliveryTag) -> Instant {
        acks.pending.lock().unwrap()[&tag].done.expect("done").1
    }

    #[test]
    fn done_messages_at_the_front_go_in_one_ack() {
        // A batch of 3.
        let acks = acks(12, &[1, 2, 3, 4]);
        acks.done(2, "acked");
        acks.done(1, "acked");
        acks.done(3, "retried");
        let batch = acks.take(done_at(&acks, 3));
        assert_eq!(batch.front, Some((3, vec!["acked", "acked", "retried"])));
        assert!(batch.singles.is_empty());
        assert_eq!(batch.recheck, None);
        // 4 still runs: nothing more to send.
        assert_eq!(acks.take(Instant::now()), Batch::default());
        assert!(!acks.is_empty());
    }

    #[test]
    fn a_short_front_run_gathers_while_others_run() {
        // A batch of 8; 3 to 5 still run.
        let acks = acks(32, &[1, 2, 3, 4, 5]);
        acks.done(1, "acked");
        acks.done(2, "acked");
        let first = done_at(&acks, 1);
        let batch = acks.take(done_at(&acks, 2));
        assert_eq!(batch.front, None);
        assert_eq!(batch.recheck, Some(first + GATHER));

        let batch = acks.take(first + GATHER);
        assert_eq!(batch.front, Some((2, vec!["acked", "acked"])));
        assert_eq!(batch.recheck, None);
    }

    #[test]
    fn a_full_batch_or_a_lone_message_goes_at_once() {
        // A batch of 2.
        let two = acks(8, &[1, 2, 3]);
        two.done(1, "acked");
        assert_eq!(two.take(done_at(&two, 1)).front, None);
        two.done(2, "acked");
        let batch = two.take(done_at(&two, 2));
        assert_eq!(batch.front, Some((2, vec!["acked", "acked"])));

        // Nothing else runs: no reason to wait.
        let lone = acks(32, &[7]);
        lone.done(7, "acked");
        assert_eq!(lone.take(done_at(&lone, 7)).front, Some((7, vec!["acked"])));
        assert!(lone.is_empty());
    }

    #[test]
    fn done_messages_behind_a_running_one_wait_then_go_alone() {
        let acks = acks(32, &[1, 2, 3]);
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
        let acks = acks(32, &[1, 2]);
        acks.done(2, "acked");
        acks.forget(1);
        assert_eq!(acks.take(done_at(&acks, 2)).front, Some((2, vec!["acked"])));
        assert!(acks.is_empty());
    }
}
