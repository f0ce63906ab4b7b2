//! Flint's gateway: the HTTP server (invoke path and admin API), the router
//! from names and versions to instance pools, the registry (SQLite plus
//! content-addressed blobs) and the metrics.
//!
//! Requests flow `serve` -> [`api::handle`] -> router -> the runtime's
//! instance pool. [`api::handle`] is the whole application as a function of
//! a request; [`server::serve`] is one accept loop around it.

pub mod api;
pub mod blobs;
pub mod config;
pub mod desired;
pub mod functions;
pub mod invoke;
pub mod manifest;
pub mod metrics;
pub mod registry;
pub mod releases;
pub mod routes;
pub mod secrets;
pub mod server;
pub mod state;
pub mod triggers;

pub use config::GatewayConfig;
pub use state::AppState;
