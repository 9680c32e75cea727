//! A Marlin firmware simulator on a real pseudo-terminal, for the driver's hardware-in-the-loop
//! tests, the streaming bench and `microfab sim marlin`.
//!
//! [`firmware::Firmware`] emulates Marlin's serial handling byte by byte; [`MarlinSim`] runs it
//! behind a [`crate::pty::SerialWire`] (real PTY, baud rate enforced both ways) and injects the
//! faults of [`fault`]: line noise and cable pulls on the wire, the rest in the firmware.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::pty::{SerialWire, WireConfig, WireDirection};

pub mod bench;
pub mod fault;
pub mod firmware;
pub mod harness;

use fault::{Fault, FaultKind, Trigger};
use firmware::{DropOk, Executed, Firmware, FirmwareConfig, UnnumberedChecksum};

/// How long an AVR board's bootloader keeps it deaf after DTR reset it.
const BOOT_TIME: Duration = Duration::from_millis(500);

/// `microfab sim marlin`: a Marlin printer on a serial path of your choice.
#[derive(Debug, Clone, clap::Args)]
pub struct MarlinSimArgs {
    /// Path of the serial port to create (a symlink to a pseudo-terminal), e.g. /tmp/printer1.
    #[arg(long)]
    pub link: PathBuf,
    /// Bits per second on the emulated cable (bytes/s = baud / 10, both ways).
    #[arg(long, default_value_t = 115_200)]
    pub baud: u32,
    /// Machine seconds per wall second for moves, homing and heating.
    #[arg(long, default_value_t = 1.0)]
    pub time_scale: f64,
    /// Corrupt this share of the lines the host sends (0.01 = 1 %), from the start.
    #[arg(long, default_value_t = 0.0)]
    pub noise: f64,
    /// Inject a fault, e.g. `swallow-ok@line:120`, `disconnect:2@line:300`, `reset@line:500`,
    /// `busy:30@line:10`, `error@line:7`, `kill@time:5`, `hang:3@line:40`, `cancel@line:50`,
    /// `noise:0.05@time:10`. Repeatable.
    #[arg(long = "fault")]
    pub faults: Vec<Fault>,
    /// Marlin's command buffer (BUFSIZE).
    #[arg(long, default_value_t = 4)]
    pub bufsize: usize,
    /// Receive buffer in bytes (RX_BUFFER_SIZE).
    #[arg(long, default_value_t = 128)]
    pub rx_buffer: usize,
    /// Answer `ok N<line> P<planner> B<buffer>` (ADVANCED_OK).
    #[arg(long)]
    pub advanced_ok: bool,
    /// What a line with a `*` checksum but no `N` line number does: `run` (Marlin 1.1 and
    /// 2.x), `reject` (Marlin 1.0, Sprinter; these also answer a move's `ok` as they read it),
    /// `reject-and-resend` (Prusa-Firmware).
    #[arg(long, value_enum, default_value_t = UnnumberedChecksum::Run)]
    pub unnumbered_checksum: UnnumberedChecksum,
    /// The board buffers its output (TX_BUFFER_SIZE > 0, or native USB). Without it, writes
    /// block as on AVR boards, and a line error loses what arrives while its error is written.
    #[arg(long)]
    pub tx_buffer: bool,
    /// Milliseconds per pass of the firmware's main loop: it reads what the host sent, and
    /// answers, only once per pass (0: as bytes arrive).
    #[arg(long, default_value_t = 0)]
    pub loop_ms: u64,
    /// Milliseconds the firmware's answers take to reach the host (a USB-serial bridge's
    /// latency timer).
    #[arg(long, default_value_t = 0)]
    pub answer_delay_ms: u64,
    /// Builds without `HOST_KEEPALIVE_FEATURE`: no `busy: processing` while a command blocks.
    #[arg(long)]
    pub no_host_keepalive: bool,
    /// Lose this share of the plain `ok`s that finish commands (0.01 = 1 %).
    #[arg(long, default_value_t = 0.0)]
    pub drop_ok: f64,
    /// Lose only the `ok`s of this command (e.g. `M400`).
    #[arg(long)]
    pub drop_ok_command: Option<String>,
    /// The board resets when the port is opened (DTR, as on AVR boards with an auto-reset
    /// circuit): deaf for half a second, then `start`. Without it, a native-USB board that
    /// keeps running.
    #[arg(long)]
    pub reset_on_open: bool,
    /// Seed for the line noise, to replay a run.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Append every command the firmware executes to this file, one per line, without line
    /// number and checksum (the host's own `M110`, `M105`, `M115` and `M400` included).
    #[arg(long)]
    pub execution_log: Option<PathBuf>,
}

impl MarlinSimArgs {
    pub fn sim_config(&self) -> SimConfig {
        let mut faults = self.faults.clone();
        if self.noise > 0.0 {
            faults.push(Fault::at_time(
                FaultKind::Noise {
                    probability: self.noise,
                },
                0.0,
            ));
        }
        SimConfig {
            link: self.link.clone(),
            baud: self.baud,
            seed: self.seed,
            execution_log: self.execution_log.clone(),
            reset_on_open: self.reset_on_open,
            firmware: FirmwareConfig {
                bufsize: self.bufsize.max(1),
                rx_buffer: self.rx_buffer.max(1),
                time_scale: self.time_scale,
                advanced_ok: self.advanced_ok,
                unnumbered_checksum: self.unnumbered_checksum,
                tx_buffer: self.tx_buffer,
                loop_time: Duration::from_millis(self.loop_ms),
                answer_delay: Duration::from_millis(self.answer_delay_ms),
                host_keepalive: !self.no_host_keepalive,
                drop_ok: (self.drop_ok > 0.0).then(|| DropOk {
                    share: self.drop_ok,
                    command: self.drop_ok_command.clone(),
                    seed: self.seed,
                }),
                faults,
                ..FirmwareConfig::default()
            },
        }
    }
}

/// Run the simulator until Ctrl-C.
pub async fn run(args: MarlinSimArgs) -> anyhow::Result<()> {
    let sim = MarlinSim::start(args.sim_config())?;
    println!(
        "Marlin simulator: {} at {} baud, time scale {} (Ctrl-C to stop)",
        sim.link().display(),
        args.baud,
        args.time_scale
    );
    tokio::signal::ctrl_c().await?;
    let log = sim.execution_log();
    sim.stop().await;
    println!("executed {} commands", log.len());
    Ok(())
}

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub link: PathBuf,
    pub baud: u32,
    pub seed: u64,
    /// A file to append executed commands to (see [`MarlinSimArgs::execution_log`]).
    pub execution_log: Option<PathBuf>,
    /// See [`MarlinSimArgs::reset_on_open`].
    pub reset_on_open: bool,
    /// Faults of every kind go here; the wire's are taken out and applied to the cable.
    pub firmware: FirmwareConfig,
}

/// What the simulator task shares with its owner.
#[derive(Debug, Default)]
struct Shared {
    log: Vec<Executed>,
    bytes_received: u64,
    resets: u64,
    rx_overflows: u64,
    oks_dropped: u64,
}

/// A running simulator. Dropping it stops the task and removes the link.
#[derive(Debug)]
pub struct MarlinSim {
    link: PathBuf,
    shared: Arc<Mutex<Shared>>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl MarlinSim {
    /// Create the PTY and the link, and start the firmware (its `start` banner is sent at once).
    pub fn start(config: SimConfig) -> std::io::Result<MarlinSim> {
        let mut wire = SerialWire::open(WireConfig {
            link: config.link.clone(),
            baud: config.baud,
            seed: config.seed,
        })?;
        let (wire_faults, firmware_faults) = config
            .firmware
            .faults
            .iter()
            .cloned()
            .partition(Fault::is_wire_fault);
        let firmware_config = FirmwareConfig {
            faults: firmware_faults,
            ..config.firmware
        };
        let log_file = match &config.execution_log {
            Some(path) => Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            ),
            None => None,
        };
        let shared = Arc::new(Mutex::new(Shared::default()));
        let (stop, stopped) = oneshot::channel();
        let host_opens = if config.reset_on_open {
            wire.take_host_opens()
        } else {
            None
        };
        let task = tokio::spawn(
            SimTask {
                host_opens,
                wire,
                firmware: Firmware::new(firmware_config, config.baud, Instant::now().into_std()),
                started: Instant::now(),
                wire_faults: wire_faults.into_iter().map(|f| (f, false)).collect(),
                replug_at: None,
                shared: shared.clone(),
                log_file,
            }
            .run(stopped),
        );
        Ok(MarlinSim {
            link: config.link,
            shared,
            stop: Some(stop),
            task: Some(task),
        })
    }

    pub fn link(&self) -> &Path {
        &self.link
    }

    /// Commands executed so far, in order, without line numbers and checksums.
    pub fn execution_log(&self) -> Vec<Executed> {
        self.lock().log.clone()
    }

    /// Bytes the firmware received from the host (after the wire).
    pub fn bytes_received(&self) -> u64 {
        self.lock().bytes_received
    }

    pub fn resets(&self) -> u64 {
        self.lock().resets
    }

    pub fn rx_overflows(&self) -> u64 {
        self.lock().rx_overflows
    }

    /// `ok`s lost to [`FirmwareConfig::drop_ok`].
    pub fn oks_dropped(&self) -> u64 {
        self.lock().oks_dropped
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for MarlinSim {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        let _ = std::fs::remove_file(&self.link);
    }
}

struct SimTask {
    wire: SerialWire,
    /// Opens of the port by the host, for a board that DTR resets.
    host_opens: Option<tokio::sync::mpsc::UnboundedReceiver<()>>,
    firmware: Firmware,
    started: Instant,
    wire_faults: Vec<(Fault, bool)>,
    replug_at: Option<Instant>,
    shared: Arc<Mutex<Shared>>,
    log_file: Option<std::fs::File>,
}

impl SimTask {
    async fn run(mut self, mut stopped: oneshot::Receiver<()>) {
        loop {
            self.flush();
            let wake = [
                self.firmware.next_wakeup().map(Instant::from_std),
                self.next_wire_fault_time(),
                self.replug_at,
            ]
            .into_iter()
            .flatten()
            .min();
            tokio::select! {
                _ = &mut stopped => break,
                bytes = self.wire.recv() => match bytes {
                    Some(bytes) => {
                        self.shared_mut().bytes_received += bytes.len() as u64;
                        self.firmware.receive(&bytes, Instant::now().into_std());
                    }
                    None => break,
                },
                () = sleep_until_some(wake) => self.firmware.poll(Instant::now().into_std()),
                Some(()) = host_open(self.host_opens.as_mut()) => {
                    tracing::info!("marlin sim: the port was opened; DTR resets the board");
                    self.firmware.reset_by_dtr(BOOT_TIME, Instant::now().into_std());
                }
            }
            self.apply_wire_faults().await;
        }
        self.flush();
    }

    fn shared_mut(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn flush(&mut self) {
        let output = self.firmware.take_output();
        if !output.is_empty() {
            self.wire.send(output);
        }
        let log = self.firmware.log();
        let mut shared = self
            .shared
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if shared.log.len() < log.len() {
            let new = log[shared.log.len()..].to_vec();
            if let Some(file) = self.log_file.as_mut() {
                let text: String = new.iter().map(|e| format!("{}\n", e.command)).collect();
                if let Err(error) = file.write_all(text.as_bytes()) {
                    tracing::warn!(%error, "marlin sim: cannot write the execution log");
                }
            }
            shared.log.extend(new);
        }
        shared.resets = self.firmware.resets();
        shared.rx_overflows = self.firmware.rx_overflows();
        shared.oks_dropped = self.firmware.oks_dropped();
    }

    fn next_wire_fault_time(&self) -> Option<Instant> {
        self.wire_faults
            .iter()
            .filter_map(|(fault, fired)| match (fired, fault.trigger) {
                (false, Trigger::Time(secs)) => Some(self.started + Duration::from_secs_f64(secs)),
                _ => None,
            })
            .min()
    }

    async fn apply_wire_faults(&mut self) {
        let elapsed = self.started.elapsed().as_secs_f64();
        let last_line = self.firmware.last_line();
        let mut due = Vec::new();
        for (fault, fired) in &mut self.wire_faults {
            let now_due = match fault.trigger {
                Trigger::Line(n) => last_line >= n as i64,
                Trigger::Time(secs) => elapsed >= secs,
            };
            if !*fired && now_due {
                *fired = true;
                due.push(fault.kind.clone());
            }
        }
        for kind in due {
            match kind {
                FaultKind::Noise { probability } => {
                    self.wire
                        .set_noise(WireDirection::HostToDevice, probability);
                }
                FaultKind::Disconnect { seconds } => {
                    tracing::info!("marlin sim: cable pulled for {seconds} s");
                    self.wire.unplug().await;
                    self.replug_at = Some(Instant::now() + Duration::from_secs_f64(seconds));
                }
                _ => {}
            }
        }
        if self.replug_at.is_some_and(|at| Instant::now() >= at) {
            self.replug_at = None;
            if let Err(error) = self.wire.replug().await {
                tracing::warn!(%error, "marlin sim: replug failed");
            }
        }
    }
}

async fn host_open(opens: Option<&mut tokio::sync::mpsc::UnboundedReceiver<()>>) -> Option<()> {
    match opens {
        Some(opens) => opens.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        sim: MarlinSimArgs,
    }

    #[test]
    fn command_line_options_become_the_simulator_config() {
        let cli = Cli::parse_from([
            "sim",
            "--link",
            "/tmp/printer1",
            "--baud",
            "250000",
            "--time-scale",
            "60",
            "--noise",
            "0.01",
            "--fault",
            "reset@line:500",
            "--fault",
            "disconnect:2@time:3",
            "--advanced-ok",
            "--unnumbered-checksum",
            "reject-and-resend",
            "--execution-log",
            "/tmp/printer1.log",
            "--no-host-keepalive",
            "--drop-ok",
            "0.01",
            "--drop-ok-command",
            "M400",
            "--reset-on-open",
        ]);
        let config = cli.sim.sim_config();
        assert_eq!(config.link, PathBuf::from("/tmp/printer1"));
        assert_eq!(config.baud, 250_000);
        assert_eq!(config.firmware.time_scale, 60.0);
        assert!(config.firmware.advanced_ok);
        assert!(!config.firmware.host_keepalive);
        assert!(config.reset_on_open);
        assert_eq!(
            config.firmware.drop_ok,
            Some(DropOk {
                share: 0.01,
                command: Some("M400".into()),
                seed: 1
            })
        );
        assert_eq!(
            config.firmware.unnumbered_checksum,
            UnnumberedChecksum::RejectAndResend
        );
        assert_eq!(
            config.execution_log,
            Some(PathBuf::from("/tmp/printer1.log"))
        );
        let faults: Vec<String> = config
            .firmware
            .faults
            .iter()
            .map(|f| f.to_string())
            .collect();
        assert_eq!(
            faults,
            ["reset@line:500", "disconnect:2@time:3", "noise:0.01@time:0"]
        );
        assert!(
            Cli::try_parse_from(["sim", "--link", "/tmp/p", "--fault", "melt@line:1"]).is_err()
        );
    }
}
