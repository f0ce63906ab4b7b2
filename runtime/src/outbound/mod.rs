//! The outbound HTTP policy: a function may call only the hosts it lists,
//! and a request connects to exactly the address that was checked.
//!
//! A request is allowed when its authority matches an entry of the
//! function's `allowed_outbound_hosts` (`host`, `host:port` or
//! `*.domain`). Because the admin API and other internal services live on
//! loopback and private networks, a name that resolves to a loopback,
//! private, link-local or otherwise non-public address is refused unless the
//! matching entry names that IP address literally. The entries' syntax and
//! matching are [`HostPattern`]'s, in `flint-spec`; which addresses count as
//! public is decided in `ip`.
//!
//! The name is resolved once, every address of the answer is checked, and
//! the connection goes to one of those addresses: resolving again to
//! connect would let a name that answers a public address first and
//! loopback next (DNS rebinding) through. So the request is sent by Flint's
//! own client (`send`), not by wasmtime-wasi-http's default one, which takes
//! a name. Resolver and connector are traits (`net`) so that tests can fake
//! them. Redirects are not followed: the guest sees the 3xx, and a request
//! it makes to the new location is checked like any other.

mod ip;
mod net;
mod send;
#[cfg(test)]
mod tests;

use self::ip::is_public;
use self::net::{Connector, Resolver, Stream, SystemResolver, TcpConnector};
pub(crate) use self::send::IoFuture;
use self::send::Timeouts;
use flint_spec::HostPattern;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use tokio::time::Instant;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

/// `wasi:http` hooks that enforce a function's outbound allow-list and send
/// the requests it allows.
#[derive(Clone)]
pub struct OutboundPolicy {
    allowed: Arc<[HostPattern]>,
    resolver: Arc<dyn Resolver>,
    connector: Arc<dyn Connector>,
}

impl fmt::Debug for OutboundPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboundPolicy")
            .field("allowed", &self.allowed)
            .finish_non_exhaustive()
    }
}

impl OutboundPolicy {
    /// Builds the policy from validated `allowed_outbound_hosts` entries,
    /// resolving with the system resolver and connecting over TCP.
    pub fn new(entries: &[String]) -> Self {
        Self::with_network(entries, Arc::new(SystemResolver), Arc::new(TcpConnector))
    }

    /// Builds the policy with the given resolver and connector.
    pub(crate) fn with_network(
        entries: &[String],
        resolver: Arc<dyn Resolver>,
        connector: Arc<dyn Connector>,
    ) -> Self {
        let allowed = entries
            .iter()
            .filter_map(|e| HostPattern::parse(e).ok())
            .collect();
        Self {
            allowed,
            resolver,
            connector,
        }
    }

    /// The checked addresses a request to `host:port` may connect to, in
    /// the resolver's order; `host` is lowercase, without IPv6 brackets.
    async fn destinations(
        &self,
        host: &str,
        port: u16,
        deadline: Instant,
    ) -> Result<Vec<SocketAddr>, HttpError> {
        let Some(pattern) = self.allowed.iter().find(|p| p.matches(host, port)) else {
            tracing::debug!(%host, port, "outbound request denied: host not allowed");
            return Err(HttpError::HttpRequestDenied);
        };
        // An address in the URL is not looked up; it is allowed if an entry
        // names it or if it is public.
        if let Ok(ip) = host.parse::<IpAddr>() {
            if !pattern.is_ip_literal() && !is_public(ip) {
                tracing::debug!(%host, "outbound request denied: non-public address");
                return Err(HttpError::DestinationIpProhibited);
            }
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let addrs = tokio::time::timeout_at(deadline, self.resolver.lookup(host, port))
            .await
            .map_err(|_| HttpError::DnsTimeout)?
            .map_err(|err| {
                tracing::debug!(%host, %err, "outbound request failed: lookup failed");
                HttpError::DnsError {
                    rcode: Some("lookup failed".into()),
                    info_code: None,
                }
            })?;
        if addrs.is_empty() {
            return Err(HttpError::DnsError {
                rcode: Some("no addresses".into()),
                info_code: None,
            });
        }
        if let Some(addr) = addrs.iter().find(|a| !is_public(a.ip())) {
            tracing::debug!(%host, ip = %addr.ip(), "outbound request denied: non-public address");
            return Err(HttpError::DestinationIpProhibited);
        }
        Ok(addrs)
    }

    /// Connects to the first of `addrs` that accepts, by `deadline`.
    async fn connect(
        &self,
        addrs: &[SocketAddr],
        deadline: Instant,
    ) -> Result<Box<dyn Stream>, HttpError> {
        let attempts = async {
            let mut last =
                io::Error::new(io::ErrorKind::AddrNotAvailable, "no address to connect to");
            for &addr in addrs {
                match self.connector.connect(addr).await {
                    Ok(stream) => return Ok(stream),
                    Err(err) => {
                        tracing::debug!(%addr, %err, "outbound connect failed");
                        last = err;
                    }
                }
            }
            Err(HttpError::Connect(last))
        };
        tokio::time::timeout_at(deadline, attempts)
            .await
            .map_err(|_| HttpError::ConnectionTimeout)?
    }

    /// Checks, connects and sends one request.
    async fn send(
        &self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> Result<(http::Response<WasiBody>, IoFuture), HttpError> {
        let timeouts = Timeouts::new(options);
        let deadline = Instant::now() + timeouts.connect;
        let uri = request.uri();
        let use_tls = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
        let host = uri
            .host()
            .ok_or(HttpError::HttpRequestUriInvalid)?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let port = uri.port_u16().unwrap_or(if use_tls { 443 } else { 80 });
        let addrs = self.destinations(&host, port, deadline).await?;
        let tls = use_tls.then(|| send::tls_server_name(&host)).transpose()?;
        let stream = self.connect(&addrs, deadline).await?;
        send::send(stream, tls, request, timeouts, deadline).await
    }
}

/// What a `send_request` hook returns: the response head and the future
/// that drives the connection.
pub(crate) type SendFuture =
    Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), HttpError>> + Send>;

impl WasiHttpHooks for OutboundPolicy {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> SendFuture {
        // `fut` would learn how the guest's reading of the response ended;
        // like wasmtime-wasi-http's default sender, Flint has no use for it.
        drop(fut);
        let policy = self.clone();
        Box::new(async move { policy.send(request, options).await })
    }
}
