//! A GRBL 1.1 controller on a real pseudo-terminal, for tests, the streaming benchmark and
//! `microfab sim grbl`: the host opens `--link` like a USB serial port.
//!
//! [`firmware`] is the controller (buffers, replies, motion timing, alarms, faults), [`fault`]
//! the fault catalogue, [`crate::pty`] the cable (baud-rate limit, unplugging).
//!
//! By hand: `microfab sim grbl --link /tmp/mill1 --time-scale 60 --fault alarm:1@line:50`, then
//! point a machine with `driver = { kind = "grbl", port = "/tmp/mill1" }` at it, or talk to it
//! with any terminal program (`picocom -b 115200 /tmp/mill1`). `--execution-log FILE` records
//! every line the controller executed. `--reset-on-open` models an Arduino Uno, which reboots
//! each time the host opens the port (DTR) and loses what arrives during its bootloader delay.

pub mod bench;
pub mod fault;
pub mod firmware;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::pty::{SerialWire, WireConfig, WireDirection};
use fault::{Fault, FaultKind};
use firmware::{Firmware, FirmwareConfig, WireAction};

/// `microfab sim grbl` options (also the in-process configuration).
#[derive(clap::Args, Debug, Clone)]
pub struct GrblSimArgs {
    /// Path of the serial port to create (a symlink to a pseudo-terminal), e.g. /tmp/mill1.
    #[arg(long)]
    pub link: PathBuf,
    /// Emulated baud rate: the wire carries baud/10 bytes per second each way.
    #[arg(long, default_value_t = 115_200)]
    pub baud: u32,
    /// Machine seconds per wall second (60 runs a one-minute program in a second).
    #[arg(long, default_value_t = 1.0)]
    pub time_scale: f64,
    /// Serial receive buffer in bytes (GRBL's RX_BUFFER_SIZE).
    #[arg(long, default_value_t = 128)]
    pub rx_buffer: usize,
    /// Planner buffer in blocks.
    #[arg(long, default_value_t = 15)]
    pub planner_blocks: usize,
    /// Boot locked in alarm until `$H` or `$X` (GRBL's `$22=1`, homing enabled).
    #[arg(long)]
    pub homing_lock: bool,
    /// Bootloader delay after power-up, reset or replug, in wall milliseconds.
    #[arg(long, default_value_t = 100)]
    pub boot_ms: u64,
    /// The board resets whenever the host opens the port (DTR auto-reset, as on an Arduino
    /// Uno; use --boot-ms 500 for its bootloader); without it, a native-USB board that does not.
    #[arg(long)]
    pub reset_on_open: bool,
    /// Share of host-to-controller lines corrupted on the wire (0.01 = 1 %).
    #[arg(long, default_value_t = 0.0)]
    pub noise: f64,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Fault to inject, KIND@TRIGGER (repeatable): noise, swallow-ok, error:N, alarm:N, reset,
    /// disconnect:MS; at line:N or time:MS. Example: --fault alarm:1@line:50
    #[arg(long = "fault")]
    pub faults: Vec<Fault>,
    /// Append every executed line to this file.
    #[arg(long)]
    pub execution_log: Option<PathBuf>,
}

impl GrblSimArgs {
    /// The defaults, on the given path.
    pub fn new(link: impl Into<PathBuf>) -> GrblSimArgs {
        GrblSimArgs {
            link: link.into(),
            baud: 115_200,
            time_scale: 1.0,
            rx_buffer: 128,
            planner_blocks: 15,
            homing_lock: false,
            boot_ms: 100,
            reset_on_open: false,
            noise: 0.0,
            seed: 1,
            faults: Vec::new(),
            execution_log: None,
        }
    }

    fn firmware_config(&self) -> FirmwareConfig {
        FirmwareConfig {
            rx_buffer: self.rx_buffer,
            line_buffer: 80,
            planner_blocks: self.planner_blocks,
            time_scale: self.time_scale,
            homing_lock: self.homing_lock,
            boot: Duration::from_millis(self.boot_ms),
            rapid_mm_per_min: 3000.0,
            hold_decel: Duration::from_millis(100),
            faults: self.faults.clone(),
        }
    }
}

/// What the simulated controller did, for tests to compare with the program.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimRecord {
    /// Lines executed, in order, as the firmware saw them (comments and spaces stripped).
    pub executed: Vec<String>,
    /// Bytes lost to a full receive buffer.
    pub rx_overflow: u64,
}

/// A running simulator. Dropping it without [`GrblSim::shutdown`] leaves the task running
/// until the runtime ends.
#[derive(Debug)]
pub struct GrblSim {
    link: PathBuf,
    record: Arc<Mutex<SimRecord>>,
    injected: mpsc::UnboundedSender<FaultKind>,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl GrblSim {
    /// Create the port and start the controller (it prints its banner after the boot delay).
    pub fn spawn(args: GrblSimArgs) -> std::io::Result<GrblSim> {
        let wire = SerialWire::open(WireConfig {
            link: args.link.clone(),
            baud: args.baud,
            seed: args.seed,
        })?;
        wire.set_noise(WireDirection::HostToDevice, args.noise);
        let log_file = match &args.execution_log {
            Some(path) => Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            ),
            None => None,
        };
        let record = Arc::new(Mutex::new(SimRecord::default()));
        let (shutdown, shutdown_rx) = oneshot::channel();
        let (injected, injected_rx) = mpsc::unbounded_channel();
        let firmware = Firmware::new(args.firmware_config(), Instant::now());
        let board = Board {
            wire,
            firmware,
            reset_on_open: args.reset_on_open,
            injected: injected_rx,
        };
        let task = tokio::spawn(drive(board, record.clone(), log_file, shutdown_rx));
        Ok(GrblSim {
            link: args.link,
            record,
            injected,
            shutdown: Some(shutdown),
            task,
        })
    }

    pub fn link(&self) -> &Path {
        &self.link
    }

    pub fn record(&self) -> SimRecord {
        self.record.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Something happens at the machine now, outside the link: a feed-hold button, the safety
    /// door, a limit switch.
    pub fn inject(&self, kind: FaultKind) {
        let _ = self.injected.send(kind);
    }

    /// Stop the controller and remove the port.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        (&mut self.task).await.map_err(std::io::Error::other)?
    }
}

/// The controller on its cable, and what reaches it from outside the wire.
struct Board {
    wire: SerialWire,
    firmware: Firmware,
    reset_on_open: bool,
    injected: mpsc::UnboundedReceiver<FaultKind>,
}

async fn drive(
    board: Board,
    record: Arc<Mutex<SimRecord>>,
    mut log_file: Option<std::fs::File>,
    mut shutdown: oneshot::Receiver<()>,
) -> std::io::Result<()> {
    let Board {
        mut wire,
        mut firmware,
        reset_on_open,
        mut injected,
    } = board;
    let mut host_opens = wire.take_host_opens().filter(|_| reset_on_open);
    loop {
        let wakeup = firmware.next_wakeup();
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            received = wire.recv() => {
                let Some(bytes) = received else { return Ok(()) };
                let now = Instant::now();
                for byte in bytes {
                    firmware.receive(now, byte);
                }
            }
            Some(()) = recv_some(host_opens.as_mut()) => {
                firmware.hardware_reset(Instant::now());
            }
            Some(kind) = injected.recv() => firmware.inject(Instant::now(), kind),
            () = sleep_until(wakeup) => {}
        }
        firmware.advance(Instant::now());
        let executed = firmware.take_executed();
        if let Some(file) = &mut log_file {
            for line in &executed {
                writeln!(file, "{line}")?;
            }
        }
        if let Ok(mut record) = record.lock() {
            record.executed.extend(executed);
            record.rx_overflow = firmware.rx_overflow();
        }
        let output = firmware.take_output();
        if !output.is_empty() {
            wire.send(output);
        }
        if let Some(WireAction::Disconnect(duration)) = firmware.take_wire_action() {
            wire.unplug().await;
            tokio::time::sleep(duration).await;
            wire.replug().await?;
            firmware.hardware_reset(Instant::now());
        }
    }
}

async fn recv_some<T>(receiver: Option<&mut mpsc::UnboundedReceiver<T>>) -> Option<T> {
    match receiver {
        Some(receiver) => receiver.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// `microfab sim grbl`: run until Ctrl-C.
pub async fn run(args: GrblSimArgs) -> anyhow::Result<()> {
    let sim = GrblSim::spawn(args)?;
    tracing::info!(link = %sim.link().display(), "GRBL simulator listening");
    tokio::signal::ctrl_c().await?;
    sim.shutdown().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        sim: GrblSimArgs,
    }

    #[test]
    fn command_line_defaults_match_the_in_process_defaults() {
        let cli = Cli::try_parse_from(["sim", "--link", "/tmp/mill1"]).unwrap();
        let defaults = GrblSimArgs::new("/tmp/mill1");
        assert_eq!(format!("{:?}", cli.sim), format!("{defaults:?}"));
        let cli = Cli::try_parse_from([
            "sim",
            "--link",
            "/tmp/m",
            "--fault",
            "alarm:1@line:5",
            "--fault",
            "reset@time:100",
        ])
        .unwrap();
        assert_eq!(cli.sim.faults.len(), 2);
        assert!(
            Cli::try_parse_from(["sim", "--link", "/tmp/m", "--fault", "fire@line:1"]).is_err()
        );
    }
}
