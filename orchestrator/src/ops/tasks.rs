//! An operator's work between runs: the task queue, a machine loaded, a run unloaded with its
//! inspection.

use super::{Actor, Operations, Result};
use crate::auth::Role;
use crate::plant::PlantError;
use crate::plant::tasks::{Inspection, TaskView};
use crate::plant::views::JobView;
use crate::store::now_ms;

impl Operations {
    /// Every task waiting for a person at a machine, oldest first.
    pub async fn tasks(&self, actor: &Actor) -> Result<Vec<TaskView>> {
        actor.require(Role::Operator, "the operators' tasks")?;
        Ok(self.plant().tasks(now_ms()).await?)
    }

    /// The operator loaded the machine for a run waiting for it: the run is sent now. If the
    /// machine refuses it, the run goes back to the plan (as any refused run) and the refusal
    /// is a conflict.
    #[tracing::instrument(name = "operation", skip_all, fields(verb = "load", actor = %actor, job = job_id))]
    pub async fn load(&self, actor: &Actor, job_id: i64) -> Result<JobView> {
        actor.require(Role::Operator, "loading a machine")?;
        let plant = self.plant();
        let (machine_id, run) = plant.confirm_load(job_id, actor.name(), now_ms()).await?;
        let sent = self.runtime.send_run(&machine_id, run).await?;
        self.runtime.wake();
        if let Err(refusal) = sent {
            return Err(PlantError::Conflict(format!(
                "machine '{machine_id}' refused job {job_id}: {refusal}; the run went back to the plan"
            ))
            .into());
        }
        Ok(plant.job(job_id).await?)
    }

    /// The operator unloaded a run and inspected it: its units are recorded as the inspection
    /// says, and the machine takes work again.
    #[tracing::instrument(name = "operation", skip_all, fields(verb = "unload", actor = %actor, job = job_id))]
    pub async fn unload(
        &self,
        actor: &Actor,
        job_id: i64,
        inspection: &Inspection,
    ) -> Result<JobView> {
        actor.require(Role::Operator, "unloading a machine")?;
        self.plant()
            .confirm_unload(job_id, inspection, actor.name(), now_ms())
            .await?;
        self.runtime.wake();
        Ok(self.plant().job(job_id).await?)
    }
}
