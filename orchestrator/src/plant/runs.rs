//! A run's life on a machine, each step one transaction: dispatch (material taken before the
//! machine hears of it), requeue when the machine refuses, started, finished, interrupted,
//! and restart reconciliation. What an operator does with an interrupted run is in
//! `interrupted.rs`.

use microfab_drivers::{JobRun, Program, ResumePoint};

use super::operator_work::await_unload;
use super::records::{Tx, name_in_span, order_state_of};
use super::rules;
use super::state::{JobState, MachineState, OrderState, sql_list};
use super::tasks::MachineOutcome;
use super::units::{Pieces, Settled, settle_units};
use super::{Plant, PlantError, Result};
use crate::store::{Draw, Event, Writer};

/// What a dispatch gave the machine.
#[derive(Debug)]
pub enum Dispatched {
    /// Send this run to the machine now.
    Send(JobRun),
    /// The run waits on its machine for an operator to load it (`Plant::confirm_load`);
    /// nothing is sent until then.
    AwaitingLoad,
}

impl Plant {
    /// Give a job to a machine and take its material, durably, before the machine is told
    /// anything: `dispatched` with the run to send, or `awaiting_load` when the machine needs
    /// an operator to load it first. `None` if the decision went stale (the job or machine
    /// changed meanwhile) or the machine's envelope is too small for the program.
    #[tracing::instrument(skip_all, fields(job = job_id, machine = %machine_id, order = tracing::field::Empty))]
    pub async fn dispatch(
        &self,
        job_id: i64,
        machine_id: &str,
        at_ms: i64,
    ) -> Result<Option<Dispatched>> {
        let mut w = self.store.writer("dispatcher", at_ms).await?;
        let job: DispatchRow = sqlx::query_as(
            "SELECT j.order_id AS order_id, j.state AS state, s.materials_json AS materials_json, \
             s.bbox_json AS bbox_json, s.setup_family AS setup_family \
             FROM jobs j JOIN steps s ON s.order_id = j.order_id AND s.step_index = j.step_index WHERE j.id = $1",
        )
        .bind(job_id)
        .fetch_optional(&mut *w.tx)
        .await?
        .ok_or_else(|| PlantError::NotFound(format!("job {job_id}")))?;
        let (machine_free, envelope_json) = machine_free(&mut w.tx, machine_id).await?;
        if job.state != JobState::Planned || !machine_free {
            return Ok(None);
        }
        if let Some(bbox) = &job.bbox_json {
            let envelope: [f64; 3] = serde_json::from_str(&envelope_json).unwrap_or_default();
            let size = rules::bbox_size(serde_json::from_str(bbox).unwrap_or_default());
            if !rules::envelope_fits(envelope, size) {
                return Ok(None);
            }
        }
        let order_id = job.order_id;
        name_in_span(&order_id, None);
        let needs = super::stock::per_run_needs(&job.materials_json)?;
        let consumed = super::stock::consume(&mut w.tx, &order_id, &needs).await?;
        let awaiting_load = self.operator_work_of(machine_id).load.is_some();
        let (state, awaiting_since) = if awaiting_load {
            (JobState::AwaitingLoad, Some(at_ms))
        } else {
            (JobState::Dispatched, None)
        };
        sqlx::query(
            "UPDATE jobs SET state = $1, machine_id = $2, dispatched_ms = $3, awaiting_since_ms = $4 WHERE id = $5",
        )
        .bind(state)
        .bind(machine_id)
        .bind(at_ms)
        .bind(awaiting_since)
        .bind(job_id)
        .execute(&mut *w.tx)
        .await?;
        // The machine keeps its setup until the operator loads the run (`confirm_load`).
        sqlx::query("UPDATE machines SET current_job = $1, updated_ms = $2 WHERE id = $3")
            .bind(job_id)
            .bind(at_ms)
            .bind(machine_id)
            .execute(&mut *w.tx)
            .await?;
        if !awaiting_load {
            set_machine_setup(&mut w.tx, machine_id, &job.setup_family).await?;
        }
        sqlx::query("UPDATE orders SET state = $1, updated_ms = $2 WHERE id = $3 AND state = $4")
            .bind(OrderState::InProgress)
            .bind(at_ms)
            .bind(&order_id)
            .bind(OrderState::Approved)
            .execute(&mut *w.tx)
            .await?;
        w.emit(Event::JobDispatched {
            order_id,
            job_id,
            machine_id: machine_id.to_string(),
            consumed,
            awaiting_load,
        })
        .await?;
        let dispatched = if awaiting_load {
            Dispatched::AwaitingLoad
        } else {
            Dispatched::Send(job_run(&mut w.tx, job_id).await?)
        };
        w.commit().await?;
        Ok(Some(dispatched))
    }

    /// The machine refused the run before starting it: nothing was made, the material goes
    /// back, the job is planned again.
    #[tracing::instrument(skip_all, fields(job = job_id, order = tracing::field::Empty, machine = tracing::field::Empty))]
    pub async fn requeue(&self, job_id: i64, reason: &str, at_ms: i64) -> Result<()> {
        let mut w = self.store.writer("dispatcher", at_ms).await?;
        requeue_in(&mut w, job_id, reason).await?;
        w.commit().await?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(job = job_id, order = tracing::field::Empty, machine = tracing::field::Empty))]
    pub async fn job_started(&self, job_id: i64, at_ms: i64) -> Result<()> {
        let mut w = self.store.writer("machine", at_ms).await?;
        let (order_id, machine_id) = job_on_machine(&mut w.tx, job_id).await?;
        let changed =
            sqlx::query("UPDATE jobs SET state = $1, started_ms = $2 WHERE id = $3 AND state = $4")
                .bind(JobState::Running)
                .bind(at_ms)
                .bind(job_id)
                .bind(JobState::Dispatched)
                .execute(&mut *w.tx)
                .await?
                .rows_affected();
        if changed == 1 {
            w.emit(Event::JobStarted {
                order_id,
                job_id,
                machine_id,
            })
            .await?;
        }
        w.commit().await?;
        Ok(())
    }

    /// A run ended with a known outcome: `scrapped` of its units are bad (all of them for a
    /// failed run). Records the units, replaces the scrap, completes the order when done.
    #[tracing::instrument(skip_all, fields(job = job_id, order = tracing::field::Empty, machine = tracing::field::Empty))]
    pub async fn job_finished(
        &self,
        job_id: i64,
        scrapped: i64,
        failed: bool,
        reason: Option<String>,
        at_ms: i64,
    ) -> Result<()> {
        let mut w = self.store.writer("machine", at_ms).await?;
        let (order_id, machine_id) = job_on_machine(&mut w.tx, job_id).await?;
        let state: JobState = sqlx::query_scalar("SELECT state FROM jobs WHERE id = $1")
            .bind(job_id)
            .fetch_one(&mut *w.tx)
            .await?;
        if !JobState::ON_MACHINE.contains(&state) {
            // Already settled (e.g. interrupted, then resolved by an operator): a late report
            // must not count the units a second time.
            return Ok(());
        }
        if self.operator_work_of(&machine_id).unload.is_some() {
            let outcome = MachineOutcome {
                scrapped,
                reason,
                failed,
            };
            await_unload(&mut w, job_id, order_id, machine_id, outcome).await?;
        } else {
            let pieces = Pieces::Counted {
                scrapped,
                failed,
                reason: reason.as_deref(),
            };
            let finished = FinishedRun {
                job_id,
                order_id,
                machine_id,
                failed,
                held_ms: 0,
            };
            self.finish_run(&mut w, finished, pieces, reason.clone())
                .await?;
        }
        w.commit().await?;
        Ok(())
    }

    /// Record a run's outcome: its units, its machine free again, `job_finished`, replacement
    /// runs for its scrap, the order completed when done. From the driver's report, or from
    /// the operator's inspection at the unload.
    pub(super) async fn finish_run(
        &self,
        w: &mut Writer<'_>,
        run: FinishedRun,
        pieces: Pieces<'_>,
        reason: Option<String>,
    ) -> Result<()> {
        let FinishedRun {
            job_id,
            order_id,
            machine_id,
            failed,
            held_ms,
        } = run;
        let new_state = if failed {
            JobState::Failed
        } else {
            JobState::Done
        };
        let Settled {
            good,
            scrapped,
            step_index,
            final_step,
        } = settle_units(
            w,
            job_id,
            &order_id,
            Some(&machine_id),
            pieces,
            reason.as_deref(),
            new_state,
        )
        .await?;
        free_machine(&mut w.tx, &machine_id, w.at_ms).await?;
        w.emit(Event::JobFinished {
            order_id: order_id.clone(),
            job_id,
            machine_id,
            step_index,
            state: new_state.as_str().into(),
            good,
            scrapped,
            reason,
            final_step,
            held_ms,
        })
        .await?;
        if scrapped > 0 {
            self.top_up(w, &order_id).await?;
        }
        self.complete_if_done(w, &order_id).await
    }

    /// The run stopped and nobody knows what came out: an operator decides (resolves it, or
    /// resumes it from `resume` where the driver offers that). Its machine takes no other work
    /// meanwhile.
    #[tracing::instrument(skip_all, fields(job = job_id, order = tracing::field::Empty, machine = tracing::field::Empty))]
    pub async fn job_interrupted(
        &self,
        job_id: i64,
        reason: &str,
        resume: Option<ResumePoint>,
        at_ms: i64,
    ) -> Result<()> {
        let mut w = self.store.writer("machine", at_ms).await?;
        let (order_id, machine_id) = job_on_machine(&mut w.tx, job_id).await?;
        let resume_json = resume
            .as_ref()
            .map(|point| serde_json::to_string(point).expect("a resume point serializes"));
        let changed = sqlx::query(&format!(
            "UPDATE jobs SET state = $1, reason = $2, resume_json = $3 WHERE id = $4 AND state IN ({})",
            sql_list(&JobState::ON_MACHINE)
        ))
        .bind(JobState::Interrupted)
        .bind(reason)
        .bind(resume_json)
        .bind(job_id)
        .execute(&mut *w.tx)
        .await?
        .rows_affected();
        if changed == 1 {
            free_machine(&mut w.tx, &machine_id, at_ms).await?;
            w.emit(Event::JobInterrupted {
                order_id,
                job_id,
                machine_id,
                reason: reason.to_string(),
                resume,
            })
            .await?;
        }
        w.commit().await?;
        Ok(())
    }

    /// After a restart: runs that were on machines whose state did not survive (in-process
    /// simulators, manual stations) are interrupted — never re-sent on a guess.
    pub async fn interrupt_orphaned_jobs(
        &self,
        machine_ids: &[String],
        at_ms: i64,
    ) -> Result<Vec<i64>> {
        let mut interrupted = Vec::new();
        for machine_id in machine_ids {
            let jobs: Vec<i64> = sqlx::query_scalar(&format!(
                "SELECT id FROM jobs WHERE machine_id = $1 AND state IN ({}) ORDER BY id",
                sql_list(&JobState::ON_MACHINE)
            ))
            .bind(machine_id)
            .fetch_all(&self.store.pool)
            .await?;
            for job_id in jobs {
                self.job_interrupted(
                    job_id,
                    "the orchestrator restarted while this job was on the machine; what it made is unknown",
                    None,
                    at_ms,
                )
                .await?;
                interrupted.push(job_id);
            }
        }
        Ok(interrupted)
    }
}

#[derive(sqlx::FromRow)]
struct DispatchRow {
    order_id: String,
    state: JobState,
    materials_json: String,
    bbox_json: Option<String>,
    setup_family: String,
}

#[derive(sqlx::FromRow)]
struct JobPlace {
    order_id: String,
    machine_id: Option<String>,
}

/// The order of a run on a machine, and that machine.
pub(super) async fn job_on_machine(tx: &mut Tx, job_id: i64) -> Result<(String, String)> {
    let place: JobPlace = sqlx::query_as("SELECT order_id, machine_id FROM jobs WHERE id = $1")
        .bind(job_id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| PlantError::NotFound(format!("job {job_id}")))?;
    let machine_id = place
        .machine_id
        .ok_or_else(|| PlantError::Conflict(format!("job {job_id} is not on a machine")))?;
    name_in_span(&place.order_id, Some(&machine_id));
    Ok((place.order_id, machine_id))
}

async fn dispatched_draws(tx: &mut Tx, job_id: i64) -> Result<Vec<Draw>> {
    let data: Option<String> = sqlx::query_scalar(
        "SELECT data FROM events WHERE job_id = $1 AND kind = 'job_dispatched' ORDER BY seq DESC LIMIT 1",
    )
    .bind(job_id)
    .fetch_optional(&mut **tx)
    .await?;
    match data.map(|d| serde_json::from_str::<Event>(&d)) {
        Some(Ok(Event::JobDispatched { consumed, .. })) => Ok(consumed),
        _ => Err(PlantError::Conflict(format!(
            "job {job_id} has no dispatch record"
        ))),
    }
}

#[derive(sqlx::FromRow)]
struct MachineNow {
    state: MachineState,
    maintenance: i64,
    current_job: Option<i64>,
    envelope_json: String,
    holding: i64,
}

/// Whether the machine can take a run now (idle, in service, empty, holding no interrupted
/// run), and its envelope.
pub(super) async fn machine_free(tx: &mut Tx, machine_id: &str) -> Result<(bool, String)> {
    let machine: MachineNow = sqlx::query_as(
        "SELECT state, maintenance, current_job, envelope_json, \
         (SELECT COUNT(*) FROM jobs j WHERE j.machine_id = machines.id AND j.state = $1) AS holding \
         FROM machines WHERE id = $2",
    )
    .bind(JobState::Interrupted)
    .bind(machine_id)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| PlantError::NotFound(format!("machine '{machine_id}'")))?;
    let free = machine.state == MachineState::Idle
        && machine.maintenance == 0
        && machine.current_job.is_none()
        && machine.holding == 0;
    Ok((free, machine.envelope_json))
}

#[derive(sqlx::FromRow)]
struct ProgramRow {
    units: i64,
    program_kind: String,
    program_name: Option<String>,
    run_seconds: f64,
    program_text: Option<String>,
}

/// What the driver is sent for a job: its step's program and run.
pub(super) async fn job_run(tx: &mut Tx, job_id: i64) -> Result<JobRun> {
    let job: ProgramRow = sqlx::query_as(
        "SELECT j.units AS units, s.program_kind AS program_kind, s.program_name AS program_name, \
         s.run_seconds AS run_seconds, p.text AS program_text \
         FROM jobs j JOIN steps s ON s.order_id = j.order_id AND s.step_index = j.step_index \
         LEFT JOIN programs p ON p.sha256 = s.program_sha256 WHERE j.id = $1",
    )
    .bind(job_id)
    .fetch_one(&mut **tx)
    .await?;
    let name = job.program_name.unwrap_or_else(|| "manual step".into());
    let program = match (job.program_kind.as_str(), job.program_text) {
        ("gcode", Some(text)) => Program::GCode {
            name,
            text: text.into(),
        },
        _ => Program::Named { name },
    };
    Ok(JobRun {
        job_id,
        program,
        units: job.units as u32,
        expected_seconds: job.run_seconds,
    })
}

async fn free_machine(tx: &mut Tx, machine_id: &str, at_ms: i64) -> Result<()> {
    sqlx::query("UPDATE machines SET current_job = NULL, updated_ms = $1 WHERE id = $2")
        .bind(at_ms)
        .bind(machine_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A run whose machine will not run it goes back, inside `w`'s transaction: its material
/// returns, and the job is planned again; or, when its order closed meanwhile, it ends
/// `cancelled` and its material goes back to stock, since nothing may stay reserved for a
/// closed order. Used when a machine refuses a run, and for a cancelled order's run still
/// waiting for its load.
pub(super) async fn requeue_in(w: &mut Writer<'_>, job_id: i64, reason: &str) -> Result<()> {
    let at_ms = w.at_ms;
    let (order_id, machine_id) = job_on_machine(&mut w.tx, job_id).await?;
    let consumed = dispatched_draws(&mut w.tx, job_id).await?;
    super::stock::unconsume(&mut w.tx, &order_id, &consumed).await?;
    let cancelled = !order_state_of(&mut w.tx, &order_id).await?.is_active();
    let (state, finished_ms) = if cancelled {
        (JobState::Cancelled, Some(at_ms))
    } else {
        (JobState::Planned, None)
    };
    sqlx::query(
        "UPDATE jobs SET state = $1, machine_id = NULL, dispatched_ms = NULL, awaiting_since_ms = NULL, \
         finished_ms = $2 WHERE id = $3",
    )
    .bind(state)
    .bind(finished_ms)
    .bind(job_id)
    .execute(&mut *w.tx)
    .await?;
    let released = if cancelled {
        super::stock::release(&mut w.tx, &order_id).await?
    } else {
        Vec::new()
    };
    free_machine(&mut w.tx, &machine_id, at_ms).await?;
    w.emit(Event::JobRequeued {
        order_id,
        job_id,
        machine_id,
        returned: consumed,
        reason: reason.to_string(),
        cancelled,
        released,
    })
    .await?;
    Ok(())
}

/// A run that ended, to record ([`Plant::finish_run`]).
pub(super) struct FinishedRun {
    pub job_id: i64,
    pub order_id: String,
    pub machine_id: String,
    pub failed: bool,
    /// How long its machine waited on an operator for it.
    pub held_ms: i64,
}

/// The machine is set up for `family` (the run it is about to make).
pub(super) async fn set_machine_setup(tx: &mut Tx, machine_id: &str, family: &str) -> Result<()> {
    sqlx::query("UPDATE machines SET setup_family = $1 WHERE id = $2")
        .bind(family)
        .bind(machine_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
