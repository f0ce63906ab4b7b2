//! `flint info NAME`: a function's configuration, statistics and versions.

use std::time::SystemTime;

use anyhow::Context as _;
use clap::Args;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::config::config_text;
use super::parse_function_name;
use crate::Context;
use crate::output::{self, age, human_ms, human_size, short_hex};

/// The statistics in the order people read them; counters a newer server adds follow.
const STATS_KEYS: &[&str] = &[
    "invocations",
    "errors",
    "in_flight",
    "warm_instances",
    "warm_starts",
    "cold_starts",
    "disk_loads",
    "compiles",
];

/// Flags of `flint info`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  flint info hello
  flint info hello --json | jq '.versions[-1].digest'")]
pub struct InfoArgs {
    /// Name of the function
    #[arg(value_parser = parse_function_name)]
    pub name: String,
}

/// The body of `GET /v1/functions/NAME`.
#[derive(Debug, Deserialize)]
struct FunctionInfo {
    name: String,
    latest_version: Option<u64>,
    #[serde(default)]
    config: Value,
    #[serde(default)]
    versions: Vec<VersionInfo>,
    #[serde(default)]
    stats: Map<String, Value>,
    /// Why calls fail; `None` while it serves.
    #[serde(default)]
    disabled: Option<String>,
}

#[derive(Debug, Deserialize)]
struct VersionInfo {
    version: u64,
    digest: String,
    size_bytes: u64,
    created_at: String,
    #[serde(default)]
    compile_ms: Option<f64>,
    /// `http`, `http-p3` or `wagi` (absent from older servers).
    #[serde(default)]
    kind: Option<String>,
}

/// Runs `flint info`.
pub async fn run(ctx: &Context, args: InfoArgs) -> anyhow::Result<()> {
    let response = ctx
        .client
        .get(ctx.client.function_url(&args.name, &[]))
        .await?;
    if ctx.json {
        output::print_json(&response)?;
        return Ok(());
    }
    let info: FunctionInfo = serde_json::from_value(response)
        .context("unexpected function description from the server")?;
    output::print(&render(&info, SystemTime::now()))?;
    Ok(())
}

fn render(info: &FunctionInfo, now: SystemTime) -> String {
    let mut versions: Vec<_> = info.versions.iter().collect();
    versions.sort_by_key(|v| std::cmp::Reverse(v.version));
    let rows: Vec<Vec<String>> = versions
        .into_iter()
        .map(|v| {
            let version = if Some(v.version) == info.latest_version {
                format!("{} (latest)", v.version)
            } else {
                v.version.to_string()
            };
            vec![
                version,
                v.kind.clone().unwrap_or_else(|| "http".to_owned()),
                short_hex(&v.digest).to_owned(),
                human_size(v.size_bytes),
                v.compile_ms.map_or_else(|| "-".to_owned(), human_ms),
                age(&v.created_at, now),
            ]
        })
        .collect();
    let versions = output::table(
        &["VERSION", "KIND", "DIGEST", "SIZE", "COMPILE", "CREATED"],
        &rows,
        &[3, 4],
    );
    let mut stats = info.stats.clone();
    if let Some(bench) = stats.get("bench").and_then(bench_line) {
        stats.insert("bench".into(), Value::String(bench));
    }
    let stats = output::key_values(&output::object_pairs(&stats, STATS_KEYS), 2);
    let disabled = info.disabled.as_ref().map_or_else(String::new, |reason| {
        format!("\nDisabled: {reason}\n  (run `flint doctor` to check and repair)\n")
    });
    let config = format!(
        "{}{}{}",
        config_text(&info.config, 2),
        wagi_note(info),
        concurrency_note(info)
    );
    format!(
        "{name} (latest version {latest})\n{disabled}\n\
         Config:\n{config}\n\n\
         Stats:\n{stats}\n\n\
         Versions:\n{versions}",
        name = info.name,
        latest = info
            .latest_version
            .map_or_else(|| "none".to_owned(), |v| v.to_string()),
        versions = indent(&versions, 2),
    )
}

/// Which instance settings a function's WAGI versions leave unused, as a
/// note under the config; empty when none applies.
fn wagi_note(info: &FunctionInfo) -> String {
    if !info
        .versions
        .iter()
        .any(|v| v.kind.as_deref() == Some("wagi"))
    {
        return String::new();
    }
    let setting = |name: &'static str, default: u64| {
        let value = info.config.get(name).and_then(Value::as_u64);
        value.filter(|v| *v != default).map(|_| name)
    };
    let unused: Vec<&str> = [
        setting("min_instances", 0),
        setting("max_requests_per_instance", 1),
    ]
    .into_iter()
    .flatten()
    .collect();
    if unused.is_empty() {
        return String::new();
    }
    let verb = if unused.len() == 1 {
        "applies"
    } else {
        "apply"
    };
    format!(
        "\n  ({} {verb} to wasi:http versions only: a WAGI module starts fresh for every request)",
        unused.join(" and ")
    )
}

/// A note under the config when `max_concurrent_requests_per_instance` is
/// set and some version is not a WASI 0.3 component, which is the only kind
/// it applies to; empty otherwise.
fn concurrency_note(info: &FunctionInfo) -> String {
    let set = info
        .config
        .get("max_concurrent_requests_per_instance")
        .and_then(Value::as_u64)
        .is_some_and(|n| n != 1);
    let other_kinds = info
        .versions
        .iter()
        .any(|v| v.kind.as_deref().is_some_and(|kind| kind != "http-p3"));
    if set && other_kinds {
        "\n  (max_concurrent_requests_per_instance applies to WASI 0.3 versions only: \
         a WASI 0.2 instance or a WAGI module serves one request at a time)"
            .to_owned()
    } else {
        String::new()
    }
}

/// The calls `flint bench` ran, in one line: `120 calls, 0 errors (40 cold, 80 warm
/// starts)`; `None` for anything but the server's bench counters.
fn bench_line(bench: &Value) -> Option<String> {
    let count = |key: &str| bench.get(key)?.as_u64();
    Some(format!(
        "{} calls, {} errors ({} cold, {} warm starts); counted apart from the above",
        count("invocations")?,
        count("errors")?,
        count("cold_starts")?,
        count("warm_starts")?
    ))
}

fn indent(text: &str, by: usize) -> String {
    text.lines()
        .map(|line| format!("{:by$}{line}", ""))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn description() {
        let info: FunctionInfo = serde_json::from_value(json!({
            "name": "hello",
            "latest_version": 2,
            "config": {
                "memory_mb": 128, "timeout_ms": 30000, "max_concurrency": 64,
                "max_queue": 128, "queue_timeout_ms": 10000, "min_instances": 0,
                "max_requests_per_instance": 1, "env": {}, "allowed_outbound_hosts": ["a.com"],
            },
            "versions": [
                {"version": 1, "digest": "sha256:1111111111111111", "size_bytes": 900,
                 "created_at": "2026-11-24T10:00:00Z", "compile_ms": 3.25, "kind": "wagi"},
                {"version": 2, "digest": "sha256:2222222222222222", "size_bytes": 12_390,
                 "created_at": "2026-11-26T09:59:00Z", "compile_ms": 120.5, "kind": "http"},
            ],
            "stats": {"invocations": 42, "errors": 1, "in_flight": 0, "warm_instances": 0,
                      "warm_starts": 0, "cold_starts": 42, "disk_loads": 1, "compiles": 2,
                      "bench": {"invocations": 120, "errors": 0, "cold_starts": 40,
                                "warm_starts": 80}},
        }))
        .unwrap();
        let now = humantime::parse_rfc3339("2026-11-26T10:00:00Z").unwrap();
        assert_eq!(
            render(&info, now),
            "\
hello (latest version 2)

Config:
  memory_mb                  128
  timeout_ms                 30000
  max_concurrency            64
  max_queue                  128
  queue_timeout_ms           10000
  min_instances              0
  max_requests_per_instance  1
  env                        (none)
  allowed_outbound_hosts     a.com

Stats:
  invocations     42
  errors          1
  in_flight       0
  warm_instances  0
  warm_starts     0
  cold_starts     42
  disk_loads      1
  compiles        2
  bench           120 calls, 0 errors (40 cold, 80 warm starts); counted apart from the above

Versions:
  VERSION     KIND  DIGEST            SIZE  COMPILE  CREATED
  2 (latest)  http  222222222222  12.1 KiB   120 ms  1m ago
  1           wagi  111111111111     900 B   3.2 ms  2d ago"
        );
    }

    #[test]
    fn instance_settings_a_kind_leaves_unused_are_noted() {
        let info = |config: Value, kind: &str| -> FunctionInfo {
            serde_json::from_value(json!({
                "name": "w", "latest_version": 1, "config": config,
                "versions": [{"version": 1, "digest": "sha256:11", "size_bytes": 1,
                              "created_at": "2026-11-26T09:59:00Z", "kind": kind}],
            }))
            .unwrap()
        };
        let tuned = json!({"min_instances": 2, "max_requests_per_instance": 100});
        assert_eq!(
            wagi_note(&info(tuned.clone(), "wagi")),
            "\n  (min_instances and max_requests_per_instance apply to wasi:http versions only: \
             a WAGI module starts fresh for every request)"
        );
        assert_eq!(wagi_note(&info(tuned, "http")), "");
        let defaults = json!({"min_instances": 0, "max_requests_per_instance": 1});
        assert_eq!(wagi_note(&info(defaults, "wagi")), "");
        let text = render(
            &info(json!({"min_instances": 1}), "wagi"),
            SystemTime::now(),
        );
        assert!(
            text.contains("  (min_instances applies to wasi:http versions only"),
            "{text}"
        );
        let concurrent = json!({"max_concurrent_requests_per_instance": 8});
        let note = "\n  (max_concurrent_requests_per_instance applies to WASI 0.3 versions \
                    only: a WASI 0.2 instance or a WAGI module serves one request at a time)";
        assert_eq!(concurrency_note(&info(concurrent.clone(), "http")), note);
        assert_eq!(concurrency_note(&info(concurrent.clone(), "wagi")), note);
        assert_eq!(concurrency_note(&info(concurrent, "http-p3")), "");
        let one = json!({"max_concurrent_requests_per_instance": 1});
        assert_eq!(concurrency_note(&info(one, "http")), "");
    }

    #[test]
    fn a_disabled_function_says_why() {
        let info: FunctionInfo = serde_json::from_value(json!({
            "name": "a", "latest_version": 1, "disabled": "its stored config does not parse",
        }))
        .unwrap();
        let text = render(&info, SystemTime::now());
        assert!(
            text.starts_with(
                "a (latest version 1)\n\nDisabled: its stored config does not parse\n  \
                 (run `flint doctor` to check and repair)\n\nConfig:"
            ),
            "{text}"
        );
    }
}
