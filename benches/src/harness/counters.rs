//! Kernel counters of a server during a load run (`--perf`): page faults,
//! context switches, system calls, `mprotect` and `madvise` calls, from
//! `perf stat` attached to the server's process, and TLB-shootdown
//! interrupts from `/proc/interrupts` (machine-wide: run nothing else).
//!
//! They say where a request's CPU goes beyond user code: a fresh instance
//! that faults its memory in, changes page protections or returns pages to
//! the kernel pays for it in these, and so do its neighbours on the other
//! cores (a shootdown interrupts every core that may cache the mapping).

use anyhow::{Context, bail};
use serde::Serialize;
use std::io::Read;
use std::process::{Child, Command, Stdio};

/// The events counted, in the order of [`Counters`]'s fields.
const EVENTS: [&str; 5] = [
    "page-faults",
    "context-switches",
    "raw_syscalls:sys_enter",
    "syscalls:sys_enter_mprotect",
    "syscalls:sys_enter_madvise",
];

/// Kernel events per request of one load run.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Counters {
    /// Page faults (minor and major) of the server's threads.
    pub page_faults: f64,
    /// Context switches of the server's threads.
    pub context_switches: f64,
    /// System calls the server made.
    pub syscalls: f64,
    /// `mprotect` calls.
    pub mprotect: f64,
    /// `madvise` calls.
    pub madvise: f64,
    /// TLB-shootdown interrupts on all cores (machine-wide).
    pub tlb_shootdowns: f64,
}

/// `perf stat` counting a process until [`Recording::stop`].
pub struct Recording {
    perf: Child,
    tlb_before: u64,
}

impl Recording {
    /// Attaches `perf stat` to every thread of `pid`.
    pub fn start(pid: u32) -> anyhow::Result<Self> {
        let tlb_before = tlb_shootdowns()?;
        let perf = Command::new("perf")
            .args(["stat", "-x", ",", "-e", &EVENTS.join(","), "-p"])
            .arg(pid.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("running perf (install it with `apt-get install linux-perf`)")?;
        Ok(Self { perf, tlb_before })
    }

    /// Stops counting and divides every count by `requests`.
    pub fn stop(mut self, requests: u64) -> anyhow::Result<Counters> {
        // perf stat prints its counts when interrupted.
        let status = Command::new("kill")
            .args(["-INT", &self.perf.id().to_string()])
            .status()
            .context("running kill")?;
        if !status.success() {
            bail!("could not stop perf stat ({status})");
        }
        let mut report = String::new();
        self.perf
            .stderr
            .take()
            .expect("stderr is piped")
            .read_to_string(&mut report)?;
        self.perf.wait()?;
        let tlb = tlb_shootdowns()?.saturating_sub(self.tlb_before);
        let counts = parse(&report)?;
        let per = |n: u64| n as f64 / requests.max(1) as f64;
        Ok(Counters {
            page_faults: per(counts[0]),
            context_switches: per(counts[1]),
            syscalls: per(counts[2]),
            mprotect: per(counts[3]),
            madvise: per(counts[4]),
            tlb_shootdowns: per(tlb),
        })
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        let _ = self.perf.kill();
        let _ = self.perf.wait();
    }
}

/// The counts of [`EVENTS`] in `perf stat -x ,` output (`value,unit,event,…`
/// per line).
fn parse(report: &str) -> anyhow::Result<[u64; 5]> {
    let mut counts = [None; 5];
    for line in report.lines() {
        let fields: Vec<&str> = line.split(',').collect();
        let (Some(value), Some(event)) = (fields.first(), fields.get(2)) else {
            continue;
        };
        if let Some(i) = EVENTS.iter().position(|e| e == event) {
            counts[i] = Some(value.parse::<u64>().with_context(|| {
                format!("perf stat could not count {event} ({value}); is perf_event_paranoid <= 2 and tracefs mounted?")
            })?);
        }
    }
    let mut out = [0; 5];
    for (i, count) in counts.into_iter().enumerate() {
        out[i] = count
            .with_context(|| format!("perf stat printed no count of {}:\n{report}", EVENTS[i]))?;
    }
    Ok(out)
}

/// TLB-shootdown interrupts so far, summed over the cores.
fn tlb_shootdowns() -> anyhow::Result<u64> {
    let text = std::fs::read_to_string("/proc/interrupts").context("reading /proc/interrupts")?;
    Ok(text
        .lines()
        .find(|l| l.trim_start().starts_with("TLB:"))
        .map_or(0, |l| {
            l.split_whitespace()
                .skip(1)
                .map_while(|v| v.parse::<u64>().ok())
                .sum()
        }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_perf_stat_csv() {
        let report = "\
1204,,page-faults,2003456789,100.00,,\n\
88,,context-switches,2003456789,100.00,,\n\
51234,,raw_syscalls:sys_enter,2003456789,100.00,,\n\
12,,syscalls:sys_enter_mprotect,2003456789,100.00,,\n\
0,,syscalls:sys_enter_madvise,2003456789,100.00,,\n";
        assert_eq!(parse(report).unwrap(), [1204, 88, 51234, 12, 0]);
    }

    #[test]
    fn an_event_perf_could_not_count_is_an_error() {
        let report = "<not supported>,,syscalls:sys_enter_madvise,0,100.00,,\n";
        let err = parse(report).unwrap_err().to_string();
        assert!(err.contains("sys_enter_madvise"), "{err}");
    }

    #[test]
    fn reads_tlb_shootdowns() {
        // Whatever the machine: the line is there on x86, and the sum parses.
        tlb_shootdowns().unwrap();
    }
}
