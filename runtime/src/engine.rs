//! The engines of a process, their linkers, the epoch ticker and the
//! compile/load entry points.
//!
//! There are two engines. WASI 0.2 components and WAGI modules run on one
//! built without wasmtime's concurrency support: with it, every host call
//! pays for the async component model's bookkeeping. WASI 0.3 components
//! need that support and run on the other. A program's kind, detected at
//! upload, picks its engine; each engine's artifacts carry its own key.

use crate::artifact::{
    ArtifactCache, CompileError, compile_checked, detect_kind, engine_key, serialize,
};
use crate::compile::CompileGate;
use crate::host::HostState;
use crate::pool::Prelinked;
use crate::program::Program;
use crate::wagi::{self, WagiState};
use flint_spec::{Digest, FunctionKind};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use wasmtime::component::Linker;
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p3::bindings::ServicePre;

/// Default number of instances that may exist at once (pool slots).
pub const DEFAULT_MAX_INSTANCES: u32 = 1000;
/// How often the epoch advances. A running guest yields its thread at every
/// tick, so with N guests on a thread another request (a `/healthz`, say)
/// waits at most about N ticks; a spinning guest notices its deadline, and a
/// hoarding one its host-resource budget, within about one tick.
pub const EPOCH_TICK: Duration = Duration::from_millis(2);
/// Linear memory kept resident (not returned to the kernel) per pool slot
/// between instances: resetting it with memset beats page faults.
const KEEP_RESIDENT_BYTES: usize = 1 << 20;

/// Default longest compile of an upload.
pub const DEFAULT_COMPILE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default longest wait for a compile slot.
pub const DEFAULT_COMPILE_QUEUE_TIMEOUT: Duration = Duration::from_secs(5);

/// Default compiles that may run at once: one per CPU core, since a compile
/// keeps a core busy.
pub fn default_max_compiles() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// How the engine is set up. Defaults are what measured fastest here.
///
/// A compile worker process gets the whole configuration and builds its
/// engine with [`wasmtime_config`] too, so its engine and the server's
/// cannot drift apart: the artifacts it writes carry the server's engine
/// key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RuntimeConfig {
    /// Where compiled artifacts are cached.
    pub cache_dir: PathBuf,
    /// Use the pooling instance allocator (default: yes).
    pub pooling: bool,
    /// Copy-on-write memory images (default: yes).
    pub memory_init_cow: bool,
    /// Pool slots: instances that may exist at once.
    pub max_instances: u32,
    /// Largest memory any function may have, in MiB (the pool slot size).
    pub max_memory_mb: u32,
    /// Compiles that may run at once (default: [`default_max_compiles`]).
    pub max_compiles: usize,
    /// Longest wait for a compile slot before the compile is refused as
    /// busy (default: [`DEFAULT_COMPILE_QUEUE_TIMEOUT`]).
    pub compile_queue_timeout: Duration,
    /// Longest compile; a compile past it is stopped (default:
    /// [`DEFAULT_COMPILE_TIMEOUT`]).
    pub compile_timeout: Duration,
    /// The program that compiles in a process of its own (`flint`, run as
    /// `flint __compile`), killed at the deadline so that a compile past its
    /// time limit stops using CPU. `None` (the default) compiles on a thread
    /// of this process: a compile past its limit is then reported as timed
    /// out but runs to its end.
    pub compile_worker: Option<PathBuf>,
}

impl RuntimeConfig {
    /// Defaults with the cache under `cache_dir`.
    pub fn new(cache_dir: impl Into<PathBuf>) -> Self {
        Self {
            cache_dir: cache_dir.into(),
            pooling: true,
            memory_init_cow: true,
            max_instances: DEFAULT_MAX_INSTANCES,
            max_memory_mb: flint_spec::MAX_MEMORY_MB,
            max_compiles: default_max_compiles(),
            compile_queue_timeout: DEFAULT_COMPILE_QUEUE_TIMEOUT,
            compile_timeout: DEFAULT_COMPILE_TIMEOUT,
            compile_worker: None,
        }
    }
}

/// Which of the runtime's engines a program runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// Without concurrency support: WASI 0.2 components and WAGI modules.
    Standard,
    /// With concurrency support (the async component model): WASI 0.3
    /// components.
    Concurrent,
}

impl EngineKind {
    /// The engine a program of `kind` runs on.
    pub fn of(kind: FunctionKind) -> Self {
        match kind {
            FunctionKind::HttpP3 => Self::Concurrent,
            FunctionKind::Http | FunctionKind::Wagi => Self::Standard,
        }
    }
}

/// The wasmtime settings of `config` for the engine of `kind`: the one place
/// they are made, for the server's engines and a compile worker's alike.
pub fn wasmtime_config(config: &RuntimeConfig, kind: EngineKind) -> Config {
    let mut wasm = Config::new();
    wasm.wasm_component_model(true)
        .epoch_interruption(true)
        .memory_init_cow(config.memory_init_cow);
    match kind {
        EngineKind::Standard => wasm.concurrency_support(false),
        EngineKind::Concurrent => wasm
            .concurrency_support(true)
            .wasm_component_model_async(true),
    };
    if config.pooling {
        let n = config.max_instances;
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(n)
            .total_core_instances(n * 4)
            .total_memories(n)
            .total_tables(n * 4)
            .total_stacks(n)
            .max_memories_per_component(4)
            .max_tables_per_component(8)
            .max_memory_size(config.max_memory_mb as usize * 1024 * 1024)
            .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
            .table_keep_resident(KEEP_RESIDENT_BYTES)
            .pagemap_scan(Enabled::Auto);
        wasm.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    wasm
}

/// The linkers of one engine with the interfaces Flint provides: for
/// components WASI 0.2 and `wasi:http` 0.2 (the standard engine) or WASI 0.2
/// and 0.3 with `wasi:http` 0.3 (the concurrent one); WASI 0.1 for WAGI
/// modules.
pub(crate) struct Linkers {
    pub(crate) http: Linker<HostState>,
    pub(crate) wagi: wasmtime::Linker<WagiState>,
}

/// Builds the [`Linkers`] of `engine`, of `kind`.
pub(crate) fn host_linkers(engine: &Engine, kind: EngineKind) -> anyhow::Result<Linkers> {
    let mut http = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut http)?;
    match kind {
        EngineKind::Standard => wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut http)?,
        EngineKind::Concurrent => {
            wasmtime_wasi::p3::add_to_linker(&mut http)?;
            wasmtime_wasi_http::p3::add_to_linker(&mut http)?;
        }
    }
    Ok(Linkers {
        http,
        wagi: wagi::linker(engine)?,
    })
}

/// One engine and its linkers.
struct EngineParts {
    engine: Engine,
    linkers: Linkers,
}

impl EngineParts {
    fn new(config: &RuntimeConfig, kind: EngineKind) -> anyhow::Result<Self> {
        let engine = Engine::new(&wasmtime_config(config, kind))?;
        let linkers = host_linkers(&engine, kind)?;
        Ok(Self { engine, linkers })
    }
}

/// An engine of `kind` with `config`'s settings but no instance pool, for
/// work that instantiates nothing: compiling, and reading an engine's
/// artifact key. The pool takes no part in compiling (a test holds the keys
/// equal), and making one takes milliseconds.
pub(crate) fn compile_engine(config: &RuntimeConfig, kind: EngineKind) -> anyhow::Result<Engine> {
    let config = RuntimeConfig {
        pooling: false,
        ..config.clone()
    };
    Ok(Engine::new(&wasmtime_config(&config, kind))?)
}

/// A program compiled at upload.
pub struct Compiled {
    /// Its content digest.
    pub digest: Digest,
    /// The ready component or module.
    pub program: Program,
    /// How long compilation took.
    pub compile_time: Duration,
}

/// The engines, linkers and artifact cache shared by every function.
pub struct Runtime {
    pub(crate) config: RuntimeConfig,
    standard: EngineParts,
    /// Built when the first WASI 0.3 component is compiled or loaded: a
    /// process that runs none never makes its instance pool, which takes
    /// milliseconds of every start.
    concurrent: Arc<OnceLock<EngineParts>>,
    cache: ArtifactCache,
    pub(crate) compiles: CompileGate,
    ticker_stop: Arc<AtomicBool>,
}

impl Runtime {
    /// Builds the standard engine and starts the epoch ticker; the
    /// concurrent engine waits for its first use.
    pub fn new(config: &RuntimeConfig) -> anyhow::Result<Self> {
        let standard = EngineParts::new(config, EngineKind::Standard)?;
        let cache = ArtifactCache::new(
            &config.cache_dir,
            &[
                (EngineKind::Standard, engine_key(&standard.engine)),
                (
                    EngineKind::Concurrent,
                    engine_key(&compile_engine(config, EngineKind::Concurrent)?),
                ),
            ],
        )?;
        let concurrent = Arc::new(OnceLock::<EngineParts>::new());
        let ticker_stop = Arc::new(AtomicBool::new(false));
        std::thread::Builder::new()
            .name("flint-epoch".into())
            .spawn({
                let standard = standard.engine.clone();
                let concurrent = concurrent.clone();
                let stop = ticker_stop.clone();
                move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        standard.increment_epoch();
                        if let Some(parts) = concurrent.get() {
                            parts.engine.increment_epoch();
                        }
                    }
                }
            })?;
        Ok(Self {
            config: config.clone(),
            standard,
            concurrent,
            cache,
            compiles: CompileGate::new(config.max_compiles, config.compile_queue_timeout),
            ticker_stop,
        })
    }

    /// The engine of `kind` and its linkers, building the concurrent one on
    /// its first use.
    fn parts(&self, kind: EngineKind) -> anyhow::Result<&EngineParts> {
        match kind {
            EngineKind::Standard => Ok(&self.standard),
            EngineKind::Concurrent => {
                if let Some(parts) = self.concurrent.get() {
                    return Ok(parts);
                }
                let built = EngineParts::new(&self.config, kind)?;
                // Of two first uses at once, the engine set first is kept.
                Ok(self.concurrent.get_or_init(|| built))
            }
        }
    }

    /// The engine of `kind` (built on its first use).
    pub fn engine(&self, kind: EngineKind) -> anyhow::Result<&Engine> {
        Ok(&self.parts(kind)?.engine)
    }

    /// The compiled-artifact cache.
    pub fn cache(&self) -> &ArtifactCache {
        &self.cache
    }

    /// Validates and compiles `bytes` on this thread, checks its exports and
    /// imports, and caches the artifact; no admission and no time limit (see
    /// [`Runtime::compile_limited`]). CPU-heavy: call it from a blocking
    /// thread.
    pub fn compile(&self, bytes: &[u8]) -> Result<Compiled, CompileError> {
        self.compile_as(detect_kind(bytes)?, bytes)
    }

    /// [`Runtime::compile`] of bytes whose kind is already known.
    pub(crate) fn compile_as(
        &self,
        kind: FunctionKind,
        bytes: &[u8],
    ) -> Result<Compiled, CompileError> {
        let engine = EngineKind::of(kind);
        let parts = self
            .parts(engine)
            .map_err(|e| CompileError::Engine(format!("{e:#}")))?;
        let (program, compile_time) = compile_checked(&parts.engine, &parts.linkers, kind, bytes)?;
        let digest = Digest::of(bytes);
        self.cache.store(&digest, engine, &serialize(&program)?)?;
        Ok(Compiled {
            digest,
            program,
            compile_time,
        })
    }

    /// Maps a cached artifact (a "disk" start); `None` when not cached for
    /// these engines.
    pub fn load_cached(&self, digest: &Digest) -> Option<Program> {
        let kind = self.cache.cached_for(digest)?;
        let loaded = self
            .engine(kind)
            .and_then(|engine| Ok(self.cache.load(engine, kind, digest)?));
        match loaded {
            Ok(program) => Some(program),
            Err(e) => {
                tracing::warn!(%digest, error = %e, "cached artifact unusable; will recompile");
                None
            }
        }
    }

    /// Pre-links a program against the host's interfaces.
    pub(crate) fn prelink(&self, program: &Program) -> anyhow::Result<Prelinked> {
        let standard = &self.standard.linkers;
        Ok(match program {
            Program::Http(component) => {
                Prelinked::Http(ProxyPre::new(standard.http.instantiate_pre(component)?)?)
            }
            Program::HttpP3(component) => Prelinked::HttpP3(ServicePre::new(
                self.parts(EngineKind::Concurrent)?
                    .linkers
                    .http
                    .instantiate_pre(component)?,
            )?),
            Program::Wagi(module) => Prelinked::Wagi(standard.wagi.instantiate_pre(module)?),
        })
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default settings with a pool of two slots, caching under `dir`.
    fn small_config(dir: &tempfile::TempDir) -> RuntimeConfig {
        RuntimeConfig {
            max_instances: 2,
            ..RuntimeConfig::new(dir.path().to_path_buf())
        }
    }

    #[test]
    fn the_pool_takes_no_part_in_an_engines_artifact_key() {
        let dir = tempfile::tempdir().unwrap();
        let config = small_config(&dir);
        let keys = [EngineKind::Standard, EngineKind::Concurrent].map(|kind| {
            let pooled = engine_key(&Engine::new(&wasmtime_config(&config, kind)).unwrap());
            let pool_free = engine_key(&compile_engine(&config, kind).unwrap());
            assert_eq!(pooled, pool_free, "{kind:?}");
            pooled
        });
        assert_ne!(keys[0], keys[1], "each engine has artifacts of its own");
    }

    #[test]
    fn the_concurrent_engine_is_built_on_its_first_use_only() {
        let dir = tempfile::tempdir().unwrap();
        let config = small_config(&dir);
        let runtime = Runtime::new(&config).unwrap();
        assert!(runtime.concurrent.get().is_none());
        let first = runtime.engine(EngineKind::Concurrent).unwrap().clone();
        assert!(runtime.concurrent.get().is_some());
        let again = runtime.engine(EngineKind::Concurrent).unwrap();
        assert!(Engine::same(&first, again), "built once");
    }
}
