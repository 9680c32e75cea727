//! Read models for the operator's floor pages: the run on each machine (for the fleet board's
//! cards), a machine's recent runs with their times, and what a machine has made.

use std::collections::HashMap;

use serde::Serialize;

use super::state::{JobState, sql_list};
use super::{Plant, Result};

/// The run a machine has now, with what it is for.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunOnMachine {
    pub job_id: i64,
    pub order_id: String,
    pub step: String,
    pub units: i64,
    pub state: JobState,
}

/// One past or present run of a machine.
#[derive(Debug, Clone, Serialize)]
pub struct MachineRun {
    pub job_id: i64,
    pub order_id: String,
    pub step: String,
    pub units: i64,
    pub state: JobState,
    pub good: i64,
    pub scrapped: i64,
    pub reason: Option<String>,
    /// When the machine started it (ms since the epoch), from the log.
    pub started_ms: Option<i64>,
    /// When it last ended (finished, failed or interrupted), from the log.
    pub ended_ms: Option<i64>,
}

/// What a machine has done, counted.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MachineTally {
    pub runs_done: i64,
    pub runs_failed: i64,
    pub runs_interrupted: i64,
    pub units_good: i64,
    pub units_scrapped: i64,
}

#[derive(sqlx::FromRow)]
struct RunRow {
    machine_id: String,
    job_id: i64,
    order_id: String,
    step_id: String,
    units: i64,
    state: JobState,
}

#[derive(sqlx::FromRow)]
struct HistoryRow {
    job_id: i64,
    order_id: String,
    step_id: String,
    units: i64,
    state: JobState,
    good: i64,
    scrapped: i64,
    reason: Option<String>,
    started_ms: Option<i64>,
    ended_ms: Option<i64>,
}

impl Plant {
    /// The run on each machine that has one (dispatched or running), by machine id; with
    /// `machine_id`, that machine's only.
    pub async fn runs_on_machines(
        &self,
        machine_id: Option<&str>,
    ) -> Result<HashMap<String, RunOnMachine>> {
        let rows: Vec<RunRow> = sqlx::query_as(&format!(
            "SELECT j.machine_id AS machine_id, j.id AS job_id, j.order_id AS order_id, \
             s.step_id AS step_id, j.units AS units, j.state AS state \
             FROM jobs j JOIN steps s ON s.order_id = j.order_id AND s.step_index = j.step_index \
             WHERE j.state IN ({}) AND j.machine_id IS NOT NULL AND ($1 = '' OR j.machine_id = $1) \
             ORDER BY j.id",
            sql_list(&JobState::ON_MACHINE)
        ))
        .bind(machine_id.unwrap_or(""))
        .fetch_all(&self.store.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let run = RunOnMachine {
                    job_id: r.job_id,
                    order_id: r.order_id,
                    step: r.step_id,
                    units: r.units,
                    state: r.state,
                };
                (r.machine_id, run)
            })
            .collect())
    }

    /// The machine's most recent `limit` runs, newest first, with when each started and ended.
    pub async fn machine_runs(&self, machine_id: &str, limit: i64) -> Result<Vec<MachineRun>> {
        let rows: Vec<HistoryRow> = sqlx::query_as(
            "SELECT j.id AS job_id, j.order_id AS order_id, s.step_id AS step_id, j.units AS units, \
             j.state AS state, j.good AS good, j.scrapped AS scrapped, j.reason AS reason, \
             (SELECT MIN(e.at_ms) FROM events e WHERE e.job_id = j.id AND e.kind = 'job_started') AS started_ms, \
             (SELECT MAX(e.at_ms) FROM events e WHERE e.job_id = j.id \
                AND e.kind IN ('job_finished', 'job_interrupted')) AS ended_ms \
             FROM jobs j JOIN steps s ON s.order_id = j.order_id AND s.step_index = j.step_index \
             WHERE j.machine_id = $1 ORDER BY j.id DESC LIMIT $2",
        )
        .bind(machine_id)
        .bind(limit)
        .fetch_all(&self.store.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| MachineRun {
                job_id: r.job_id,
                order_id: r.order_id,
                step: r.step_id,
                units: r.units,
                state: r.state,
                good: r.good,
                scrapped: r.scrapped,
                reason: r.reason,
                started_ms: r.started_ms,
                ended_ms: r.ended_ms,
            })
            .collect())
    }

    /// Runs the machine ended, by how, and the units it made, good and scrapped.
    pub async fn machine_tally(&self, machine_id: &str) -> Result<MachineTally> {
        let runs: Vec<(JobState, i64)> = sqlx::query_as(
            "SELECT state, CAST(COUNT(*) AS BIGINT) FROM jobs WHERE machine_id = $1 GROUP BY state",
        )
        .bind(machine_id)
        .fetch_all(&self.store.pool)
        .await?;
        let units: Vec<(String, i64)> = sqlx::query_as(
            "SELECT result, CAST(COUNT(*) AS BIGINT) FROM units WHERE machine_id = $1 GROUP BY result",
        )
        .bind(machine_id)
        .fetch_all(&self.store.pool)
        .await?;
        let mut tally = MachineTally::default();
        for (state, count) in runs {
            match state {
                JobState::Done => tally.runs_done += count,
                JobState::Failed => tally.runs_failed += count,
                JobState::Interrupted => tally.runs_interrupted += count,
                _ => {}
            }
        }
        for (result, count) in units {
            if result == "good" {
                tally.units_good += count;
            } else {
                tally.units_scrapped += count;
            }
        }
        Ok(tally)
    }
}
