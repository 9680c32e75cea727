//! The runtime: one task per machine owning its driver, and one coordinator loop over a closed
//! enum of inputs (a machine's event, a wake-up after an operator's change, a tick) that records
//! what happened through [`Plant`] and dispatches ready runs to idle machines.
//!
//! Architecture invariant: a job is `dispatched` in the store before its first byte goes to the
//! machine (`Plant::dispatch` commits, then the machine task gets `Run`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use microfab_drivers::traffic::TrafficLog;
use microfab_drivers::{Driver, DriverCommand, DriverError, DriverEvent, JobRun, OperatorAction};
use microfab_planner::{Budget, Plan, PlanInput};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::MachineConfig;
use crate::machine_status::{MachineStatus, StatusPublisher};
use crate::plant::{Dispatched, Plant, PlantError};
use crate::store::now_ms;
use crate::telemetry::ProcessMetrics;

/// How often a machine task asks its driver for a fresh status between events: progress
/// measured by time, counters and temperatures change without an event.
const STATUS_INTERVAL: Duration = Duration::from_millis(500);

/// What the machine task is asked to do with its driver.
enum MachineRequest {
    Command(DriverCommand, oneshot::Sender<Result<(), DriverError>>),
    Operator(OperatorAction, oneshot::Sender<Result<(), DriverError>>),
    Traffic(oneshot::Sender<Option<TrafficLog>>),
}

/// Owns one driver: carries out commands, forwards events, publishes its live status. Nothing
/// else touches the driver.
async fn machine_task(
    machine_id: String,
    mut driver: Box<dyn Driver>,
    mut requests: mpsc::Receiver<MachineRequest>,
    events: mpsc::Sender<(String, DriverEvent)>,
    mut status: StatusPublisher,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(STATUS_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            request = requests.recv() => {
                match request {
                    None => return,
                    Some(MachineRequest::Command(command, reply)) => {
                        let _ = reply.send(driver.command(command).await);
                    }
                    Some(MachineRequest::Operator(action, reply)) => {
                        let _ = reply.send(driver.operator(action).await);
                    }
                    Some(MachineRequest::Traffic(reply)) => {
                        let _ = reply.send(driver.traffic().cloned());
                    }
                }
                status.refresh(driver.status(), now_ms());
            }
            event = driver.next_event() => {
                status.event(&event, driver.status(), now_ms());
                // Progress is for the status channel: the plant records nothing of it.
                if matches!(event, DriverEvent::JobProgress { .. }) {
                    continue;
                }
                if events.send((machine_id.clone(), event)).await.is_err() {
                    return;
                }
            }
            _ = tick.tick() => status.refresh(driver.status(), now_ms()),
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

/// The plan the dispatcher follows, with what it was made from.
pub struct PlanSnapshot {
    pub plan: Plan,
    pub input: PlanInput,
}

impl PlanSnapshot {
    /// Runs the plan knows about (placed or found unplannable).
    fn known_runs(&self) -> BTreeSet<i64> {
        self.plan
            .assignments
            .iter()
            .map(|a| a.run_id)
            .chain(self.plan.unplanned.iter().copied())
            .collect()
    }
}

/// What the plan was asked for: a new plan is wanted when this changes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct PlanTrigger {
    /// Runs the current plan does not know (new orders, replacement runs).
    unknown_runs: BTreeSet<i64>,
    /// Machines out of service (down, alarm, maintenance, unavailable).
    out_of_service: BTreeSet<String>,
    /// Runs on machines far past their planned end.
    overrunning: BTreeSet<i64>,
}

/// What the operations hold of the runtime: a way to reach machines, to wake the coordinator,
/// and the current plan.
pub struct Runtime {
    pub plant: Arc<Plant>,
    machines: HashMap<String, mpsc::Sender<MachineRequest>>,
    statuses: BTreeMap<String, watch::Receiver<MachineStatus>>,
    wake: Notify,
    plan: RwLock<Option<Arc<PlanSnapshot>>>,
    plan_requests: watch::Sender<Option<PlanInput>>,
    /// Runs a machine refused before starting because its driver cannot run the program: never
    /// offered to that machine again (the operator sees the refusal in the event log).
    refused: std::sync::Mutex<BTreeSet<(i64, String)>>,
    /// Plans made, and plans the independent checker refused (never adopted).
    pub plans_made: AtomicU64,
    pub plans_refused: AtomicU64,
    /// What `/metrics` measures in this process (dispatch latency).
    pub metrics: ProcessMetrics,
}

impl Runtime {
    async fn ask<T>(
        &self,
        machine_id: &str,
        request: impl FnOnce(oneshot::Sender<T>) -> MachineRequest,
    ) -> Result<T, CommandError> {
        let sender = self
            .machines
            .get(machine_id)
            .ok_or_else(|| CommandError::UnknownMachine(machine_id.to_string()))?;
        let (reply, answer) = oneshot::channel();
        sender
            .send(request(reply))
            .await
            .map_err(|_| CommandError::MachineGone(machine_id.to_string()))?;
        answer
            .await
            .map_err(|_| CommandError::MachineGone(machine_id.to_string()))
    }

    pub async fn command(
        &self,
        machine_id: &str,
        command: DriverCommand,
    ) -> Result<(), CommandError> {
        Ok(self
            .ask(machine_id, |reply| MachineRequest::Command(command, reply))
            .await??)
    }

    /// An operator's explicit action on a machine (unlock an alarm, home, reset).
    pub async fn operator(
        &self,
        machine_id: &str,
        action: OperatorAction,
    ) -> Result<(), CommandError> {
        Ok(self
            .ask(machine_id, |reply| MachineRequest::Operator(action, reply))
            .await??)
    }

    /// The machine's recent link traffic and counters (line-protocol drivers only).
    pub async fn traffic(&self, machine_id: &str) -> Result<Option<TrafficLog>, CommandError> {
        self.ask(machine_id, MachineRequest::Traffic).await
    }

    /// The machine's live status channel (its machine task publishes every change).
    pub fn status(&self, machine_id: &str) -> Option<watch::Receiver<MachineStatus>> {
        self.statuses.get(machine_id).cloned()
    }

    /// Every machine's live status channel, by machine id.
    pub fn statuses(&self) -> &BTreeMap<String, watch::Receiver<MachineStatus>> {
        &self.statuses
    }

    pub fn current_plan(&self) -> Option<Arc<PlanSnapshot>> {
        self.plan.read().ok().and_then(|p| p.clone())
    }

    /// Send a run the store has as `dispatched` to its machine. If the machine refuses it, the
    /// run is re-queued with its material (one refused for its program is never offered to
    /// that machine again) and the refusal is returned; `Ok(())` when the machine took it.
    /// The one way a run reaches a machine: the coordinator's dispatches and an operator's
    /// load both come here.
    #[tracing::instrument(skip_all, fields(machine = %machine_id, job = run.job_id))]
    pub async fn send_run(
        &self,
        machine_id: &str,
        run: JobRun,
    ) -> Result<Result<(), CommandError>, PlantError> {
        let job_id = run.job_id;
        let Err(e) = self.command(machine_id, DriverCommand::Run(run)).await else {
            return Ok(Ok(()));
        };
        tracing::warn!(error = %e, "the machine refused the run");
        if matches!(e, CommandError::Driver(DriverError::Preflight(_)))
            && let Ok(mut refused) = self.refused.lock()
        {
            refused.insert((job_id, machine_id.to_string()));
        }
        self.plant.requeue(job_id, &e.to_string(), now_ms()).await?;
        Ok(Err(e))
    }

    /// Something changed that may let work start (approval, restock, maintenance off, ...).
    pub fn wake(&self) {
        self.wake.notify_one();
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
    let mut statuses = BTreeMap::new();
    for machine in &machines {
        let (tx, rx) = mpsc::channel(16);
        senders.insert(machine.id.clone(), tx);
        let (publisher, status) = StatusPublisher::new(at);
        statuses.insert(machine.id.clone(), status);
        tasks.spawn(
            machine_task(
                machine.id.clone(),
                machine.build_driver(&config.simulation),
                rx,
                events_tx.clone(),
                publisher,
                shutdown.clone(),
            )
            .instrument(tracing::info_span!("machine", machine = %machine.id)),
        );
    }
    let (plan_requests, plan_inputs) = watch::channel(None);
    let runtime = Arc::new(Runtime {
        plant: plant.clone(),
        machines: senders,
        statuses,
        wake: Notify::new(),
        plan: RwLock::new(None),
        plan_requests,
        refused: std::sync::Mutex::new(BTreeSet::new()),
        plans_made: AtomicU64::new(0),
        plans_refused: AtomicU64::new(0),
        metrics: ProcessMetrics::default(),
    });
    tasks.spawn(planner_task(runtime.clone(), plan_inputs, shutdown.clone()));
    let coordinator = runtime.clone();
    tasks.spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        let mut asked = PlanTrigger::default();
        loop {
            // When what starts this round was taken in: dispatch latency counts from there.
            let took_in = tokio::select! {
                Some((machine_id, event)) = events_rx.recv() => {
                    let took_in = Instant::now();
                    if let Err(e) = record(&coordinator.plant, &machine_id, event).await {
                        tracing::error!(machine_id, error = %e, "could not record a machine event");
                    }
                    // Drain what else arrived before planning, so one round sees it all.
                    while let Ok((machine_id, event)) = events_rx.try_recv() {
                        if let Err(e) = record(&coordinator.plant, &machine_id, event).await {
                            tracing::error!(machine_id, error = %e, "could not record a machine event");
                        }
                    }
                    took_in
                }
                () = coordinator.wake.notified() => Instant::now(),
                _ = tick.tick() => Instant::now(),
                () = shutdown.cancelled() => return,
            };
            if let Err(e) = dispatch_round(&coordinator, &mut asked, took_in).await {
                tracing::error!(error = %e, "dispatch round failed");
            }
        }
    });
    Ok(runtime)
}

/// One machine event, recorded in its own transaction, in a span naming the machine and the
/// run it is about (the plant's transaction adds the order).
#[tracing::instrument(name = "machine_event", skip_all, fields(machine = %machine_id, job = event_job(&event)))]
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
        DriverEvent::JobInterrupted {
            job_id,
            reason,
            resume,
        } => plant.job_interrupted(job_id, &reason, resume, at).await,
    }
}

/// The run a machine event is about, if any.
fn event_job(event: &DriverEvent) -> Option<i64> {
    match event {
        DriverEvent::Condition(_) => None,
        DriverEvent::JobStarted { job_id }
        | DriverEvent::JobProgress { job_id, .. }
        | DriverEvent::JobFinished { job_id, .. }
        | DriverEvent::JobFailed { job_id, .. }
        | DriverEvent::JobInterrupted { job_id, .. } => Some(*job_id),
    }
}

/// Plans in the background: the coordinator posts the newest state, this task plans it (warm
/// from the previous plan) and publishes the result. Meanwhile the dispatcher keeps going on
/// the plan it has, or the dispatching rule: an idle machine never waits on the planner.
async fn planner_task(
    runtime: Arc<Runtime>,
    mut inputs: watch::Receiver<Option<PlanInput>>,
    shutdown: CancellationToken,
) {
    let settings = runtime.plant.config.planner.clone();
    loop {
        tokio::select! {
            changed = inputs.changed() => if changed.is_err() { return },
            () = shutdown.cancelled() => return,
        }
        let Some(input) = inputs.borrow_and_update().clone() else {
            continue;
        };
        let previous = runtime.current_plan();
        let budget = Budget::from_seconds(if previous.is_some() {
            settings.replan_seconds
        } else {
            settings.first_plan_seconds
        });
        let seed = settings.seed;
        let planned = tokio::task::spawn_blocking(move || {
            let previous = previous.as_ref().map(|p| &p.plan);
            let plan = microfab_planner::plan(&input, previous, budget, seed);
            let verdict = microfab_planner::check::check_plan(&input, &plan, previous).map(|_| ());
            (PlanSnapshot { plan, input }, verdict)
        })
        .await;
        runtime.plans_made.fetch_add(1, Ordering::Relaxed);
        match planned {
            Ok((_, Err(problems))) => {
                runtime.plans_refused.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    ?problems,
                    "the schedule checker refused a plan; dispatching by rule"
                );
            }
            Ok((snapshot, Ok(()))) => {
                tracing::debug!(runs = snapshot.plan.assignments.len(), objective = ?snapshot.plan.objective, "new plan");
                runtime
                    .plant
                    .etas
                    .publish(snapshot.input.now, snapshot.plan.order_eta.iter().cloned());
                if let Ok(mut slot) = runtime.plan.write() {
                    *slot = Some(Arc::new(snapshot));
                }
                runtime.wake();
            }
            Err(e) => tracing::error!(error = %e, "the planner failed"),
        }
    }
}

fn plan_trigger(input: &PlanInput, current: Option<&PlanSnapshot>) -> PlanTrigger {
    let known = current.map(PlanSnapshot::known_runs).unwrap_or_default();
    let planned_end: HashMap<i64, i64> = current
        .map(|c| {
            c.plan
                .assignments
                .iter()
                .map(|a| (a.run_id, a.end))
                .collect()
        })
        .unwrap_or_default();
    PlanTrigger {
        unknown_runs: input
            .runs
            .iter()
            .map(|r| r.id)
            .filter(|id| !known.contains(id))
            .collect(),
        out_of_service: input
            .machines
            .iter()
            .filter(|m| m.out_of_service)
            .map(|m| m.id.clone())
            .collect(),
        // "Much longer than planned": half again its planned length, and at least a minute late.
        overrunning: input
            .frozen
            .iter()
            .filter(|f| {
                planned_end.get(&f.run_id).is_some_and(|&end| {
                    let start = f.start.min(end);
                    input.now > end + ((end - start) / 2).max(60_000)
                })
            })
            .map(|f| f.run_id)
            .collect(),
    }
}

#[tracing::instrument(level = "debug", skip_all)]
async fn dispatch_round(
    runtime: &Runtime,
    asked: &mut PlanTrigger,
    took_in: Instant,
) -> Result<(), PlantError> {
    runtime.plant.check_all_maintenance(now_ms()).await?;
    let input = runtime.plant.plan_input(runtime.plant.clock.now()).await?;
    let current = runtime.current_plan();
    let trigger = plan_trigger(&input, current.as_deref());
    let known_outages = current
        .as_ref()
        .map(|c| plan_trigger(&c.input, None).out_of_service)
        .unwrap_or_default();
    let stale = !trigger.unknown_runs.is_empty()
        || !trigger.overrunning.is_empty()
        || trigger.out_of_service != known_outages;
    if stale && trigger != *asked && !(input.runs.is_empty() && input.frozen.is_empty()) {
        *asked = trigger;
        runtime.plan_requests.send_replace(Some(input.clone()));
    }
    let decisions = match &current {
        Some(snapshot) => microfab_planner::next_dispatches(&snapshot.plan, &input),
        None => microfab_planner::dispatch_ready_runs(&input),
    };
    let refused = runtime
        .refused
        .lock()
        .map(|r| r.clone())
        .unwrap_or_default();
    for decision in decisions {
        if refused.contains(&(decision.run_id, decision.machine_id.clone()))
            || !(runtime.plant)
                .may_take_run(decision.run_id, &decision.machine_id, now_ms())
                .await?
        {
            continue;
        }
        let dispatched = runtime
            .plant
            .dispatch(decision.run_id, &decision.machine_id, now_ms())
            .await?;
        // A run waiting for its load is sent when an operator confirms it (`Operations::load`).
        if let Some(Dispatched::Send(run)) = dispatched {
            // A refusal is logged and the run re-queued there; the round goes on.
            if runtime.send_run(&decision.machine_id, run).await?.is_ok() {
                runtime.metrics.run_dispatched(took_in.elapsed());
            }
        }
    }
    Ok(())
}
