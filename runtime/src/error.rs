//! The errors of one invocation, as the caller of a function sees them.

/// Why an invocation produced no (complete) response. Each variant ends that
/// invocation only; the instance involved is discarded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvokeError {
    /// All concurrency slots are busy and the wait queue is full, or the
    /// wait for a slot took longer than `queue_timeout_ms`.
    #[error(
        "function is overloaded: max_concurrency {max_concurrency} in use and {reason}; retry after {retry_after_secs} s"
    )]
    Overloaded {
        /// The function's `max_concurrency`.
        max_concurrency: u32,
        /// Queue full or queue wait expired.
        reason: String,
        /// Suggested wait before retrying.
        retry_after_secs: u64,
    },
    /// Every instance slot of the server's pooling allocator is in use
    /// (`--max-instances`): the call could not get a sandbox. Like
    /// [`InvokeError::Overloaded`], the caller may retry shortly.
    #[error(
        "the server has no free instance slot (all of --max-instances are in use); retry after {retry_after_secs} s"
    )]
    NoInstanceSlot {
        /// Suggested wait before retrying.
        retry_after_secs: u64,
    },
    /// The invocation ran longer than `timeout_ms` (guest code or host calls).
    #[error("function exceeded its time limit of {limit_ms} ms")]
    Timeout {
        /// The function's `timeout_ms`.
        limit_ms: u64,
    },
    /// The guest tried to grow its memory past `memory_mb`.
    #[error("function exceeded its memory limit of {limit_mb} MiB")]
    MemoryLimitExceeded {
        /// The function's `memory_mb`.
        limit_mb: u32,
    },
    /// The guest made the host hold more for it than its budget allows
    /// (resource handles, header bytes, outgoing requests, response bytes,
    /// log output).
    #[error("function exceeded a host resource limit: {0}")]
    ResourceLimitExceeded(crate::HostLimit),
    /// The guest trapped (panic, unreachable, out-of-bounds access, ...).
    #[error("function trapped: {0}")]
    Trap(String),
    /// The guest answered with a `wasi:http` error code instead of a response.
    #[error("function returned an error instead of a response: {0}")]
    Guest(String),
    /// The guest returned without ever setting a response.
    #[error("function returned without sending a response")]
    NoResponse,
    /// A WAGI module exited with a failure status.
    #[error("the module exited with status {0} (see `flint logs` for its stderr)")]
    Exited(i32),
    /// A WAGI module's stdout is no CGI response.
    #[error("{0}")]
    BadCgiResponse(String),
    /// The request body could not be read whole (a WAGI module gets it
    /// before it starts).
    #[error("reading the request body: {0}")]
    RequestBody(String),
    /// A failure of Flint itself.
    #[error("internal error: {0}")]
    Internal(String),
}

impl InvokeError {
    /// The stable error code shown to callers and used as a metrics label.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Overloaded { .. } | Self::NoInstanceSlot { .. } => "overloaded",
            Self::Timeout { .. } => "timeout",
            Self::MemoryLimitExceeded { .. } => "memory_limit_exceeded",
            Self::ResourceLimitExceeded(_) => "resource_limit_exceeded",
            Self::Trap(_) => "trap",
            Self::Guest(_) | Self::Exited(_) | Self::BadCgiResponse(_) => "function_error",
            Self::RequestBody(_) => "bad_request",
            Self::NoResponse => "no_response",
            Self::Internal(_) => "internal_error",
        }
    }

    /// Seconds the caller should wait before retrying, for the errors that
    /// say "try again later".
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::Overloaded {
                retry_after_secs, ..
            }
            | Self::NoInstanceSlot { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
        }
    }
}
