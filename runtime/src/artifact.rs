//! Validation, compilation and the on-disk cache of compiled programs.
//!
//! A program (a component, or a WAGI module) is compiled once, at upload, by
//! the engine its kind runs on (see [`EngineKind`]). The compiled artifact
//! is written to the cache directory under its content digest and that
//! engine's compatibility hash, so a restarted process (or a version that
//! was unloaded when idle) maps it back from disk instead of compiling
//! again; an engine with different settings simply misses the cache and
//! recompiles.

use crate::engine::{EngineKind, Linkers};
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
    /// It exports neither `wasi:http/incoming-handler` nor `wasi:http/handler`.
    #[error(
        "the component exports neither wasi:http/incoming-handler@0.2 (the wasi:http/proxy world of WASI 0.2) nor wasi:http/handler@0.3 (the wasi:http/service world of WASI 0.3); it exports: [{0}]"
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
    /// The engine the program needs could not be built.
    #[error("cannot build the engine for this kind of program: {0}")]
    Engine(String),
    /// The compile worker process failed (crashed, was killed, or answered
    /// nonsense).
    #[error("the compile worker failed: {0}")]
    Worker(String),
}

/// The export of a WASI 0.3 `wasi:http` component, up to its patch version.
const HTTP_P3_EXPORT: &str = "wasi:http/handler@0.3";
/// The export of a WASI 0.2 `wasi:http` component, up to its minor version.
const HTTP_P2_EXPORT: &str = "wasi:http/incoming-handler@0.2";

/// Packages whose interfaces the linkers provide (WASI 0.2, and 0.3 for
/// WASI 0.3 components, with wasi:http).
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
/// tells their kind: a core module by its header, a WASI 0.3 component from
/// a WASI 0.2 one by its exports. Bytes that do not parse are called a 0.2
/// component, whose compile then says what is wrong with them.
pub fn detect_kind(bytes: &[u8]) -> Result<FunctionKind, CompileError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(CompileError::NotWasm);
    }
    // Core modules carry version 1 with layer 0; components layer 1.
    Ok(if bytes[4..8] == [1, 0, 0, 0] {
        FunctionKind::Wagi
    } else if exports_http_p3(bytes) {
        FunctionKind::HttpP3
    } else {
        FunctionKind::Http
    })
}

/// Whether the outermost component of `bytes` exports `wasi:http/handler`
/// of WASI 0.3. Reads section headers only; nothing is validated.
fn exports_http_p3(bytes: &[u8]) -> bool {
    use wasmparser::{Parser, Payload};
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload {
            Err(_) => return false,
            Ok(Payload::ModuleSection { .. } | Payload::ComponentSection { .. }) => depth += 1,
            Ok(Payload::End(_)) => depth = depth.saturating_sub(1),
            Ok(Payload::ComponentExportSection(exports)) if depth == 0 => {
                for export in exports.into_iter().flatten() {
                    if export.name.name.starts_with(HTTP_P3_EXPORT) {
                        return true;
                    }
                }
            }
            Ok(_) => {}
        }
    }
    false
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

/// Checks a compiled component's exports and imports against what Flint runs
/// for `kind`.
pub(crate) fn check_world(
    engine: &Engine,
    component: &Component,
    kind: FunctionKind,
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
    let handler = match kind {
        FunctionKind::HttpP3 => HTTP_P3_EXPORT,
        _ => HTTP_P2_EXPORT,
    };
    if !exports.iter().any(|e| e.starts_with(handler)) {
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

/// Validates and compiles `bytes`, of `kind`, with the engine of that kind
/// and checks them against its `linkers`: the one compile of both the
/// in-process path and the worker process. Returns the program and the time
/// the compiler took.
pub(crate) fn compile_checked(
    engine: &Engine,
    linkers: &Linkers,
    kind: FunctionKind,
    bytes: &[u8],
) -> Result<(Program, Duration), CompileError> {
    let start = Instant::now();
    let invalid = |e: wasmtime::Error| CompileError::Invalid {
        module: kind == FunctionKind::Wagi,
        message: format!("{e:#}"),
    };
    let program = match kind {
        FunctionKind::Http => Program::Http(Component::new(engine, bytes).map_err(invalid)?),
        FunctionKind::HttpP3 => Program::HttpP3(Component::new(engine, bytes).map_err(invalid)?),
        FunctionKind::Wagi => Program::Wagi(Module::new(engine, bytes).map_err(invalid)?),
    };
    let compile_time = start.elapsed();
    match &program {
        Program::Http(component) | Program::HttpP3(component) => {
            let link = linkers.http.instantiate_pre(component).map(drop);
            check_world(engine, component, kind, link)?;
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

/// The compatibility key of `engine`: artifacts it wrote carry it in their
/// names, and it maps only artifacts with its own.
pub(crate) fn engine_key(engine: &Engine) -> String {
    let mut hasher = StableHasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

/// The on-disk cache of compiled artifacts, of every engine of the runtime.
pub struct ArtifactCache {
    dir: PathBuf,
    keys: Vec<(EngineKind, String)>,
}

impl ArtifactCache {
    /// A cache under `dir` for artifacts of engines with `keys` (see
    /// [`engine_key`]).
    pub(crate) fn new(dir: &Path, keys: &[(EngineKind, String)]) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            keys: keys.to_vec(),
        })
    }

    /// The compatibility key of the engine of `kind` (empty when this cache
    /// was made without it).
    pub fn engine_key(&self, kind: EngineKind) -> &str {
        self.keys
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or("", |(_, key)| key)
    }

    /// Where the artifact of `digest` lives for the engine of `kind`.
    pub fn path(&self, digest: &Digest, kind: EngineKind) -> PathBuf {
        self.dir
            .join(format!("{}-{}.cwasm", digest.hex(), self.engine_key(kind)))
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Which engine an artifact of `digest` is cached for, if any.
    pub fn cached_for(&self, digest: &Digest) -> Option<EngineKind> {
        self.keys
            .iter()
            .map(|&(kind, _)| kind)
            .find(|&kind| self.path(digest, kind).is_file())
    }

    /// Whether an artifact for `digest` is cached.
    pub fn contains(&self, digest: &Digest) -> bool {
        self.cached_for(digest).is_some()
    }

    /// Stores a compiled artifact of the engine of `kind`.
    pub fn store(&self, digest: &Digest, kind: EngineKind, artifact: &[u8]) -> std::io::Result<()> {
        write_atomic(&self.path(digest, kind), artifact)
    }

    /// Removes the artifacts of `digest`, of every engine.
    pub fn remove(&self, digest: &Digest) {
        for &(kind, _) in &self.keys {
            let _ = std::fs::remove_file(self.path(digest, kind));
        }
    }

    /// Marks the artifact of `digest` as just used, so that the garbage
    /// collector's grace period starts again (an upload that reuses it has
    /// not recorded its version yet).
    pub fn touch(&self, digest: &Digest) -> std::io::Result<()> {
        match self.cached_for(digest) {
            Some(kind) => fsutil::touch(&self.path(digest, kind)),
            None => Err(std::io::Error::from(std::io::ErrorKind::NotFound)),
        }
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
            if !self.keys.iter().any(|(_, k)| k == key) {
                Some("artifact of another engine")
            } else if !referenced.contains(&digest) {
                Some("artifact no version uses")
            } else {
                None
            }
        })
    }

    /// Maps a cached artifact of the engine of `kind` into memory, as the
    /// component or module it was compiled from.
    pub(crate) fn load(
        &self,
        engine: &Engine,
        kind: EngineKind,
        digest: &Digest,
    ) -> wasmtime::Result<Program> {
        let path = self.path(digest, kind);
        // SAFETY: the file was produced by `Engine::precompile_component` of an
        // engine with the same compatibility hash and written atomically into
        // Flint's own data directory; nothing else writes there.
        #[expect(
            unsafe_code,
            reason = "mapping our own precompiled artifact is the point of the cache"
        )]
        unsafe {
            match (Engine::detect_precompiled_file(&path)?, kind) {
                (Some(Precompiled::Module), _) => {
                    Ok(Program::Wagi(Module::deserialize_file(engine, &path)?))
                }
                (Some(Precompiled::Component), EngineKind::Standard) => {
                    Ok(Program::Http(Component::deserialize_file(engine, &path)?))
                }
                (Some(Precompiled::Component), EngineKind::Concurrent) => {
                    Ok(Program::HttpP3(Component::deserialize_file(engine, &path)?))
                }
                (None, _) => Err(wasmtime::format_err!(
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
            detect_kind(b"hello world"),
            Err(CompileError::NotWasm)
        ));
        assert_eq!(detect_kind(b"\0asm\x01\0\0\0").unwrap(), FunctionKind::Wagi);
        assert_eq!(
            detect_kind(b"\0asm\x0d\0\x01\0").unwrap(),
            FunctionKind::Http
        );
    }
}
