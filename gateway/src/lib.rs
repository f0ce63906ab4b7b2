//! Flint's gateway: the core that owns every operation on functions, the
//! storage under it, and the adapters over it.
//!
//! Layers run one way:
//!
//! ```text
//! adapters   api/ (HTTP)   triggers/ (AMQP)   reconcile (flint serve --manifest)   server (accept loop)
//!            cluster (follows a shared registry)   scheduler (cron schedules)
//! core       core::Control (every operation), core::Invoker (every call)
//! store      store::Store (SQLite embedded, PostgreSQL shared), store::BlobStore (files, PostgreSQL)
//! runtime    flint-runtime (engine, pools, limits, sandbox)
//! ```
//!
//! Leaf modules any layer may use: [`body_timeout`], [`config`], [`limits`],
//! [`metrics`], [`routes`], [`secrets`]. A request flows [`server::serve`] ->
//! [`api::App::handle`] -> [`core::Invoker`] -> the runtime's instance pool.

pub mod api;
pub mod body_timeout;
pub mod cluster;
pub mod config;
mod connection;
pub mod core;
pub mod limits;
pub mod metrics;
pub mod reconcile;
pub mod routes;
pub mod scheduler;
pub mod secrets;
pub mod server;
pub mod store;
pub mod triggers;

pub use config::GatewayConfig;
