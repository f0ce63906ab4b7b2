//! The outbound HTTP policy: a function may call only the hosts it lists.
//!
//! A request is allowed when its authority matches an entry of the
//! function's `allowed_outbound_hosts` (`host`, `host:port` or
//! `*.domain`). Because the admin API and other internal services live on
//! loopback and private networks, a name that resolves to a loopback,
//! private, link-local or otherwise non-public address is refused unless the
//! matching entry names that IP address literally. The entries' syntax and
//! matching are [`HostPattern`]'s, in `flint-spec`; which addresses count as
//! public is decided in `ip`.

mod ip;

use self::ip::is_public;
use flint_spec::HostPattern;
use std::sync::Arc;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

/// `wasi:http` hooks that enforce a function's outbound allow-list.
#[derive(Debug, Clone, Default)]
pub struct OutboundPolicy {
    allowed: Arc<[HostPattern]>,
}

impl OutboundPolicy {
    /// Builds the policy from validated `allowed_outbound_hosts` entries.
    pub fn new(entries: &[String]) -> Self {
        let allowed = entries
            .iter()
            .filter_map(|e| HostPattern::parse(e).ok())
            .collect();
        Self { allowed }
    }

    /// Decides whether a request to `host:port` may go out.
    async fn check(&self, host: &str, port: u16) -> Result<(), HttpError> {
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let Some(pattern) = self.allowed.iter().find(|p| p.matches(&host, port)) else {
            tracing::debug!(%host, port, "outbound request denied: host not allowed");
            return Err(HttpError::HttpRequestDenied);
        };
        if pattern.is_ip_literal() {
            return Ok(());
        }
        let addrs = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|_| HttpError::DnsError {
                rcode: Some("lookup failed".into()),
                info_code: None,
            })?;
        for addr in addrs {
            if !is_public(addr.ip()) {
                tracing::debug!(%host, ip = %addr.ip(), "outbound request denied: non-public address");
                return Err(HttpError::DestinationIpProhibited);
            }
        }
        Ok(())
    }
}

type SendFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
                ),
                HttpError,
            >,
        > + Send,
>;

impl WasiHttpHooks for OutboundPolicy {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> SendFuture {
        drop(fut);
        let policy = self.clone();
        Box::new(async move {
            let uri = request.uri();
            let host = uri.host().unwrap_or_default().to_string();
            let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
                Some("https") => 443,
                _ => 80,
            });
            policy.check(&host, port).await?;
            use http_body_util::BodyExt;
            let (res, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                res.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}
