//! A function's cron schedule ([`ScheduleSpec`]), its validation, and the
//! arithmetic of its ticks ([`Cadence`]).
//!
//! A cron expression has five fields (`minute hour day-of-month month
//! day-of-week`) or six with seconds first (`second minute hour ...`). Ticks
//! are whole seconds, evaluated in the schedule's IANA time zone (`UTC` by
//! default), so that `0 9 * * 1-5` in `Europe/Berlin` fires at nine o'clock
//! Berlin time on both sides of a daylight-saving change.

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use serde::{Deserialize, Serialize};

/// The time zone of a schedule that names none.
pub const DEFAULT_TZ: &str = "UTC";
/// The path a schedule calls when it names none.
pub const DEFAULT_PATH: &str = "/";
/// Largest `body` of a schedule, in bytes (64 KiB): the body is stored with
/// the schedule and sent with every tick.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Longest `path`, in bytes.
pub const MAX_PATH_BYTES: usize = 1024;
/// Longest cron expression, in bytes.
pub const MAX_CRON_BYTES: usize = 256;
/// Most schedules one function may have.
pub const MAX_SCHEDULES_PER_FUNCTION: usize = 10;
/// Runs kept per schedule (the most recent).
pub const MAX_RUNS: usize = 20;
/// Bytes of a run's response body kept with the run (its start).
pub const MAX_RUN_RESPONSE_BYTES: usize = 1024;

/// A valid example, shown by errors.
const EXAMPLE: &str = "`*/5 * * * *` (every 5 minutes) or `*/2 * * * * *` (every 2 seconds)";

/// What a schedule does about ticks that passed while no scheduler ran
/// (the server was down, or a cluster was changing leader).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", try_from = "String")]
pub enum CatchUp {
    /// Fire nothing for missed ticks; continue with the next one.
    #[default]
    Skip,
    /// Fire one run for the most recent missed tick, then continue.
    Once,
}

impl CatchUp {
    /// The spelling in manifests, flags and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Skip => "skip",
            Self::Once => "once",
        }
    }
}

impl TryFrom<String> for CatchUp {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        match value.as_str() {
            "skip" => Ok(Self::Skip),
            "once" => Ok(Self::Once),
            other => Err(format!(
                "invalid `catch_up`: {other:?}; use `skip` (fire nothing for missed ticks) or `once` (one run for the most recent missed tick)"
            )),
        }
    }
}

fn default_tz() -> String {
    DEFAULT_TZ.into()
}
fn default_path() -> String {
    DEFAULT_PATH.into()
}

/// Invokes a function on a cron schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    /// Five fields (minute first) or six (second first).
    pub cron: String,
    /// IANA time zone the expression is read in.
    #[serde(default = "default_tz")]
    pub tz: String,
    /// Path (and query) each tick's request goes to.
    #[serde(default = "default_path")]
    pub path: String,
    /// Body of each tick's request (none: empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// What to do about ticks missed while no scheduler ran.
    #[serde(default)]
    pub catch_up: CatchUp,
}

impl ScheduleSpec {
    /// Checks every field; the error names the field (and, for a cron
    /// expression, which of its fields is wrong) and shows a valid value.
    pub fn validate(&self) -> Result<(), String> {
        self.cadence().map(|_| ())?;
        validate_path(&self.path)?;
        if let Some(body) = &self.body
            && body.len() > MAX_BODY_BYTES
        {
            return Err(format!(
                "invalid `body`: {} bytes is over the limit of {MAX_BODY_BYTES} bytes; send large inputs another way (a queue, or a URL in the body)",
                body.len()
            ));
        }
        Ok(())
    }

    /// The expression and zone, parsed: what computes the ticks.
    pub fn cadence(&self) -> Result<Cadence, String> {
        let cron = parse_cron(&self.cron)?;
        let tz: Tz = self.tz.parse().map_err(|_| {
            format!(
                "invalid `tz`: {:?} is not an IANA time zone; use a name such as `UTC`, `Europe/Berlin` or `America/New_York`",
                self.tz
            )
        })?;
        let cadence = Cadence { cron, tz };
        // An expression that names no real time (31 February) would leave
        // the scheduler searching forever.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        if cadence.next_after(now).is_none() {
            return Err(format!(
                "invalid `cron`: {:?} never fires (no date matches it); try {EXAMPLE}",
                self.cron
            ));
        }
        Ok(cadence)
    }
}

fn validate_path(path: &str) -> Result<(), String> {
    let ok = path.starts_with('/')
        && path.len() <= MAX_PATH_BYTES
        && !path.contains('#')
        && path
            .parse::<http::uri::PathAndQuery>()
            .is_ok_and(|p| p.as_str() == path);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid `path`: {path:?}; use a URL path of at most {MAX_PATH_BYTES} bytes starting with `/`, such as `/tick` or `/report?daily=1`"
        ))
    }
}

/// The names of the fields of a five-field expression.
const FIELDS: [&str; 5] = ["minute", "hour", "day-of-month", "month", "day-of-week"];

/// What a field takes, by name.
fn allowed(field: &str) -> &'static str {
    match field {
        "second" | "minute" => "0-59",
        "hour" => "0-23",
        "day-of-month" => "1-31 or L (the last day)",
        "month" => "1-12 or JAN-DEC",
        _ => "0-7 or SUN-SAT (0 and 7 are Sunday)",
    }
}

fn parser() -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
}

/// Parses a five- or six-field expression; the error names the field that
/// is wrong.
fn parse_cron(expression: &str) -> Result<Cron, String> {
    let fields: Vec<&str> = expression.split_whitespace().collect();
    let names: Vec<&str> = match fields.len() {
        5 => FIELDS.to_vec(),
        6 => std::iter::once("second").chain(FIELDS).collect(),
        n => {
            return Err(format!(
                "invalid `cron`: {expression:?} has {n} field(s); write five (minute hour day-of-month month day-of-week) or six with seconds first, such as {EXAMPLE}"
            ));
        }
    };
    if expression.len() > MAX_CRON_BYTES || fields.iter().any(|f| f.starts_with('@')) {
        return Err(format!(
            "invalid `cron`: {expression:?}; write five fields (minute hour day-of-month month day-of-week) or six with seconds first, such as {EXAMPLE}"
        ));
    }
    let parser = parser();
    match parser.parse(expression) {
        Ok(cron) => Ok(cron),
        Err(whole) => {
            // Which field: each alone, the others `*`.
            for (i, field) in fields.iter().enumerate() {
                let alone: Vec<&str> = (0..fields.len())
                    .map(|j| if i == j { *field } else { "*" })
                    .collect();
                if let Err(e) = parser.parse(&alone.join(" ")) {
                    return Err(format!(
                        "invalid `cron`: its {} field {field:?} is not valid ({e}; it takes {}, `*`, ranges `a-b`, lists `a,b` and steps `*/n`); a valid expression is {EXAMPLE}",
                        names[i],
                        allowed(names[i])
                    ));
                }
            }
            Err(format!(
                "invalid `cron`: {expression:?} is not valid ({whole}); a valid expression is {EXAMPLE}"
            ))
        }
    }
}

/// A schedule's expression in its time zone: which whole seconds are ticks.
#[derive(Debug, Clone)]
pub struct Cadence {
    cron: Cron,
    tz: Tz,
}

impl Cadence {
    fn at(&self, unix: i64) -> Option<DateTime<Tz>> {
        self.tz.timestamp_opt(unix, 0).single()
    }

    /// The first tick strictly after `unix` (seconds), if any.
    pub fn next_after(&self, unix: i64) -> Option<i64> {
        let from = self.at(unix)?;
        self.cron
            .find_next_occurrence(&from, false)
            .ok()
            .map(|t| t.timestamp())
    }

    /// The last tick at or before `unix` (seconds), if any.
    pub fn latest_until(&self, unix: i64) -> Option<i64> {
        let from = self.at(unix)?;
        self.cron
            .find_previous_occurrence(&from, true)
            .ok()
            .map(|t| t.timestamp())
    }

    /// The ticks in `(after, until]`, most recent first, at most `limit`.
    pub fn ticks_between(&self, after: i64, until: i64, limit: usize) -> Vec<i64> {
        let mut ticks = Vec::new();
        let mut at = until;
        while ticks.len() < limit {
            match self.latest_until(at) {
                Some(tick) if tick > after => {
                    ticks.push(tick);
                    at = tick - 1;
                }
                _ => break,
            }
        }
        ticks
    }
}

/// A tick's time as RFC 3339, whole seconds, UTC (`2026-01-01T09:00:00Z`).
pub fn rfc3339(unix: i64) -> String {
    Utc.timestamp_opt(unix, 0)
        .single()
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> Result<ScheduleSpec, String> {
        let spec: ScheduleSpec = serde_json::from_str(json).map_err(|e| e.to_string())?;
        spec.validate().map(|()| spec)
    }

    #[test]
    fn defaults() {
        let s = spec(r#"{"cron":"*/5 * * * *"}"#).unwrap();
        assert_eq!(
            (s.tz.as_str(), s.path.as_str(), s.catch_up),
            ("UTC", "/", CatchUp::Skip)
        );
        assert_eq!(s.body, None);
    }

    #[test]
    fn five_fields_are_minutes_six_start_with_seconds() {
        let t0 = 1_800_000_000; // 2027-01-15T08:00:00Z
        let minutes = spec(r#"{"cron":"*/5 * * * *"}"#)
            .unwrap()
            .cadence()
            .unwrap();
        assert_eq!(minutes.next_after(t0), Some(t0 + 300));
        let seconds = spec(r#"{"cron":"*/2 * * * * *"}"#)
            .unwrap()
            .cadence()
            .unwrap();
        assert_eq!(seconds.next_after(t0), Some(t0 + 2));
        assert_eq!(seconds.latest_until(t0 + 3), Some(t0 + 2));
        assert_eq!(
            seconds.ticks_between(t0, t0 + 7, 10),
            [t0 + 6, t0 + 4, t0 + 2]
        );
        assert_eq!(seconds.ticks_between(t0, t0 + 7, 2), [t0 + 6, t0 + 4]);
        assert_eq!(rfc3339(t0), "2027-01-15T08:00:00Z");
    }

    #[test]
    fn the_time_zone_decides_the_hour() {
        let t0 = 1_800_000_000; // 2027-01-15T08:00:00Z = 09:00 in Berlin
        let berlin = spec(r#"{"cron":"0 10 * * *","tz":"Europe/Berlin"}"#)
            .unwrap()
            .cadence()
            .unwrap();
        assert_eq!(berlin.next_after(t0), Some(t0 + 3600));
    }

    #[test]
    fn daylight_saving_changes_keep_the_wall_clock_hour() {
        let berlin = spec(r#"{"cron":"0 9 * * *","tz":"Europe/Berlin"}"#)
            .unwrap()
            .cadence()
            .unwrap();
        // 2027-03-27 09:00 CET is 08:00 UTC; the next day, after clocks
        // went forward, 09:00 CEST is 07:00 UTC: 23 hours later.
        let saturday = 1_806_134_400; // 2027-03-27T08:00:00Z
        assert_eq!(rfc3339(saturday), "2027-03-27T08:00:00Z");
        assert_eq!(berlin.next_after(saturday), Some(saturday + 23 * 3600));
    }

    #[test]
    fn invalid_specs_name_the_field() {
        for (json, needle) in [
            (r#"{"cron":"* * * *"}"#, "4 field(s)"),
            (r#"{"cron":"* * * * * * *"}"#, "7 field(s)"),
            (r#"{"cron":"61 * * * *"}"#, "minute field"),
            (r#"{"cron":"* 25 * * *"}"#, "hour field"),
            (r#"{"cron":"* * * 13 *"}"#, "month field"),
            (r#"{"cron":"* * * * xyz"}"#, "day-of-week field"),
            (r#"{"cron":"99 * * * * *"}"#, "second field"),
            (r#"{"cron":"0 0 31 2 *"}"#, "never fires"),
            (r#"{"cron":"@hourly"}"#, "1 field(s)"),
            (r#"{"cron":"* * * * *","tz":"Mars/Olympus"}"#, "`tz`"),
            (r#"{"cron":"* * * * *","path":"tick"}"#, "`path`"),
            (r#"{"cron":"* * * * *","path":"/a b"}"#, "`path`"),
            (r#"{"cron":"* * * * *","catch_up":"all"}"#, "catch_up"),
            (r#"{"cron":"* * * * *","bogus":1}"#, "bogus"),
        ] {
            let err = spec(json).unwrap_err();
            assert!(err.contains(needle), "{json}: {err}");
        }
        let big = format!(
            r#"{{"cron":"* * * * *","body":"{}"}}"#,
            "x".repeat(MAX_BODY_BYTES + 1)
        );
        assert!(spec(&big).unwrap_err().contains("`body`"));
    }

    #[test]
    fn an_invalid_cron_error_shows_a_valid_example() {
        let err = spec(r#"{"cron":"*/0 * * * *"}"#).unwrap_err();
        assert!(err.contains("*/5 * * * *"), "{err}");
    }
}
