//! The release API: aliases, blue-green release, rollback, canary, shadow
//! and history, under `/v1/functions/{name}/...`.

use super::admin::read_json_body;
use super::{ApiError, Body, RequestBody, json};
use crate::functions::FunctionEntry;
use crate::releases::canary::CanarySpec;
use crate::releases::shadow::ShadowSpec;
use crate::releases::{
    AliasTarget, HistoryEntry, LATEST, Route, Rule, Sticky, ops, validate_alias_name,
};
use crate::state::AppState;
use http::{Request, Response, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::sync::Arc;

fn entry(state: &AppState, name: &str) -> Result<Arc<FunctionEntry>, ApiError> {
    state
        .table
        .get(name)
        .ok_or_else(|| ApiError::function_not_found(name))
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_release", message)
}

fn conflict(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "release_conflict", message)
}

/// Alias changes wait until the function's canary ends: it owns the alias.
fn no_canary(state: &AppState, name: &str) -> Result<(), ApiError> {
    if state.canary_running(name) {
        return Err(conflict(format!(
            "a canary of `{name}` is running; wait for it or stop it with `flint canary abort {name}`"
        )));
    }
    Ok(())
}

/// Who asked: `x-flint-actor` (the CLI sends the user name), else `api`.
pub(super) fn actor<B>(request: &Request<B>) -> String {
    request
        .headers()
        .get("x-flint-actor")
        .and_then(|v| v.to_str().ok())
        .map(|a| a.chars().take(100).collect())
        .unwrap_or_else(|| "api".into())
}

async fn body<T: DeserializeOwned>(request: Request<impl RequestBody>) -> Result<T, ApiError> {
    let bytes = read_json_body(request).await?;
    serde_json::from_slice(&bytes).map_err(|e| invalid(format!("invalid JSON: {e}")))
}

fn no_content() -> Response<Body> {
    let mut response = Response::new(super::full(bytes::Bytes::new()));
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

fn aliases_json(entry: &FunctionEntry) -> Value {
    let releases = entry.releases.read().unwrap();
    let mut aliases = serde_json::Map::new();
    if let Some(latest) = entry.latest() {
        aliases.insert(
            LATEST.into(),
            json!(AliasTarget::version(latest.record.version)),
        );
    }
    for (name, target) in &releases.aliases {
        aliases.insert(name.clone(), json!(target));
    }
    json!({ "default": releases.default_alias(), "aliases": aliases })
}

fn check_target(entry: &FunctionEntry, target: &AliasTarget) -> Result<(), ApiError> {
    target
        .validate(|v| entry.version(v).is_some())
        .map_err(invalid)
}

pub(super) fn list_aliases(state: &AppState, name: &str) -> Result<Response<Body>, ApiError> {
    Ok(json(StatusCode::OK, &aliases_json(&*entry(state, name)?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AliasRequest {
    version: Option<u32>,
    routes: Option<Vec<Route>>,
    sticky: Option<Sticky>,
    #[serde(default)]
    rules: Vec<Rule>,
    /// Make this alias the one `/fn/{name}/` follows.
    #[serde(default)]
    default: bool,
    reason: Option<String>,
}

pub(super) async fn put_alias(
    state: &Arc<AppState>,
    name: &str,
    alias: &str,
    request: Request<impl RequestBody>,
) -> Result<Response<Body>, ApiError> {
    let e = entry(state, name)?;
    validate_alias_name(alias).map_err(invalid)?;
    let who = actor(&request);
    let req: AliasRequest = body(request).await?;
    let routes = match (req.version, req.routes) {
        (Some(v), None) => vec![Route {
            version: v,
            weight: 100,
        }],
        (None, Some(routes)) => routes,
        _ => return Err(invalid("give either `version` or `routes`")),
    };
    let target = AliasTarget {
        routes,
        sticky: req.sticky,
        rules: req.rules,
    };
    check_target(&e, &target)?;
    let _lock = state.deploy_lock.lock().await;
    no_canary(state, name)?;
    let mut log = HistoryEntry::now(&who, "alias_set");
    log.reason = req.reason;
    ops::set_alias(state, &e, alias, Some(target), log)?;
    if req.default {
        ops::set_default(state, &e, Some(alias))?;
    }
    Ok(json(StatusCode::OK, &aliases_json(&e)))
}

pub(super) async fn delete_alias<B>(
    state: &Arc<AppState>,
    name: &str,
    alias: &str,
    request: &Request<B>,
) -> Result<Response<Body>, ApiError> {
    let e = entry(state, name)?;
    let _lock = state.deploy_lock.lock().await;
    if !e.releases.read().unwrap().aliases.contains_key(alias) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "alias_not_found",
            format!("no alias `{alias}`"),
        ));
    }
    ops::set_alias(
        state,
        &e,
        alias,
        None,
        HistoryEntry::now(&actor(request), "alias_removed"),
    )?;
    Ok(no_content())
}

fn default_alias_name() -> String {
    "prod".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReleaseRequest {
    to: u32,
    #[serde(default = "default_alias_name")]
    alias: String,
    reason: Option<String>,
}

/// Blue-green: the alias switches atomically to one version. An alias that
/// did not exist is created; if plain calls still follow `latest`, they
/// follow this alias from now on.
pub(super) async fn release(
    state: &Arc<AppState>,
    name: &str,
    request: Request<impl RequestBody>,
) -> Result<Response<Body>, ApiError> {
    let e = entry(state, name)?;
    let who = actor(&request);
    let req: ReleaseRequest = body(request).await?;
    validate_alias_name(&req.alias).map_err(invalid)?;
    let target = AliasTarget::version(req.to);
    check_target(&e, &target)?;
    let _lock = state.deploy_lock.lock().await;
    no_canary(state, name)?;
    let mut log = HistoryEntry::now(&who, "release");
    log.reason = req.reason;
    ops::set_alias(state, &e, &req.alias, Some(target), log)?;
    if e.releases.read().unwrap().default_alias.is_none() {
        ops::set_default(state, &e, Some(&req.alias))?;
    }
    Ok(json(StatusCode::OK, &aliases_json(&e)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RollbackRequest {
    #[serde(default = "default_alias_name")]
    alias: String,
    reason: Option<String>,
}

/// Returns the alias to the target it had before its last change.
pub(super) async fn rollback(
    state: &Arc<AppState>,
    name: &str,
    request: Request<impl RequestBody>,
) -> Result<Response<Body>, ApiError> {
    let e = entry(state, name)?;
    let who = actor(&request);
    let req: RollbackRequest = body(request).await?;
    let _lock = state.deploy_lock.lock().await;
    no_canary(state, name)?;
    let current = e.releases.read().unwrap().aliases.get(&req.alias).cloned();
    let previous = state
        .registry
        .history(name)?
        .into_iter()
        .rev()
        .find(|h| h.alias.as_deref() == Some(req.alias.as_str()) && h.to == current)
        .and_then(|h| h.from)
        .ok_or_else(|| {
            conflict(format!(
                "alias `{}` has no previous target to roll back to",
                req.alias
            ))
        })?;
    check_target(&e, &previous)?;
    let mut log = HistoryEntry::now(&who, "rollback");
    log.reason = req.reason;
    ops::set_alias(state, &e, &req.alias, Some(previous), log)?;
    Ok(json(StatusCode::OK, &aliases_json(&e)))
}

pub(super) fn history(state: &AppState, name: &str) -> Result<Response<Body>, ApiError> {
    entry(state, name)?;
    let history: Vec<Value> = state
        .registry
        .history(name)?
        .into_iter()
        .map(|h| {
            let mut v = json!(h);
            let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(h.at_ms);
            v["at"] = json!(humantime::format_rfc3339_millis(at).to_string());
            v
        })
        .collect();
    Ok(json(StatusCode::OK, &json!({ "history": history })))
}

pub(super) async fn start_canary(
    state: &Arc<AppState>,
    name: &str,
    request: Request<impl RequestBody>,
) -> Result<Response<Body>, ApiError> {
    let e = entry(state, name)?;
    let who = actor(&request);
    let spec: CanarySpec = body(request).await?;
    spec.validate().map_err(invalid)?;
    validate_alias_name(&spec.alias).map_err(invalid)?;
    if e.version(spec.to).is_none() {
        return Err(invalid(format!("version {} does not exist", spec.to)));
    }
    let _lock = state.deploy_lock.lock().await;
    if state.canary_running(name) {
        return Err(conflict(format!("a canary of `{name}` is already running")));
    }
    let stable = e.releases.read().unwrap().aliases.get(&spec.alias).cloned().ok_or_else(|| {
        conflict(format!(
            "alias `{}` does not exist; release a stable version first (`flint release {name} --to N --alias {}`)",
            spec.alias, spec.alias
        ))
    })?;
    if stable.versions().any(|v| v == spec.to) {
        return Err(conflict(format!(
            "alias `{}` already sends traffic to version {}",
            spec.alias, spec.to
        )));
    }
    let state_record = ops::start_canary(state, &e, spec, stable, &who)?;
    Ok(json(StatusCode::ACCEPTED, &json!(state_record)))
}

pub(super) fn canary_status(state: &AppState, name: &str) -> Result<Response<Body>, ApiError> {
    entry(state, name)?;
    let canary = state
        .registry
        .load_release_state()?
        .into_iter()
        .find(|(f, kind, _, _)| f == name && kind == "canary")
        .map(|(_, _, _, v)| v)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "canary_not_found",
                format!("`{name}` has had no canary"),
            )
        })?;
    Ok(json(StatusCode::OK, &canary))
}

pub(super) fn abort_canary(state: &AppState, name: &str) -> Result<Response<Body>, ApiError> {
    entry(state, name)?;
    if !state.canary_running(name) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "canary_not_found",
            format!("no canary of `{name}` is running"),
        ));
    }
    state.canary_abort(name).notify_one();
    Ok(no_content())
}

pub(super) async fn put_shadow(
    state: &Arc<AppState>,
    name: &str,
    request: Request<impl RequestBody>,
) -> Result<Response<Body>, ApiError> {
    let e = entry(state, name)?;
    let who = actor(&request);
    let spec: ShadowSpec = body(request).await?;
    spec.validate().map_err(invalid)?;
    if e.version(spec.candidate).is_none() {
        return Err(invalid(format!(
            "version {} does not exist",
            spec.candidate
        )));
    }
    let _lock = state.deploy_lock.lock().await;
    let mut log = HistoryEntry::now(&who, "shadow_started");
    log.reason = Some(format!(
        "candidate version {} at {}%",
        spec.candidate, spec.sample_percent
    ));
    ops::set_shadow(state, &e, Some(spec), log)?;
    shadow_report(state, name)
}

pub(super) fn shadow_report(state: &AppState, name: &str) -> Result<Response<Body>, ApiError> {
    let e = entry(state, name)?;
    let spec = e.releases.read().unwrap().shadow.clone();
    let mut report = e.shadow.report();
    report["shadow"] = json!(spec);
    Ok(json(StatusCode::OK, &report))
}

pub(super) async fn delete_shadow<B>(
    state: &Arc<AppState>,
    name: &str,
    request: &Request<B>,
) -> Result<Response<Body>, ApiError> {
    let e = entry(state, name)?;
    let _lock = state.deploy_lock.lock().await;
    ops::set_shadow(
        state,
        &e,
        None,
        HistoryEntry::now(&actor(request), "shadow_stopped"),
    )?;
    Ok(no_content())
}
