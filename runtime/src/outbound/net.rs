//! The two network steps of an outbound request, behind traits so that
//! tests can replace them: name resolution ([`Resolver`]) and opening a
//! connection to one address ([`Connector`]).
//!
//! The policy resolves a name once and dials only addresses it has checked;
//! a connector is never given a name, so it cannot resolve one again.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use tokio::io::{AsyncRead, AsyncWrite};

/// A boxed future, as the traits' methods return (they must be object safe).
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A byte stream to a peer: a TCP connection, or anything a test provides.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

/// Resolves a host name to the addresses to connect to.
pub(crate) trait Resolver: Send + Sync {
    /// The addresses of `host`, each with `port`.
    fn lookup<'a>(&'a self, host: &'a str, port: u16)
    -> BoxFuture<'a, io::Result<Vec<SocketAddr>>>;
}

/// Opens a stream to one address. The caller bounds the time it may take.
pub(crate) trait Connector: Send + Sync {
    /// Connects to `addr`.
    fn connect(&self, addr: SocketAddr) -> BoxFuture<'_, io::Result<Box<dyn Stream>>>;
}

/// The system resolver (`getaddrinfo`, through tokio).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SystemResolver;

impl Resolver for SystemResolver {
    fn lookup<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> BoxFuture<'a, io::Result<Vec<SocketAddr>>> {
        Box::pin(async move { Ok(tokio::net::lookup_host((host, port)).await?.collect()) })
    }
}

/// Plain TCP connections.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TcpConnector;

impl Connector for TcpConnector {
    fn connect(&self, addr: SocketAddr) -> BoxFuture<'_, io::Result<Box<dyn Stream>>> {
        Box::pin(async move {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            // hyper may write a request's head and body separately; with
            // Nagle's algorithm the second write would wait for the peer's
            // delayed ACK (tens of milliseconds).
            stream.set_nodelay(true)?;
            Ok(Box::new(stream) as Box<dyn Stream>)
        })
    }
}
