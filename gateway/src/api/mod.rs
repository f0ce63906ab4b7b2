//! The HTTP adapter: the invoke path (`/fn/...`, custom routes), the admin
//! API (`/v1/...`), health and metrics, over the core.
//!
//! Handlers are thin: they parse, call one [`Control`] operation or the
//! [`Invoker`], and answer JSON; core errors become statuses in one place
//! ([`ApiError`]'s `From<CoreError>`). [`App::handle`] is the whole
//! application as a function of a request, so tests and benchmarks call it
//! without a socket and any accept loop can serve it.

mod access;
mod admin;
mod bench;
mod desired;
mod error;
mod invoke;
mod openapi;
mod releases;
mod schedules;
mod tokens;
mod triggers;

pub use access::{Listener, Serves};
pub use error::ApiError;

use crate::core::{BrokerState, Caller, Control, Invoker, Need, NodeState};
use crate::limits::Limit;
use crate::metrics::Exposition;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use serde::Serialize;
use std::sync::Arc;

/// Errors of response bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The body of every response.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// A request body the API accepts (hyper's, or any other in tests).
pub trait RequestBody:
    http_body::Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static
{
}

impl<T> RequestBody for T where
    T: http_body::Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static
{
}

/// Whether `path` is the admin API's (`/v1/...`): calls that wait on the
/// store and on compiles, unlike invocations.
pub fn is_admin(path: &str) -> bool {
    path.starts_with("/v1/")
}

/// A complete body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A JSON response of any serialisable value.
pub(crate) fn json(status: StatusCode, value: &impl Serialize) -> Response<Body> {
    let body = serde_json::to_vec(value).expect("API values serialise");
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// 204 with no body.
pub(crate) fn no_content() -> Response<Body> {
    let mut response = Response::new(full(Bytes::new()));
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

/// Reads an upload's `?kind=http|http-p3|wagi`: the kind the uploader expects
/// (`None`: take what the bytes are).
pub(super) fn kind_query(
    query: Option<&str>,
) -> Result<Option<flint_spec::FunctionKind>, ApiError> {
    let mut kind = None;
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        match pair.split_once('=') {
            Some(("kind", value)) => {
                kind = Some(value.parse().map_err(crate::core::CoreError::BadRequest)?);
            }
            _ => {
                return Err(crate::core::CoreError::BadRequest(format!(
                    "unknown query parameter `{pair}`; use kind=http, kind=http-p3 or kind=wagi"
                ))
                .into());
            }
        }
    }
    Ok(kind)
}

/// Reads a whole body up to `limit`, refusing a declared length over it
/// before reading.
pub(crate) async fn read_body(
    request: Request<impl RequestBody>,
    limit: Limit,
) -> Result<Bytes, ApiError> {
    limit.check_declared(request.headers())?;
    Ok(crate::limits::read_limited(request.into_body(), limit).await?)
}

/// Longest actor name kept in the history.
const MAX_ACTOR_CHARS: usize = 100;

/// The caller that the gate admitted (open, on a request it did not
/// check).
pub(crate) fn caller<B>(request: &Request<B>) -> Caller {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .unwrap_or(Caller::Open)
}

/// Who asked: the token's name; without tokens, `x-flint-actor` (the CLI
/// sends the user name), else `api`.
pub(crate) fn actor<B>(request: &Request<B>) -> String {
    if let Some(name) = caller(request).token_name() {
        return name.to_string();
    }
    request
        .headers()
        .get("x-flint-actor")
        .and_then(|v| v.to_str().ok())
        .map(|a| a.chars().take(MAX_ACTOR_CHARS).collect())
        .unwrap_or_else(|| "api".into())
}

/// The HTTP application over one core.
pub struct App {
    control: Arc<Control>,
    invoker: Invoker,
}

impl App {
    /// The application serving `control`.
    pub fn new(control: Arc<Control>) -> Arc<Self> {
        Arc::new(Self {
            invoker: control.invoker(),
            control,
        })
    }

    /// The core behind it.
    pub fn control(&self) -> &Arc<Control> {
        &self.control
    }

    /// Handles one request: the whole application.
    pub async fn handle(&self, mut request: Request<impl RequestBody>) -> Response<Body> {
        let path = request.uri().path().to_string();
        let result = match self.admit(&mut request, &path) {
            Ok(()) => {
                if !matches!(*request.method(), Method::GET | Method::HEAD)
                    && is_admin(&path)
                    && !bench::is_bench(&path)
                {
                    self.control.catch_up().await;
                }
                self.route(request, &path).await
            }
            Err(e) => Err(e),
        };
        result.unwrap_or_else(ApiError::into_response)
    }

    /// The gate: the listener, the browser defences and, on the admin
    /// API, the caller's token, which it records in the request. Nothing
    /// is read or changed before it passes.
    fn admit<B>(&self, request: &mut Request<B>, path: &str) -> Result<(), ApiError> {
        let config = self.control.config();
        let listener = request
            .extensions()
            .get::<Listener>()
            .copied()
            .unwrap_or_default();
        if listener.loopback {
            access::check_host(request, &config.allowed_hosts)?;
        }
        let surface = access::surface(path);
        let served = match (listener.serves, surface) {
            (Serves::All, _) | (_, access::Surface::Health) => true,
            (Serves::Invocations, surface) => surface == access::Surface::Invocations,
            (Serves::Admin, surface) => surface == access::Surface::Admin,
        };
        if !served {
            return Err(not_found(path));
        }
        if surface != access::Surface::Admin {
            return Ok(());
        }
        access::check_browser(request, listener.tls)?;
        let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
        let need = access::need(request.method(), &segments, config.public_metrics);
        if need == Need::Nothing {
            return Ok(());
        }
        let caller = self.control.authenticate(access::bearer(request))?;
        caller.allow(need)?;
        request.extensions_mut().insert(caller);
        Ok(())
    }

    async fn route(
        &self,
        request: Request<impl RequestBody>,
        path: &str,
    ) -> Result<Response<Body>, ApiError> {
        let control = &self.control;
        if let Some(target) = path.strip_prefix("/fn/") {
            return invoke::invoke(self, request, target).await;
        }
        if let Some(name) = path.strip_prefix("/async/") {
            let name = name.trim_end_matches('/');
            if request.method() != Method::POST {
                return Err(ApiError::new(
                    "method_not_allowed",
                    format!("use POST /async/{name} to queue an invocation"),
                ));
            }
            access::check_invoke(control, &request, name)?;
            return triggers::enqueue(control, name, request).await;
        }
        if let Some(under) = path.strip_prefix("/v1/functions/")
            && bench::is_load_path(under)
        {
            return match bench::load_path(under) {
                Some((name, version, mode, rest)) => {
                    bench::load_call(self, request, name, version, mode, rest).await
                }
                None => Err(ApiError::new(
                    "not_found",
                    format!(
                        "no route for {path}; a load run calls /v1/functions/NAME/bench/VERSION/fresh/PATH or .../reuse/PATH"
                    ),
                )),
            };
        }
        let method = request.method().clone();
        let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
        match (&method, segments.as_slice()) {
            (&Method::GET, ["healthz"]) => {
                Ok(json(StatusCode::OK, &serde_json::json!({"status": "ok"})))
            }
            (&Method::GET, ["readyz"]) => {
                let broker = control.broker_state();
                let node = control.node_state();
                // A node that lost the shared registry still serves what it
                // has: taking it out of rotation would turn a registry
                // outage into an outage of every function.
                let (status, text) = match (node, broker) {
                    (NodeState::Starting, _) => (StatusCode::SERVICE_UNAVAILABLE, "starting"),
                    (NodeState::Draining, _) => (StatusCode::SERVICE_UNAVAILABLE, "draining"),
                    (_, BrokerState::Down) => (StatusCode::SERVICE_UNAVAILABLE, "degraded"),
                    (NodeState::Degraded, _) => (StatusCode::OK, "degraded"),
                    _ => (StatusCode::OK, "ok"),
                };
                // Disabled functions are reported, not a reason to stop
                // routing here: every other function serves.
                Ok(json(
                    status,
                    &serde_json::json!({
                        "status": text,
                        "broker": broker.as_str(),
                        "node": node.as_str(),
                        "functions_disabled": control.disabled_functions(),
                    }),
                ))
            }
            (&Method::GET, ["v1", "nodes"]) => Ok(json(StatusCode::OK, &control.nodes().await)),
            (&Method::POST, ["v1", "doctor"]) => {
                admin::doctor(control, request.uri().query()).await
            }
            (&Method::GET, ["v1", "triggers"]) => triggers::list(control),
            (&Method::GET, ["v1", "routes"]) => desired::routes(control),
            (&Method::PUT, ["v1", "components"]) => {
                desired::upload_component(control, request).await
            }
            (&Method::POST, ["v1", "plan"]) => desired::plan(control, request).await,
            (&Method::POST, ["v1", "apply"]) => desired::apply(control, request).await,
            (&Method::GET, ["v1", "functions", name, "aliases"]) => {
                releases::list_aliases(control, name)
            }
            (&Method::PUT, ["v1", "functions", name, "aliases", alias]) => {
                releases::put_alias(control, name, alias, request).await
            }
            (&Method::DELETE, ["v1", "functions", name, "aliases", alias]) => {
                releases::delete_alias(control, name, alias, &request).await
            }
            (&Method::POST, ["v1", "functions", name, "release"]) => {
                releases::release(control, name, request).await
            }
            (&Method::POST, ["v1", "functions", name, "rollback"]) => {
                releases::rollback(control, name, request).await
            }
            (&Method::GET, ["v1", "functions", name, "history"]) => {
                releases::history(control, name).await
            }
            (&Method::POST, ["v1", "functions", name, "canary"]) => {
                releases::start_canary(control, name, request).await
            }
            (&Method::GET, ["v1", "functions", name, "canary"]) => {
                releases::canary_status(control, name).await
            }
            (&Method::DELETE, ["v1", "functions", name, "canary"]) => {
                control.abort_canary(name).await?;
                Ok(no_content())
            }
            (&Method::PUT, ["v1", "functions", name, "shadow"]) => {
                releases::put_shadow(control, name, request).await
            }
            (&Method::GET, ["v1", "functions", name, "shadow"]) => {
                Ok(json(StatusCode::OK, &control.shadow_report(name)?))
            }
            (&Method::DELETE, ["v1", "functions", name, "shadow"]) => {
                control.stop_shadow(name, &actor(&request)).await?;
                Ok(no_content())
            }
            (&Method::POST, ["v1", "functions", name, "bench"]) => {
                bench::run(control, name, request).await
            }
            (&Method::DELETE, ["v1", "functions", name, "bench"]) => bench::end(control, name),
            (&Method::GET, ["v1", "functions", name, "triggers"]) => {
                Ok(json(StatusCode::OK, &control.trigger(name)?))
            }
            (&Method::PUT, ["v1", "functions", name, "triggers"]) => {
                triggers::put(control, name, request).await
            }
            (&Method::DELETE, ["v1", "functions", name, "triggers"]) => {
                control.remove_trigger(name).await?;
                Ok(no_content())
            }
            (&Method::GET, ["v1", "functions", name, "schedules"]) => {
                schedules::list(control, name).await
            }
            (&Method::POST, ["v1", "functions", name, "schedules"]) => {
                schedules::add(control, name, request).await
            }
            (&Method::GET, ["v1", "functions", name, "schedules", id]) => {
                schedules::get(control, name, id).await
            }
            (&Method::DELETE, ["v1", "functions", name, "schedules", id]) => {
                control.remove_schedule(name, id).await?;
                Ok(no_content())
            }
            (&Method::GET, ["metrics"]) => {
                let format = Exposition::from_accept(
                    request
                        .headers()
                        .get(http::header::ACCEPT)
                        .and_then(|v| v.to_str().ok()),
                );
                let mut response = Response::new(full(control.encode_metrics(format)));
                response.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static(format.content_type()),
                );
                Ok(response)
            }
            (&Method::GET, ["v1", "backup"]) => admin::backup(control).await,
            (&Method::POST, ["v1", "tokens"]) => tokens::create(control, request).await,
            (&Method::GET, ["v1", "tokens"]) => Ok(json(
                StatusCode::OK,
                &serde_json::json!({ "tokens": control.tokens() }),
            )),
            (&Method::DELETE, ["v1", "tokens", name]) => {
                control.revoke_token(name).await?;
                Ok(no_content())
            }
            (&Method::GET, ["v1", "openapi.json"]) => {
                let mut response = Response::new(full(openapi::DOCUMENT.as_str()));
                response.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                Ok(response)
            }
            (&Method::GET, ["v1", "functions"]) => {
                let caller = caller(&request);
                let mut functions = control.list();
                functions.retain(|f| caller.sees(&f.name));
                Ok(json(
                    StatusCode::OK,
                    &serde_json::json!({ "functions": functions }),
                ))
            }
            (&Method::PUT, ["v1", "functions", name]) => {
                admin::deploy(control, name, request).await
            }
            (&Method::GET, ["v1", "functions", name]) => {
                Ok(json(StatusCode::OK, &control.info(name)?))
            }
            (&Method::DELETE, ["v1", "functions", name]) => {
                control.delete(name).await?;
                Ok(no_content())
            }
            (&Method::GET, ["v1", "functions", name, "config"]) => {
                Ok(json(StatusCode::OK, &control.function_config(name)?))
            }
            (&Method::PATCH, ["v1", "functions", name, "config"]) => {
                admin::patch_config(control, name, request).await
            }
            (&Method::GET, ["v1", "functions", name, "logs"]) => {
                admin::logs(control, name, request.uri().query())
            }
            (
                _,
                ["healthz" | "readyz" | "metrics"]
                | ["v1", "openapi.json"]
                | [
                    "v1",
                    "triggers" | "routes" | "components" | "plan" | "apply" | "doctor" | "backup"
                    | "tokens",
                ]
                | ["v1", "tokens", _]
                | ["v1", "functions", ..],
            ) => Err(ApiError::new(
                "method_not_allowed",
                format!("{method} is not allowed on {path}; see GET /v1/openapi.json"),
            )),
            _ => match control.route(path) {
                Some(function) => invoke::routed(self, request, &function).await,
                None => Err(not_found(path)),
            },
        }
    }
}

fn not_found(path: &str) -> ApiError {
    ApiError::new(
        "not_found",
        format!(
            "no route for {path}; invoke functions at /fn/NAME/..., manage them under /v1/functions"
        ),
    )
}
