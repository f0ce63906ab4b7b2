//! Runs `wrk` (Debian's package) and reads its report.

use anyhow::{Context, bail};
use serde::Serialize;
use std::process::Command;
use std::time::Duration;

/// What one `wrk` run measured.
#[derive(Debug, Clone, Serialize)]
pub struct WrkResult {
    /// Requests completed.
    pub requests: u64,
    /// Requests per second.
    pub rps: f64,
    /// Median latency, µs.
    pub p50_us: f64,
    /// 99th-percentile latency, µs.
    pub p99_us: f64,
    /// Responses other than 2xx/3xx.
    pub non_2xx: u64,
    /// Socket errors (connect, read, write, timeout).
    pub socket_errors: u64,
}

/// `wrk --version`'s first line, or `None` when wrk is not installed.
pub fn version() -> Option<String> {
    // wrk prints its version (and usage) on stdout and exits non-zero.
    let out = Command::new("wrk").arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .next()
        .filter(|l| l.starts_with("wrk"))
        .map(|l| {
            let l = l.split(" Copyright").next().unwrap_or(l);
            l.trim_start_matches("wrk ").trim().to_owned()
        })
}

/// Drives `url` with `connections` connections (one wrk thread per 32, at
/// least one and at most `max_threads`) for `duration` (whole seconds, at
/// least 1).
pub fn run(
    url: &str,
    connections: u32,
    max_threads: u32,
    duration: Duration,
) -> anyhow::Result<WrkResult> {
    let threads = connections.div_ceil(32).clamp(1, max_threads.max(1));
    let secs = duration.as_secs().max(1);
    let out = Command::new("wrk")
        .args([
            "--latency",
            &format!("-t{threads}"),
            &format!("-c{connections}"),
            &format!("-d{secs}s"),
            url,
        ])
        .output()
        .context("running wrk (install it with `apt-get install wrk`)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "wrk failed ({}): {text}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    parse(&text).with_context(|| format!("reading wrk's report:\n{text}"))
}

fn parse(text: &str) -> anyhow::Result<WrkResult> {
    let mut requests = None;
    let mut rps = None;
    let mut p50 = None;
    let mut p99 = None;
    let mut non_2xx = 0;
    let mut socket_errors = 0;
    for line in text.lines() {
        let line = line.trim();
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", value, ..] => rps = Some(value.parse::<f64>()?),
            [count, "requests", "in", ..] => requests = Some(count.parse::<u64>()?),
            ["50%", value, ..] => p50 = Some(micros(value)?),
            ["99%", value, ..] => p99 = Some(micros(value)?),
            ["Non-2xx", "or", "3xx", "responses:", n, ..] => non_2xx = n.parse()?,
            ["Socket", "errors:", rest @ ..] => {
                // connect 0, read 0, write 0, timeout 0
                socket_errors = rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum();
            }
            _ => {}
        }
    }
    Ok(WrkResult {
        requests: requests.context("no request count")?,
        rps: rps.context("no Requests/sec")?,
        p50_us: p50.context("no 50% latency (was --latency given?)")?,
        p99_us: p99.context("no 99% latency")?,
        non_2xx,
        socket_errors,
    })
}

/// `"812.00us"`, `"1.23ms"`, `"2.00s"` -> µs.
fn micros(value: &str) -> anyhow::Result<f64> {
    let split = value
        .find(|c: char| c.is_ascii_alphabetic())
        .with_context(|| format!("latency without a unit: {value}"))?;
    let (number, unit) = value.split_at(split);
    let number: f64 = number.parse()?;
    let scale = match unit {
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" => 60e6,
        _ => bail!("unknown latency unit in {value}"),
    };
    Ok(number * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "Running 8s test @ http://127.0.0.1:8181/fn/hello/
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.70ms  520.11us   9.87ms   80.00%
    Req/Sec    18.60k     1.10k   20.50k    70.00%
  Latency Distribution
     50%    1.62ms
     75%    1.90ms
     90%    2.30ms
     99%    3.51ms
  296123 requests in 8.00s, 40.12MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 7
Requests/sec:  37012.34
Transfer/sec:      5.01MB
";

    #[test]
    fn reads_a_report() {
        let r = parse(REPORT).unwrap();
        assert_eq!(r.requests, 296_123);
        assert!((r.rps - 37012.34).abs() < 1e-6);
        assert!((r.p50_us - 1620.0).abs() < 1e-6);
        assert!((r.p99_us - 3510.0).abs() < 1e-6);
        assert_eq!((r.non_2xx, r.socket_errors), (7, 3));
    }

    #[test]
    fn converts_units() {
        assert_eq!(micros("812.00us").unwrap(), 812.0);
        assert_eq!(micros("2.00s").unwrap(), 2e6);
        assert!(micros("12").is_err());
    }
}
