//! Machines as the store knows them: registered from the config, their state as the drivers
//! report it, and the operator's maintenance flag.

use microfab_drivers::Condition;

use super::state::MachineState;
use super::{Plant, PlantError, Result, invalid};
use crate::config::MachineConfig;
use crate::store::{Event, MachineCommand};

/// The state a driver's condition is stored as, and why. `Unavailable` means "we do not
/// know": never shown as idle.
pub fn condition_state(condition: &Condition) -> (MachineState, Option<String>) {
    match condition {
        Condition::Idle => (MachineState::Idle, None),
        Condition::Busy => (MachineState::Busy, None),
        Condition::Paused => (MachineState::Paused, None),
        Condition::WaitingForOperator { reason } | Condition::Held { reason } => {
            (MachineState::Paused, Some(reason.clone()))
        }
        Condition::Alarm { reason } => (MachineState::Alarm, Some(reason.clone())),
        Condition::Unavailable { reason } => (MachineState::Unavailable, Some(reason.clone())),
    }
}

impl Plant {
    /// The config owns what a machine is; the store keeps what it is doing. Every machine
    /// starts `offline` until its driver reports.
    pub async fn register_machines(&self, machines: &[MachineConfig], at_ms: i64) -> Result<()> {
        let mut w = self.store.writer("system", at_ms).await?;
        for m in machines {
            sqlx::query(
                "INSERT INTO machines (id, name, capabilities_json, envelope_json, driver_kind, speed_factor, state, updated_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (id) DO UPDATE SET name = $2, capabilities_json = $3, envelope_json = $4, \
                 driver_kind = $5, speed_factor = $6, state = $7, state_reason = NULL, updated_ms = $8",
            )
            .bind(&m.id)
            .bind(&m.name)
            .bind(serde_json::to_string(&m.capabilities).unwrap_or_default())
            .bind(serde_json::to_string(&m.envelope_mm).unwrap_or_default())
            .bind(m.driver.kind())
            .bind(m.speed_factor)
            .bind(MachineState::Offline)
            .bind(at_ms)
            .execute(&mut *w.tx)
            .await?;
        }
        // A machine the config no longer lists has no driver: it stays in the store for its
        // history, offline, so that no run is planned or given to it.
        let listed: Vec<String> = machines.iter().map(|m| m.id.clone()).collect();
        let known: Vec<String> = sqlx::query_scalar("SELECT id FROM machines ORDER BY id")
            .fetch_all(&mut *w.tx)
            .await?;
        for gone in known.iter().filter(|id| !listed.contains(id)) {
            sqlx::query(
                "UPDATE machines SET state = $1, state_reason = $2, updated_ms = $3 WHERE id = $4",
            )
            .bind(MachineState::Offline)
            .bind("not in the plant config")
            .bind(at_ms)
            .bind(gone)
            .execute(&mut *w.tx)
            .await?;
        }
        w.commit().await?;
        Ok(())
    }

    /// Record a machine's condition when it changes.
    #[tracing::instrument(skip_all, fields(machine = %machine_id))]
    pub async fn machine_condition(
        &self,
        machine_id: &str,
        condition: &Condition,
        at_ms: i64,
    ) -> Result<()> {
        let (state, reason) = condition_state(condition);
        let mut w = self.store.writer("machine", at_ms).await?;
        let (old_state, old_reason): (MachineState, Option<String>) =
            sqlx::query_as("SELECT state, state_reason FROM machines WHERE id = $1")
                .bind(machine_id)
                .fetch_optional(&mut *w.tx)
                .await?
                .ok_or_else(|| PlantError::NotFound(format!("machine '{machine_id}'")))?;
        if old_state == state && old_reason == reason {
            return Ok(());
        }
        sqlx::query(
            "UPDATE machines SET state = $1, state_reason = $2, updated_ms = $3 WHERE id = $4",
        )
        .bind(state)
        .bind(&reason)
        .bind(at_ms)
        .bind(machine_id)
        .execute(&mut *w.tx)
        .await?;
        w.emit(Event::MachineState {
            machine_id: machine_id.to_string(),
            state: state.as_str().into(),
            reason,
        })
        .await?;
        w.commit().await?;
        Ok(())
    }

    /// Records that `machine_id` took `command` from `actor` (for a run's confirmation, that
    /// run).
    #[tracing::instrument(skip_all, fields(machine = %machine_id, job = job_id))]
    pub async fn machine_commanded(
        &self,
        machine_id: &str,
        command: MachineCommand,
        job_id: Option<i64>,
        actor: &str,
        at_ms: i64,
    ) -> Result<()> {
        let mut w = self.store.writer(actor, at_ms).await?;
        w.emit(Event::MachineCommanded {
            machine_id: machine_id.to_string(),
            command,
            job_id,
        })
        .await?;
        w.commit().await?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(machine = %machine_id))]
    pub async fn set_maintenance(
        &self,
        machine_id: &str,
        on: bool,
        reason: &str,
        actor: &str,
        at_ms: i64,
    ) -> Result<()> {
        if on && reason.trim().is_empty() {
            return Err(invalid(
                "reason",
                "say why the machine goes into maintenance",
            ));
        }
        let mut w = self.store.writer(actor, at_ms).await?;
        let (maintenance, current): (i64, Option<i64>) =
            sqlx::query_as("SELECT maintenance, current_job FROM machines WHERE id = $1")
                .bind(machine_id)
                .fetch_optional(&mut *w.tx)
                .await?
                .ok_or_else(|| PlantError::NotFound(format!("machine '{machine_id}'")))?;
        if on && current.is_some() {
            return Err(PlantError::Conflict(format!(
                "machine {machine_id} is running job {}: let it finish or abort it first",
                current.unwrap_or_default()
            )));
        }
        if (maintenance == 1) == on {
            return Ok(());
        }
        sqlx::query("UPDATE machines SET maintenance = $1, updated_ms = $2 WHERE id = $3")
            .bind(i64::from(on))
            .bind(at_ms)
            .bind(machine_id)
            .execute(&mut *w.tx)
            .await?;
        w.emit(Event::MachineMaintenance {
            machine_id: machine_id.to_string(),
            on,
            reason: reason.to_string(),
        })
        .await?;
        w.commit().await?;
        Ok(())
    }
}
