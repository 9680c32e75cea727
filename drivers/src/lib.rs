//! The `Driver` interface between the orchestrator and a machine, and its implementations.
//!
//! A driver owns the link to one machine. The orchestrator runs one task per machine
//! (`orchestrator::runtime::machine_task`) that owns the driver, forwards operator and dispatcher
//! commands to [`Driver::command`] and reports what [`Driver::next_event`] yields.
//!
//! API boundary: drivers never touch the database and never decide what runs next. They report
//! facts about the machine (a run finished, the link dropped, an alarm); the orchestrator records
//! them and decides.

use std::sync::Arc;

pub mod grbl;
pub mod link;
pub mod manual;
pub mod marlin;
pub mod registry;
pub mod sim;
pub mod status;
pub mod traffic;

/// A program to run, as the orchestrator hands it to a driver.
#[derive(Debug, Clone, PartialEq)]
pub enum Program {
    /// G-code text, streamed line by line (GRBL, Marlin) or simulated.
    GCode { name: String, text: Arc<str> },
    /// A program that already lives on the controller, started by name (OPC UA CNC).
    Named { name: String },
}

impl Program {
    pub fn name(&self) -> &str {
        match self {
            Program::GCode { name, .. } | Program::Named { name } => name,
        }
    }
}

/// One run of one step: what a machine is asked to do.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRun {
    pub job_id: i64,
    pub program: Program,
    /// Units this run produces (parts on the sheet/bed/fixture).
    pub units: u32,
    /// Run time the spec expects, in seconds of machine time.
    pub expected_seconds: f64,
}

/// What the orchestrator asks of a driver. Closed: every driver answers every variant, if only
/// with [`DriverError::Unsupported`].
#[derive(Debug, Clone, PartialEq)]
pub enum DriverCommand {
    Run(JobRun),
    /// Go on with an interrupted run from line `from_line` of its program (1-based, as in the
    /// submitted file), on the machine that ran it: an operator's decision, never the
    /// scheduler's. The driver refuses unless it can tell the machine kept its state.
    ResumeRun {
        run: JobRun,
        from_line: u32,
    },
    Pause,
    Resume,
    /// Stop the current run now. The run ends as interrupted; its pieces are the operator's call.
    Abort,
    /// An operator confirms that a manual station finished its run.
    ConfirmManual {
        job_id: i64,
    },
}

impl DriverCommand {
    pub fn name(&self) -> &'static str {
        match self {
            DriverCommand::Run(_) => "run",
            DriverCommand::ResumeRun { .. } => "resume run",
            DriverCommand::Pause => "pause",
            DriverCommand::Resume => "resume",
            DriverCommand::Abort => "abort",
            DriverCommand::ConfirmManual { .. } => "confirm",
        }
    }
}

/// Actions only an operator takes, never the scheduler: clearing an alarm lock, homing, a reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperatorAction {
    Unlock,
    Home,
    Reset,
}

/// The machine's condition as the driver knows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "condition", rename_all = "snake_case")]
pub enum Condition {
    /// Link up, machine ready for work.
    Idle,
    /// Running a job.
    Busy,
    /// Job held because microfab asked for it (pause).
    Paused,
    /// Held by something microfab did not ask for (a feed-hold button, the safety door, line
    /// noise): `reason` names the cause and what the operator can do. Nothing resumes on its
    /// own; the operator resumes or aborts.
    Held { reason: String },
    /// The job waits for a person at the machine (a tool change, the printer's own prompt):
    /// `reason` says what to do.
    WaitingForOperator { reason: String },
    /// The machine reported an alarm; it needs an operator.
    Alarm { reason: String },
    /// We do not know the machine's state (link lost, unknown reply). Never treated as idle.
    Unavailable { reason: String },
}

/// Facts a driver reports. Job-scoped events carry the job id they concern.
#[derive(Debug, Clone, PartialEq)]
pub enum DriverEvent {
    /// The machine's condition changed.
    Condition(Condition),
    /// The run began executing on the machine.
    JobStarted { job_id: i64 },
    /// Progress through the program: `done` of its `total` lines acknowledged by the machine.
    JobProgress { job_id: i64, done: u64, total: u64 },
    /// The run completed. `scrapped` of its units came out bad (e.g. the simulator's scrap rate).
    JobFinished {
        job_id: i64,
        scrapped: u32,
        scrap_reason: Option<String>,
    },
    /// The run ended in a known failure (failed print, error reply): its pieces are scrap.
    JobFailed { job_id: i64, reason: String },
    /// The run stopped and its outcome is unknown (link lost, alarm, firmware reset, abort).
    /// It is never resumed without an operator's decision; `resume` says from where it could
    /// go on, when the driver knows (a streamed program whose machine may have kept its state).
    JobInterrupted {
        job_id: i64,
        reason: String,
        resume: Option<ResumePoint>,
    },
}

/// Where an interrupted run stopped, in lines of its program as submitted (1-based): every
/// command before `next_line` was acknowledged by the machine; the commands on the `in_doubt`
/// lines were sent but not acknowledged, so they may or may not have run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ResumePoint {
    pub next_line: u32,
    pub in_doubt: Vec<u32>,
}

impl ResumePoint {
    /// The latest line a resume may start from: after it, a command that never ran would be
    /// skipped. Starting earlier runs acknowledged lines again, which is the operator's call.
    pub fn latest_start(&self) -> u32 {
        self.in_doubt
            .last()
            .map_or(self.next_line, |&line| line + 1)
    }
}

/// Why a command or an operator action did not happen. The API tells `LinkDown` (the machine
/// cannot be reached: 503) apart from the rest (the machine or driver refused: 409).
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum DriverError {
    #[error("the link to the machine is down: {0}")]
    LinkDown(String),
    /// The machine refused or did not do it; the text says what is needed instead.
    #[error("the machine cannot do that now: {0}")]
    Refused(String),
    #[error("the program was rejected before it started: {0}")]
    Preflight(String),
    #[error("this driver does not support '{0}'")]
    Unsupported(&'static str),
}

/// A machine driver. Implementations: [`sim::SimulatedMachine`], [`manual::ManualStation`];
/// GRBL, Marlin and OPC UA drivers plug in here.
#[async_trait::async_trait]
pub trait Driver: Send {
    /// Short kind name for logs and the API (`sim`, `manual`, `grbl`, ...).
    fn kind(&self) -> &'static str;

    /// Carry out a command. `Ok` means the machine accepted it; what follows arrives as events.
    async fn command(&mut self, command: DriverCommand) -> Result<(), DriverError>;

    /// Wait for the next event. Must be cancel-safe: the machine task polls it inside
    /// `tokio::select!` together with its command channel, so dropping the future must lose
    /// nothing.
    async fn next_event(&mut self) -> DriverEvent;

    /// Carry out an operator's explicit action. Drivers without such actions refuse.
    async fn operator(&mut self, action: OperatorAction) -> Result<(), DriverError> {
        let _ = action;
        Err(DriverError::Unsupported("operator actions"))
    }

    /// Recent link traffic and counters, for drivers that talk a line protocol.
    fn traffic(&self) -> Option<&traffic::TrafficLog> {
        None
    }

    /// What the driver knows of its machine now, beyond its events: the machine task publishes
    /// it after each event and command, and every so often while it waits.
    fn status(&self) -> status::DriverStatus {
        status::DriverStatus::default()
    }
}
