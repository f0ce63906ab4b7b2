//! The manifest, `flint.toml`: the functions a project runs, where their
//! components come from, and how each environment differs.
//!
//! A manifest declares functions under `[functions.NAME]`: the component
//! (a `.wasm` path, a build command and the file it writes, or the digest
//! of a component already on the server), its limits and env config (a
//! [`ConfigPatch`] over the defaults), extra HTTP routes, a queue trigger, a
//! cron schedule and a release policy. Environments are overlays under
//! `[env.NAME]` that change only `config`, `trigger` and `schedule`: the component bytes are the same in
//! every environment, so what was tested in staging is what runs in prod.
//!
//! ```toml
//! [functions.orders]
//! component = "target/wasm32-wasip2/release/orders.wasm"
//! routes = ["/orders", "/orders/..."]
//! release = "canary"
//!
//! [functions.orders.config]
//! memory_mb = 64
//! env = { LOG_LEVEL = "info", DB_PASSWORD = "secret:orders-db" }
//!
//! [env.prod.functions.orders.config]
//! min_instances = 2
//! ```
//!
//! The flow: [`Manifest::load`] parses and validates the file (every
//! environment too, so a bad `prod` overlay fails `flint plan --env
//! staging` as well); [`Manifest::resolve`] applies one environment's
//! overlay; [`load_components`] runs the builds and hashes the components;
//! [`Resolved::desired`] gives the [`DesiredState`] the server applies.
//!
//! Unknown keys are errors that name the key and its line, so a typo
//! (`memry_mb`) never silently falls back to a default. Every path is
//! relative to the manifest's directory.

mod source;

pub use source::{ComponentSource, LoadedComponents, load_components};

use crate::config::{ConfigPatch, FunctionConfig};
use crate::desired::{CanaryPolicy, DesiredFunction, DesiredState, ReleasePolicy, Strategy};
use crate::digest::Digest;
use crate::names::{
    DEFAULT_RELEASE_ALIAS, MAX_NAME_LEN, check_function_name, is_valid_name, validate_alias_name,
};
use crate::schedule::ScheduleSpec;
use crate::trigger::TriggerSpec;
use serde::Deserialize;
use serde::de::IgnoredAny;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// The manifest's file name, looked for in the current directory.
pub const MANIFEST_FILE: &str = "flint.toml";

/// A parsed and validated manifest.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Functions by name (`[functions.NAME]`).
    #[serde(default)]
    pub functions: BTreeMap<String, FunctionSpec>,
    /// Environment overlays by name (`[env.NAME]`).
    #[serde(default)]
    pub env: BTreeMap<String, EnvOverlay>,
    /// The manifest's path as given, for messages.
    #[serde(skip)]
    origin: PathBuf,
    /// The absolute directory relative paths start from.
    #[serde(skip)]
    base_dir: PathBuf,
    /// Line of each table (`functions.NAME`, `env.NAME`,
    /// `env.NAME.functions.FN`), for messages.
    #[serde(skip)]
    lines: BTreeMap<String, usize>,
}

/// One function as declared under `[functions.NAME]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionSpec {
    /// A `.wasm` file, relative to the manifest's directory.
    #[serde(default)]
    pub component: Option<PathBuf>,
    /// A command that builds the component, and the file it writes.
    #[serde(default)]
    pub build: Option<BuildSpec>,
    /// The digest (`sha256:<hex>`) of a component already on the server.
    #[serde(default)]
    pub digest: Option<String>,
    /// Route patterns served besides `/fn/NAME` (validated by the server).
    #[serde(default)]
    pub routes: Vec<String>,
    /// How a new component reaches callers (default `immediate`).
    #[serde(default)]
    pub release: Strategy,
    /// The alias releases move (default [`DEFAULT_RELEASE_ALIAS`]).
    #[serde(default)]
    pub alias: Option<String>,
    /// Canary steps and thresholds; only with `release = "canary"`.
    #[serde(default)]
    pub canary: Option<CanaryPolicy>,
    /// Limits and env config over the defaults.
    #[serde(default)]
    pub config: ConfigPatch,
    /// A queue trigger.
    #[serde(default)]
    pub trigger: Option<TriggerSpec>,
    /// A cron schedule (`[functions.NAME.schedule]`).
    #[serde(default)]
    pub schedule: Option<ScheduleSpec>,
}

/// A build step: `command` runs with `sh -c` in `dir` and writes `output`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildSpec {
    /// The shell command.
    pub command: String,
    /// The component file it writes, relative to the manifest's directory.
    pub output: PathBuf,
    /// Where it runs, relative to the manifest's directory (default: that
    /// directory).
    #[serde(default)]
    pub dir: Option<PathBuf>,
}

/// One environment's overrides (`[env.NAME]`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvOverlay {
    /// Overrides by function name; each function must be declared under
    /// `[functions]`.
    #[serde(default)]
    pub functions: BTreeMap<String, FunctionOverlay>,
}

/// What an environment may change about a function: never its component.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionOverlay {
    /// Merged over the base patch: `env` maps merge key by key (the overlay
    /// wins), every other field set here replaces the base one.
    #[serde(default)]
    pub config: ConfigPatch,
    /// Replaces the base trigger entirely.
    #[serde(default)]
    pub trigger: Option<TriggerSpec>,
    /// Replaces the base schedule entirely.
    #[serde(default)]
    pub schedule: Option<ScheduleSpec>,
}

/// The manifest of one environment, overlays applied.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resolved {
    /// Functions by name.
    pub functions: BTreeMap<String, ResolvedFunction>,
}

/// One function of one environment.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedFunction {
    /// Where its component comes from (paths absolute).
    pub source: ComponentSource,
    /// Its whole configuration: the defaults patched by the base and the
    /// overlay; `env` values may be `secret:NAME` references.
    pub config: FunctionConfig,
    /// Route patterns besides `/fn/NAME`.
    pub routes: Vec<String>,
    /// Its queue trigger, if any.
    pub trigger: Option<TriggerSpec>,
    /// Its cron schedule, if any.
    pub schedule: Option<ScheduleSpec>,
    /// How a new component reaches callers.
    pub release: ReleasePolicy,
}

/// Why a manifest cannot be used; every message names the file and the
/// place, and says what to do where it can.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The manifest could not be read.
    #[error("cannot read {}: {source}{}", .path.display(), read_hint(.source))]
    Read {
        /// The manifest's path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Not valid TOML, an unknown key or a value of the wrong type; the
    /// message (from the TOML parser) shows the line and the key.
    #[error("{file}: {message}")]
    Parse {
        /// The manifest's path.
        file: String,
        /// The parser's message.
        message: String,
    },
    /// A value that parses but is not allowed.
    #[error("{file}{}: {place}: {message}", .line.map(|l| format!(":{l}")).unwrap_or_default())]
    Invalid {
        /// The manifest's path.
        file: String,
        /// Line of the enclosing table, when known.
        line: Option<usize>,
        /// The dotted path of the offending table or key
        /// (`functions.orders.config`).
        place: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// `--env` names an environment the manifest does not declare.
    #[error("{file}: unknown environment `{name}`; {}", known_environments(.known))]
    UnknownEnvironment {
        /// The manifest's path.
        file: String,
        /// The name asked for.
        name: String,
        /// The environments declared.
        known: Vec<String>,
    },
    /// A build command could not be started.
    #[error("cannot run the build of {functions} (`{command}` in {}): {source}", .dir.display())]
    BuildSpawn {
        /// The functions built by it, as `` `a`, `b` ``.
        functions: String,
        /// The command.
        command: String,
        /// Where it was to run.
        dir: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A build command failed.
    #[error(
        "build of {functions} failed: `{command}` in {} ended with {status}; its output is above",
        .dir.display()
    )]
    BuildFailed {
        /// The functions built by it, as `` `a`, `b` ``.
        functions: String,
        /// The command.
        command: String,
        /// Where it ran.
        dir: PathBuf,
        /// How it ended (`exit status: 1`).
        status: String,
    },
    /// A build succeeded without writing its declared output.
    #[error(
        "build of `{function}` succeeded but did not produce {}; check `output` (relative to the manifest's directory)",
        .output.display()
    )]
    BuildOutput {
        /// The function.
        function: String,
        /// The file it should have written.
        output: PathBuf,
    },
    /// A component file could not be read.
    #[error("cannot read the component of `{function}` at {}: {source}{}", .path.display(), component_hint(.source))]
    Component {
        /// The function.
        function: String,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

fn read_hint(err: &std::io::Error) -> &'static str {
    if err.kind() == std::io::ErrorKind::NotFound {
        "; run `flint init` to write an example manifest"
    } else {
        ""
    }
}

fn component_hint(err: &std::io::Error) -> &'static str {
    if err.kind() == std::io::ErrorKind::NotFound {
        "; build it first, or declare `build = { command = \"...\", output = \"...\" }` so that flint builds it"
    } else {
        ""
    }
}

fn known_environments(known: &[String]) -> String {
    if known.is_empty() {
        "the manifest declares none (add an `[env.NAME]` table)".into()
    } else {
        format!("declared: {}", known.join(", "))
    }
}

/// Where the tables are: deserialized a second time without the types, so
/// that semantic errors can name a line too.
#[derive(Deserialize)]
struct Spans {
    #[serde(default)]
    functions: BTreeMap<String, Spanned<IgnoredAny>>,
    #[serde(default)]
    env: BTreeMap<String, Spanned<EnvSpans>>,
}

#[derive(Deserialize)]
struct EnvSpans {
    #[serde(default)]
    functions: BTreeMap<String, Spanned<IgnoredAny>>,
}

fn table_lines(text: &str) -> BTreeMap<String, usize> {
    let line = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
    let mut lines = BTreeMap::new();
    // The typed parse succeeded already; a failure here only loses lines.
    let Ok(spans) = toml::from_str::<Spans>(text) else {
        return lines;
    };
    for (name, span) in &spans.functions {
        lines.insert(format!("functions.{name}"), line(span.span().start));
    }
    for (env, overlay) in &spans.env {
        lines.insert(format!("env.{env}"), line(overlay.span().start));
        for (name, span) in &overlay.get_ref().functions {
            lines.insert(
                format!("env.{env}.functions.{name}"),
                line(span.span().start),
            );
        }
    }
    lines
}

impl Manifest {
    /// Parses and validates a manifest; `origin` is its path, named in
    /// messages, and its directory is where relative paths start.
    pub fn parse(text: &str, origin: &Path) -> Result<Manifest, ManifestError> {
        let file = origin.display().to_string();
        let mut manifest: Manifest = toml::from_str(text).map_err(|err| ManifestError::Parse {
            file: file.clone(),
            message: err.to_string().trim_end().to_owned(),
        })?;
        let absolute = std::path::absolute(origin).unwrap_or_else(|_| origin.to_path_buf());
        manifest.base_dir = absolute.parent().map(Path::to_path_buf).unwrap_or_default();
        manifest.origin = origin.to_path_buf();
        manifest.lines = table_lines(text);
        manifest.validate()?;
        Ok(manifest)
    }

    /// Reads, parses and validates the manifest at `path`.
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// The manifest's path as given.
    pub fn origin(&self) -> &Path {
        &self.origin
    }

    /// The absolute directory relative paths start from.
    pub fn base_dir(&self) -> &Path {
        &self.base_dir
    }

    /// The declared environments, sorted.
    pub fn environments(&self) -> Vec<String> {
        self.env.keys().cloned().collect()
    }

    /// The manifest of one environment (`None`: the base, no overlay),
    /// validated.
    pub fn resolve(&self, env: Option<&str>) -> Result<Resolved, ManifestError> {
        let overlay = match env {
            None => None,
            Some(name) => {
                Some(
                    self.env
                        .get(name)
                        .ok_or_else(|| ManifestError::UnknownEnvironment {
                            file: self.file(),
                            name: name.to_owned(),
                            known: self.environments(),
                        })?,
                )
            }
        };
        if let (Some(env), Some(overlay)) = (env, overlay)
            && let Some(name) = overlay
                .functions
                .keys()
                .find(|name| !self.functions.contains_key(*name))
        {
            let key = format!("env.{env}.functions.{name}");
            let declared: Vec<&str> = self.functions.keys().map(String::as_str).collect();
            return Err(self.invalid(
                &key,
                key.clone(),
                format!(
                    "no function `{name}` is declared under [functions] (declared: {}); an overlay can only change a declared function",
                    if declared.is_empty() {
                        "none".into()
                    } else {
                        declared.join(", ")
                    }
                ),
            ));
        }

        let mut functions = BTreeMap::new();
        for (name, spec) in &self.functions {
            let over = overlay.and_then(|o| o.functions.get(name));
            // Errors of values the overlay set point at the overlay.
            let over_key = env.map(|env| format!("env.{env}.functions.{name}"));
            let base_key = format!("functions.{name}");
            let config_key = match (&over_key, over) {
                (Some(key), Some(o)) if o.config != ConfigPatch::default() => key.clone(),
                _ => base_key.clone(),
            };
            let patch = match over {
                Some(o) => merge_patch(&spec.config, &o.config),
                None => spec.config.clone(),
            };
            let config = FunctionConfig::default()
                .patched(patch)
                .map_err(|err| self.invalid(&config_key, format!("{config_key}.config"), err))?;

            let (trigger, trigger_key) = match (over.and_then(|o| o.trigger.as_ref()), &over_key) {
                (Some(trigger), Some(key)) => (Some(trigger), key.clone()),
                _ => (spec.trigger.as_ref(), base_key.clone()),
            };
            if let Some(trigger) = trigger {
                trigger.validate().map_err(|message| {
                    self.invalid(&trigger_key, format!("{trigger_key}.trigger"), message)
                })?;
            }

            let (schedule, schedule_key) = match (over.and_then(|o| o.schedule.as_ref()), &over_key)
            {
                (Some(schedule), Some(key)) => (Some(schedule), key.clone()),
                _ => (spec.schedule.as_ref(), base_key.clone()),
            };
            if let Some(schedule) = schedule {
                schedule.validate().map_err(|message| {
                    self.invalid(&schedule_key, format!("{schedule_key}.schedule"), message)
                })?;
            }

            functions.insert(
                name.clone(),
                ResolvedFunction {
                    source: self.source(name, spec)?,
                    config,
                    routes: spec.routes.clone(),
                    trigger: trigger.cloned(),
                    schedule: schedule.cloned(),
                    release: ReleasePolicy {
                        strategy: spec.release,
                        alias: spec
                            .alias
                            .clone()
                            .unwrap_or_else(|| DEFAULT_RELEASE_ALIAS.into()),
                        canary: spec.canary.clone().unwrap_or_default(),
                    },
                },
            );
        }
        Ok(Resolved { functions })
    }

    /// Checks what `resolve` does not: names, sources, release policies;
    /// then resolves the base and every environment, which checks configs,
    /// triggers and overlays.
    fn validate(&self) -> Result<(), ManifestError> {
        for (name, spec) in &self.functions {
            let key = format!("functions.{name}");
            check_function_name(name)
                .map_err(|message| self.invalid(&key, key.clone(), message))?;
            self.source(name, spec)?;
            if let Some(alias) = &spec.alias {
                validate_alias_name(alias)
                    .map_err(|message| self.invalid(&key, format!("{key}.alias"), message))?;
            }
            if let Some(canary) = &spec.canary {
                if spec.release != Strategy::Canary {
                    return Err(self.invalid(
                        &key,
                        format!("{key}.canary"),
                        format!(
                            "a `canary` table needs `release = \"canary\"` (release is \"{}\")",
                            spec.release.as_str()
                        ),
                    ));
                }
                // The same validation as a canary started by hand.
                canary
                    .spec(0, spec.alias.as_deref().unwrap_or(DEFAULT_RELEASE_ALIAS))
                    .validate()
                    .map_err(|message| self.invalid(&key, format!("{key}.canary"), message))?;
            }
        }
        for env in self.env.keys() {
            if !is_valid_name(env) {
                let key = format!("env.{env}");
                return Err(self.invalid(
                    &key,
                    key.clone(),
                    format!(
                        "invalid environment name {env:?}: use 1-{MAX_NAME_LEN} lowercase letters, digits or `-`"
                    ),
                ));
            }
        }
        self.resolve(None)?;
        for env in self.env.keys() {
            self.resolve(Some(env))?;
        }
        Ok(())
    }

    /// The function's one component source, paths made absolute.
    fn source(&self, name: &str, spec: &FunctionSpec) -> Result<ComponentSource, ManifestError> {
        let key = format!("functions.{name}");
        let set: Vec<&str> = [
            spec.component.as_ref().map(|_| "`component`"),
            spec.build.as_ref().map(|_| "`build`"),
            spec.digest.as_ref().map(|_| "`digest`"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if set.len() != 1 {
            let found = if set.is_empty() {
                "none is set".to_owned()
            } else {
                format!("{} are set", set.join(" and "))
            };
            return Err(self.invalid(
                &key,
                key.clone(),
                format!("set exactly one of `component`, `build` or `digest` ({found})"),
            ));
        }
        if let Some(path) = &spec.component {
            if path.as_os_str().is_empty() {
                return Err(self.invalid(
                    &key,
                    format!("{key}.component"),
                    "the path is empty; give the .wasm file",
                ));
            }
            return Ok(ComponentSource::Path(self.join(path)));
        }
        if let Some(build) = &spec.build {
            if build.command.trim().is_empty() {
                return Err(self.invalid(
                    &key,
                    format!("{key}.build.command"),
                    "the command is empty",
                ));
            }
            if build.output.as_os_str().is_empty() {
                return Err(self.invalid(
                    &key,
                    format!("{key}.build.output"),
                    "the path is empty; give the .wasm file the command writes",
                ));
            }
            return Ok(ComponentSource::Build {
                command: build.command.clone(),
                dir: match &build.dir {
                    Some(dir) => self.join(dir),
                    None => self.base_dir.clone(),
                },
                output: self.join(&build.output),
            });
        }
        let digest = spec.digest.as_deref().unwrap_or_default();
        match Digest::parse(digest) {
            Some(digest) => Ok(ComponentSource::Digest(digest.to_string())),
            None => Err(self.invalid(
                &key,
                format!("{key}.digest"),
                format!("{digest:?} is not a digest; write `sha256:` and 64 hex digits"),
            )),
        }
    }

    /// `path` relative to the manifest's directory, without `.` segments.
    fn join(&self, path: &Path) -> PathBuf {
        self.base_dir.join(path).components().collect()
    }

    fn file(&self) -> String {
        self.origin.display().to_string()
    }

    /// An error at `place`, with the line of table `key`.
    fn invalid(&self, key: &str, place: String, message: impl ToString) -> ManifestError {
        ManifestError::Invalid {
            file: self.file(),
            line: self.lines.get(key).copied(),
            place,
            message: message.to_string(),
        }
    }
}

/// `overlay` over `base`: `env` maps merge key by key (the overlay wins),
/// every other field the overlay sets replaces the base one.
fn merge_patch(base: &ConfigPatch, overlay: &ConfigPatch) -> ConfigPatch {
    let ConfigPatch {
        memory_mb,
        timeout_ms,
        max_concurrency,
        max_queue,
        queue_timeout_ms,
        min_instances,
        max_requests_per_instance,
        max_concurrent_requests_per_instance,
        env,
        allowed_outbound_hosts,
        invoke_auth,
        max_outbound_requests,
        max_response_bytes,
        max_log_bytes,
    } = overlay.clone();
    let env = match (base.env.clone(), env) {
        (Some(mut base), Some(overlay)) => {
            base.extend(overlay);
            Some(base)
        }
        (base, overlay) => overlay.or(base),
    };
    ConfigPatch {
        memory_mb: memory_mb.or(base.memory_mb),
        timeout_ms: timeout_ms.or(base.timeout_ms),
        max_concurrency: max_concurrency.or(base.max_concurrency),
        max_queue: max_queue.or(base.max_queue),
        queue_timeout_ms: queue_timeout_ms.or(base.queue_timeout_ms),
        min_instances: min_instances.or(base.min_instances),
        max_requests_per_instance: max_requests_per_instance.or(base.max_requests_per_instance),
        max_concurrent_requests_per_instance: max_concurrent_requests_per_instance
            .or(base.max_concurrent_requests_per_instance),
        env,
        allowed_outbound_hosts: allowed_outbound_hosts
            .or_else(|| base.allowed_outbound_hosts.clone()),
        invoke_auth: invoke_auth.or(base.invoke_auth),
        max_outbound_requests: max_outbound_requests.or(base.max_outbound_requests),
        max_response_bytes: max_response_bytes.or(base.max_response_bytes),
        max_log_bytes: max_log_bytes.or(base.max_log_bytes),
    }
}

impl Resolved {
    /// The desired state to send to the server, with each function's
    /// component reduced to its digest.
    ///
    /// # Panics
    ///
    /// If `components` lacks a function whose source is a path or a build:
    /// pass what [`load_components`] returned for this `Resolved`.
    pub fn desired(&self, components: &LoadedComponents) -> DesiredState {
        let functions = self
            .functions
            .iter()
            .map(|(name, function)| {
                let digest = match (&function.source, components.digests.get(name)) {
                    (_, Some(digest)) => digest.clone(),
                    (ComponentSource::Digest(digest), None) => digest.clone(),
                    (_, None) => panic!(
                        "no component loaded for function `{name}`; call load_components first"
                    ),
                };
                let desired = DesiredFunction {
                    digest,
                    config: function.config.clone(),
                    routes: function.routes.clone(),
                    trigger: function.trigger.clone(),
                    schedule: function.schedule.clone(),
                    release: function.release.clone(),
                };
                (name.clone(), desired)
            })
            .collect();
        DesiredState { functions }
    }
}

#[cfg(test)]
mod tests;
