//! Cron schedules in the core: adding, listing and removing a function's
//! schedules, and the rules of firing them.
//!
//! Firing is at most once per tick, across restarts and nodes: a tick fires
//! only after its claim, a compare-and-set of the schedule's `last_tick` in
//! the store ([`Change::ClaimTick`]), succeeded; of several claimers exactly
//! one succeeds. Only the node that leads (a single node always does) runs
//! the scheduler loop (`crate::scheduler`), so in practice there is one
//! claimer; the compare-and-set keeps a tick from firing twice when two
//! nodes briefly both believe they lead, and after a restart.
//!
//! Ticks that passed while no scheduler ran (ticks before the moment this
//! one started) are *missed*: the schedule's [`CatchUp`] policy decides
//! whether one catch-up run fires for the most recent of them. A tick after
//! that moment fires even if the loop reaches it late.
//!
//! A tick is an invocation through the one invoke path ([`Invoker`]): the
//! function's limits, default alias (releases, canaries), shadow runs and
//! metrics apply as to any call. The request is a CloudEvent in HTTP binary
//! mode: `POST <path>` with the body (`application/json` when it parses as
//! JSON, else `text/plain`), `ce-specversion`, `ce-type`
//! ([`CE_TYPE`]), `ce-source` (`flint/schedules/<id>`), `ce-id`
//! (`<id>-<tick in Unix seconds>`) and `ce-time` (the tick, RFC 3339).
//!
//! Schedules are not mirrored in memory: the store is their one copy, read
//! by the loop each pass (once per tick at most) and by the API. A claim and
//! a run record change nothing a node serves, so they do not bump a shared
//! registry's version.

use super::{Control, CoreError, CoreResult, Target};
use crate::store::{Change, RunRecord, ScheduleRecord};
use bytes::Bytes;
use flint_spec::schedule::{
    Cadence, CatchUp, MAX_RUN_RESPONSE_BYTES, MAX_SCHEDULES_PER_FUNCTION, ScheduleSpec, rfc3339,
};
use http_body_util::{BodyExt, Full};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::Notify;

/// The `ce-type` of every tick.
pub const CE_TYPE: &str = "com.flint.schedule";

/// Most on-time ticks of one schedule fired in one pass: a loop that was
/// held up (a stalled host) fires the most recent ones, not an unbounded
/// burst.
const MAX_FIRINGS_PER_PASS: usize = 10;

/// One run as shown to callers.
#[derive(Debug, Clone, Serialize)]
pub struct RunView {
    /// The tick it ran for (RFC 3339, whole seconds).
    pub scheduled_at: String,
    /// When the call started (RFC 3339).
    pub started_at: String,
    /// `ok`, `bad_status` (the function answered other than 2xx),
    /// `response_failed` (its body could not be read), or the error code of
    /// the call (`timeout`, `trap`, `overloaded`, ...).
    pub outcome: String,
    /// The function's HTTP status, when it answered.
    pub status: Option<u16>,
    /// How long the call took, in milliseconds.
    pub duration_ms: f64,
    /// Whether it was the catch-up run of a missed tick.
    pub catch_up: bool,
    /// The start of the function's response body (1 KiB at most), or the
    /// error's message when the call failed.
    pub response: Option<String>,
}

impl From<&RunRecord> for RunView {
    fn from(run: &RunRecord) -> Self {
        Self {
            scheduled_at: rfc3339(run.scheduled),
            started_at: humantime::format_rfc3339_millis(run.started_at).to_string(),
            outcome: run.outcome.clone(),
            status: run.status,
            duration_ms: (run.duration_ms * 1000.0).round() / 1000.0,
            catch_up: run.catch_up,
            response: run.response.clone(),
        }
    }
}

/// One schedule as shown to callers.
#[derive(Debug, Clone, Serialize)]
pub struct ScheduleView {
    /// Its id.
    pub id: String,
    /// The function it invokes.
    pub function: String,
    /// The cron expression.
    pub cron: String,
    /// The time zone it is read in.
    pub tz: String,
    /// The path each tick calls.
    pub path: String,
    /// The body each tick sends, if any.
    pub body: Option<String>,
    /// `skip` or `once`.
    pub catch_up: CatchUp,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// The most recent tick claimed, if any tick was yet.
    pub last_tick: Option<String>,
    /// The next tick (RFC 3339).
    pub next_fire: Option<String>,
    /// Its most recent runs, newest first.
    pub runs: Vec<RunView>,
}

impl ScheduleView {
    fn new(record: &ScheduleRecord, runs: Vec<RunView>) -> Self {
        let created = unix(record.created_at);
        let next = record
            .spec
            .cadence()
            .ok()
            .and_then(|c| c.next_after(record.last_tick.max(unix(SystemTime::now()))));
        Self {
            id: record.id.clone(),
            function: record.function.clone(),
            cron: record.spec.cron.clone(),
            tz: record.spec.tz.clone(),
            path: record.spec.path.clone(),
            body: record.spec.body.clone(),
            catch_up: record.spec.catch_up,
            created_at: humantime::format_rfc3339_seconds(record.created_at).to_string(),
            last_tick: (record.last_tick > created).then(|| rfc3339(record.last_tick)),
            next_fire: next.map(rfc3339),
            runs,
        }
    }
}

/// Unix seconds of `at`.
fn unix(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A new schedule id: 12 hex digits.
fn new_id() -> String {
    let mut random = [0u8; 6];
    getrandom::fill(&mut random).expect("the OS has randomness");
    hex::encode(random)
}

/// What one pass does with one schedule.
#[derive(Debug, PartialEq, Eq)]
struct Due {
    /// The tick to claim: the most recent one due.
    claim: i64,
    /// The ticks to fire once the claim succeeded, oldest first, each with
    /// whether it is a catch-up run.
    fire: Vec<(i64, bool)>,
}

/// The ticks of a schedule due at `now`, whose last claimed tick is `last`,
/// for a scheduler running since `since` (earlier ticks are missed).
fn due(cadence: &Cadence, last: i64, now: i64, since: i64, catch_up: CatchUp) -> Option<Due> {
    let ticks = cadence.ticks_between(last, now, MAX_FIRINGS_PER_PASS + 1);
    let claim = *ticks.first()?;
    let mut fire: Vec<(i64, bool)> = ticks
        .iter()
        .filter(|t| **t >= since)
        .take(MAX_FIRINGS_PER_PASS)
        .map(|t| (*t, false))
        .collect();
    if catch_up == CatchUp::Once
        && let Some(missed) = cadence.latest_until(since - 1).filter(|t| *t > last)
    {
        fire.push((missed, true));
    }
    fire.sort_unstable();
    Some(Due { claim, fire })
}

impl Control {
    /// Resolves when a schedule was added or removed on this node, or this
    /// node followed a change of a shared registry (the scheduler loop
    /// follows them).
    pub fn schedules_changed(&self) -> Arc<Notify> {
        self.s.schedules_changed.clone()
    }

    /// A function's schedules with their recent runs.
    pub async fn schedules(&self, name: &str) -> CoreResult<Vec<ScheduleView>> {
        self.entry(name)?;
        let records = self.s.store.schedules(Some(name.into())).await?;
        let mut runs: BTreeMap<String, Vec<RunView>> = BTreeMap::new();
        for (id, run) in self.s.store.schedule_runs(name.into()).await? {
            runs.entry(id).or_default().push(RunView::from(&run));
        }
        Ok(records
            .iter()
            .map(|r| ScheduleView::new(r, runs.remove(&r.id).unwrap_or_default()))
            .collect())
    }

    /// One schedule of a function with its recent runs.
    pub async fn schedule(&self, name: &str, id: &str) -> CoreResult<ScheduleView> {
        self.schedules(name)
            .await?
            .into_iter()
            .find(|s| s.id == id)
            .ok_or_else(|| CoreError::ScheduleNotFound {
                function: name.into(),
                id: id.into(),
            })
    }

    /// Adds a schedule to a function; its first tick is the first one
    /// after now.
    pub async fn add_schedule(&self, name: &str, spec: ScheduleSpec) -> CoreResult<ScheduleView> {
        spec.validate().map_err(CoreError::InvalidSchedule)?;
        let _writing = self.s.writes.lock().await;
        self.entry(name)?;
        let existing = self.s.store.schedules(Some(name.into())).await?;
        if existing.len() >= MAX_SCHEDULES_PER_FUNCTION {
            return Err(CoreError::InvalidSchedule(format!(
                "function `{name}` has {} schedules, the most allowed; remove one first (`flint schedule ls {name}`, `flint schedule rm {name} ID`)",
                existing.len()
            )));
        }
        let record = self.schedule_record(name, spec);
        let outcomes = self
            .write(
                vec![Change::AddSchedule(Box::new(record.clone()))],
                &Default::default(),
            )
            .await?;
        if !outcomes[0].applied() {
            return Err(CoreError::FunctionNotFound(name.into()));
        }
        tracing::info!(function = name, schedule = %record.id, cron = %record.spec.cron, tz = %record.spec.tz, "schedule added");
        self.s.schedules_changed.notify_one();
        Ok(ScheduleView::new(&record, Vec::new()))
    }

    /// A new schedule of `name` as stored: no tick before now fires.
    pub(super) fn schedule_record(&self, name: &str, spec: ScheduleSpec) -> ScheduleRecord {
        let now = SystemTime::now();
        ScheduleRecord {
            id: new_id(),
            function: name.into(),
            spec,
            last_tick: unix(now),
            created_at: now,
        }
    }

    /// Removes one schedule of a function, with its runs.
    pub async fn remove_schedule(&self, name: &str, id: &str) -> CoreResult<()> {
        let _writing = self.s.writes.lock().await;
        self.entry(name)?;
        let outcomes = self
            .write(
                vec![Change::RemoveSchedule {
                    function: name.into(),
                    id: id.into(),
                }],
                &Default::default(),
            )
            .await?;
        if !outcomes[0].applied() {
            return Err(CoreError::ScheduleNotFound {
                function: name.into(),
                id: id.into(),
            });
        }
        tracing::info!(function = name, schedule = id, "schedule removed");
        self.s.schedules_changed.notify_one();
        Ok(())
    }

    /// One pass of the scheduler: claims and fires every due tick (the
    /// calls run in the background, in `firing`). `since` is when this
    /// scheduler began (Unix seconds): earlier ticks are missed ones.
    /// Returns the earliest upcoming tick of any schedule.
    pub async fn fire_due_schedules(
        &self,
        since: i64,
        firing: &mut tokio::task::JoinSet<()>,
    ) -> CoreResult<Option<i64>> {
        let now = unix(SystemTime::now());
        let mut upcoming: Option<i64> = None;
        for record in self.s.store.schedules(None).await? {
            let cadence = match record.spec.cadence() {
                Ok(cadence) => cadence,
                Err(e) => {
                    tracing::warn!(function = %record.function, schedule = %record.id, error = %e, "a stored schedule cannot fire");
                    continue;
                }
            };
            if let Some(due) = due(&cadence, record.last_tick, now, since, record.spec.catch_up) {
                // Claims and runs go straight to the store: memory does not
                // mirror them (see the module doc).
                let claimed = self
                    .s
                    .store
                    .commit(vec![Change::ClaimTick {
                        function: record.function.clone(),
                        id: record.id.clone(),
                        from: record.last_tick,
                        to: due.claim,
                    }])
                    .await?;
                if claimed[0].applied() {
                    if due.fire.is_empty() {
                        tracing::info!(function = %record.function, schedule = %record.id, up_to = %rfc3339(due.claim), "missed ticks skipped (catch_up = skip)");
                    }
                    for (tick, catch_up) in due.fire {
                        firing.spawn(self.clone().fire(record.clone(), tick, catch_up));
                    }
                } else {
                    tracing::debug!(function = %record.function, schedule = %record.id, "another scheduler claimed the tick");
                }
            }
            if let Some(next) = cadence.next_after(now) {
                upcoming = Some(upcoming.map_or(next, |u| u.min(next)));
            }
        }
        Ok(upcoming)
    }

    /// Invokes the function with the tick's request; its status and its
    /// whole response body (bounded like every body Flint buffers).
    async fn call(
        &self,
        record: &ScheduleRecord,
        tick: i64,
    ) -> CoreResult<(http::StatusCode, Result<Bytes, crate::limits::LimitError>)> {
        let request = tick_request(record, tick)?;
        let invoked = self
            .invoker()
            .invoke(&record.function, Target::Default, request)
            .await?;
        let status = invoked.response.status();
        let body = crate::limits::read_limited(
            invoked.response.into_body(),
            self.s.limits.buffered_response,
        )
        .await;
        Ok((status, body))
    }

    /// Runs one tick of `record` through the invoke path and records it.
    async fn fire(self, record: ScheduleRecord, tick: i64, catch_up: bool) {
        let started_at = SystemTime::now();
        let started = Instant::now();
        let (outcome, status, response) = match self.call(&record, tick).await {
            Ok((status, Ok(body))) => {
                let outcome = if status.is_success() {
                    "ok"
                } else {
                    "bad_status"
                };
                (
                    outcome.to_string(),
                    Some(status.as_u16()),
                    Some(excerpt(&body)),
                )
            }
            Ok((status, Err(e))) => (
                "response_failed".to_string(),
                Some(status.as_u16()),
                Some(format!("reading the response failed: {e}")),
            ),
            Err(e) => (e.code().to_string(), None, Some(e.to_string())),
        };
        let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        self.s.metrics.schedule_fired(&record.function, &outcome);
        tracing::info!(function = %record.function, schedule = %record.id, tick = %rfc3339(tick), catch_up, %outcome, duration_ms, "schedule fired");
        let run = RunRecord {
            scheduled: tick,
            started_at,
            outcome,
            status,
            duration_ms,
            catch_up,
            response,
        };
        let recorded = self
            .s
            .store
            .commit(vec![Change::RecordRun {
                function: record.function.clone(),
                id: record.id.clone(),
                run: Box::new(run),
            }])
            .await;
        if let Err(e) = recorded {
            tracing::warn!(function = %record.function, schedule = %record.id, error = %e, "could not record a schedule's run");
        }
    }
}

/// The start of a response body as text, kept with its run.
fn excerpt(body: &[u8]) -> String {
    let kept = &body[..body.len().min(MAX_RUN_RESPONSE_BYTES)];
    let mut text = String::from_utf8_lossy(kept).into_owned();
    if body.len() > kept.len() {
        text.push('…');
    }
    text
}

/// The CloudEvent of one tick, in HTTP binary mode.
fn tick_request(
    record: &ScheduleRecord,
    tick: i64,
) -> CoreResult<http::Request<flint_runtime::HyperIncomingBody>> {
    let spec = &record.spec;
    let mut builder = http::Request::builder()
        .method(http::Method::POST)
        .uri(format!("http://localhost{}", spec.path))
        .header("ce-specversion", "1.0")
        .header("ce-type", CE_TYPE)
        .header("ce-source", format!("flint/schedules/{}", record.id))
        .header("ce-id", format!("{}-{tick}", record.id))
        .header("ce-time", rfc3339(tick));
    if let Some(body) = &spec.body {
        let json = serde_json::from_str::<serde::de::IgnoredAny>(body).is_ok();
        let content_type = if json {
            "application/json"
        } else {
            "text/plain; charset=utf-8"
        };
        builder = builder.header(http::header::CONTENT_TYPE, content_type);
    }
    let body = Full::new(Bytes::from(spec.body.clone().unwrap_or_default()))
        .map_err(|never| match never {})
        .boxed_unsync();
    builder
        .body(body)
        .map_err(|e| CoreError::BadRequest(format!("the schedule's request cannot be made: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_2s() -> Cadence {
        ScheduleSpec {
            cron: "*/2 * * * * *".into(),
            tz: "UTC".into(),
            path: "/".into(),
            body: None,
            catch_up: CatchUp::Skip,
        }
        .cadence()
        .unwrap()
    }

    const T: i64 = 1_800_000_000;

    #[tokio::test]
    async fn a_tick_is_a_cloud_event_at_the_scheduled_second() {
        let record = ScheduleRecord {
            id: "3f9a1c2b4d5e".into(),
            function: "f".into(),
            spec: ScheduleSpec {
                cron: "*/2 * * * * *".into(),
                tz: "Europe/Berlin".into(),
                path: "/tick?x=1".into(),
                body: Some("ping".into()),
                catch_up: CatchUp::Skip,
            },
            last_tick: T,
            created_at: UNIX_EPOCH,
        };
        let request = tick_request(&record, T + 2).unwrap();
        assert_eq!(request.method(), http::Method::POST);
        assert_eq!(request.uri().path_and_query().unwrap(), "/tick?x=1");
        let header = |name: &str| request.headers()[name].to_str().unwrap().to_string();
        assert_eq!(header("ce-specversion"), "1.0");
        assert_eq!(header("ce-type"), "com.flint.schedule");
        assert_eq!(header("ce-source"), "flint/schedules/3f9a1c2b4d5e");
        assert_eq!(header("ce-id"), format!("3f9a1c2b4d5e-{}", T + 2));
        assert_eq!(header("ce-time"), "2027-01-15T08:00:02Z");
        assert_eq!(header("content-type"), "text/plain; charset=utf-8");
        let body = request.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "ping");
    }

    #[test]
    fn nothing_is_due_before_the_next_tick() {
        assert_eq!(due(&every_2s(), T, T + 1, T - 100, CatchUp::Once), None);
    }

    #[test]
    fn an_on_time_tick_fires_once_claimed() {
        let due = due(&every_2s(), T, T + 2, T - 100, CatchUp::Skip).unwrap();
        assert_eq!(
            due,
            Due {
                claim: T + 2,
                fire: vec![(T + 2, false)]
            }
        );
    }

    #[test]
    fn missed_ticks_are_skipped_or_caught_up_once() {
        // Down from T until T + 9; the scheduler started at T + 9.
        let skip = due(&every_2s(), T, T + 9, T + 9, CatchUp::Skip).unwrap();
        assert_eq!(
            skip,
            Due {
                claim: T + 8,
                fire: vec![]
            }
        );
        let once = due(&every_2s(), T, T + 9, T + 9, CatchUp::Once).unwrap();
        assert_eq!(
            once,
            Due {
                claim: T + 8,
                fire: vec![(T + 8, true)]
            }
        );
        // Started at T + 9, now T + 10: the missed T + 8 and the on-time
        // T + 10.
        let both = due(&every_2s(), T, T + 10, T + 9, CatchUp::Once).unwrap();
        assert_eq!(both.fire, [(T + 8, true), (T + 10, false)]);
    }

    #[test]
    fn a_late_loop_fires_a_bounded_number_of_on_time_ticks() {
        let late = due(&every_2s(), T, T + 100, T, CatchUp::Skip).unwrap();
        assert_eq!(late.claim, T + 100);
        assert_eq!(late.fire.len(), MAX_FIRINGS_PER_PASS);
        assert_eq!(late.fire.last(), Some(&(T + 100, false)));
    }
}
