//! The planner's input, read from the store: machines (idle, busy until when, or out of
//! service), open orders, runs still to dispatch with their readiness and run-level
//! predecessors ([`rules::readiness`]), and the runs on machines now (frozen, with the stage
//! the operator has them in). With `[planner] plan_operators` (the default) also the people:
//! the calendar's shifts over [`SHIFT_HORIZON_MS`], each machine's load and unload time,
//! whether it may run after hours, and the maintenance due on it (done before its next run).
//!
//! The planner lives in plant time (`plant.clock`): `now` is plant time and the store's wall
//! instants are mapped with `clock.to_plant`.

use std::collections::HashMap;

use microfab_planner::{
    FrozenRun, FrozenStage, PlanInput, PlanMachine, PlanOrder, PlanRun, Priority,
};

use super::records::{Tx, step_counts};
use super::rules::{self, OpenRun};
use super::state::{JobState, MachineState, OrderState, sql_list};
use super::{Plant, Result};
use crate::clock::PlantClock;

/// How far ahead the planner sees the shifts (plant time): beyond it the planner counts the
/// plant as always working, so plans should end well within it.
pub const SHIFT_HORIZON_MS: i64 = 14 * 24 * 3_600_000;

#[derive(sqlx::FromRow)]
struct MachineRow {
    id: String,
    capabilities_json: String,
    envelope_json: String,
    state: MachineState,
    maintenance: i64,
    current_job: Option<i64>,
    speed_factor: f64,
    setup_family: Option<String>,
    /// Interrupted runs it holds.
    holding: i64,
}

#[derive(sqlx::FromRow)]
struct OrderRow {
    id: String,
    priority: String,
    due_ms: i64,
    seq: i64,
}

#[derive(sqlx::FromRow)]
struct StepRow {
    step_index: i64,
    step_id: String,
    capability: String,
    run_seconds: f64,
    setup_seconds: f64,
    setup_family: String,
    bbox_json: Option<String>,
}

#[derive(sqlx::FromRow)]
struct JobRow {
    id: i64,
    step_index: i64,
    units: i64,
    state: JobState,
    material_reserved: i64,
    machine_id: Option<String>,
    dispatched_ms: Option<i64>,
    started_ms: Option<i64>,
}

impl Plant {
    /// What the planner needs, read in one transaction so that it is one moment's picture.
    /// `now_ms` is plant time (`self.clock.now()`).
    pub async fn plan_input(&self, now_ms: i64) -> Result<PlanInput> {
        let plan_operators = self.config.planner.plan_operators;
        let mut tx = self.store.pool.begin().await?;
        let machine_rows: Vec<MachineRow> = sqlx::query_as(
            "SELECT id, capabilities_json, envelope_json, state, maintenance, current_job, speed_factor, setup_family, \
             (SELECT COUNT(*) FROM jobs j WHERE j.machine_id = machines.id AND j.state = $1) AS holding \
             FROM machines ORDER BY id",
        )
        .bind(JobState::Interrupted)
        .fetch_all(&mut *tx)
        .await?;
        let maintenance_due = self.maintenance_seconds().await?;
        let mut machines = Vec::new();
        let mut envelopes: HashMap<String, [f64; 3]> = HashMap::new();
        for r in machine_rows {
            // A machine holding an interrupted run waits for the operator: its bed or fixture
            // still has that run's pieces on it.
            let maintenance = r.maintenance == 1 || r.holding > 0;
            let working = r.current_job.is_some()
                && matches!(
                    r.state,
                    MachineState::Idle | MachineState::Busy | MachineState::Paused
                );
            let idle = r.state == MachineState::Idle;
            envelopes.insert(
                r.id.clone(),
                serde_json::from_str(&r.envelope_json).unwrap_or_default(),
            );
            let mut machine = PlanMachine {
                capabilities: serde_json::from_str(&r.capabilities_json).unwrap_or_default(),
                idle: idle && !maintenance && r.current_job.is_none(),
                speed_factor: r.speed_factor,
                current_setup: r.setup_family,
                out_of_service: maintenance || !(idle || working),
                maintenance_seconds: maintenance_due.get(&r.id).copied().unwrap_or(0.0),
                ..PlanMachine::default()
            };
            if plan_operators && let Some(config) = self.config.machine(&r.id) {
                let work = self.config.operator_work(config);
                let seconds = |task: Option<crate::config::OperatorTask>| {
                    task.map_or(0.0, |t| t.minutes * 60.0)
                };
                machine.load_seconds = seconds(work.load);
                machine.unload_seconds = seconds(work.unload);
                machine.after_hours = config.after_hours;
            }
            machines.push(PlanMachine {
                id: r.id,
                ..machine
            });
        }
        let orders: Vec<OrderRow> = sqlx::query_as(&format!(
            "SELECT id, priority, due_ms, seq FROM orders WHERE state IN ({}) ORDER BY seq",
            sql_list(&OrderState::ACTIVE)
        ))
        .fetch_all(&mut *tx)
        .await?;
        let mut plan_orders = Vec::new();
        let mut runs = Vec::new();
        let mut frozen = Vec::new();
        for order in orders {
            let templates = run_templates(&mut tx, &order.id, &machines, &envelopes).await?;
            let (planned, on_machines) = order_runs(
                &mut tx,
                &order.id,
                now_ms,
                &self.clock,
                &machines,
                &templates,
            )
            .await?;
            runs.extend(planned);
            frozen.extend(on_machines);
            plan_orders.push(PlanOrder {
                priority: if order.priority == "public-service" {
                    Priority::PublicService
                } else {
                    Priority::Standard
                },
                id: order.id,
                due: order.due_ms,
                sequence: order.seq,
                ..PlanOrder::default()
            });
        }
        tx.commit().await?;
        if plan_operators {
            let due = self.maintenance_seconds().await?;
            for machine in &mut machines {
                machine.maintenance_seconds = due.get(&machine.id).copied().unwrap_or(0.0);
            }
        }
        for machine in &mut machines {
            machine.available_from = frozen
                .iter()
                .filter(|f| f.machine_id == machine.id)
                .map(|f| f.end)
                .max();
        }
        let shifts = match self.config.calendar() {
            Some(calendar) if plan_operators => {
                calendar.shifts(now_ms, now_ms.saturating_add(SHIFT_HORIZON_MS))
            }
            _ => Vec::new(),
        };
        Ok(PlanInput {
            now: now_ms,
            machines,
            orders: plan_orders,
            runs,
            frozen,
            shifts,
            ..PlanInput::default()
        })
    }
}

/// Per step of the order, the run as the planner sees it before it has an id: what it needs,
/// how long it takes, and the machines whose envelope fits its program (`only_on`, empty
/// when every capable machine fits).
async fn run_templates(
    tx: &mut Tx,
    order_id: &str,
    machines: &[PlanMachine],
    envelopes: &HashMap<String, [f64; 3]>,
) -> Result<HashMap<i64, PlanRun>> {
    let step_rows: Vec<StepRow> = sqlx::query_as(
        "SELECT step_index, step_id, capability, run_seconds, setup_seconds, setup_family, bbox_json \
         FROM steps WHERE order_id = $1",
    )
    .bind(order_id)
    .fetch_all(&mut **tx)
    .await?;
    let mut templates = HashMap::new();
    for r in step_rows {
        let capable: Vec<&PlanMachine> = machines
            .iter()
            .filter(|m| m.can_do(&r.capability))
            .collect();
        let fitting: Vec<String> = capable
            .iter()
            .filter(|m| {
                r.bbox_json.as_deref().is_none_or(|b| {
                    rules::envelope_fits(
                        envelopes[&m.id],
                        rules::bbox_size(serde_json::from_str(b).unwrap_or_default()),
                    )
                })
            })
            .map(|m| m.id.clone())
            .collect();
        templates.insert(
            r.step_index,
            PlanRun {
                order_id: order_id.to_string(),
                step_id: r.step_id,
                only_on: if fitting.len() == capable.len() {
                    Vec::new()
                } else {
                    fitting
                },
                capability: r.capability,
                run_seconds: r.run_seconds,
                setup_seconds: r.setup_seconds,
                setup_family: r.setup_family,
                ..PlanRun::default()
            },
        );
    }
    Ok(templates)
}

/// The order's runs still to dispatch, with their readiness, and its runs on machines now,
/// frozen where they are until their expected end, each at its stage: awaiting its load (not
/// started: it runs after the load), running, or awaiting its unload (finished).
async fn order_runs(
    tx: &mut Tx,
    order_id: &str,
    now_ms: i64,
    clock: &PlantClock,
    machines: &[PlanMachine],
    templates: &HashMap<i64, PlanRun>,
) -> Result<(Vec<PlanRun>, Vec<FrozenRun>)> {
    let steps = step_counts(tx, order_id).await?;
    let jobs: Vec<JobRow> = sqlx::query_as(&format!(
        "SELECT id, step_index, units, state, material_reserved, machine_id, dispatched_ms, started_ms \
         FROM jobs WHERE order_id = $1 AND state IN ({}, {}, '{}') ORDER BY id",
        sql_list(&JobState::ON_MACHINE),
        sql_list(&JobState::AWAITING_OPERATOR),
        JobState::Planned
    ))
    .bind(order_id)
    .fetch_all(&mut **tx)
    .await?;
    let template = |step_index: i64| templates.get(&step_index).cloned().unwrap_or_default();
    let open: Vec<OpenRun> = jobs
        .iter()
        .map(|j| OpenRun {
            id: j.id,
            step_index: j.step_index,
            units: j.units,
            state: j.state,
            material_reserved: j.material_reserved == 1,
        })
        .collect();
    let planned = rules::readiness(&steps, &open)
        .into_iter()
        .zip(jobs.iter().filter(|j| j.state == JobState::Planned))
        .map(|(decided, job)| PlanRun {
            id: decided.run_id,
            ready: decided.ready,
            predecessors: decided.predecessors,
            ..template(job.step_index)
        })
        .collect();
    let frozen = jobs
        .iter()
        .filter(|j| j.state != JobState::Planned)
        .map(|job| {
            let template = template(job.step_index);
            let machine_id = job.machine_id.clone().unwrap_or_default();
            let speed = machines
                .iter()
                .find(|m| m.id == machine_id)
                .map_or(1.0, |m| m.speed_factor);
            let length = (template.run_seconds * speed * 1000.0) as i64;
            let started = job
                .started_ms
                .or(job.dispatched_ms)
                .map_or(now_ms, |wall| clock.to_plant(wall));
            let (stage, start, end) = match job.state {
                JobState::AwaitingLoad => (FrozenStage::AwaitingLoad, now_ms, now_ms + length),
                JobState::AwaitingUnload => (
                    FrozenStage::AwaitingUnload,
                    started.min(now_ms),
                    (started + length).clamp(started.min(now_ms), now_ms),
                ),
                _ => (
                    FrozenStage::Running,
                    started,
                    (started + length).max(now_ms + 1),
                ),
            };
            FrozenRun {
                run_id: job.id,
                order_id: order_id.to_string(),
                machine_id,
                setup_family: template.setup_family,
                start,
                end,
                stage,
            }
        })
        .collect();
    Ok((planned, frozen))
}
