//! The microfab planner: pure code. State and time in, decisions out; no I/O, no clock reads,
//! no async. The runtime (`orchestrator/src/runtime`) builds a [`PlanInput`] from the store and
//! carries out what comes back.
//!
//! API boundary: everything the planner knows arrives in [`PlanInput`]; everything it decides
//! leaves as [`Dispatch`] decisions. Same input, same output.

pub mod model;
pub mod rule;

pub use model::*;
pub use rule::dispatch_ready_runs;
