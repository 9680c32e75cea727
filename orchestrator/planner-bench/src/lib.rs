//! Benchmarks of the microfab planner, kept out of the planner because they read files, start
//! threads and time themselves: FJSPLIB instances against best-known bounds ([`fjsp`] reads and
//! checks them, [`instances`] runs folders of them), and a generated plant-scale day ([`day`])
//! planned, failed and re-planned against the dispatching rule ([`plant`]), and the same day
//! with people (a calendar, operators, loads and unloads), where the operator-aware plan and
//! the rule are executed through one simulator ([`people`]). `microfab bench fjsp` and
//! `microfab bench plan [--operators N]` print them.
//!
//! Budgets stay work units ([`microfab_planner::Budget`]); a benchmark given seconds converts
//! them once with `Budget::from_seconds`, as the runtime does.

pub mod day;
pub mod fjsp;
pub mod instances;
pub mod people;
pub mod plant;
