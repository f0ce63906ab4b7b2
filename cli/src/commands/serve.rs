//! `flint serve`: runs the Flint server.

use anyhow::Context;
use clap::Args;
use flint_gateway::api::App;
use flint_gateway::cluster::{self, ClusterConfig};
use flint_gateway::config::{AdminToken, ConnectionConfig, TlsFiles};
use flint_gateway::core::Control;
use flint_gateway::reconcile::Reconciler;
use flint_gateway::{GatewayConfig, config as defaults, server};
use flint_spec::HostPattern;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Flags of `flint serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on; use port 0 for any free port (the bound address is printed)
    #[arg(long, env = "FLINT_LISTEN", default_value = defaults::DEFAULT_LISTEN, value_name = "ADDR")]
    pub listen: SocketAddr,
    /// Directory holding the registry, component blobs and compiled-artifact cache
    #[arg(long, env = "FLINT_DATA_DIR", default_value = defaults::DEFAULT_DATA_DIR, value_name = "DIR")]
    pub data_dir: PathBuf,
    /// Largest component upload, in bytes (larger uploads get 413)
    #[arg(long, env = "FLINT_MAX_UPLOAD_BYTES", default_value_t = defaults::DEFAULT_MAX_UPLOAD_BYTES, value_name = "BYTES")]
    pub max_upload_bytes: u64,
    /// Largest request body passed to a function, in bytes (larger bodies get 413)
    #[arg(long, env = "FLINT_MAX_REQUEST_BODY_BYTES", default_value_t = defaults::DEFAULT_MAX_REQUEST_BODY_BYTES, value_name = "BYTES")]
    pub max_request_body_bytes: u64,
    /// Longest compile of an uploaded component, in milliseconds (slower uploads get 400 compile_timeout; the compile is stopped)
    #[arg(long, env = "FLINT_COMPILE_TIMEOUT_MS", default_value_t = defaults::DEFAULT_COMPILE_TIMEOUT.as_millis() as u64, value_name = "MS")]
    pub compile_timeout_ms: u64,
    /// Compiles of uploads that may run at once, each in a worker process (default: the number of CPU cores); more uploads wait up to --compile-queue-timeout-ms for a slot, then get 429 overloaded
    #[arg(long, env = "FLINT_MAX_COMPILES", value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_compiles: Option<u64>,
    /// Longest wait of an upload for a compile slot, in milliseconds (then 429 overloaded with Retry-After)
    #[arg(long, env = "FLINT_COMPILE_QUEUE_TIMEOUT_MS", default_value_t = defaults::DEFAULT_COMPILE_QUEUE_TIMEOUT.as_millis() as u64, value_name = "MS")]
    pub compile_queue_timeout_ms: u64,
    /// Seconds a component blob or compiled artifact that no version uses (an upload never applied, a deleted function's, another engine's) is kept before it is deleted
    #[arg(long, env = "FLINT_GC_GRACE_SECS", default_value_t = defaults::DEFAULT_GC_GRACE.as_secs(), value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub gc_grace_secs: u64,
    /// Most bytes the component blobs and compiled artifacts in the data dir may hold; an upload beyond it gets 507 insufficient_storage (0: no limit)
    #[arg(
        long,
        env = "FLINT_MAX_STORAGE_BYTES",
        default_value_t = 0,
        value_name = "BYTES"
    )]
    pub max_storage_bytes: u64,
    /// Seconds a pooled (warm) instance may sit unused before it is dropped
    #[arg(long, env = "FLINT_INSTANCE_IDLE_SECS", default_value_t = defaults::DEFAULT_INSTANCE_IDLE.as_secs(), value_name = "SECS")]
    pub instance_idle_secs: u64,
    /// Seconds a version may go unused before it is unloaded from memory (it comes back from the disk cache on the next call)
    #[arg(long, env = "FLINT_UNLOAD_AFTER_SECS", default_value_t = defaults::DEFAULT_UNLOAD_AFTER.as_secs(), value_name = "SECS")]
    pub unload_after_secs: u64,
    /// Seconds a shutdown (SIGTERM, Ctrl-C) waits for HTTP calls and queue messages in flight to finish and settle; what is still running then is cut off (its messages go back to their queues)
    #[arg(long, env = "FLINT_SHUTDOWN_GRACE_SECS", default_value_t = defaults::DEFAULT_SHUTDOWN_GRACE.as_secs(), value_name = "SECS")]
    pub shutdown_grace_secs: u64,
    /// Instance slots of the pooling allocator (instances that may exist at once), for WASI 0.2 components and WAGI modules, and as many for WASI 0.3 components
    #[arg(long, env = "FLINT_MAX_INSTANCES", default_value_t = flint_runtime::DEFAULT_MAX_INSTANCES, value_name = "N")]
    pub max_instances: u32,
    /// RabbitMQ URL for queue triggers, e.g. amqp://guest:guest@127.0.0.1:5672/%2f (without it, no queue triggers)
    #[arg(long, env = "FLINT_AMQP_URL", value_name = "URL")]
    pub amqp_url: Option<String>,
    /// Allocate instances on demand instead of from the pooling allocator
    #[arg(long, env = "FLINT_NO_POOLING")]
    pub no_pooling: bool,
    /// Disable copy-on-write memory images
    #[arg(long, env = "FLINT_NO_COW")]
    pub no_cow: bool,
    /// File of NAME=value lines that `secret:NAME` env references resolve from (after FLINT_SECRET_<NAME> variables)
    #[arg(long, env = "FLINT_SECRETS_FILE", value_name = "FILE")]
    pub secrets_file: Option<PathBuf>,
    /// The bootstrap token (scope admin, named `admin`): with it the admin API needs `Authorization: Bearer TOKEN`. Prefer --admin-token-file, which keeps it out of the process list
    #[arg(
        long,
        env = "FLINT_ADMIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        conflicts_with = "admin_token_file",
        help_heading = "Security"
    )]
    pub admin_token: Option<String>,
    /// File holding the bootstrap token (see --admin-token)
    #[arg(
        long,
        env = "FLINT_ADMIN_TOKEN_FILE",
        value_name = "FILE",
        help_heading = "Security"
    )]
    pub admin_token_file: Option<PathBuf>,
    /// Serve the admin API and /metrics on this address instead; the main listener then serves invocations only and answers /v1/* with 404
    #[arg(
        long,
        env = "FLINT_ADMIN_LISTEN",
        value_name = "ADDR",
        help_heading = "Security"
    )]
    pub admin_listen: Option<SocketAddr>,
    /// A Host name a loopback listener also serves (besides localhost, 127.0.0.1 and [::1]); repeatable. Other names get 403 forbidden_host, which stops DNS rebinding
    #[arg(long = "allowed-host", value_name = "HOST", value_parser = parse_host, help_heading = "Security")]
    pub allowed_hosts: Vec<HostPattern>,
    /// Serve /metrics without a token
    #[arg(long, env = "FLINT_PUBLIC_METRICS", help_heading = "Security")]
    pub public_metrics: bool,
    /// Serve the admin API on a non-loopback address without a bootstrap token (only behind a proxy that authenticates)
    #[arg(long, help_heading = "Security")]
    pub insecure_no_auth: bool,
    /// Serve HTTPS with this PEM certificate chain (needs --tls-key)
    #[arg(
        long,
        env = "FLINT_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key",
        help_heading = "Security"
    )]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert
    #[arg(
        long,
        env = "FLINT_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert",
        help_heading = "Security"
    )]
    pub tls_key: Option<PathBuf>,
    /// Most connections served at once, across all listeners. At the limit Flint stops accepting until one closes (new clients wait in the kernel's listen backlog); open connections are never dropped for it. Default: 10000, or the open-file limit (ulimit -n) less 256 if that is lower
    #[arg(long, env = "FLINT_MAX_CONNECTIONS", value_name = "N", value_parser = clap::value_parser!(u64).range(1..), help_heading = "Connections")]
    pub max_connections: Option<u64>,
    /// Time a new connection has to send its first complete request head (TLS handshake included); a socket that sends nothing, half a head, or only the HTTP/2 preface is closed after it. Durations read like 10s, 500ms, 2m
    #[arg(long, env = "FLINT_HEADER_TIMEOUT", default_value_t = defaults::DEFAULT_HEADER_TIMEOUT.into(), value_name = "DURATION", value_parser = parse_timeout, help_heading = "Connections")]
    pub header_timeout: humantime::Duration,
    /// Time a kept-alive connection (HTTP/1.1 or HTTP/2) may carry no request before it is closed; the next request head must arrive within it. Keep it above the idle timeout of a load balancer in front (AWS ALB: 60s)
    #[arg(long, env = "FLINT_IDLE_TIMEOUT", default_value_t = defaults::DEFAULT_IDLE_TIMEOUT.into(), value_name = "DURATION", value_parser = parse_timeout, help_heading = "Connections")]
    pub idle_timeout: humantime::Duration,
    /// Bytes per second a request body must keep up once --body-grace has passed, as Apache's mod_reqtimeout MinRate: each N bytes buy one more second. Slower bodies end with 408 request_timeout; 0 turns the rate check off (--body-timeout still applies)
    #[arg(long, env = "FLINT_BODY_MIN_RATE", default_value_t = defaults::DEFAULT_BODY_MIN_RATE, value_name = "BYTES_PER_SEC", help_heading = "Connections")]
    pub body_min_rate: u64,
    /// Time a request body may take before --body-min-rate applies. Only time spent waiting for the client counts, not time the function spends before reading
    #[arg(long, env = "FLINT_BODY_GRACE", default_value_t = defaults::DEFAULT_BODY_GRACE.into(), value_name = "DURATION", value_parser = parse_duration, help_heading = "Connections")]
    pub body_grace: humantime::Duration,
    /// Longest time spent waiting for one request body, however steadily it trickles; then 408 request_timeout. Raise it when large components are deployed over slow links
    #[arg(long, env = "FLINT_BODY_TIMEOUT", default_value_t = defaults::DEFAULT_BODY_TIMEOUT.into(), value_name = "DURATION", value_parser = parse_timeout, help_heading = "Connections")]
    pub body_timeout: humantime::Duration,
    /// Time one write to a client may stay blocked because the client reads nothing; then the connection is closed, and a function still streaming its response is stopped and its instance freed
    #[arg(long, env = "FLINT_WRITE_TIMEOUT", default_value_t = defaults::DEFAULT_WRITE_TIMEOUT.into(), value_name = "DURATION", value_parser = parse_timeout, help_heading = "Connections")]
    pub write_timeout: humantime::Duration,
    /// HTTP/2: send a keep-alive ping on a connection silent this long, to find dead peers
    #[arg(long, env = "FLINT_HTTP2_KEEP_ALIVE_INTERVAL", default_value_t = defaults::DEFAULT_HTTP2_KEEP_ALIVE_INTERVAL.into(), value_name = "DURATION", value_parser = parse_timeout, help_heading = "Connections")]
    pub http2_keep_alive_interval: humantime::Duration,
    /// HTTP/2: close the connection when a keep-alive ping goes unanswered this long
    #[arg(long, env = "FLINT_HTTP2_KEEP_ALIVE_TIMEOUT", default_value_t = defaults::DEFAULT_HTTP2_KEEP_ALIVE_TIMEOUT.into(), value_name = "DURATION", value_parser = parse_timeout, help_heading = "Connections")]
    pub http2_keep_alive_timeout: humantime::Duration,
    /// HTTP/2: most requests (streams) in flight at once on one connection
    #[arg(long, env = "FLINT_HTTP2_MAX_STREAMS", default_value_t = defaults::DEFAULT_HTTP2_MAX_STREAMS, value_name = "N", value_parser = clap::value_parser!(u32).range(1..), help_heading = "Connections")]
    pub http2_max_streams: u32,
    /// Apply this manifest at start and keep the server matching it (see `flint apply --help`)
    #[arg(
        long,
        env = "FLINT_MANIFEST",
        value_name = "FILE",
        help_heading = "Desired state"
    )]
    pub manifest: Option<PathBuf>,
    /// The manifest's environment overlay ([env.NAME])
    #[arg(
        long,
        env = "FLINT_ENV",
        value_name = "NAME",
        requires = "manifest",
        help_heading = "Desired state"
    )]
    pub env: Option<String>,
    /// Re-apply the manifest whenever the file changes
    #[arg(long, requires = "manifest", help_heading = "Desired state")]
    pub watch: bool,
    /// Delete functions the manifest does not name
    #[arg(long, requires = "manifest", help_heading = "Desired state")]
    pub prune: bool,
    /// Seconds between drift checks: changes made outside the manifest are put back
    #[arg(long, env = "FLINT_RECONCILE_SECS", default_value_t = 30, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..), help_heading = "Desired state")]
    pub reconcile_secs: u64,
    /// Keep the registry and components in this PostgreSQL database, shared with other nodes (run `flint migrate` first); the data dir then holds only this node's compiled-artifact cache
    #[arg(
        long,
        env = "FLINT_REGISTRY_URL",
        value_name = "URL",
        help_heading = "Cluster"
    )]
    pub registry: Option<String>,
    /// The address other nodes and `flint nodes` show for this node [default: the listen address]
    #[arg(
        long,
        env = "FLINT_NODE_ADDRESS",
        value_name = "ADDR",
        requires = "registry",
        help_heading = "Cluster"
    )]
    pub node_address: Option<String>,
    /// Re-read the shared registry this often even without a change notification
    #[arg(long, env = "FLINT_REGISTRY_POLL", default_value = "5s", value_name = "DURATION", value_parser = parse_timeout, help_heading = "Cluster")]
    pub registry_poll: humantime::Duration,
    /// Record this node's heartbeat this often
    #[arg(long, env = "FLINT_HEARTBEAT", default_value = "2s", value_name = "DURATION", value_parser = parse_timeout, help_heading = "Cluster")]
    pub heartbeat: humantime::Duration,
    /// Longest wait at start for the shared registry to be reachable and migrated
    #[arg(long, env = "FLINT_REGISTRY_START_TIMEOUT", default_value = "5m", value_name = "DURATION", value_parser = parse_timeout, help_heading = "Cluster")]
    pub registry_start_timeout: humantime::Duration,
}

/// Runs the server until Ctrl-C or SIGTERM, then drains in-flight requests.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = GatewayConfig {
        listen: args.listen,
        data_dir: args.data_dir,
        max_upload_bytes: args.max_upload_bytes,
        max_request_body_bytes: args.max_request_body_bytes,
        compile_timeout: Duration::from_millis(args.compile_timeout_ms),
        max_compiles: args
            .max_compiles
            .map_or_else(flint_runtime::default_max_compiles, |n| n as usize),
        compile_queue_timeout: Duration::from_millis(args.compile_queue_timeout_ms),
        // Compiles run in this very binary, re-executed as `flint __compile`,
        // so that one past its deadline can be killed.
        compile_worker: Some(
            std::env::current_exe().context("cannot find the flint binary to run compiles in")?,
        ),
        gc_grace: Duration::from_secs(args.gc_grace_secs),
        max_storage_bytes: args.max_storage_bytes,
        instance_idle: Duration::from_secs(args.instance_idle_secs),
        unload_after: Duration::from_secs(args.unload_after_secs),
        shutdown_grace: Duration::from_secs(args.shutdown_grace_secs),
        connections: ConnectionConfig {
            max_connections: args
                .max_connections
                .map_or_else(defaults::default_max_connections, |n| {
                    usize::try_from(n).unwrap_or(usize::MAX)
                }),
            header_timeout: args.header_timeout.into(),
            idle_timeout: args.idle_timeout.into(),
            body_min_rate: args.body_min_rate,
            body_grace: args.body_grace.into(),
            body_timeout: args.body_timeout.into(),
            write_timeout: args.write_timeout.into(),
            http2_keep_alive_interval: args.http2_keep_alive_interval.into(),
            http2_keep_alive_timeout: args.http2_keep_alive_timeout.into(),
            http2_max_streams: args.http2_max_streams,
        },
        pooling: !args.no_pooling,
        memory_init_cow: !args.no_cow,
        max_instances: args.max_instances,
        amqp_url: args.amqp_url,
        secrets_file: args.secrets_file,
        admin_listen: args.admin_listen,
        tls: args
            .tls_cert
            .zip(args.tls_key)
            .map(|(cert, key)| TlsFiles { cert, key }),
        insecure_no_auth: args.insecure_no_auth,
        admin_token: admin_token(args.admin_token, args.admin_token_file.as_deref())?,
        public_metrics: args.public_metrics,
        allowed_hosts: args.allowed_hosts,
    };
    let listeners = server::Listeners::bind(&config).await?;
    let (scheme, addr, admin_addr) = (
        listeners.scheme(),
        listeners.addr()?,
        listeners.admin_addr()?,
    );
    let (control, node) = match args.registry {
        Some(registry_url) => {
            let cluster = ClusterConfig {
                registry_url,
                node_address: args.node_address.unwrap_or_else(|| addr.to_string()),
                poll_interval: args.registry_poll.into(),
                heartbeat_interval: args.heartbeat.into(),
                start_timeout: args.registry_start_timeout.into(),
            };
            let (control, node) = cluster::open(config, cluster).await?;
            (control, Some(node))
        }
        None => (Control::open(config).await?, None),
    };
    if let Some(manifest) = args.manifest {
        let reconciler = Reconciler {
            manifest,
            env: args.env,
            prune: args.prune,
            watch: args.watch,
            heal_every: Duration::from_secs(args.reconcile_secs),
        };
        let running = reconciler.start(&control).await?;
        tokio::spawn(running.run(control.clone()));
    }
    println!("flint listening on {scheme}://{addr}");
    if let Some(admin) = admin_addr {
        println!("flint admin listening on {scheme}://{admin}");
    }
    let shutdown = async {
        shutdown_signal().await;
        if let Some(node) = &node {
            node.drain();
        }
    };
    let served = server::serve(listeners, App::new(control), shutdown).await;
    if let Some(node) = &node {
        node.leave().await;
    }
    served
}

/// The bootstrap token, from the flag (or FLINT_ADMIN_TOKEN) or its file.
fn admin_token(
    token: Option<String>,
    file: Option<&std::path::Path>,
) -> anyhow::Result<Option<AdminToken>> {
    let token = match (token, file) {
        (Some(token), _) => token,
        (None, Some(file)) => std::fs::read_to_string(file)
            .with_context(|| format!("cannot read the admin token file {}", file.display()))?,
        (None, None) => return Ok(None),
    };
    let token = AdminToken::new(&token);
    anyhow::ensure!(
        token.secret().len() >= MIN_ADMIN_TOKEN_LEN,
        "the admin token is too short: use at least {MIN_ADMIN_TOKEN_LEN} characters, e.g. `openssl rand -hex 32`"
    );
    Ok(Some(token))
}

/// Shortest bootstrap token accepted.
const MIN_ADMIN_TOKEN_LEN: usize = 16;

/// A duration such as `10s`, `500ms` or `2m`.
fn parse_duration(text: &str) -> Result<humantime::Duration, String> {
    text.parse::<humantime::Duration>()
        .map_err(|e| format!("{e}; write a duration such as 10s, 500ms or 2m"))
}

/// A duration that must be above zero: a zero timeout would close every
/// connection at once.
fn parse_timeout(text: &str) -> Result<humantime::Duration, String> {
    let duration = parse_duration(text)?;
    match *duration {
        Duration::ZERO => Err(
            "a timeout of 0 would close every connection at once; give a duration such as 10s"
                .into(),
        ),
        _ => Ok(duration),
    }
}

fn parse_host(text: &str) -> Result<HostPattern, String> {
    HostPattern::parse(text)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
