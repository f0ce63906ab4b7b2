//! `hostile`: a guest that tries to make the host hold more than its budget,
//! for the host's hostile-guest tests. Written against the plain `wasi`
//! crate, so each route drives the raw `wasi:http` and `wasi:cli` resources.
//!
//! The route is the last segment of the path:
//!
//! | route | what it does | the host's answer |
//! | --- | --- | --- |
//! | `fields` | creates header fields with 60 KiB values and keeps them all | `resource_limit_exceeded` |
//! | `handles` | creates empty header fields and keeps them all | `resource_limit_exceeded` |
//! | `stdout` | floods stdout with empty writes and lines | `resource_limit_exceeded` |
//! | `bodies` | opens response bodies, fills their buffers and keeps them all | `resource_limit_exceeded` |
//! | `outbound?url=URL` | sends requests to `URL` without waiting for any | `resource_limit_exceeded` |
//! | `empty-writes` | writes 5,000 empty chunks to its response body, then `done` | `200 done` |
//! | `huge` | streams a response body without end | cut at `max_response_bytes` |
//! | `huge?declared` | declares a Content-Length of 1 TiB | `resource_limit_exceeded` |
//! | `recurse` | recurses without end | `trap` (stack overflow) |
//! | `error-code` | answers with a `wasi:http` error code instead of a response | `function_error` |
//! | `silent` | returns without setting a response | `no_response` |
//!
//! The several-memories case is a component of its own, `multi-memory.wat`.

use wasi::exports::http::incoming_handler::Guest;
use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, Fields, IncomingRequest, Method, OutgoingBody, OutgoingRequest, OutgoingResponse,
    ResponseOutparam, Scheme,
};

struct Hostile;

impl Guest for Hostile {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path_with_query = request.path_with_query().unwrap_or_default();
        let (path, query) = path_with_query
            .split_once('?')
            .unwrap_or((&path_with_query, ""));
        let route = path.rsplit('/').next().unwrap_or_default();
        match route {
            "fields" => hoard_fields(60 << 10),
            "handles" => hoard_fields(0),
            "stdout" => flood_stdout(),
            "bodies" => hoard_bodies(),
            "outbound" => flood_outbound(query.strip_prefix("url=").unwrap_or_default()),
            "empty-writes" => empty_writes(out),
            "huge" => huge(out, query == "declared"),
            "recurse" => {
                recurse(0);
            }
            "error-code" => ResponseOutparam::set(
                out,
                Err(ErrorCode::InternalError(Some("deliberately failed".into()))),
            ),
            "silent" => drop(out),
            _ => respond(out, 404, b"no such route\n"),
        }
    }
}

fn respond(out: ResponseOutparam, status: u16, body: &[u8]) {
    let response = OutgoingResponse::new(Fields::new());
    response.set_status_code(status).expect("a valid status");
    let outgoing = response.body().expect("the body is taken once");
    ResponseOutparam::set(out, Ok(response));
    let stream = outgoing.write().expect("the stream is taken once");
    let _ = stream.blocking_write_and_flush(body);
    drop(stream);
    let _ = OutgoingBody::finish(outgoing, None);
}

/// Keeps every fields resource it makes, each with one value of `len` bytes.
fn hoard_fields(len: usize) -> ! {
    let value = vec![b'a'; len];
    let mut kept = Vec::new();
    loop {
        let fields = Fields::from_list(&[("x-hoard".to_owned(), value.clone())])
            .expect("one header within the per-fields limit");
        kept.push(fields);
    }
}

/// Empty writes between lines, as fast as it can.
fn flood_stdout() -> ! {
    let stdout = wasi::cli::stdout::get_stdout();
    loop {
        for _ in 0..100 {
            let _ = stdout.write(&[]);
        }
        let _ = stdout.blocking_write_and_flush(b"flood flood flood flood flood flood\n");
    }
}

/// Opens response bodies and fills the buffer of each.
fn hoard_bodies() -> ! {
    let chunk = vec![b'b'; 64 << 10];
    let mut kept = Vec::new();
    loop {
        let response = OutgoingResponse::new(Fields::new());
        let body = response.body().expect("the body is taken once");
        let stream = body.write().expect("the stream is taken once");
        let _ = stream
            .write(&chunk[..stream.check_write().unwrap_or(0).min(chunk.len() as u64) as usize]);
        kept.push((response, body, stream));
    }
}

/// Sends GETs to `url` (`http://host:port/path`) and never waits for one.
fn flood_outbound(url: &str) -> ! {
    let rest = url.strip_prefix("http://").unwrap_or(url);
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let mut kept = Vec::new();
    loop {
        let request = OutgoingRequest::new(Fields::new());
        request.set_method(&Method::Get).expect("GET");
        request.set_scheme(Some(&Scheme::Http)).expect("http");
        request
            .set_authority(Some(authority))
            .expect("an authority");
        request.set_path_with_query(Some(path)).expect("a path");
        if let Ok(future) = outgoing_handler::handle(request, None) {
            kept.push(future);
        }
    }
}

/// Writes empty chunks to its response body, then `done`.
fn empty_writes(out: ResponseOutparam) {
    let response = OutgoingResponse::new(Fields::new());
    let body = response.body().expect("the body is taken once");
    ResponseOutparam::set(out, Ok(response));
    let stream = body.write().expect("the stream is taken once");
    for _ in 0..5_000 {
        if stream.check_write().unwrap_or(0) == 0 {
            stream.subscribe().block();
        }
        if stream.write(&[]).is_err() {
            return;
        }
    }
    let _ = stream.blocking_write_and_flush(b"done\n");
    drop(stream);
    let _ = OutgoingBody::finish(body, None);
}

/// Streams 64 KiB chunks without end, or declares a body of 1 TiB.
fn huge(out: ResponseOutparam, declared: bool) {
    let headers = Fields::new();
    if declared {
        headers
            .set("content-length", &[b"1099511627776".to_vec()])
            .expect("a valid content-length");
    }
    let response = OutgoingResponse::new(headers);
    let body = response.body().expect("the body is taken once");
    ResponseOutparam::set(out, Ok(response));
    let stream = body.write().expect("the stream is taken once");
    let chunk = vec![b'h'; 64 << 10];
    loop {
        let pollable = stream.subscribe();
        pollable.block();
        drop(pollable);
        let Ok(permit) = stream.check_write() else {
            return; // the host cut the body off
        };
        let n = (permit as usize).min(chunk.len());
        if stream.write(&chunk[..n]).is_err() {
            return;
        }
    }
}

/// Recurses until the wasm stack runs out (nothing lives on the shadow
/// stack in linear memory, so the host's stack limit is what stops it).
fn recurse(depth: u64) -> u64 {
    if depth == u64::MAX {
        return 0;
    }
    let deeper = recurse(std::hint::black_box(depth + 1));
    std::hint::black_box(deeper) + 1
}

wasi::http::proxy::export!(Hostile);
