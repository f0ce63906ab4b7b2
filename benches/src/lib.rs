//! Flint's benchmarks.
//!
//! - `benches/start_kinds.rs` (criterion): one invocation per start kind
//!   (compile, disk, cold, warm, reuse) of a small Rust component and a large
//!   JavaScript one, in-process through `flint-runtime`.
//! - [`harness`]: the end-to-end load harness (`cargo run --release -p
//!   flint-benches --bin harness`): `flint serve` side by side with
//!   `wasmtime serve` and a native hyper server, driven by `wrk` over
//!   loopback.
//!
//! See `benches/README.md` for how to run them and the latest figures.

pub mod harness;

pub use harness::register_fonts;

/// Installs the log subscriber `flint serve` runs with, at its default
/// filter (`info`), writing nowhere. Without a subscriber every disabled
/// span (wasmtime's bindings open one per host call) falls through to the
/// `log` crate, which the server never does: the in-process benches would
/// count a cost the server does not pay.
pub fn install_server_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .with_writer(std::io::sink)
        .init();
}
