//! The one invoke path every adapter goes through: name and target (default
//! alias, alias or version) -> a version -> the function's concurrency gate
//! -> the version's pool. Shadow copies and the per-version windows of
//! canary analysis hang off this path too.

use super::bench::{BenchMode, bench_pool};
use super::functions::{FunctionEntry, MissingComponent, VersionEntry};
use super::shadow::Answer;
use super::{CoreError, CoreResult, State};
use bytes::Bytes;
use flint_runtime::{CompileError, HyperIncomingBody, InvokeResponse, next_request_id};
use flint_spec::LATEST;
use flint_spec::shadow::ShadowSpec;
use futures::StreamExt;
use http_body_util::{BodyExt, BodyStream, Full, StreamBody};
use std::sync::Arc;
use std::time::Instant;

/// What a call names after the function: `/fn/name/`, `/fn/name@prod/`,
/// `/fn/name@3/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// The function's default alias (`latest` unless a release set one).
    Default,
    /// A named alias (or `latest`).
    Alias(&'a str),
    /// A pinned version.
    Version(u32),
    /// A pinned version on a benchmark's own pools (a load run of `flint
    /// bench`): counted as a bench run, never in live counters or canary
    /// windows, and never shadowed.
    Bench(u32, BenchMode),
}

/// A function's answer and what produced it.
pub struct Invoked {
    /// The response; its body streams from the guest.
    pub response: InvokeResponse,
    /// The invocation id (as in logs).
    pub request_id: u64,
    /// The version that ran.
    pub version: u32,
}

/// Runs calls; cheap to clone.
#[derive(Clone)]
pub struct Invoker {
    s: Arc<State>,
}

/// The function `name`, if it exists and is not disabled.
pub(super) fn callable(s: &State, name: &str) -> CoreResult<Arc<FunctionEntry>> {
    let entry = s
        .table
        .get(name)
        .ok_or_else(|| CoreError::FunctionNotFound(name.into()))?;
    match entry.disabled() {
        Some(reason) => Err(CoreError::FunctionDisabled {
            function: name.into(),
            reason,
        }),
        None => Ok(entry),
    }
}

/// Version `number` of `entry`.
pub(super) fn version_of(entry: &FunctionEntry, number: u32) -> CoreResult<Arc<VersionEntry>> {
    entry
        .version(number)
        .ok_or_else(|| CoreError::VersionNotFound {
            function: entry.name.clone(),
            version: number,
            latest: entry.latest().map(|l| l.record.version),
        })
}

/// Picks the version a call goes to, at its start.
pub(super) fn resolve(
    entry: &FunctionEntry,
    target: Target<'_>,
    headers: &http::HeaderMap,
) -> CoreResult<u32> {
    let releases = entry.releases.read().unwrap();
    let alias = match target {
        Target::Version(n) | Target::Bench(n, _) => return Ok(n),
        Target::Alias(a) => a,
        Target::Default => releases.default_alias(),
    };
    if alias == LATEST {
        return entry.latest().map(|v| v.record.version).ok_or_else(|| {
            CoreError::VersionNotFound {
                function: entry.name.clone(),
                version: 0,
                latest: None,
            }
        });
    }
    let target = releases.aliases.get(alias).ok_or_else(|| {
        CoreError::AliasNotFound(format!(
            "function `{}` has no alias `{alias}`; see `flint alias ls {}`",
            entry.name, entry.name
        ))
    })?;
    Ok(target.choose(headers))
}

impl Invoker {
    pub(super) fn new(s: Arc<State>) -> Self {
        Self { s }
    }

    /// Runs `request` on function `name` through `target`.
    pub async fn invoke(
        &self,
        name: &str,
        target: Target<'_>,
        request: http::Request<HyperIncomingBody>,
    ) -> CoreResult<Invoked> {
        let entry = callable(&self.s, name)?;
        let number = resolve(&entry, target, request.headers())?;
        let version = version_of(&entry, number)?;
        if let Target::Bench(_, mode) = target {
            let permit = entry.gate().acquire().await?;
            let pool = bench_pool(&self.s, &entry, &version, mode).await?;
            let request_id = next_request_id();
            let response = pool.invoke(permit, request_id, request).await?;
            return Ok(Invoked {
                response,
                request_id,
                version: number,
            });
        }
        let shadow = match target {
            Target::Version(_) | Target::Bench(..) => None,
            _ => entry.releases.read().unwrap().shadow.clone(),
        }
        .filter(|s| s.candidate != number && flint_spec::alias::percent_roll() < s.sample_percent);

        let started = Instant::now();
        let result = match shadow {
            Some(spec) => self.with_shadow(&entry, &version, spec, request).await,
            None => self.run(&entry, &version, request).await,
        };
        let error = match &result {
            Ok(invoked) => invoked.response.status().is_server_error(),
            Err(e) => failed(e),
        };
        entry.windows.record(number, error, started.elapsed());
        result
    }

    async fn run(
        &self,
        entry: &Arc<FunctionEntry>,
        version: &Arc<VersionEntry>,
        request: http::Request<HyperIncomingBody>,
    ) -> CoreResult<Invoked> {
        let permit = match entry.gate().acquire().await {
            Ok(permit) => permit,
            Err(e) => {
                entry.rejected(version.record.version, &e);
                return Err(e.into());
            }
        };
        let pool = self.s.table.pool(entry, version).await.map_err(|e| {
            match e.downcast::<MissingComponent>() {
                Ok(missing) => CoreError::FunctionDisabled {
                    function: entry.name.clone(),
                    reason: missing.0,
                },
                // A compile on load is admitted and bounded like an upload's.
                Err(other) => match other.downcast::<CompileError>() {
                    Ok(compile) => compile.into(),
                    Err(other) => CoreError::internal(other),
                },
            }
        })?;
        let request_id = next_request_id();
        let response = pool.invoke(permit, request_id, request).await?;
        Ok(Invoked {
            response,
            request_id,
            version: pool.version(),
        })
    }

    /// Runs the live call with a buffered request body and hands a copy of
    /// the request to the candidate in the background; the caller gets the
    /// live answer. A live body larger than the buffer is passed on whole
    /// and its comparison skipped: a shadow run never fails a live call.
    async fn with_shadow(
        &self,
        entry: &Arc<FunctionEntry>,
        version: &Arc<VersionEntry>,
        spec: ShadowSpec,
        request: http::Request<HyperIncomingBody>,
    ) -> CoreResult<Invoked> {
        let (parts, body) = request.into_parts();
        let body = body.collect().await.map_err(|e| match e {
            flint_runtime::WasiHttpError::HttpRequestBodySize(_) => CoreError::from(
                crate::limits::LimitError::TooLarge(self.s.limits.request_body),
            ),
            other => CoreError::BadRequest(format!("could not read the request body: {other}")),
        })?;
        let body = body.to_bytes();
        let live = self
            .run(entry, version, copy_request(&parts, body.clone()))
            .await?;
        let (response_parts, response_body) = live.response.into_parts();
        let limit = self.s.limits.buffered_response.bytes as usize;
        let (live_body, whole) = buffer_up_to(response_body, limit).await;
        let response = http::Response::from_parts(response_parts, live_body);
        match whole {
            Some(bytes) => {
                let answer = Answer {
                    status: response.status().as_u16(),
                    content_type: content_type(response.headers()),
                    body: bytes,
                };
                tokio::spawn(self.clone().shadow_call(
                    entry.clone(),
                    spec,
                    copy_request(&parts, body),
                    answer,
                ));
            }
            None => {
                entry.shadow.skipped();
                self.s.metrics.shadow(&entry.name, "skipped");
            }
        }
        Ok(Invoked {
            response,
            request_id: live.request_id,
            version: live.version,
        })
    }

    async fn shadow_call(
        self,
        entry: Arc<FunctionEntry>,
        spec: ShadowSpec,
        request: http::Request<HyperIncomingBody>,
        live: Answer,
    ) {
        let what = format!("{} {}", request.method(), request.uri().path());
        let Ok(permit) = entry.shadow_gate.acquire().await else {
            entry.shadow.skipped();
            self.s.metrics.shadow(&entry.name, "skipped");
            return;
        };
        let limit = self.s.limits.buffered_response;
        let candidate = async {
            let version = entry
                .version(spec.candidate)
                .ok_or_else(|| format!("version {} does not exist", spec.candidate))?;
            let pool = self
                .s
                .table
                .shadow_pool(&entry, &version)
                .await
                .map_err(|e| e.to_string())?;
            let response = pool
                .invoke(permit, next_request_id(), request)
                .await
                .map_err(|e| format!("{} ({})", e, e.code()))?;
            let (parts, body) = response.into_parts();
            let body = crate::limits::read_limited(body, limit)
                .await
                .map_err(|e| match e {
                    crate::limits::LimitError::TooLarge(_) => {
                        "response too large to compare".to_string()
                    }
                    other => other.to_string(),
                })?;
            Ok::<_, String>(Answer {
                status: parts.status.as_u16(),
                content_type: content_type(&parts.headers),
                body,
            })
        }
        .await;
        let outcome = entry
            .shadow
            .record(what, &live, candidate, &spec.ignore_fields);
        self.s.metrics.shadow(&entry.name, outcome);
    }
}

/// Whether a call that got no answer from its function counts as an error
/// of its version in canary analysis: every failure of the call counts, as
/// in the metrics and `flint info`. That includes `overloaded`: the gate is
/// the function's, so a rejection lands on each version by its share of
/// traffic, and the analysis judges the candidate against the stable side.
/// A request the caller got wrong does not.
fn failed(error: &CoreError) -> bool {
    matches!(
        error,
        CoreError::Invoke(_) | CoreError::Internal(_) | CoreError::FunctionDisabled { .. }
    )
}

fn full_body(bytes: Bytes) -> HyperIncomingBody {
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

fn copy_request(parts: &http::request::Parts, body: Bytes) -> http::Request<HyperIncomingBody> {
    let mut request = http::Request::new(full_body(body));
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = parts.uri.clone();
    *request.version_mut() = parts.version;
    *request.headers_mut() = parts.headers.clone();
    request
}

fn content_type(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(String::from)
}

type ResponseBody = flint_runtime::HyperOutgoingBody;

/// Reads `body` while it fits in `limit` bytes. Returns the body to pass on
/// (the whole answer either way) and, when it fit, its bytes.
async fn buffer_up_to(body: ResponseBody, limit: usize) -> (ResponseBody, Option<Bytes>) {
    let mut stream = BodyStream::new(body);
    let mut frames = Vec::new();
    let mut size = 0usize;
    let (tail, whole) = loop {
        match stream.next().await {
            None => break (None, true),
            Some(Ok(frame)) => {
                size += frame.data_ref().map_or(0, Bytes::len);
                frames.push(Ok(frame));
                if size > limit {
                    // Too large to compare: the buffered head, then the rest
                    // as it streams.
                    break (Some(stream), false);
                }
            }
            Some(Err(e)) => {
                frames.push(Err(e));
                break (None, false);
            }
        }
    };
    let bytes = whole.then(|| {
        let chunks: Vec<Bytes> = frames
            .iter()
            .filter_map(|f| f.as_ref().ok()?.data_ref().cloned())
            .collect();
        Bytes::from(chunks.concat())
    });
    let head = futures::stream::iter(frames);
    let body = match tail {
        Some(tail) => StreamBody::new(head.chain(tail)).boxed_unsync(),
        None => StreamBody::new(head).boxed_unsync(),
    };
    (body, bytes)
}
