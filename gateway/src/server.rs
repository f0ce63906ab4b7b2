//! The accept loop: binds, serves HTTP/1.1 and HTTP/2 with [`crate::handle`],
//! runs periodic upkeep, and shuts down gracefully.

use crate::config::{HEADER_READ_TIMEOUT, SHUTDOWN_GRACE};
use crate::state::AppState;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// How often idle instances are trimmed and idle versions unloaded.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(1);

/// Binds the configured address; the error says what to do when it is taken.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            anyhow::anyhow!("{addr} is already in use; pick another with --listen (or FLINT_LISTEN), e.g. --listen 127.0.0.1:0 for any free port")
        } else {
            anyhow::anyhow!("cannot listen on {addr}: {e}")
        }
    })
}

/// Serves until `shutdown` resolves, then lets in-flight requests finish
/// (up to a grace period).
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let maintenance = tokio::spawn({
        let state = state.clone();
        async move {
            let mut tick = tokio::time::interval(MAINTENANCE_INTERVAL);
            loop {
                tick.tick().await;
                state
                    .table
                    .maintain(state.config.instance_idle, state.config.unload_after);
            }
        }
    });
    let supervisor = if state.triggers.amqp_url().is_some() {
        Some(tokio::spawn(crate::triggers::amqp::supervise(
            state.clone(),
        )))
    } else {
        tracing::info!("no --amqp-url: running without queue triggers");
        None
    };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Without a timer hyper silently skips the header read timeout.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let state = state.clone();
                let service = service_fn(move |request| {
                    let state = state.clone();
                    async move { Ok::<_, std::convert::Infallible>(crate::api::handle(state, request).await) }
                });
                let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                let connection = graceful.watch(connection.into_owned());
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    maintenance.abort();
    if let Some(supervisor) = supervisor {
        // Stopping the consumers closes their channels: unacked messages go
        // back to their queues.
        supervisor.abort();
    }
    tracing::info!("shutting down; waiting for in-flight requests");
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("grace period over; closing remaining connections");
    }
    Ok(())
}
