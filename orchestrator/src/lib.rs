//! microfab: production orchestrator for city micro-factories. See ARCHITECTURE.md for the
//! map; the `microfab` binary (`main.rs`) is a thin shell over [`cli`].

pub mod amount;
pub mod api;
pub mod auth;
pub mod calendar;
pub mod cli;
pub mod clock;
pub mod config;
pub mod logging;
pub mod machine_status;
pub mod ops;
pub mod panel;
pub mod plant;
pub mod runtime;
pub mod server;
pub mod sim_operators;
pub mod store;
pub mod telemetry;
pub mod verify;
pub mod whole_number;
