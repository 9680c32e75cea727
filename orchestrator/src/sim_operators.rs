//! Simulated operators (`[simulation.operators]`): the people of a demo or a test. They work
//! the calendar's shifts — at most `min(count, operators on shift)` tasks at once, none outside
//! working time, nor one they cannot finish before the shift ends — take a task
//! `reaction_seconds` (plant time) after it appeared, spend its
//! minutes on it (plant time, so the wall clock waits `minutes / time_scale`), and then confirm
//! it through the same operations a person uses, as [`Actor::SimulatedOperator`]: loads (only
//! when the run will end in working time on a machine not allowed after hours, the rule the
//! dispatcher keeps), unloads with an inspection that finds `scrap_rate` of the pieces
//! bad (seeded), maintenance, and manual stations' runs. Interrupted runs stay a
//! person's call. They look again on every event the store broadcasts and on a short tick.

use std::collections::BTreeMap;
use std::time::Duration;

use microfab_rng::SplitMix64;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::calendar::may_start;
use crate::config::SimulatedOperators;
use crate::ops::{Actor, OpError, Operations};
use crate::plant::tasks::{Inspection, ScrapEntry, TaskKind, TaskView};

/// How often they look at the task list when nothing happens (wall time).
const TICK: Duration = Duration::from_millis(100);

/// What an inspection calls a piece the machine thought good.
pub const INSPECTION_SCRAP_REASON: &str = "found bad at inspection";

async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Start the simulated operators on `ops`' plant until `shutdown`.
pub fn start(
    ops: Operations,
    settings: SimulatedOperators,
    shutdown: CancellationToken,
    tasks: &mut JoinSet<()>,
) {
    let crew = Crew {
        rng: SplitMix64::new(settings.seed),
        settings,
        ops,
        working: BTreeMap::new(),
    };
    tasks.spawn(crew.run(shutdown));
}

struct Crew {
    ops: Operations,
    settings: SimulatedOperators,
    rng: SplitMix64,
    /// Task id → the task and when (wall) its work is done.
    working: BTreeMap<String, (TaskView, Instant)>,
}

impl Crew {
    async fn run(mut self, shutdown: CancellationToken) {
        let mut events = self.ops.plant().store.subscribe();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            // Wake when the next task's work is done, so it is confirmed on time.
            let next_done = self.working.values().map(|(_, until)| *until).min();
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
                _ = sleep_until_some(next_done) => {}
                received = events.recv() => {
                    if matches!(received, Err(RecvError::Closed)) {
                        return;
                    }
                    // One look for a burst of events.
                    while events.try_recv().is_ok() {}
                }
            }
            if let Err(e) = self.round().await {
                tracing::warn!(error = %e, "simulated operators: could not read the tasks");
            }
        }
    }

    /// Confirm what is done, then take new tasks while hands are free.
    async fn round(&mut self) -> Result<(), OpError> {
        let now = Instant::now();
        let done: Vec<String> = self
            .working
            .iter()
            .filter(|(_, (_, until))| *until <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in done {
            if let Some((task, _)) = self.working.remove(&id) {
                self.finish(task).await;
            }
        }
        let capacity = self.hands_now();
        if self.working.len() >= capacity {
            return Ok(());
        }
        let plant = self.ops.plant();
        let now_plant = plant.clock.now();
        let reaction_ms = (self.settings.reaction_seconds * 1000.0).round() as i64;
        for task in self.ops.tasks(&Actor::SimulatedOperator).await? {
            if self.working.len() >= capacity {
                break;
            }
            let work_ms = (task.minutes * 60_000.0).round() as i64;
            if self.working.contains_key(&task.id)
                || plant.clock.to_plant(task.since_ms) + reaction_ms > now_plant
                || !self.done_before_shift_ends(now_plant, work_ms)
                || !self.may_take(&task, now_plant).await?
            {
                continue;
            }
            let minutes = plant.clock.wall_duration(work_ms);
            self.working
                .insert(task.id.clone(), (task, Instant::now() + minutes));
        }
        Ok(())
    }

    /// Operators on hand now: the crew, but no more than the shift has; none after hours.
    fn hands_now(&self) -> usize {
        let plant = self.ops.plant();
        let on_shift = plant
            .calendar
            .as_ref()
            .map_or(self.settings.count, |c| c.operators_at(plant.clock.now()));
        self.settings.count.min(on_shift) as usize
    }

    /// Nobody starts what they cannot finish before the shift ends.
    fn done_before_shift_ends(&self, now_plant: i64, work_ms: i64) -> bool {
        self.ops.plant().calendar.as_ref().is_none_or(|c| {
            c.working_until(now_plant)
                .is_some_and(|end| now_plant + work_ms <= end)
        })
    }

    /// Whether they take this task now: an operator's kind of task, a load only when its run
    /// will end in working time (or the machine may run after hours), maintenance only on a
    /// machine without a run on it.
    async fn may_take(&self, task: &TaskView, now_plant: i64) -> Result<bool, OpError> {
        let plant = self.ops.plant();
        Ok(match task.kind {
            TaskKind::Unload | TaskKind::ManualRun => true,
            TaskKind::Interrupted => false,
            TaskKind::Maintenance => plant.machine(&task.machine_id).await?.current_job.is_none(),
            TaskKind::Load | TaskKind::Setup => {
                let (Some(job_id), Some(machine)) =
                    (task.job_id, plant.config.machine(&task.machine_id))
                else {
                    return Ok(false);
                };
                let run_ms = plant.expected_run_ms(job_id, &task.machine_id).await?;
                may_start(
                    plant.calendar.as_ref(),
                    machine.after_hours,
                    now_plant,
                    run_ms,
                )
            }
        })
    }

    /// Confirm a task whose work is done. A task someone else did meanwhile (or that went
    /// away) is refused: that is no fault of theirs.
    async fn finish(&mut self, task: TaskView) {
        let actor = Actor::SimulatedOperator;
        let done = match (task.kind, task.job_id) {
            (TaskKind::Load | TaskKind::Setup, Some(job)) => {
                self.ops.load(&actor, job).await.map(drop)
            }
            (TaskKind::Unload, Some(job)) => {
                let inspection = self.inspect(&task);
                match self.ops.unload(&actor, job, &inspection).await {
                    // A failed run has nothing good to find bad: the machine's verdict stands.
                    Err(OpError::Plant(crate::plant::PlantError::Invalid { .. })) => self
                        .ops
                        .unload(&actor, job, &Inspection::default())
                        .await
                        .map(drop),
                    other => other.map(drop),
                }
            }
            (TaskKind::ManualRun, Some(job)) => self.ops.confirm(&actor, job).await.map(drop),
            (TaskKind::Maintenance, _) => self
                .ops
                .maintained(&actor, &task.machine_id, &task.what)
                .await
                .map(drop),
            _ => Ok(()),
        };
        if let Err(e) = done {
            tracing::info!(task = task.id, error = %e, "simulated operator: task not confirmed");
        }
    }

    /// The inspection of an unloaded run: each piece is found bad with probability
    /// `scrap_rate`. Where the machine already scrapped some, its verdict (and its reason)
    /// stands as it is.
    fn inspect(&mut self, task: &TaskView) -> Inspection {
        if task.machine_scrapped.unwrap_or(0) > 0 {
            return Inspection::default();
        }
        let units = task.units.unwrap_or(0).max(0);
        let found = (0..units)
            .filter(|_| self.rng.chance(self.settings.scrap_rate))
            .count() as u32;
        if found == 0 {
            return Inspection::default();
        }
        Inspection {
            good: None,
            scrap: vec![ScrapEntry {
                count: found,
                reason: INSPECTION_SCRAP_REASON.into(),
            }],
        }
    }
}
