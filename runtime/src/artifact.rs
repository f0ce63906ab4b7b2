//! Validation, compilation and the on-disk cache of compiled programs.
//!
//! A program (a component, or a WAGI module) is compiled once, at upload. The compiled artifact is written
//! to the cache directory under its content digest and the engine's
//! compatibility hash, so a restarted process (or a version that was unloaded
//! when idle) maps it back from disk instead of compiling again; an engine
//! with different settings simply misses the cache and recompiles.

use crate::engine::Linkers;
use crate::fsutil::write_atomic;
use crate::fsutil::{self, Swept};
use crate::program::Program;
use crate::wagi::{START, WASI_P1_MODULE};
use flint_spec::{Digest, FunctionKind};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use wasmtime::component::Component;
use wasmtime::{Engine, ExternType, Module, Precompiled};

/// Why an upload is not a program Flint can run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CompileError {
    /// The bytes do not start with the Wasm magic number.
    #[error(
        "not a WebAssembly binary (missing the \\0asm header); upload a .wasm component or module"
    )]
    NotWasm,
    /// A core module that is no WASI command, so it cannot run as WAGI.
    #[error(
        "this core module exports no `_start` function, so it cannot run as a WAGI function: build a WASI command (a program with `main`, e.g. for wasm32-wasip1), or a wasi:http component for wasm32-wasip2; it exports: [{0}]"
    )]
    NotACommand(String),
    /// The component or module failed to parse or validate.
    #[error("invalid {kind}: {message}", kind = if *.module { "module" } else { "component" })]
    Invalid {
        /// Whether the bytes are a core module (else a component).
        module: bool,
        /// The parser's or validator's words.
        message: String,
    },
    /// It does not export `wasi:http/incoming-handler`.
    #[error(
        "the component does not export wasi:http/incoming-handler (the wasi:http/proxy world); it exports: [{0}]"
    )]
    NotAHttpHandler(String),
    /// It imports interfaces Flint does not provide.
    #[error("it imports interfaces Flint does not provide: [{missing}] ({detail})")]
    UnsupportedImports {
        /// The imports that could not be satisfied.
        missing: String,
        /// The linker's own words.
        detail: String,
    },
    /// The cache could not be written or read.
    #[error("artifact cache: {0}")]
    Cache(#[from] std::io::Error),
    /// Every compile slot stayed busy for the whole wait: the caller may
    /// retry shortly.
    #[error(
        "all {max_compiles} compile slots are busy and none freed within {waited_ms} ms; retry after {retry_after_secs} s"
    )]
    Busy {
        /// Compiles that may run at once.
        max_compiles: usize,
        /// How long the compile waited for a slot.
        waited_ms: u128,
        /// Suggested wait before retrying.
        retry_after_secs: u64,
    },
    /// The compile ran past its time limit and was stopped.
    #[error("compiling took longer than {limit_ms} ms")]
    Timeout {
        /// The limit, in milliseconds.
        limit_ms: u128,
    },
    /// The compile worker process failed (crashed, was killed, or answered
    /// nonsense).
    #[error("the compile worker failed: {0}")]
    Worker(String),
}

/// Packages whose interfaces the linker provides (full WASI 0.2 and wasi:http).
const PROVIDED_PACKAGES: &[&str] = &[
    "wasi:cli/",
    "wasi:io/",
    "wasi:clocks/",
    "wasi:random/",
    "wasi:filesystem/",
    "wasi:sockets/",
    "wasi:http/",
];

/// Checks the cheap things about `bytes` before the compiler sees them, and
/// tells a component from a core module by its header.
pub fn check_header(bytes: &[u8]) -> Result<FunctionKind, CompileError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(CompileError::NotWasm);
    }
    // Core modules carry version 1 with layer 0; components layer 1.
    Ok(if bytes[4..8] == [1, 0, 0, 0] {
        FunctionKind::Wagi
    } else {
        FunctionKind::Http
    })
}

/// Names of imports outside `provided`, or "see detail" when the linker
/// refused for another reason.
fn missing_imports<'a>(
    imports: impl Iterator<Item = String> + 'a,
    provided: impl Fn(&str) -> bool,
) -> String {
    let missing: Vec<String> = imports.filter(|name| !provided(name)).collect();
    if missing.is_empty() {
        "see detail".to_string()
    } else {
        missing.join(", ")
    }
}

/// Checks a compiled component's exports and imports against what Flint runs.
pub(crate) fn check_world(
    engine: &Engine,
    component: &Component,
    link_result: wasmtime::Result<()>,
) -> Result<(), CompileError> {
    let ty = component.component_type();
    if let Err(e) = link_result {
        let imports = ty.imports(engine).map(|(name, _)| name.to_string());
        return Err(CompileError::UnsupportedImports {
            missing: missing_imports(imports, |name| {
                PROVIDED_PACKAGES.iter().any(|p| name.starts_with(p))
            }),
            detail: format!("{e:#}"),
        });
    }
    let exports: Vec<String> = ty
        .exports(engine)
        .map(|(name, _)| name.to_string())
        .collect();
    if !exports
        .iter()
        .any(|e| e.starts_with("wasi:http/incoming-handler@0.2"))
    {
        return Err(CompileError::NotAHttpHandler(exports.join(", ")));
    }
    Ok(())
}

/// Checks a compiled core module: a WASI command (`_start`, no parameters
/// or results) importing only WASI 0.1.
pub(crate) fn check_command(
    module: &Module,
    link_result: wasmtime::Result<()>,
) -> Result<(), CompileError> {
    let start = module.exports().find(|e| e.name() == START).map(|e| e.ty());
    let is_command = matches!(&start, Some(ExternType::Func(f)) if f.params().len() == 0 && f.results().len() == 0);
    if !is_command {
        let exports: Vec<&str> = module.exports().map(|e| e.name()).collect();
        return Err(CompileError::NotACommand(exports.join(", ")));
    }
    if let Err(e) = link_result {
        let imports = module
            .imports()
            .map(|i| format!("{}::{}", i.module(), i.name()));
        return Err(CompileError::UnsupportedImports {
            missing: missing_imports(imports, |name| {
                name.starts_with(&format!("{WASI_P1_MODULE}::"))
            }),
            detail: format!("{e:#}"),
        });
    }
    Ok(())
}

/// Validates and compiles `bytes` and checks them against `linkers`: the
/// one compile of both the in-process path and the worker process. Returns
/// the program and the time the compiler took.
pub(crate) fn compile_checked(
    engine: &Engine,
    linkers: &Linkers,
    bytes: &[u8],
) -> Result<(Program, Duration), CompileError> {
    let kind = check_header(bytes)?;
    let start = Instant::now();
    let invalid = |e: wasmtime::Error| CompileError::Invalid {
        module: kind == FunctionKind::Wagi,
        message: format!("{e:#}"),
    };
    let program = match kind {
        FunctionKind::Http => Program::Http(Component::new(engine, bytes).map_err(invalid)?),
        FunctionKind::Wagi => Program::Wagi(Module::new(engine, bytes).map_err(invalid)?),
    };
    let compile_time = start.elapsed();
    match &program {
        Program::Http(component) => {
            let link = linkers.http.instantiate_pre(component).map(drop);
            check_world(engine, component, link)?;
        }
        Program::Wagi(module) => {
            let link = linkers.wagi.instantiate_pre(module).map(drop);
            check_command(module, link)?;
        }
    }
    Ok((program, compile_time))
}

/// A compiled program as the bytes the cache stores.
pub(crate) fn serialize(program: &Program) -> Result<Vec<u8>, CompileError> {
    program.serialize().map_err(|e| CompileError::Invalid {
        module: program.kind() == FunctionKind::Wagi,
        message: format!("{e:#}"),
    })
}

/// A `Hasher` over SHA-256, so the engine compatibility key is stable across
/// processes (std's `DefaultHasher` is not promised to be).
struct StableHasher(Sha256);

impl Hasher for StableHasher {
    fn finish(&self) -> u64 {
        let out = self.0.clone().finalize();
        u64::from_le_bytes(out[..8].try_into().unwrap())
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// The on-disk cache of compiled artifacts.
pub struct ArtifactCache {
    dir: PathBuf,
    engine_key: String,
}

impl ArtifactCache {
    /// A cache under `dir` for artifacts compatible with `engine`.
    pub fn new(dir: &Path, engine: &Engine) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut hasher = StableHasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_key = format!("{:016x}", hasher.finish());
        Ok(Self {
            dir: dir.to_path_buf(),
            engine_key,
        })
    }

    /// Where the artifact of `digest` lives for this engine.
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.dir
            .join(format!("{}-{}.cwasm", digest.hex(), self.engine_key))
    }

    /// The engine compatibility key in the artifacts' names.
    pub fn engine_key(&self) -> &str {
        &self.engine_key
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether an artifact for `digest` is cached.
    pub fn contains(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    /// Stores a compiled artifact.
    pub fn store(&self, digest: &Digest, artifact: &[u8]) -> std::io::Result<()> {
        write_atomic(&self.path(digest), artifact)
    }

    /// Marks the artifact of `digest` as just used, so that the garbage
    /// collector's grace period starts again (an upload that reuses it has
    /// not recorded its version yet).
    pub fn touch(&self, digest: &Digest) -> std::io::Result<()> {
        fsutil::touch(&self.path(digest))
    }

    /// Bytes the cache holds, leftovers of interrupted compiles included.
    pub fn usage(&self) -> std::io::Result<u64> {
        fsutil::dir_usage(&self.dir)
    }

    /// Removes what no version needs, once untouched for `grace`: artifacts
    /// of digests outside `referenced`, artifacts of other engines (their
    /// key differs: an upgrade or other settings), and temp files of
    /// compiles that never finished. Other files are left alone.
    pub fn sweep(
        &self,
        referenced: &BTreeSet<Digest>,
        grace: Duration,
    ) -> std::io::Result<Vec<Swept>> {
        fsutil::sweep(&self.dir, grace, |name| {
            if fsutil::is_temp_name(name) {
                return Some("temp file of a compile that never finished");
            }
            let (hex, key) = name.strip_suffix(".cwasm")?.split_once('-')?;
            let digest = Digest::parse(hex)?;
            if key != self.engine_key {
                Some("artifact of another engine")
            } else if !referenced.contains(&digest) {
                Some("artifact no version uses")
            } else {
                None
            }
        })
    }

    /// Maps a cached artifact into memory, as the component or module it
    /// was compiled from.
    pub fn load(&self, engine: &Engine, digest: &Digest) -> wasmtime::Result<Program> {
        let path = self.path(digest);
        // SAFETY: the file was produced by `Engine::precompile_component` of an
        // engine with the same compatibility hash and written atomically into
        // Flint's own data directory; nothing else writes there.
        #[expect(
            unsafe_code,
            reason = "mapping our own precompiled artifact is the point of the cache"
        )]
        unsafe {
            match Engine::detect_precompiled_file(&path)? {
                Some(Precompiled::Module) => {
                    Ok(Program::Wagi(Module::deserialize_file(engine, &path)?))
                }
                Some(Precompiled::Component) => {
                    Ok(Program::Http(Component::deserialize_file(engine, &path)?))
                }
                None => Err(wasmtime::format_err!(
                    "{} is no compiled artifact",
                    path.display()
                )),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_checks_name_the_problem() {
        assert!(matches!(
            check_header(b"hello world"),
            Err(CompileError::NotWasm)
        ));
        assert_eq!(
            check_header(b"\0asm\x01\0\0\0").unwrap(),
            FunctionKind::Wagi
        );
        assert_eq!(
            check_header(b"\0asm\x0d\0\x01\0").unwrap(),
            FunctionKind::Http
        );
    }
}
