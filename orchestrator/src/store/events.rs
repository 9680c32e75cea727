//! The append-only event log. Every state change writes one of these in the same transaction,
//! with enough in it to rebuild order counts, job states and stock from the log alone
//! ([`replay`]), which the tests compare with the state tables.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sqlx::{Any, Transaction};

use microfab_drivers::ResumePoint;

use crate::amount::Amount;

use super::StoreError;

pub mod facts;
pub mod search;

/// An amount taken from (or given back to) one stock account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Draw {
    pub account: String,
    pub amount: Amount,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NewJob {
    pub job_id: i64,
    pub step_index: i64,
    pub units: i64,
    pub material_reserved: bool,
}

/// What a person told a machine to do, outside the scheduler's runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MachineCommand {
    Pause,
    Resume,
    Abort,
    /// The manual work of a run (or the machine's prompt) is done.
    Confirm,
    Unlock,
    Home,
    Reset,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    MaterialAccountOpened {
        account: String,
        material: String,
        unit: String,
        owner: String,
        origin: String,
        on_hand: Amount,
    },
    MaterialRestocked {
        account: String,
        amount: Amount,
        lot: String,
        origin: String,
    },
    MaterialAdjusted {
        account: String,
        delta: i64,
        reason: String,
    },
    OrderSubmitted {
        order_id: String,
        product: String,
        maker: String,
        quantity: i64,
        priority: String,
        flags: Vec<String>,
    },
    OrderApproved {
        order_id: String,
        reserved: Vec<Draw>,
    },
    OrderRejected {
        order_id: String,
        reason: String,
    },
    OrderCancelled {
        order_id: String,
        reason: String,
        released: Vec<Draw>,
        cancelled_jobs: Vec<i64>,
    },
    OrderCompleted {
        order_id: String,
        released: Vec<Draw>,
    },
    OrderReopened {
        order_id: String,
        reason: String,
    },
    JobsCreated {
        order_id: String,
        jobs: Vec<NewJob>,
        reserved: Vec<Draw>,
    },
    JobToppedUp {
        order_id: String,
        job_id: i64,
        units_added: i64,
    },
    MaterialReservedForJobs {
        order_id: String,
        job_ids: Vec<i64>,
        reserved: Vec<Draw>,
    },
    MaterialShort {
        order_id: String,
        job_id: i64,
        material: String,
        needed: Amount,
    },
    /// The run was given to its machine and took its material. With `awaiting_load` nothing
    /// was sent yet: the run waits for an operator to load the machine (`job_loaded`).
    JobDispatched {
        order_id: String,
        job_id: i64,
        machine_id: String,
        consumed: Vec<Draw>,
        #[serde(default)]
        awaiting_load: bool,
    },
    /// An operator loaded the machine for the run: it is sent now. `held_ms`: how long the
    /// machine waited for the load.
    JobLoaded {
        order_id: String,
        job_id: i64,
        machine_id: String,
        held_ms: i64,
    },
    /// The machine finished (or failed) the run; its pieces wait for an operator to unload and
    /// inspect them. What the machine said is kept; the units are recorded at the unload.
    JobAwaitingUnload {
        order_id: String,
        job_id: i64,
        machine_id: String,
        scrapped: i64,
        reason: Option<String>,
        failed: bool,
    },
    /// A run the machine refused before starting goes back to the plan with its material, or,
    /// when its order closed meanwhile, ends `cancelled` and its material is `released`.
    JobRequeued {
        order_id: String,
        job_id: i64,
        machine_id: String,
        returned: Vec<Draw>,
        reason: String,
        #[serde(default)]
        cancelled: bool,
        #[serde(default)]
        released: Vec<Draw>,
    },
    JobStarted {
        order_id: String,
        job_id: i64,
        machine_id: String,
    },
    JobFinished {
        order_id: String,
        job_id: i64,
        machine_id: String,
        step_index: i64,
        state: String,
        good: i64,
        scrapped: i64,
        reason: Option<String>,
        final_step: bool,
        /// How long the machine waited on an operator for this run (load and unload), when
        /// an operator unloaded it (the event's actor).
        #[serde(default)]
        held_ms: i64,
    },
    JobInterrupted {
        order_id: String,
        job_id: i64,
        machine_id: String,
        reason: String,
        /// Where the run could go on from, when the driver knows.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(value_type = Option<Object>)]
        resume: Option<ResumePoint>,
    },
    /// An operator sent an interrupted run back to its machine, from a line of its program.
    JobResumed {
        order_id: String,
        job_id: i64,
        machine_id: String,
        from_line: u32,
        reason: String,
    },
    JobResolved {
        order_id: String,
        job_id: i64,
        step_index: i64,
        outcome: String,
        good: i64,
        scrapped: i64,
        final_step: bool,
        reason: String,
    },
    UnitScrapped {
        order_id: String,
        unit_id: i64,
        job_id: i64,
        step_index: i64,
        reason: String,
        final_step: bool,
    },
    MachineState {
        machine_id: String,
        state: String,
        reason: Option<String>,
    },
    MachineMaintenance {
        machine_id: String,
        on: bool,
        reason: String,
    },
    /// The machine took a person's command; what it then did comes as its own events.
    MachineCommanded {
        machine_id: String,
        command: MachineCommand,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        job_id: Option<i64>,
    },
    /// A maintenance interval of the machine was reached: it takes no new run until an
    /// operator has done `task`.
    MaintenanceDue {
        machine_id: String,
        task: String,
    },
    /// An operator did the machine's maintenance `task` (its counters start again);
    /// `held_ms`: how long it was due before (0 when done early).
    MaintenanceDone {
        machine_id: String,
        task: String,
        held_ms: i64,
    },
    /// An account was made (by an admin, `microfab user add`, the bootstrap token or the demo).
    AccountAdded {
        account: String,
        #[schema(value_type = String)]
        role: String,
    },
    AccountRoleChanged {
        account: String,
        #[schema(value_type = String)]
        role: String,
    },
    /// The account's password was set (its sessions ended). The password is never logged.
    AccountPasswordSet {
        account: String,
    },
    /// The account may no longer sign in; its sessions ended, its tokens no longer work.
    AccountDisabled {
        account: String,
    },
    /// An API token for the account was made (the token itself is never logged).
    ApiTokenCreated {
        account: String,
        token_id: i64,
        label: String,
    },
    ApiTokenRevoked {
        account: String,
        token_id: i64,
    },
}

impl Event {
    pub fn kind(&self) -> &'static str {
        match self {
            Event::MaterialAccountOpened { .. } => "material_account_opened",
            Event::MaterialRestocked { .. } => "material_restocked",
            Event::MaterialAdjusted { .. } => "material_adjusted",
            Event::OrderSubmitted { .. } => "order_submitted",
            Event::OrderApproved { .. } => "order_approved",
            Event::OrderRejected { .. } => "order_rejected",
            Event::OrderCancelled { .. } => "order_cancelled",
            Event::OrderCompleted { .. } => "order_completed",
            Event::OrderReopened { .. } => "order_reopened",
            Event::JobsCreated { .. } => "jobs_created",
            Event::JobToppedUp { .. } => "job_topped_up",
            Event::MaterialReservedForJobs { .. } => "material_reserved_for_jobs",
            Event::MaterialShort { .. } => "material_short",
            Event::JobDispatched { .. } => "job_dispatched",
            Event::JobLoaded { .. } => "job_loaded",
            Event::JobAwaitingUnload { .. } => "job_awaiting_unload",
            Event::JobRequeued { .. } => "job_requeued",
            Event::JobStarted { .. } => "job_started",
            Event::JobFinished { .. } => "job_finished",
            Event::JobInterrupted { .. } => "job_interrupted",
            Event::JobResumed { .. } => "job_resumed",
            Event::JobResolved { .. } => "job_resolved",
            Event::UnitScrapped { .. } => "unit_scrapped",
            Event::MachineState { .. } => "machine_state",
            Event::MachineMaintenance { .. } => "machine_maintenance",
            Event::MachineCommanded { .. } => "machine_commanded",
            Event::MaintenanceDue { .. } => "maintenance_due",
            Event::MaintenanceDone { .. } => "maintenance_done",
            Event::AccountAdded { .. } => "account_added",
            Event::AccountRoleChanged { .. } => "account_role_changed",
            Event::AccountPasswordSet { .. } => "account_password_set",
            Event::AccountDisabled { .. } => "account_disabled",
            Event::ApiTokenCreated { .. } => "api_token_created",
            Event::ApiTokenRevoked { .. } => "api_token_revoked",
        }
    }

    pub fn order_id(&self) -> Option<&str> {
        match self {
            Event::OrderSubmitted { order_id, .. }
            | Event::OrderApproved { order_id, .. }
            | Event::OrderRejected { order_id, .. }
            | Event::OrderCancelled { order_id, .. }
            | Event::OrderCompleted { order_id, .. }
            | Event::OrderReopened { order_id, .. }
            | Event::JobsCreated { order_id, .. }
            | Event::JobToppedUp { order_id, .. }
            | Event::MaterialReservedForJobs { order_id, .. }
            | Event::MaterialShort { order_id, .. }
            | Event::JobDispatched { order_id, .. }
            | Event::JobLoaded { order_id, .. }
            | Event::JobAwaitingUnload { order_id, .. }
            | Event::JobRequeued { order_id, .. }
            | Event::JobStarted { order_id, .. }
            | Event::JobFinished { order_id, .. }
            | Event::JobInterrupted { order_id, .. }
            | Event::JobResumed { order_id, .. }
            | Event::JobResolved { order_id, .. }
            | Event::UnitScrapped { order_id, .. } => Some(order_id),
            _ => None,
        }
    }

    fn job_id(&self) -> Option<i64> {
        match self {
            Event::JobToppedUp { job_id, .. }
            | Event::MaterialShort { job_id, .. }
            | Event::JobDispatched { job_id, .. }
            | Event::JobLoaded { job_id, .. }
            | Event::JobAwaitingUnload { job_id, .. }
            | Event::JobRequeued { job_id, .. }
            | Event::JobStarted { job_id, .. }
            | Event::JobFinished { job_id, .. }
            | Event::JobInterrupted { job_id, .. }
            | Event::JobResumed { job_id, .. }
            | Event::JobResolved { job_id, .. }
            | Event::UnitScrapped { job_id, .. } => Some(*job_id),
            _ => None,
        }
    }

    pub fn machine_id(&self) -> Option<&str> {
        match self {
            Event::JobDispatched { machine_id, .. }
            | Event::JobLoaded { machine_id, .. }
            | Event::JobAwaitingUnload { machine_id, .. }
            | Event::JobRequeued { machine_id, .. }
            | Event::JobStarted { machine_id, .. }
            | Event::JobFinished { machine_id, .. }
            | Event::JobInterrupted { machine_id, .. }
            | Event::JobResumed { machine_id, .. }
            | Event::MachineState { machine_id, .. }
            | Event::MachineMaintenance { machine_id, .. }
            | Event::MachineCommanded { machine_id, .. }
            | Event::MaintenanceDue { machine_id, .. }
            | Event::MaintenanceDone { machine_id, .. } => Some(machine_id),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct EventRecord {
    pub seq: i64,
    pub at_ms: i64,
    pub actor: String,
    pub event: Event,
}

pub async fn append(
    tx: &mut Transaction<'static, Any>,
    actor: &str,
    at_ms: i64,
    event: Event,
) -> Result<EventRecord, StoreError> {
    let seq: i64 =
        sqlx::query_scalar("SELECT CAST(COALESCE(MAX(seq), 0) + 1 AS BIGINT) FROM events")
            .fetch_one(&mut **tx)
            .await?;
    let data = serde_json::to_string(&event).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query(
        "INSERT INTO events (seq, at_ms, actor, kind, order_id, job_id, machine_id, data) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(seq)
    .bind(at_ms)
    .bind(actor)
    .bind(event.kind())
    .bind(event.order_id().map(str::to_string))
    .bind(event.job_id())
    .bind(event.machine_id().map(str::to_string))
    .bind(data)
    .execute(&mut **tx)
    .await?;
    Ok(EventRecord {
        seq,
        at_ms,
        actor: actor.to_string(),
        event,
    })
}

#[derive(sqlx::FromRow)]
struct EventRow {
    seq: i64,
    at_ms: i64,
    actor: String,
    data: String,
}

impl TryFrom<EventRow> for EventRecord {
    type Error = sqlx::Error;

    fn try_from(row: EventRow) -> Result<Self, sqlx::Error> {
        Ok(EventRecord {
            event: serde_json::from_str(&row.data).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
            seq: row.seq,
            at_ms: row.at_ms,
            actor: row.actor,
        })
    }
}

pub async fn list(
    pool: &sqlx::AnyPool,
    after: i64,
    limit: i64,
    order_id: Option<&str>,
) -> Result<Vec<EventRecord>, StoreError> {
    let rows: Vec<EventRow> = sqlx::query_as(
        "SELECT seq, at_ms, actor, data FROM events \
         WHERE seq > $1 AND ($2 = '' OR order_id = $2) ORDER BY seq LIMIT $3",
    )
    .bind(after)
    .bind(order_id.unwrap_or(""))
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(EventRecord::try_from)
        .collect::<Result<_, _>>()?)
}

/// What the log says the state is.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Replayed {
    /// order id → (state, good, scrapped)
    pub orders: BTreeMap<String, (String, i64, i64)>,
    /// job id → (state, good, scrapped)
    pub jobs: BTreeMap<i64, (String, i64, i64)>,
    /// stock account → (on hand, reserved), in thousandths
    pub stock: BTreeMap<String, (i64, i64)>,
    /// (machine, maintenance task) → due
    pub maintenance: BTreeMap<(String, String), bool>,
}

pub fn replay<'a>(records: impl IntoIterator<Item = &'a EventRecord>) -> Replayed {
    let mut r = Replayed::default();
    let reserve = |stock: &mut BTreeMap<String, (i64, i64)>, draws: &[Draw], sign: i64| {
        for d in draws {
            stock.entry(d.account.clone()).or_default().1 += sign * d.amount.0;
        }
    };
    for record in records {
        match &record.event {
            Event::MaterialAccountOpened {
                account, on_hand, ..
            } => {
                r.stock.insert(account.clone(), (on_hand.0, 0));
            }
            Event::MaterialRestocked {
                account, amount, ..
            } => {
                r.stock.entry(account.clone()).or_default().0 += amount.0;
            }
            Event::MaterialAdjusted { account, delta, .. } => {
                r.stock.entry(account.clone()).or_default().0 += delta;
            }
            Event::OrderSubmitted { order_id, .. } => {
                r.orders
                    .insert(order_id.clone(), ("submitted".into(), 0, 0));
            }
            Event::OrderApproved { order_id, reserved } => {
                set_state(&mut r, order_id, "approved");
                reserve(&mut r.stock, reserved, 1);
            }
            Event::OrderRejected { order_id, .. } => set_state(&mut r, order_id, "rejected"),
            Event::OrderCancelled {
                order_id,
                released,
                cancelled_jobs,
                ..
            } => {
                set_state(&mut r, order_id, "cancelled");
                reserve(&mut r.stock, released, -1);
                for job in cancelled_jobs {
                    if let Some(j) = r.jobs.get_mut(job) {
                        j.0 = "cancelled".into();
                    }
                }
            }
            Event::OrderCompleted { order_id, released } => {
                set_state(&mut r, order_id, "completed");
                reserve(&mut r.stock, released, -1);
            }
            Event::OrderReopened { order_id, .. } => set_state(&mut r, order_id, "in_progress"),
            Event::JobsCreated { jobs, reserved, .. } => {
                for job in jobs {
                    r.jobs.insert(job.job_id, ("planned".into(), 0, 0));
                }
                reserve(&mut r.stock, reserved, 1);
            }
            Event::MaterialReservedForJobs { reserved, .. } => reserve(&mut r.stock, reserved, 1),
            Event::JobDispatched {
                order_id,
                job_id,
                consumed,
                awaiting_load,
                ..
            } => {
                let state = if *awaiting_load {
                    "awaiting_load"
                } else {
                    "dispatched"
                };
                set_job(&mut r, *job_id, state);
                for d in consumed {
                    let s = r.stock.entry(d.account.clone()).or_default();
                    s.0 -= d.amount.0;
                    s.1 -= d.amount.0;
                }
                if r.orders.get(order_id).is_some_and(|o| o.0 == "approved") {
                    set_state(&mut r, order_id, "in_progress");
                }
            }
            Event::JobRequeued {
                job_id,
                returned,
                cancelled,
                released,
                ..
            } => {
                set_job(
                    &mut r,
                    *job_id,
                    if *cancelled { "cancelled" } else { "planned" },
                );
                for d in returned {
                    let s = r.stock.entry(d.account.clone()).or_default();
                    s.0 += d.amount.0;
                    s.1 += d.amount.0;
                }
                reserve(&mut r.stock, released, -1);
            }
            Event::JobLoaded { job_id, .. } => set_job(&mut r, *job_id, "dispatched"),
            Event::JobStarted { job_id, .. } => set_job(&mut r, *job_id, "running"),
            Event::JobAwaitingUnload { job_id, .. } => set_job(&mut r, *job_id, "awaiting_unload"),
            Event::JobFinished {
                order_id,
                job_id,
                state,
                good,
                scrapped,
                final_step,
                ..
            } => {
                if let Some(j) = r.jobs.get_mut(job_id) {
                    *j = (state.clone(), *good, *scrapped);
                }
                count_units(&mut r, order_id, *good, *scrapped, *final_step);
            }
            Event::JobInterrupted { job_id, .. } => set_job(&mut r, *job_id, "interrupted"),
            Event::JobResumed { job_id, .. } => set_job(&mut r, *job_id, "dispatched"),
            Event::JobResolved {
                order_id,
                job_id,
                good,
                scrapped,
                final_step,
                ..
            } => {
                if let Some(j) = r.jobs.get_mut(job_id) {
                    *j = ("done".into(), *good, *scrapped);
                }
                count_units(&mut r, order_id, *good, *scrapped, *final_step);
            }
            Event::UnitScrapped {
                order_id,
                job_id,
                final_step,
                ..
            } => {
                if let Some(j) = r.jobs.get_mut(job_id) {
                    j.1 -= 1;
                    j.2 += 1;
                }
                if let Some(o) = r.orders.get_mut(order_id) {
                    o.2 += 1;
                    if *final_step {
                        o.1 -= 1;
                    }
                }
            }
            Event::MaintenanceDue { machine_id, task } => {
                r.maintenance
                    .insert((machine_id.clone(), task.clone()), true);
            }
            Event::MaintenanceDone {
                machine_id, task, ..
            } => {
                r.maintenance
                    .insert((machine_id.clone(), task.clone()), false);
            }
            Event::JobToppedUp { .. }
            | Event::MaterialShort { .. }
            | Event::MachineState { .. }
            | Event::MachineMaintenance { .. }
            | Event::MachineCommanded { .. }
            | Event::AccountAdded { .. }
            | Event::AccountRoleChanged { .. }
            | Event::AccountPasswordSet { .. }
            | Event::AccountDisabled { .. }
            | Event::ApiTokenCreated { .. }
            | Event::ApiTokenRevoked { .. } => {}
        }
    }
    r
}

fn set_state(r: &mut Replayed, order_id: &str, state: &str) {
    if let Some(o) = r.orders.get_mut(order_id) {
        o.0 = state.to_string();
    }
}

fn set_job(r: &mut Replayed, job_id: i64, state: &str) {
    if let Some(j) = r.jobs.get_mut(&job_id) {
        j.0 = state.to_string();
    }
}

fn count_units(r: &mut Replayed, order_id: &str, good: i64, scrapped: i64, final_step: bool) {
    if let Some(o) = r.orders.get_mut(order_id) {
        o.2 += scrapped;
        if final_step {
            o.1 += good;
        }
    }
}

/// The same three views read from the state tables, to compare with [`replay`].
pub async fn current(pool: &sqlx::AnyPool) -> Result<Replayed, StoreError> {
    let orders: Vec<(String, String, i64, i64)> =
        sqlx::query_as("SELECT id, state, good, scrapped FROM orders")
            .fetch_all(pool)
            .await?;
    let jobs: Vec<(i64, String, i64, i64)> =
        sqlx::query_as("SELECT id, state, good, scrapped FROM jobs")
            .fetch_all(pool)
            .await?;
    let stock: Vec<(String, i64, i64)> =
        sqlx::query_as("SELECT id, on_hand, reserved FROM materials")
            .fetch_all(pool)
            .await?;
    let maintenance: Vec<(String, String, i64)> =
        sqlx::query_as("SELECT machine_id, task, due FROM maintenance")
            .fetch_all(pool)
            .await?;
    Ok(Replayed {
        maintenance: maintenance
            .into_iter()
            .map(|(machine, task, due)| ((machine, task), due == 1))
            .collect(),
        orders: orders
            .into_iter()
            .map(|(id, state, good, scrapped)| (id, (state, good, scrapped)))
            .collect(),
        jobs: jobs
            .into_iter()
            .map(|(id, state, good, scrapped)| (id, (state, good, scrapped)))
            .collect(),
        stock: stock
            .into_iter()
            .map(|(id, on_hand, reserved)| (id, (on_hand, reserved)))
            .collect(),
    })
}
