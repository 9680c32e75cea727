//! An operator's verbs on runs: settle or resume an interrupted one, confirm a manual step.

use microfab_drivers::DriverCommand;

use super::{Actor, Operations, Result};
use crate::auth::Role;
use crate::plant::views::JobView;
use crate::plant::{JobState, PlantError};
use crate::store::{MachineCommand, now_ms};

impl Operations {
    /// Settle an interrupted run: `good` of its units are good, the rest scrapped and replaced.
    #[tracing::instrument(name = "operation", skip_all, fields(verb = "resolve", actor = %actor, job = job_id))]
    pub async fn resolve(
        &self,
        actor: &Actor,
        job_id: i64,
        good: i64,
        reason: &str,
    ) -> Result<JobView> {
        actor.require(Role::Operator, "resolving a run")?;
        self.plant()
            .resolve(job_id, good, reason, actor.name(), now_ms())
            .await?;
        self.runtime.wake();
        Ok(self.plant().job(job_id).await?)
    }

    /// Send an interrupted run back to the machine that ran it, from a line of its program.
    /// The driver has the last word: if it refuses (the machine lost its state), the run is
    /// interrupted again and the refusal is a conflict.
    #[tracing::instrument(name = "operation", skip_all, fields(verb = "resume", actor = %actor, job = job_id))]
    pub async fn resume(
        &self,
        actor: &Actor,
        job_id: i64,
        from_line: Option<u32>,
        reason: &str,
    ) -> Result<JobView> {
        actor.require(Role::Operator, "resuming a run")?;
        let plant = self.plant();
        let (machine_id, run, from_line) = plant
            .resume(job_id, from_line, reason, actor.name(), now_ms())
            .await?;
        let command = DriverCommand::ResumeRun { run, from_line };
        if let Err(e) = self.runtime.command(&machine_id, command).await {
            let why = e.to_string();
            plant.resume_refused(job_id, &why, now_ms()).await?;
            return Err(PlantError::Conflict(format!(
                "machine '{machine_id}' refused to resume job {job_id}: {why}"
            ))
            .into());
        }
        Ok(plant.job(job_id).await?)
    }

    /// A person at the station says the run's manual work (or the machine's prompt) is done.
    #[tracing::instrument(name = "operation", skip_all, fields(verb = "confirm", actor = %actor, job = job_id))]
    pub async fn confirm(&self, actor: &Actor, job_id: i64) -> Result<JobView> {
        actor.require(Role::Operator, "confirming a station's work")?;
        let job = self.plant().job(job_id).await?;
        let machine = job
            .machine_id
            .filter(|_| JobState::ON_MACHINE.contains(&job.state))
            .ok_or_else(|| {
                PlantError::Conflict(format!("job {job_id} is {}, not at a station", job.state))
            })?;
        self.runtime
            .command(&machine, DriverCommand::ConfirmManual { job_id })
            .await?;
        self.plant()
            .machine_commanded(
                &machine,
                MachineCommand::Confirm,
                Some(job_id),
                actor.name(),
                now_ms(),
            )
            .await?;
        Ok(self.plant().job(job_id).await?)
    }
}
