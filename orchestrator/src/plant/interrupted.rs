//! An interrupted run's way out, decided by an operator: resolve it (how many of its units
//! are good, the rest scrap) or, where the machine and its driver allow, resume it from a
//! line of its program. Until then its machine takes no other work.

use microfab_drivers::{JobRun, ResumePoint};

use super::records::{name_in_span, order_state_of};
use super::runs::{job_run, machine_free};
use super::state::JobState;
use super::units::{Pieces, Settled, settle_units};
use super::{Plant, PlantError, Result, invalid};
use crate::store::{Event, Writer};

impl Plant {
    /// An operator sends an interrupted run back to the machine that ran it, from `from_line`
    /// of its program (by default the first line not acknowledged). Returns what to send; the
    /// driver has the last word (it refuses if the machine lost its state), see
    /// [`Plant::resume_refused`].
    #[tracing::instrument(skip_all, fields(job = job_id, order = tracing::field::Empty, machine = tracing::field::Empty))]
    pub async fn resume(
        &self,
        job_id: i64,
        from_line: Option<u32>,
        reason: &str,
        actor: &str,
        at_ms: i64,
    ) -> Result<(String, JobRun, u32)> {
        if reason.trim().is_empty() {
            return Err(invalid("reason", "say why (what the operator checked)"));
        }
        let mut w = self.store.writer(actor, at_ms).await?;
        let row = interrupted_run(&mut w, job_id, "resumed").await?;
        let order_id = row.order_id;
        let order_now = order_state_of(&mut w.tx, &order_id).await?;
        if !order_now.is_active() {
            return Err(PlantError::Conflict(format!(
                "order {order_id} is {order_now}: its run is not resumed; resolve it instead"
            )));
        }
        let machine_id: String = row
            .machine_id
            .ok_or_else(|| PlantError::Conflict(format!("job {job_id} never reached a machine")))?;
        let machine = self.config.machine(&machine_id).ok_or_else(|| {
            PlantError::Conflict(format!("machine '{machine_id}' is no longer configured"))
        })?;
        if !machine.resumes_interrupted() {
            return Err(PlantError::Conflict(format!(
                "machine '{machine_id}' does not resume interrupted runs ({} driver{}): resolve the run instead",
                machine.driver.kind(),
                if machine.driver.can_resume() {
                    ", resume_interrupted = false"
                } else {
                    ""
                },
            )));
        }
        let point: ResumePoint = match row.resume_json {
            Some(json) => serde_json::from_str(&json).map_err(|e| {
                PlantError::Conflict(format!("job {job_id}: bad resume point: {e}"))
            })?,
            None => {
                return Err(PlantError::Conflict(format!(
                    "job {job_id}: the driver could not tell where it stopped (it reported a \
                     restart, an alarm or an abort): resolve the run instead"
                )));
            }
        };
        let from_line = from_line.unwrap_or(point.next_line);
        let latest = point.latest_start();
        if from_line == 0 || from_line > latest {
            return Err(invalid(
                "from_line",
                format!(
                    "resume from a line between 1 and {latest}: later would skip a command that may never have run"
                ),
            ));
        }
        // Off the machine's hold first: the machine must be free but for this very run.
        sqlx::query("UPDATE jobs SET state = $1, reason = NULL WHERE id = $2")
            .bind(JobState::Dispatched)
            .bind(job_id)
            .execute(&mut *w.tx)
            .await?;
        if !machine_free(&mut w.tx, &machine_id).await?.0 {
            return Err(PlantError::Conflict(format!(
                "machine '{machine_id}' cannot take the run now: it must be connected, idle, out of maintenance and hold no other interrupted run"
            )));
        }
        sqlx::query("UPDATE machines SET current_job = $1, updated_ms = $2 WHERE id = $3")
            .bind(job_id)
            .bind(at_ms)
            .bind(&machine_id)
            .execute(&mut *w.tx)
            .await?;
        w.emit(Event::JobResumed {
            order_id,
            job_id,
            machine_id: machine_id.clone(),
            from_line,
            reason: reason.to_string(),
        })
        .await?;
        let run = job_run(&mut w.tx, job_id).await?;
        w.commit().await?;
        Ok((machine_id, run, from_line))
    }

    /// The driver refused to resume: the run is interrupted again, as it was.
    pub async fn resume_refused(&self, job_id: i64, why: &str, at_ms: i64) -> Result<()> {
        let resume_json: Option<String> =
            sqlx::query_scalar("SELECT resume_json FROM jobs WHERE id = $1")
                .bind(job_id)
                .fetch_one(&self.store.pool)
                .await?;
        let resume = resume_json.and_then(|json| serde_json::from_str(&json).ok());
        self.job_interrupted(job_id, &format!("resume refused: {why}"), resume, at_ms)
            .await
    }

    /// An operator settles an interrupted run: how many of its units are good, the rest scrap.
    #[tracing::instrument(skip_all, fields(job = job_id, order = tracing::field::Empty, machine = tracing::field::Empty))]
    pub async fn resolve(
        &self,
        job_id: i64,
        good: i64,
        reason: &str,
        actor: &str,
        at_ms: i64,
    ) -> Result<()> {
        if reason.trim().is_empty() {
            return Err(invalid("reason", "say why (what the operator found)"));
        }
        let mut w = self.store.writer(actor, at_ms).await?;
        let row = interrupted_run(&mut w, job_id, "resolved by an operator").await?;
        let units = row.units;
        if !(0..=units).contains(&good) {
            return Err(invalid(
                "good",
                format!("job {job_id} made at most {units} units, not {good}"),
            ));
        }
        let order_id = row.order_id;
        let Settled {
            good,
            scrapped,
            step_index,
            final_step,
        } = settle_units(
            &mut w,
            job_id,
            &order_id,
            row.machine_id.as_deref(),
            Pieces::Counted {
                scrapped: units - good,
                failed: false,
                reason: Some(reason),
            },
            Some(reason),
            JobState::Done,
        )
        .await?;
        w.emit(Event::JobResolved {
            order_id: order_id.clone(),
            job_id,
            step_index,
            outcome: if scrapped == 0 {
                "good"
            } else if good == 0 {
                "scrapped"
            } else {
                "partly good"
            }
            .into(),
            good,
            scrapped,
            final_step,
            reason: reason.to_string(),
        })
        .await?;
        if scrapped > 0 {
            self.top_up(&mut w, &order_id).await?;
        }
        self.complete_if_done(&mut w, &order_id).await?;
        w.commit().await?;
        Ok(())
    }
}

#[derive(sqlx::FromRow)]
struct InterruptedRun {
    order_id: String,
    state: JobState,
    units: i64,
    machine_id: Option<String>,
    resume_json: Option<String>,
}

/// The run `job_id`, refused unless it is interrupted: only such a run is `done_to` (resumed,
/// resolved by an operator).
async fn interrupted_run(w: &mut Writer<'_>, job_id: i64, done_to: &str) -> Result<InterruptedRun> {
    let row: InterruptedRun = sqlx::query_as(
        "SELECT order_id, state, units, machine_id, resume_json FROM jobs WHERE id = $1",
    )
    .bind(job_id)
    .fetch_optional(&mut *w.tx)
    .await?
    .ok_or_else(|| PlantError::NotFound(format!("job {job_id}")))?;
    name_in_span(&row.order_id, row.machine_id.as_deref());
    if row.state != JobState::Interrupted {
        return Err(PlantError::Conflict(format!(
            "job {job_id} is {}: only an interrupted job is {done_to}",
            row.state
        )));
    }
    Ok(row)
}
