//! GRBL 1.1 over USB serial: CNC routers, lasers and PCB mills.
//!
//! [`GrblDriver`] owns a [`crate::link::SerialLink`] and a [`protocol::GrblProtocol`] (the sans-IO
//! core: character-counting streaming, status polling, replies, alarms). It connects inside
//! [`Driver::next_event`], never blocks in [`GrblDriver::new`], reports
//! [`crate::Condition::Unavailable`] until the controller answered a status request, and reconnects
//! with backoff when the port fails or goes silent.
//!
//! Programs are checked by [`gcode::preflight`] before a byte is sent (line length against
//! GRBL's line buffer, GRBL's G/M-code set, real-time characters, `$` commands).
//!
//! `$X` (unlock) and `$H` (homing) are operator actions only: [`GrblDriver::operator`], which
//! answers once the machine showed what it did (left the alarm, came back from a reset).
//!
//! # One job through the code
//! 1. `command(Run)`: [`gcode::preflight`] strips comments and spaces and checks every line;
//!    a bad line fails the command with `DriverError::Preflight` naming its line number.
//! 2. [`protocol::GrblProtocol::start_job`] (machine must be `Idle`) emits `JobStarted` and
//!    queues as many lines as fit in the controller's 128-byte receive buffer.
//! 3. `next_event` writes them ([`crate::link::SerialLink::transfer`]); each `ok` frees its
//!    line's bytes and the next lines go out; `JobProgress` follows the acknowledgements;
//!    a `?` goes out every `status_interval_ms` and its report updates [`MachineStatus`].
//! 4. An `M6` (GRBL has no tool changer) is taken out of the stream by preflight: lines up to
//!    it finish, and once a status report requested after their last `ok` says `Idle` the
//!    machine shows `WaitingForOperator` ("change to tool 2 ..."). The operator's confirm
//!    (`DriverCommand::ConfirmManual`, `POST /api/v1/jobs/{id}/confirm`) sends the rest.
//! 5. After the last `ok`, the next status report that says `Idle` ends the job: `JobFinished`.
//! 6. On `error:N`, `ALARM:N`, a reset banner, a lost `ok` or a lost link the job ends as
//!    `JobInterrupted` with GRBL's own meaning; on an error the driver holds (`!`) and, once the
//!    machine stands still, resets (Ctrl-X) to flush what was buffered. Nothing resumes by
//!    itself.

pub mod codes;
pub mod gcode;
pub mod protocol;
pub mod reply;

use std::time::Duration;

use tokio::time::Instant;

pub use codes::{GrblAlarm, GrblError};
pub use protocol::{GrblOperatorAction, MachineStatus, Streaming};

use crate::link::{Backoff, Reconnector, SerialLink, SerialSettings};
use crate::registry::{BuildContext, DriverKind, FieldProblem, Resource, Supports};
use crate::status::{DriverStatus, LinkStatus};
use crate::traffic::TrafficLog;
use crate::{Driver, DriverCommand, DriverError, DriverEvent, OperatorAction, Program};
use protocol::{GrblProtocol, ProtocolConfig};

/// A GRBL machine in the plant config (`driver = "grbl"`).
#[derive(serde::Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GrblConfig {
    /// Serial port, preferably `/dev/serial/by-id/usb-...` (stable across replugs).
    pub port: String,
    #[serde(default = "defaults::baud")]
    pub baud: u32,
    /// The firmware's serial receive buffer (`RX_BUFFER_SIZE`): 128 on AVR GRBL 1.1; larger on
    /// grblHAL (often 1024). Never set it above the real size: lost bytes mean wrong moves.
    #[serde(default = "defaults::rx_buffer")]
    pub rx_buffer: usize,
    /// The firmware's line buffer (`LINE_BUFFER_SIZE`, 80): longer lines fail preflight.
    #[serde(default = "defaults::line_buffer")]
    pub line_buffer: usize,
    #[serde(default = "defaults::status_interval_ms")]
    pub status_interval_ms: u64,
    /// Silence after which the link counts as lost although the port is open. Must cover the
    /// bootloader's delay after a reset-on-open (1–2 s on Arduino boards).
    #[serde(default = "defaults::link_timeout_ms")]
    pub link_timeout_ms: u64,
    #[serde(default = "defaults::reconnect_min_ms")]
    pub reconnect_min_ms: u64,
    #[serde(default = "defaults::reconnect_max_ms")]
    pub reconnect_max_ms: u64,
    /// DTR level after opening; unset leaves the OS default (see [`crate::link`] on
    /// reset-on-open).
    #[serde(default)]
    pub dtr_on_open: Option<bool>,
    /// Lines kept in the traffic ring for the console view.
    #[serde(default = "defaults::traffic_lines")]
    pub traffic_lines: usize,
    /// See [`protocol::ProtocolConfig::ack_timeout`].
    #[serde(default = "defaults::ack_timeout_ms")]
    pub ack_timeout_ms: u64,
    /// `character_counting` (default) or `send_and_wait`.
    #[serde(default)]
    pub streaming: Streaming,
}

mod defaults {
    pub fn baud() -> u32 {
        115_200
    }
    pub fn rx_buffer() -> usize {
        128
    }
    pub fn line_buffer() -> usize {
        80
    }
    pub fn status_interval_ms() -> u64 {
        200
    }
    pub fn link_timeout_ms() -> u64 {
        4_000
    }
    pub fn reconnect_min_ms() -> u64 {
        500
    }
    pub fn reconnect_max_ms() -> u64 {
        10_000
    }
    pub fn ack_timeout_ms() -> u64 {
        10_000
    }
    pub fn traffic_lines() -> usize {
        500
    }
}

impl GrblConfig {
    /// A config with every default, for the given port.
    pub fn new(port: impl Into<String>) -> GrblConfig {
        GrblConfig {
            port: port.into(),
            baud: defaults::baud(),
            rx_buffer: defaults::rx_buffer(),
            line_buffer: defaults::line_buffer(),
            status_interval_ms: defaults::status_interval_ms(),
            link_timeout_ms: defaults::link_timeout_ms(),
            reconnect_min_ms: defaults::reconnect_min_ms(),
            reconnect_max_ms: defaults::reconnect_max_ms(),
            dtr_on_open: None,
            traffic_lines: defaults::traffic_lines(),
            ack_timeout_ms: defaults::ack_timeout_ms(),
            streaming: Streaming::default(),
        }
    }

    /// Problems `microfab config check` should report.
    pub fn validate(&self) -> Result<(), String> {
        if self.port.trim().is_empty() {
            return Err("port is empty".into());
        }
        if self.baud == 0 {
            return Err("baud must be positive".into());
        }
        if self.line_buffer < 2 || self.rx_buffer < self.line_buffer {
            return Err(format!(
                "rx_buffer ({}) must hold a full line (line_buffer {})",
                self.rx_buffer, self.line_buffer
            ));
        }
        if self.status_interval_ms == 0 || self.link_timeout_ms <= self.status_interval_ms {
            return Err("link_timeout_ms must exceed a positive status_interval_ms".into());
        }
        if self.reconnect_min_ms == 0 || self.reconnect_min_ms > self.reconnect_max_ms {
            return Err("need 0 < reconnect_min_ms <= reconnect_max_ms".into());
        }
        Ok(())
    }
}

impl DriverKind for GrblConfig {
    fn supports() -> Supports {
        Supports {
            resume_from_line: false,
            resume_by_default: false,
            state_survives_restart: true,
            operator_actions: true,
        }
    }

    fn validate(&self) -> Vec<FieldProblem> {
        GrblConfig::validate(self)
            .err()
            .map(FieldProblem::table)
            .into_iter()
            .collect()
    }

    fn resources(&self) -> Vec<Resource> {
        vec![Resource::serial_port(&self.port)]
    }

    fn preflight(&self, program: &str) -> Result<(), String> {
        gcode::preflight(program, self.line_buffer)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn build(&self, _: &BuildContext) -> Box<dyn Driver> {
        Box::new(GrblDriver::new(self.clone()))
    }
}

#[derive(Debug)]
pub struct GrblDriver {
    config: GrblConfig,
    protocol: GrblProtocol,
    reconnector: Reconnector,
    link: Option<SerialLink>,
}

fn now() -> std::time::Instant {
    Instant::now().into_std()
}

impl GrblDriver {
    /// Does not touch the port: the first connection attempt happens in `next_event`.
    pub fn new(config: GrblConfig) -> GrblDriver {
        let protocol = GrblProtocol::new(
            ProtocolConfig {
                rx_buffer: config.rx_buffer,
                status_interval: Duration::from_millis(config.status_interval_ms),
                link_timeout: Duration::from_millis(config.link_timeout_ms),
                traffic_lines: config.traffic_lines,
                streaming: config.streaming,
                ack_timeout: Duration::from_millis(config.ack_timeout_ms),
            },
            now(),
        );
        let settings = SerialSettings {
            path: config.port.clone(),
            baud: config.baud,
            dtr_on_open: config.dtr_on_open,
        };
        let backoff = Backoff::new(
            Duration::from_millis(config.reconnect_min_ms),
            Duration::from_millis(config.reconnect_max_ms),
        );
        GrblDriver {
            reconnector: Reconnector::new(settings, backoff),
            config,
            protocol,
            link: None,
        }
    }

    pub fn config(&self) -> &GrblConfig {
        &self.config
    }

    /// What the controller last reported (state, positions, buffers, overrides, `$G` modes).
    pub fn machine_status(&self) -> &MachineStatus {
        self.protocol.status()
    }

    /// `$X`, `$H` or a soft reset, on an operator's explicit request. Refused while a job runs,
    /// and `Ok` only once the machine showed it did it; events meanwhile wait in the protocol
    /// for [`Driver::next_event`].
    pub async fn operator(&mut self, action: GrblOperatorAction) -> Result<(), DriverError> {
        self.protocol.operator(now(), action)?;
        let deadline = Instant::now() + action.timeout();
        loop {
            self.hand_output_to_link();
            if let Some(outcome) = self.protocol.take_operator_outcome() {
                return outcome;
            }
            if Instant::now() >= deadline {
                return Err(self.protocol.operator_timed_out(action));
            }
            self.exchange(Some(deadline)).await;
        }
    }

    /// Run the protocol's timers, then wait for bytes from the machine or the next deadline
    /// (the protocol's, or `until`). Needs the link.
    async fn exchange(&mut self, until: Option<Instant>) {
        if self.link.is_some()
            && let Err(silent) = self.protocol.tick(now())
        {
            self.drop_link(&silent.to_string());
        }
        self.hand_output_to_link();
        let Some(link) = self.link.as_mut() else {
            return;
        };
        let deadline = [self.protocol.next_deadline().map(Instant::from_std), until]
            .into_iter()
            .flatten()
            .min();
        tokio::select! {
            received = link.transfer() => match received {
                Ok(bytes) => self.protocol.receive(now(), bytes),
                Err(error) => self.drop_link(&error.to_string()),
            },
            () = sleep_until(deadline) => {}
        }
    }

    fn hand_output_to_link(&mut self) {
        let output = self.protocol.take_output();
        let Some(link) = self.link.as_mut() else {
            return;
        };
        if output.discard_queued {
            link.discard_queued();
        }
        link.queue_front(&output.realtime);
        link.queue(&output.lines);
    }

    fn drop_link(&mut self, reason: &str) {
        tracing::warn!(port = %self.config.port, reason, "GRBL link lost");
        self.link = None;
        self.reconnector.lost();
        self.protocol.disconnected(now(), reason);
    }
}

#[async_trait::async_trait]
impl Driver for GrblDriver {
    fn kind(&self) -> &'static str {
        "grbl"
    }

    async fn command(&mut self, command: DriverCommand) -> Result<(), DriverError> {
        let result = match command {
            DriverCommand::Run(run) => {
                let Program::GCode { name, text } = &run.program else {
                    return Err(DriverError::Unsupported("named programs"));
                };
                let program = gcode::preflight(text, self.config.line_buffer)
                    .map_err(|error| DriverError::Preflight(format!("{name}: {error}")))?;
                self.protocol.start_job(now(), run.job_id, program)
            }
            DriverCommand::Pause => self.protocol.pause(now()),
            DriverCommand::Resume => self.protocol.resume(now()),
            DriverCommand::Abort => self.protocol.abort(now()),
            DriverCommand::ResumeRun { .. } => Err(DriverError::Unsupported("resume from a line")),
            DriverCommand::ConfirmManual { job_id } => self.protocol.tool_changed(now(), job_id),
        };
        self.hand_output_to_link();
        result
    }

    async fn next_event(&mut self) -> DriverEvent {
        loop {
            if let Some(event) = self.protocol.next_event() {
                return event;
            }
            if self.link.is_none() {
                match self.reconnector.connect().await {
                    Ok(link) => {
                        tracing::info!(port = %self.config.port, "GRBL link open");
                        self.link = Some(link);
                        self.protocol.connected(now());
                    }
                    Err(error) => {
                        let reason = error.to_string();
                        self.protocol.disconnected(now(), &reason);
                    }
                }
                continue;
            }
            self.exchange(None).await;
        }
    }

    async fn operator(&mut self, action: OperatorAction) -> Result<(), DriverError> {
        let action = match action {
            OperatorAction::Unlock => GrblOperatorAction::Unlock,
            OperatorAction::Home => GrblOperatorAction::Home,
            OperatorAction::Reset => GrblOperatorAction::SoftReset,
        };
        GrblDriver::operator(self, action).await
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
            ..DriverStatus::default()
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plant config nests driver settings under a `kind` tag.
    #[derive(serde::Deserialize, Debug)]
    #[serde(tag = "kind", rename_all = "snake_case")]
    enum Tagged {
        Grbl(GrblConfig),
    }

    #[test]
    fn config_defaults_and_strictness() {
        let Tagged::Grbl(config) = serde_json::from_str(
            r#"{"kind": "grbl", "port": "/dev/serial/by-id/usb-mill", "streaming": "send_and_wait"}"#,
        )
        .unwrap();
        assert_eq!(
            config,
            GrblConfig {
                streaming: Streaming::SendAndWait,
                ..GrblConfig::new("/dev/serial/by-id/usb-mill")
            }
        );
        assert_eq!(config.validate(), Ok(()));
        let typo =
            serde_json::from_str::<Tagged>(r#"{"kind": "grbl", "port": "/dev/x", "buad": 9600}"#);
        assert!(
            typo.unwrap_err()
                .to_string()
                .contains("unknown field `buad`")
        );
    }

    #[test]
    fn validation_catches_inconsistent_settings() {
        type Breakage = fn(&mut GrblConfig);
        let cases: [(Breakage, &str); 4] = [
            (|c| c.port = " ".into(), "port is empty"),
            (
                |c| c.rx_buffer = 64,
                "rx_buffer (64) must hold a full line (line_buffer 80)",
            ),
            (
                |c| c.link_timeout_ms = 100,
                "link_timeout_ms must exceed a positive status_interval_ms",
            ),
            (
                |c| c.reconnect_min_ms = 20_000,
                "need 0 < reconnect_min_ms <= reconnect_max_ms",
            ),
        ];
        for (break_it, expected) in cases {
            let mut config = GrblConfig::new("/dev/x");
            break_it(&mut config);
            assert_eq!(config.validate(), Err(expected.to_string()));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_missing_port_is_unavailable_and_retried_with_backoff() {
        let mut config = GrblConfig::new("/nonexistent/microfab-grbl");
        config.reconnect_min_ms = 100;
        config.reconnect_max_ms = 200;
        let mut driver = GrblDriver::new(config);
        assert!(matches!(
            driver.next_event().await,
            DriverEvent::Condition(crate::Condition::Unavailable { .. })
        ));
        let DriverEvent::Condition(crate::Condition::Unavailable { reason }) =
            driver.next_event().await
        else {
            panic!("expected the open failure");
        };
        assert!(reason.contains("/nonexistent/microfab-grbl"), "{reason}");
        let refused = driver.command(DriverCommand::Pause).await;
        assert!(matches!(refused, Err(DriverError::LinkDown(_))));
        // Same failure again: no repeated event while it keeps failing.
        let quiet = tokio::time::timeout(Duration::from_secs(5), driver.next_event()).await;
        assert!(quiet.is_err());
    }
}
