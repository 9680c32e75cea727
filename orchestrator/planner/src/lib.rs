//! The microfab planner: pure code. State and time in, decisions out; no I/O, no clock reads,
//! no async. The runtime (`orchestrator/src/runtime`) builds a [`PlanInput`] from the store and
//! carries out what comes back.
//!
//! API boundary: everything the planner knows arrives in [`PlanInput`]; everything it decides
//! leaves as a [`Plan`] and [`Dispatch`] decisions. Same input, budget and seed, same output.
//! The exception is [`bench`], which reads instance files and measures wall-clock time for
//! the benchmarks; the planning core never calls it.

pub mod bench;
pub mod check;
pub mod construct;
pub mod fjsp;
pub mod model;
pub mod plan;
pub mod problem;
pub mod rng;
pub mod rule;
pub mod search;

pub use model::*;
pub use plan::{Plan, Planned, next_dispatches, plan};
pub use problem::Objective;
pub use rule::dispatch_ready_runs;
pub use search::Budget;
