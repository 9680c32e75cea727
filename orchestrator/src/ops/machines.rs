//! An operator's verbs on machines: commands to the driver, maintenance, explicit actions.

use microfab_drivers::{DriverCommand, OperatorAction};

use super::{Actor, OpError, Operations, Result};
use crate::auth::Role;
use crate::plant::live_views::{Console, LiveMachineView, console_view};
use crate::plant::views::MachineView;
use crate::store::{MachineCommand, now_ms};

impl Operations {
    pub async fn pause(&self, actor: &Actor, machine_id: &str) -> Result<MachineView> {
        self.command(
            actor,
            machine_id,
            MachineCommand::Pause,
            DriverCommand::Pause,
        )
        .await
    }

    /// Let a paused machine go on (not to be confused with resuming an interrupted run).
    pub async fn resume_machine(&self, actor: &Actor, machine_id: &str) -> Result<MachineView> {
        self.command(
            actor,
            machine_id,
            MachineCommand::Resume,
            DriverCommand::Resume,
        )
        .await
    }

    pub async fn abort(&self, actor: &Actor, machine_id: &str) -> Result<MachineView> {
        self.command(
            actor,
            machine_id,
            MachineCommand::Abort,
            DriverCommand::Abort,
        )
        .await
    }

    /// Sends `command` to the machine and, once it took it, records who gave it.
    #[tracing::instrument(name = "operation", skip_all, fields(verb = "command", actor = %actor, machine = %machine_id, command = ?logged))]
    async fn command(
        &self,
        actor: &Actor,
        machine_id: &str,
        logged: MachineCommand,
        command: DriverCommand,
    ) -> Result<MachineView> {
        actor.require(Role::Operator, "commanding a machine")?;
        self.plant().machine(machine_id).await?;
        self.runtime.command(machine_id, command).await?;
        self.plant()
            .machine_commanded(machine_id, logged, None, actor.name(), now_ms())
            .await?;
        Ok(self.plant().machine(machine_id).await?)
    }

    /// Take a machine out of service (`on`, with the reason) or bring it back.
    #[tracing::instrument(name = "operation", skip_all, fields(verb = "maintenance", actor = %actor, machine = %machine_id, on))]
    pub async fn maintenance(
        &self,
        actor: &Actor,
        machine_id: &str,
        on: bool,
        reason: &str,
    ) -> Result<MachineView> {
        actor.require(Role::Operator, "maintenance")?;
        self.plant()
            .set_maintenance(machine_id, on, reason, actor.name(), now_ms())
            .await?;
        self.runtime.wake();
        Ok(self.plant().machine(machine_id).await?)
    }

    /// An operator did the machine's maintenance `task` (from its config): it is no longer due,
    /// its counters start again, and the machine may take runs.
    #[tracing::instrument(name = "operation", skip_all, fields(verb = "maintained", actor = %actor, machine = %machine_id, task = %task))]
    pub async fn maintained(
        &self,
        actor: &Actor,
        machine_id: &str,
        task: &str,
    ) -> Result<MachineView> {
        actor.require(Role::Operator, "maintenance done")?;
        self.plant().machine(machine_id).await?;
        self.plant()
            .maintenance_done(actor.name(), machine_id, task, now_ms())
            .await?;
        self.runtime.wake();
        Ok(self.plant().machine(machine_id).await?)
    }

    /// An explicit action only an operator takes (unlock an alarm, home, reset); the answer is
    /// what the machine did.
    #[tracing::instrument(name = "operation", skip_all, fields(verb = "operator_action", actor = %actor, machine = %machine_id, action = ?action))]
    pub async fn operator_action(
        &self,
        actor: &Actor,
        machine_id: &str,
        action: OperatorAction,
    ) -> Result<MachineView> {
        actor.require(Role::Operator, "an operator action")?;
        self.plant().machine(machine_id).await?;
        self.runtime.operator(machine_id, action).await?;
        let logged = match action {
            OperatorAction::Unlock => MachineCommand::Unlock,
            OperatorAction::Home => MachineCommand::Home,
            OperatorAction::Reset => MachineCommand::Reset,
        };
        self.plant()
            .machine_commanded(machine_id, logged, None, actor.name(), now_ms())
            .await?;
        Ok(self.plant().machine(machine_id).await?)
    }

    /// Every machine, with its live status.
    pub async fn machines(&self, actor: &Actor) -> Result<Vec<LiveMachineView>> {
        actor.require(Role::Operator, "the fleet")?;
        let machines = self.plant().machines().await?;
        Ok(machines.into_iter().map(|m| self.live(m)).collect())
    }

    pub async fn machine(&self, actor: &Actor, machine_id: &str) -> Result<LiveMachineView> {
        actor.require(Role::Operator, "a machine's view")?;
        let machine = self.plant().machine(machine_id).await?;
        Ok(self.live(machine))
    }

    fn live(&self, machine: MachineView) -> LiveMachineView {
        let live = self
            .runtime
            .status(&machine.id)
            .map(|status| status.borrow().clone());
        LiveMachineView { machine, live }
    }

    /// The machine's recent serial traffic and link counters, for support.
    pub async fn console(&self, actor: &Actor, machine_id: &str) -> Result<Console> {
        actor.require(Role::Operator, "a machine's console")?;
        self.plant().machine(machine_id).await?;
        let log = self
            .runtime
            .traffic(machine_id)
            .await?
            .ok_or_else(|| OpError::NoConsole(machine_id.to_string()))?;
        Ok(console_view(&log))
    }
}
