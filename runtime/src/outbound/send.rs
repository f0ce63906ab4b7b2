//! One HTTP/1.1 exchange over a stream the policy has already opened to a
//! checked address: TLS for `https`, the client handshake, the request, and
//! the response under `wasi:http`'s request-option timeouts.
//!
//! It follows wasmtime-wasi-http's `default_send_request` (timeouts, their
//! defaults and the errors they map to), which Flint cannot use because it
//! resolves the name again to connect.
//!
//! Only HTTP/1.1 is spoken (no ALPN offer of `h2`), which keeps hyper's
//! HTTP/2 client, where empty body frames can grow the heap without bound,
//! off this path; the request body is wrapped in [`SkipEmptyFrames`] anyway.

use super::net::Stream;
use crate::body::SkipEmptyFrames;
use http_body_util::BodyExt;
use hyper::client::conn::http1;
use rustls::pki_types::ServerName;
use std::future::{Future, poll_fn};
use std::net::IpAddr;
use std::pin::{Pin, pin};
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody};

/// A timeout the guest did not set, as wasmtime-wasi-http defaults it.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// What drives the connection after the response head has arrived; it
/// resolves when the exchange is over.
pub(crate) type IoFuture = Box<dyn Future<Output = Result<(), HttpError>> + Send>;

/// The guest's `request-options`, with defaults for what it left unset.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    /// For name lookup, TCP connect, TLS and the HTTP handshake together.
    pub(crate) connect: Duration,
    /// From sending the request to the response head.
    pub(crate) first_byte: Duration,
    /// Between two frames of the response body.
    pub(crate) between_bytes: Duration,
}

impl Timeouts {
    pub(crate) fn new(options: Option<RequestOptions>) -> Self {
        let options = options.unwrap_or_default();
        Self {
            connect: options.connect_timeout.unwrap_or(DEFAULT_TIMEOUT),
            first_byte: options.first_byte_timeout.unwrap_or(DEFAULT_TIMEOUT),
            // tokio panics on an interval of zero; a nanosecond is as good.
            between_bytes: options
                .between_bytes_timeout
                .unwrap_or(DEFAULT_TIMEOUT)
                .max(Duration::from_nanos(1)),
        }
    }
}

/// The TLS client: the webpki roots, ring, no client certificate. Built once
/// per process; parsing the roots per request would be waste.
static TLS: LazyLock<TlsConnector> = LazyLock::new(|| {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.into(),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports rustls's default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    TlsConnector::from(Arc::new(config))
});

/// The name TLS verifies the certificate against and sends as SNI: the
/// request's host (an IP literal verifies against the address itself).
pub(crate) fn tls_server_name(host: &str) -> Result<ServerName<'static>, HttpError> {
    match host.parse::<IpAddr>() {
        Ok(ip) => Ok(ServerName::from(ip)),
        Err(_) => Ok(ServerName::try_from(host.to_owned())?),
    }
}

/// Sends `request` over `stream`, after a TLS handshake for `tls` when
/// given. TLS and the HTTP handshake must finish by `connect_deadline`.
pub(crate) async fn send(
    stream: Box<dyn Stream>,
    tls: Option<ServerName<'static>>,
    mut request: http::Request<WasiBody>,
    timeouts: Timeouts,
    connect_deadline: Instant,
) -> Result<(http::Response<WasiBody>, IoFuture), HttpError> {
    let handshake = async {
        let stream: Box<dyn Stream> = match tls {
            Some(name) => Box::new(TLS.connect(name, stream).await.map_err(tls_error)?),
            None => stream,
        };
        let io = TokioIo::new(stream);
        Ok::<_, HttpError>(
            http1::Builder::new()
                .handshake::<_, SkipEmptyFrames<WasiBody>>(io)
                .await?,
        )
    };
    let (mut sender, conn) = tokio::time::timeout_at(connect_deadline, handshake)
        .await
        .map_err(|_| HttpError::ConnectionTimeout)??;

    // The request carries the scheme and authority, but the request line
    // must be in origin form (they belong there only when talking to a
    // proxy), and hyper leaves that to its caller.
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
    *request.uri_mut() = http::Uri::builder()
        .path_and_query(path)
        .build()
        .map_err(|_| HttpError::HttpRequestUriInvalid)?;
    let request = request.map(SkipEmptyFrames::new);

    let response = async move {
        let response = tokio::time::timeout(timeouts.first_byte, sender.send_request(request))
            .await
            .map_err(|_| HttpError::ConnectionReadTimeout)??;
        let mut interval = tokio::time::interval(timeouts.between_bytes);
        interval.reset();
        Ok::<_, HttpError>(response.map(|incoming| ResponseBody { incoming, interval }))
    };
    // Wait for the response head while driving the connection's I/O.
    let mut response = pin!(response);
    let mut conn = Some(conn);
    let response = poll_fn(|cx| match response.as_mut().poll(cx) {
        Poll::Ready(result) => Poll::Ready(result),
        Poll::Pending => {
            let Some(c) = conn.as_mut() else {
                return Poll::Pending;
            };
            let result = ready!(Pin::new(c).poll(cx));
            conn = None;
            match result {
                // The connection is done: the response must be ready too.
                Ok(()) => response.as_mut().poll(cx),
                Err(err) => Poll::Ready(Err(HttpError::from(err))),
            }
        }
    })
    .await?;

    let io = async move {
        let Some(conn) = conn else {
            return Ok(());
        };
        conn.await.map_err(|err| {
            if err.is_timeout() {
                HttpError::HttpResponseTimeout
            } else {
                HttpError::from(err)
            }
        })
    };
    Ok((response.map(BodyExt::boxed_unsync), Box::new(io)))
}

/// Gives certificate problems and alerts from the peer their own error
/// codes, so a guest can tell a bad certificate from a broken connection.
fn tls_error(err: std::io::Error) -> HttpError {
    match err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::InvalidCertificate(_)) => HttpError::TlsCertificateError,
        Some(rustls::Error::AlertReceived(alert)) => HttpError::TlsAlertReceived {
            alert_id: Some(u8::from(*alert)),
            alert_message: Some(format!("{alert:?}")),
        },
        _ => HttpError::Tls(err),
    }
}

/// The upstream's response body, failing when it stalls longer than the
/// between-bytes timeout.
struct ResponseBody {
    incoming: hyper::body::Incoming,
    interval: tokio::time::Interval,
}

impl http_body::Body for ResponseBody {
    type Data = bytes::Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        match Pin::new(&mut self.incoming).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                self.interval.reset();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(err))) if err.is_timeout() => {
                Poll::Ready(Some(Err(HttpError::HttpResponseTimeout)))
            }
            Poll::Ready(Some(Err(err))) => Poll::Ready(Some(Err(err.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                ready!(self.interval.poll_tick(cx));
                Poll::Ready(Some(Err(HttpError::ConnectionReadTimeout)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.incoming.size_hint()
    }
}
