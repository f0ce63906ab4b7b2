//! The gate in front of every request: which listener may serve it, the
//! browser defences (DNS rebinding, cross-origin writes) and the token
//! check.
//!
//! What a request needs is decided from its method and path alone
//! ([`need`]), before any handler runs, by rules over the path's shape
//! rather than a table of routes: a route added later falls under the rule
//! of its prefix (and, under `/v1`, under `admin` when no rule matches).

use super::ApiError;
use crate::core::{Caller, Control, Need};
use flint_spec::{HostPattern, Scope};
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST, ORIGIN, TRANSFER_ENCODING};
use http::{HeaderMap, Method, Request};

/// What a listener serves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Serves {
    /// Everything: the default, one listener.
    #[default]
    All,
    /// Invocations and health only: the public listener when the admin
    /// API has a listener of its own.
    Invocations,
    /// The admin API, `/metrics` and health only.
    Admin,
}

/// The listener a request arrived on, as the accept loop records it in the
/// request's extensions. A request without one (in process, in tests) is
/// taken as from a plain loopback listener that serves everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listener {
    /// What it serves.
    pub serves: Serves,
    /// Whether it is bound to a loopback address (then only local `Host`
    /// names are served).
    pub loopback: bool,
    /// Whether it speaks TLS.
    pub tls: bool,
}

impl Default for Listener {
    fn default() -> Self {
        Self {
            serves: Serves::All,
            loopback: true,
            tls: false,
        }
    }
}

/// Where a path belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Surface {
    /// `/healthz`, `/readyz`: every listener.
    Health,
    /// `/v1/...` and `/metrics`.
    Admin,
    /// Everything else: invocations and custom routes.
    Invocations,
}

pub(super) fn surface(path: &str) -> Surface {
    match path.trim_end_matches('/') {
        "/healthz" | "/readyz" => Surface::Health,
        "/metrics" => Surface::Admin,
        _ if super::is_admin(path) => Surface::Admin,
        _ => Surface::Invocations,
    }
}

/// What the request needs of its caller's token, by method and path.
pub(super) fn need<'a>(method: &Method, segments: &[&'a str], public_metrics: bool) -> Need<'a> {
    let read = matches!(*method, Method::GET | Method::HEAD);
    match segments {
        ["healthz" | "readyz"] | ["v1", "openapi.json"] => Need::Nothing,
        ["metrics"] if public_metrics => Need::Nothing,
        ["metrics"] => Need::Scope(Scope::Read),
        ["v1", "tokens", ..] | ["v1", "backup" | "doctor"] => Need::Scope(Scope::Admin),
        ["v1", "functions", name, "bench", ..] => Need::Function(Scope::Admin, name),
        ["v1", "functions", name, ..] if read => Need::Function(Scope::Read, name),
        ["v1", "functions", name, ..] => Need::Function(Scope::Deploy, name),
        ["v1", "plan" | "apply" | "components"] if !read => Need::Scope(Scope::Deploy),
        ["v1", ..] if read => Need::Scope(Scope::Read),
        _ => Need::Scope(Scope::Admin),
    }
}

/// Hosts a loopback listener always serves.
const LOCAL_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// The request's host as sent: the `Host` header (empty when it is not
/// text), else the URI's authority (HTTP/2); `None` when it has neither.
fn host_text<B>(request: &Request<B>) -> Option<&str> {
    match request.headers().get(HOST) {
        Some(value) => Some(value.to_str().unwrap_or("")),
        None => request.uri().authority().map(|a| a.as_str()),
    }
}

/// Splits `host[:port]` or `[v6][:port]` into the bare host and the port,
/// without allocating: this runs on every request of a loopback listener.
fn split_host(text: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = match text.strip_prefix('[') {
        Some(rest) => {
            let (host, after) = rest.split_once(']')?;
            (host, after)
        }
        None => match text.rsplit_once(':') {
            Some((host, _)) => (host, &text[host.len()..]),
            None => (text, ""),
        },
    };
    let port = match port.strip_prefix(':') {
        Some(port) => Some(port.parse().ok()?),
        None if port.is_empty() => None,
        None => return None,
    };
    (!host.is_empty()).then_some((host, port))
}

/// On a loopback listener, refuses a `Host` that is not a local name or
/// one of `allowed`: a page whose name was made to resolve to 127.0.0.1
/// (DNS rebinding) must not reach the server.
pub(super) fn check_host<B>(request: &Request<B>, allowed: &[HostPattern]) -> Result<(), ApiError> {
    let Some(text) = host_text(request) else {
        return Ok(());
    };
    let local = split_host(text).is_some_and(|(host, port)| {
        LOCAL_HOSTS.iter().any(|h| h.eq_ignore_ascii_case(host))
            || (!allowed.is_empty() && {
                let host = host.to_ascii_lowercase();
                allowed.iter().any(|p| p.matches(&host, port.unwrap_or(80)))
            })
    });
    if local {
        return Ok(());
    }
    Err(ApiError::new(
        "forbidden_host",
        format!(
            "this server listens on a loopback address and serves only localhost, 127.0.0.1 and [::1], not {text:?}; add the name with `flint serve --allowed-host NAME`"
        ),
    ))
}

/// Refuses what a web page in an operator's browser could send to the
/// admin API: a foreign `Origin`, and writes whose content type a page may
/// send without asking first (a CORS "simple request").
pub(super) fn check_browser<B>(request: &Request<B>, tls: bool) -> Result<(), ApiError> {
    if let Some(origin) = request.headers().get(ORIGIN) {
        let own = host_text(request).map(|host| {
            let scheme = if tls { "https" } else { "http" };
            format!("{scheme}://{}", host.to_ascii_lowercase())
        });
        let origin = origin.to_str().unwrap_or("").to_ascii_lowercase();
        if own.as_deref() != Some(origin.as_str()) {
            return Err(ApiError::new(
                "forbidden_origin",
                format!(
                    "requests from web pages of another origin ({origin:?}) may not use the admin API"
                ),
            ));
        }
    }
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        return Ok(());
    }
    let path = request.uri().path().trim_end_matches('/');
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let upload = *request.method() == Method::PUT
        && matches!(
            segments.as_slice(),
            ["v1", "functions", _] | ["v1", "components"]
        );
    let accepted: &[&str] = if upload {
        &["application/wasm", "application/octet-stream"]
    } else {
        &["application/json"]
    };
    let media = content_type(request.headers());
    match media {
        None if !has_body(request.headers()) => Ok(()),
        Some(media) if accepted.contains(&media.as_str()) => Ok(()),
        _ => Err(ApiError::new(
            "unsupported_media_type",
            format!(
                "{} {path} takes a body of type {}, not {}",
                request.method(),
                accepted.join(" or "),
                media.as_deref().unwrap_or("(none)")
            ),
        )),
    }
}

/// The media type of the body, lowercase, without parameters.
fn content_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(CONTENT_TYPE)?.to_str().unwrap_or("?");
    let media = value.split(';').next().unwrap_or("").trim();
    Some(media.to_ascii_lowercase())
}

fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(TRANSFER_ENCODING)
        || headers
            .get(CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0")
}

/// The bearer token of `Authorization: Bearer TOKEN`, if any.
pub(super) fn bearer<B>(request: &Request<B>) -> Option<&str> {
    let value = request
        .headers()
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Checks an invocation of `function`: only a function whose
/// `invoke_auth` is `token` needs one, and then one that covers it.
pub(super) fn check_invoke<B>(
    control: &Control,
    request: &Request<B>,
    function: &str,
) -> Result<(), ApiError> {
    if !control.invoke_needs_token(function) {
        return Ok(());
    }
    match control.authenticate(bearer(request))? {
        Caller::Open => Err(crate::core::CoreError::Unauthorized(format!(
            "function `{function}` needs a token: send `Authorization: Bearer TOKEN` with a token that covers it"
        ))
        .into()),
        caller => Ok(caller.allow(Need::Function(Scope::Invoke, function))?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: Method, path: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut builder = Request::builder().method(method).uri(path);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn needs_follow_the_path() {
        let need = |method: Method, path: &str| {
            let segments: Vec<&str> = path.split('/').skip(1).collect();
            format!("{:?}", need(&method, &segments, false))
        };
        assert_eq!(need(Method::GET, "/healthz"), "Nothing");
        assert_eq!(need(Method::GET, "/metrics"), "Scope(Read)");
        assert_eq!(need(Method::GET, "/v1/tokens"), "Scope(Admin)");
        assert_eq!(
            need(Method::GET, "/v1/functions/a"),
            "Function(Read, \"a\")"
        );
        assert_eq!(
            need(Method::POST, "/v1/functions/a/release"),
            "Function(Deploy, \"a\")"
        );
        assert_eq!(need(Method::POST, "/v1/apply"), "Scope(Deploy)");
        assert_eq!(need(Method::GET, "/v1/routes"), "Scope(Read)");
        assert_eq!(need(Method::POST, "/v1/something-new"), "Scope(Admin)");
    }

    #[test]
    fn host_headers_split() {
        assert_eq!(
            split_host("localhost:8080"),
            Some(("localhost", Some(8080)))
        );
        assert_eq!(split_host("[::1]:9"), Some(("::1", Some(9))));
        assert_eq!(split_host("[::1]"), Some(("::1", None)));
        assert_eq!(split_host("example.com"), Some(("example.com", None)));
        for bad in ["", ":80", "a:b", "[::1", "[::1]x", "a:99999"] {
            assert_eq!(split_host(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn hosts_on_loopback() {
        let allowed = [HostPattern::parse("dev.test").unwrap()];
        for host in [
            "localhost:8080",
            "127.0.0.1",
            "[::1]:9",
            "LOCALHOST",
            "dev.test:1",
        ] {
            let r = request(Method::GET, "/v1/functions", &[("host", host)]);
            assert!(check_host(&r, &allowed).is_ok(), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:8080",
            "127.0.0.1.evil.example",
            "x y",
        ] {
            let r = request(Method::GET, "/v1/functions", &[("host", host)]);
            assert_eq!(
                check_host(&r, &allowed).unwrap_err().code,
                "forbidden_host",
                "{host}"
            );
        }
    }

    #[test]
    fn browser_writes() {
        let ok = |r: Request<()>| check_browser(&r, false).map_err(|e| e.code);
        let json = ("content-type", "application/json; charset=utf-8");
        let host = ("host", "127.0.0.1:8080");
        assert_eq!(
            ok(request(
                Method::POST,
                "/v1/apply",
                &[host, json, ("content-length", "2")]
            )),
            Ok(())
        );
        assert_eq!(
            ok(request(
                Method::POST,
                "/v1/apply",
                &[
                    host,
                    ("content-type", "text/plain"),
                    ("content-length", "2")
                ]
            )),
            Err("unsupported_media_type")
        );
        assert_eq!(
            ok(request(
                Method::POST,
                "/v1/apply",
                &[host, ("content-length", "2")]
            )),
            Err("unsupported_media_type")
        );
        assert_eq!(
            ok(request(Method::POST, "/v1/functions/a/rollback", &[host])),
            Ok(())
        );
        assert_eq!(
            ok(request(
                Method::PUT,
                "/v1/functions/a",
                &[host, ("content-type", "application/wasm")]
            )),
            Ok(())
        );
        assert_eq!(
            ok(request(Method::PUT, "/v1/functions/a", &[host, json])),
            Err("unsupported_media_type")
        );
        assert_eq!(
            ok(request(
                Method::GET,
                "/v1/functions",
                &[host, ("origin", "http://127.0.0.1:8080")]
            )),
            Ok(())
        );
        assert_eq!(
            ok(request(
                Method::GET,
                "/v1/functions",
                &[host, ("origin", "http://evil.example")]
            )),
            Err("forbidden_origin")
        );
        assert_eq!(
            ok(request(
                Method::POST,
                "/v1/functions/a/rollback",
                &[host, ("origin", "null")]
            )),
            Err("forbidden_origin")
        );
    }

    #[test]
    fn bearer_tokens() {
        let r = request(Method::GET, "/", &[("authorization", "Bearer flint_abc")]);
        assert_eq!(bearer(&r), Some("flint_abc"));
        let r = request(Method::GET, "/", &[("authorization", "Basic eDp5")]);
        assert_eq!(bearer(&r), None);
        let r = request(Method::GET, "/", &[("authorization", "bearer  ")]);
        assert_eq!(bearer(&r), None);
    }
}
