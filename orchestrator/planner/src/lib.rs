//! The microfab planner: pure code. State and time in, decisions out; no I/O, no clock reads,
//! no async. The runtime (`orchestrator/src/runtime`) builds a [`PlanInput`] from the store and
//! carries out what comes back.
//!
//! API boundary: everything the planner knows arrives in [`PlanInput`]; everything it decides
//! leaves as a [`Plan`] and [`Dispatch`] decisions. Same input, budget and seed, same output.
//! The benchmarks (FJSPLIB files, generated plant days, wall-clock figures) live beside it in
//! `microfab-planner-bench`.

pub mod check;
pub mod construct;
pub mod model;
pub mod operators;
pub mod plan;
pub mod problem;
pub mod rule;
pub mod search;

pub use model::*;
pub use plan::{OperatorTask, OperatorTaskKind, Plan, Planned, next_dispatches, plan};
pub use problem::Objective;
pub use rule::dispatch_ready_runs;
pub use search::Budget;
