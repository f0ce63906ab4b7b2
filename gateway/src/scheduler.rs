//! The scheduler loop: fires cron schedules on the node that leads (a
//! single node always leads). Each pass claims and fires the ticks that are
//! due ([`Control::fire_due_schedules`]), then sleeps until the next tick
//! of any schedule, a schedule change (made on this node, or followed from
//! a shared registry), or [`POLL`], whichever comes first.
//!
//! The moment a node starts leading is its scheduler's start: ticks before
//! it were missed (the server was down, or leadership was changing hands)
//! and follow each schedule's catch-up policy.
//!
//! At shutdown the loop claims nothing more and the calls of ticks already
//! claimed finish, within the grace period ([`Scheduler::drain`]): a tick
//! is claimed once, so a call cut off is not run again.

use crate::core::Control;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::Notify;
use tokio::task::JoinSet;

/// Longest sleep between two passes.
const POLL: Duration = Duration::from_secs(5);

/// The running loop.
pub struct Scheduler {
    stop: Arc<Notify>,
    task: tokio::task::JoinHandle<JoinSet<()>>,
}

impl Scheduler {
    /// Starts the loop.
    pub fn start(control: Arc<Control>) -> Self {
        let stop = Arc::new(Notify::new());
        let task = tokio::spawn(run(control, stop.clone()));
        Self { stop, task }
    }

    /// Stops claiming ticks and waits up to `grace` for the calls of the
    /// ticks already claimed; what still runs then is cut off.
    pub async fn drain(self, grace: Duration) {
        self.stop.notify_one();
        let Ok(mut firing) = self.task.await else {
            return;
        };
        if firing.is_empty() {
            return;
        }
        tracing::info!(
            calls = firing.len(),
            "waiting for the calls of scheduled ticks"
        );
        let finished =
            tokio::time::timeout(grace, async { while firing.join_next().await.is_some() {} })
                .await;
        if finished.is_err() {
            tracing::warn!(
                calls = firing.len(),
                "scheduled calls still running at the end of the grace period are cut off"
            );
            firing.abort_all();
        }
    }
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// How long until the start of second `tick`.
fn until(tick: i64) -> Duration {
    let at = UNIX_EPOCH + Duration::from_secs(tick.max(0) as u64);
    at.duration_since(SystemTime::now()).unwrap_or_default()
}

/// The loop; returns the calls still running when it was stopped.
async fn run(control: Arc<Control>, stop: Arc<Notify>) -> JoinSet<()> {
    let changed = control.schedules_changed();
    let mut firing = JoinSet::new();
    let mut since: Option<i64> = None;
    loop {
        // Calls that finished are reaped as the loop goes.
        while firing.try_join_next().is_some() {}
        let wait = if control.leads() {
            let started = *since.get_or_insert_with(|| {
                tracing::info!("the scheduler runs on this node");
                now_unix()
            });
            match control.fire_due_schedules(started, &mut firing).await {
                Ok(next) => next.map_or(POLL, |tick| until(tick).min(POLL)),
                Err(e) => {
                    tracing::warn!(error = %e, "the scheduler could not read or claim schedules; retrying");
                    POLL
                }
            }
        } else {
            if since.take().is_some() {
                tracing::info!("the scheduler stops on this node: another node leads");
            }
            POLL
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = changed.notified() => {}
            () = stop.notified() => return firing,
        }
    }
}
