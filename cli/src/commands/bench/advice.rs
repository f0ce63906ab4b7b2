//! What a bench report suggests: plain sentences, each naming the setting it concerns
//! and the figures behind it. Advice to reuse instances is given only when the bench
//! checked that a reused instance answers as a fresh one.

use super::load;
use super::{Report, human_us};
use crate::output::human_size;

/// How much cheaper one start must be than another before it is worth a setting.
const WORTH: f64 = 1.5;
/// A component this large costs more to map and reset.
const LARGE_COMPONENT: u64 = 4 << 20;
/// Memory above this share of the cap is close to `memory_limit_exceeded`.
const MEMORY_HIGH: f64 = 0.8;
/// Requests per instance suggested when reuse is safe and worth it.
const SUGGESTED_REUSE: u32 = 100;

/// The advice for `report`, with the load run's figures when there was one.
pub(crate) fn advise(report: &Report, load: Option<&load::Report>) -> Vec<String> {
    let mut advice = Vec::new();
    if let Some(response) = &report.response
        && response.status >= 400
    {
        advice.push(format!(
            "the sample request got status {}: check --path, -X and --data, or these figures measure an error path",
            response.status
        ));
    }
    let p50 = |kind: &str| report.kind(kind).and_then(|k| k.p50_us);
    let p99 = |kind: &str| report.kind(kind).and_then(|k| k.p99_us);
    let config = &report.config;

    if let (Some(cold), Some(warm), Some(cold99), Some(warm99)) =
        (p50("cold"), p50("warm"), p99("cold"), p99("warm"))
        && config.min_instances == 0
        && cold >= warm * WORTH
    {
        let ratio = cold / warm;
        let text = match load.and_then(|l| l.mode("fresh")) {
            Some(fresh) if fresh.req_per_s > 0.0 => {
                // Little's law: instances busy at once = rate x time each is busy.
                let busy = (fresh.req_per_s * warm / 1e6).ceil() as u32 + 1;
                let k = busy.clamp(1, config.max_concurrency.max(1));
                format!(
                    "cold is {ratio:.1}× warm: `min_instances = {k}` would take a start's p99 from {} to {} at {:.0} req/s",
                    human_us(cold99),
                    human_us(warm99),
                    fresh.req_per_s
                )
            }
            _ => format!(
                "cold is {ratio:.1}× warm: `min_instances = 1` would take a start's p99 from {} to {} while calls come one at a time (`--load` sizes it for a rate)",
                human_us(cold99),
                human_us(warm99)
            ),
        };
        advice.push(text);
    }

    let fresh_kind = if config.min_instances > 0 {
        "warm"
    } else {
        "cold"
    };
    if let (Some(fresh), Some(reuse)) = (p50(fresh_kind), p50("reuse"))
        && fresh >= reuse * WORTH
    {
        let ratio = fresh / reuse;
        let check = &report.reuse_check;
        let over_http = load
            .and_then(|l| Some((l.mode("fresh")?, l.mode("reuse")?)))
            .map(|(f, r)| {
                format!(
                    "; over HTTP it served {:.0} req/s against {:.0}",
                    r.req_per_s, f.req_per_s
                )
            })
            .unwrap_or_default();
        let text = match (check.verdict.as_str(), config.max_requests_per_instance) {
            ("identical", 1) => Some(format!(
                "reuse is {ratio:.1}× cheaper than a fresh instance (p50 {} against {}){over_http}; this component survives reuse (tested: a reused instance answered identically {} times): consider `max_requests_per_instance = {SUGGESTED_REUSE}`, if no caller's data may stay in memory for the next",
                human_us(reuse),
                human_us(fresh),
                check.compared
            )),
            ("differs", n) => Some(format!(
                "reuse would be {ratio:.1}× cheaper, but {}: {}",
                check.detail,
                if n > 1 {
                    format!(
                        "this function reuses instances (`max_requests_per_instance = {n}`); set it to 1"
                    )
                } else {
                    "keep a fresh instance per request".to_string()
                }
            )),
            ("varies", 1) => Some(format!(
                "reuse would be {ratio:.1}× cheaper, but the answers vary between fresh instances, so the bench could not check that reuse is safe: test it yourself before setting `max_requests_per_instance`"
            )),
            _ => None,
        };
        advice.extend(text);
    }

    if let (Some(disk), Some(cold)) = (p50("disk"), p50("cold"))
        && config.min_instances == 0
        && disk >= cold * 10.0
    {
        advice.push(format!(
            "the first call after a restart or an idle unload costs {} (disk) instead of {}: `min_instances = 1` keeps the version loaded",
            human_us(disk),
            human_us(cold)
        ));
    }

    let cap = u64::from(config.memory_mb) << 20;
    if let Some(used) = report.kinds.iter().filter_map(|k| k.memory_bytes).max()
        && cap > 0
        && used as f64 > cap as f64 * MEMORY_HIGH
    {
        advice.push(format!(
            "an instance holds {} of its {} cap after this request: a larger input may fail with memory_limit_exceeded; raise memory_mb",
            human_size(used),
            human_size(cap)
        ));
    }

    if report.size_bytes >= LARGE_COMPONENT
        && let Some(cold) = p50("cold")
    {
        advice.push(format!(
            "the component is {} and a cold start {}: a smaller component (wasm-opt -Os, fewer dependencies) maps, instantiates and resets faster",
            human_size(report.size_bytes),
            human_us(cold)
        ));
    }

    for mode in load.map(|l| l.modes.as_slice()).unwrap_or_default() {
        if mode.errors > 0 {
            let statuses: Vec<String> = mode
                .statuses
                .iter()
                .map(|(status, n)| format!("{status}: {n}"))
                .collect();
            advice.push(format!(
                "{} of {} requests failed in {} mode ({}): 429 means more calls than max_concurrency and its queue allow",
                mode.errors,
                mode.requests,
                mode.mode,
                statuses.join(", ")
            ));
        }
    }
    advice
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn report(min_instances: u32, max_requests: u32, verdict: &str) -> Report {
        serde_json::from_value(json!({
            "version": 1, "size_bytes": 100_000, "compile_ms": 40.0, "stopped_by": "samples",
            "request": {"method": "GET", "path": "/"},
            "config": {"memory_mb": 128, "timeout_ms": 10_000, "max_concurrency": 64,
                       "min_instances": min_instances, "max_requests_per_instance": max_requests},
            "kinds": [
                {"kind": "disk", "samples": 10, "p50_us": 900.0, "p90_us": 1000.0, "p99_us": 1100.0, "memory_bytes": 1_100_000},
                {"kind": "cold", "samples": 10, "p50_us": 27.0, "p90_us": 30.0, "p99_us": 40.0, "memory_bytes": 1_100_000},
                {"kind": "warm", "samples": 10, "p50_us": 9.0, "p90_us": 10.0, "p99_us": 12.0, "memory_bytes": 1_100_000},
                {"kind": "reuse", "samples": 10, "p50_us": 6.0, "p90_us": 7.0, "p99_us": 8.0, "memory_bytes": 1_100_000}
            ],
            "response": {"status": 200, "body_bytes": 18},
            "reuse_check": {"verdict": verdict, "compared": 10, "detail": "request 2 on a reused instance answered differently"},
            "failure": null
        }))
        .unwrap()
    }

    #[test]
    fn cold_against_warm_suggests_min_instances() {
        let advice = advise(&report(0, 1, "identical"), None);
        assert!(
            advice[0].starts_with("cold is 3.0× warm: `min_instances = 1`"),
            "{advice:?}"
        );
        assert!(advice[0].contains("from 40.0 µs to 12.0 µs"), "{advice:?}");
        assert!(
            advise(&report(2, 1, "identical"), None)
                .iter()
                .all(|a| !a.contains("min_instances = "))
        );
    }

    #[test]
    fn reuse_is_suggested_only_when_tested_safe() {
        let safe = advise(&report(0, 1, "identical"), None);
        assert!(
            safe.iter()
                .any(|a| a.contains("survives reuse")
                    && a.contains("max_requests_per_instance = 100")),
            "{safe:?}"
        );
        for verdict in ["differs", "varies", "untested"] {
            let advice = advise(&report(0, 1, verdict), None);
            assert!(
                advice
                    .iter()
                    .all(|a| !a.contains("max_requests_per_instance = 100")),
                "{verdict}: {advice:?}"
            );
        }
        let stateful = advise(&report(0, 5, "differs"), None);
        assert!(
            stateful.iter().any(|a| a.contains("set it to 1")),
            "{stateful:?}"
        );
    }

    #[test]
    fn an_error_status_is_pointed_out() {
        let mut r = report(0, 1, "identical");
        r.response.as_mut().unwrap().status = 404;
        assert!(advise(&r, None)[0].contains("status 404"));
    }
}
