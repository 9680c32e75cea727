//! The runtime: one task per machine owning its driver, and one coordinator loop over a closed
//! enum of inputs (a machine's event, a wake-up after an operator's change, a tick) that records
//! what happened through [`Plant`] and dispatches ready runs to idle machines.
//!
//! Architecture invariant: a job is `dispatched` in the store before its first byte goes to the
//! machine (`Plant::dispatch` commits, then the machine task gets `Run`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use microfab_drivers::manual::ManualStation;
use microfab_drivers::sim::SimulatedMachine;
use microfab_drivers::{Driver, DriverCommand, DriverError, DriverEvent};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::{DriverConfig, MachineConfig, SimulationDefaults};
use crate::plant::{Plant, PlantError};
use crate::store::now_ms;

pub fn build_driver(machine: &MachineConfig, defaults: &SimulationDefaults) -> Box<dyn Driver> {
    match &machine.driver {
        DriverConfig::Sim(sim) => Box::new(SimulatedMachine::new(
            sim.settings(defaults, machine.speed_factor),
        )),
        DriverConfig::Manual => Box::new(ManualStation::default()),
    }
}

struct MachineRequest {
    command: DriverCommand,
    reply: oneshot::Sender<Result<(), DriverError>>,
}

/// Owns one driver: carries out commands, forwards events. Nothing else touches the driver.
async fn machine_task(
    machine_id: String,
    mut driver: Box<dyn Driver>,
    mut requests: mpsc::Receiver<MachineRequest>,
    events: mpsc::Sender<(String, DriverEvent)>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            request = requests.recv() => {
                let Some(request) = request else { return };
                let result = driver.command(request.command).await;
                let _ = request.reply.send(result);
            }
            event = driver.next_event() => {
                if events.send((machine_id.clone(), event)).await.is_err() {
                    return;
                }
            }
            () = shutdown.cancelled() => return,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("machine '{0}' not found")]
    UnknownMachine(String),
    #[error("machine '{0}' is not running")]
    MachineGone(String),
    #[error(transparent)]
    Driver(#[from] DriverError),
}

/// What the API holds of the runtime: a way to reach machines and to wake the coordinator.
pub struct Runtime {
    pub plant: Arc<Plant>,
    machines: HashMap<String, mpsc::Sender<MachineRequest>>,
    wake: Notify,
}

impl Runtime {
    pub async fn command(
        &self,
        machine_id: &str,
        command: DriverCommand,
    ) -> Result<(), CommandError> {
        let sender = self
            .machines
            .get(machine_id)
            .ok_or_else(|| CommandError::UnknownMachine(machine_id.to_string()))?;
        let (reply, answer) = oneshot::channel();
        sender
            .send(MachineRequest { command, reply })
            .await
            .map_err(|_| CommandError::MachineGone(machine_id.to_string()))?;
        Ok(answer
            .await
            .map_err(|_| CommandError::MachineGone(machine_id.to_string()))??)
    }

    /// Something changed that may let work start (approval, restock, maintenance off, ...).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Cancel an order and abort its runs still on machines.
    pub async fn cancel_order(
        &self,
        order_id: &str,
        reason: &str,
        actor: &str,
    ) -> Result<(), PlantError> {
        let on_machines = self.plant.cancel(order_id, reason, actor, now_ms()).await?;
        for (job_id, machine_id) in on_machines {
            if let Err(e) = self.command(&machine_id, DriverCommand::Abort).await {
                tracing::warn!(job_id, machine_id, error = %e, "abort after cancel failed");
            }
        }
        self.wake();
        Ok(())
    }
}

/// Start the machine tasks and the coordinator. Runs until `shutdown` is cancelled.
pub async fn start(
    plant: Arc<Plant>,
    shutdown: CancellationToken,
    tasks: &mut JoinSet<()>,
) -> Result<Arc<Runtime>, PlantError> {
    let config = plant.config.clone();
    let machines: Vec<MachineConfig> = config
        .machines
        .iter()
        .map(|m| m.get_ref().clone())
        .collect();
    let at = now_ms();
    plant.register_machines(&machines, at).await?;
    let materials: Vec<_> = config
        .materials
        .iter()
        .map(|m| m.get_ref().clone())
        .collect();
    plant.open_accounts(&materials, at).await?;
    let lost: Vec<String> = machines
        .iter()
        .filter(|m| !m.driver.machine_state_survives_restart())
        .map(|m| m.id.clone())
        .collect();
    let interrupted = plant.interrupt_orphaned_jobs(&lost, at).await?;
    if !interrupted.is_empty() {
        tracing::warn!(
            ?interrupted,
            "jobs interrupted by the restart: an operator must resolve them"
        );
    }

    let (events_tx, mut events_rx) = mpsc::channel(1024);
    let mut senders = HashMap::new();
    for machine in &machines {
        let (tx, rx) = mpsc::channel(16);
        senders.insert(machine.id.clone(), tx);
        tasks.spawn(machine_task(
            machine.id.clone(),
            build_driver(machine, &config.simulation),
            rx,
            events_tx.clone(),
            shutdown.clone(),
        ));
    }
    let runtime = Arc::new(Runtime {
        plant: plant.clone(),
        machines: senders,
        wake: Notify::new(),
    });
    let coordinator = runtime.clone();
    tasks.spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                Some((machine_id, event)) = events_rx.recv() => {
                    if let Err(e) = record(&coordinator.plant, &machine_id, event).await {
                        tracing::error!(machine_id, error = %e, "could not record a machine event");
                    }
                    // Drain what else arrived before planning, so one round sees it all.
                    while let Ok((machine_id, event)) = events_rx.try_recv() {
                        if let Err(e) = record(&coordinator.plant, &machine_id, event).await {
                            tracing::error!(machine_id, error = %e, "could not record a machine event");
                        }
                    }
                }
                () = coordinator.wake.notified() => {}
                _ = tick.tick() => {}
                () = shutdown.cancelled() => return,
            }
            if let Err(e) = dispatch_round(&coordinator).await {
                tracing::error!(error = %e, "dispatch round failed");
            }
        }
    });
    Ok(runtime)
}

async fn record(plant: &Plant, machine_id: &str, event: DriverEvent) -> Result<(), PlantError> {
    let at = now_ms();
    match event {
        DriverEvent::Condition(condition) => {
            plant.machine_condition(machine_id, &condition, at).await
        }
        DriverEvent::JobStarted { job_id } => plant.job_started(job_id, at).await,
        DriverEvent::JobProgress { .. } => Ok(()),
        DriverEvent::JobFinished {
            job_id,
            scrapped,
            scrap_reason,
        } => {
            plant
                .job_finished(job_id, i64::from(scrapped), false, scrap_reason, at)
                .await
        }
        DriverEvent::JobFailed { job_id, reason } => {
            plant.job_finished(job_id, 0, true, Some(reason), at).await
        }
        DriverEvent::JobInterrupted { job_id, reason } => {
            plant.job_interrupted(job_id, &reason, at).await
        }
    }
}

async fn dispatch_round(runtime: &Runtime) -> Result<(), PlantError> {
    let input = runtime.plant.plan_input(now_ms()).await?;
    for decision in microfab_planner::dispatch_ready_runs(&input) {
        let Some(run) = runtime
            .plant
            .dispatch(decision.run_id, &decision.machine_id, now_ms())
            .await?
        else {
            continue;
        };
        let job_id = run.job_id;
        if let Err(e) = runtime
            .command(&decision.machine_id, DriverCommand::Run(run))
            .await
        {
            tracing::warn!(job_id, machine_id = decision.machine_id, error = %e, "machine refused the run");
            runtime
                .plant
                .requeue(job_id, &e.to_string(), now_ms())
                .await?;
        }
    }
    Ok(())
}
