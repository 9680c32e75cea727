//! The simulated machine tool itself, without OPC UA: programs, the production job list, the
//! channel and spindle, counters advancing in machine time, seeded scrap and alarms. Time comes
//! in as machine seconds ([`Machine::advance`]); nothing here sleeps or reads a clock, so the
//! server can stop and listen again while the machine keeps its state, and unit tests drive it
//! directly.

use microfab_rng::SplitMix64;

use super::files::{MAX_PROGRAMS, UPLOADED_CYCLE_SECONDS, cycle_seconds_in};

/// A production job's state, as OPC 40501's ProductionStateMachineType names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Initializing,
    Running,
    Interrupted,
    Ended,
    Aborted,
}

impl JobState {
    pub fn name(self) -> &'static str {
        match self {
            JobState::Initializing => "Initializing",
            JobState::Running => "Running",
            JobState::Interrupted => "Interrupted",
            JobState::Ended => "Ended",
            JobState::Aborted => "Aborted",
        }
    }

    fn is_final(self) -> bool {
        matches!(self, JobState::Ended | JobState::Aborted)
    }
}

/// OPC 40501 ChannelState (an Int32 enumeration on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelState {
    Active = 0,
    Interrupted = 1,
    Reset = 2,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProductionJob {
    pub identifier: String,
    pub program: String,
    pub runs_planned: u32,
    pub runs_completed: u32,
    /// Parts finished, good or not (one part per run).
    pub parts_completed: u32,
    pub parts_good: u32,
    pub state: JobState,
    /// Machine seconds into the current run.
    run_elapsed: f64,
}

/// An alarm or message the machine raises (an event on `Notification/Messages`).
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// The manufacturer's error code, e.g. "ALM-1021".
    pub error_code: String,
    /// 1 (information) to 1000 (critical), as OPC UA event severities.
    pub severity: u16,
    pub message: String,
}

/// Why the machine refused a command (mapped to a status code by the server).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no program named '{0}' on the machine")]
    UnknownProgram(String),
    #[error("RunsPlanned must be at least 1")]
    NoRuns,
    #[error("a job is already active")]
    Busy,
    #[error("no program selected")]
    NothingSelected,
    #[error("the active job is {0}, not {1}")]
    WrongState(&'static str, &'static str),
    #[error("no active job")]
    NoActiveJob,
    #[error("a program named '{0}' exists")]
    ProgramExists(String),
    #[error("'{0}' is not a program name (letters, digits, - and _)")]
    BadProgramName(String),
    #[error("the program store is full")]
    StoreFull,
}

/// A program in the machine's store.
#[derive(Debug, Clone)]
struct Program {
    name: String,
    /// Configured cycle time; an uploaded program's comes from its text.
    cycle_seconds: Option<f64>,
    text: Vec<u8>,
}

impl Program {
    fn cycle_seconds(&self) -> f64 {
        self.cycle_seconds
            .or_else(|| cycle_seconds_in(&self.text))
            .unwrap_or(UPLOADED_CYCLE_SECONDS)
    }
}

#[derive(Debug, Clone)]
pub struct MachineConfig {
    /// Programs on the machine and each one's cycle time in machine seconds.
    pub programs: Vec<(String, f64)>,
    /// Share of parts the machine scraps (0.05 = 5 %).
    pub scrap_rate: f64,
    pub seed: u64,
}

#[derive(Debug, Clone)]
pub struct Machine {
    config: MachineConfig,
    rng: SplitMix64,
    /// In the order they came: configured ones, then uploads (a program's index is its slot).
    programs: Vec<Program>,
    jobs: Vec<ProductionJob>,
    /// Index in `jobs` of the job the channel runs or holds.
    active: Option<usize>,
    selected_program: Option<String>,
    /// Machine seconds since power-on.
    powered_seconds: f64,
    pending_notifications: Vec<Notification>,
}

impl Machine {
    pub fn new(config: MachineConfig) -> Machine {
        let programs = config
            .programs
            .iter()
            .map(|(name, seconds)| Program {
                name: name.clone(),
                cycle_seconds: Some(*seconds),
                text: format!("(simulated program {name})\n(cycle-seconds: {seconds})\nM30\n")
                    .into_bytes(),
            })
            .collect();
        Machine {
            rng: SplitMix64::new(config.seed),
            programs,
            config,
            jobs: Vec::new(),
            active: None,
            selected_program: None,
            powered_seconds: 0.0,
            pending_notifications: Vec::new(),
        }
    }

    /// Program names in slot order.
    pub fn programs(&self) -> impl Iterator<Item = &str> {
        self.programs.iter().map(|p| p.name.as_str())
    }

    pub fn program_text(&self, name: &str) -> Option<&[u8]> {
        self.program(name).map(|p| p.text.as_slice())
    }

    fn program(&self, name: &str) -> Option<&Program> {
        self.programs.iter().find(|p| p.name == name)
    }

    fn has_program(&self, name: &str) -> bool {
        self.program(name).is_some()
    }

    /// Add an empty program; returns its slot.
    pub fn create_program(&mut self, name: &str) -> Result<usize, Refusal> {
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            return Err(Refusal::BadProgramName(name.to_string()));
        }
        if self.has_program(name) {
            return Err(Refusal::ProgramExists(name.to_string()));
        }
        if self.programs.len() >= MAX_PROGRAMS {
            return Err(Refusal::StoreFull);
        }
        self.programs.push(Program {
            name: name.to_string(),
            cycle_seconds: None,
            text: Vec::new(),
        });
        Ok(self.programs.len() - 1)
    }

    /// Write `bytes` into a program's text at `at` (over what is there); `erase` empties it first.
    pub fn write_program(
        &mut self,
        name: &str,
        at: usize,
        bytes: &[u8],
        erase: bool,
    ) -> Result<(), Refusal> {
        let program = self
            .programs
            .iter_mut()
            .find(|p| p.name == name)
            .ok_or_else(|| Refusal::UnknownProgram(name.to_string()))?;
        if erase {
            program.text.clear();
        }
        let at = at.min(program.text.len());
        let end = (at + bytes.len()).min(program.text.len());
        program.text.splice(at..end, bytes.iter().copied());
        // A configured cycle time describes the configured text only.
        program.cycle_seconds = None;
        Ok(())
    }

    pub fn jobs(&self) -> &[ProductionJob] {
        &self.jobs
    }

    pub fn active_job(&self) -> Option<&ProductionJob> {
        self.active.map(|index| &self.jobs[index])
    }

    /// 1-based position of the active job in the production plan.
    pub fn active_number_in_list(&self) -> Option<u16> {
        self.active
            .map(|index| u16::try_from(index + 1).unwrap_or(u16::MAX))
    }

    /// The program the channel shows: the active job's, else the selected one.
    pub fn active_program_name(&self) -> Option<&str> {
        self.active_job()
            .map(|job| job.program.as_str())
            .or(self.selected_program.as_deref())
    }

    pub fn channel_state(&self) -> ChannelState {
        match self.active_job().map(|job| job.state) {
            Some(JobState::Running | JobState::Initializing) => ChannelState::Active,
            Some(JobState::Interrupted) => ChannelState::Interrupted,
            _ => ChannelState::Reset,
        }
    }

    pub fn spindle_rotating(&self) -> bool {
        self.channel_state() == ChannelState::Active
    }

    /// Whole hours since power-on (OPC 40501 PowerOnDuration).
    pub fn power_on_hours(&self) -> u32 {
        (self.powered_seconds / 3600.0) as u32
    }

    /// Runs completed over every job so far (the fault triggers count these).
    pub fn total_runs_completed(&self) -> u64 {
        self.jobs
            .iter()
            .map(|job| u64::from(job.runs_completed))
            .sum()
    }

    pub fn take_notifications(&mut self) -> Vec<Notification> {
        std::mem::take(&mut self.pending_notifications)
    }

    /// Queue a job for `program` with `runs_planned` runs and start it; returns its identifier.
    pub fn store_and_start(&mut self, program: &str, runs_planned: u32) -> Result<String, Refusal> {
        if !self.has_program(program) {
            return Err(Refusal::UnknownProgram(program.to_string()));
        }
        if runs_planned == 0 {
            return Err(Refusal::NoRuns);
        }
        if self.active_job().is_some_and(|job| !job.state.is_final()) {
            return Err(Refusal::Busy);
        }
        let identifier = format!("JOB-{:04}", self.jobs.len() + 1);
        self.jobs.push(ProductionJob {
            identifier: identifier.clone(),
            program: program.to_string(),
            runs_planned,
            runs_completed: 0,
            parts_completed: 0,
            parts_good: 0,
            state: JobState::Running,
            run_elapsed: 0.0,
        });
        self.active = Some(self.jobs.len() - 1);
        self.selected_program = Some(program.to_string());
        Ok(identifier)
    }

    pub fn select_program(&mut self, program: &str) -> Result<(), Refusal> {
        if !self.has_program(program) {
            return Err(Refusal::UnknownProgram(program.to_string()));
        }
        if self.active_job().is_some_and(|job| !job.state.is_final()) {
            return Err(Refusal::Busy);
        }
        self.selected_program = Some(program.to_string());
        Ok(())
    }

    /// Start the selected program once (a cycle start on the panel).
    pub fn start_selected(&mut self) -> Result<String, Refusal> {
        let program = self
            .selected_program
            .clone()
            .ok_or(Refusal::NothingSelected)?;
        self.store_and_start(&program, 1)
    }

    pub fn pause(&mut self) -> Result<(), Refusal> {
        self.transition(JobState::Running, JobState::Interrupted)
    }

    pub fn resume(&mut self) -> Result<(), Refusal> {
        self.transition(JobState::Interrupted, JobState::Running)
    }

    pub fn abort(&mut self) -> Result<(), Refusal> {
        let job = self.active_job_mut()?;
        if job.state.is_final() {
            return Err(Refusal::WrongState(
                job.state.name(),
                "Running or Interrupted",
            ));
        }
        job.state = JobState::Aborted;
        Ok(())
    }

    /// An alarm stops the channel: the running job is interrupted until someone resumes it.
    pub fn raise_alarm(&mut self, notification: Notification) {
        if let Some(index) = self.active
            && self.jobs[index].state == JobState::Running
        {
            self.jobs[index].state = JobState::Interrupted;
        }
        self.pending_notifications.push(notification);
    }

    /// Let `seconds` of machine time pass: the running job's runs complete, each one part,
    /// scrapped with the configured probability; the job ends after its last planned run.
    pub fn advance(&mut self, seconds: f64) {
        self.advance_until(seconds, None);
    }

    /// As [`Machine::advance`], but stop the clock the moment `stop_at_runs` runs have completed
    /// over all jobs (a fault due then strikes between two runs, however fast time runs);
    /// returns the machine seconds not spent.
    pub fn advance_until(&mut self, seconds: f64, stop_at_runs: Option<u64>) -> f64 {
        self.powered_seconds += seconds;
        let Some(index) = self.active else { return 0.0 };
        let cycle = self
            .program(&self.jobs[index].program)
            .map_or(UPLOADED_CYCLE_SECONDS, Program::cycle_seconds)
            .max(f64::EPSILON);
        let mut total_runs = self.total_runs_completed();
        let job = &mut self.jobs[index];
        if job.state != JobState::Running {
            return 0.0;
        }
        job.run_elapsed += seconds;
        let mut unspent = 0.0;
        while job.run_elapsed >= cycle && job.runs_completed < job.runs_planned {
            job.run_elapsed -= cycle;
            job.runs_completed += 1;
            job.parts_completed += 1;
            if !self.rng.chance(self.config.scrap_rate) {
                job.parts_good += 1;
            }
            total_runs += 1;
            if stop_at_runs == Some(total_runs) {
                unspent = job.run_elapsed;
                job.run_elapsed = 0.0;
                break;
            }
        }
        if job.runs_completed == job.runs_planned {
            job.state = JobState::Ended;
            job.run_elapsed = 0.0;
        }
        self.powered_seconds -= unspent;
        unspent
    }

    fn active_job_mut(&mut self) -> Result<&mut ProductionJob, Refusal> {
        let index = self.active.ok_or(Refusal::NoActiveJob)?;
        Ok(&mut self.jobs[index])
    }

    fn transition(&mut self, from: JobState, to: JobState) -> Result<(), Refusal> {
        let job = self.active_job_mut()?;
        if job.state != from {
            return Err(Refusal::WrongState(job.state.name(), from.name()));
        }
        job.state = to;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(scrap_rate: f64) -> Machine {
        Machine::new(MachineConfig {
            programs: vec![("BRACKET".to_string(), 10.0)],
            scrap_rate,
            seed: 7,
        })
    }

    #[test]
    fn runs_complete_in_machine_time_and_the_job_ends() {
        let mut machine = machine(0.0);
        let id = machine.store_and_start("BRACKET", 3).unwrap();
        assert_eq!(id, "JOB-0001");
        machine.advance(25.0);
        let job = machine.active_job().unwrap();
        assert_eq!((job.runs_completed, job.state), (2, JobState::Running));
        machine.advance(5.0);
        let job = machine.active_job().unwrap();
        assert_eq!((job.runs_completed, job.parts_good), (3, 3));
        assert_eq!(job.state, JobState::Ended);
        assert_eq!(machine.channel_state(), ChannelState::Reset);
        machine.advance(100.0);
        assert_eq!(machine.active_job().unwrap().runs_completed, 3);
    }

    #[test]
    fn scrap_is_seeded_and_good_plus_scrap_is_completed() {
        let counts = |seed| {
            let mut machine = Machine::new(MachineConfig {
                seed,
                ..machine(0.3).config
            });
            machine.store_and_start("BRACKET", 200).unwrap();
            machine.advance(2000.0);
            let job = machine.active_job().unwrap();
            (job.parts_completed, job.parts_good)
        };
        let (completed, good) = counts(7);
        assert_eq!(completed, 200);
        assert!(
            (100..180).contains(&good),
            "{good} good of 200 at 30 % scrap"
        );
        assert_eq!(counts(7), (completed, good));
        assert_ne!(counts(8), (completed, good));
    }

    #[test]
    fn commands_are_refused_in_the_wrong_state() {
        let mut machine = machine(0.0);
        assert_eq!(machine.pause(), Err(Refusal::NoActiveJob));
        assert_eq!(
            machine.store_and_start("NOPE", 1),
            Err(Refusal::UnknownProgram("NOPE".into()))
        );
        assert_eq!(machine.store_and_start("BRACKET", 0), Err(Refusal::NoRuns));
        machine.store_and_start("BRACKET", 2).unwrap();
        assert_eq!(machine.store_and_start("BRACKET", 1), Err(Refusal::Busy));
        assert_eq!(
            machine.resume(),
            Err(Refusal::WrongState("Running", "Interrupted"))
        );
        machine.pause().unwrap();
        machine.advance(50.0);
        assert_eq!(machine.active_job().unwrap().runs_completed, 0);
        machine.resume().unwrap();
        machine.abort().unwrap();
        assert_eq!(machine.active_job().unwrap().state, JobState::Aborted);
        assert_eq!(machine.start_selected().unwrap(), "JOB-0002");
    }

    #[test]
    fn the_clock_stops_at_a_run_count_and_hands_back_the_rest() {
        let mut machine = machine(0.0);
        machine.store_and_start("BRACKET", 10).unwrap();
        let unspent = machine.advance_until(75.0, Some(3));
        assert_eq!(machine.total_runs_completed(), 3);
        assert!((unspent - 45.0).abs() < 1e-9, "{unspent}");
        assert_eq!(machine.advance_until(unspent, Some(9)), 0.0);
        assert_eq!(machine.total_runs_completed(), 7);
    }

    #[test]
    fn an_alarm_interrupts_the_running_job() {
        let mut machine = machine(0.0);
        machine.store_and_start("BRACKET", 2).unwrap();
        machine.raise_alarm(Notification {
            error_code: "ALM-7".into(),
            severity: 800,
            message: "spindle overload".into(),
        });
        assert_eq!(machine.channel_state(), ChannelState::Interrupted);
        assert_eq!(machine.take_notifications().len(), 1);
        assert!(machine.take_notifications().is_empty());
    }
}
