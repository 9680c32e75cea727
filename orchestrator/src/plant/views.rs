//! Read models for the API and CLI: what an order, job, machine or stock account looks like
//! from outside. Reads go straight to the pool; they never wait on the writer.

use std::collections::BTreeMap;

use microfab_drivers::ResumePoint;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::maintenance::MaintenanceCounter;
use super::state::{JobState, MachineState, OrderState, sql_list};
use super::{Etas, Plant, PlantError, Result};
use crate::amount::Amount;
use crate::store::{Event, format_ms};

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StepView {
    pub id: String,
    pub capability: String,
    pub program: Option<String>,
    pub units_per_run: i64,
    pub good: i64,
    pub scrapped: i64,
    pub after: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OrderView {
    pub id: String,
    pub state: OrderState,
    pub state_reason: Option<String>,
    pub product: String,
    pub maker: String,
    pub priority: String,
    pub quantity: i64,
    /// Finished units that passed every step.
    pub good: i64,
    /// Pieces scrapped at any step (each one replaced).
    pub scrapped: i64,
    /// `quantity - good`: units still to make.
    pub remaining: i64,
    pub due: String,
    pub submitted: String,
    /// What the pre-screen flagged for the operator.
    pub prescreen: Vec<String>,
    pub source_name: String,
    pub steps: Vec<StepView>,
    /// When the current plan expects the order's last run to end: set for every approved or
    /// in-progress order the plan covers, null for closed orders and before the first plan.
    pub eta: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JobView {
    pub id: i64,
    pub order_id: String,
    pub step: String,
    pub units: i64,
    pub state: JobState,
    pub machine_id: Option<String>,
    pub good: i64,
    pub scrapped: i64,
    pub reason: Option<String>,
    pub waiting_for_material: bool,
    /// For an interrupted run the driver could place: where it could go on from
    /// (`POST /api/v1/jobs/{id}/resume`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resume: Option<ResumeView>,
}

/// Where an interrupted run stopped, in lines of its program file (1-based).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ResumeView {
    /// The first line whose command the machine did not acknowledge: the default place to
    /// go on from.
    pub next_line: u32,
    /// Lines sent but not acknowledged: they may or may not have run.
    pub in_doubt: Vec<u32>,
    /// The latest line a resume may start from without skipping a command that may never
    /// have run.
    pub latest_start: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MachineView {
    pub id: String,
    pub name: String,
    pub capabilities: Vec<String>,
    pub envelope_mm: [f64; 3],
    pub driver: String,
    /// offline | idle | busy | paused | alarm | maintenance | held | unavailable. `idle` only
    /// when nothing holds the machine; `held` is a connected machine keeping an interrupted
    /// run's pieces until an operator resolves or resumes it, or waiting for an operator to
    /// load or unload a run.
    pub state: String,
    pub reason: Option<String>,
    pub current_job: Option<i64>,
    pub setup_family: Option<String>,
    /// Whether the dispatcher may send it a run now: connected, idle, in service, empty and
    /// holding nothing.
    pub free: bool,
    /// What keeps it from taking work and needs a person: empty when nothing does.
    pub holds: Vec<MachineHold>,
    /// How long it has waited on operators (loads and unloads), in total, the current wait
    /// included (ms).
    #[serde(default)]
    pub held_up_ms: i64,
    /// Each maintenance task of its config: runs and run hours since last done, against the
    /// interval.
    #[serde(default)]
    pub maintenance: Vec<MaintenanceCounter>,
}

/// One reason a machine takes no work until an operator acts.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MachineHold {
    /// interrupted_run | awaiting_load | awaiting_unload | maintenance | maintenance_due |
    /// waiting_for_operator | paused | alarm
    pub kind: String,
    /// The run it holds (`interrupted_run`, `awaiting_load`, `awaiting_unload`).
    pub job_id: Option<i64>,
    /// Since when (RFC 3339), where the log says.
    pub since: Option<String>,
    /// Why: the interruption, the maintenance reason (or the task due), what the machine waits
    /// for, the alarm.
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MaterialView {
    pub id: String,
    pub material: String,
    pub unit: String,
    pub owner: String,
    pub origin: String,
    pub on_hand: Amount,
    pub reserved: Amount,
    pub available: Amount,
    pub reorder_level: Amount,
    pub below_reorder_level: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UnitView {
    pub id: i64,
    pub order_id: String,
    pub step: String,
    pub job_id: i64,
    pub machine_id: Option<String>,
    pub result: String,
    pub reason: Option<String>,
}

#[derive(sqlx::FromRow)]
struct OrderRow {
    id: String,
    state: OrderState,
    state_reason: Option<String>,
    product: String,
    maker: String,
    priority: String,
    quantity: i64,
    good: i64,
    scrapped: i64,
    due_ms: i64,
    submitted_ms: i64,
    prescreen_json: String,
    source_name: String,
}

fn order_view(row: OrderRow, steps: Vec<StepView>, etas: &Etas) -> OrderView {
    // A plan made before the order closed may still list it: only an open order has an ETA.
    let eta = row
        .state
        .is_active()
        .then(|| etas.by_order.get(&row.id).copied().map(format_ms))
        .flatten();
    OrderView {
        id: row.id,
        state: row.state,
        state_reason: row.state_reason,
        product: row.product,
        maker: row.maker,
        priority: row.priority,
        quantity: row.quantity,
        good: row.good,
        scrapped: row.scrapped,
        remaining: row.quantity - row.good,
        due: format_ms(row.due_ms),
        submitted: format_ms(row.submitted_ms),
        prescreen: serde_json::from_str(&row.prescreen_json).unwrap_or_default(),
        source_name: row.source_name,
        steps,
        eta,
    }
}

const ORDER_COLUMNS: &str = "id, state, state_reason, product, maker, priority, quantity, good, scrapped, due_ms, submitted_ms, prescreen_json, source_name";

/// A machine view's `state`: maintenance, then a held run (interrupted, or awaiting its load
/// or unload), show over idle or offline, never over what we do not know.
pub fn shown_machine_state(
    state: MachineState,
    maintenance: bool,
    holding_run: bool,
) -> String {
    match state {
        MachineState::Idle | MachineState::Offline if maintenance => "maintenance".into(),
        MachineState::Idle if holding_run => "held".into(),
        _ => state.to_string(),
    }
}

/// Every `state` a machine view can show, in the order the API documents them.
pub const MACHINE_VIEW_STATES: [&str; 8] = [
    "offline",
    "idle",
    "busy",
    "paused",
    "alarm",
    "maintenance",
    "held",
    "unavailable",
];

impl Plant {
    pub async fn orders(&self, state: Option<&str>, maker: Option<&str>) -> Result<Vec<OrderView>> {
        let rows: Vec<OrderRow> = sqlx::query_as(&format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE ($1 = '' OR state = $1) AND ($2 = '' OR maker = $2) ORDER BY seq"
        ))
        .bind(state.unwrap_or(""))
        .bind(maker.unwrap_or(""))
        .fetch_all(&self.store.pool)
        .await?;
        let etas = self.etas.current();
        let mut views = Vec::new();
        for row in rows {
            let steps = self.steps(&row.id).await?;
            views.push(order_view(row, steps, &etas));
        }
        Ok(views)
    }

    pub async fn order(&self, order_id: &str) -> Result<OrderView> {
        let row: OrderRow =
            sqlx::query_as(&format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1"))
                .bind(order_id)
                .fetch_optional(&self.store.pool)
                .await?
                .ok_or_else(|| PlantError::NotFound(format!("order '{order_id}'")))?;
        Ok(order_view(
            row,
            self.steps(order_id).await?,
            &self.etas.current(),
        ))
    }

    async fn steps(&self, order_id: &str) -> Result<Vec<StepView>> {
        let rows: Vec<StepRow> = sqlx::query_as(
            "SELECT step_id, capability, program_name, units_per_run, good, scrapped, predecessors_json \
             FROM steps WHERE order_id = $1 ORDER BY step_index",
        )
        .bind(order_id)
        .fetch_all(&self.store.pool)
        .await?;
        let ids: Vec<String> = rows.iter().map(|r| r.step_id.clone()).collect();
        Ok(rows
            .into_iter()
            .map(|r| {
                let predecessors: Vec<usize> =
                    serde_json::from_str(&r.predecessors_json).unwrap_or_default();
                StepView {
                    id: r.step_id,
                    capability: r.capability,
                    program: r.program_name,
                    units_per_run: r.units_per_run,
                    good: r.good,
                    scrapped: r.scrapped,
                    after: predecessors
                        .iter()
                        .filter_map(|p| ids.get(*p).cloned())
                        .collect(),
                }
            })
            .collect())
    }

    pub async fn jobs(
        &self,
        order_id: Option<&str>,
        machine_id: Option<&str>,
        state: Option<&str>,
    ) -> Result<Vec<JobView>> {
        let rows: Vec<JobRow> = sqlx::query_as(
            "SELECT j.id AS id, j.order_id AS order_id, s.step_id AS step_id, j.units AS units, j.state AS state, \
             j.machine_id AS machine_id, j.good AS good, j.scrapped AS scrapped, j.reason AS reason, \
             j.material_reserved AS material_reserved, j.resume_json AS resume_json \
             FROM jobs j JOIN steps s ON s.order_id = j.order_id AND s.step_index = j.step_index \
             WHERE ($1 = '' OR j.order_id = $1) AND ($2 = '' OR j.machine_id = $2) AND ($3 = '' OR j.state = $3) ORDER BY j.id",
        )
        .bind(order_id.unwrap_or(""))
        .bind(machine_id.unwrap_or(""))
        .bind(state.unwrap_or(""))
        .fetch_all(&self.store.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let resume = r
                    .resume_json
                    .filter(|_| r.state == JobState::Interrupted)
                    .and_then(|json| serde_json::from_str::<ResumePoint>(&json).ok())
                    .map(|point| ResumeView {
                        latest_start: point.latest_start(),
                        next_line: point.next_line,
                        in_doubt: point.in_doubt,
                    });
                JobView {
                    resume,
                    id: r.id,
                    order_id: r.order_id,
                    step: r.step_id,
                    units: r.units,
                    waiting_for_material: r.state == JobState::Planned && r.material_reserved == 0,
                    state: r.state,
                    machine_id: r.machine_id,
                    good: r.good,
                    scrapped: r.scrapped,
                    reason: r.reason,
                }
            })
            .collect())
    }

    pub async fn machines(&self) -> Result<Vec<MachineView>> {
        self.machine_views(None).await
    }

    /// Every machine, or the one with id `only`.
    async fn machine_views(&self, only: Option<&str>) -> Result<Vec<MachineView>> {
        let now = crate::store::now_ms();
        // Held-up time is the jobs' own record of it (`held_ms`), plus the wait going on now.
        let rows: Vec<MachineRow> = sqlx::query_as(
            "SELECT id, name, capabilities_json, envelope_json, driver_kind, state, state_reason, maintenance, \
             current_job, setup_family, \
             CAST(COALESCE((SELECT SUM(j.held_ms) FROM jobs j WHERE j.machine_id = machines.id), 0) AS BIGINT) AS held_ms, \
             (SELECT MIN(j.awaiting_since_ms) FROM jobs j WHERE j.machine_id = machines.id AND j.awaiting_since_ms IS NOT NULL) AS waiting_since \
             FROM machines WHERE ($1 = '' OR id = $1) ORDER BY id",
        )
        .bind(only.unwrap_or(""))
        .fetch_all(&self.store.pool)
        .await?;
        let mut views = Vec::with_capacity(rows.len());
        for r in rows {
            let maintenance = r.maintenance == 1;
            let state = r.state;
            let mut holds = self
                .machine_holds(&r.id, state, r.state_reason.as_deref(), maintenance)
                .await?;
            let counters = self.maintenance_counters(&r.id, now).await?;
            holds.extend(
                counters
                    .iter()
                    .filter(|c| c.due)
                    .map(MaintenanceCounter::hold),
            );
            let holding_run = holds.iter().any(|h| {
                matches!(
                    h.kind.as_str(),
                    "interrupted_run" | "awaiting_load" | "awaiting_unload"
                )
            });
            views.push(MachineView {
                free: state == MachineState::Idle && r.current_job.is_none() && holds.is_empty(),
                state: shown_machine_state(state, maintenance, holding_run),
                id: r.id,
                name: r.name,
                capabilities: serde_json::from_str(&r.capabilities_json).unwrap_or_default(),
                envelope_mm: serde_json::from_str(&r.envelope_json).unwrap_or_default(),
                driver: r.driver_kind,
                reason: r.state_reason,
                current_job: r.current_job,
                setup_family: r.setup_family,
                held_up_ms: r.held_ms + r.waiting_since.map_or(0, |since| (now - since).max(0)),
                holds,
                maintenance: counters,
            });
        }
        Ok(views)
    }

    /// What holds a machine until a person acts: interrupted runs on it, maintenance, and a
    /// machine stopped waiting for its operator, paused, or in alarm.
    async fn machine_holds(
        &self,
        machine_id: &str,
        state: MachineState,
        state_reason: Option<&str>,
        maintenance: bool,
    ) -> Result<Vec<MachineHold>> {
        let mut holds = Vec::new();
        let held: Vec<(i64, Option<String>, Option<i64>)> = sqlx::query_as(
            "SELECT j.id AS id, j.reason AS reason, \
             (SELECT MAX(e.at_ms) FROM events e WHERE e.job_id = j.id AND e.kind = 'job_interrupted') AS since \
             FROM jobs j WHERE j.machine_id = $1 AND j.state = $2 ORDER BY j.id",
        )
        .bind(machine_id)
        .bind(JobState::Interrupted)
        .fetch_all(&self.store.pool)
        .await?;
        for (job_id, reason, since) in held {
            holds.push(MachineHold {
                kind: "interrupted_run".into(),
                job_id: Some(job_id),
                since: since.map(format_ms),
                reason,
            });
        }
        let awaiting: Vec<(i64, JobState, Option<i64>)> = sqlx::query_as(&format!(
            "SELECT id, state, awaiting_since_ms FROM jobs WHERE machine_id = $1 AND state IN ({}) ORDER BY id",
            sql_list(&JobState::AWAITING_OPERATOR)
        ))
        .bind(machine_id)
        .fetch_all(&self.store.pool)
        .await?;
        for (job_id, state, since) in awaiting {
            holds.push(MachineHold {
                kind: state.as_str().into(),
                job_id: Some(job_id),
                since: since.map(format_ms),
                reason: Some(
                    match state {
                        JobState::AwaitingLoad => "waiting for an operator to load the run",
                        _ => "waiting for an operator to unload and inspect the run",
                    }
                    .into(),
                ),
            });
        }
        if maintenance {
            let last = self
                .last_machine_event(machine_id, "machine_maintenance")
                .await?;
            holds.push(MachineHold {
                kind: "maintenance".into(),
                job_id: None,
                since: last.as_ref().map(|(at, _)| format_ms(*at)),
                reason: last.and_then(|(_, event)| match event {
                    Event::MachineMaintenance { reason, .. } => Some(reason),
                    _ => None,
                }),
            });
        }
        let kind = match (state, state_reason) {
            (MachineState::Paused, Some(_)) => Some("waiting_for_operator"),
            (MachineState::Paused, None) => Some("paused"),
            (MachineState::Alarm, _) => Some("alarm"),
            _ => None,
        };
        if let Some(kind) = kind {
            let since = self.last_machine_event(machine_id, "machine_state").await?;
            holds.push(MachineHold {
                kind: kind.into(),
                job_id: None,
                since: since.map(|(at, _)| format_ms(at)),
                reason: state_reason.map(str::to_string),
            });
        }
        Ok(holds)
    }

    async fn last_machine_event(
        &self,
        machine_id: &str,
        kind: &str,
    ) -> Result<Option<(i64, Event)>> {
        let row: Option<(i64, String)> = sqlx::query_as(
            "SELECT at_ms, data FROM events WHERE machine_id = $1 AND kind = $2 ORDER BY seq DESC LIMIT 1",
        )
        .bind(machine_id)
        .bind(kind)
        .fetch_optional(&self.store.pool)
        .await?;
        row.map(|(at_ms, data)| {
            let event = serde_json::from_str(&data)
                .map_err(|e| PlantError::Conflict(format!("stored event is unreadable: {e}")))?;
            Ok((at_ms, event))
        })
        .transpose()
    }

    pub async fn machine(&self, machine_id: &str) -> Result<MachineView> {
        self.machine_views(Some(machine_id))
            .await?
            .into_iter()
            .find(|m| m.id == machine_id)
            .ok_or_else(|| PlantError::NotFound(format!("machine '{machine_id}'")))
    }

    pub async fn materials(&self) -> Result<Vec<MaterialView>> {
        let rows: Vec<MaterialRow> = sqlx::query_as(
            "SELECT id, material, unit, owner, origin, on_hand, reserved, reorder_level FROM materials ORDER BY id",
        )
        .fetch_all(&self.store.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let on_hand = Amount(r.on_hand);
                let reserved = Amount(r.reserved);
                let reorder_level = Amount(r.reorder_level);
                MaterialView {
                    id: r.id,
                    material: r.material,
                    unit: r.unit,
                    owner: r.owner,
                    origin: r.origin,
                    on_hand,
                    reserved,
                    available: on_hand - reserved,
                    reorder_level,
                    below_reorder_level: on_hand < reorder_level,
                }
            })
            .collect())
    }

    /// Material the orders drew, per material and unit.
    pub async fn consumed_by(&self, order_ids: &[String]) -> Result<Vec<(String, String, Amount)>> {
        let mut total: BTreeMap<(String, String), Amount> = BTreeMap::new();
        for order_id in order_ids {
            let rows: Vec<(String, String, i64)> = sqlx::query_as(
                "SELECT m.material AS material, m.unit AS unit, CAST(SUM(r.consumed) AS BIGINT) AS consumed \
                 FROM reservations r JOIN materials m ON m.id = r.account WHERE r.order_id = $1 \
                 GROUP BY m.material, m.unit",
            )
            .bind(order_id)
            .fetch_all(&self.store.pool)
            .await?;
            for (material, unit, consumed) in rows {
                let sum = total.entry((material, unit)).or_default();
                *sum = *sum + Amount(consumed);
            }
        }
        Ok(total
            .into_iter()
            .map(|((material, unit), amount)| (material, unit, amount))
            .collect())
    }

    pub async fn units(&self, order_id: &str) -> Result<Vec<UnitView>> {
        let rows: Vec<UnitRow> = sqlx::query_as(
            "SELECT u.id AS id, u.order_id AS order_id, s.step_id AS step_id, u.job_id AS job_id, \
             u.machine_id AS machine_id, u.result AS result, u.reason AS reason \
             FROM units u JOIN steps s ON s.order_id = u.order_id AND s.step_index = u.step_index \
             WHERE u.order_id = $1 ORDER BY u.id",
        )
        .bind(order_id)
        .fetch_all(&self.store.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| UnitView {
                id: r.id,
                order_id: r.order_id,
                step: r.step_id,
                job_id: r.job_id,
                machine_id: r.machine_id,
                result: r.result,
                reason: r.reason,
            })
            .collect())
    }
}

/// One item of the lists above, for an operation's answer.
impl Plant {
    pub async fn job(&self, job_id: i64) -> Result<JobView> {
        self.jobs(None, None, None)
            .await?
            .into_iter()
            .find(|j| j.id == job_id)
            .ok_or_else(|| PlantError::NotFound(format!("job {job_id}")))
    }

    pub async fn material(&self, account: &str) -> Result<MaterialView> {
        self.materials()
            .await?
            .into_iter()
            .find(|m| m.id == account)
            .ok_or_else(|| PlantError::NotFound(format!("stock account '{account}'")))
    }

    /// The order a unit belongs to.
    pub async fn order_of_unit(&self, unit_id: i64) -> Result<String> {
        Ok(
            sqlx::query_scalar("SELECT order_id FROM units WHERE id = $1")
                .bind(unit_id)
                .fetch_one(&self.store.pool)
                .await?,
        )
    }
}

#[derive(sqlx::FromRow)]
struct StepRow {
    step_id: String,
    capability: String,
    program_name: Option<String>,
    units_per_run: i64,
    good: i64,
    scrapped: i64,
    predecessors_json: String,
}

#[derive(sqlx::FromRow)]
struct JobRow {
    id: i64,
    order_id: String,
    step_id: String,
    units: i64,
    state: JobState,
    machine_id: Option<String>,
    good: i64,
    scrapped: i64,
    reason: Option<String>,
    material_reserved: i64,
    resume_json: Option<String>,
}

#[derive(sqlx::FromRow)]
struct MachineRow {
    id: String,
    name: String,
    capabilities_json: String,
    envelope_json: String,
    driver_kind: String,
    state: MachineState,
    state_reason: Option<String>,
    maintenance: i64,
    current_job: Option<i64>,
    setup_family: Option<String>,
    held_ms: i64,
    waiting_since: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct MaterialRow {
    id: String,
    material: String,
    unit: String,
    owner: String,
    origin: String,
    on_hand: i64,
    reserved: i64,
    reorder_level: i64,
}

#[derive(sqlx::FromRow)]
struct UnitRow {
    id: i64,
    order_id: String,
    step_id: String,
    job_id: i64,
    machine_id: Option<String>,
    result: String,
    reason: Option<String>,
}
