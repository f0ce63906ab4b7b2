//! The glue that [`export!`](crate::export) expands to. Not public API: it
//! may change in any release.

pub use wasi;
pub use wasi::exports::http::incoming_handler::Guest;
pub use wasi::http::types::{IncomingRequest, ResponseOutparam};

use wasi::http::types::{Fields, OutgoingBody, OutgoingResponse};
use wasi::io::streams::StreamError;

use crate::{Method, Request, Response, request};

/// How much of the request body to ask for per `blocking-read`. The host may
/// return less; a bigger ask only means fewer calls for big bodies.
const READ_CHUNK: u64 = 64 * 1024;

/// `blocking-write-and-flush` accepts at most 4096 bytes per call (wasi:io).
const WRITE_CHUNK: usize = 4096;

/// Serves one request: reads it, runs `handler`, writes the response.
pub fn serve<F>(incoming: IncomingRequest, response_out: ResponseOutparam, handler: F)
where
    F: FnOnce(Request) -> Response,
{
    let response = match read_request(&incoming) {
        Ok(request) => handler(request),
        Err(response) => response,
    };
    drop(incoming);
    write_response(response, response_out);
}

fn read_request(incoming: &IncomingRequest) -> Result<Request, Response> {
    let method = request::method_from_wasi(incoming.method());
    let path_with_query = incoming.path_with_query().unwrap_or_else(|| "/".to_owned());
    let headers: Vec<(String, String)> = incoming
        .headers()
        .entries()
        .into_iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), lossy_string(value)))
        .collect();
    let body = if may_have_body(&method, &headers) {
        read_body(incoming)?
    } else {
        Vec::new()
    };
    Ok(request::from_parts(method, path_with_query, headers, body))
}

/// Whether to read the body at all: always, except for a `GET` or `HEAD`
/// without `Content-Length`. Their content has no defined meaning (RFC 9110,
/// section 9.3), and without a length one comes only as a chunked HTTP/1.1
/// or an unsized HTTP/2 body, which the handler never sees. Hosts strip
/// `Transfer-Encoding` from what a guest sees, so the SDK cannot tell those
/// from the usual bodiless `GET`. Skipping saves six of the 21 calls into
/// the host that a small request makes.
fn may_have_body(method: &Method, headers: &[(String, String)]) -> bool {
    !matches!(method, Method::Get | Method::Head)
        || headers.iter().any(|(name, _)| name == "content-length")
}

fn read_body(incoming: &IncomingRequest) -> Result<Vec<u8>, Response> {
    let body = incoming
        .consume()
        .map_err(|()| internal("the request body was already consumed"))?;
    let stream = body
        .stream()
        .map_err(|()| internal("the request body stream was already taken"))?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(READ_CHUNK) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(err)) => {
                return Err(Response::error(
                    400,
                    "body_read_failed",
                    format!("could not read the request body: {}", err.to_debug_string()),
                ));
            }
        }
    }
    // The stream is a child of the body and must go first. Dropping the body
    // unfinished ignores trailers, and takes one call less than `finish`
    // plus dropping the trailers' future.
    drop(stream);
    drop(body);
    Ok(bytes)
}

fn write_response(response: Response, response_out: ResponseOutparam) {
    let (outgoing, bytes) = match to_outgoing(response) {
        Ok(parts) => parts,
        Err(message) => to_outgoing(Response::error(500, "invalid_response", message))
            .expect("the SDK's own error response is always valid"),
    };
    let body = outgoing
        .body()
        .expect("the body of a new outgoing response is available");
    ResponseOutparam::set(response_out, Ok(outgoing));
    if !bytes.is_empty() {
        let stream = body
            .write()
            .expect("the stream of a new outgoing body is available");
        for chunk in bytes.chunks(WRITE_CHUNK) {
            if stream.blocking_write_and_flush(chunk).is_err() {
                // The caller went away. Dropping the body without `finish`
                // tells the host that the response is incomplete.
                return;
            }
        }
    }
    // A failure here means the host refused the body (e.g. a content-length
    // mismatch) and has already failed the response; nothing is left to do.
    let _ = OutgoingBody::finish(body, None);
}

/// Builds the host's response, or says which part of it the host rejected.
fn to_outgoing(response: Response) -> Result<(OutgoingResponse, Vec<u8>), String> {
    let (status, mut headers, bytes) = response.into_parts();
    // Without a length the host must send the body chunked; with one, the
    // caller's client knows the size up front.
    let has_length = headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("content-length"));
    let body_allowed = !(100..200).contains(&status) && status != 204 && status != 304;
    if !has_length && body_allowed {
        headers.push(("content-length".to_owned(), bytes.len().to_string()));
    }
    // One host call for all headers: each call into the host costs about as
    // much as the work it does for a small response.
    let list: Vec<(String, Vec<u8>)> = headers
        .iter()
        .map(|(name, value)| (name.clone(), value.as_bytes().to_vec()))
        .collect();
    let fields = Fields::from_list(&list).map_err(|_| rejected_header(&headers))?;
    let outgoing = OutgoingResponse::new(fields);
    // A new response's status is already 200.
    if status != 200 {
        outgoing
            .set_status_code(status)
            .map_err(|()| format!("the host rejected the status code {status}"))?;
    }
    Ok((outgoing, bytes))
}

/// Finds the header the host refused, one at a time (only after a refusal).
fn rejected_header(headers: &[(String, String)]) -> String {
    let fields = Fields::new();
    for (name, value) in headers {
        if let Err(err) = fields.append(name, value.as_bytes()) {
            return format!("the host rejected response header `{name}: {value}`: {err:?}");
        }
    }
    "the host rejected the response headers".to_owned()
}

fn internal(message: &str) -> Response {
    Response::error(500, "internal", message)
}

fn lossy_string(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes)
        .unwrap_or_else(|err| String::from_utf8_lossy(err.as_bytes()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(names: &[&str]) -> Vec<(String, String)> {
        names
            .iter()
            .map(|name| (name.to_string(), "1".to_string()))
            .collect()
    }

    #[test]
    fn get_and_head_read_the_body_only_with_a_length() {
        assert!(!may_have_body(&Method::Get, &headers(&["host", "accept"])));
        assert!(!may_have_body(&Method::Head, &[]));
        assert!(may_have_body(&Method::Get, &headers(&["content-length"])));
    }

    #[test]
    fn other_methods_read_the_body_even_unframed() {
        // HTTP/2 streams a body without a length.
        for method in [Method::Post, Method::Put, Method::Delete, Method::Patch] {
            assert!(may_have_body(&method, &[]));
        }
    }
}
