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
/// Default most connections served at once, across all listeners (lowered
/// to fit the open-file limit; see [`default_max_connections`]).
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// File descriptors kept back from connections for the registry, blobs,
/// artifacts and logs when the default connection limit is derived from the
/// open-file limit.
pub const RESERVED_FDS: u64 = 256;
/// Default time a new connection has to complete its first request head
/// (the TLS handshake included), and a later head once it has begun:
/// slow-loris and silent sockets are closed after it.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time a kept-alive connection (HTTP/1.1 or HTTP/2) may carry no
/// request before it is closed. Longer than the 60 s idle timeout of common
/// load balancers, so that the balancer, not Flint, closes first and never
/// sends on a connection Flint has just closed.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(75);
/// Default lowest rate, in bytes per second, a request body must keep up
/// after [`DEFAULT_BODY_GRACE`] (Apache mod_reqtimeout's `MinRate`).
pub const DEFAULT_BODY_MIN_RATE: u64 = 500;
/// Default time a request body may take before the minimum rate applies.
pub const DEFAULT_BODY_GRACE: Duration = Duration::from_secs(10);
/// Default longest time spent waiting for a request body, however fast it
/// trickles.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(60);
/// Default longest time one write to a client may stay blocked (a client
/// that does not read its response) before the connection is closed.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default interval of HTTP/2 keep-alive pings on a connection that has
/// been silent this long.
pub const DEFAULT_HTTP2_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(20);
/// Default time an HTTP/2 keep-alive ping may go unanswered before the
/// connection is closed as dead.
pub const DEFAULT_HTTP2_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// Default most concurrent HTTP/2 streams (requests) per connection.
pub const DEFAULT_HTTP2_MAX_STREAMS: u32 = 100;
/// Largest HTTP/2 header list (decoded names and values) a client may send.
pub const HTTP2_MAX_HEADER_LIST_BYTES: u32 = 16 << 10;
/// Streams a client may open and reset before Flint accepts them, before the
/// connection is closed (the HTTP/2 rapid-reset attack).
pub const HTTP2_MAX_PENDING_ACCEPT_RESET_STREAMS: usize = 20;
/// Streams Flint may reset for a client's protocol errors before the
/// connection is closed.
pub const HTTP2_MAX_LOCAL_ERROR_RESET_STREAMS: usize = 256;
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
    /// Connection limits and timeouts.
    pub connections: ConnectionConfig,
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

/// How many connections are served and how long a slow or idle client may
/// hold one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionConfig {
    /// Most connections served at once, across all listeners; at the limit
    /// accepting pauses (new clients wait in the listen backlog).
    pub max_connections: usize,
    /// Time for a new connection's first request head (TLS handshake
    /// included), and for any later head once its first byte arrived.
    pub header_timeout: Duration,
    /// A connection with no request in flight for this long is closed.
    pub idle_timeout: Duration,
    /// Bytes per second a request body must keep up after `body_grace`.
    pub body_min_rate: u64,
    /// Time a request body may take before `body_min_rate` applies.
    pub body_grace: Duration,
    /// Longest time spent waiting for one request body.
    pub body_timeout: Duration,
    /// Longest time one write to the client may stay blocked.
    pub write_timeout: Duration,
    /// HTTP/2 keep-alive ping interval.
    pub http2_keep_alive_interval: Duration,
    /// Time an HTTP/2 keep-alive ping may go unanswered.
    pub http2_keep_alive_timeout: Duration,
    /// Most concurrent HTTP/2 streams per connection.
    pub http2_max_streams: u32,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            body_min_rate: DEFAULT_BODY_MIN_RATE,
            body_grace: DEFAULT_BODY_GRACE,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            http2_keep_alive_interval: DEFAULT_HTTP2_KEEP_ALIVE_INTERVAL,
            http2_keep_alive_timeout: DEFAULT_HTTP2_KEEP_ALIVE_TIMEOUT,
            http2_max_streams: DEFAULT_HTTP2_MAX_STREAMS,
        }
    }
}

/// [`DEFAULT_MAX_CONNECTIONS`], lowered to fit the process's open-file
/// limit less [`RESERVED_FDS`] where that limit is known (Linux), so that
/// accepting pauses at the limit instead of failing for want of file
/// descriptors.
pub fn default_max_connections() -> usize {
    let limit = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| open_files_soft_limit(&limits));
    match limit {
        Some(fds) => fds
            .saturating_sub(RESERVED_FDS)
            .clamp(1, DEFAULT_MAX_CONNECTIONS as u64) as usize,
        None => DEFAULT_MAX_CONNECTIONS,
    }
}

/// The soft "Max open files" of a `/proc/self/limits` text; `None` when
/// unlimited or absent.
fn open_files_soft_limit(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
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
            connections: ConnectionConfig::default(),
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

#[cfg(test)]
mod tests {
    use super::open_files_soft_limit;

    #[test]
    fn the_open_file_limit_is_read_from_proc_limits() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max processes             63704                63704                processes \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(open_files_soft_limit(limits), Some(1024));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(open_files_soft_limit(unlimited), None);
        assert_eq!(open_files_soft_limit(""), None);
    }
}
