//! Compiles of uploads under limits.
//!
//! wasmtime treats compile-time resource use as no vulnerability, so the
//! upload path bounds it itself: at most `max_compiles` compiles run at once
//! ([`CompileGate`]), a compile waits at most `compile_queue_timeout` for a
//! slot (then it is refused as [`CompileError::Busy`]), and it runs at most
//! `compile_timeout`. With a worker program configured the compile runs in a
//! process of its own (see [`crate::worker`]) that is killed at the deadline,
//! so a compile past its limit stops using CPU and memory at once, and its
//! temp file is removed: nothing half-written stays in the cache. Without
//! one (in-process tests) it runs on a blocking thread of this process and,
//! Cranelift being uninterruptible, finishes in the background after a
//! timeout, still holding its slot.

use crate::artifact::{CompileError, detect_kind};
use crate::engine::{Compiled, EngineKind, Runtime};
use crate::gate::RETRY_AFTER_SECS;
use crate::worker::{COMPILE_WORKER_COMMAND, WorkerJob, WorkerReply};
use bytes::Bytes;
use flint_spec::Digest;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Most bytes of a failed worker's stderr quoted in the error.
const STDERR_TAIL_BYTES: usize = 2000;

/// Admits at most `max` compiles at once; others wait up to
/// `queue_timeout` for a slot.
#[derive(Debug)]
pub(crate) struct CompileGate {
    semaphore: Arc<Semaphore>,
    max: usize,
    queue_timeout: Duration,
}

impl CompileGate {
    /// A gate of `max` slots (at least one).
    pub(crate) fn new(max: usize, queue_timeout: Duration) -> Self {
        let max = max.max(1);
        Self {
            semaphore: Arc::new(Semaphore::new(max)),
            max,
            queue_timeout,
        }
    }

    /// Waits (bounded) for a slot.
    async fn admit(&self) -> Result<OwnedSemaphorePermit, CompileError> {
        match tokio::time::timeout(self.queue_timeout, self.semaphore.clone().acquire_owned()).await
        {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(CompileError::Busy {
                max_compiles: self.max,
                waited_ms: self.queue_timeout.as_millis(),
                retry_after_secs: RETRY_AFTER_SECS,
            }),
        }
    }

    /// Compiles running now.
    fn running(&self) -> usize {
        self.max - self.semaphore.available_permits()
    }
}

/// Numbers the temp files of this process's worker compiles.
static NEXT_TEMP: AtomicU64 = AtomicU64::new(0);

/// A temp file in the cache, removed when dropped (after a kill, a failure
/// or a cancelled upload; after success it has been renamed away).
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Runtime {
    /// Compiles `bytes` under the limits of [`crate::RuntimeConfig`]
    /// (admission, queue wait, deadline) and caches the artifact: in a
    /// worker process when one is configured, else on a blocking thread.
    /// Bytes that are no Wasm are refused before they take a slot.
    pub async fn compile_limited(self: &Arc<Self>, bytes: Bytes) -> Result<Compiled, CompileError> {
        let kind = detect_kind(&bytes)?;
        let engine = EngineKind::of(kind);
        let slot = self.compiles.admit().await?;
        tracing::debug!(running = self.compiles.running(), "compile admitted");
        let limit = self.config.compile_timeout;
        match self.config.compile_worker.clone() {
            Some(program) => {
                let compiled = self.compile_in_worker(&program, engine, bytes, limit).await;
                drop(slot);
                compiled
            }
            None => {
                let runtime = self.clone();
                let compile = tokio::task::spawn_blocking(move || {
                    let _slot = slot;
                    runtime.compile_as(kind, &bytes)
                });
                match tokio::time::timeout(limit, compile).await {
                    Ok(joined) => joined.map_err(|e| CompileError::Worker(e.to_string()))?,
                    Err(_) => Err(CompileError::Timeout {
                        limit_ms: limit.as_millis(),
                    }),
                }
            }
        }
    }

    /// Runs `program __compile` on `bytes`, killing it at `limit`, and maps
    /// the artifact it cached.
    async fn compile_in_worker(
        self: &Arc<Self>,
        program: &Path,
        engine: EngineKind,
        bytes: Bytes,
        limit: Duration,
    ) -> Result<Compiled, CompileError> {
        let digest = Digest::of(&bytes);
        let temp = TempFile(self.cache().dir().join(format!(
            ".compile-{}-{}.tmp",
            std::process::id(),
            NEXT_TEMP.fetch_add(1, Ordering::Relaxed)
        )));
        let job = WorkerJob {
            config: self.config.clone(),
            engine,
            engine_key: self.cache().engine_key(engine).to_string(),
            temp: temp.0.clone(),
        };
        let job = serde_json::to_string(&job).map_err(|e| CompileError::Worker(e.to_string()))?;
        let mut child = tokio::process::Command::new(program)
            .arg(COMPILE_WORKER_COMMAND)
            .arg(job)
            // The worker needs nothing from the environment, and the
            // server's may hold secrets (FLINT_SECRET_*, the admin token).
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // An upload whose caller went away drops this future: the
            // worker goes with it.
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                CompileError::Worker(format!(
                    "cannot start {}: {e} (if the binary was replaced or removed, restart the server)",
                    program.display()
                ))
            })?;
        let (stdin, stdout, stderr) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take());
        let finished = tokio::time::timeout(limit, async {
            let feed = async {
                if let Some(mut stdin) = stdin {
                    // A worker that stops reading has failed; its status
                    // and stderr tell why.
                    let _ = stdin.write_all(&bytes).await;
                }
            };
            let ((), out, err) = tokio::join!(feed, read_all(stdout), read_all(stderr));
            (child.wait().await, out, err)
        })
        .await;
        let (status, out, err) = match finished {
            Ok(finished) => finished,
            Err(_) => {
                // SIGKILL, then reap, so that no process outlives the
                // answer; the temp file goes when `temp` drops.
                if let Err(e) = child.kill().await {
                    tracing::warn!(error = %e, "could not kill a compile worker past its deadline");
                }
                return Err(CompileError::Timeout {
                    limit_ms: limit.as_millis(),
                });
            }
        };
        let status = status.map_err(|e| CompileError::Worker(format!("waiting for it: {e}")))?;
        let reply = serde_json::from_slice::<WorkerReply>(&out).map_err(|_| {
            let tail = &err[err.len().saturating_sub(STDERR_TAIL_BYTES)..];
            CompileError::Worker(format!(
                "it exited with {status} without an answer: {}",
                String::from_utf8_lossy(tail).trim()
            ))
        })?;
        let compile_time = match reply {
            WorkerReply::Compiled { compile_ms } => Duration::from_secs_f64(compile_ms / 1000.0),
            WorkerReply::Failed { error } => return Err(error.into()),
        };
        let runtime = self.clone();
        let mapped = digest.clone();
        let program = tokio::task::spawn_blocking(move || runtime.load_cached(&mapped))
            .await
            .map_err(|e| CompileError::Worker(e.to_string()))?
            .ok_or_else(|| {
                CompileError::Worker(format!(
                    "it reported success but no usable artifact of {digest} is in the cache"
                ))
            })?;
        Ok(Compiled {
            digest,
            program,
            compile_time,
        })
    }
}

/// Everything `from` yields (nothing when absent or failing).
async fn read_all(from: Option<impl AsyncRead + Unpin>) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(mut from) = from {
        let _ = from.read_to_end(&mut out).await;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_wait_for_a_slot_is_bounded() {
        let gate = CompileGate::new(1, Duration::from_millis(20));
        let held = gate.admit().await.unwrap();
        assert_eq!(gate.running(), 1);
        assert!(matches!(
            gate.admit().await,
            Err(CompileError::Busy {
                max_compiles: 1,
                ..
            })
        ));
        drop(held);
        drop(gate.admit().await.unwrap());
    }
}
