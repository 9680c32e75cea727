//! Reads and inserts the plant's rooms share (orders, stock, runs, unit accounting), kept
//! here so that those rooms depend on this one and never on each other.

use sqlx::{Any, Transaction};

use super::rules::StepCounts;
use super::state::{JobState, OrderState, sql_list};
use super::{PlantError, Result};
use crate::store::events::NewJob;
use crate::store::{Draw, Event, Writer};

pub(crate) type Tx = Transaction<'static, Any>;

pub(crate) async fn order_state_of(tx: &mut Tx, order_id: &str) -> Result<OrderState> {
    sqlx::query_scalar("SELECT state FROM orders WHERE id = $1")
        .bind(order_id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| PlantError::NotFound(format!("order '{order_id}'")))
}

/// Names the order and machine of a run in the current span once its transaction has read
/// them: the span of a transaction on a run (`#[instrument]` on the `Plant` method) declares
/// `order` and `machine` empty, as only the job id is known when it starts.
pub(crate) fn name_in_span(order_id: &str, machine_id: Option<&str>) {
    let span = tracing::Span::current();
    span.record("order", tracing::field::display(order_id));
    if let Some(machine_id) = machine_id {
        span.record("machine", tracing::field::display(machine_id));
    }
}

/// Jobs inserted in one transaction, announced in one `jobs_created` event.
#[derive(Default)]
pub(crate) struct NewJobs(Vec<NewJob>);

impl NewJobs {
    pub async fn push(
        &mut self,
        w: &mut Writer<'_>,
        order_id: &str,
        step_index: i64,
        units: i64,
        material_reserved: bool,
    ) -> Result<i64> {
        let job_id: i64 = sqlx::query_scalar(
            "INSERT INTO jobs (order_id, step_index, units, state, material_reserved, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(order_id)
        .bind(step_index)
        .bind(units)
        .bind(JobState::Planned)
        .bind(i64::from(material_reserved))
        .bind(w.at_ms)
        .fetch_one(&mut *w.tx)
        .await?;
        self.0.push(NewJob {
            job_id,
            step_index,
            units,
            material_reserved,
        });
        Ok(job_id)
    }

    pub async fn emit(self, w: &mut Writer<'_>, order_id: &str, reserved: Vec<Draw>) -> Result<()> {
        if !self.0.is_empty() {
            w.emit(Event::JobsCreated {
                order_id: order_id.to_string(),
                jobs: self.0,
                reserved,
            })
            .await?;
        }
        Ok(())
    }
}

#[derive(sqlx::FromRow)]
struct StepCountsRow {
    step_index: i64,
    units_per_run: i64,
    predecessors_json: String,
    is_final: i64,
    good: i64,
    scrapped: i64,
    open_units: i64,
    started_units: i64,
}

/// Every step of an order with its unit counts, from the steps and their runs.
pub(crate) async fn step_counts(tx: &mut Tx, order_id: &str) -> Result<Vec<StepCounts>> {
    let rows: Vec<StepCountsRow> = sqlx::query_as(&format!(
        "SELECT s.step_index AS step_index, s.units_per_run AS units_per_run, s.predecessors_json AS predecessors_json, \
         s.is_final AS is_final, s.good AS good, s.scrapped AS scrapped, \
         CAST(COALESCE(SUM(CASE WHEN j.state IN ({open}) THEN j.units ELSE 0 END), 0) AS BIGINT) AS open_units, \
         CAST(COALESCE(SUM(CASE WHEN j.state IN ({started}) THEN j.units ELSE 0 END), 0) AS BIGINT) AS started_units \
         FROM steps s LEFT JOIN jobs j ON j.order_id = s.order_id AND j.step_index = s.step_index \
         WHERE s.order_id = $1 GROUP BY s.step_index, s.units_per_run, s.predecessors_json, s.is_final, s.good, s.scrapped \
         ORDER BY s.step_index",
        open = sql_list(&JobState::OPEN),
        started = sql_list(&JobState::STARTED),
    ))
    .bind(order_id)
    .fetch_all(&mut **tx)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(StepCounts {
                index: r.step_index,
                units_per_run: r.units_per_run,
                predecessors: serde_json::from_str(&r.predecessors_json)
                    .map_err(|e| PlantError::Conflict(format!("stored step is unreadable: {e}")))?,
                is_final: r.is_final == 1,
                good: r.good,
                scrapped: r.scrapped,
                open: r.open_units,
                started: r.started_units,
            })
        })
        .collect()
}
