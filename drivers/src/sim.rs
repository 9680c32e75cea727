//! An in-process simulated machine: deterministic under its seed, time-scaled, with configurable
//! speed, run failures and scrap. The demo factory and the orchestrator's tests run on it; the
//! protocol-level simulators (GRBL, Marlin over pseudo-terminals) live in `hil-tests/`.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use crate::registry::{BuildContext, DriverKind, FieldProblem, Supports};
use crate::status::{DriverStatus, Progress, ProgressUnit};
use crate::{Condition, Driver, DriverCommand, DriverError, DriverEvent, JobRun};
use microfab_rng::SplitMix64;

/// A simulated machine's `driver` table (`kind = "sim"`).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimConfig {
    #[serde(default)]
    pub seed: u64,
    /// Unset: the plant's `[simulation] time_scale`.
    pub time_scale: Option<f64>,
    #[serde(default)]
    pub jitter: f64,
    #[serde(default)]
    pub failure_rate: f64,
    #[serde(default)]
    pub scrap_rate: f64,
}

impl SimConfig {
    pub fn settings(&self, context: &BuildContext) -> SimSettings {
        SimSettings {
            seed: self.seed,
            time_scale: self.time_scale.unwrap_or(context.default_time_scale),
            speed_factor: context.speed_factor,
            jitter: self.jitter,
            failure_rate: self.failure_rate,
            scrap_rate: self.scrap_rate,
        }
    }
}

impl DriverKind for SimConfig {
    fn supports() -> Supports {
        Supports {
            resume_from_line: false,
            resume_by_default: false,
            state_survives_restart: false,
            operator_actions: false,
        }
    }

    fn validate(&self) -> Vec<FieldProblem> {
        let mut problems = Vec::new();
        for (name, rate) in [
            ("failure_rate", self.failure_rate),
            ("scrap_rate", self.scrap_rate),
            ("jitter", self.jitter),
        ] {
            if !(0.0..1.0).contains(&rate) {
                problems.push(FieldProblem::new(name, format!("{name} must be in [0, 1)")));
            }
        }
        if self.time_scale.is_some_and(|t| !(t.is_finite() && t > 0.0)) {
            problems.push(FieldProblem::new(
                "time_scale",
                "time_scale must be positive",
            ));
        }
        problems
    }

    fn build(&self, context: &BuildContext) -> Box<dyn Driver> {
        Box::new(SimulatedMachine::new(self.settings(context)))
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SimSettings {
    pub seed: u64,
    /// Machine seconds per wall second: 60 runs a one-minute program in one second.
    pub time_scale: f64,
    /// Multiplies the spec's expected run time (a slower machine has a factor above 1).
    pub speed_factor: f64,
    /// Relative spread of run times around the expected value (0.1 = ±10 %).
    pub jitter: f64,
    /// Probability that a run fails part-way (a failed print, a broken tool): all its units scrap.
    pub failure_rate: f64,
    /// Probability that each unit of a finished run is scrap.
    pub scrap_rate: f64,
}

impl Default for SimSettings {
    fn default() -> Self {
        SimSettings {
            seed: 1,
            time_scale: 60.0,
            speed_factor: 1.0,
            jitter: 0.0,
            failure_rate: 0.0,
            scrap_rate: 0.0,
        }
    }
}

#[derive(Debug)]
enum Phase {
    Running { deadline: Instant },
    Paused { left: Duration },
}

#[derive(Debug)]
struct ActiveRun {
    job: JobRun,
    phase: Phase,
    /// Wall time the whole run takes (up to the failure, for a run that fails).
    wall: Duration,
    fails: bool,
}

impl ActiveRun {
    fn left(&self) -> Duration {
        match self.phase {
            Phase::Running { deadline } => deadline.saturating_duration_since(Instant::now()),
            Phase::Paused { left } => left,
        }
    }
}

#[derive(Debug)]
pub struct SimulatedMachine {
    settings: SimSettings,
    rng: SplitMix64,
    active: Option<ActiveRun>,
    pending: VecDeque<DriverEvent>,
}

impl SimulatedMachine {
    pub fn new(settings: SimSettings) -> Self {
        let rng = SplitMix64::new(settings.seed);
        let mut pending = VecDeque::new();
        pending.push_back(DriverEvent::Condition(Condition::Idle));
        SimulatedMachine {
            settings,
            rng,
            active: None,
            pending,
        }
    }

    fn wall_time(&mut self, job: &JobRun) -> Duration {
        let spread = 1.0 + self.settings.jitter * (2.0 * self.rng.next_f64() - 1.0);
        let machine_seconds = job.expected_seconds.max(0.0) * self.settings.speed_factor * spread;
        Duration::from_secs_f64(machine_seconds / self.settings.time_scale.max(1e-9))
    }

    fn finish(&mut self) {
        let Some(run) = self.active.take() else {
            return;
        };
        let job_id = run.job.job_id;
        if run.fails {
            self.pending.push_back(DriverEvent::JobFailed {
                job_id,
                reason: "simulated run failure".into(),
            });
        } else {
            let scrap_rate = self.settings.scrap_rate;
            let scrapped = (0..run.job.units)
                .filter(|_| self.rng.chance(scrap_rate))
                .count() as u32;
            self.pending.push_back(DriverEvent::JobFinished {
                job_id,
                scrapped,
                scrap_reason: (scrapped > 0).then(|| "simulated defect".to_string()),
            });
        }
        self.pending
            .push_back(DriverEvent::Condition(Condition::Idle));
    }
}

#[async_trait::async_trait]
impl Driver for SimulatedMachine {
    fn kind(&self) -> &'static str {
        "sim"
    }

    async fn command(&mut self, command: DriverCommand) -> Result<(), DriverError> {
        match command {
            DriverCommand::Run(job) => {
                if self.active.is_some() {
                    return Err(DriverError::Refused("a job is already running".into()));
                }
                let fails = self.rng.chance(self.settings.failure_rate);
                let mut wall = self.wall_time(&job);
                if fails {
                    wall = wall.mul_f64(self.rng.next_f64());
                }
                let job_id = job.job_id;
                self.active = Some(ActiveRun {
                    job,
                    phase: Phase::Running {
                        deadline: Instant::now() + wall,
                    },
                    wall,
                    fails,
                });
                self.pending
                    .push_back(DriverEvent::Condition(Condition::Busy));
                self.pending.push_back(DriverEvent::JobStarted { job_id });
                Ok(())
            }
            DriverCommand::Pause => {
                let run = self
                    .active
                    .as_mut()
                    .ok_or_else(|| DriverError::Refused("no job to pause".into()))?;
                if let Phase::Running { .. } = run.phase {
                    run.phase = Phase::Paused { left: run.left() };
                    self.pending
                        .push_back(DriverEvent::Condition(Condition::Paused));
                }
                Ok(())
            }
            DriverCommand::Resume => {
                let run = self
                    .active
                    .as_mut()
                    .ok_or_else(|| DriverError::Refused("no job to resume".into()))?;
                if let Phase::Paused { left } = run.phase {
                    run.phase = Phase::Running {
                        deadline: Instant::now() + left,
                    };
                    self.pending
                        .push_back(DriverEvent::Condition(Condition::Busy));
                }
                Ok(())
            }
            DriverCommand::Abort => {
                let run = self
                    .active
                    .take()
                    .ok_or_else(|| DriverError::Refused("no job to abort".into()))?;
                self.pending.push_back(DriverEvent::JobInterrupted {
                    job_id: run.job.job_id,
                    reason: "aborted by operator".into(),
                    resume: None,
                });
                self.pending
                    .push_back(DriverEvent::Condition(Condition::Idle));
                Ok(())
            }
            DriverCommand::ResumeRun { .. } => Err(DriverError::Unsupported("resume from a line")),
            DriverCommand::ConfirmManual { .. } => Err(DriverError::Unsupported("confirm")),
        }
    }

    async fn next_event(&mut self) -> DriverEvent {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return event;
            }
            match self.active.as_ref().map(|run| &run.phase) {
                Some(Phase::Running { deadline }) => {
                    tokio::time::sleep_until(*deadline).await;
                    self.finish();
                }
                _ => std::future::pending::<()>().await,
            }
        }
    }

    fn status(&self) -> DriverStatus {
        let progress = self.active.as_ref().map(|run| {
            let left = run.left().as_secs_f64() / run.wall.as_secs_f64().max(1e-9);
            Progress {
                done: ((1.0 - left.min(1.0)) * 1000.0).round() as u64,
                total: 1000,
                unit: ProgressUnit::PerMille,
            }
        });
        DriverStatus {
            progress,
            ..DriverStatus::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Program;

    fn job(job_id: i64, units: u32) -> JobRun {
        JobRun {
            job_id,
            program: Program::Named {
                name: "test".into(),
            },
            units,
            expected_seconds: 60.0,
        }
    }

    async fn run_to_end(machine: &mut SimulatedMachine, job_id: i64) -> DriverEvent {
        loop {
            if let e @ (DriverEvent::JobFinished { .. }
            | DriverEvent::JobFailed { .. }
            | DriverEvent::JobInterrupted { .. }) = machine.next_event().await
            {
                assert!(matches!(&e, DriverEvent::JobFinished { job_id: j, .. }
                    | DriverEvent::JobFailed { job_id: j, .. }
                    | DriverEvent::JobInterrupted { job_id: j, .. } if *j == job_id));
                return e;
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn run_takes_scaled_time_and_finishes() {
        let mut m = SimulatedMachine::new(SimSettings::default());
        let start = Instant::now();
        m.command(DriverCommand::Run(job(1, 10))).await.unwrap();
        let end = run_to_end(&mut m, 1).await;
        assert_eq!(
            end,
            DriverEvent::JobFinished {
                job_id: 1,
                scrapped: 0,
                scrap_reason: None
            }
        );
        assert_eq!(start.elapsed(), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn pause_stops_the_clock() {
        let mut m = SimulatedMachine::new(SimSettings::default());
        let start = Instant::now();
        m.command(DriverCommand::Run(job(1, 1))).await.unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        m.command(DriverCommand::Pause).await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
        m.command(DriverCommand::Resume).await.unwrap();
        run_to_end(&mut m, 1).await;
        assert_eq!(start.elapsed(), Duration::from_millis(6000));
    }

    #[tokio::test(start_paused = true)]
    async fn status_measures_progress_by_time_and_stands_still_while_paused() {
        let mut m = SimulatedMachine::new(SimSettings::default());
        let done = |m: &SimulatedMachine| m.status().progress.map(|p| p.done);
        assert_eq!(done(&m), None, "no run");
        m.command(DriverCommand::Run(job(1, 1))).await.unwrap();
        assert_eq!(done(&m), Some(0));
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(done(&m), Some(400));
        m.command(DriverCommand::Pause).await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(done(&m), Some(400));
        m.command(DriverCommand::Resume).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(done(&m), Some(700));
        run_to_end(&mut m, 1).await;
        assert_eq!(done(&m), None);
    }

    #[tokio::test(start_paused = true)]
    async fn scrap_rate_is_seeded_and_roughly_right() {
        let settings = SimSettings {
            scrap_rate: 0.03,
            seed: 42,
            ..SimSettings::default()
        };
        let mut totals = Vec::new();
        for _ in 0..2 {
            let mut m = SimulatedMachine::new(settings.clone());
            let mut scrapped_total = 0;
            for id in 0..100 {
                m.command(DriverCommand::Run(job(id, 100))).await.unwrap();
                if let DriverEvent::JobFinished { scrapped, .. } = run_to_end(&mut m, id).await {
                    scrapped_total += scrapped;
                }
            }
            totals.push(scrapped_total);
        }
        assert_eq!(totals[0], totals[1], "same seed, same scrap");
        assert!(
            (200..400).contains(&totals[0]),
            "3 % of 10,000 units: {}",
            totals[0]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_second_run_is_refused_while_busy() {
        let mut m = SimulatedMachine::new(SimSettings::default());
        m.command(DriverCommand::Run(job(1, 1))).await.unwrap();
        let err = m.command(DriverCommand::Run(job(2, 1))).await.unwrap_err();
        assert!(matches!(err, DriverError::Refused(_)));
    }

    #[tokio::test(start_paused = true)]
    async fn abort_interrupts_the_run() {
        let mut m = SimulatedMachine::new(SimSettings::default());
        m.command(DriverCommand::Run(job(3, 1))).await.unwrap();
        m.command(DriverCommand::Abort).await.unwrap();
        assert!(matches!(
            run_to_end(&mut m, 3).await,
            DriverEvent::JobInterrupted { job_id: 3, .. }
        ));
    }
}
