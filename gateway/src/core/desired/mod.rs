//! Desired state: the engine that makes the server match what a manifest
//! declares.
//!
//! The declared state itself, [`flint_spec::desired::DesiredState`], is the
//! manifest of one environment after overlays, with every component reduced
//! to its digest. Planning compares it with the server and lists the
//! changes ([`Plan`]); applying validates all of them first and then makes
//! them, the store part in one transaction.

mod apply;
mod plan;

pub use plan::{Op, Plan, PlanChange};
