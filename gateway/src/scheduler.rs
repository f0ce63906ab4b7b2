//! The scheduler loop: fires cron schedules on the node that leads (a
//! single node always leads). Each pass claims and fires the ticks that are
//! due ([`Control::fire_due_schedules`]), then sleeps until the next tick
//! of any schedule, a schedule change (made on this node, or followed from
//! a shared registry), or [`POLL`], whichever comes first.
//!
//! The moment a node starts leading is its scheduler's start: ticks before
//! it were missed (the server was down, or leadership was changing hands)
//! and follow each schedule's catch-up policy.

use crate::core::Control;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Longest sleep between two passes.
const POLL: Duration = Duration::from_secs(5);

/// Starts the loop; it runs until aborted.
pub fn start(control: Arc<Control>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(run(control))
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

async fn run(control: Arc<Control>) {
    let changed = control.schedules_changed();
    let mut since: Option<i64> = None;
    loop {
        let wait = if control.leads() {
            let started = *since.get_or_insert_with(|| {
                tracing::info!("the scheduler runs on this node");
                now_unix()
            });
            match control.fire_due_schedules(started).await {
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
        }
    }
}
