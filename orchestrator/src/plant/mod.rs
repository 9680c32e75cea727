//! The plant's rules, as transactions on the store: order lifecycle, pre-screen, material
//! reservation and consumption, decomposition into jobs, unit accounting and replacement of
//! scrap. Every public operation here is one [`crate::store::Writer`] transaction: the state
//! change and its events commit together or not at all.
//!
//! Rooms, each depending only on those below it: `orders` (submit, approve, reject, cancel);
//! `runs` (dispatch and what machines report) and `interrupted` (an operator resolves or
//! resumes an interrupted run), both over `units` (unit accounting, replacement runs,
//! completion); `stock` (reservations and draws); `machines`; `prescreen` (what an operator
//! checks before approving, pure, and the flags a submission records); the read models `plan_input`
//! (the planner's input), `views` (the API's) and `metrics_view` (`/metrics`). Beneath them all: `records` (the reads and
//! inserts they share), `rules` (the arithmetic, pure) and `state` (order, job and machine
//! states and their one database mapping).
//!
//! Architecture invariants (checked by the tests and by `microfab verify`):
//! - per order: `good + remaining == quantity`; every scrapped piece is recorded and replaced;
//! - per step: units started never exceed the good units of each predecessor step;
//! - per stock account: `0 <= reserved <= on_hand`;
//! - only an active order (approved, in progress) gets new runs or reserved material.

pub mod floor_views;
mod interrupted;
pub mod live_views;
pub mod lots;
pub mod machines;
pub mod maintenance;
pub mod metrics_view;
mod operator_work;
pub mod orders;
mod plan_input;
pub mod prescreen;
mod records;
pub mod rules;
mod runs;
pub mod state;
pub mod stock;
pub mod tasks;
mod units;
pub mod views;

pub use runs::Dispatched;
pub use state::{JobState, MachineState, OrderState};

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use crate::calendar::Calendar;
use crate::clock::PlantClock;
use crate::config::PlantConfig;
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum PlantError {
    #[error("{0} not found")]
    NotFound(String),
    /// The request is well formed but the current state does not allow it.
    #[error("{0}")]
    Conflict(String),
    /// A field of the request is wrong.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("{0}")]
    MaterialShort(String),
    #[error("{0}")]
    Spec(#[from] microfab_job_specs::Diagnostics),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for PlantError {
    fn from(e: sqlx::Error) -> Self {
        PlantError::Store(StoreError::Database(e))
    }
}

pub type Result<T, E = PlantError> = std::result::Result<T, E>;

pub fn invalid(field: &str, message: impl Into<String>) -> PlantError {
    PlantError::Invalid {
        field: field.to_string(),
        message: message.into(),
    }
}

/// The plant: its configuration and its durable state.
pub struct Plant {
    pub store: Store,
    pub config: Arc<PlantConfig>,
    /// When the current plan expects each order to end: the plan lives in the runtime, the
    /// order views here.
    pub etas: PlanEtas,
    /// The time the calendar and the plan live in (the wall clock in a real plant).
    pub clock: PlantClock,
    /// The config's working calendar; `None`: always working.
    pub calendar: Option<Calendar>,
}

impl Plant {
    pub fn new(store: Store, config: Arc<PlantConfig>, clock: PlantClock) -> Plant {
        Plant {
            store,
            calendar: config.calendar(),
            config,
            etas: PlanEtas::default(),
            clock,
        }
    }
}

/// Each order's expected end in the plan the dispatcher follows. The planner task publishes
/// it with every plan it adopts; readers never wait on the planner.
#[derive(Default)]
pub struct PlanEtas(RwLock<Arc<Etas>>);

#[derive(Debug, Default)]
pub struct Etas {
    /// The instant the plan was made for (ms).
    pub planned_at: i64,
    /// Order id → when its last run is planned to end (ms).
    pub by_order: BTreeMap<String, i64>,
}

impl PlanEtas {
    pub fn publish(&self, planned_at: i64, etas: impl IntoIterator<Item = (String, i64)>) {
        if let Ok(mut slot) = self.0.write() {
            *slot = Arc::new(Etas {
                planned_at,
                by_order: etas.into_iter().collect(),
            });
        }
    }

    pub fn current(&self) -> Arc<Etas> {
        self.0.read().map(|e| e.clone()).unwrap_or_default()
    }
}
