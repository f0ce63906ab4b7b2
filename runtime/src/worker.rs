//! The compile worker: one compile in a process of its own.
//!
//! The server runs its own binary as `flint __compile JOB` (see
//! [`crate::compile`]), writes the component's bytes to its stdin and reads
//! one JSON [`WorkerReply`] from its stdout. The worker builds its engine
//! from the server's [`RuntimeConfig`] with [`compile_engine`] (the same
//! settings without an instance pool, as it instantiates nothing), checks
//! that its engine key is the server's, compiles and checks the
//! world with the same function as an in-process compile, and writes the
//! artifact into the cache through the temp file the server named (so that
//! the server can remove it after a kill). A compile error travels back as
//! its [`CompileError`] variant and message, so the uploader sees what an
//! in-process compile would have said.

use crate::artifact::{
    ArtifactCache, CompileError, compile_checked, detect_kind, engine_key, serialize,
};
use crate::engine::{EngineKind, RuntimeConfig, compile_engine, host_linkers};
use crate::fsutil::write_atomic_via;
use anyhow::Context;
use flint_spec::Digest;
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::path::PathBuf;

/// The hidden subcommand of the `flint` binary that runs a compile job.
pub const COMPILE_WORKER_COMMAND: &str = "__compile";

/// What the server asks of a worker (its one argument, as JSON).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WorkerJob {
    /// The server's runtime settings: the worker's engine is built from them.
    pub config: RuntimeConfig,
    /// Which of the server's engines compiles.
    pub engine: EngineKind,
    /// That engine's key, which the worker's must equal.
    pub engine_key: String,
    /// The temp file to write the artifact through.
    pub temp: PathBuf,
}

/// The worker's answer (one JSON line on stdout).
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub(crate) enum WorkerReply {
    /// The artifact is in the cache.
    Compiled {
        /// How long the compiler took.
        compile_ms: f64,
    },
    /// Nothing was cached.
    Failed {
        /// Why.
        error: WireError,
    },
}

/// A [`CompileError`] as it crosses the process boundary.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum WireError {
    NotWasm,
    NotACommand { exports: String },
    Invalid { module: bool, message: String },
    NotAHttpHandler { exports: String },
    UnsupportedImports { missing: String, detail: String },
    Cache { message: String },
    Other { message: String },
}

impl From<CompileError> for WireError {
    fn from(e: CompileError) -> Self {
        match e {
            CompileError::NotWasm => Self::NotWasm,
            CompileError::NotACommand(exports) => Self::NotACommand { exports },
            CompileError::Invalid { module, message } => Self::Invalid { module, message },
            CompileError::NotAHttpHandler(exports) => Self::NotAHttpHandler { exports },
            CompileError::UnsupportedImports { missing, detail } => {
                Self::UnsupportedImports { missing, detail }
            }
            CompileError::Cache(io) => Self::Cache {
                message: io.to_string(),
            },
            other => Self::Other {
                message: other.to_string(),
            },
        }
    }
}

impl From<WireError> for CompileError {
    fn from(e: WireError) -> Self {
        match e {
            WireError::NotWasm => Self::NotWasm,
            WireError::NotACommand { exports } => Self::NotACommand(exports),
            WireError::Invalid { module, message } => Self::Invalid { module, message },
            WireError::NotAHttpHandler { exports } => Self::NotAHttpHandler(exports),
            WireError::UnsupportedImports { missing, detail } => {
                Self::UnsupportedImports { missing, detail }
            }
            WireError::Cache { message } => Self::Cache(std::io::Error::other(message)),
            WireError::Other { message } => Self::Worker(message),
        }
    }
}

/// Runs the compile job `job` (JSON, as the server passes it) on the
/// component read from `input`, and writes the reply to `output`. An error
/// is returned only when no reply can be made.
pub fn run_compile_worker(
    job: &str,
    mut input: impl Read,
    mut output: impl Write,
) -> anyhow::Result<()> {
    let job: WorkerJob = serde_json::from_str(job).context(
        "the compile job is not valid JSON (`flint __compile` is run by `flint serve`, not by hand)",
    )?;
    let mut bytes = Vec::new();
    input
        .read_to_end(&mut bytes)
        .context("cannot read the component from stdin")?;
    let reply = match compile(&job, &bytes) {
        Ok(compile_ms) => WorkerReply::Compiled { compile_ms },
        Err(error) => WorkerReply::Failed {
            error: error.into(),
        },
    };
    serde_json::to_writer(&mut output, &reply)?;
    output.write_all(b"\n")?;
    output.flush()?;
    Ok(())
}

/// Compiles and caches; returns the compiler's time in milliseconds.
fn compile(job: &WorkerJob, bytes: &[u8]) -> Result<f64, CompileError> {
    let kind = detect_kind(bytes)?;
    if EngineKind::of(kind) != job.engine {
        return Err(CompileError::Worker(format!(
            "the server asked the {:?} engine to compile a {kind} program",
            job.engine
        )));
    }
    let engine = compile_engine(&job.config, job.engine)
        .map_err(|e| CompileError::Worker(format!("cannot build the engine: {e:#}")))?;
    let cache = ArtifactCache::new(&job.config.cache_dir, &[(job.engine, engine_key(&engine))])?;
    if cache.engine_key(job.engine) != job.engine_key {
        return Err(CompileError::Worker(format!(
            "its engine key {} differs from the server's {}: the worker program is not the server's own binary",
            cache.engine_key(job.engine),
            job.engine_key
        )));
    }
    let linkers = host_linkers(&engine, job.engine)
        .map_err(|e| CompileError::Worker(format!("cannot build the linkers: {e:#}")))?;
    let (program, compile_time) = compile_checked(&engine, &linkers, kind, bytes)?;
    let path = cache.path(&Digest::of(bytes), job.engine);
    write_atomic_via(&job.temp, &path, &serialize(&program)?)?;
    Ok(compile_time.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compile_errors_cross_the_process_boundary_unchanged() {
        let errors = [
            CompileError::NotWasm,
            CompileError::NotACommand("memory".into()),
            CompileError::Invalid {
                module: true,
                message: "bad section".into(),
            },
            CompileError::NotAHttpHandler("wasi:cli/run@0.2.0".into()),
            CompileError::UnsupportedImports {
                missing: "foo:bar/baz".into(),
                detail: "no such import".into(),
            },
        ];
        for error in errors {
            let message = error.to_string();
            let wire = serde_json::to_string(&WireError::from(error)).unwrap();
            let back: CompileError = serde_json::from_str::<WireError>(&wire).unwrap().into();
            assert_eq!(back.to_string(), message);
        }
    }

    #[test]
    fn the_worker_checks_its_engine_and_answers_bad_components() {
        let dir = tempfile::tempdir().unwrap();
        let config = RuntimeConfig {
            pooling: false,
            ..RuntimeConfig::new(dir.path())
        };
        let key = engine_key(&compile_engine(&config, EngineKind::Standard).unwrap());
        let run = |engine_key: &str, bytes: &[u8]| {
            let job = WorkerJob {
                config: config.clone(),
                engine: EngineKind::Standard,
                engine_key: engine_key.into(),
                temp: dir.path().join("x.tmp"),
            };
            let mut out = Vec::new();
            run_compile_worker(&serde_json::to_string(&job).unwrap(), bytes, &mut out).unwrap();
            serde_json::from_slice::<WorkerReply>(&out).unwrap()
        };
        let garbage = b"\0asm\x0d\0\x01\0garbage";
        assert!(matches!(
            run("0000000000000000", garbage),
            WorkerReply::Failed {
                error: WireError::Other { .. }
            }
        ));
        assert!(matches!(
            run(&key, garbage),
            WorkerReply::Failed {
                error: WireError::Invalid { .. }
            }
        ));
        assert!(matches!(
            run(&key, b"not wasm"),
            WorkerReply::Failed {
                error: WireError::NotWasm
            }
        ));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
