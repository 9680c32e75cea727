//! Marlin (and Marlin-compatible: Prusa-Firmware, Klipper's G-code replies) 3D printers over
//! USB serial.
//!
//! [`MarlinDriver`] runs the pure [`protocol::Protocol`] over a [`crate::link::SerialLink`]:
//! it opens the port inside [`Driver::next_event`] (reporting `Unavailable` until the firmware
//! answered the handshake), feeds received bytes and timeouts to the protocol, writes what it
//! returns and turns its events into [`DriverEvent`]s. A lost link (I/O error, end of file, or
//! silence past the protocol's tiered timeouts) interrupts the job — it is never continued
//! silently — and the port is reopened with backoff.
//!
//! A job is done when every line was acknowledged, the `M400` appended to it
//! ([`MarlinConfig::finish_with_m400`]) has returned (the moves are finished) and the final
//! `M105` probe was answered.

use std::collections::VecDeque;
use std::time::Duration;

use serde::Deserialize;
use tokio::time::Instant;

use crate::link::{Backoff, Reconnector, SerialLink, SerialSettings};
use crate::registry::{BuildContext, DriverKind, FieldProblem, Resource, Supports};
use crate::status::{DriverStatus, LinkStatus};
use crate::traffic::TrafficLog;
use crate::{Condition, Driver, DriverCommand, DriverError, DriverEvent, Program, ResumePoint};

pub mod protocol;
pub mod reply;

use protocol::{ProgramLine, Protocol, ProtocolEvent, Settings};
use reply::Temperatures;

/// One printer's `[machines.*.marlin]` table. Only `port` is required.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarlinConfig {
    /// Serial device, preferably `/dev/serial/by-id/usb-...` (stable across replugs).
    pub port: String,
    /// 115200 or 250000 on most boards; irrelevant on native USB, where any value works.
    #[serde(default = "defaults::baud")]
    pub baud: u32,
    /// Lines sent ahead of the acknowledgements. Unset (the default), the driver chooses from
    /// the firmware's M115 answer ([`protocol::auto_line_window`]): 3 for firmware that rejects
    /// a line with `*` and no `N` (Prusa-Firmware 3.x, Marlin 1.0, Sprinter), where 3 is the best
    /// value measured ([`protocol::TAIL_REJECTING_WINDOW`]: 0.9 of the wire under 1 % line
    /// corruption, against under 0.5 for 1), and 1, safe on every board, for Marlin 1.1/2.x, Klipper and anything unrecognised; see
    /// [`protocol`] for why a larger window can run a command twice after a checksum error on
    /// Marlin 1.1/2.x boards with a UART bridge. A number here is used whatever the firmware, but
    /// a window above 1 is refused on Marlin 1.1/2.x ([`protocol::runs_cut_tails`]).
    #[serde(default)]
    pub in_flight: Option<usize>,
    #[serde(default = "defaults::command_timeout_ms")]
    pub command_timeout_ms: u64,
    /// Silence allowed while M109/M190/M400/G28/G29 and the like run; `busy:` keep-alives and
    /// temperature reports restart it.
    #[serde(default = "defaults::long_command_timeout_ms")]
    pub long_command_timeout_ms: u64,
    /// Silence (no `ok`, no `busy:` keep-alive) after which a probe asks the printer where it
    /// is, whatever is in flight: what a lost `ok` costs. Above Marlin's 2 s keep-alive interval.
    #[serde(default = "defaults::silence_probe_ms")]
    pub silence_probe_ms: u64,
    #[serde(default = "defaults::handshake_retry_ms")]
    pub handshake_retry_ms: u64,
    /// Temperature poll while idle or paused.
    #[serde(default = "defaults::poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// Quiet time before resending when later lines were in flight, on top of the longest of
    /// those lines' wire time at `baud` (see [`protocol`]).
    #[serde(default = "defaults::resend_settle_ms")]
    pub resend_settle_ms: u64,
    #[serde(default = "defaults::max_consecutive_resends")]
    pub max_consecutive_resends: u32,
    /// A numbered M105 probe every this many lines resynchronises the `ok` count.
    #[serde(default = "defaults::resync_interval")]
    pub resync_interval: usize,
    /// Marlin 2.x sends `ok` after `Resend:`; set false for firmware that does not.
    #[serde(default = "defaults::yes")]
    pub ok_after_resend: bool,
    #[serde(default = "defaults::yes")]
    pub finish_with_m400: bool,
    /// Sent after an abort, a cancel on the printer or a failed job.
    #[serde(default = "protocol::default_cancel_script")]
    pub cancel_script: Vec<String>,
    #[serde(default = "defaults::reconnect_min_ms")]
    pub reconnect_min_ms: u64,
    #[serde(default = "defaults::reconnect_max_ms")]
    pub reconnect_max_ms: u64,
    #[serde(default = "defaults::traffic_capacity")]
    pub traffic_capacity: usize,
}

mod defaults {
    use super::Settings;

    pub fn baud() -> u32 {
        115_200
    }
    pub fn command_timeout_ms() -> u64 {
        Settings::default().command_timeout.as_millis() as u64
    }
    pub fn long_command_timeout_ms() -> u64 {
        Settings::default().long_command_timeout.as_millis() as u64
    }
    pub fn silence_probe_ms() -> u64 {
        Settings::default().silence_probe.as_millis() as u64
    }
    pub fn handshake_retry_ms() -> u64 {
        Settings::default().handshake_retry.as_millis() as u64
    }
    pub fn poll_interval_ms() -> u64 {
        Settings::default().poll_interval.as_millis() as u64
    }
    pub fn resend_settle_ms() -> u64 {
        Settings::default().resend_settle.as_millis() as u64
    }
    pub fn max_consecutive_resends() -> u32 {
        Settings::default().max_consecutive_resends
    }
    pub fn resync_interval() -> usize {
        Settings::default().resync_interval
    }
    pub fn yes() -> bool {
        true
    }
    pub fn reconnect_min_ms() -> u64 {
        250
    }
    pub fn reconnect_max_ms() -> u64 {
        10_000
    }
    pub fn traffic_capacity() -> usize {
        Settings::default().traffic_capacity
    }
}

impl MarlinConfig {
    /// All defaults, on `port`.
    pub fn new(port: impl Into<String>) -> MarlinConfig {
        MarlinConfig {
            port: port.into(),
            baud: defaults::baud(),
            in_flight: None,
            command_timeout_ms: defaults::command_timeout_ms(),
            long_command_timeout_ms: defaults::long_command_timeout_ms(),
            silence_probe_ms: defaults::silence_probe_ms(),
            handshake_retry_ms: defaults::handshake_retry_ms(),
            poll_interval_ms: defaults::poll_interval_ms(),
            resend_settle_ms: defaults::resend_settle_ms(),
            max_consecutive_resends: defaults::max_consecutive_resends(),
            resync_interval: defaults::resync_interval(),
            ok_after_resend: true,
            finish_with_m400: true,
            cancel_script: protocol::default_cancel_script(),
            reconnect_min_ms: defaults::reconnect_min_ms(),
            reconnect_max_ms: defaults::reconnect_max_ms(),
            traffic_capacity: defaults::traffic_capacity(),
        }
    }

    pub fn protocol_settings(&self) -> Settings {
        // Zero durations would make the protocol's timers fire in a loop.
        let ms = |ms: u64| Duration::from_millis(ms.max(10));
        Settings {
            in_flight: self.in_flight.map(|lines| lines.max(1)),
            command_timeout: ms(self.command_timeout_ms),
            long_command_timeout: ms(self.long_command_timeout_ms),
            silence_probe: ms(self.silence_probe_ms),
            handshake_retry: ms(self.handshake_retry_ms),
            poll_interval: ms(self.poll_interval_ms),
            resend_settle: Duration::from_millis(self.resend_settle_ms),
            byte_time: protocol::byte_time(self.baud),
            max_consecutive_resends: self.max_consecutive_resends,
            resync_interval: self.resync_interval.max(1),
            ok_after_resend: self.ok_after_resend,
            finish_with_m400: self.finish_with_m400,
            cancel_script: self.cancel_script.clone(),
            traffic_capacity: self.traffic_capacity,
        }
    }
}

impl DriverKind for MarlinConfig {
    fn supports() -> Supports {
        Supports {
            resume_from_line: true,
            resume_by_default: true,
            state_survives_restart: true,
            operator_actions: false,
        }
    }

    fn validate(&self) -> Vec<FieldProblem> {
        let problem = if self.port.trim().is_empty() {
            Some("port is empty")
        } else if self.in_flight == Some(0) {
            Some("in_flight must be at least 1")
        } else {
            None
        };
        problem.map(FieldProblem::table).into_iter().collect()
    }

    fn resources(&self) -> Vec<Resource> {
        vec![Resource::serial_port(&self.port)]
    }

    fn preflight(&self, program: &str) -> Result<(), String> {
        protocol::prepare_program(program)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn build(&self, _: &BuildContext) -> Box<dyn Driver> {
        Box::new(MarlinDriver::new(self.clone()))
    }
}

#[derive(Debug)]
pub struct MarlinDriver {
    config: MarlinConfig,
    reconnector: Reconnector,
    link: Option<SerialLink>,
    connected_before: bool,
    protocol: Protocol,
    job_id: Option<i64>,
    resumable: Option<ResumableJob>,
    condition: Option<Condition>,
    pending: VecDeque<DriverEvent>,
}

/// A job the link dropped under, while nothing has said the printer lost its state since.
#[derive(Debug)]
struct ResumableJob {
    job_id: i64,
    point: ResumePoint,
    /// Heaters that had a target when the link dropped: if one is off now, the printer
    /// restarted (or gave up) while we could not hear it.
    heated: Vec<(String, f64)>,
}

impl ResumableJob {
    /// Why the printer cannot go on with this job from `from_line`, if it cannot.
    fn refusal(&self, from_line: u32, now: Option<&Temperatures>) -> Option<String> {
        let latest = self.point.latest_start();
        if from_line == 0 || from_line > latest {
            return Some(format!(
                "resume from a line between 1 and {latest}: later would skip a command that may \
                 never have run"
            ));
        }
        for (sensor, target) in &self.heated {
            let Some(now) = now else {
                return Some("no temperature report since the printer reconnected yet".into());
            };
            match now.get(sensor).and_then(|r| r.target) {
                Some(now) if now > 0.0 => {}
                _ => {
                    return Some(format!(
                        "heater {sensor} is off (it was set to {target} °C when the link \
                         dropped): the printer restarted or gave up, so its state is lost"
                    ));
                }
            }
        }
        None
    }
}

/// Sensors with a target above 0 °C.
fn heated(temperatures: Option<&Temperatures>) -> Vec<(String, f64)> {
    temperatures
        .map(|t| {
            t.readings
                .iter()
                .filter_map(|r| Some((r.sensor.clone(), r.target.filter(|&t| t > 0.0)?)))
                .collect()
        })
        .unwrap_or_default()
}

impl MarlinDriver {
    /// Does not touch the port: it is opened (and reopened) inside [`Driver::next_event`].
    pub fn new(config: MarlinConfig) -> MarlinDriver {
        let settings = SerialSettings::new(config.port.clone(), config.baud);
        let backoff = Backoff::new(
            Duration::from_millis(config.reconnect_min_ms),
            Duration::from_millis(config.reconnect_max_ms),
        );
        let protocol = Protocol::disconnected(config.protocol_settings(), now());
        let mut driver = MarlinDriver {
            reconnector: Reconnector::new(settings, backoff),
            link: None,
            connected_before: false,
            protocol,
            job_id: None,
            resumable: None,
            condition: None,
            pending: VecDeque::new(),
            config,
        };
        let reason = format!("connecting to {}", driver.config.port);
        driver.set_condition(Condition::Unavailable { reason });
        driver
    }

    pub fn config(&self) -> &MarlinConfig {
        &self.config
    }

    /// The last temperature report.
    pub fn temperatures(&self) -> Option<&Temperatures> {
        self.protocol.temperatures()
    }

    /// `FIRMWARE_NAME` from M115, once connected.
    pub fn firmware(&self) -> Option<&str> {
        self.protocol.firmware()
    }

    /// Lines a job keeps in flight: [`MarlinConfig::in_flight`], or chosen from the firmware
    /// once connected (1 until then).
    pub fn line_window(&self) -> usize {
        self.protocol.line_window()
    }

    fn set_condition(&mut self, condition: Condition) {
        if self.condition.as_ref() != Some(&condition) {
            self.condition = Some(condition.clone());
            self.pending.push_back(DriverEvent::Condition(condition));
        }
    }

    fn link_lost(&mut self, reason: String) {
        tracing::warn!(port = %self.config.port, %reason, "marlin link lost");
        self.protocol.connection_lost(reason);
        self.drain_protocol();
    }

    /// Turn the protocol's events into driver events.
    fn drain_protocol(&mut self) {
        while let Some(event) = self.protocol.poll_event() {
            match event {
                ProtocolEvent::Ready {
                    firmware,
                    line_window,
                } => {
                    tracing::info!(
                        port = %self.config.port,
                        ?firmware,
                        line_window,
                        configured_window = self.config.in_flight.is_some(),
                        "marlin printer ready"
                    );
                    self.set_condition(Condition::Idle);
                }
                ProtocolEvent::Temperatures(_) => {}
                ProtocolEvent::JobProgress { done, total } => {
                    if let Some(job_id) = self.job_id {
                        self.pending.push_back(DriverEvent::JobProgress {
                            job_id,
                            done,
                            total,
                        });
                    }
                }
                ProtocolEvent::JobDone => {
                    if let Some(job_id) = self.job_id.take() {
                        self.pending.push_back(DriverEvent::JobFinished {
                            job_id,
                            scrapped: 0,
                            scrap_reason: None,
                        });
                    }
                    self.set_condition(Condition::Idle);
                }
                ProtocolEvent::JobFailed { reason } => {
                    if let Some(job_id) = self.job_id.take() {
                        self.pending
                            .push_back(DriverEvent::JobFailed { job_id, reason });
                    }
                }
                ProtocolEvent::JobInterrupted { reason, resume } => {
                    if let Some(job_id) = self.job_id.take() {
                        self.resumable = resume.clone().map(|point| ResumableJob {
                            job_id,
                            point,
                            heated: heated(self.protocol.temperatures()),
                        });
                        self.pending.push_back(DriverEvent::JobInterrupted {
                            job_id,
                            reason,
                            resume,
                        });
                    }
                    if self.protocol.busy() {
                        // The cancel script is running.
                        self.set_condition(Condition::Busy);
                    }
                }
                ProtocolEvent::CancelDone => self.set_condition(Condition::Idle),
                ProtocolEvent::PausedByPrinter { reason } => {
                    tracing::info!(port = %self.config.port, %reason, "marlin printer paused");
                    self.set_condition(Condition::WaitingForOperator { reason });
                }
                ProtocolEvent::ResumedByPrinter => self.set_condition(Condition::Busy),
                ProtocolEvent::Halted { reason } => {
                    self.resumable = None;
                    self.set_condition(Condition::Alarm { reason });
                }
                ProtocolEvent::Booted => self.resumable = None,
                ProtocolEvent::FirmwareReset => {
                    self.resumable = None;
                    let reason = "the firmware restarted; waiting for it to answer".to_string();
                    self.set_condition(Condition::Unavailable { reason });
                }
                ProtocolEvent::LinkDead { reason } => {
                    if self.link.take().is_some() {
                        self.reconnector.lost();
                    }
                    self.set_condition(Condition::Unavailable { reason });
                }
            }
        }
        if let Some(link) = self.link.as_mut() {
            link.queue(&self.protocol.take_outgoing());
        }
    }

    async fn connect(&mut self) {
        match self.reconnector.connect().await {
            Ok(link) => {
                tracing::info!(port = %self.config.port, "marlin port open");
                self.link = Some(link);
                self.protocol.reconnected(now());
                if self.connected_before {
                    self.protocol.traffic_mut().counters.reconnects += 1;
                }
                self.connected_before = true;
                let reason = "waiting for the firmware to answer".to_string();
                self.set_condition(Condition::Unavailable { reason });
                self.drain_protocol();
            }
            Err(error) => {
                let reason = error.to_string();
                self.set_condition(Condition::Unavailable { reason });
            }
        }
    }

    fn start(&mut self, job_id: i64, program: Vec<ProgramLine>) -> Result<(), DriverError> {
        if self.link.is_none() || !self.protocol.is_ready() {
            let reason = self
                .protocol
                .unavailable_reason()
                .unwrap_or_else(|| "not connected".into());
            return Err(DriverError::LinkDown(reason));
        }
        self.protocol
            .start_job(program, now())
            .map_err(|error| DriverError::Refused(error.to_string()))?;
        self.job_id = Some(job_id);
        self.set_condition(Condition::Busy);
        self.pending.push_back(DriverEvent::JobStarted { job_id });
        Ok(())
    }
}

fn program_lines(program: &Program) -> Result<Vec<ProgramLine>, DriverError> {
    let Program::GCode { text, .. } = program else {
        return Err(DriverError::Unsupported("run of a named program"));
    };
    protocol::prepare_program(text).map_err(|error| DriverError::Preflight(error.to_string()))
}

/// The protocol's clock: tokio's, so tests with a paused clock drive the timeouts.
fn now() -> std::time::Instant {
    Instant::now().into_std()
}

#[async_trait::async_trait]
impl Driver for MarlinDriver {
    fn kind(&self) -> &'static str {
        "marlin"
    }

    async fn command(&mut self, command: DriverCommand) -> Result<(), DriverError> {
        let result = match command {
            DriverCommand::Run(job) => {
                let program = program_lines(&job.program)?;
                self.start(job.job_id, program)?;
                // Whatever was left of an interrupted job is gone with a new one.
                self.resumable = None;
                Ok(())
            }
            DriverCommand::ResumeRun { run, from_line } => {
                let resumable = self
                    .resumable
                    .as_ref()
                    .filter(|r| r.job_id == run.job_id)
                    .ok_or_else(|| {
                        DriverError::Refused(format!(
                            "job {} cannot go on here: since it stopped, the printer restarted, \
                             halted or took another job, or this driver was restarted",
                            run.job_id
                        ))
                    })?;
                if let Some(reason) = resumable.refusal(from_line, self.protocol.temperatures()) {
                    return Err(DriverError::Refused(reason));
                }
                let mut program = program_lines(&run.program)?;
                program.retain(|line| line.line >= from_line);
                if program.is_empty() {
                    return Err(DriverError::Refused(format!(
                        "the program has no command on line {from_line} or after"
                    )));
                }
                self.start(run.job_id, program)?;
                self.resumable = None;
                Ok(())
            }
            DriverCommand::Pause => self.protocol.pause().map(|()| {
                self.set_condition(Condition::Paused);
            }),
            DriverCommand::Resume => self.protocol.resume(now()).map(|()| {
                self.set_condition(Condition::Busy);
            }),
            DriverCommand::Abort => self.protocol.cancel("aborted by operator", now()),
            DriverCommand::ConfirmManual { .. } => return Err(DriverError::Unsupported("confirm")),
        };
        self.drain_protocol();
        result.map_err(|error| DriverError::Refused(error.to_string()))
    }

    async fn next_event(&mut self) -> DriverEvent {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return event;
            }
            let Some(link) = self.link.as_mut() else {
                self.connect().await;
                continue;
            };
            let deadline = self.protocol.poll_timeout().map(Instant::from_std);
            tokio::select! {
                received = link.transfer() => match received {
                    Ok(bytes) => {
                        let bytes = bytes.to_vec();
                        self.protocol.receive(&bytes, now());
                    }
                    Err(error) => {
                        let reason = format!("link to {} lost: {error}", self.config.port);
                        self.link_lost(reason);
                    }
                },
                () = sleep_until_some(deadline) => self.protocol.handle_timeout(now()),
            }
            self.drain_protocol();
        }
    }

    fn traffic(&self) -> Option<&TrafficLog> {
        Some(self.protocol.traffic())
    }

    fn status(&self) -> DriverStatus {
        DriverStatus {
            link: Some(LinkStatus {
                up: self.link.is_some(),
                counters: self.protocol.traffic().counters.clone(),
            }),
            temperatures: self
                .protocol
                .temperatures()
                .map(|t| t.readings.clone())
                .unwrap_or_default(),
            ..DriverStatus::default()
        }
    }
}

async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod transcripts;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_needs_only_a_port_and_rejects_unknown_keys() {
        let config: MarlinConfig = toml_like(r#"{"port": "/dev/ttyACM0"}"#).unwrap();
        assert_eq!(config, MarlinConfig::new("/dev/ttyACM0"));
        assert_eq!(config.in_flight, None, "chosen from the firmware");
        let explicit = toml_like(r#"{"port": "/dev/ttyACM0", "in_flight": 2}"#).unwrap();
        assert_eq!(explicit.protocol_settings().in_flight, Some(2));
        assert_eq!(config.baud, 115_200);
        let typo = toml_like(r#"{"port": "/dev/ttyACM0", "in_fligth": 4}"#);
        assert!(typo.unwrap_err().contains("unknown field"));
        assert!(toml_like(r#"{"baud": 250000}"#).is_err());
    }

    #[test]
    fn config_embeds_in_an_internally_tagged_driver_table() {
        // How the orchestrator's `driver = { kind = "marlin", port = "..." }` reaches it.
        #[derive(Debug, Deserialize)]
        #[serde(tag = "kind", rename_all = "lowercase")]
        enum DriverTable {
            Marlin(MarlinConfig),
        }
        let json = r#"{"kind": "marlin", "port": "/dev/ttyUSB0", "baud": 250000}"#;
        let DriverTable::Marlin(config) = serde_json::from_str(json).unwrap();
        assert_eq!(config.baud, 250_000);
        let typo = r#"{"kind": "marlin", "port": "/dev/ttyUSB0", "bud": 1}"#;
        assert!(serde_json::from_str::<DriverTable>(typo).is_err());
    }

    #[test]
    fn a_resume_is_refused_when_it_would_skip_a_line_or_the_heaters_went_off() {
        use reply::TemperatureReading;
        let report = |target: f64| Temperatures {
            readings: vec![TemperatureReading {
                sensor: "T".into(),
                actual: 200.0,
                target: Some(target),
            }],
        };
        let job = ResumableJob {
            job_id: 1,
            point: ResumePoint {
                next_line: 40,
                in_doubt: vec![40, 42],
            },
            heated: heated(Some(&report(215.0))),
        };
        assert_eq!(job.refusal(40, Some(&report(215.0))), None);
        assert_eq!(job.refusal(43, Some(&report(215.0))), None);
        assert_eq!(job.refusal(1, Some(&report(215.0))), None);
        let cases = [
            (44, Some(report(215.0)), "between 1 and 43"),
            (0, Some(report(215.0)), "between 1 and 43"),
            (40, Some(report(0.0)), "heater T is off"),
            (40, None, "no temperature report"),
        ];
        for (from_line, now, expected) in cases {
            let refusal = job.refusal(from_line, now.as_ref()).unwrap();
            assert!(refusal.contains(expected), "{from_line}: {refusal}");
        }
        let cold = ResumableJob {
            heated: heated(Some(&report(0.0))),
            ..job
        };
        assert_eq!(cold.refusal(40, None), None, "nothing was heated");
    }

    fn toml_like(json: &str) -> Result<MarlinConfig, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }
}
