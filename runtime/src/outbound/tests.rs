//! The policy driven through `send_request`, with a scripted resolver and a
//! connector that serves from memory: nothing here opens a connection
//! beyond loopback.

use super::*;
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::DuplexStream;
use wasmtime_wasi_http::io::TokioIo;

const PUBLIC: &str = "93.184.216.34";

/// Answers lookup `n` with `answers[n]`, the last answer ever after.
struct ScriptedResolver {
    answers: Vec<Vec<IpAddr>>,
    lookups: AtomicUsize,
}

impl ScriptedResolver {
    fn new(answers: &[&[&str]]) -> Arc<Self> {
        let answers = answers
            .iter()
            .map(|a| a.iter().map(|ip| ip.parse().unwrap()).collect())
            .collect();
        Arc::new(Self {
            answers,
            lookups: AtomicUsize::new(0),
        })
    }

    /// Public on the first lookup, loopback on every later one.
    fn rebinding() -> Arc<Self> {
        Self::new(&[&[PUBLIC], &["127.0.0.1"]])
    }

    fn lookups(&self) -> usize {
        self.lookups.load(Ordering::SeqCst)
    }
}

impl Resolver for ScriptedResolver {
    fn lookup<'a>(
        &'a self,
        _host: &'a str,
        port: u16,
    ) -> net::BoxFuture<'a, io::Result<Vec<SocketAddr>>> {
        let n = self.lookups.fetch_add(1, Ordering::SeqCst);
        let answer = &self.answers[n.min(self.answers.len() - 1)];
        let addrs = answer.iter().map(|ip| SocketAddr::new(*ip, port)).collect();
        Box::pin(async move { Ok(addrs) })
    }
}

/// What the far end of a fake connection does with its side of the stream.
type Upstream = Arc<dyn Fn(DuplexStream) -> net::BoxFuture<'static, ()> + Send + Sync>;

/// Records every address it is asked to dial; refuses those in `refuse`,
/// never answers when `hang`, and otherwise hands out one end of an
/// in-memory stream whose other end `upstream` serves.
struct FakeConnector {
    dialled: Mutex<Vec<SocketAddr>>,
    refuse: Vec<SocketAddr>,
    hang: bool,
    upstream: Upstream,
}

impl FakeConnector {
    fn new(upstream: Upstream) -> Self {
        Self {
            dialled: Mutex::default(),
            refuse: Vec::new(),
            hang: false,
            upstream,
        }
    }

    fn serving(upstream: Upstream) -> Arc<Self> {
        Arc::new(Self::new(upstream))
    }

    fn dialled(&self) -> Vec<SocketAddr> {
        self.dialled.lock().unwrap().clone()
    }
}

impl Connector for FakeConnector {
    fn connect(&self, addr: SocketAddr) -> net::BoxFuture<'_, io::Result<Box<dyn Stream>>> {
        self.dialled.lock().unwrap().push(addr);
        Box::pin(async move {
            if self.hang {
                std::future::pending::<()>().await;
            }
            if self.refuse.contains(&addr) {
                return Err(io::ErrorKind::ConnectionRefused.into());
            }
            let (client, server) = tokio::io::duplex(64 * 1024);
            tokio::spawn((self.upstream)(server));
            Ok(Box::new(client) as Box<dyn Stream>)
        })
    }
}

/// An HTTP/1.1 server that answers with what it received: the request line
/// (in the form it came), the Host header and the body.
fn echo() -> Upstream {
    Arc::new(|stream| {
        Box::pin(async move {
            let service = service_fn(|request: http::Request<hyper::body::Incoming>| async move {
                let (parts, body) = request.into_parts();
                let body = body.collect().await?.to_bytes();
                let echo = format!(
                    "{} {} host={} body={}",
                    parts.method,
                    parts.uri,
                    parts.headers[http::header::HOST].to_str().unwrap(),
                    String::from_utf8_lossy(&body),
                );
                Ok::<_, hyper::Error>(http::Response::new(Full::new(Bytes::from(echo))))
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        })
    })
}

/// A server that accepts the connection and never answers.
fn silent() -> Upstream {
    Arc::new(|stream| {
        Box::pin(async move {
            let _open = stream;
            std::future::pending::<()>().await;
        })
    })
}

/// A TLS server with a self-signed certificate for `api.example` that
/// records the server name (SNI) the client asked for.
fn tls_upstream(sni: Arc<Mutex<Option<String>>>) -> Upstream {
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    let certified = rcgen::generate_simple_self_signed(vec!["api.example".to_string()]).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .unwrap();
    let config = Arc::new(config);
    Arc::new(move |stream| {
        let (sni, config) = (sni.clone(), config.clone());
        Box::pin(async move {
            let acceptor = rustls::server::Acceptor::default();
            let Ok(start) = tokio_rustls::LazyConfigAcceptor::new(acceptor, stream).await else {
                return;
            };
            *sni.lock().unwrap() = start.client_hello().server_name().map(str::to_owned);
            let _ = start.into_stream(config).await;
        })
    })
}

fn policy(
    entries: &[&str],
    resolver: Arc<ScriptedResolver>,
    connector: Arc<FakeConnector>,
) -> OutboundPolicy {
    let entries: Vec<String> = entries.iter().map(|e| e.to_string()).collect();
    OutboundPolicy::with_network(&entries, resolver, connector)
}

/// A request as wasmtime-wasi-http hands it to the hooks: absolute URI and
/// a Host header.
fn request(method: &str, url: &str, body: &'static str) -> http::Request<WasiBody> {
    let uri: http::Uri = url.parse().unwrap();
    let host = uri.authority().unwrap().to_string();
    let body = Full::new(Bytes::from_static(body.as_bytes()))
        .map_err(|never| match never {})
        .boxed_unsync();
    http::Request::builder()
        .method(method)
        .uri(uri)
        .header(http::header::HOST, host)
        .body(body)
        .unwrap()
}

fn get(url: &str) -> http::Request<WasiBody> {
    request("GET", url, "")
}

/// Sends through the hooks and reads the whole response.
async fn call(
    policy: &mut OutboundPolicy,
    request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
) -> Result<(StatusCode, HeaderMap, String), HttpError> {
    let sending = policy.send_request(request, options, Box::new(async { Ok(()) }));
    let (response, io) = Pin::from(sending).await?;
    let io = tokio::spawn(Pin::from(io));
    let (parts, body) = response.into_parts();
    let body = body.collect().await?.to_bytes();
    io.await.unwrap()?;
    Ok((
        parts.status,
        parts.headers,
        String::from_utf8(body.to_vec()).unwrap(),
    ))
}

#[tokio::test]
async fn a_rebinding_name_is_looked_up_once_and_the_checked_address_is_dialled() {
    let resolver = ScriptedResolver::rebinding();
    let connector = FakeConnector::serving(echo());
    let mut policy = policy(
        &["rebind.example:8080"],
        resolver.clone(),
        connector.clone(),
    );

    let (status, _, body) = call(
        &mut policy,
        request("POST", "http://rebind.example:8080/path?q=1", "hello"),
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, StatusCode::OK);
    // Origin-form request line, the guest's Host, the body intact.
    assert_eq!(body, "POST /path?q=1 host=rebind.example:8080 body=hello");
    assert_eq!(resolver.lookups(), 1);
    assert_eq!(
        connector.dialled(),
        [format!("{PUBLIC}:8080").parse().unwrap()]
    );

    // The next request resolves afresh, sees loopback and never dials it.
    let err = call(&mut policy, get("http://rebind.example:8080/"), None)
        .await
        .unwrap_err();
    assert!(matches!(err, HttpError::DestinationIpProhibited), "{err:?}");
    assert_eq!(resolver.lookups(), 2);
    assert_eq!(connector.dialled().len(), 1);
}

#[tokio::test]
async fn a_name_resolving_to_loopback_is_refused_without_dialling() {
    let resolver = ScriptedResolver::new(&[&["127.0.0.1"], &[PUBLIC]]);
    let connector = FakeConnector::serving(echo());
    let mut policy = policy(&["rebind.example"], resolver.clone(), connector.clone());
    let err = call(&mut policy, get("http://rebind.example/"), None)
        .await
        .unwrap_err();
    assert!(matches!(err, HttpError::DestinationIpProhibited), "{err:?}");
    assert_eq!(resolver.lookups(), 1);
    assert!(connector.dialled().is_empty());
}

#[tokio::test]
async fn one_non_public_address_in_the_answer_refuses_the_name() {
    let resolver = ScriptedResolver::new(&[&[PUBLIC, "10.0.0.7"]]);
    let connector = FakeConnector::serving(echo());
    let mut policy = policy(&["*.example"], resolver, connector.clone());
    let err = call(&mut policy, get("http://api.example/"), None)
        .await
        .unwrap_err();
    assert!(matches!(err, HttpError::DestinationIpProhibited), "{err:?}");
    assert!(connector.dialled().is_empty());
}

#[tokio::test]
async fn hosts_not_listed_are_denied_before_any_lookup() {
    let resolver = ScriptedResolver::new(&[&[PUBLIC]]);
    let connector = FakeConnector::serving(echo());
    let mut policy = policy(&["api.example:443"], resolver.clone(), connector.clone());
    for url in ["http://other.example/", "http://api.example:8443/"] {
        let err = call(&mut policy, get(url), None).await.unwrap_err();
        assert!(
            matches!(err, HttpError::HttpRequestDenied),
            "{url}: {err:?}"
        );
    }
    assert_eq!(resolver.lookups(), 0);
    assert!(connector.dialled().is_empty());
}

#[tokio::test]
async fn an_ip_literal_entry_is_dialled_as_written_without_a_lookup() {
    let resolver = ScriptedResolver::new(&[&[PUBLIC]]);
    let connector = FakeConnector::serving(echo());
    let mut policy = policy(&["127.0.0.1:9999"], resolver.clone(), connector.clone());
    let (status, _, body) = call(&mut policy, get("http://127.0.0.1:9999/x"), None)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "GET /x host=127.0.0.1:9999 body=");
    assert_eq!(resolver.lookups(), 0);
    assert_eq!(connector.dialled(), ["127.0.0.1:9999".parse().unwrap()]);
}

#[tokio::test]
async fn a_non_public_address_in_the_url_needs_an_entry_naming_it() {
    let resolver = ScriptedResolver::new(&[&[PUBLIC]]);
    let connector = FakeConnector::serving(echo());
    // A wildcard happens to match the address's text, but does not name it.
    let mut policy = policy(&["*.0.0.1"], resolver.clone(), connector.clone());
    let err = call(&mut policy, get("http://127.0.0.1/"), None)
        .await
        .unwrap_err();
    assert!(matches!(err, HttpError::DestinationIpProhibited), "{err:?}");
    assert_eq!(resolver.lookups(), 0);
    assert!(connector.dialled().is_empty());
}

#[tokio::test]
async fn the_next_checked_address_is_tried_when_one_refuses() {
    let second = "93.184.216.35";
    let resolver = ScriptedResolver::new(&[&[PUBLIC, second], &["127.0.0.1"]]);
    let connector = Arc::new(FakeConnector {
        refuse: vec![format!("{PUBLIC}:80").parse().unwrap()],
        ..FakeConnector::new(echo())
    });
    let mut policy = policy(&["api.example"], resolver.clone(), connector.clone());
    let (status, _, _) = call(&mut policy, get("http://api.example/"), None)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(resolver.lookups(), 1);
    let expected: Vec<SocketAddr> = [PUBLIC, second]
        .iter()
        .map(|ip| format!("{ip}:80").parse().unwrap())
        .collect();
    assert_eq!(connector.dialled(), expected);
}

#[tokio::test]
async fn refused_everywhere_is_a_connect_error() {
    let resolver = ScriptedResolver::new(&[&[PUBLIC]]);
    let connector = Arc::new(FakeConnector {
        refuse: vec![format!("{PUBLIC}:80").parse().unwrap()],
        ..FakeConnector::new(echo())
    });
    let mut policy = policy(&["api.example"], resolver, connector);
    let err = call(&mut policy, get("http://api.example/"), None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, HttpError::Connect(e) if e.kind() == io::ErrorKind::ConnectionRefused),
        "{err:?}"
    );
}

#[tokio::test]
async fn connect_timeout_bounds_the_dial() {
    let resolver = ScriptedResolver::new(&[&[PUBLIC]]);
    let connector = Arc::new(FakeConnector {
        hang: true,
        ..FakeConnector::new(echo())
    });
    let mut policy = policy(&["api.example"], resolver, connector);
    let options = RequestOptions {
        connect_timeout: Some(Duration::from_millis(50)),
        ..RequestOptions::default()
    };
    let err = call(&mut policy, get("http://api.example/"), Some(options))
        .await
        .unwrap_err();
    assert!(matches!(err, HttpError::ConnectionTimeout), "{err:?}");
}

#[tokio::test]
async fn first_byte_timeout_bounds_the_wait_for_the_response() {
    let resolver = ScriptedResolver::new(&[&[PUBLIC]]);
    let connector = FakeConnector::serving(silent());
    let mut policy = policy(&["api.example"], resolver, connector);
    let options = RequestOptions {
        first_byte_timeout: Some(Duration::from_millis(50)),
        ..RequestOptions::default()
    };
    let err = call(&mut policy, get("http://api.example/"), Some(options))
        .await
        .unwrap_err();
    assert!(matches!(err, HttpError::ConnectionReadTimeout), "{err:?}");
}

#[tokio::test]
async fn https_sends_the_host_as_sni_and_verifies_the_certificate() {
    let sni = Arc::new(Mutex::new(None));
    let resolver = ScriptedResolver::new(&[&[PUBLIC]]);
    let connector = FakeConnector::serving(tls_upstream(sni.clone()));
    let mut policy = policy(&["api.example"], resolver, connector.clone());
    let err = call(&mut policy, get("https://api.example/"), None)
        .await
        .unwrap_err();
    // A self-signed certificate is no certificate from the webpki roots.
    assert!(matches!(err, HttpError::TlsCertificateError), "{err:?}");
    assert_eq!(sni.lock().unwrap().as_deref(), Some("api.example"));
    assert_eq!(
        connector.dialled(),
        [format!("{PUBLIC}:443").parse().unwrap()]
    );
}

#[tokio::test]
async fn redirects_reach_the_guest_unfollowed() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = requests.clone();
    let server = tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let counted = counted.clone();
            let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                counted.fetch_add(1, Ordering::SeqCst);
                let response = match request.uri().path() {
                    "/start" => http::Response::builder()
                        .status(StatusCode::FOUND)
                        .header(
                            http::header::LOCATION,
                            format!("http://127.0.0.1:{port}/target"),
                        )
                        .body(Full::new(Bytes::from_static(b"moved"))),
                    _ => http::Response::builder().body(Full::new(Bytes::from_static(b"target"))),
                };
                async move { response }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });

    let mut policy = OutboundPolicy::new(&[format!("127.0.0.1:{port}")]);
    let (status, headers, body) = call(
        &mut policy,
        get(&format!("http://127.0.0.1:{port}/start")),
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, StatusCode::FOUND);
    assert_eq!(
        headers[http::header::LOCATION],
        format!("http://127.0.0.1:{port}/target")
    );
    assert_eq!(body, "moved");
    assert_eq!(requests.load(Ordering::SeqCst), 1);
    server.abort();
}
