//! The one error type of the core, with the stable codes of the API
//! contract. Adapters map it once each: HTTP to a status and JSON body,
//! AMQP to a dead-letter reason.

use crate::body_timeout::BodyTimeout;
use crate::limits::LimitError;
use crate::store::StoreError;
use flint_runtime::{CompileError, ConfigError, InvokeError};

/// Seconds a caller is asked to wait when the broker cannot take a message.
pub const BROKER_RETRY_AFTER_SECS: u64 = 1;

/// Why a core operation or invocation failed. Every message says what
/// happened and, where it can, what to do.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    /// No function of that name.
    #[error("function `{0}` not found; deploy it with `flint deploy {0} FILE.wasm`")]
    FunctionNotFound(String),
    /// The function has no such version.
    #[error("function `{function}` has no version {version}{}", latest.map_or(String::new(), |l| format!("; versions are 1..={l}")))]
    VersionNotFound {
        /// The function.
        function: String,
        /// The version asked for.
        version: u32,
        /// Its latest version, if it has one.
        latest: Option<u32>,
    },
    /// The function's stored state is broken (a row that does not parse, a
    /// component whose bytes are gone): it is kept, disabled, while every
    /// other function serves.
    #[error(
        "function `{function}` is disabled: {reason}; run `flint doctor` to check and repair the server's state"
    )]
    FunctionDisabled {
        /// The function.
        function: String,
        /// What is broken.
        reason: String,
    },
    /// The function has no such alias.
    #[error("{0}")]
    AliasNotFound(String),
    /// No canary to report or stop.
    #[error("{0}")]
    CanaryNotFound(String),
    /// The function has no queue trigger.
    #[error(
        "function `{0}` has no queue trigger; add one with `flint trigger add {0} --queue QUEUE`"
    )]
    TriggerNotFound(String),
    /// The function has no schedule of that id.
    #[error(
        "function `{function}` has no schedule `{id}`; `flint schedule ls {function}` lists them"
    )]
    ScheduleNotFound {
        /// The function.
        function: String,
        /// The id asked for.
        id: String,
    },
    /// A schedule is malformed, or the function has as many as allowed.
    #[error("{0}")]
    InvalidSchedule(String),
    /// No API token of that name.
    #[error("no token named `{0}`; `flint token ls` lists them")]
    TokenNotFound(String),
    /// A function name breaks the naming rule.
    #[error("{0}")]
    InvalidName(String),
    /// A configuration value is out of range or malformed.
    #[error("{0}")]
    InvalidConfig(String),
    /// A trigger binding is malformed.
    #[error("{0}")]
    InvalidTrigger(String),
    /// An alias, split, release, canary or shadow request is malformed.
    #[error("{0}")]
    InvalidRelease(String),
    /// An upload is not a program Flint can run (a component or a WAGI
    /// module).
    #[error("{0}")]
    InvalidComponent(String),
    /// Compiling an upload took longer than the server allows.
    #[error(
        "compiling the component took longer than {limit_ms} ms (server flag --compile-timeout-ms); make it smaller"
    )]
    CompileTimeout {
        /// The limit, in milliseconds.
        limit_ms: u128,
    },
    /// Every compile slot stayed busy for the whole wait; retrying can
    /// succeed.
    #[error(
        "the server is busy compiling: all {max_compiles} compile slots (server flag --max-compiles) stayed in use for {waited_ms} ms (--compile-queue-timeout-ms); retry after {retry_after_secs} s"
    )]
    CompilerBusy {
        /// Compiles that may run at once.
        max_compiles: usize,
        /// How long the upload waited.
        waited_ms: u128,
        /// Suggested wait before retrying.
        retry_after_secs: u64,
    },
    /// Storing an upload would take the data dir's blobs and artifacts past
    /// `--max-storage-bytes`; nothing was stored.
    #[error(
        "not enough storage: storing this component would take the data dir's blobs and compiled artifacts to {would_hold} bytes, past the {limit} allowed (server flag --max-storage-bytes); delete functions you no longer need (`flint rm NAME`: components nothing uses are collected after --gc-grace-secs) or raise --max-storage-bytes"
    )]
    InsufficientStorage {
        /// Bytes they would hold with the upload.
        would_hold: u64,
        /// The limit.
        limit: u64,
    },
    /// A desired state has problems (all listed); nothing was changed.
    #[error("{0}")]
    InvalidDesiredState(String),
    /// Anything else malformed in a request.
    #[error("{0}")]
    BadRequest(String),
    /// A request body that arrived too slowly; the message names the rule
    /// and its server flags.
    #[error(transparent)]
    RequestTimeout(#[from] BodyTimeout),
    /// A body over its limit.
    #[error("{what} exceeds the limit of {limit} bytes (server flag {flag})")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// The limit in bytes.
        limit: u64,
        /// The flag that sets it.
        flag: &'static str,
    },
    /// A release operation collides with the function's release state (a
    /// running canary, nothing to roll back to).
    #[error("{0}")]
    ReleaseConflict(String),
    /// The operation could have effects outside Flint and the caller has not
    /// confirmed it.
    #[error("{0}")]
    ConfirmationRequired(String),
    /// Apply needs a component the server does not hold.
    #[error("{0}")]
    ComponentMissing(String),
    /// No bearer token, or one that is unknown, revoked or expired.
    #[error("{0}")]
    Unauthorized(String),
    /// The caller's token does not cover the request; names the scope
    /// that is needed.
    #[error("{0}")]
    Forbidden(String),
    /// Another writer changed the registry meanwhile; retrying can succeed.
    #[error("the registry changed under this write ({0}); retry")]
    Conflict(String),
    /// The server runs without a queue broker.
    #[error("{0}")]
    BrokerDisabled(String),
    /// The queue broker cannot take the message now; retrying can succeed.
    #[error("{0}")]
    BrokerUnavailable(String),
    /// The invocation failed (limits, traps, overload).
    #[error(transparent)]
    Invoke(#[from] InvokeError),
    /// A failure of Flint itself.
    #[error("internal error: {0}")]
    Internal(String),
}

impl CoreError {
    /// A failure of Flint itself, logged where it is made.
    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "internal error");
        Self::Internal(error.to_string())
    }

    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::FunctionNotFound(_) => "function_not_found",
            Self::VersionNotFound { .. } => "version_not_found",
            Self::FunctionDisabled { .. } => "function_disabled",
            Self::AliasNotFound(_) => "alias_not_found",
            Self::CanaryNotFound(_) => "canary_not_found",
            Self::TriggerNotFound(_) => "trigger_not_found",
            Self::ScheduleNotFound { .. } => "schedule_not_found",
            Self::InvalidSchedule(_) => "invalid_schedule",
            Self::InvalidName(_) => "invalid_name",
            Self::InvalidConfig(_) => "invalid_config",
            Self::InvalidTrigger(_) => "invalid_trigger",
            Self::InvalidRelease(_) => "invalid_release",
            Self::InvalidComponent(_) => "invalid_component",
            Self::CompileTimeout { .. } => "compile_timeout",
            Self::CompilerBusy { .. } => "overloaded",
            Self::InsufficientStorage { .. } => "insufficient_storage",
            Self::InvalidDesiredState(_) => "invalid_desired_state",
            Self::BadRequest(_) => "bad_request",
            Self::TooLarge { .. } => "payload_too_large",
            Self::RequestTimeout(_) => "request_timeout",
            Self::ReleaseConflict(_) => "release_conflict",
            Self::ConfirmationRequired(_) => "confirmation_required",
            Self::ComponentMissing(_) => "component_missing",
            Self::Conflict(_) => "conflict",
            Self::Unauthorized(_) => "unauthorized",
            Self::TokenNotFound(_) => "token_not_found",
            Self::Forbidden(_) => "forbidden",
            Self::BrokerDisabled(_) | Self::BrokerUnavailable(_) => "broker_unavailable",
            Self::Invoke(e) => e.code(),
            Self::Internal(_) => "internal_error",
        }
    }

    /// Seconds a caller should wait before retrying, where waiting helps.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::Invoke(e) => e.retry_after_secs(),
            Self::BrokerUnavailable(_) => Some(BROKER_RETRY_AFTER_SECS),
            Self::CompilerBusy {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            _ => None,
        }
    }
}

/// Result of core operations.
pub type CoreResult<T> = Result<T, CoreError>;

impl From<StoreError> for CoreError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(message) => Self::Conflict(message),
            other => Self::internal(other),
        }
    }
}

impl From<CompileError> for CoreError {
    fn from(e: CompileError) -> Self {
        match e {
            CompileError::Busy {
                max_compiles,
                waited_ms,
                retry_after_secs,
            } => Self::CompilerBusy {
                max_compiles,
                waited_ms,
                retry_after_secs,
            },
            CompileError::Timeout { limit_ms } => Self::CompileTimeout { limit_ms },
            CompileError::Cache(_) | CompileError::Engine(_) | CompileError::Worker(_) => {
                Self::internal(e)
            }
            other => Self::InvalidComponent(other.to_string()),
        }
    }
}

impl From<ConfigError> for CoreError {
    fn from(e: ConfigError) -> Self {
        Self::InvalidConfig(e.to_string())
    }
}

impl From<LimitError> for CoreError {
    fn from(e: LimitError) -> Self {
        match e {
            LimitError::TooLarge(limit) => Self::TooLarge {
                what: limit.what,
                limit: limit.bytes,
                flag: limit.flag,
            },
            LimitError::TimedOut(timeout) => Self::RequestTimeout(timeout),
            LimitError::Read(message) => {
                Self::BadRequest(format!("could not read the request body: {message}"))
            }
        }
    }
}
