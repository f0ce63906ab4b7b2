//! Paths of the guest components built from `functions/` by this crate's
//! build script, for tests and benchmarks. The build needs the
//! `wasm32-wasip2` Rust target, and Node.js with npm for the JavaScript
//! function (its npm packages are installed once into a cache under the cargo
//! target dir).
//!
//! - [`HELLO`]: flint-sdk hello world.
//! - [`ECHO`]: JSON in, transformed JSON out.
//! - [`WASI_HELLO`]: written against the plain `wasi` crate, no flint-sdk.
//! - [`PROBE`]: the test function (counter, spin, alloc, sleep, trap, env,
//!   outbound, print, body, status, headers).
//! - [`ORDER_PROCESSOR`]: the example queue-triggered function (CloudEvents).
//! - [`QUEUE_PROBE`]: the test function of the queue-trigger tests.
//! - [`WAGI_RUST`]: a WAGI function in Rust, a WASI 0.1 command module
//!   (wasm32-wasip1) run as CGI: greeting, echo, env, status, redirect, and
//!   paths that cross each limit.
//! - [`WAGI_C`]: a WAGI function in C (clang with wasi-libc): greeting,
//!   query, body and a status of its own.
//! - [`JS_HELLO`]: JavaScript (componentize-js, SpiderMonkey inside): a
//!   greeting with the request path in `x-path`; a large component (~13 MB).

//!
//! [`postgres::TestDb`] is the scratch database of the shared-registry
//! tests.

pub mod postgres;

include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));

/// Reads a component's bytes.
pub fn bytes(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}
