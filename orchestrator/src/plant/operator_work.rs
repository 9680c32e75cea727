//! The operator's part of a run's life, each step one transaction: a run waiting for its
//! load is confirmed loaded (then sent), a finished run waits for its unload, and the unload
//! records the operator's inspection exactly as a driver's report is recorded
//! ([`Plant::finish_run`]). The machine stays given to the run (`current_job`) throughout, so
//! it takes no other; how long it waited is kept on the job (`held_ms`).

use microfab_drivers::JobRun;

use super::records::Tx;
use super::runs::{FinishedRun, job_on_machine, job_run, requeue_in, set_machine_setup};
use super::state::JobState;
use super::tasks::{Inspection, MachineOutcome};
use super::units::Pieces;
use super::{Plant, PlantError, Result};
use crate::config::OperatorWork;
use crate::store::{Event, Writer};

#[derive(sqlx::FromRow)]
struct AwaitingRun {
    state: JobState,
    units: i64,
    awaiting_since_ms: Option<i64>,
    held_ms: i64,
    machine_scrapped: Option<i64>,
    machine_reason: Option<String>,
    machine_failed: Option<i64>,
    setup_family: String,
}

/// The run `job_id`, refused unless it is `expected` (the writer's lock makes the check and the
/// change one step: of two confirmations, the second finds the run moved on).
async fn awaiting_run(tx: &mut Tx, job_id: i64, expected: JobState) -> Result<AwaitingRun> {
    let run: AwaitingRun = sqlx::query_as(
        "SELECT j.state AS state, j.units AS units, \
         j.awaiting_since_ms AS awaiting_since_ms, j.held_ms AS held_ms, \
         j.machine_scrapped AS machine_scrapped, j.machine_reason AS machine_reason, \
         j.machine_failed AS machine_failed, s.setup_family AS setup_family \
         FROM jobs j JOIN steps s ON s.order_id = j.order_id AND s.step_index = j.step_index \
         WHERE j.id = $1",
    )
    .bind(job_id)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| PlantError::NotFound(format!("job {job_id}")))?;
    if run.state != expected {
        return Err(PlantError::Conflict(format!(
            "job {job_id} is {}, not {expected}",
            run.state
        )));
    }
    Ok(run)
}

impl AwaitingRun {
    /// The machine's wait for this run so far, with the current one up to `at_ms`.
    fn held_until(&self, at_ms: i64) -> i64 {
        self.held_ms
            + self
                .awaiting_since_ms
                .map_or(0, |since| (at_ms - since).max(0))
    }
}

impl Plant {
    /// The operator work around each run on this machine (none for a machine the config no
    /// longer lists).
    pub(super) fn operator_work_of(&self, machine_id: &str) -> OperatorWork {
        self.config
            .machine(machine_id)
            .map(|machine| self.config.operator_work(machine))
            .unwrap_or(OperatorWork {
                load: None,
                unload: None,
                unattended: None,
            })
    }

    /// An operator loaded the machine for a run waiting for it: the run is `dispatched`, and
    /// this is its machine and what to send. If the machine then refuses it, it is re-queued as any refused
    /// run (`Runtime::send_run`).
    #[tracing::instrument(skip_all, fields(job = job_id, order = tracing::field::Empty, machine = tracing::field::Empty))]
    pub async fn confirm_load(
        &self,
        job_id: i64,
        actor: &str,
        at_ms: i64,
    ) -> Result<(String, JobRun)> {
        let mut w = self.store.writer(actor, at_ms).await?;
        let run = awaiting_run(&mut w.tx, job_id, JobState::AwaitingLoad).await?;
        let (order_id, machine_id) = job_on_machine(&mut w.tx, job_id).await?;
        let held_ms = run.held_until(at_ms);
        sqlx::query(
            "UPDATE jobs SET state = $1, awaiting_since_ms = NULL, held_ms = $2 WHERE id = $3",
        )
        .bind(JobState::Dispatched)
        .bind(held_ms)
        .bind(job_id)
        .execute(&mut *w.tx)
        .await?;
        set_machine_setup(&mut w.tx, &machine_id, &run.setup_family).await?;
        w.emit(Event::JobLoaded {
            order_id,
            job_id,
            machine_id: machine_id.clone(),
            held_ms: held_ms - run.held_ms,
        })
        .await?;
        let job_run = job_run(&mut w.tx, job_id).await?;
        w.commit().await?;
        Ok((machine_id, job_run))
    }

    /// An operator unloaded a run and inspected its pieces: its units are recorded as the
    /// inspection says (each scrapped piece with its reason), scrap is replaced, the machine
    /// is free. A wrong inspection is refused with its field, changing nothing.
    #[tracing::instrument(skip_all, fields(job = job_id, order = tracing::field::Empty, machine = tracing::field::Empty))]
    pub async fn confirm_unload(
        &self,
        job_id: i64,
        inspection: &Inspection,
        actor: &str,
        at_ms: i64,
    ) -> Result<()> {
        let mut w = self.store.writer(actor, at_ms).await?;
        let run = awaiting_run(&mut w.tx, job_id, JobState::AwaitingUnload).await?;
        let machine = MachineOutcome {
            scrapped: run.machine_scrapped.unwrap_or(0),
            reason: run.machine_reason.clone(),
            failed: run.machine_failed == Some(1),
        };
        let verdict = inspection.verdict(run.units, &machine)?;
        let (order_id, machine_id) = job_on_machine(&mut w.tx, job_id).await?;
        let held_ms = run.held_until(at_ms);
        sqlx::query("UPDATE jobs SET awaiting_since_ms = NULL, held_ms = $1 WHERE id = $2")
            .bind(held_ms)
            .bind(job_id)
            .execute(&mut *w.tx)
            .await?;
        let finished = FinishedRun {
            job_id,
            order_id: order_id.clone(),
            machine_id,
            failed: machine.failed,
            held_ms,
        };
        let reason = verdict.summary().or(machine.reason);
        self.finish_run(&mut w, finished, Pieces::Inspected(&verdict), reason)
            .await?;
        w.commit().await?;
        Ok(())
    }

    /// An order being cancelled: its runs still waiting for their load go back as refused
    /// runs of a closed order do (cancelled, material to stock, machine free), inside the
    /// cancel's transaction. Runs awaiting their unload stay: they still need it (a late
    /// outcome settles that run only).
    pub(super) async fn cancel_awaiting_loads(
        &self,
        w: &mut Writer<'_>,
        order_id: &str,
        reason: &str,
    ) -> Result<()> {
        let waiting: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM jobs WHERE order_id = $1 AND state = $2 ORDER BY id",
        )
        .bind(order_id)
        .bind(JobState::AwaitingLoad)
        .fetch_all(&mut *w.tx)
        .await?;
        for job_id in waiting {
            requeue_in(w, job_id, &format!("order cancelled: {reason}")).await?;
        }
        Ok(())
    }
}

/// The machine finished (or failed) a run that needs unloading: what it said is kept, the
/// units wait for the operator's inspection, and the machine stays given to the run.
pub(super) async fn await_unload(
    w: &mut Writer<'_>,
    job_id: i64,
    order_id: String,
    machine_id: String,
    outcome: MachineOutcome,
) -> Result<()> {
    sqlx::query(
        "UPDATE jobs SET state = $1, awaiting_since_ms = $2, machine_scrapped = $3, \
         machine_reason = $4, machine_failed = $5 WHERE id = $6",
    )
    .bind(JobState::AwaitingUnload)
    .bind(w.at_ms)
    .bind(outcome.scrapped)
    .bind(outcome.reason.as_deref())
    .bind(i64::from(outcome.failed))
    .bind(job_id)
    .execute(&mut *w.tx)
    .await?;
    w.emit(Event::JobAwaitingUnload {
        order_id,
        job_id,
        machine_id,
        scrapped: outcome.scrapped,
        reason: outcome.reason,
        failed: outcome.failed,
    })
    .await?;
    Ok(())
}
