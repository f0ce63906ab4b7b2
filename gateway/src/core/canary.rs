//! The canary driver.
//!
//! A canary moves an alias step by step from its stable target to the
//! candidate (`steps` percent of traffic, `interval` apart). During each step
//! it compares the candidate's error rate (5xx answers and failed calls) and
//! p99 latency with the stable version's, four times a second: a breach puts
//! the alias back on the stable target at once and records why; passing the
//! last step points the alias at the candidate alone.
//!
//! A server restart during a canary rolls it back (the stable target is
//! restored and the reason recorded): the analysis windows lived in memory,
//! and an unobserved canary must not keep taking traffic.

use super::Control;
use super::functions::FunctionEntry;
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

/// Why the candidate fails the comparison, if it does.
fn breach(spec: &CanarySpec, entry: &FunctionEntry, stable: u32) -> Option<String> {
    let canary = entry.windows.get(spec.to);
    let base = entry.windows.get(stable);
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

impl Control {
    /// Persists the canary's state (with a history entry, when it has one).
    async fn save_canary(
        &self,
        function: &str,
        canary: &CanaryState,
        history: Option<HistoryEntry>,
    ) {
        let change = ReleaseChange::SetCanary(canary.clone());
        if let Err(e) = self.release_write(function, vec![(change, history)]).await {
            tracing::error!(function, error = %e, "could not record the canary's state");
        }
    }

    /// Moves the canary's alias (the driver owns it: no canary guard).
    async fn move_alias(
        &self,
        function: &str,
        alias: &str,
        target: AliasTarget,
        history: HistoryEntry,
    ) {
        let moved = match self.alias_change(function, alias, Some(target), history) {
            Ok(change) => self.release_write(function, vec![change]).await,
            Err(e) => Err(e),
        };
        if let Err(e) = moved {
            tracing::error!(function, error = %e, "canary could not move the alias");
        }
    }

    /// Drives a canary to success or rollback. Runs as a background task.
    pub(super) async fn drive_canary(
        self,
        function: String,
        mut canary: CanaryState,
        abort: Arc<Notify>,
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
            self.move_alias(
                &function,
                &alias,
                split(stable, canary.spec.to, weight),
                log,
            )
            .await;
            entry.windows.reset();
            let deadline =
                tokio::time::Instant::now() + Duration::from_millis(canary.spec.interval_ms);
            let failed = loop {
                tokio::select! {
                    () = tokio::time::sleep(CHECK_EVERY) => {}
                    () = abort.notified() => break Some("aborted by the user".to_string()),
                }
                if let Some(reason) = breach(&canary.spec, &entry, stable) {
                    break Some(reason);
                }
                if tokio::time::Instant::now() >= deadline {
                    break None;
                }
            };
            let (c, s) = (entry.windows.get(canary.spec.to), entry.windows.get(stable));
            canary.reports.push(StepReport {
                weight,
                canary: (c.requests, c.errors, c.p99_ms()),
                stable: (s.requests, s.errors, s.p99_ms()),
            });
            if let Some(reason) = failed {
                self.roll_back(&function, &mut canary, reason).await;
                return;
            }
            canary.step += 1;
            self.save_canary(&function, &canary, None).await;
        }
        canary.status = CanaryStatus::Succeeded;
        let mut log = HistoryEntry::now(ACTOR, "canary_succeeded");
        log.alias = Some(alias.clone());
        // From the stable target: a later rollback undoes the whole canary.
        log.from = Some(canary.stable.clone());
        log.to = Some(AliasTarget::version(canary.spec.to));
        log.reason = Some(format!("all {} steps passed", canary.spec.steps.len()));
        self.save_canary(&function, &canary, Some(log)).await;
        tracing::info!(function, version = canary.spec.to, "canary succeeded");
        self.canary_done(&function);
    }

    /// Puts the alias back on the stable target and records why.
    async fn roll_back(&self, function: &str, canary: &mut CanaryState, reason: String) {
        tracing::warn!(function, %reason, "canary rolled back");
        let mut log = HistoryEntry::now(ACTOR, "canary_rolled_back");
        log.reason = Some(reason.clone());
        self.move_alias(function, &canary.spec.alias, canary.stable.clone(), log)
            .await;
        canary.status = CanaryStatus::RolledBack;
        canary.reason = Some(reason);
        self.save_canary(function, canary, None).await;
        self.canary_done(function);
    }

    /// Rolls back a canary the store says was running when this server
    /// started.
    pub(super) async fn roll_back_interrupted(&self, function: &str, mut canary: CanaryState) {
        self.roll_back(
            function,
            &mut canary,
            "the server restarted during the canary; rolled back to the stable target".into(),
        )
        .await;
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
