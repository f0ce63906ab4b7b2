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
