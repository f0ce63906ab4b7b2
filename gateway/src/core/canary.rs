//! The canary driver.
//!
//! A canary moves an alias step by step from its stable target to the
//! candidate (`steps` percent of traffic, `interval` apart). During each step
//! it compares the candidate's error rate (5xx answers and failed calls) and
//! p99 latency with the stable version's, four times a second: a breach puts
//! the alias back on the stable target at once and records why; passing the
//! last step points the alias at the candidate alone.
//!
//! On one node, a server restart during a canary rolls it back (the stable
//! target is restored and the reason recorded): the analysis windows lived
//! in memory, and an unobserved canary must not keep taking traffic.
//!
//! In a cluster the leader drives every canary, whichever node started it,
//! and judges it by the counters every node publishes. A new leader
//! continues a running canary from its current step and records that it
//! did. Every write of the driver is fenced by the leader's epoch and by
//! the canary still running: a leader that was replaced, or a canary that
//! a user stopped through another node, cannot be written over.

use super::Control;
use super::functions::FunctionEntry;
use super::window::Totals;
use crate::store::ReleaseChange;
use flint_spec::alias::{AliasTarget, Route};
use flint_spec::canary::{CanarySpec, CanaryState, CanaryStatus, StepReport};
use flint_spec::history::HistoryEntry;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// How often a running step is analysed.
const CHECK_EVERY: Duration = Duration::from_millis(250);
/// Who the history names for the driver's changes.
const ACTOR: &str = "canary";

fn split(stable: u32, canary: u32, weight: u32) -> AliasTarget {
    if weight >= 100 {
        return AliasTarget::version(canary);
    }
    AliasTarget {
        routes: vec![
            Route {
                version: stable,
                weight: 100 - weight,
            },
            Route {
                version: canary,
                weight,
            },
        ],
        sticky: None,
        rules: Vec::new(),
    }
}

/// Why the candidate fails the comparison, if it does: `canary` and `base`
/// are what the candidate and the stable version did during the step.
fn breach(spec: &CanarySpec, canary: &Totals, base: &Totals, stable: u32) -> Option<String> {
    if canary.requests > 0
        && canary.error_rate() > spec.max_error_rate
        && canary.error_rate() > base.error_rate()
    {
        return Some(format!(
            "error rate {:.1}% of version {} over the limit {:.1}% (stable version {}: {:.1}%, {} of {} requests failed)",
            canary.error_rate() * 100.0,
            spec.to,
            spec.max_error_rate * 100.0,
            stable,
            base.error_rate() * 100.0,
            canary.errors,
            canary.requests
        ));
    }
    if let (Some(limit), Some(p99)) = (spec.max_p99_ms, canary.p99_ms())
        && p99 > limit
        && base.p99_ms().is_none_or(|b| p99 > b)
    {
        return Some(format!(
            "p99 latency {p99:.1} ms of version {} over the limit {limit} ms",
            spec.to
        ));
    }
    None
}

/// What a driver's writes are fenced by: in a cluster, the epoch of the
/// leadership it drives under (`None` on one node: nothing to fence).
pub(super) type Fence = Option<u64>;

impl Control {
    /// Persists the canary's state (with a history entry, when it has one).
    /// False when the write was refused or failed: the driver stops.
    async fn save_canary(
        &self,
        function: &str,
        canary: &CanaryState,
        history: Option<HistoryEntry>,
        fence: Fence,
    ) -> bool {
        let change = ReleaseChange::SetCanary(canary.clone());
        match self
            .fenced_release_write(function, vec![(change, history)], fence)
            .await
        {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(function, error = %e, "could not record the canary's state");
                false
            }
        }
    }

    /// Moves the canary's alias (the driver owns it: no canary guard).
    /// False when the write was refused or failed.
    async fn move_alias(
        &self,
        function: &str,
        alias: &str,
        target: AliasTarget,
        history: HistoryEntry,
        fence: Fence,
    ) -> bool {
        let moved = match self.alias_change(function, alias, Some(target), history) {
            Ok(change) => {
                self.fenced_release_write(function, vec![change], fence)
                    .await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = &moved {
            tracing::error!(function, error = %e, "canary could not move the alias");
        }
        moved.is_ok()
    }

    /// What `version` has done so far: on this node alone, or, in a
    /// cluster, on every node as they published it.
    async fn counters(&self, entry: &FunctionEntry, function: &str, version: u32) -> Totals {
        match self.cluster_counters(function, version).await {
            Some(totals) => totals,
            None => entry.windows.get(version),
        }
    }

    /// Whether the driver may go on: on one node always; in a cluster while
    /// this node still leads with the same epoch and the canary still runs.
    fn still_driving(&self, function: &str, fence: Fence) -> bool {
        match fence {
            None => true,
            Some(epoch) => {
                self.leader_epoch() == epoch && self.canary_running_in_registry(function)
            }
        }
    }

    /// Drives a canary to success or rollback. Runs as a background task.
    pub(super) async fn drive_canary(
        self,
        function: String,
        mut canary: CanaryState,
        abort: Arc<Notify>,
        fence: Fence,
    ) {
        let Ok(entry) = self.entry(&function) else {
            self.canary_done(&function);
            return;
        };
        let stable = canary.stable.main_version();
        let alias = canary.spec.alias.clone();
        while canary.step < canary.spec.steps.len() {
            let weight = canary.spec.steps[canary.step];
            let mut log = HistoryEntry::now(ACTOR, "canary_step");
            log.reason = Some(format!(
                "step {} of {}: {weight}% to version {}",
                canary.step + 1,
                canary.spec.steps.len(),
                canary.spec.to
            ));
            let target = split(stable, canary.spec.to, weight);
            if !self.move_alias(&function, &alias, target, log, fence).await {
                self.canary_done(&function);
                return;
            }
            let base = (
                self.counters(&entry, &function, canary.spec.to).await,
                self.counters(&entry, &function, stable).await,
            );
            let deadline =
                tokio::time::Instant::now() + Duration::from_millis(canary.spec.interval_ms);
            let mut window = (Totals::default(), Totals::default());
            let failed = loop {
                tokio::select! {
                    () = tokio::time::sleep(CHECK_EVERY) => {}
                    () = abort.notified() => break Some("aborted by the user".to_string()),
                }
                if !self.still_driving(&function, fence) {
                    tracing::info!(function, "canary left to the current leader");
                    self.canary_done(&function);
                    return;
                }
                window = (
                    self.counters(&entry, &function, canary.spec.to)
                        .await
                        .since(&base.0),
                    self.counters(&entry, &function, stable)
                        .await
                        .since(&base.1),
                );
                if let Some(reason) = breach(&canary.spec, &window.0, &window.1, stable) {
                    break Some(reason);
                }
                if tokio::time::Instant::now() >= deadline {
                    break None;
                }
            };
            let (c, s) = window;
            canary.reports.push(StepReport {
                weight,
                canary: (c.requests, c.errors, c.p99_ms()),
                stable: (s.requests, s.errors, s.p99_ms()),
            });
            if let Some(reason) = failed {
                self.roll_back(&function, &mut canary, reason, fence).await;
                return;
            }
            canary.step += 1;
            if !self.save_canary(&function, &canary, None, fence).await {
                self.canary_done(&function);
                return;
            }
        }
        canary.status = CanaryStatus::Succeeded;
        let mut log = HistoryEntry::now(ACTOR, "canary_succeeded");
        log.alias = Some(alias.clone());
        // From the stable target: a later rollback undoes the whole canary.
        log.from = Some(canary.stable.clone());
        log.to = Some(AliasTarget::version(canary.spec.to));
        log.reason = Some(format!("all {} steps passed", canary.spec.steps.len()));
        self.save_canary(&function, &canary, Some(log), fence).await;
        tracing::info!(function, version = canary.spec.to, "canary succeeded");
        self.canary_done(&function);
    }

    /// Puts the alias back on the stable target and records why.
    pub(super) async fn roll_back(
        &self,
        function: &str,
        canary: &mut CanaryState,
        reason: String,
        fence: Fence,
    ) {
        tracing::warn!(function, %reason, "canary rolled back");
        let mut log = HistoryEntry::now(ACTOR, "canary_rolled_back");
        log.reason = Some(reason.clone());
        self.move_alias(
            function,
            &canary.spec.alias,
            canary.stable.clone(),
            log,
            fence,
        )
        .await;
        canary.status = CanaryStatus::RolledBack;
        canary.reason = Some(reason);
        self.save_canary(function, canary, None, fence).await;
        self.canary_done(function);
    }

    /// Rolls back a canary the store says was running when this server
    /// started.
    pub(super) async fn roll_back_interrupted(&self, function: &str, mut canary: CanaryState) {
        self.roll_back(
            function,
            &mut canary,
            "the server restarted during the canary; rolled back to the stable target".into(),
            None,
        )
        .await;
    }

    /// Run by the leader of a cluster (after each registry change and every
    /// heartbeat): drives every running canary that this node does not
    /// drive yet, under `epoch`. With `taking_over` (its first call as
    /// leader) the history records that it continues each one.
    pub async fn lead_canaries(&self, epoch: u64, taking_over: bool) {
        let canaries = match self.canaries().await {
            Ok(canaries) => canaries,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the running canaries");
                return;
            }
        };
        for (function, canary) in canaries {
            if canary.status != CanaryStatus::Running {
                continue;
            }
            // Claimed before any wait, so that two calls never both drive it.
            let Some(abort) = self.claim_canary(&function) else {
                continue;
            };
            if taking_over {
                let mut log = HistoryEntry::now(ACTOR, "canary_continued");
                log.alias = Some(canary.spec.alias.clone());
                log.reason = Some(format!(
                    "the leader changed (epoch {epoch}); the new leader continues at step {} of {}",
                    (canary.step + 1).min(canary.spec.steps.len()),
                    canary.spec.steps.len()
                ));
                let change = ReleaseChange::SetCanary(canary.clone());
                if let Err(e) = self
                    .fenced_release_write(&function, vec![(change, Some(log))], Some(epoch))
                    .await
                {
                    tracing::warn!(function, error = %e, "could not take over the canary");
                    self.canary_done(&function);
                    continue;
                }
            }
            tracing::info!(function, epoch, step = canary.step, "driving the canary");
            tokio::spawn(
                self.clone()
                    .drive_canary(function, canary, abort, Some(epoch)),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_send_the_step_weight_to_the_candidate() {
        assert_eq!(split(1, 2, 100), AliasTarget::version(2));
        assert_eq!(split(1, 2, 25).routes[1].weight, 25);
        assert_eq!(split(1, 2, 25).routes[0].weight, 75);
    }
}
