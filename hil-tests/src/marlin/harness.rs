//! The Marlin driver against the simulator over a real PTY, for the HIL tests and the bench.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use microfab_drivers::marlin::{MarlinConfig, MarlinDriver};
use microfab_drivers::{Condition, Driver, DriverCommand, DriverEvent, JobRun, Program};

use super::firmware::{Executed, FirmwareConfig};
use super::{MarlinSim, SimConfig};

/// Commands the driver adds around a program (numbering reset, probes, M400, handshake); they
/// are left out when the execution log is compared with the program.
const HOST_COMMANDS: [&str; 4] = ["M110", "M105", "M115", "M400"];

/// A unique serial path under the temporary directory, removed when dropped.
#[derive(Debug)]
pub struct LinkPath(PathBuf);

impl LinkPath {
    pub fn new(purpose: &str) -> LinkPath {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("microfab-marlin-{purpose}-{}-{n}", std::process::id());
        LinkPath(std::env::temp_dir().join(name))
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for LinkPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// What the simulated board does when the host opens its port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Board {
    /// Native USB: the firmware keeps running.
    NativeUsb,
    /// DTR resets it (AVR boards): deaf for half a second, then `start`.
    ResetOnOpen,
}

impl Board {
    /// `MARLIN_SIM_BOARD=avr` runs the HIL tests against boards that reset when the port opens.
    pub fn from_env() -> Board {
        match std::env::var("MARLIN_SIM_BOARD").as_deref() {
            Ok("avr") => Board::ResetOnOpen,
            _ => Board::NativeUsb,
        }
    }
}

/// A simulator and a driver connected to it.
#[derive(Debug)]
pub struct Rig {
    pub sim: MarlinSim,
    pub driver: MarlinDriver,
    /// Every event the driver reported, in order.
    pub events: Vec<DriverEvent>,
    _link: LinkPath,
}

impl Rig {
    /// Start the simulator, then the driver, and wait until the printer is idle; the board
    /// from [`Board::from_env`].
    pub async fn start(
        baud: u32,
        firmware: FirmwareConfig,
        configure: impl FnOnce(&mut MarlinConfig),
    ) -> anyhow::Result<Rig> {
        Rig::start_on(Board::from_env(), baud, firmware, configure).await
    }

    pub async fn start_on(
        board: Board,
        baud: u32,
        firmware: FirmwareConfig,
        configure: impl FnOnce(&mut MarlinConfig),
    ) -> anyhow::Result<Rig> {
        let link = LinkPath::new("rig");
        let sim = MarlinSim::start(SimConfig {
            link: link.path().to_path_buf(),
            baud,
            seed: 7,
            execution_log: None,
            reset_on_open: board == Board::ResetOnOpen,
            firmware,
        })
        .context("starting the Marlin simulator")?;
        let mut config = MarlinConfig::new(link.path().to_string_lossy());
        config.baud = baud;
        config.reconnect_min_ms = 50;
        config.reconnect_max_ms = 500;
        configure(&mut config);
        let mut rig = Rig {
            sim,
            driver: MarlinDriver::new(config),
            events: Vec::new(),
            _link: link,
        };
        let idle = rig
            .wait_for(Duration::from_secs(10), |e| {
                *e == DriverEvent::Condition(Condition::Idle)
            })
            .await;
        if let Err(error) = idle {
            bail!(
                "the printer did not become idle: {error}\ntraffic:\n{}",
                rig.traffic_tail(40)
            );
        }
        Ok(rig)
    }

    /// The driver's last `lines` lines of traffic, one per line, for failure messages.
    pub fn traffic_tail(&self, lines: usize) -> String {
        let Some(traffic) = self.driver.traffic() else {
            return String::new();
        };
        let all: Vec<_> = traffic.lines().collect();
        all[all.len().saturating_sub(lines)..]
            .iter()
            .map(|l| format!("{:>7} {:?} {}\n", l.at_ms, l.direction, l.text))
            .collect()
    }

    /// Collect events until one matches; it is returned (and recorded in `events`).
    pub async fn wait_for(
        &mut self,
        timeout: Duration,
        matches: impl Fn(&DriverEvent) -> bool,
    ) -> anyhow::Result<DriverEvent> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let event = tokio::time::timeout_at(deadline, self.driver.next_event())
                .await
                .with_context(|| {
                    format!(
                        "no matching event within {timeout:?}; events so far: {:?}",
                        self.events
                    )
                })?;
            self.events.push(event.clone());
            if matches(&event) {
                return Ok(event);
            }
        }
    }

    /// Start a job.
    pub async fn run(&mut self, job_id: i64, program: &str) -> anyhow::Result<()> {
        let job = JobRun {
            job_id,
            program: Program::GCode {
                name: format!("job-{job_id}"),
                text: Arc::from(program),
            },
            units: 1,
            expected_seconds: 1.0,
        };
        self.driver.command(DriverCommand::Run(job)).await?;
        Ok(())
    }

    /// Wait for the job's last event: finished, failed or interrupted.
    pub async fn job_end(&mut self, job_id: i64, timeout: Duration) -> anyhow::Result<DriverEvent> {
        self.wait_for(timeout, |e| {
            matches!(e, DriverEvent::JobFinished { job_id: j, .. }
                | DriverEvent::JobFailed { job_id: j, .. }
                | DriverEvent::JobInterrupted { job_id: j, .. } if *j == job_id)
        })
        .await
    }
}

/// The execution log held against the program it should have run.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Comparison {
    /// Program lines never executed.
    pub lost: u64,
    /// Extra executions of program lines.
    pub doubled: u64,
    /// Executed commands that are neither program lines nor the host's own.
    pub foreign: Vec<String>,
    /// Program lines in the order they were executed (host commands left out).
    pub executed: Vec<String>,
}

impl Comparison {
    /// `program` is the stripped program, one command per line.
    pub fn new(program: &[String], log: &[Executed]) -> Comparison {
        let mut counts = std::collections::HashMap::<&str, u64>::new();
        for line in program {
            counts.entry(line.as_str()).or_default();
        }
        let mut comparison = Comparison::default();
        for entry in log {
            let command = entry.command.as_str();
            match counts.get_mut(command) {
                Some(count) => {
                    *count += 1;
                    comparison.executed.push(command.to_string());
                }
                None if is_host_command(command) => {}
                None => comparison.foreign.push(command.to_string()),
            }
        }
        let mut expected = std::collections::HashMap::<&str, u64>::new();
        for line in program {
            *expected.entry(line.as_str()).or_default() += 1;
        }
        for (line, want) in expected {
            let got = counts[line];
            comparison.lost += want.saturating_sub(got);
            comparison.doubled += got.saturating_sub(want);
        }
        comparison
    }

    /// Executed exactly the program's lines, in order, each once.
    pub fn is_exact(&self, program: &[String]) -> bool {
        self.executed == program && self.foreign.is_empty()
    }

    /// Executed a prefix of the program, in order, nothing twice: what an interrupted job may
    /// leave behind.
    pub fn is_prefix(&self, program: &[String]) -> bool {
        program.starts_with(&self.executed) && self.foreign.is_empty()
    }
}

/// `M110`, `M105`, `M115`, `M400`: what the driver adds around a program.
pub fn is_host_command(command: &str) -> bool {
    let word = command.split_whitespace().next().unwrap_or("");
    HOST_COMMANDS.contains(&word)
}

/// The program as the driver sends it: comments and blank lines stripped.
pub fn stripped(program: &str) -> anyhow::Result<Vec<String>> {
    match microfab_drivers::marlin::protocol::prepare_program(program) {
        Ok(lines) => Ok(lines.into_iter().map(|line| line.text).collect()),
        Err(error) => bail!("bad program: {error}"),
    }
}
