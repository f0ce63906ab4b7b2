//! `wasi-hello`: a function written against the plain `wasi` crate, without
//! `flint-sdk`. It proves that any `wasi:http/proxy` component runs on Flint
//! unmodified: the same code runs under `wasmtime serve`, Spin or wasmCloud.
//!
//! Answers `200 Hello from plain wasi:http!` and echoes the request path
//! (without the query) in an `x-path` response header.

use wasi::exports::http::incoming_handler::Guest;
use wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

const BODY: &[u8] = b"Hello from plain wasi:http!\n";

struct WasiHello;

impl Guest for WasiHello {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path_with_query = request.path_with_query().unwrap_or_else(|| "/".to_owned());
        let path = path_with_query
            .split_once('?')
            .map_or(path_with_query.as_str(), |(path, _)| path);

        let headers = Fields::from_list(&[
            (
                "content-type".to_owned(),
                b"text/plain; charset=utf-8".to_vec(),
            ),
            (
                "content-length".to_owned(),
                BODY.len().to_string().into_bytes(),
            ),
            ("x-path".to_owned(), path.as_bytes().to_vec()),
        ])
        .expect("static headers and a request path are valid header values");
        let response = OutgoingResponse::new(headers);
        response
            .set_status_code(200)
            .expect("200 is a valid status");
        let body = response.body().expect("the body is taken once");
        ResponseOutparam::set(response_out, Ok(response));

        let stream = body.write().expect("the stream is taken once");
        // The body is below the 4096-byte limit of one blocking write.
        if stream.blocking_write_and_flush(BODY).is_err() {
            return; // the caller went away
        }
        drop(stream);
        let _ = OutgoingBody::finish(body, None);
    }
}

wasi::http::proxy::export!(WasiHello);
