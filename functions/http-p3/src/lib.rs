//! `http-p3`: a WASI 0.3 `wasi:http` component, written with the `wasip3`
//! crate. It exports `wasi:http/handler@0.3.0`, whose `handle` is an async
//! function: the host may run many requests in one instance at once, and a
//! response body is a `stream<u8>` the component writes after returning the
//! response (in a task spawned with `wit_bindgen::spawn_local`).
//!
//! The route is the whole path; a missing or malformed query parameter gets
//! `400 invalid query`.
//!
//! | route | what it does |
//! | --- | --- |
//! | `/` | `200 hello from a WASI 0.3 component` |
//! | `/echo` | streams the request body back chunk by chunk as it arrives, with its `content-type` |
//! | `/stream?chunks=N&delay_ms=M` | answers at once, then writes N lines `chunk {i}`, waiting M ms before each after the first |
//! | `/sleep?ms=N` | waits N ms, then answers JSON `{"instance","in_flight","max_in_flight","served"}` |
//! | `/spin` | loops forever without awaiting (crosses the time limit) |
//! | `/alloc?mb=N` | allocates N MiB and touches every page; `allocated N MiB` (over the memory cap it traps) |
//! | `/fields` | creates header fields with 60 KiB values and keeps them all (crosses the held-bytes budget) |
//! | `/handles` | creates empty header fields and keeps them all (crosses the resource-table limit) |
//! | `/big?bytes=N` | streams N bytes of `x` in 64 KiB writes, without a content-length |
//! | `/outbound?url=http://HOST[:PORT]/PATH` | GETs URL through `wasi:http/client`: `upstream status S`, or `502 outbound failed: ERROR` |
//! | `/log` | prints `stdout line` to stdout and `stderr line` to stderr; `logged` |
//! | `/trap` | panics, which traps |
//! | anything else | `404 no such route` |
//!
//! Each instance counts the requests inside `handle` (`in_flight`), the most
//! it has seen at once (`max_in_flight`) and all it has handled (`served`),
//! and picks a random `instance` id on its first request: `/sleep` reports
//! them, so a test can tell whether concurrent requests shared an instance.

use std::future::Future;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use wasip3::clocks::monotonic_clock;
use wasip3::exports::http::handler::Guest;
use wasip3::http::client;
use wasip3::http::types::{ErrorCode, Fields, Request, Response, Scheme};
use wasip3::wit_bindgen::{StreamResult, StreamWriter, spawn_local};
use wasip3::{wit_future, wit_stream};

/// The size of one write of `/big` and of one read of `/echo`.
const CHUNK: usize = 64 << 10;

/// This instance's id, picked on its first request.
static INSTANCE: OnceLock<u64> = OnceLock::new();
/// Requests inside `handle` right now.
static IN_FLIGHT: AtomicU64 = AtomicU64::new(0);
/// The most requests ever inside `handle` at once.
static MAX_IN_FLIGHT: AtomicU64 = AtomicU64::new(0);
/// Requests this instance has handled, the current ones included.
static SERVED: AtomicU64 = AtomicU64::new(0);

struct HttpP3;

impl Guest for HttpP3 {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let _in_flight = InFlight::enter();
        let target = request.get_path_with_query().unwrap_or_default();
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        match path {
            "" | "/" => text(200, "hello from a WASI 0.3 component\n"),
            "/echo" => echo(request),
            "/stream" => match (param(query, "chunks"), param(query, "delay_ms")) {
                (Some(chunks), Some(delay_ms)) => stream(chunks, delay_ms),
                _ => invalid_query(),
            },
            "/sleep" => match param(query, "ms") {
                Some(ms) => sleep(ms).await,
                None => invalid_query(),
            },
            "/spin" => spin(),
            "/alloc" => match param(query, "mb") {
                Some(mb) => alloc(mb),
                None => invalid_query(),
            },
            "/fields" => hoard_fields(60 << 10),
            "/handles" => hoard_fields(0),
            "/big" => match param(query, "bytes") {
                Some(bytes) => big(bytes),
                None => invalid_query(),
            },
            "/outbound" => match param::<String>(query, "url") {
                Some(url) => outbound(&url).await,
                None => invalid_query(),
            },
            "/log" => {
                println!("stdout line");
                eprintln!("stderr line");
                text(200, "logged\n")
            }
            "/trap" => panic!("http-p3: trap requested"),
            _ => text(404, "no such route\n"),
        }
    }
}

wasip3::http::service::export!(HttpP3);

/// Counts a request from its entry into `handle` to its return.
struct InFlight;

impl InFlight {
    fn enter() -> Self {
        INSTANCE.get_or_init(wasip3::random::random::get_random_u64);
        SERVED.fetch_add(1, Ordering::Relaxed);
        let now = IN_FLIGHT.fetch_add(1, Ordering::Relaxed) + 1;
        MAX_IN_FLIGHT.fetch_max(now, Ordering::Relaxed);
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Streams the request body back as it arrives. An error reading the request
/// body becomes the error of the response body (its trailers' result).
fn echo(request: Request) -> Result<Response, ErrorCode> {
    let headers = Fields::new();
    let content_type = request.get_headers().get("content-type");
    if !content_type.is_empty() {
        headers
            .set("content-type", &content_type)
            .map_err(|e| internal(format!("copying content-type: {e:?}")))?;
    }
    // Resolves to Ok(()) when dropped: this function handled the body.
    let (handled, handled_rx) = wit_future::new(|| Ok(()));
    let (mut body, trailers) = Request::consume_body(request, handled_rx);
    streaming(200, headers, |mut out| async move {
        loop {
            let (result, chunk) = body.read(Vec::with_capacity(CHUNK)).await;
            match result {
                StreamResult::Complete(_) if chunk.is_empty() => {}
                StreamResult::Complete(_) => {
                    if !out.write_all(chunk).await.is_empty() {
                        return Ok(()); // the response body was dropped
                    }
                }
                StreamResult::Dropped | StreamResult::Cancelled => break,
            }
        }
        // Resolves once the request body has ended, with its trailers or
        // with the error that cut it short.
        let result = trailers.await.map(drop);
        drop(handled);
        result
    })
}

/// Answers at once, then writes `chunks` lines, waiting `delay_ms` before
/// each line after the first.
fn stream(chunks: u64, delay_ms: u64) -> Result<Response, ErrorCode> {
    streaming(200, content_type("text/plain"), move |mut out| async move {
        for i in 0..chunks {
            if i > 0 {
                monotonic_clock::wait_for(delay_ms.saturating_mul(1_000_000)).await;
            }
            let line = format!("chunk {i}\n").into_bytes();
            if !out.write_all(line).await.is_empty() {
                break; // the response body was dropped
            }
        }
        Ok(())
    })
}

/// Waits `ms`, then reports this instance's counters.
async fn sleep(ms: u64) -> Result<Response, ErrorCode> {
    monotonic_clock::wait_for(ms.saturating_mul(1_000_000)).await;
    let json = format!(
        "{{\"instance\":{},\"in_flight\":{},\"max_in_flight\":{},\"served\":{}}}",
        INSTANCE.get().copied().unwrap_or_default(),
        IN_FLIGHT.load(Ordering::Relaxed),
        MAX_IN_FLIGHT.load(Ordering::Relaxed),
        SERVED.load(Ordering::Relaxed),
    );
    respond(200, content_type("application/json"), json.into_bytes())
}

/// GETs `url`, a plain `http://` URL, and answers with the upstream's
/// status or with the error the host gave.
async fn outbound(url: &str) -> Result<Response, ErrorCode> {
    let Some(rest) = url.strip_prefix("http://") else {
        return invalid_query();
    };
    let (authority, path) = match rest.split_once('/') {
        Some((authority, path)) => (authority, format!("/{path}")),
        None => (rest, "/".to_string()),
    };
    // No body and no trailers.
    let (_, trailers) = wit_future::new(|| Ok(None));
    let (request, _sent) = Request::new(Fields::new(), None, trailers, None);
    request
        .set_scheme(Some(&Scheme::Http))
        .and_then(|()| request.set_authority(Some(authority)))
        .and_then(|()| request.set_path_with_query(Some(&path)))
        .map_err(|()| internal(format!("invalid url {url}")))?;
    match client::send(request).await {
        Ok(upstream) => text(
            200,
            &format!("upstream status {}\n", upstream.get_status_code()),
        ),
        Err(error) => text(502, &format!("outbound failed: {error:?}\n")),
    }
}

/// An endless CPU loop that never yields to the host.
fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

/// Allocates `mb` MiB and writes to every 4 KiB page of it.
fn alloc(mb: usize) -> Result<Response, ErrorCode> {
    let Some(len) = mb.checked_mul(1 << 20) else {
        return invalid_query();
    };
    let mut block = vec![0u8; len];
    for page in block.iter_mut().step_by(4096) {
        *page = 1;
    }
    std::hint::black_box(&block);
    text(200, &format!("allocated {mb} MiB\n"))
}

/// Keeps every fields resource it makes, each with one value of `len` bytes.
fn hoard_fields(len: usize) -> ! {
    let value = vec![b'a'; len];
    let mut kept = Vec::new();
    loop {
        let fields = Fields::new();
        if len > 0 {
            // The host's limits end this loop; an error here changes nothing.
            let _ = fields.set("x-hoard", std::slice::from_ref(&value));
        }
        kept.push(fields);
    }
}

/// Streams `bytes` bytes of `x` in 64 KiB writes.
fn big(bytes: u64) -> Result<Response, ErrorCode> {
    let headers = content_type("application/octet-stream");
    streaming(200, headers, move |mut out| async move {
        let mut left = bytes;
        while left > 0 {
            let n = left.min(CHUNK as u64);
            if !out.write_all(vec![b'x'; n as usize]).await.is_empty() {
                break; // the response body was dropped (or cut off)
            }
            left -= n;
        }
        Ok(())
    })
}

/// A response whose body `write` produces after the response is returned,
/// in a spawned task. `write` owns the body stream, which closes when it
/// ends; its error, if any, then becomes the result of the trailers.
fn streaming<F, Fut>(status: u16, headers: Fields, write: F) -> Result<Response, ErrorCode>
where
    F: FnOnce(StreamWriter<u8>) -> Fut,
    Fut: Future<Output = Result<(), ErrorCode>> + 'static,
{
    let (body_tx, body_rx) = wit_stream::new();
    // Resolves to Ok(None), no trailers, when dropped without a write.
    let (trailers_tx, trailers_rx) = wit_future::new(|| Ok(None));
    let (response, _sent) = Response::new(headers, Some(body_rx), trailers_rx);
    response
        .set_status_code(status)
        .map_err(|()| internal(format!("invalid status {status}")))?;
    let body = write(body_tx);
    spawn_local(async move {
        if let Err(code) = body.await {
            // Fails only if the host no longer listens.
            let _ = trailers_tx.write(Err(code)).await;
        }
    });
    Ok(response)
}

/// A response with a body known in advance.
fn respond(status: u16, headers: Fields, body: Vec<u8>) -> Result<Response, ErrorCode> {
    streaming(status, headers, move |mut out| async move {
        out.write_all(body).await;
        Ok(())
    })
}

/// A `text/plain` response.
fn text(status: u16, body: &str) -> Result<Response, ErrorCode> {
    respond(status, content_type("text/plain"), body.as_bytes().to_vec())
}

/// The answer to a missing or malformed query parameter.
fn invalid_query() -> Result<Response, ErrorCode> {
    text(400, "invalid query\n")
}

/// Headers with only a `content-type`.
fn content_type(value: &str) -> Fields {
    let headers = Fields::new();
    // A constant, valid header: this cannot fail.
    let _ = headers.set("content-type", &[value.as_bytes().to_vec()]);
    headers
}

/// A `wasi:http` error for a failure of this component's own.
fn internal(message: String) -> ErrorCode {
    ErrorCode::InternalError(Some(message))
}

/// The value of `key` in a query string, parsed; `None` if it is missing or
/// malformed.
fn param<T: std::str::FromStr>(query: &str, key: &str) -> Option<T> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.parse().ok())
}
