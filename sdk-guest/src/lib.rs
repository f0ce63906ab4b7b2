//! `flint-sdk`: write Flint functions in Rust.
//!
//! A Flint function is a WebAssembly component that exports the standard
//! `wasi:http/incoming-handler` interface (the `wasi:http/proxy` 0.2 world).
//! This crate hides that interface behind one plain function:
//!
//! ```text
//! fn handle(req: Request) -> Response
//! ```
//!
//! # Concepts
//!
//! - **[`Request`]**: the incoming HTTP request, with its body already read
//!   into memory. Non-HTTP events (a RabbitMQ message, say) arrive as HTTP
//!   requests too, in the CloudEvents binary mode: a `POST /` whose body is the
//!   message and whose `ce-*` headers carry the event attributes.
//! - **[`Response`]**: what the function answers, built with
//!   [`Response::new`], [`Response::text`], [`Response::json`] or
//!   [`Response::error`] and the builder methods [`Response::header`] and
//!   [`Response::body`]. For an event, the status decides the message's fate:
//!   2xx acknowledges it, anything else retries it and then dead-letters it.
//! - **[`export!`]**: names the handler function and generates the component
//!   export. Use it once per function crate.
//! - **[`env()`]** and **[`env_vars()`]**: the environment configured for the
//!   function (Flint never passes the host's own environment through).
//!
//! Each request normally runs in a fresh instance, so statics start from their
//! initial value on every request. A function whose deployment opts in to
//! instance reuse may see statics that survive from earlier requests; never
//! rely on either behaviour for correctness.
//!
//! A panic ends the invocation with a Wasm trap (the wasm32-wasip2 target
//! aborts on panic); Flint reports it to the caller as `500 trap` and
//! discards the instance. The panic message goes to the function's stderr.
//! Output written with `println!` and `eprintln!` is captured per function.
//!
//! # Example
//!
//! ```no_run
//! use flint_sdk::{Request, Response};
//! use serde::Deserialize;
//!
//! #[derive(Deserialize)]
//! struct Greet {
//!     name: String,
//! }
//!
//! fn handle(req: Request) -> Response {
//!     match req.path() {
//!         "/greet" => match req.json::<Greet>() {
//!             Ok(greet) => Response::json(200, &serde_json::json!({ "hello": greet.name })),
//!             Err(err) => Response::error(400, "invalid_json", err.to_string()),
//!         },
//!         _ => {
//!             let who = req.query_param("who").unwrap_or_else(|| "world".to_owned());
//!             let greeting = flint_sdk::env("GREETING").unwrap_or_else(|| "Hello".to_owned());
//!             Response::text(200, format!("{greeting}, {who}!\n"))
//!         }
//!     }
//! }
//!
//! flint_sdk::export!(handle);
//! ```
//!
//! Build with `cargo build --target wasm32-wasip2 --release` from a crate
//! with `crate-type = ["cdylib"]`; the crate's README shows the whole flow.

#![deny(missing_docs)]

mod cloudevent;
mod error;
mod request;
mod response;

#[doc(hidden)]
pub mod __private;

use std::collections::BTreeMap;

pub use cloudevent::{ATTEMPT_HEADER, CloudEvent, delivery_attempt};
pub use error::Error;
pub use request::{Method, Request};
pub use response::Response;

/// Exports a handler function as the component's `wasi:http/incoming-handler`.
///
/// The argument is the path of a function with the signature
/// `fn(Request) -> Response`. Invoke the macro exactly once per function
/// crate, at module level:
///
/// ```no_run
/// fn handle(_req: flint_sdk::Request) -> flint_sdk::Response {
///     flint_sdk::Response::text(200, "ok\n")
/// }
///
/// flint_sdk::export!(handle);
/// ```
///
/// For each request the generated export reads the method, path, headers and
/// the whole body, calls the handler, and writes its response back to the host.
#[macro_export]
macro_rules! export {
    ($handler:path) => {
        const _: () = {
            struct FlintHandler;

            impl $crate::__private::Guest for FlintHandler {
                fn handle(
                    request: $crate::__private::IncomingRequest,
                    response_out: $crate::__private::ResponseOutparam,
                ) {
                    $crate::__private::serve(request, response_out, $handler);
                }
            }

            $crate::__private::wasi::http::proxy::export!(FlintHandler);
        };
    };
}

/// Returns the value of the environment variable `name` configured for this
/// function, or `None` when it is not set (or not valid UTF-8).
///
/// This is [`std::env::var`], which on wasm32-wasip2 reads
/// `wasi:cli/environment`: only the variables set in the function's
/// configuration are visible, never the host's own environment.
pub fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Returns every environment variable configured for this function, sorted by
/// name. Variables whose name or value is not valid UTF-8 are left out.
pub fn env_vars() -> BTreeMap<String, String> {
    std::env::vars_os()
        .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
        .collect()
}
