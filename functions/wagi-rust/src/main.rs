//! A WAGI function: a plain Rust program built for `wasm32-wasip1`, no SDK.
//!
//! Flint runs it once per request as a CGI script: the request is its
//! environment (`REQUEST_METHOD`, `PATH_INFO`, `QUERY_STRING`, `HTTP_*`, ...)
//! and its stdin, and what it prints is the response: header lines, an
//! empty line, then the body.
//!
//! Paths: `/` greets `?name=` (or, for a CloudEvent from a queue trigger,
//! answers a JSON summary of it); `/echo` answers the body back; `/env`
//! lists the CGI environment; `/status` answers 201 with a header;
//! `/redirect` redirects to `/`. The rest show how Flint's limits meet a module:
//! `/no-headers`, `/exit`, `/trap`, `/spin`, `/alloc?mb=N`, `/big?bytes=N`,
//! `/log`.

use std::io::{Read, Write};

fn main() {
    let path = var("PATH_INFO");
    let query = var("QUERY_STRING");
    let mut out = std::io::stdout().lock();
    match path.as_str() {
        "/echo" => {
            let mut body = Vec::new();
            std::io::stdin()
                .read_to_end(&mut body)
                .expect("reading stdin");
            let content_type = match var("CONTENT_TYPE") {
                t if t.is_empty() => "application/octet-stream".to_string(),
                t => t,
            };
            write!(
                out,
                "Content-Type: {content_type}\nX-Method: {}\nX-Body-Bytes: {}\n\n",
                var("REQUEST_METHOD"),
                body.len()
            )
            .unwrap();
            out.write_all(&body).unwrap();
        }
        "/env" => {
            let mut vars: Vec<(String, String)> = std::env::vars().collect();
            vars.sort();
            writeln!(out, "Content-Type: text/plain\n").unwrap();
            for (k, v) in vars {
                writeln!(out, "{k}={v}").unwrap();
            }
        }
        "/status" => write!(out, "Status: 201 Created\nX-Created: yes\n\ncreated\n").unwrap(),
        "/redirect" => write!(out, "Location: /\n\n").unwrap(),
        "/no-headers" => write!(out, "a body without headers").unwrap(),
        "/exit" => std::process::exit(3),
        "/trap" => panic!("asked to trap"),
        "/spin" => {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        "/alloc" => {
            let mb: usize = param(&query, "mb")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1);
            let block = vec![1u8; mb << 20];
            write!(
                out,
                "Content-Type: text/plain\n\nheld {} MiB\n",
                block.len() >> 20
            )
            .unwrap();
        }
        "/big" => {
            let bytes: usize = param(&query, "bytes")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            write!(out, "Content-Type: application/octet-stream\n\n").unwrap();
            let chunk = [b'x'; 4096];
            let mut left = bytes;
            while left > 0 {
                let n = left.min(chunk.len());
                out.write_all(&chunk[..n]).unwrap();
                left -= n;
            }
        }
        "/log" => {
            eprintln!("wagi-rust: handling {} {path}", var("REQUEST_METHOD"));
            write!(out, "Content-Type: text/plain\n\nlogged\n").unwrap();
        }
        _ if !var("HTTP_CE_ID").is_empty() => {
            let mut body = Vec::new();
            std::io::stdin()
                .read_to_end(&mut body)
                .expect("reading stdin");
            write!(
                out,
                "Content-Type: application/json\n\n{{\"id\":\"{}\",\"type\":\"{}\",\"body_bytes\":{}}}",
                json_escape(&var("HTTP_CE_ID")),
                json_escape(&var("HTTP_CE_TYPE")),
                body.len()
            )
            .unwrap();
        }
        _ => {
            let name = param(&query, "name").unwrap_or_else(|| "world".into());
            write!(
                out,
                "Content-Type: text/plain\n\nHello from WAGI, {name}!\n"
            )
            .unwrap();
        }
    }
    out.flush().unwrap();
}

/// A CGI variable, empty when unset.
fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_default()
}

/// `text` as the inside of a JSON string.
fn json_escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| match c {
            '"' | '\\' => vec!['\\', c],
            c if (c as u32) < 0x20 => format!("\\u{:04x}", c as u32).chars().collect(),
            c => vec![c],
        })
        .collect()
}

/// The value of `key` in a query string (not percent-decoded).
fn param(query: &str, key: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.to_string())
}
