//! What a run measured, its summary (medians over rounds), the ratios and
//! targets, and its renderings: a terminal table, markdown and
//! JSON.

use super::counters::Counters;
use super::env::{Machine, Versions};
use super::wrk::WrkResult;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde::Serialize;
use std::fmt::Write as _;

/// One server set-up under test.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Variant {
    /// `a`..`e`, as the README names them.
    pub key: char,
    /// Short name for tables and the chart.
    pub name: &'static str,
    /// What runs.
    pub description: &'static str,
}

/// The five set-ups, in the order the README names them.
pub const VARIANTS: [Variant; 5] = [
    Variant {
        key: 'a',
        name: "flint",
        description: "flint serve, hello, a fresh instance per request (default config)",
    },
    Variant {
        key: 'b',
        name: "flint-reuse",
        description: "flint serve, hello, max_requests_per_instance = 1000000",
    },
    Variant {
        key: 'c',
        name: "wasmtime",
        description: "wasmtime serve -S cli, hello (precompiled), defaults: a fresh instance per request",
    },
    Variant {
        key: 'd',
        name: "wasmtime-reuse",
        description: "wasmtime serve -S cli --max-instance-reuse-count 1000000, hello (precompiled)",
    },
    Variant {
        key: 'e',
        name: "native",
        description: "native hyper hello world (tokio multi-threaded), the ceiling",
    },
];

/// One wrk run against one variant.
#[derive(Debug, Clone, Serialize)]
pub struct LoadRun {
    /// Round (0-based).
    pub round: usize,
    /// wrk connections.
    pub connections: u32,
    /// wrk's figures.
    pub wrk: WrkResult,
    /// Server CPU (user + system, all threads) over the run divided by the
    /// requests completed, µs.
    pub cpu_us_per_request: f64,
    /// wrk's own CPU per request, µs (it shares the machine).
    pub wrk_cpu_us_per_request: f64,
    /// Share of the machine's CPU capacity busy with anything but the server
    /// and wrk during the run (0 on an otherwise idle machine).
    pub other_cpu_share: f64,
    /// Kernel events per request (`--perf`).
    pub counters: Option<Counters>,
}

/// Everything measured for one variant.
#[derive(Debug, Clone, Serialize)]
pub struct VariantResult {
    /// Which.
    pub variant: Variant,
    /// Why it did not run, if it did not.
    pub skipped: Option<String>,
    /// Every load run.
    pub runs: Vec<LoadRun>,
    /// Process start to first 200 response, ms, one per round.
    pub start_to_first_response_ms: Vec<f64>,
}

/// Medians over rounds of one variant at one connection count.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Variant key.
    pub key: char,
    /// Variant name.
    pub name: &'static str,
    /// wrk connections.
    pub connections: u32,
    /// Rounds measured.
    pub rounds: usize,
    /// Median requests/s.
    pub rps: f64,
    /// Lowest and highest requests/s over the rounds.
    pub rps_range: (f64, f64),
    /// Median of the rounds' p50 latency, µs.
    pub p50_us: f64,
    /// Median of the rounds' p99 latency, µs.
    pub p99_us: f64,
    /// Median server CPU per request, µs.
    pub cpu_us_per_request: f64,
    /// Non-2xx responses and socket errors, summed over rounds.
    pub errors: u64,
    /// Median kernel events per request, when recorded.
    pub counters: Option<Counters>,
}

/// A series of timings of one kind of start, ms.
#[derive(Debug, Clone, Serialize)]
pub struct Startup {
    /// What was timed.
    pub what: String,
    /// One sample per round.
    pub samples_ms: Vec<f64>,
}

/// A throughput ratio between two variants.
#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    /// `a/c` and so on.
    pub name: String,
    /// wrk connections.
    pub connections: u32,
    /// Median rps of the first over median rps of the second.
    pub value: f64,
}

/// A target of the harness and whether this run met it.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    /// The target.
    pub goal: String,
    /// The measured figure.
    pub measured: String,
    /// Met (`None`: not measured in this run).
    pub met: Option<bool>,
}

/// Settings of the run.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// Rounds (each variant once per round, alternating).
    pub rounds: usize,
    /// Seconds per wrk run.
    pub duration_s: u64,
    /// Seconds of unrecorded load before the recorded runs of a variant.
    pub warmup_s: u64,
    /// wrk connection counts.
    pub connections: Vec<u32>,
    /// A smoke run (too short for meaningful numbers).
    pub smoke: bool,
    /// Kernel counters recorded (`--perf`).
    pub perf: bool,
}

/// A whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// When it finished (UTC).
    pub generated_utc: String,
    /// Where.
    pub machine: Machine,
    /// With what.
    pub versions: Versions,
    /// How.
    pub settings: Settings,
    /// Raw results.
    pub variants: Vec<VariantResult>,
    /// Medians.
    pub summaries: Vec<Summary>,
    /// a/c, b/d, b/e.
    pub ratios: Vec<Ratio>,
    /// Start-up and deploy timings.
    pub startup: Vec<Startup>,
    /// The harness's targets.
    pub targets: Vec<Target>,
    /// Anything a reader must know (skipped variants, errors).
    pub notes: Vec<String>,
}

/// The median of `values` (mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    }
}

impl Report {
    /// Fills in summaries, ratios and targets from the raw results.
    pub fn summarize(&mut self) {
        self.summaries.clear();
        for result in &self.variants {
            for &connections in &self.settings.connections {
                let runs: Vec<&LoadRun> = result
                    .runs
                    .iter()
                    .filter(|r| r.connections == connections)
                    .collect();
                if runs.is_empty() {
                    continue;
                }
                let pick =
                    |f: fn(&LoadRun) -> f64| median(&runs.iter().map(|r| f(r)).collect::<Vec<_>>());
                let rps: Vec<f64> = runs.iter().map(|r| r.wrk.rps).collect();
                self.summaries.push(Summary {
                    key: result.variant.key,
                    name: result.variant.name,
                    connections,
                    rounds: runs.len(),
                    rps: median(&rps),
                    rps_range: (
                        rps.iter().copied().fold(f64::INFINITY, f64::min),
                        rps.iter().copied().fold(0.0, f64::max),
                    ),
                    p50_us: pick(|r| r.wrk.p50_us),
                    p99_us: pick(|r| r.wrk.p99_us),
                    cpu_us_per_request: pick(|r| r.cpu_us_per_request),
                    errors: runs
                        .iter()
                        .map(|r| r.wrk.non_2xx + r.wrk.socket_errors)
                        .sum(),
                    counters: median_counters(&runs),
                });
            }
        }

        self.ratios.clear();
        for (top, bottom) in [('a', 'c'), ('b', 'd'), ('b', 'e'), ('a', 'e')] {
            for &connections in &self.settings.connections {
                if let (Some(t), Some(b)) = (
                    self.summary(top, connections),
                    self.summary(bottom, connections),
                ) {
                    self.ratios.push(Ratio {
                        name: format!("{top}/{bottom}"),
                        connections,
                        value: t.rps / b.rps,
                    });
                }
            }
        }

        let ratio = |name: &str| {
            self.ratios
                .iter()
                .find(|r| r.name == name && r.connections == 64)
                .map(|r| r.value)
        };
        let ratio_target = |goal: &str, name: &str, min: f64| Target {
            goal: goal.into(),
            measured: ratio(name).map_or("not measured".into(), |v| format!("{name} = {v:.2}x")),
            met: ratio(name).map(|v| v >= min),
        };
        let start = |prefix: &str| {
            self.startup
                .iter()
                .find(|s| s.what.starts_with(prefix))
                .map(|s| median(&s.samples_ms))
        };
        let restart = start(STARTUP_FLINT_RESTART);
        let wasmtime = start(STARTUP_WASMTIME);
        let cpu = |key| self.summary(key, 64).map(|s| s.cpu_us_per_request);
        let fresh_cost = cpu('a').zip(cpu('b')).map(|(a, b)| a - b);
        self.targets = vec![
            ratio_target("(a) >= 3.5x (c) at 64 connections", "a/c", 3.5),
            ratio_target("(a) >= 0.30x (e) at 64 connections", "a/e", 0.30),
            Target {
                goal: "server CPU per request, (a) minus (b), <= 20 µs at 64 connections".into(),
                measured: fresh_cost.map_or("not measured".into(), |d| format!("{d:.1} µs")),
                met: fresh_cost.map(|d| d <= 20.0),
            },
            ratio_target("(b) >= 1.10x (d) at 64 connections", "b/d", 1.10),
            ratio_target("(b) >= 0.45x (e) at 64 connections", "b/e", 0.45),
            Target {
                goal: "flint restart to first response (disk cache) <= wasmtime serve on a precompiled artifact".into(),
                measured: match (restart, wasmtime) {
                    (Some(f), Some(w)) => format!("{f:.1} ms vs {w:.1} ms"),
                    _ => "not measured".into(),
                },
                met: restart.zip(wasmtime).map(|(f, w)| f <= w),
            },
        ];
    }

    /// The summary of `key` at `connections`.
    pub fn summary(&self, key: char, connections: u32) -> Option<&Summary> {
        self.summaries
            .iter()
            .find(|s| s.key == key && s.connections == connections)
    }

    /// The machine half of the stamp.
    pub fn machine_line(&self) -> String {
        let m = &self.machine;
        format!(
            "{} cores, {}, Linux {}, {:.0} GiB RAM, load average {} at start; {}",
            m.cores, m.cpu_model, m.kernel, m.memory_gib, m.loadavg_at_start, self.generated_utc
        )
    }

    /// The versions half of the stamp.
    pub fn versions_line(&self) -> String {
        let v = &self.versions;
        format!(
            "flint {} ({} build, git {}), wasmtime-cli {} (Flint embeds wasmtime {}), wrk {}, {}",
            v.flint,
            v.profile,
            v.git,
            v.wasmtime.as_deref().unwrap_or("not run"),
            v.wasmtime_embedded,
            v.wrk.as_deref().unwrap_or("missing"),
            v.rustc,
        )
    }

    /// The stamp: machine and versions.
    pub fn stamp(&self) -> String {
        format!("{}; {}", self.machine_line(), self.versions_line())
    }

    /// The tables for a terminal.
    pub fn to_terminal(&self) -> String {
        let mut out = String::new();
        let mut load = Table::new();
        load.load_preset(UTF8_FULL_CONDENSED).set_header([
            "variant",
            "conns",
            "req/s (median)",
            "min..max",
            "p50",
            "p99",
            "CPU/req",
            "errors",
        ]);
        for s in &self.summaries {
            load.add_row([
                format!("({}) {}", s.key, s.name),
                s.connections.to_string(),
                format!("{:.0}", s.rps),
                format!("{:.0}..{:.0}", s.rps_range.0, s.rps_range.1),
                fmt_us(s.p50_us),
                fmt_us(s.p99_us),
                fmt_us(s.cpu_us_per_request),
                s.errors.to_string(),
            ]);
        }
        let _ = writeln!(out, "{load}");
        if self.summaries.iter().any(|s| s.counters.is_some()) {
            let mut counters = Table::new();
            counters
                .load_preset(UTF8_FULL_CONDENSED)
                .set_header(COUNTER_HEADER);
            for s in &self.summaries {
                if let Some(c) = &s.counters {
                    counters.add_row(counter_row(s, c));
                }
            }
            let _ = writeln!(
                out,
                "kernel events per request (perf stat; TLB shootdowns machine-wide)\n{counters}"
            );
        }

        let mut ratios = Table::new();
        ratios
            .load_preset(UTF8_FULL_CONDENSED)
            .set_header(["ratio (req/s)", "conns", "value"]);
        for r in &self.ratios {
            ratios.add_row([
                r.name.clone(),
                r.connections.to_string(),
                format!("{:.2}x", r.value),
            ]);
        }
        let _ = writeln!(out, "{ratios}");

        let mut startup = Table::new();
        startup.load_preset(UTF8_FULL_CONDENSED).set_header([
            "start-up (to first 200 response)",
            "median",
            "samples",
        ]);
        for s in &self.startup {
            startup.add_row([
                s.what.clone(),
                format!("{:.1} ms", median(&s.samples_ms)),
                samples(&s.samples_ms),
            ]);
        }
        let _ = writeln!(out, "{startup}");

        let mut targets = Table::new();
        targets
            .load_preset(UTF8_FULL_CONDENSED)
            .set_header(["target", "measured", "met"]);
        for t in &self.targets {
            targets.add_row([t.goal.clone(), t.measured.clone(), met(t.met).into()]);
        }
        let _ = writeln!(out, "{targets}");
        for note in &self.notes {
            let _ = writeln!(out, "note: {note}");
        }
        let _ = writeln!(out, "{}", self.stamp());
        out
    }

    /// The report as markdown (what benches/results/harness.md holds).
    pub fn to_markdown(&self, chart_file: Option<&str>) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "# Load harness results\n");
        let _ = writeln!(md, "Machine and versions: {}.\n", self.stamp());
        let s = &self.settings;
        let _ = writeln!(
            md,
            "{} round(s), variants alternating within each round; wrk for {} s per run after {} s of \
             unrecorded warm-up, at {} connection(s), on 127.0.0.1 on the same cores as the server. \
             Figures are medians over rounds.{}\n",
            s.rounds,
            s.duration_s,
            s.warmup_s,
            s.connections
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(" and "),
            if s.smoke {
                " **Smoke run: too short to mean anything.**"
            } else {
                ""
            }
        );
        if let Some(chart) = chart_file {
            let _ = writeln!(md, "![throughput and CPU per request]({chart})\n");
        }
        let _ = writeln!(md, "| | variant |\n| --- | --- |");
        for r in &self.variants {
            let skipped = r
                .skipped
                .as_ref()
                .map_or(String::new(), |why| format!(" — skipped: {why}"));
            let _ = writeln!(
                md,
                "| ({}) | `{}`: {}{skipped} |",
                r.variant.key, r.variant.name, r.variant.description
            );
        }
        let _ = writeln!(
            md,
            "\n| variant | conns | req/s | min..max | p50 | p99 | server CPU/req | errors |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        for s in &self.summaries {
            let _ = writeln!(
                md,
                "| ({}) {} | {} | {:.0} | {:.0}..{:.0} | {} | {} | {} | {} |",
                s.key,
                s.name,
                s.connections,
                s.rps,
                s.rps_range.0,
                s.rps_range.1,
                fmt_us(s.p50_us),
                fmt_us(s.p99_us),
                fmt_us(s.cpu_us_per_request),
                s.errors
            );
        }
        if self.summaries.iter().any(|s| s.counters.is_some()) {
            let _ = writeln!(
                md,
                "\nKernel events per request (`perf stat` on the server; TLB shootdowns machine-wide):\n\n| {} |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
                COUNTER_HEADER.join(" | ")
            );
            for s in &self.summaries {
                if let Some(c) = &s.counters {
                    let _ = writeln!(md, "| {} |", counter_row(s, c).join(" | "));
                }
            }
        }
        let _ = writeln!(
            md,
            "\n| ratio of req/s | conns | value |\n| --- | ---: | ---: |"
        );
        for r in &self.ratios {
            let _ = writeln!(md, "| {} | {} | {:.2}x |", r.name, r.connections, r.value);
        }
        let _ = writeln!(
            md,
            "\n| start-up, to the first 200 response | median | samples (ms) |\n| --- | ---: | --- |"
        );
        for st in &self.startup {
            let _ = writeln!(
                md,
                "| {} | {:.1} ms | {} |",
                st.what,
                median(&st.samples_ms),
                samples(&st.samples_ms)
            );
        }
        let _ = writeln!(md, "\n| target | measured | met |\n| --- | --- | --- |");
        for t in &self.targets {
            let _ = writeln!(md, "| {} | {} | {} |", t.goal, t.measured, met(t.met));
        }
        if !self.notes.is_empty() {
            let _ = writeln!(md);
            for note in &self.notes {
                let _ = writeln!(md, "- {note}");
            }
        }
        md
    }
}

/// The median of each counter over `runs`, when every run recorded them.
fn median_counters(runs: &[&LoadRun]) -> Option<Counters> {
    let all: Vec<Counters> = runs.iter().map(|r| r.counters).collect::<Option<_>>()?;
    let pick = |f: fn(&Counters) -> f64| median(&all.iter().map(f).collect::<Vec<_>>());
    Some(Counters {
        page_faults: pick(|c| c.page_faults),
        context_switches: pick(|c| c.context_switches),
        syscalls: pick(|c| c.syscalls),
        mprotect: pick(|c| c.mprotect),
        madvise: pick(|c| c.madvise),
        tlb_shootdowns: pick(|c| c.tlb_shootdowns),
    })
}

/// The header of the per-request counters table.
const COUNTER_HEADER: [&str; 8] = [
    "variant",
    "conns",
    "page faults",
    "context switches",
    "syscalls",
    "mprotect",
    "madvise",
    "TLB shootdowns",
];

/// One row of the per-request counters table.
fn counter_row(s: &Summary, c: &Counters) -> [String; 8] {
    [
        format!("({}) {}", s.key, s.name),
        s.connections.to_string(),
        format!("{:.3}", c.page_faults),
        format!("{:.3}", c.context_switches),
        format!("{:.3}", c.syscalls),
        format!("{:.3}", c.mprotect),
        format!("{:.3}", c.madvise),
        format!("{:.3}", c.tlb_shootdowns),
    ]
}

/// Start-up series names; the targets look them up by these prefixes.
pub const STARTUP_FLINT_RESTART: &str = "flint restart, hello (disk cache)";
/// See [`STARTUP_FLINT_RESTART`].
pub const STARTUP_WASMTIME: &str = "wasmtime serve, hello.cwasm (precompiled)";

fn met(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "yes",
        Some(false) => "NO",
        None => "n/a",
    }
}

fn samples(values: &[f64]) -> String {
    values
        .iter()
        .map(|v| format!("{v:.1}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// µs with a unit that keeps 3 significant figures.
pub fn fmt_us(us: f64) -> String {
    if us >= 10_000.0 {
        format!("{:.1} ms", us / 1000.0)
    } else if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.1} µs")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn formats_micros() {
        assert_eq!(fmt_us(12.34), "12.3 µs");
        assert_eq!(fmt_us(1234.0), "1.23 ms");
        assert_eq!(fmt_us(12345.0), "12.3 ms");
    }
}
