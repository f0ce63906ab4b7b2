//! A small HTTP client for a Flint server: the admin API under `/v1` and the invoke path
//! under `/fn`.
//!
//! Every admin API error has the body `{"error": {"code": "...", "message": "..."}}`; the
//! client turns it into an [`ApiError`] so that commands and `main` can show the message,
//! the code and a hint. A server that cannot be reached at all becomes
//! [`ClientError::Unreachable`], which says how to point the CLI elsewhere.

use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderValue};
use reqwest::{Method, Request, RequestBuilder, Response, StatusCode, Url};
use serde::Deserialize;
use serde_json::Value;

/// The server the CLI talks to when neither `--server` nor `FLINT_SERVER` is given: the
/// address `flint serve` listens on by default.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

/// How long to wait for the TCP connection to the server. There is no limit on the whole
/// request: an invocation may legitimately run for as long as its function's `timeout_ms`.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How much of a body that is not a Flint JSON error goes into an error message.
const ERROR_BODY_SNIPPET: usize = 300;

/// An error reported by the server in Flint's JSON error shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} ({code})")]
pub struct ApiError {
    /// The HTTP status the error came with.
    pub status: u16,
    /// The machine-readable error code, such as `function_not_found`.
    pub code: String,
    /// The human-readable message.
    pub message: String,
}

impl ApiError {
    /// Reads a Flint error body (`{"error": {"code": "...", "message": "..."}}`), or `None`
    /// when `body` is something else (a function's own error page, say).
    pub fn from_body(status: StatusCode, body: &[u8]) -> Option<Self> {
        #[derive(Deserialize)]
        struct Envelope {
            error: Inner,
        }
        #[derive(Deserialize)]
        struct Inner {
            code: String,
            message: String,
        }
        let envelope: Envelope = serde_json::from_slice(body).ok()?;
        Some(Self {
            status: status.as_u16(),
            code: envelope.error.code,
            message: envelope.error.message,
        })
    }

    /// What the user can do about this error, when the code says.
    pub fn hint(&self) -> Option<&'static str> {
        Some(match self.code.as_str() {
            "function_not_found" => "run `flint ls` to see deployed functions",
            "version_not_found" => "run `flint info NAME` to see the function's versions",
            "function_disabled" => {
                "run `flint doctor` to see what is broken and repair what can be"
            }
            "invalid_component" => {
                "a function must be a wasi:http/proxy component: build it with \
                 `cargo build --target wasm32-wasip2 --release`"
            }
            "unauthorized" => {
                "pass a token with --token or FLINT_TOKEN (the server's bootstrap token is \
                 FLINT_ADMIN_TOKEN; `flint token create` makes more)"
            }
            "forbidden" => "the token lacks the scope or function; see `flint token ls`",
            "forbidden_host" => {
                "call the server as localhost or 127.0.0.1, or start it with --allowed-host NAME"
            }
            "request_timeout" => {
                "the server received the body too slowly; check the network, or restart it with \
                 a lower `flint serve --body-min-rate` or a longer `--body-timeout`"
            }
            "payload_too_large" => {
                "the server refuses uploads above its limit: restart it with a larger \
                 `flint serve --max-upload-bytes N`"
            }
            _ => return None,
        })
    }
}

/// Why a request to the server failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// `--server` (or `FLINT_SERVER`) is not a usable URL.
    #[error("invalid server URL {url:?}: {reason}")]
    InvalidServer {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No connection could be made to the server.
    #[error(
        "cannot reach Flint at {server}: is `flint serve` running? \
         Point the CLI elsewhere with --server or FLINT_SERVER ({cause})"
    )]
    Unreachable {
        /// The server URL.
        server: String,
        /// The lowest-level cause, such as `Connection refused (os error 111)`.
        cause: String,
    },
    /// The server answered with a Flint JSON error.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The server answered with an error status and a body that is not a Flint error (a
    /// proxy in between, or a server too old for this request).
    #[error("{request} returned {status}{body}")]
    Status {
        /// The request, as `METHOD URL`.
        request: String,
        /// The response status.
        status: StatusCode,
        /// The start of the body, prefixed with `: `, or empty.
        body: String,
    },
    /// A function answered an invocation with a status outside 2xx.
    #[error("function returned {}", function_failure(*status, api.as_ref()))]
    Function {
        /// The response status.
        status: StatusCode,
        /// The Flint error in the body, when the error came from Flint (a timeout, an
        /// unknown function) rather than from the function's own code.
        api: Option<ApiError>,
    },
    /// The request failed after the connection was made.
    #[error("{request} failed")]
    Request {
        /// The request, as `METHOD URL`.
        request: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// `--cacert` names a file without a PEM certificate.
    #[error("cannot read a PEM certificate from {0}: give --cacert a CA certificate file")]
    CaCert(std::path::PathBuf),
    /// The HTTP client or a request could not be built.
    #[error("cannot build the HTTP request")]
    Build(#[source] reqwest::Error),
    /// A success response whose body is not the JSON this CLI expects.
    #[error("unexpected response from {url}")]
    Decode {
        /// The request URL.
        url: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
}

impl ClientError {
    /// The Flint API error behind this one, if any.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Self::Api(api) => Some(api),
            Self::Function { api, .. } => api.as_ref(),
            _ => None,
        }
    }
}

/// The hint for the first [`ApiError`] in an error's chain, if its code has one.
pub fn hint(err: &anyhow::Error) -> Option<&'static str> {
    err.chain().find_map(|cause| {
        cause
            .downcast_ref::<ApiError>()
            .or_else(|| cause.downcast_ref::<ClientError>()?.api())
            .and_then(ApiError::hint)
    })
}

/// A client for one Flint server.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    server: String,
    /// Sent as `Authorization: Bearer TOKEN`.
    token: Option<String>,
}

/// How the client authenticates and whom it trusts.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// The bearer token (`--token`, `FLINT_TOKEN`).
    pub token: Option<String>,
    /// A PEM file of CA certificates to trust for https, besides the
    /// system's web roots (`--cacert`).
    pub cacert: Option<std::path::PathBuf>,
}

impl Client {
    /// A client for the server at `server`, such as `http://127.0.0.1:8080`, without a
    /// token.
    pub fn new(server: &str) -> Result<Self, ClientError> {
        Self::with_credentials(server, &Credentials::default())
    }

    /// A client for the server at `server` (`http://` or `https://`). A URL without a
    /// scheme (`localhost:8080`) means `http://`. A path prefix is kept, for a server
    /// behind a reverse proxy.
    pub fn with_credentials(server: &str, credentials: &Credentials) -> Result<Self, ClientError> {
        let invalid = |reason| ClientError::InvalidServer {
            url: server.to_owned(),
            reason,
        };
        let with_scheme = if server.contains("://") {
            server.to_owned()
        } else {
            format!("http://{server}")
        };
        let base = Url::parse(&with_scheme).map_err(|_| invalid("expected http://HOST:PORT"))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(invalid("the scheme must be http:// or https://"));
        }
        if base.cannot_be_a_base() || base.host().is_none() {
            return Err(invalid("expected http://HOST:PORT"));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(invalid("a server URL has no query or fragment"));
        }
        let mut http = reqwest::Client::builder()
            .connect_timeout(DEFAULT_CONNECT_TIMEOUT)
            .user_agent(concat!("flint-cli/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &credentials.cacert {
            let certificates = std::fs::read(path)
                .ok()
                .and_then(|pem| reqwest::Certificate::from_pem_bundle(&pem).ok())
                .filter(|certificates| !certificates.is_empty())
                .ok_or_else(|| ClientError::CaCert(path.clone()))?;
            for certificate in certificates {
                http = http.add_root_certificate(certificate);
            }
        }
        Ok(Self {
            http: http.build().map_err(ClientError::Build)?,
            server: with_scheme.trim_end_matches('/').to_owned(),
            base,
            token: credentials.token.clone().filter(|t| !t.trim().is_empty()),
        })
    }

    /// The server URL as the user gave it, without a trailing slash: for messages.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The URL of `segments` below the server's base, each segment percent-encoded (a
    /// function name can never break out of its path segment).
    pub fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        // `new` rejected URLs that cannot be a base, so the segments are always there.
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// The URL of a function's admin resource: `/v1/functions/NAME/REST...`.
    pub fn function_url(&self, name: &str, rest: &[&str]) -> Url {
        let mut segments = vec!["v1", "functions", name];
        segments.extend_from_slice(rest);
        self.url(&segments)
    }

    /// A request builder on this client's connection pool, with the token.
    pub fn request(&self, method: Method, url: Url) -> RequestBuilder {
        let builder = self.http.request(method, url);
        if let Some(token) = &self.token {
            return builder.bearer_auth(token.trim());
        }
        // Without tokens, the release history records the user as the actor.
        match std::env::var("USER") {
            Ok(user) if !user.is_empty() => builder.header("x-flint-actor", user),
            _ => builder,
        }
    }

    /// Sends a request and returns the response whatever its status; fails only when no
    /// response arrives.
    pub async fn send(&self, request: RequestBuilder) -> Result<Response, ClientError> {
        self.dispatch(request.build().map_err(ClientError::Build)?)
            .await
    }

    async fn dispatch(&self, request: Request) -> Result<Response, ClientError> {
        let (method, url) = (request.method().clone(), request.url().clone());
        tracing::debug!(%method, %url, "request");
        match self.http.execute(request).await {
            Ok(response) => {
                tracing::debug!(%method, %url, status = %response.status(), "response");
                Ok(response)
            }
            Err(source) if source.is_connect() => Err(ClientError::Unreachable {
                server: self.server.clone(),
                cause: root_cause(&source),
            }),
            Err(source) => Err(ClientError::Request {
                request: format!("{method} {url}"),
                source,
            }),
        }
    }

    /// Sends an admin API request and returns its JSON body (`Value::Null` for an empty
    /// body, as a 204 has). An error status becomes [`ClientError::Api`] when the body is a
    /// Flint error, [`ClientError::Status`] otherwise.
    pub async fn call(&self, request: RequestBuilder) -> Result<Value, ClientError> {
        let request = request.build().map_err(ClientError::Build)?;
        let (method, url) = (request.method().clone(), request.url().clone());
        let response = self.dispatch(request).await?;
        let status = response.status();
        let body = match response.bytes().await {
            Ok(body) => body,
            Err(source) => {
                return Err(ClientError::Request {
                    request: format!("{method} {url}"),
                    source,
                });
            }
        };
        if !status.is_success() {
            return Err(match ApiError::from_body(status, &body) {
                Some(api) => api.into(),
                None => ClientError::Status {
                    request: format!("{method} {url}"),
                    status,
                    body: body_snippet(&body),
                },
            });
        }
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&body).map_err(|source| ClientError::Decode {
            url: url.to_string(),
            source,
        })
    }

    /// `GET` an admin API URL.
    pub async fn get(&self, url: Url) -> Result<Value, ClientError> {
        self.call(self.request(Method::GET, url)).await
    }

    /// `PATCH` an admin API URL with a JSON body.
    pub async fn patch(&self, url: Url, body: &Value) -> Result<Value, ClientError> {
        self.call(self.request(Method::PATCH, url).json(body)).await
    }

    /// `POST` a JSON body to an admin API URL.
    pub async fn post(&self, url: Url, body: &Value) -> Result<Value, ClientError> {
        self.call(self.request(Method::POST, url).json(body)).await
    }

    /// `PUT` raw bytes with the given content type.
    pub async fn put_bytes(
        &self,
        url: Url,
        bytes: Vec<u8>,
        content_type: &'static str,
    ) -> Result<Value, ClientError> {
        let request = self
            .request(Method::PUT, url)
            .header(CONTENT_TYPE, HeaderValue::from_static(content_type))
            .body(bytes);
        self.call(request).await
    }

    /// `DELETE` an admin API URL.
    pub async fn delete(&self, url: Url) -> Result<Value, ClientError> {
        self.call(self.request(Method::DELETE, url)).await
    }
}

/// The innermost cause of an error, the one that names the real problem (`Connection
/// refused`, `failed to lookup address`), rather than reqwest's outer wrappers.
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = err;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

/// `504 timeout: <message>` for a Flint error, `500 Internal Server Error` otherwise.
fn function_failure(status: StatusCode, api: Option<&ApiError>) -> String {
    match api {
        Some(api) => format!("{} {}: {}", status.as_u16(), api.code, api.message),
        None => status.to_string(),
    }
}

/// `: <start of body>` for an error message, or nothing for an empty body.
fn body_snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return String::new();
    }
    match text.char_indices().nth(ERROR_BODY_SNIPPET) {
        Some((end, _)) => format!(": {}…", &text[..end]),
        None => format!(": {text}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_flint_error_bodies() {
        let body = br#"{"error":{"code":"function_not_found","message":"no function named nope"}}"#;
        let err = ApiError::from_body(StatusCode::NOT_FOUND, body).unwrap();
        assert_eq!(err.status, 404);
        assert_eq!(err.code, "function_not_found");
        assert_eq!(
            err.to_string(),
            "no function named nope (function_not_found)"
        );
        assert_eq!(err.hint(), Some("run `flint ls` to see deployed functions"));

        assert_eq!(
            ApiError::from_body(StatusCode::NOT_FOUND, b"Not Found"),
            None
        );
        assert_eq!(
            ApiError::from_body(StatusCode::OK, br#"{"error":"x"}"#),
            None
        );
    }

    #[test]
    fn hints_are_found_through_context() {
        let api = ApiError {
            status: 400,
            code: "invalid_component".to_owned(),
            message: "not a component".to_owned(),
        };
        let err = anyhow::Error::from(ClientError::from(api)).context("deploying hello");
        assert!(hint(&err).unwrap().contains("wasm32-wasip2"));
        assert_eq!(hint(&anyhow::anyhow!("other")), None);
    }

    #[test]
    fn function_failures() {
        let status = StatusCode::GATEWAY_TIMEOUT;
        let body = br#"{"error":{"code":"timeout","message":"exceeded its 100 ms limit"}}"#;
        let err = ClientError::Function {
            status,
            api: ApiError::from_body(status, body),
        };
        assert_eq!(
            err.to_string(),
            "function returned 504 timeout: exceeded its 100 ms limit"
        );
        let err = ClientError::Function {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            api: None,
        };
        assert_eq!(
            err.to_string(),
            "function returned 500 Internal Server Error"
        );
    }

    #[test]
    fn server_urls() {
        let client = Client::new("http://127.0.0.1:8080/").unwrap();
        assert_eq!(client.server(), "http://127.0.0.1:8080");
        assert_eq!(
            client.function_url("hello", &["config"]).as_str(),
            "http://127.0.0.1:8080/v1/functions/hello/config"
        );

        let client = Client::new("localhost:9000").unwrap();
        assert_eq!(client.server(), "http://localhost:9000");

        let client = Client::new("http://example.com/flint").unwrap();
        assert_eq!(
            client.url(&["fn", "hello@3"]).as_str(),
            "http://example.com/flint/fn/hello@3"
        );
        // A name cannot escape its path segment.
        assert_eq!(
            client.function_url("a/../b", &[]).as_str(),
            "http://example.com/flint/v1/functions/a%2F..%2Fb"
        );

        assert!(Client::new("https://example.com").is_ok());
        for bad in ["ftp://example.com", "http://", "http://h?x=1"] {
            assert!(
                matches!(Client::new(bad), Err(ClientError::InvalidServer { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn error_body_snippets() {
        assert_eq!(body_snippet(b""), "");
        assert_eq!(body_snippet(b"  Not Found\n"), ": Not Found");
        let long = "x".repeat(ERROR_BODY_SNIPPET + 10);
        assert_eq!(
            body_snippet(long.as_bytes()),
            format!(": {}…", &long[..ERROR_BODY_SNIPPET])
        );
    }
}
