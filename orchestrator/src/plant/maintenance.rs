//! Maintenance steering and the after-hours rule: whether a machine may take its next run now.
//!
//! A machine's maintenance counters (runs started and run hours since each task was last done)
//! are read from the jobs table; the `maintenance` table keeps only when each task was last
//! done and whether it is due. A reached interval is recorded once (`maintenance_due`); the
//! machine then takes no new run (its current one finishes) until an operator has done it
//! (`maintenance_done`, which starts the counters again).

use serde::{Deserialize, Serialize};

use super::state::JobState;
use super::views::MachineHold;
use super::{Plant, PlantError, Result, invalid};
use crate::calendar::may_start;
use crate::config::MaintenanceInterval;
use crate::store::{Event, format_ms};

/// One maintenance task of a machine against its interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MaintenanceCounter {
    pub task: String,
    /// Runs started since it was last done.
    pub runs: i64,
    pub every_runs: Option<u32>,
    /// Run hours (plant time) since it was last done.
    pub run_hours: f64,
    pub every_hours: Option<f64>,
    /// Operator minutes it takes.
    pub minutes: f64,
    /// Recorded due (`maintenance_due`) and not yet done.
    pub due: bool,
    /// Wall ms it became due.
    pub due_since_ms: Option<i64>,
}

impl MaintenanceCounter {
    /// The machine's hold while this task is due.
    pub fn hold(&self) -> MachineHold {
        MachineHold {
            kind: "maintenance_due".into(),
            job_id: None,
            since: self.due_since_ms.map(format_ms),
            reason: Some(self.task.clone()),
        }
    }

    fn reached(&self) -> bool {
        self.every_runs.is_some_and(|n| self.runs >= i64::from(n))
            || self.every_hours.is_some_and(|h| self.run_hours >= h)
    }
}

/// A maintenance task due on a machine: an operator task, and time the planner keeps free.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DueMaintenance {
    pub machine_id: String,
    pub task: String,
    /// The interval's place in the machine's `maintenance` list.
    pub index: usize,
    pub minutes: f64,
    /// Wall ms it became due.
    pub since_ms: i64,
}

/// How long a run (a `jobs` row that started) held its machine, in wall ms: a run still on the
/// machine counts up to now, one that ended without a finish time (requeued, cancelled)
/// counts nothing. Binds `$1` to [`JobState::Running`] and `$2` to now (wall ms).
pub(super) const RUN_MS_SO_FAR: &str =
    "COALESCE(finished_ms, CASE WHEN state = $1 THEN $2 ELSE started_ms END) - started_ms";

#[derive(sqlx::FromRow)]
struct TaskRow {
    due: i64,
    due_ms: Option<i64>,
    done_ms: Option<i64>,
}

impl Plant {
    fn intervals(&self, machine_id: &str) -> Result<&[MaintenanceInterval]> {
        self.config
            .machine(machine_id)
            .map(|m| m.maintenance.as_slice())
            .ok_or_else(|| PlantError::NotFound(format!("machine {machine_id}")))
    }

    /// Each maintenance task of the machine with its counters, in the config's order.
    pub async fn maintenance_counters(
        &self,
        machine_id: &str,
        now_ms: i64,
    ) -> Result<Vec<MaintenanceCounter>> {
        let mut counters = Vec::new();
        let intervals = self
            .config
            .machine(machine_id)
            .map(|m| m.maintenance.as_slice());
        for interval in intervals.unwrap_or_default() {
            let row: Option<TaskRow> = sqlx::query_as(
                "SELECT due, due_ms, done_ms FROM maintenance WHERE machine_id = $1 AND task = $2",
            )
            .bind(machine_id)
            .bind(&interval.task)
            .fetch_optional(&self.store.pool)
            .await?;
            let since = row.as_ref().and_then(|r| r.done_ms).unwrap_or(0);
            let (runs, run_ms): (i64, i64) = sqlx::query_as(
                &format!(
                    "SELECT CAST(COUNT(*) AS BIGINT), CAST(COALESCE(SUM({RUN_MS_SO_FAR}), 0) AS BIGINT) \
                     FROM jobs WHERE machine_id = $3 AND started_ms IS NOT NULL AND started_ms >= $4"
                ),
            )
            .bind(JobState::Running)
            .bind(now_ms)
            .bind(machine_id)
            .bind(since)
            .fetch_one(&self.store.pool)
            .await?;
            counters.push(MaintenanceCounter {
                task: interval.task.clone(),
                runs,
                every_runs: interval.every_runs,
                run_hours: run_ms.max(0) as f64 * self.clock.scale() / 3_600_000.0,
                every_hours: interval.every_hours,
                minutes: interval.minutes,
                due: row.as_ref().is_some_and(|r| r.due == 1),
                due_since_ms: row.and_then(|r| r.due_ms),
            });
        }
        Ok(counters)
    }

    /// Every maintenance task due now, oldest first.
    pub async fn maintenance_due(&self) -> Result<Vec<DueMaintenance>> {
        let rows: Vec<(String, String, Option<i64>)> = sqlx::query_as(
            "SELECT machine_id, task, due_ms FROM maintenance WHERE due = 1 \
             ORDER BY due_ms, machine_id, task",
        )
        .fetch_all(&self.store.pool)
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(machine_id, task, since)| {
                let intervals = self.intervals(&machine_id).ok()?;
                let index = intervals.iter().position(|i| i.task == task)?;
                Some(DueMaintenance {
                    minutes: intervals[index].minutes,
                    index,
                    machine_id,
                    task,
                    since_ms: since.unwrap_or(0),
                })
            })
            .collect())
    }

    /// Operator seconds of maintenance due per machine: the planner keeps the machine free for
    /// them before its next run (`PlanMachine::maintenance_seconds`).
    pub async fn maintenance_seconds(&self) -> Result<std::collections::HashMap<String, f64>> {
        let mut seconds = std::collections::HashMap::new();
        for due in self.maintenance_due().await? {
            *seconds.entry(due.machine_id).or_insert(0.0) += due.minutes * 60.0;
        }
        Ok(seconds)
    }

    /// Records `maintenance_due` for each interval of the machine reached and not yet
    /// recorded; whether any maintenance is due on it now.
    pub async fn check_maintenance(&self, machine_id: &str, now_ms: i64) -> Result<bool> {
        let counters = self.maintenance_counters(machine_id, now_ms).await?;
        let reached: Vec<&MaintenanceCounter> =
            counters.iter().filter(|c| !c.due && c.reached()).collect();
        if !reached.is_empty() {
            let mut w = self.store.writer("system", now_ms).await?;
            for counter in &reached {
                sqlx::query(
                    "INSERT INTO maintenance (machine_id, task, due, due_ms, done_ms) \
                     VALUES ($1, $2, 1, $3, NULL) ON CONFLICT (machine_id, task) \
                     DO UPDATE SET due = 1, due_ms = $3",
                )
                .bind(machine_id)
                .bind(&counter.task)
                .bind(now_ms)
                .execute(&mut *w.tx)
                .await?;
                w.emit(Event::MaintenanceDue {
                    machine_id: machine_id.to_string(),
                    task: counter.task.clone(),
                })
                .await?;
            }
            w.commit().await?;
        }
        Ok(counters.iter().any(|c| c.due || c.reached()))
    }

    /// [`Plant::check_maintenance`] on every machine with maintenance intervals, so a task
    /// falls due when its interval is reached, not only when the machine is offered its next
    /// run.
    pub async fn check_all_maintenance(&self, now_ms: i64) -> Result<()> {
        for machine in self.config.machines.iter().map(|m| m.get_ref()) {
            if !machine.maintenance.is_empty() {
                self.check_maintenance(&machine.id, now_ms).await?;
            }
        }
        Ok(())
    }

    /// An operator did the machine's maintenance `task`: it is no longer due and its counters
    /// start again. Refused while a run is on the machine (its maintenance waits for it).
    #[tracing::instrument(skip_all, fields(machine = %machine_id, task = %task))]
    pub async fn maintenance_done(
        &self,
        actor: &str,
        machine_id: &str,
        task: &str,
        now_ms: i64,
    ) -> Result<()> {
        let intervals = self.intervals(machine_id)?;
        if !intervals.iter().any(|i| i.task == task) {
            let known: Vec<&str> = intervals.iter().map(|i| i.task.as_str()).collect();
            return Err(invalid(
                "task",
                format!(
                    "machine {machine_id} has no maintenance task '{task}' (it has: {})",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            ));
        }
        let mut w = self.store.writer(actor, now_ms).await?;
        let current: Option<Option<i64>> =
            sqlx::query_scalar("SELECT current_job FROM machines WHERE id = $1")
                .bind(machine_id)
                .fetch_optional(&mut *w.tx)
                .await?;
        if let Some(Some(job)) = current {
            return Err(PlantError::Conflict(format!(
                "machine {machine_id} still holds run {job}: its maintenance waits until the \
                 run is done and unloaded"
            )));
        }
        let row: Option<TaskRow> = sqlx::query_as(
            "SELECT due, due_ms, done_ms FROM maintenance WHERE machine_id = $1 AND task = $2",
        )
        .bind(machine_id)
        .bind(task)
        .fetch_optional(&mut *w.tx)
        .await?;
        let held_ms = match row {
            Some(TaskRow {
                due: 1,
                due_ms: Some(since),
                ..
            }) => (now_ms - since).max(0),
            _ => 0,
        };
        sqlx::query(
            "INSERT INTO maintenance (machine_id, task, due, due_ms, done_ms) \
             VALUES ($1, $2, 0, NULL, $3) ON CONFLICT (machine_id, task) \
             DO UPDATE SET due = 0, due_ms = NULL, done_ms = $3",
        )
        .bind(machine_id)
        .bind(task)
        .bind(now_ms)
        .execute(&mut *w.tx)
        .await?;
        w.emit(Event::MaintenanceDone {
            machine_id: machine_id.to_string(),
            task: task.to_string(),
            held_ms,
        })
        .await?;
        w.commit().await?;
        Ok(())
    }

    /// May the scheduler give this run to this machine now? Not while maintenance is due on
    /// it (recorded here when an interval is reached), and not when, on a machine that may not
    /// run after hours, the run (with its load and setup) would not end within the working
    /// stretch. A person who confirms a load by hand is not asked.
    pub async fn may_take_run(&self, job_id: i64, machine_id: &str, now_ms: i64) -> Result<bool> {
        if self.check_maintenance(machine_id, now_ms).await? {
            return Ok(false);
        }
        let Some(machine) = self.config.machine(machine_id) else {
            return Ok(false);
        };
        if self.calendar.is_none() || machine.after_hours {
            return Ok(true);
        }
        let run_ms = self.expected_run_ms(job_id, machine_id).await?;
        Ok(may_start(
            self.calendar.as_ref(),
            machine.after_hours,
            self.clock.to_plant(now_ms),
            run_ms,
        ))
    }

    /// How long the run will hold the machine once begun, in plant ms: the operator's load,
    /// the setup when the machine's setup family differs, and the run at the machine's speed.
    pub async fn expected_run_ms(&self, job_id: i64, machine_id: &str) -> Result<i64> {
        let row: Option<(f64, f64, String, f64, Option<String>)> = sqlx::query_as(
            "SELECT s.run_seconds, s.setup_seconds, s.setup_family, m.speed_factor, m.setup_family \
             FROM jobs j JOIN steps s ON s.order_id = j.order_id AND s.step_index = j.step_index \
             JOIN machines m ON m.id = $2 WHERE j.id = $1",
        )
        .bind(job_id)
        .bind(machine_id)
        .fetch_optional(&self.store.pool)
        .await?;
        let (run, setup, family, speed, current) =
            row.ok_or_else(|| PlantError::NotFound(format!("job {job_id}")))?;
        let setup = if current.as_deref() == Some(family.as_str()) {
            0.0
        } else {
            setup
        };
        let load_minutes = self
            .config
            .machine(machine_id)
            .and_then(|m| self.config.operator_work(m).load)
            .map_or(0.0, |task| task.minutes);
        Ok(((run * speed + setup + load_minutes * 60.0) * 1000.0).round() as i64)
    }
}
