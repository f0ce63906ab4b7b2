//! The release API under `/v1/functions/{name}/...`: aliases, blue-green
//! release, rollback, canary, shadow and history.

use super::{ApiError, Body, RequestBody, actor, json, no_content, read_body};
use crate::core::{Control, CoreError};
use flint_spec::alias::{AliasTarget, Route, Rule, Sticky};
use flint_spec::canary::CanarySpec;
use flint_spec::history::HistoryEntry;
use flint_spec::shadow::ShadowSpec;
use http::{Request, Response, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

async fn body<T: DeserializeOwned>(
    control: &Control,
    request: Request<impl RequestBody>,
) -> Result<T, ApiError> {
    let bytes = read_body(request, control.limits().json_body).await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| CoreError::InvalidRelease(format!("invalid JSON: {e}")).into())
}

fn logged(who: &str, action: &str, reason: Option<String>) -> HistoryEntry {
    let mut entry = HistoryEntry::now(who, action);
    entry.reason = reason;
    entry
}

pub(super) fn list_aliases(control: &Control, name: &str) -> Result<Response<Body>, ApiError> {
    Ok(json(StatusCode::OK, &control.aliases(name)?))
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
    control: &Control,
    name: &str,
    alias: &str,
    request: Request<impl RequestBody>,
) -> Result<Response<Body>, ApiError> {
    control.aliases(name)?;
    let who = actor(&request);
    let req: AliasRequest = body(control, request).await?;
    let routes = match (req.version, req.routes) {
        (Some(v), None) => vec![Route {
            version: v,
            weight: 100,
        }],
        (None, Some(routes)) => routes,
        _ => {
            return Err(
                CoreError::InvalidRelease("give either `version` or `routes`".into()).into(),
            );
        }
    };
    let target = AliasTarget {
        routes,
        sticky: req.sticky,
        rules: req.rules,
    };
    let history = logged(&who, "alias_set", req.reason);
    let aliases = control
        .set_alias(name, alias, target, req.default, history)
        .await?;
    Ok(json(StatusCode::OK, &aliases))
}

pub(super) async fn delete_alias<B>(
    control: &Control,
    name: &str,
    alias: &str,
    request: &Request<B>,
) -> Result<Response<Body>, ApiError> {
    let history = HistoryEntry::now(&actor(request), "alias_removed");
    control.remove_alias(name, alias, history).await?;
    Ok(no_content())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReleaseRequest {
    to: u32,
    #[serde(default = "flint_spec::names::default_release_alias")]
    alias: String,
    reason: Option<String>,
}

pub(super) async fn release(
    control: &Control,
    name: &str,
    request: Request<impl RequestBody>,
) -> Result<Response<Body>, ApiError> {
    control.aliases(name)?;
    let who = actor(&request);
    let req: ReleaseRequest = body(control, request).await?;
    let history = logged(&who, "release", req.reason);
    Ok(json(
        StatusCode::OK,
        &control.release(name, &req.alias, req.to, history).await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RollbackRequest {
    #[serde(default = "flint_spec::names::default_release_alias")]
    alias: String,
    reason: Option<String>,
}

pub(super) async fn rollback(
    control: &Control,
    name: &str,
    request: Request<impl RequestBody>,
) -> Result<Response<Body>, ApiError> {
    control.aliases(name)?;
    let who = actor(&request);
    let req: RollbackRequest = body(control, request).await?;
    let history = logged(&who, "rollback", req.reason);
    Ok(json(
        StatusCode::OK,
        &control.rollback(name, &req.alias, history).await?,
    ))
}

pub(super) async fn history(control: &Control, name: &str) -> Result<Response<Body>, ApiError> {
    let history: Vec<Value> = control
        .history(name)
        .await?
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
    control: &Control,
    name: &str,
    request: Request<impl RequestBody>,
) -> Result<Response<Body>, ApiError> {
    control.aliases(name)?;
    let who = actor(&request);
    let spec: CanarySpec = body(control, request).await?;
    let started = control.start_canary(name, spec, &who).await?;
    Ok(json(StatusCode::ACCEPTED, &started))
}

pub(super) async fn canary_status(
    control: &Control,
    name: &str,
) -> Result<Response<Body>, ApiError> {
    Ok(json(StatusCode::OK, &control.canary_status(name).await?))
}

pub(super) async fn put_shadow(
    control: &Control,
    name: &str,
    request: Request<impl RequestBody>,
) -> Result<Response<Body>, ApiError> {
    control.aliases(name)?;
    let who = actor(&request);
    let spec: ShadowSpec = body(control, request).await?;
    Ok(json(
        StatusCode::OK,
        &control.start_shadow(name, spec, &who).await?,
    ))
}
