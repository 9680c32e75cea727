//! The read model behind `/metrics`: the plant's production state in a handful of aggregate
//! queries (never one per machine or order), read from the same tables and with the same
//! rules as the API's views, so a metric and the API cannot disagree.

use std::collections::BTreeMap;

use super::maintenance::RUN_MS_SO_FAR;
use super::state::{JobState, MachineState, OrderState, sql_list};
use super::tasks::TaskKind;
use super::views::{MaterialView, shown_machine_state};
use super::{Plant, Result};
use crate::amount::Amount;

/// Upper bounds of the run duration histogram's buckets, in plant seconds: a minute to a day.
pub const DURATION_BUCKETS: [f64; 12] = [
    60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 57600.0, 86400.0,
];

/// Job states whose run is given to a machine and not settled: its units are work in progress.
pub const WIP: [JobState; 5] = [
    JobState::AwaitingLoad,
    JobState::Dispatched,
    JobState::Running,
    JobState::AwaitingUnload,
    JobState::Interrupted,
];

#[derive(Debug, Clone, Default)]
pub struct PlantMetrics {
    /// Good and scrapped units per product and step id, over every order.
    pub units: Vec<StepUnits>,
    /// Orders per state, every state present.
    pub orders: Vec<(OrderState, i64)>,
    /// Approved and in-progress orders.
    pub active_orders: Vec<ActiveOrder>,
    /// Runs per state, every state present.
    pub jobs: Vec<(JobState, i64)>,
    pub wip_units: i64,
    /// Planned runs not yet given to a machine, per capability (every machine capability).
    pub queued_runs: BTreeMap<String, i64>,
    /// Runs done, per capability of their step.
    pub durations: BTreeMap<String, RunDurations>,
    pub machines: Vec<MachineMetrics>,
    /// Operator tasks waiting, per kind, every kind present.
    pub operator_tasks: Vec<(TaskKind, i64)>,
    pub materials: Vec<MaterialMetrics>,
    /// The event log's last sequence number.
    pub last_event_seq: i64,
}

#[derive(Debug, Clone)]
pub struct StepUnits {
    pub product: String,
    pub step: String,
    pub good: i64,
    pub scrapped: i64,
}

#[derive(Debug, Clone)]
pub struct ActiveOrder {
    pub id: String,
    pub product: String,
    pub quantity: i64,
    pub good: i64,
    /// Plant ms, as the order view's `due`.
    pub due_ms: i64,
    /// Plant ms, as the order view's `eta`; `None` while no plan has it.
    pub eta_ms: Option<i64>,
    /// Past its due date now, or planned to end after it.
    pub late: bool,
}

/// Histogram counts over runs done: `planned` (the step's run time at the machine's speed) and
/// `actual` (start to end), in plant seconds.
#[derive(Debug, Clone, Default)]
pub struct RunDurations {
    pub planned: Histogram,
    pub actual: Histogram,
}

/// A histogram as Prometheus counts it: per bucket of [`DURATION_BUCKETS`], how many values
/// are at most its bound (cumulative), their count and sum.
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    pub cumulative: Vec<u64>,
    pub count: u64,
    pub sum: f64,
}

#[derive(Debug, Clone)]
pub struct MachineMetrics {
    pub id: String,
    /// The machine view's `state` (`offline`, `idle`, ..., `maintenance`, `held`).
    pub state: String,
    pub capabilities: Vec<String>,
    /// Wall ms runs were on it, a running one so far (as maintenance counts run hours).
    pub busy_ms: i64,
    /// Wall ms it waited on operators, the current wait included (the view's `held_up_ms`).
    pub held_up_ms: i64,
}

#[derive(Debug, Clone)]
pub struct MaterialMetrics {
    pub account: MaterialView,
    /// Drawn by runs given to machines, over every order's reservation.
    pub consumed: Amount,
}

#[derive(sqlx::FromRow)]
struct MachineRow {
    id: String,
    state: MachineState,
    maintenance: i64,
    capabilities_json: String,
    holding_run: i64,
    busy_ms: i64,
    held_ms: i64,
    waiting_since: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct ActiveOrderRow {
    id: String,
    product: String,
    quantity: i64,
    good: i64,
    due_ms: i64,
}

impl Plant {
    /// The plant's production state at wall instant `now_ms`, for `/metrics`.
    pub async fn metrics_view(&self, now_ms: i64) -> Result<PlantMetrics> {
        let pool = &self.store.pool;
        let units: Vec<(String, String, i64, i64)> = sqlx::query_as(
            "SELECT o.product, s.step_id, CAST(SUM(s.good) AS BIGINT), CAST(SUM(s.scrapped) AS BIGINT) \
             FROM steps s JOIN orders o ON o.id = s.order_id GROUP BY o.product, s.step_id \
             ORDER BY o.product, s.step_id",
        )
        .fetch_all(pool)
        .await?;
        let order_counts: Vec<(OrderState, i64)> =
            sqlx::query_as("SELECT state, CAST(COUNT(*) AS BIGINT) FROM orders GROUP BY state")
                .fetch_all(pool)
                .await?;
        let job_counts: Vec<(JobState, i64)> =
            sqlx::query_as("SELECT state, CAST(COUNT(*) AS BIGINT) FROM jobs GROUP BY state")
                .fetch_all(pool)
                .await?;
        let (wip_units,): (i64,) = sqlx::query_as(&format!(
            "SELECT CAST(COALESCE(SUM(units), 0) AS BIGINT) FROM jobs WHERE state IN ({})",
            sql_list(&WIP)
        ))
        .fetch_one(pool)
        .await?;
        let queued: Vec<(String, i64)> = sqlx::query_as(
            "SELECT s.capability, CAST(COUNT(*) AS BIGINT) FROM jobs j \
             JOIN steps s ON s.order_id = j.order_id AND s.step_index = j.step_index \
             WHERE j.state = $1 GROUP BY s.capability",
        )
        .bind(JobState::Planned)
        .fetch_all(pool)
        .await?;
        let machines = self.machine_metrics(now_ms).await?;
        let mut queued_runs: BTreeMap<String, i64> = machines
            .iter()
            .flat_map(|m| m.capabilities.iter().map(|c| (c.clone(), 0)))
            .collect();
        queued_runs.extend(queued);
        let consumed: BTreeMap<String, i64> = sqlx::query_as::<_, (String, i64)>(
            "SELECT account, CAST(SUM(consumed) AS BIGINT) FROM reservations GROUP BY account",
        )
        .fetch_all(pool)
        .await?
        .into_iter()
        .collect();
        let materials = self
            .materials()
            .await?
            .into_iter()
            .map(|account| MaterialMetrics {
                consumed: Amount(consumed.get(&account.id).copied().unwrap_or(0)),
                account,
            })
            .collect();
        let tasks = self.tasks(now_ms).await?;
        let (last_event_seq,): (i64,) =
            sqlx::query_as("SELECT CAST(COALESCE(MAX(seq), 0) AS BIGINT) FROM events")
                .fetch_one(pool)
                .await?;
        Ok(PlantMetrics {
            units: units
                .into_iter()
                .map(|(product, step, good, scrapped)| StepUnits {
                    product,
                    step,
                    good,
                    scrapped,
                })
                .collect(),
            orders: every_state(OrderState::ALL, &order_counts),
            active_orders: self.active_orders().await?,
            jobs: every_state(JobState::ALL, &job_counts),
            wip_units,
            queued_runs,
            durations: self.run_durations().await?,
            machines,
            operator_tasks: TaskKind::ALL
                .iter()
                .map(|kind| {
                    let waiting = tasks.iter().filter(|t| t.kind == *kind).count();
                    (*kind, waiting as i64)
                })
                .collect(),
            materials,
            last_event_seq,
        })
    }

    async fn active_orders(&self) -> Result<Vec<ActiveOrder>> {
        let rows: Vec<ActiveOrderRow> = sqlx::query_as(&format!(
            "SELECT id, product, quantity, good, due_ms FROM orders WHERE state IN ({}) ORDER BY seq",
            sql_list(&OrderState::ACTIVE)
        ))
        .fetch_all(&self.store.pool)
        .await?;
        let etas = self.etas.current();
        let now = self.clock.now();
        Ok(rows
            .into_iter()
            .map(|row| {
                let eta_ms = etas.by_order.get(&row.id).copied();
                ActiveOrder {
                    late: now > row.due_ms || eta_ms.is_some_and(|eta| eta > row.due_ms),
                    eta_ms,
                    id: row.id,
                    product: row.product,
                    quantity: row.quantity,
                    good: row.good,
                    due_ms: row.due_ms,
                }
            })
            .collect())
    }

    /// Every machine with its view state, busy and held-up time, in one query.
    async fn machine_metrics(&self, now_ms: i64) -> Result<Vec<MachineMetrics>> {
        let rows: Vec<MachineRow> = sqlx::query_as(&format!(
            "SELECT id, state, maintenance, capabilities_json, \
             CAST(CASE WHEN EXISTS (SELECT 1 FROM jobs j WHERE j.machine_id = machines.id AND j.state IN ({holding})) THEN 1 ELSE 0 END AS BIGINT) AS holding_run, \
             CAST(COALESCE((SELECT SUM({RUN_MS_SO_FAR}) FROM jobs WHERE jobs.machine_id = machines.id AND started_ms IS NOT NULL), 0) AS BIGINT) AS busy_ms, \
             CAST(COALESCE((SELECT SUM(j.held_ms) FROM jobs j WHERE j.machine_id = machines.id), 0) AS BIGINT) AS held_ms, \
             (SELECT MIN(j.awaiting_since_ms) FROM jobs j WHERE j.machine_id = machines.id AND j.awaiting_since_ms IS NOT NULL) AS waiting_since \
             FROM machines ORDER BY id",
            holding = sql_list(&HOLDING),
        ))
        .bind(JobState::Running)
        .bind(now_ms)
        .fetch_all(&self.store.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| MachineMetrics {
                state: shown_machine_state(r.state, r.maintenance == 1, r.holding_run == 1),
                capabilities: serde_json::from_str(&r.capabilities_json).unwrap_or_default(),
                busy_ms: r.busy_ms.max(0),
                held_up_ms: r.held_ms + r.waiting_since.map_or(0, |since| (now_ms - since).max(0)),
                id: r.id,
            })
            .collect())
    }

    /// Planned and actual durations of runs done, per capability, bucketed in SQL: one row per
    /// capability however many runs the plant has made.
    async fn run_durations(&self) -> Result<BTreeMap<String, RunDurations>> {
        // Actual durations are wall ms in the store; plant seconds are wall seconds times the
        // clock's scale, so each bound is compared in wall ms.
        let scale = self.clock.scale();
        let planned = "s.run_seconds * m.speed_factor";
        let actual = "(j.finished_ms - j.started_ms)";
        let mut columns = Vec::new();
        for bound in DURATION_BUCKETS {
            columns.push(format!(
                "CAST(SUM(CASE WHEN {planned} <= {bound:.1} THEN 1 ELSE 0 END) AS BIGINT)"
            ));
        }
        for bound in DURATION_BUCKETS {
            let wall_ms = bound * 1000.0 / scale;
            columns.push(format!(
                "CAST(SUM(CASE WHEN {actual} <= {wall_ms:.3} THEN 1 ELSE 0 END) AS BIGINT)"
            ));
        }
        let sql = format!(
            "SELECT s.capability, CAST(COUNT(*) AS BIGINT), \
             CAST(SUM({planned}) AS DOUBLE PRECISION), CAST(SUM({actual}) AS DOUBLE PRECISION), {} \
             FROM jobs j JOIN steps s ON s.order_id = j.order_id AND s.step_index = j.step_index \
             JOIN machines m ON m.id = j.machine_id \
             WHERE j.state = $1 AND j.started_ms IS NOT NULL AND j.finished_ms IS NOT NULL \
             GROUP BY s.capability ORDER BY s.capability",
            columns.join(", ")
        );
        let rows = sqlx::query(&sql)
            .bind(JobState::Done)
            .fetch_all(&self.store.pool)
            .await?;
        let mut durations = BTreeMap::new();
        for row in rows {
            use sqlx::Row;
            let count = row.try_get::<i64, _>(1)?.max(0) as u64;
            let bucket = |column: usize| -> Result<u64> {
                Ok(row.try_get::<i64, _>(column)?.max(0) as u64)
            };
            let buckets = DURATION_BUCKETS.len();
            durations.insert(
                row.try_get::<String, _>(0)?,
                RunDurations {
                    planned: Histogram {
                        cumulative: (0..buckets).map(|i| bucket(4 + i)).collect::<Result<_>>()?,
                        count,
                        sum: row.try_get(2)?,
                    },
                    actual: Histogram {
                        cumulative: (0..buckets)
                            .map(|i| bucket(4 + buckets + i))
                            .collect::<Result<_>>()?,
                        count,
                        sum: row.try_get::<f64, _>(3)? / 1000.0 * scale,
                    },
                },
            );
        }
        Ok(durations)
    }
}

/// Runs that keep their machine from other work until an operator acts (the view's `held`).
const HOLDING: [JobState; 3] = [
    JobState::Interrupted,
    JobState::AwaitingLoad,
    JobState::AwaitingUnload,
];

/// A count for every state, zero where the query found none, in the states' order.
fn every_state<S: Copy + PartialEq>(all: &[S], counts: &[(S, i64)]) -> Vec<(S, i64)> {
    all.iter()
        .map(|state| {
            let n = counts.iter().find(|(s, _)| s == state).map_or(0, |c| c.1);
            (*state, n)
        })
        .collect()
}
