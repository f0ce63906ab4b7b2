//! Gateway settings and their defaults.

use flint_spec::HostPattern;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default data directory (relative to the working directory).
pub const DEFAULT_DATA_DIR: &str = "flint-data";
/// Default largest component upload.
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 64 << 20;
/// Default largest request body passed to a function.
pub const DEFAULT_MAX_REQUEST_BODY_BYTES: u64 = 16 << 20;
/// Default longest compile of an upload.
pub const DEFAULT_COMPILE_TIMEOUT: Duration = flint_runtime::DEFAULT_COMPILE_TIMEOUT;
/// Default longest wait of an upload for a compile slot.
pub const DEFAULT_COMPILE_QUEUE_TIMEOUT: Duration = flint_runtime::DEFAULT_COMPILE_QUEUE_TIMEOUT;
/// Default age below which unreferenced blobs and artifacts are never
/// collected: longer than any upload takes between storing its bytes and
/// recording its version.
pub const DEFAULT_GC_GRACE: Duration = Duration::from_secs(600);
/// Default time a pooled instance may wait unused before it is dropped.
pub const DEFAULT_INSTANCE_IDLE: Duration = Duration::from_secs(60);
/// Default time a version may go unused before it is unloaded from memory.
pub const DEFAULT_UNLOAD_AFTER: Duration = Duration::from_secs(600);
/// Time allowed to read a request's headers (slow-loris guard).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time shutdown waits for calls and queue messages in flight.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Everything `flint serve` can be told.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Address to listen on (port 0 picks a free port).
    pub listen: SocketAddr,
    /// A separate address for the admin API and `/metrics`; the main
    /// listener then serves invocations only.
    pub admin_listen: Option<SocketAddr>,
    /// Serve HTTPS with this certificate chain and key (PEM files).
    pub tls: Option<TlsFiles>,
    /// Serve the admin API on a non-loopback address without a bootstrap
    /// token.
    pub insecure_no_auth: bool,
    /// Registry, blobs and artifact cache live here.
    pub data_dir: PathBuf,
    /// Largest component upload, in bytes.
    pub max_upload_bytes: u64,
    /// Largest request body passed to a function, in bytes.
    pub max_request_body_bytes: u64,
    /// Longest compile of an upload.
    pub compile_timeout: Duration,
    /// Compiles that may run at once.
    pub max_compiles: usize,
    /// Longest wait for a compile slot; then the upload is refused with
    /// 429 `overloaded`.
    pub compile_queue_timeout: Duration,
    /// The program compiles run in (`flint`, as `flint __compile`); `None`
    /// compiles in this process (see [`flint_runtime::RuntimeConfig`]).
    pub compile_worker: Option<PathBuf>,
    /// Blobs and compiled artifacts no version references are removed once
    /// untouched this long.
    pub gc_grace: Duration,
    /// Most bytes the data dir's blobs and artifacts may hold; an upload
    /// beyond it is refused with 507. 0: no limit.
    pub max_storage_bytes: u64,
    /// Pooled instances unused this long are dropped.
    pub instance_idle: Duration,
    /// Versions unused this long are unloaded (reloaded from disk on use).
    pub unload_after: Duration,
    /// How long shutdown waits for HTTP calls and queue messages in flight
    /// to finish and settle.
    pub shutdown_grace: Duration,
    /// Use the pooling instance allocator.
    pub pooling: bool,
    /// Copy-on-write memory images.
    pub memory_init_cow: bool,
    /// Instance slots of the pooling allocator.
    pub max_instances: u32,
    /// RabbitMQ URL for queue triggers; `None` runs without them.
    pub amqp_url: Option<String>,
    /// File of `NAME=value` lines that `secret:NAME` references resolve
    /// from (after `FLINT_SECRET_<NAME>` variables).
    pub secrets_file: Option<PathBuf>,
    /// The bootstrap token, with scope `admin`; with it (or any stored
    /// token) the admin API needs a token.
    pub admin_token: Option<AdminToken>,
    /// Serve `/metrics` without a token.
    pub public_metrics: bool,
    /// Names a loopback listener serves besides localhost, 127.0.0.1 and
    /// [::1].
    pub allowed_hosts: Vec<HostPattern>,
}

/// The PEM files of a TLS listener.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
}

/// The bootstrap token's secret; never printed.
#[derive(Clone)]
pub struct AdminToken(String);

impl AdminToken {
    /// Wraps a token's secret (surrounding whitespace dropped).
    pub fn new(secret: &str) -> Self {
        Self(secret.trim().to_string())
    }

    /// The secret.
    pub fn secret(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(…)")
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.parse().expect("valid default address"),
            admin_listen: None,
            tls: None,
            insecure_no_auth: false,
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
            max_request_body_bytes: DEFAULT_MAX_REQUEST_BODY_BYTES,
            compile_timeout: DEFAULT_COMPILE_TIMEOUT,
            max_compiles: flint_runtime::default_max_compiles(),
            compile_queue_timeout: DEFAULT_COMPILE_QUEUE_TIMEOUT,
            compile_worker: None,
            gc_grace: DEFAULT_GC_GRACE,
            max_storage_bytes: 0,
            instance_idle: DEFAULT_INSTANCE_IDLE,
            unload_after: DEFAULT_UNLOAD_AFTER,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            pooling: true,
            memory_init_cow: true,
            max_instances: flint_runtime::DEFAULT_MAX_INSTANCES,
            amqp_url: None,
            secrets_file: None,
            admin_token: None,
            public_metrics: false,
            allowed_hosts: Vec::new(),
        }
    }
}
