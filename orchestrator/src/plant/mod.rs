//! The plant's rules, as transactions on the store: order lifecycle, pre-screen, material
//! reservation and consumption, decomposition into jobs, unit accounting and replacement of
//! scrap. Every public operation here is one [`crate::store::Writer`] transaction: the state
//! change and its events commit together or not at all.
//!
//! Architecture invariants (checked by the tests and by `microfab verify`):
//! - per order: `good + remaining == quantity`; every scrapped piece is recorded and replaced;
//! - per step: units started never exceed the good units of each predecessor step;
//! - per stock account: `0 <= reserved <= on_hand`;
//! - only an active order (approved, in progress) gets new runs or reserved material.

pub mod jobs;
pub mod live_views;
pub mod machines;
pub mod orders;
pub mod stock;
pub mod views;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

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
    Spec(#[from] microfab_job_specs::SpecErrors),
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
}

impl Plant {
    pub fn new(store: Store, config: Arc<PlantConfig>) -> Plant {
        Plant {
            store,
            config,
            etas: PlanEtas::default(),
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

/// Order lifecycle states.
pub mod order_state {
    pub const SUBMITTED: &str = "submitted";
    pub const APPROVED: &str = "approved";
    pub const REJECTED: &str = "rejected";
    pub const IN_PROGRESS: &str = "in_progress";
    pub const COMPLETED: &str = "completed";
    pub const CANCELLED: &str = "cancelled";

    /// The states in which an order may get work and material; every other state is closed
    /// (not yet approved, or ended).
    pub const ACTIVE: [&str; 2] = [APPROVED, IN_PROGRESS];

    pub fn is_active(state: &str) -> bool {
        ACTIVE.contains(&state)
    }
}

/// An order state as a closed set, for filters that must refuse a value they do not know.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum OrderState {
    Submitted,
    Approved,
    Rejected,
    InProgress,
    Completed,
    Cancelled,
}

impl OrderState {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderState::Submitted => order_state::SUBMITTED,
            OrderState::Approved => order_state::APPROVED,
            OrderState::Rejected => order_state::REJECTED,
            OrderState::InProgress => order_state::IN_PROGRESS,
            OrderState::Completed => order_state::COMPLETED,
            OrderState::Cancelled => order_state::CANCELLED,
        }
    }
}

/// Job lifecycle states.
pub mod job_state {
    pub const PLANNED: &str = "planned";
    pub const DISPATCHED: &str = "dispatched";
    pub const RUNNING: &str = "running";
    pub const DONE: &str = "done";
    pub const FAILED: &str = "failed";
    pub const INTERRUPTED: &str = "interrupted";
    pub const CANCELLED: &str = "cancelled";
}

/// A job state as a closed set, for filters that must refuse a value they do not know.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Planned,
    Dispatched,
    Running,
    Done,
    Failed,
    Interrupted,
    Cancelled,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Planned => job_state::PLANNED,
            JobState::Dispatched => job_state::DISPATCHED,
            JobState::Running => job_state::RUNNING,
            JobState::Done => job_state::DONE,
            JobState::Failed => job_state::FAILED,
            JobState::Interrupted => job_state::INTERRUPTED,
            JobState::Cancelled => job_state::CANCELLED,
        }
    }
}
