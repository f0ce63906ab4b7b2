//! Paths of the guest components built from `functions/` by this crate's
//! build script, for tests and benchmarks.
//!
//! - [`HELLO`]: flint-sdk hello world.
//! - [`ECHO`]: JSON in, transformed JSON out.
//! - [`WASI_HELLO`]: written against the plain `wasi` crate, no flint-sdk.
//! - [`PROBE`]: the test function (counter, spin, alloc, sleep, trap, env,
//!   outbound, print, body, status, headers).
//! - [`ORDER_PROCESSOR`]: the example queue-triggered function (CloudEvents).
//! - [`QUEUE_PROBE`]: the test function of the queue-trigger tests.

include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));

/// Reads a component's bytes.
pub fn bytes(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}
