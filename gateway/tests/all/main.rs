//! In-process tests of the gateway: the core's operations and errors, and
//! the HTTP application called as a function of a request (no socket).
//! Real components from `functions/`, real SQLite in a temporary data dir.
//! What needs a socket or a process is tested in `cli/tests`.

mod app;
mod core;
mod doctor;
mod layers;
mod storage;
mod support;
