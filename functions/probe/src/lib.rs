//! `probe`: the host's test function. Each route exercises one behaviour of
//! the runtime (instance reuse, limits, traps, environment, outbound HTTP,
//! output capture, bodies, statuses, headers).
//!
//! The route is the **last segment** of the path, so `/counter` and
//! `/fn/probe/counter` both reach `counter`, whether or not the gateway strips
//! its own prefix.
//!
//! | route | answer |
//! | --- | --- |
//! | `/counter` | increments a static counter and returns its new value (`1` in a fresh instance) |
//! | `/spin` | loops forever on the CPU (for timeouts) |
//! | `/alloc?mb=N` | allocates N MiB, touches every page, returns `allocated N MiB`; an allocation the memory cap refuses traps |
//! | `/sleep?ms=N` | blocks on a wasi monotonic-clock pollable for N ms, returns `slept N ms` |
//! | `/trap` | panics, which traps |
//! | `/env?name=X` | the value of X, or `404 env_not_set`; without `name`, a JSON object of every variable |
//! | `/outbound?url=URL` | GETs URL through `wasi:http/outgoing-handler`: `upstream status S`, or `502 outbound_failed` |
//! | `/print?msg=M` | writes M to stdout and to stderr, returns `printed` |
//! | `/body` | echoes the body with the same `content-type` and an `x-body-len` header |
//! | `/status?code=N` | answers with status N |
//! | `/headers` | JSON of the method, path, query and request headers |
//! | anything else | `404 no_route` |
//!
//! A missing or malformed query parameter gets `400 invalid_query`.

use std::hint::black_box;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use flint_sdk::{Request, Response};
use serde_json::{Map, Value, json};
use wasi::http::outgoing_handler;
use wasi::http::types::{Fields, Method, OutgoingRequest, Scheme};

/// Lives as long as the instance: a fresh instance always counts from zero.
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The page size that `/alloc` touches one byte of.
const PAGE: usize = 4096;

fn handle(req: Request) -> Response {
    let route = req.path().rsplit('/').next().unwrap_or_default();
    let result = match route {
        "counter" => Ok(counter()),
        "spin" => spin(),
        "alloc" => alloc(&req),
        "sleep" => sleep(&req),
        "trap" => trap(),
        "env" => Ok(env(&req)),
        "outbound" => outbound(&req),
        "print" => print(&req),
        "body" => Ok(body(req)),
        "status" => status(&req),
        "headers" => Ok(headers(&req)),
        _ => Err(Response::error(
            404,
            "no_route",
            format!(
                "no probe route `{}`; routes: counter, spin, alloc, sleep, trap, env, \
                 outbound, print, body, status, headers",
                req.path()
            ),
        )),
    };
    result.unwrap_or_else(|error| error)
}

flint_sdk::export!(handle);

fn counter() -> Response {
    let value = COUNTER.fetch_add(1, Ordering::Relaxed) + 1;
    Response::text(200, value.to_string())
}

fn spin() -> ! {
    let mut n = 0u64;
    loop {
        // `black_box` keeps the optimiser from proving the loop pointless.
        n = black_box(n.wrapping_add(1));
    }
}

fn alloc(req: &Request) -> Result<Response, Response> {
    let mb: usize = param(req, "mb")?;
    let bytes = mb
        .checked_mul(1 << 20)
        .ok_or_else(|| invalid_query(format!("mb={mb} is too large")))?;
    // An allocation the memory cap refuses aborts, which is a trap: the host
    // must see the cap being hit, not a polite error from the guest.
    let mut block = vec![0u8; bytes];
    for index in (0..bytes).step_by(PAGE) {
        block[index] = 1;
    }
    black_box(&mut block);
    Ok(Response::text(200, format!("allocated {mb} MiB")))
}

fn sleep(req: &Request) -> Result<Response, Response> {
    let ms: u64 = param(req, "ms")?;
    let pollable = wasi::clocks::monotonic_clock::subscribe_duration(ms.saturating_mul(1_000_000));
    pollable.block();
    Ok(Response::text(200, format!("slept {ms} ms")))
}

fn trap() -> ! {
    panic!("probe: trap requested");
}

fn env(req: &Request) -> Response {
    match req.query_param("name") {
        Some(name) => match flint_sdk::env(&name) {
            Some(value) => Response::text(200, value),
            None => Response::error(
                404,
                "env_not_set",
                format!("environment variable `{name}` is not set"),
            ),
        },
        None => Response::json(200, &flint_sdk::env_vars()),
    }
}

fn outbound(req: &Request) -> Result<Response, Response> {
    let url: String = param(req, "url")?;
    let (scheme, authority, path_with_query) = split_url(&url)
        .ok_or_else(|| invalid_query(format!("url `{url}` is not scheme://authority/path")))?;

    let request = OutgoingRequest::new(Fields::new());
    let rejected = |what: &str| invalid_query(format!("the host rejected the {what} of `{url}`"));
    request
        .set_method(&Method::Get)
        .map_err(|()| rejected("method"))?;
    request
        .set_scheme(Some(&scheme))
        .map_err(|()| rejected("scheme"))?;
    request
        .set_authority(Some(authority))
        .map_err(|()| rejected("authority"))?;
    request
        .set_path_with_query(Some(&path_with_query))
        .map_err(|()| rejected("path"))?;

    let failed = |detail: String| {
        Response::error(
            502,
            "outbound_failed",
            format!("GET {url} failed: {detail}"),
        )
    };
    let future =
        outgoing_handler::handle(request, None).map_err(|code| failed(format!("{code:?}")))?;
    // The pollable is a child of the future and must be dropped before it.
    let pollable = future.subscribe();
    pollable.block();
    drop(pollable);
    match future.get() {
        Some(Ok(Ok(response))) => Ok(Response::text(
            200,
            format!("upstream status {}", response.status()),
        )),
        Some(Ok(Err(code))) => Err(failed(format!("{code:?}"))),
        Some(Err(())) => Err(failed("the response was already taken".to_owned())),
        None => Err(failed(
            "the response was not ready after its pollable fired".to_owned(),
        )),
    }
}

/// Splits `scheme://authority/path?query` into its parts. The path defaults to
/// `/`, so `http://host?x=1` asks for `/?x=1`.
fn split_url(url: &str) -> Option<(Scheme, &str, String)> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => Scheme::Other(other.to_owned()),
    };
    let (authority, path_with_query) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    if authority.is_empty() {
        return None;
    }
    let path_with_query = if path_with_query.starts_with('/') {
        path_with_query.to_owned()
    } else {
        format!("/{path_with_query}")
    };
    Some((scheme, authority, path_with_query))
}

fn print(req: &Request) -> Result<Response, Response> {
    let msg: String = param(req, "msg")?;
    println!("{msg}");
    eprintln!("{msg}");
    Ok(Response::text(200, "printed"))
}

fn body(mut req: Request) -> Response {
    let content_type = req
        .header("content-type")
        .unwrap_or("application/octet-stream")
        .to_owned();
    let body = req.take_body();
    Response::new(200)
        .header("content-type", content_type)
        .header("x-body-len", body.len().to_string())
        .body(body)
}

fn status(req: &Request) -> Result<Response, Response> {
    let code: u16 = param(req, "code")?;
    // These statuses never carry a body.
    let bodyless = (100..200).contains(&code) || code == 204 || code == 304;
    let body = if bodyless {
        String::new()
    } else {
        format!("status {code}\n")
    };
    Ok(Response::text(code, body))
}

fn headers(req: &Request) -> Response {
    let mut headers = Map::new();
    for (name, value) in req.headers() {
        // A repeated header reads as one value joined with ", " (RFC 9110).
        let joined = match headers.get(name).and_then(Value::as_str) {
            Some(previous) => format!("{previous}, {value}"),
            None => value.to_owned(),
        };
        headers.insert(name.to_owned(), Value::String(joined));
    }
    Response::json(
        200,
        &json!({
            "method": req.method().as_str(),
            "path": req.path(),
            "query": req.query(),
            "headers": headers,
        }),
    )
}

/// The query parameter `name`, parsed, or a `400 invalid_query` response.
fn param<T: FromStr>(req: &Request, name: &str) -> Result<T, Response> {
    let raw = req
        .query_param(name)
        .ok_or_else(|| invalid_query(format!("missing query parameter `{name}`")))?;
    raw.parse()
        .map_err(|_| invalid_query(format!("query parameter `{name}={raw}` is not valid")))
}

fn invalid_query(message: String) -> Response {
    Response::error(400, "invalid_query", message)
}
