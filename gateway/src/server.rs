//! The accept loop: binds the listeners (one, or a public one and an admin
//! one), serves HTTP/1.1 and HTTP/2 (over TLS when configured) with
//! [`App::handle`] on one single-threaded runtime per core, runs periodic
//! upkeep (idle instances, idle versions, garbage collection of the data
//! dir) and the queue adapter, and shuts down gracefully.
//!
//! A slow or idle client costs little: at most `--max-connections` are
//! served at once (accepting pauses at the limit; clients beyond it wait in
//! the kernel's listen backlog), and every connection runs under the
//! timeouts of [`crate::connection`] (header, idle, write) and
//! [`crate::body_timeout`] (request bodies).

use crate::api::{ApiError, App, Listener, Serves};
use crate::body_timeout::{BodyTimeouts, TimedBody};
use crate::config::{
    ConnectionConfig, GatewayConfig, HTTP2_MAX_HEADER_LIST_BYTES,
    HTTP2_MAX_LOCAL_ERROR_RESET_STREAMS, HTTP2_MAX_PENDING_ACCEPT_RESET_STREAMS, TlsFiles,
};
use crate::connection::{self, Activity, Ended, Tracked, WriteTimeout};
use anyhow::Context;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio_rustls::TlsAcceptor;

/// How often idle instances are trimmed and idle versions unloaded.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(1);

/// Pause after a failed accept (out of file descriptors, say), so the loop
/// does not spin.
const ACCEPT_RETRY: Duration = Duration::from_millis(10);

/// Binds `addr`; the error says what to do when it is taken.
async fn bind(addr: SocketAddr, flag: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            anyhow::anyhow!("{addr} is already in use; pick another with {flag}, e.g. {flag} 127.0.0.1:0 for any free port")
        } else {
            anyhow::anyhow!("cannot listen on {addr}: {e}")
        }
    })
}

/// The server's bound listeners and its TLS settings.
pub struct Listeners {
    main: TcpListener,
    admin: Option<TcpListener>,
    tls: Option<TlsAcceptor>,
}

impl Listeners {
    /// Loads the TLS files, binds the configured addresses and refuses to
    /// serve the admin API beyond loopback without a bootstrap token
    /// (unless `insecure_no_auth`).
    pub async fn bind(config: &GatewayConfig) -> anyhow::Result<Self> {
        let tls = config.tls.as_ref().map(tls_acceptor).transpose()?;
        let admin_addr = config.admin_listen.unwrap_or(config.listen);
        if !admin_addr.ip().is_loopback()
            && config.admin_token.is_none()
            && !config.insecure_no_auth
        {
            anyhow::bail!(
                "refusing to serve the admin API on {admin_addr} without a token: anyone who reaches it could change every function. \
                 Set FLINT_ADMIN_TOKEN (or --admin-token-file FILE), or serve the admin API on loopback with --admin-listen 127.0.0.1:PORT, \
                 or pass --insecure-no-auth if a proxy in front authenticates"
            );
        }
        let main = bind(config.listen, "--listen").await?;
        let admin = match config.admin_listen {
            Some(addr) => Some(bind(addr, "--admin-listen").await?),
            None => None,
        };
        Ok(Self { main, admin, tls })
    }

    /// The main listener's address.
    pub fn addr(&self) -> anyhow::Result<SocketAddr> {
        self.main.local_addr().context("reading the bound address")
    }

    /// The admin listener's address, when it has one.
    pub fn admin_addr(&self) -> anyhow::Result<Option<SocketAddr>> {
        self.admin
            .as_ref()
            .map(|l| l.local_addr().context("reading the bound admin address"))
            .transpose()
    }

    /// `https` with TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    fn listener(&self, serves: Serves, listener: &TcpListener) -> Listener {
        Listener {
            serves,
            loopback: listener.local_addr().is_ok_and(|a| a.ip().is_loopback()),
            tls: self.tls.is_some(),
        }
    }
}

/// A TLS acceptor for the PEM files, speaking HTTP/2 and HTTP/1.1.
fn tls_acceptor(files: &TlsFiles) -> anyhow::Result<TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("cannot read the certificates in {}", files.cert.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "{} holds no PEM certificate",
        files.cert.display()
    );
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .with_context(|| format!("cannot read the private key in {}", files.key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .with_context(|| {
            format!(
                "the key in {} does not fit the certificate in {}",
                files.key.display(),
                files.cert.display()
            )
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Serves until `shutdown` resolves, then lets the requests and queue
/// messages in flight finish and settle (up to `shutdown_grace`).
///
/// Connections are served by one thread per core, each running a
/// single-threaded runtime: a connection, its requests and the guest calls
/// they make stay on one thread. This loop accepts and hands each
/// connection to the thread with the fewest open ones. Measured against one
/// multi-threaded runtime, it drops the cross-thread wake-ups of work
/// stealing (see benches/README.md). Everything else (the admin API, upkeep,
/// queue triggers, compiles, the reconciler) runs on the caller's runtime;
/// all threads share one core, so concurrency limits, metrics and deploys
/// stay one.
pub async fn serve(
    listeners: Listeners,
    app: Arc<App>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let control = app.control().clone();
    if !control.auth_enabled() {
        tracing::warn!(
            "no tokens: anyone who can reach this loopback address can change every function; set FLINT_ADMIN_TOKEN to require tokens"
        );
    }
    let (main, admin_only) = match &listeners.admin {
        Some(admin) => (
            listeners.listener(Serves::Invocations, &listeners.main),
            Some(listeners.listener(Serves::Admin, admin)),
        ),
        None => (listeners.listener(Serves::All, &listeners.main), None),
    };
    let tls = listeners.tls.clone();
    let maintenance = tokio::spawn({
        let control = control.clone();
        async move {
            let mut tick = tokio::time::interval(MAINTENANCE_INTERVAL);
            loop {
                tick.tick().await;
                control.maintain();
            }
        }
    });
    let gc = tokio::spawn({
        let control = control.clone();
        async move {
            let mut tick = tokio::time::interval(control.gc_interval());
            loop {
                tick.tick().await;
                if let Err(e) = control.collect_garbage().await {
                    tracing::warn!(error = %e, "garbage collection failed; retrying later");
                }
            }
        }
    });
    let scheduler = crate::scheduler::Scheduler::start(control.clone());
    let queues = match control.config().amqp_url.clone() {
        Some(url) => Some(crate::triggers::start(&control, url)),
        None => {
            tracing::info!("no --amqp-url: running without queue triggers");
            None
        }
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let admin = Handle::current();
    let threads = (0..threads)
        .map(|i| {
            let grace = control.config().shutdown_grace;
            ConnectionThread::start(i, app.clone(), admin.clone(), grace, tls.clone())
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let admin_accept = async |listener: &Option<TcpListener>| match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    };
    let limits = control.config().connections;
    let max_connections = limits.max_connections;
    tracing::info!(
        max_connections,
        header_timeout = ?limits.header_timeout,
        idle_timeout = ?limits.idle_timeout,
        write_timeout = ?limits.write_timeout,
        body_timeout = ?limits.body_timeout,
        "connection limits"
    );
    let slots = Arc::new(Semaphore::new(max_connections));
    tokio::pin!(shutdown);
    loop {
        // A slot is taken before accepting: at the limit the loop waits, and
        // new clients wait in the listen backlog, not in Flint's memory.
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                tracing::warn!(
                    max_connections,
                    "connection limit reached; accepting pauses until a connection closes (server flag --max-connections)"
                );
                tokio::select! {
                    slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
                    () = &mut shutdown => break,
                }
            }
        };
        tokio::select! {
            accepted = async {
                tokio::select! {
                    accepted = listeners.main.accept() => (accepted, main),
                    accepted = admin_accept(&listeners.admin) => (accepted, admin_only.unwrap_or(main)),
                }
            } => {
                let (stream, peer, listener) = match accepted {
                    (Ok((stream, peer)), listener) => (stream, peer, listener),
                    (Err(e), _) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(ACCEPT_RETRY).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let least_busy = threads
                    .iter()
                    .min_by_key(|t| t.open.load(Ordering::Relaxed))
                    .expect("at least one connection thread");
                match stream.into_std() {
                    Ok(stream) => least_busy.hand_over(stream, peer, listener, slot),
                    Err(e) => tracing::warn!(%peer, error = %e, "cannot hand the connection over"),
                }
            }
            () = &mut shutdown => break,
        }
    }
    drop(listeners);
    maintenance.abort();
    gc.abort();
    let grace = control.config().shutdown_grace;
    tracing::info!(
        grace_secs = grace.as_secs(),
        "shutting down; waiting for calls and messages in flight"
    );
    // Queue consumers, the scheduler and connection threads drain at once,
    // each within the grace period: the consumers stop taking messages and
    // settle the ones they hold, the scheduler claims no more ticks and lets
    // the calls of claimed ones finish, the threads finish their requests.
    // Every thread's hand-over closes before any is joined.
    let messages = async {
        let queues = async {
            if let Some(queues) = queues {
                queues.drain(grace).await;
            }
        };
        tokio::join!(queues, scheduler.drain(grace));
    };
    let joins: Vec<_> = threads.into_iter().map(ConnectionThread::drain).collect();
    let requests = tokio::task::spawn_blocking(move || {
        for join in joins {
            if let Err(panic) = join.join() {
                std::panic::resume_unwind(panic);
            }
        }
    });
    let ((), joined) = tokio::join!(messages, requests);
    joined?;
    Ok(())
}

/// A thread serving connections on a single-threaded runtime of its own.
struct ConnectionThread {
    /// Accepted connections on their way to the thread; dropping it tells
    /// the thread to drain.
    incoming: mpsc::UnboundedSender<Handover>,
    /// Connections handed over and not yet closed.
    open: Arc<AtomicUsize>,
    thread: std::thread::JoinHandle<()>,
}

impl ConnectionThread {
    fn start(
        index: usize,
        app: Arc<App>,
        admin: Handle,
        grace: Duration,
        tls: Option<TlsAcceptor>,
    ) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (incoming, receiver) = mpsc::unbounded_channel();
        let open = Arc::new(AtomicUsize::new(0));
        let thread = std::thread::Builder::new()
            .name(format!("flint-conn-{index}"))
            .spawn(move || runtime.block_on(serve_connections(receiver, app, admin, grace, tls)))?;
        Ok(Self {
            incoming,
            open,
            thread,
        })
    }

    fn hand_over(
        &self,
        stream: std::net::TcpStream,
        peer: SocketAddr,
        listener: Listener,
        slot: OwnedSemaphorePermit,
    ) {
        let handover = Handover {
            stream,
            peer,
            listener,
            open: OpenConnection::new(&self.open, slot),
        };
        if self.incoming.send(handover).is_err() {
            tracing::error!(%peer, "connection thread is gone; connection dropped");
        }
    }

    /// Stops handing over connections: the thread lets its open ones finish
    /// (up to the grace period) and ends; join the handle to wait for it.
    fn drain(self) -> std::thread::JoinHandle<()> {
        drop(self.incoming);
        self.thread
    }
}

/// An accepted connection on its way to a connection thread.
struct Handover {
    stream: std::net::TcpStream,
    peer: SocketAddr,
    /// The listener it came from, recorded in each of its requests.
    listener: Listener,
    /// Counts it as open until the connection, however it ends, is dropped.
    open: OpenConnection,
}

/// One in a connection thread's count of open connections, holding its
/// slot of `--max-connections`, while it lives.
struct OpenConnection {
    count: Arc<AtomicUsize>,
    _slot: OwnedSemaphorePermit,
}

impl OpenConnection {
    fn new(count: &Arc<AtomicUsize>, slot: OwnedSemaphorePermit) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self {
            count: count.clone(),
            _slot: slot,
        }
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Runs an admin API request on the main runtime. Admin calls wait on the
/// registry (SQLite commits wait for fsync) and on compiles; on this thread
/// they would stall every other connection it serves meanwhile. Spawned,
/// the call also runs to its end when its client hangs up, so a deploy is
/// never cut off between its registry write and its install.
async fn on_main_runtime(
    admin: &Handle,
    app: Arc<App>,
    request: Request<RequestBody>,
) -> Response<crate::api::Body> {
    match admin.spawn(async move { app.handle(request).await }).await {
        Ok(response) => response,
        Err(e) => ApiError::from(crate::core::CoreError::internal(format!(
            "the admin call did not finish: {e}"
        )))
        .into_response(),
    }
}

/// The body of a request as the application sees it.
type RequestBody = TimedBody<Incoming>;

/// The connection builder: HTTP/1.1 and HTTP/2 with the configured bounds.
fn builder(config: &ConnectionConfig) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // `connection::drive` applies the header and idle timeouts, to both
    // protocols. hyper's own HTTP/1 header timer would repeat them at the
    // cost of a timer made, armed and dropped for every request.
    builder.http1().header_read_timeout(None);
    // Without a timer hyper silently skips its HTTP/2 keep-alive pings.
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(config.http2_keep_alive_interval)
        .keep_alive_timeout(config.http2_keep_alive_timeout)
        .max_concurrent_streams(config.http2_max_streams)
        .max_header_list_size(HTTP2_MAX_HEADER_LIST_BYTES)
        .max_pending_accept_reset_streams(HTTP2_MAX_PENDING_ACCEPT_RESET_STREAMS)
        .max_local_error_reset_streams(HTTP2_MAX_LOCAL_ERROR_RESET_STREAMS);
    builder
}

/// Serves the connections handed to this thread until the channel closes,
/// then lets in-flight requests finish (up to the grace period). Admin API
/// requests run on `admin` (the main runtime).
async fn serve_connections(
    mut incoming: mpsc::UnboundedReceiver<Handover>,
    app: Arc<App>,
    admin: Handle,
    grace: Duration,
    tls: Option<TlsAcceptor>,
) {
    let config = app.control().config().connections;
    let builder = Arc::new(builder(&config));
    // Turned true at shutdown; closed once every connection's receiver is
    // dropped.
    let (stop, stopping) = watch::channel(false);
    while let Some(Handover {
        stream,
        peer,
        listener,
        open,
    }) = incoming.recv().await
    {
        let stream = match TcpStream::from_std(stream) {
            Ok(stream) => stream,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "cannot register the connection");
                continue;
            }
        };
        let activity = Activity::new();
        let service = service(app.clone(), admin.clone(), listener, activity.clone());
        let (builder, mut stopping, tls) = (builder.clone(), stopping.clone(), tls.clone());
        tokio::spawn(async move {
            // Counted as open until this task ends or is dropped.
            let _open = open;
            let stream = WriteTimeout::new(stream, config.write_timeout);
            let (ended, served) = match tls {
                None => {
                    serve_io(&builder, stream, service, &activity, &config, &mut stopping).await
                }
                Some(acceptor) => {
                    // The handshake is bounded like a request head.
                    match tokio::time::timeout(config.header_timeout, acceptor.accept(stream)).await
                    {
                        Ok(Ok(stream)) => {
                            serve_io(&builder, stream, service, &activity, &config, &mut stopping)
                                .await
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    }
                }
            };
            match ended {
                Ended::Idle => tracing::debug!(%peer, "idle connection closed"),
                Ended::Stalled => tracing::debug!(%peer, "stalled HTTP/2 connection closed"),
                Ended::Done | Ended::Shutdown => {}
            }
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    stop.send_replace(true);
    drop(stopping);
    if tokio::time::timeout(grace, stop.closed()).await.is_err() {
        tracing::warn!("grace period over; closing remaining connections");
    }
}

/// The service of one connection: each request's body is timed, each
/// request counted in flight until its response body is dropped, and admin
/// calls run on the main runtime.
fn service(
    app: Arc<App>,
    admin: Handle,
    listener: Listener,
    activity: Arc<Activity>,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<Tracked<crate::api::Body>>,
    Error = std::convert::Infallible,
    Future: Send + 'static,
> + Clone
+ Send
+ 'static {
    let config = app.control().config().connections;
    let timeouts = BodyTimeouts {
        min_rate: config.body_min_rate,
        grace: config.body_grace,
        total: config.body_timeout,
    };
    service_fn(move |request: Request<Incoming>| {
        let in_flight = activity.request();
        let http2 = request.version() == http::Version::HTTP_2;
        let mut request = request.map(|body| TimedBody::new(body, timeouts));
        request.extensions_mut().insert(listener);
        let app = app.clone();
        let admin = crate::api::is_admin(request.uri().path()).then(|| admin.clone());
        async move {
            let response = match admin {
                Some(admin) => on_main_runtime(&admin, app, request).await,
                None => app.handle(request).await,
            };
            Ok::<_, std::convert::Infallible>(
                response.map(|body| Tracked::new(body, in_flight, http2)),
            )
        }
    })
}

/// Serves HTTP on `io` under the connection's timeouts until it ends.
async fn serve_io<I, S>(
    builder: &auto::Builder<TokioExecutor>,
    io: I,
    service: S,
    activity: &Activity,
    config: &ConnectionConfig,
    stopping: &mut watch::Receiver<bool>,
) -> (Ended, Result<(), crate::api::BoxError>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<
            Request<Incoming>,
            Response = Response<Tracked<crate::api::Body>>,
            Error = std::convert::Infallible,
            Future: Send + 'static,
        > + Clone
        + Send
        + 'static,
{
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(connection);
    connection::drive(
        connection,
        |connection| connection.graceful_shutdown(),
        activity,
        config,
        stopping,
    )
    .await
}
