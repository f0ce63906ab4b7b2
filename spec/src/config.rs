//! Per-function configuration: limits, sandbox settings and their validation.
//!
//! The runtime enforces these limits; the gateway, the registry, the
//! manifest and the CLI share this one definition of every limit and its
//! default.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Default linear-memory cap of a function, in MiB.
pub const DEFAULT_MEMORY_MB: u32 = 128;
/// Largest `memory_mb` a function may ask for; also the pooling allocator's
/// slot size, so raising it reserves more address space per slot.
pub const MAX_MEMORY_MB: u32 = 1024;
/// Default execution time limit of one invocation, in milliseconds.
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;
/// Largest `timeout_ms` (15 minutes, as AWS Lambda).
pub const MAX_TIMEOUT_MS: u64 = 900_000;
/// Default number of invocations of one function running at once.
pub const DEFAULT_MAX_CONCURRENCY: u32 = 64;
/// Largest `max_concurrency` of one function.
pub const MAX_MAX_CONCURRENCY: u32 = 1000;
/// Default number of invocations allowed to wait for a concurrency slot.
pub const DEFAULT_MAX_QUEUE: u32 = 128;
/// Largest `max_queue`.
pub const MAX_MAX_QUEUE: u32 = 10_000;
/// Default time an invocation may wait for a concurrency slot before the
/// caller gets `overloaded`.
pub const DEFAULT_QUEUE_TIMEOUT_MS: u64 = 10_000;
/// Largest `queue_timeout_ms`.
pub const MAX_QUEUE_TIMEOUT_MS: u64 = 60_000;
/// Default number of instances kept instantiated ahead of requests.
pub const DEFAULT_MIN_INSTANCES: u32 = 0;
/// Largest `min_instances` of one function.
pub const MAX_MIN_INSTANCES: u32 = 100;
/// Default number of requests one instance serves: 1 means a fresh instance
/// per request, because `wasi:http` 0.2 handlers are not promised re-entrant.
pub const DEFAULT_MAX_REQUESTS_PER_INSTANCE: u32 = 1;
/// Largest `max_requests_per_instance`.
pub const MAX_MAX_REQUESTS_PER_INSTANCE: u32 = 1_000_000;
/// Default number of requests one instance serves at once: 1, so that a
/// request never shares its instance with another in flight.
pub const DEFAULT_MAX_CONCURRENT_REQUESTS_PER_INSTANCE: u32 = 1;
/// Largest `max_concurrent_requests_per_instance`.
pub const MAX_MAX_CONCURRENT_REQUESTS_PER_INSTANCE: u32 = 1000;
/// Default number of outgoing HTTP requests one invocation may make.
pub const DEFAULT_MAX_OUTBOUND_REQUESTS: u32 = 100;
/// Largest `max_outbound_requests`.
pub const MAX_MAX_OUTBOUND_REQUESTS: u32 = 10_000;
/// Default largest response body of one invocation, in bytes.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 64 << 20;
/// Largest `max_response_bytes`.
pub const MAX_MAX_RESPONSE_BYTES: u64 = 4 << 30;
/// Default stdout and stderr bytes one invocation may write.
pub const DEFAULT_MAX_LOG_BYTES: u64 = 1 << 20;
/// Largest `max_log_bytes`.
pub const MAX_MAX_LOG_BYTES: u64 = 64 << 20;
/// Largest number of `env` entries.
pub const MAX_ENV_VARS: usize = 256;
/// Largest number of `allowed_outbound_hosts` entries.
pub const MAX_OUTBOUND_HOSTS: usize = 64;

/// The effective configuration of one function: limits and sandbox. Fields
/// missing from its serialized form take their defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FunctionConfig {
    /// Cap on the function's linear memory, in MiB.
    pub memory_mb: u32,
    /// Wall-clock limit of one invocation (guest code and host calls), in ms.
    pub timeout_ms: u64,
    /// Invocations of this function running at once, across its versions.
    pub max_concurrency: u32,
    /// Invocations allowed to wait for a slot when all are busy.
    pub max_queue: u32,
    /// How long a queued invocation waits for a slot, in ms.
    pub queue_timeout_ms: u64,
    /// Instances kept instantiated ahead of requests (provisioned concurrency).
    pub min_instances: u32,
    /// Requests one instance may serve before it is discarded (1 = fresh
    /// instance per request; more opts in to reuse).
    pub max_requests_per_instance: u32,
    /// Requests one instance of a WASI 0.3 component serves at once (1 =
    /// one at a time); at most `max_requests_per_instance`. Components of
    /// WASI 0.2 and WAGI modules serve one at a time whatever it says.
    pub max_concurrent_requests_per_instance: u32,
    /// Environment variables the guest sees; the host environment never leaks.
    pub env: BTreeMap<String, String>,
    /// Hosts (`host`, `host:port` or `*.domain`) the guest may call over
    /// outbound HTTP; empty denies all outbound requests.
    pub allowed_outbound_hosts: Vec<String>,
    /// Who may call it: anyone, or only callers with a token that covers it.
    pub invoke_auth: InvokeAuth,
    /// Outgoing HTTP requests one invocation may make.
    pub max_outbound_requests: u32,
    /// Largest response body one invocation may send, in bytes.
    pub max_response_bytes: u64,
    /// Bytes of stdout and stderr one invocation may write.
    pub max_log_bytes: u64,
}

/// Who may invoke a function.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InvokeAuth {
    /// Anyone who reaches the server: a public function.
    #[default]
    None,
    /// Callers whose bearer token covers the function (`invoke`, `deploy`
    /// or `admin` scope).
    Token,
}

impl InvokeAuth {
    /// Its name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Token => "token",
        }
    }
}

impl Default for FunctionConfig {
    fn default() -> Self {
        Self {
            memory_mb: DEFAULT_MEMORY_MB,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
            max_queue: DEFAULT_MAX_QUEUE,
            queue_timeout_ms: DEFAULT_QUEUE_TIMEOUT_MS,
            min_instances: DEFAULT_MIN_INSTANCES,
            max_requests_per_instance: DEFAULT_MAX_REQUESTS_PER_INSTANCE,
            max_concurrent_requests_per_instance: DEFAULT_MAX_CONCURRENT_REQUESTS_PER_INSTANCE,
            env: BTreeMap::new(),
            allowed_outbound_hosts: Vec::new(),
            invoke_auth: InvokeAuth::None,
            max_outbound_requests: DEFAULT_MAX_OUTBOUND_REQUESTS,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            max_log_bytes: DEFAULT_MAX_LOG_BYTES,
        }
    }
}

/// A partial update of a [`FunctionConfig`]: every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[expect(missing_docs, reason = "each field mirrors FunctionConfig")]
pub struct ConfigPatch {
    pub memory_mb: Option<u32>,
    pub timeout_ms: Option<u64>,
    pub max_concurrency: Option<u32>,
    pub max_queue: Option<u32>,
    pub queue_timeout_ms: Option<u64>,
    pub min_instances: Option<u32>,
    pub max_requests_per_instance: Option<u32>,
    pub max_concurrent_requests_per_instance: Option<u32>,
    pub env: Option<BTreeMap<String, String>>,
    pub allowed_outbound_hosts: Option<Vec<String>>,
    pub invoke_auth: Option<InvokeAuth>,
    pub max_outbound_requests: Option<u32>,
    pub max_response_bytes: Option<u64>,
    pub max_log_bytes: Option<u64>,
}

/// A configuration value out of range; names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid `{field}`: {message}")]
pub struct ConfigError {
    /// The offending field.
    pub field: &'static str,
    /// What is wrong and what is allowed.
    pub message: String,
}

fn check_range<T: PartialOrd + std::fmt::Display>(
    field: &'static str,
    value: T,
    min: T,
    max: T,
) -> Result<(), ConfigError> {
    if value < min || value > max {
        return Err(ConfigError {
            field,
            message: format!("{value} is out of range; allowed {min}..={max}"),
        });
    }
    Ok(())
}

impl FunctionConfig {
    /// Applies a patch and validates the result; `self` is unchanged on error.
    pub fn patched(&self, patch: ConfigPatch) -> Result<FunctionConfig, ConfigError> {
        let mut next = self.clone();
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
        } = patch;
        next.memory_mb = memory_mb.unwrap_or(next.memory_mb);
        next.timeout_ms = timeout_ms.unwrap_or(next.timeout_ms);
        next.max_concurrency = max_concurrency.unwrap_or(next.max_concurrency);
        next.max_queue = max_queue.unwrap_or(next.max_queue);
        next.queue_timeout_ms = queue_timeout_ms.unwrap_or(next.queue_timeout_ms);
        next.min_instances = min_instances.unwrap_or(next.min_instances);
        next.max_requests_per_instance =
            max_requests_per_instance.unwrap_or(next.max_requests_per_instance);
        next.max_concurrent_requests_per_instance = max_concurrent_requests_per_instance
            .unwrap_or(next.max_concurrent_requests_per_instance);
        if let Some(env) = env {
            next.env = env;
        }
        if let Some(hosts) = allowed_outbound_hosts {
            next.allowed_outbound_hosts = hosts;
        }
        next.invoke_auth = invoke_auth.unwrap_or(next.invoke_auth);
        next.max_outbound_requests = max_outbound_requests.unwrap_or(next.max_outbound_requests);
        next.max_response_bytes = max_response_bytes.unwrap_or(next.max_response_bytes);
        next.max_log_bytes = max_log_bytes.unwrap_or(next.max_log_bytes);
        next.validate()?;
        Ok(next)
    }

    /// Checks every field against its documented range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_range("memory_mb", self.memory_mb, 1, MAX_MEMORY_MB)?;
        check_range("timeout_ms", self.timeout_ms, 1, MAX_TIMEOUT_MS)?;
        check_range(
            "max_concurrency",
            self.max_concurrency,
            1,
            MAX_MAX_CONCURRENCY,
        )?;
        check_range("max_queue", self.max_queue, 0, MAX_MAX_QUEUE)?;
        check_range(
            "queue_timeout_ms",
            self.queue_timeout_ms,
            0,
            MAX_QUEUE_TIMEOUT_MS,
        )?;
        check_range("min_instances", self.min_instances, 0, MAX_MIN_INSTANCES)?;
        if self.min_instances > self.max_concurrency {
            return Err(ConfigError {
                field: "min_instances",
                message: format!(
                    "{} exceeds max_concurrency {}",
                    self.min_instances, self.max_concurrency
                ),
            });
        }
        check_range(
            "max_requests_per_instance",
            self.max_requests_per_instance,
            1,
            MAX_MAX_REQUESTS_PER_INSTANCE,
        )?;
        check_range(
            "max_concurrent_requests_per_instance",
            self.max_concurrent_requests_per_instance,
            1,
            MAX_MAX_CONCURRENT_REQUESTS_PER_INSTANCE,
        )?;
        if self.max_concurrent_requests_per_instance > self.max_requests_per_instance {
            return Err(ConfigError {
                field: "max_concurrent_requests_per_instance",
                message: format!(
                    "{} exceeds max_requests_per_instance {}: an instance serves at most that many requests in all, so raise it too",
                    self.max_concurrent_requests_per_instance, self.max_requests_per_instance
                ),
            });
        }
        check_range(
            "max_outbound_requests",
            self.max_outbound_requests,
            0,
            MAX_MAX_OUTBOUND_REQUESTS,
        )?;
        check_range(
            "max_response_bytes",
            self.max_response_bytes,
            0,
            MAX_MAX_RESPONSE_BYTES,
        )?;
        check_range("max_log_bytes", self.max_log_bytes, 0, MAX_MAX_LOG_BYTES)?;
        if self.env.len() > MAX_ENV_VARS {
            return Err(ConfigError {
                field: "env",
                message: format!("{} entries; at most {MAX_ENV_VARS} allowed", self.env.len()),
            });
        }
        for key in self.env.keys() {
            if key.is_empty() || key.contains('=') || key.contains('\0') {
                return Err(ConfigError {
                    field: "env",
                    message: format!("{key:?} is not a valid variable name"),
                });
            }
        }
        if self.allowed_outbound_hosts.len() > MAX_OUTBOUND_HOSTS {
            return Err(ConfigError {
                field: "allowed_outbound_hosts",
                message: format!("at most {MAX_OUTBOUND_HOSTS} entries allowed"),
            });
        }
        for host in &self.allowed_outbound_hosts {
            crate::host::HostPattern::parse(host).map_err(|message| ConfigError {
                field: "allowed_outbound_hosts",
                message,
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        FunctionConfig::default().validate().unwrap();
    }

    #[test]
    fn patch_names_the_bad_field() {
        let base = FunctionConfig::default();
        let cases = [
            (
                ConfigPatch {
                    memory_mb: Some(0),
                    ..Default::default()
                },
                "memory_mb",
            ),
            (
                ConfigPatch {
                    timeout_ms: Some(MAX_TIMEOUT_MS + 1),
                    ..Default::default()
                },
                "timeout_ms",
            ),
            (
                ConfigPatch {
                    max_concurrency: Some(0),
                    ..Default::default()
                },
                "max_concurrency",
            ),
            (
                ConfigPatch {
                    max_requests_per_instance: Some(0),
                    ..Default::default()
                },
                "max_requests_per_instance",
            ),
            (
                ConfigPatch {
                    max_concurrent_requests_per_instance: Some(0),
                    ..Default::default()
                },
                "max_concurrent_requests_per_instance",
            ),
            (
                ConfigPatch {
                    max_concurrent_requests_per_instance: Some(2),
                    ..Default::default()
                },
                "max_concurrent_requests_per_instance",
            ),
            (
                ConfigPatch {
                    min_instances: Some(65),
                    ..Default::default()
                },
                "min_instances",
            ),
            (
                ConfigPatch {
                    max_response_bytes: Some(MAX_MAX_RESPONSE_BYTES + 1),
                    ..Default::default()
                },
                "max_response_bytes",
            ),
            (
                ConfigPatch {
                    allowed_outbound_hosts: Some(vec!["http://x/y".into()]),
                    ..Default::default()
                },
                "allowed_outbound_hosts",
            ),
        ];
        for (patch, field) in cases {
            assert_eq!(base.patched(patch).unwrap_err().field, field);
        }
    }

    #[test]
    fn patch_keeps_unset_fields() {
        let base = FunctionConfig::default();
        let next = base
            .patched(ConfigPatch {
                memory_mb: Some(64),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(next.memory_mb, 64);
        assert_eq!(next.timeout_ms, base.timeout_ms);
    }
}
