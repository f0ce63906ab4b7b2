//! Servers under test as child processes: started with their output piped,
//! ready when they print their address, and killed when dropped (on a panic
//! too), so that a run never leaves a server behind.

use anyhow::{Context, bail};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Lines of a server's output kept for error messages.
const TAIL_LINES: usize = 40;

/// A running server process.
pub struct Server {
    name: String,
    child: Child,
    addr: SocketAddr,
    spawned: Instant,
    tail: Arc<Mutex<VecDeque<String>>>,
}

impl Server {
    /// Spawns `cmd` and waits until a line of its stdout or stderr contains
    /// `marker` followed by `http://ADDR`; fails after `timeout` or when the
    /// process exits first, quoting its last output lines.
    pub fn spawn(
        name: &str,
        mut cmd: Command,
        marker: &str,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let spawned = Instant::now();
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {name}: {cmd:?}"))?;
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let (lines_tx, lines_rx) = mpsc::channel();
        // Readers drain the pipes for the process's whole life: a server
        // blocked on a full pipe would measure as a slow server.
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        spawn_reader(stdout, lines_tx.clone(), tail.clone());
        spawn_reader(stderr, lines_tx, tail.clone());

        let mut server = Self {
            name: name.to_owned(),
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            spawned,
            tail,
        };
        let deadline = spawned + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines_rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(addr) = parse_addr(&line, marker) {
                        server.addr = addr;
                        return Ok(server);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    bail!(
                        "{name} did not print `{marker}` within {timeout:?}; its output:\n{}",
                        server.tail()
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = server.child.wait().ok();
                    bail!(
                        "{name} exited ({status:?}) before it was ready; its output:\n{}",
                        server.tail()
                    )
                }
            }
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// When the process was spawned.
    pub fn spawned(&self) -> Instant {
        self.spawned
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its last output lines.
    pub fn tail(&self) -> String {
        let tail = self.tail.lock().unwrap();
        tail.iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Fails, quoting its output, if the process has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "{} exited ({status}) during the run; its output:\n{}",
                self.name,
                self.tail()
            );
        }
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_reader(
    pipe: impl Read + Send + 'static,
    lines: mpsc::Sender<String>,
    tail: Arc<Mutex<VecDeque<String>>>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            {
                let mut tail = tail.lock().unwrap();
                if tail.len() == TAIL_LINES {
                    tail.pop_front();
                }
                tail.push_back(line.clone());
            }
            // Nobody listens once the server is ready; keep draining anyway.
            let _ = lines.send(line);
        }
    });
}

/// `...MARKER http://127.0.0.1:1234/...` -> `127.0.0.1:1234`.
fn parse_addr(line: &str, marker: &str) -> Option<SocketAddr> {
    let rest = &line[line.find(marker)? + marker.len()..];
    let rest = &rest[rest.find("http://")? + "http://".len()..];
    let end = rest
        .find(|c: char| c == '/' || c.is_whitespace())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// CPU time (user + system) of a process and all its descendants, from
/// `/proc/PID/stat`.
pub fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let ticks_per_sec = clock_ticks();
    let mut total = 0u64;
    for pid in with_descendants(pid) {
        if let Some(stat) = read_stat(pid) {
            total += stat.utime + stat.stime;
        }
    }
    Ok(Duration::from_secs_f64(total as f64 / ticks_per_sec as f64))
}

/// CPU time the whole machine spent busy (everything but idle and iowait,
/// over all CPUs), from /proc/stat.
pub fn machine_busy() -> Duration {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: u64 = text
        .lines()
        .find(|l| l.starts_with("cpu "))
        .map(|l| {
            l.split_whitespace()
                .skip(1)
                .filter_map(|v| v.parse::<u64>().ok())
                .enumerate()
                // user nice system idle iowait irq softirq steal (guest time
                // is already inside user and nice).
                .filter(|&(i, _)| i < 8 && i != 3 && i != 4)
                .map(|(_, v)| v)
                .sum()
        })
        .unwrap_or(0);
    Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64)
}

/// CPU time of this process's children that have been waited for (wrk runs
/// end up here), from /proc/self/stat.
pub fn reaped_children_cpu() -> Duration {
    let ticks = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|text| {
            let fields: Vec<u64> = text[text.rfind(')')? + 2..]
                .split(' ')
                .map(|f| f.parse().unwrap_or(0))
                .collect();
            // cutime and cstime are fields 16 and 17.
            Some(fields.get(13)? + fields.get(14)?)
        })
        .unwrap_or(0);
    Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64)
}

struct Stat {
    ppid: u32,
    utime: u64,
    stime: u64,
}

fn read_stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let fields: Vec<&str> = text[text.rfind(')')? + 2..].split(' ').collect();
    // fields[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
    Some(Stat {
        ppid: fields.get(1)?.parse().ok()?,
        utime: fields.get(11)?.parse().ok()?,
        stime: fields.get(12)?.parse().ok()?,
    })
}

fn with_descendants(root: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
                continue;
            };
            if let Some(stat) = read_stat(pid) {
                parents.push((pid, stat.ppid));
            }
        }
    }
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|&&(_, ppid)| ppid == parent)
                .map(|&(pid, _)| pid),
        );
        i += 1;
    }
    found
}

/// The kernel's clock ticks per second (`getconf CLK_TCK`; 100 on Linux
/// unless configured otherwise).
fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_announced_addresses() {
        let flint = "flint listening on http://127.0.0.1:40123";
        assert_eq!(
            parse_addr(flint, "listening on"),
            Some("127.0.0.1:40123".parse().unwrap())
        );
        let wasmtime = "Serving HTTP on http://127.0.0.1:8080/";
        assert_eq!(
            parse_addr(wasmtime, "Serving HTTP on"),
            Some("127.0.0.1:8080".parse().unwrap())
        );
        assert_eq!(parse_addr("something else", "listening on"), None);
    }

    #[test]
    fn reads_own_cpu_time() {
        let start = Instant::now();
        let mut x = 0u64;
        while start.elapsed() < Duration::from_millis(50) {
            x = x.wrapping_add(1);
        }
        assert!(x > 0);
        assert!(cpu_time(std::process::id()).unwrap() > Duration::ZERO);
    }
}
