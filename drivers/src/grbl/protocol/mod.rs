//! The sans-IO heart of the GRBL driver: bytes and the time in, bytes to send and driver events
//! out. No sockets, no clocks: [`super::GrblDriver`] carries out what this decides, and the
//! transcript tests drive it with literal byte strings.
//!
//! Streaming is GRBL's "character counting" (interface.md, "Streaming Protocol"): every line sent
//! and not yet answered (`ok`/`error:N`) occupies its length plus the newline in the firmware's
//! serial receive buffer, and the sum never exceeds that buffer (128 bytes on an Uno). Answers
//! come back in the order lines were sent, so a FIFO of in-flight lines pairs each answer with
//! its line.
//!
//! Architecture invariants:
//! - No line of a job is sent after that job's first `error:N`, alarm, reset banner or link
//!   loss, and the firmware's buffered lines are then flushed by feed hold + soft reset (a reset
//!   after the hold completes keeps the machine position: no alarm).
//! - A job is finished only when every line was acknowledged AND a status report requested after
//!   the last acknowledgement says `Idle`.
//! - Nothing is resumed automatically: an interrupted job stays interrupted, and a hold the
//!   driver did not ask for (a feed-hold button, the safety door) is reported with its cause
//!   (`Condition::Held`) and left for the operator to resume or abort.
//! - An operator action succeeds only when the machine did it: `$X`/`$H` once a status report
//!   requested after their `ok` no longer says `Alarm`, a reset once the controller came back.
//!   After a hard or soft limit GRBL answers nothing but a soft reset (`[MSG:Reset to
//!   continue]`), so `$X`/`$H` are refused then without being sent, and the silence is not taken
//!   for a lost link.

mod operator;
mod status;
mod streaming;
#[cfg(test)]
mod tests;

pub use operator::GrblOperatorAction;
pub use status::MachineStatus;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::gcode::PreparedProgram;
use super::reply::MachineState;
use crate::traffic::{Direction, TrafficLog};
use crate::{Condition, DriverError, DriverEvent};
use operator::OperatorWait;

/// Real-time command bytes (interface.md, "Real-time commands").
pub mod realtime {
    pub const STATUS: u8 = b'?';
    pub const FEED_HOLD: u8 = b'!';
    pub const CYCLE_START: u8 = b'~';
    pub const SOFT_RESET: u8 = 0x18;
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProtocolConfig {
    /// The firmware's serial receive buffer (`RX_BUFFER_SIZE`, 128 on GRBL 1.1 for AVR).
    pub rx_buffer: usize,
    pub status_interval: Duration,
    /// Silence after which the link counts as dead, although the port is still open.
    pub link_timeout: Duration,
    /// Lines kept in the traffic ring.
    pub traffic_lines: usize,
    pub streaming: Streaming,
    /// How long the controller may report `Idle` while lines stay unanswered before the
    /// answer counts as lost (a swallowed `ok`): the job is then interrupted, not left hanging.
    pub ack_timeout: Duration,
}

/// How many lines may wait in the firmware's receive buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Streaming {
    /// As many as fit into `rx_buffer` (GRBL's recommended protocol; fastest).
    #[default]
    CharacterCounting,
    /// One at a time: send, wait for its answer, send the next. Slow (the wire idles while the
    /// answer travels back), but safe with a firmware whose buffer size is unknown.
    SendAndWait,
}

/// What to hand to the link after feeding the protocol.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Output {
    /// Drop what the link has queued but not written (stale after a reset).
    pub discard_queued: bool,
    /// Real-time bytes: they go ahead of anything queued.
    pub realtime: Vec<u8>,
    /// Lines, in order, each with its newline.
    pub lines: Vec<u8>,
}

/// The link went silent for longer than the configured timeout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no answer from the controller for {0:?}")]
pub struct LinkSilent(pub Duration);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    JobLine(usize),
    Operator(GrblOperatorAction),
    ParserStateQuery,
}

#[derive(Debug)]
struct ActiveJob {
    job_id: i64,
    program: PreparedProgram,
    next_to_send: usize,
    acknowledged: usize,
    progress_percent: u64,
    /// Once every line is acknowledged: the first status request whose answer may finish the job.
    finish_after_poll: Option<u64>,
    /// The next tool change is reached: lines before it are draining, or the operator is at it.
    tool_change: Option<ToolChangeStop>,
}

impl ActiveJob {
    fn at_tool_change(&self) -> bool {
        self.program
            .tool_changes
            .first()
            .is_some_and(|change| change.before == self.next_to_send)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ToolChangeStop {
    /// Every line before it is acknowledged; an Idle report requested after that means the
    /// spindle has stopped moving.
    Draining { after_poll: u64 },
    /// The operator is changing the tool; streaming goes on when they confirm.
    Waiting,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// Feed hold sent; waiting for a report (requested after it) showing the machine stopped.
    Holding { after_poll: u64 },
    /// Soft reset sent; waiting for the banner, or for a status report requested after the
    /// reset (a firmware that prints no banner on reset).
    Resetting { after_poll: u64 },
}

#[derive(Debug)]
struct Poll {
    /// Status requests sent / answered. One is outstanding at a time: GRBL merges requests that
    /// arrive before it reports, so counting only works that way.
    sent: u64,
    answered: u64,
    sent_at: Option<Instant>,
    due: Instant,
}

#[derive(Debug)]
pub struct GrblProtocol {
    config: ProtocolConfig,
    started: Instant,
    link_down: Option<String>,
    connections: u64,
    received: Vec<u8>,
    last_received: Instant,
    in_flight: VecDeque<(usize, Sent)>,
    in_flight_bytes: usize,
    operator_queue: VecDeque<(GrblOperatorAction, &'static str)>,
    parser_state_wanted: bool,
    job: Option<ActiveJob>,
    /// Since when the controller has been idle with lines of the job still unanswered.
    idle_unanswered_since: Option<Instant>,
    /// The driver sent the feed hold (an operator's pause): a hold without it came from outside.
    pause_requested: bool,
    /// `[MSG:Reset to continue]`: GRBL takes nothing but a soft reset, and answers nothing.
    reset_required: bool,
    operator_wait: Option<OperatorWait>,
    operator_outcome: Option<Result<(), DriverError>>,
    stop: Option<Stop>,
    status: MachineStatus,
    poll: Poll,
    condition: Option<Condition>,
    output: Output,
    events: VecDeque<DriverEvent>,
    traffic: TrafficLog,
}

impl GrblProtocol {
    pub fn new(config: ProtocolConfig, now: Instant) -> GrblProtocol {
        let traffic = TrafficLog::new(config.traffic_lines);
        let mut protocol = GrblProtocol {
            config,
            started: now,
            link_down: Some("not connected yet".into()),
            connections: 0,
            received: Vec::new(),
            last_received: now,
            in_flight: VecDeque::new(),
            in_flight_bytes: 0,
            operator_queue: VecDeque::new(),
            parser_state_wanted: false,
            job: None,
            idle_unanswered_since: None,
            pause_requested: false,
            reset_required: false,
            operator_wait: None,
            operator_outcome: None,
            stop: None,
            status: MachineStatus::default(),
            poll: Poll {
                sent: 0,
                answered: 0,
                sent_at: None,
                due: now,
            },
            condition: None,
            output: Output::default(),
            events: VecDeque::new(),
            traffic,
        };
        protocol.update_condition();
        protocol
    }

    // ----- inputs -----

    /// The port is open. The firmware's state is unknown until its first status report.
    pub fn connected(&mut self, now: Instant) {
        self.connections += 1;
        if self.connections > 1 {
            self.traffic.counters.reconnects += 1;
        }
        self.link_down = None;
        self.forget_firmware_state(now);
        self.update_condition();
    }

    /// The port failed or was closed.
    pub fn disconnected(&mut self, now: Instant, reason: &str) {
        self.interrupt_job(&format!("link lost: {reason}"));
        self.reset_required = false;
        self.finish_operator(Err(DriverError::LinkDown(reason.to_string())));
        self.link_down = Some(reason.to_string());
        self.forget_firmware_state(now);
        self.output = Output {
            discard_queued: true,
            ..Output::default()
        };
        self.update_condition();
    }

    /// Bytes from the firmware.
    pub fn receive(&mut self, now: Instant, bytes: &[u8]) {
        self.last_received = now;
        for &byte in bytes {
            match byte {
                b'\n' | b'\r' => {
                    if !self.received.is_empty() {
                        let line = String::from_utf8_lossy(&self.received).into_owned();
                        self.received.clear();
                        self.handle_line(now, &line);
                    }
                }
                _ => self.received.push(byte),
            }
        }
        // A runaway line without an ending is noise; keep memory bounded.
        if self.received.len() > 1024 {
            self.received.clear();
        }
        self.stream(now);
        self.update_condition();
    }

    /// Run timers: status polls, silence detection. `Err` means the link should be dropped.
    pub fn tick(&mut self, now: Instant) -> Result<(), LinkSilent> {
        if self.link_down.is_some() {
            return Ok(());
        }
        let silent = now.saturating_duration_since(self.last_received);
        if silent > self.config.link_timeout && !self.reset_required {
            return Err(LinkSilent(silent));
        }
        let request_lost = self
            .poll
            .sent_at
            .is_some_and(|at| now.saturating_duration_since(at) > self.status_answer_timeout());
        if request_lost {
            // A `?` eaten by noise or by a booting bootloader: ask again.
            self.poll.answered = self.poll.sent;
            self.poll.sent_at = None;
        }
        if self.poll.sent_at.is_none() && now >= self.poll.due {
            self.poll.sent += 1;
            self.poll.sent_at = Some(now);
            self.poll.due = now + self.config.status_interval;
            self.output.realtime.push(realtime::STATUS);
        }
        Ok(())
    }

    /// When [`GrblProtocol::tick`] next has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.link_down.is_some() {
            return None;
        }
        let poll = match self.poll.sent_at {
            Some(at) => at + self.status_answer_timeout(),
            None => self.poll.due,
        };
        if self.reset_required {
            return Some(poll);
        }
        Some(poll.min(self.last_received + self.config.link_timeout))
    }

    /// Start streaming a checked program.
    pub fn start_job(
        &mut self,
        now: Instant,
        job_id: i64,
        program: PreparedProgram,
    ) -> Result<(), DriverError> {
        if let Some(reason) = &self.link_down {
            return Err(DriverError::LinkDown(reason.clone()));
        }
        if let Some(job) = &self.job {
            return Err(DriverError::Refused(format!(
                "job {} is still running",
                job.job_id
            )));
        }
        if self.stop.is_some() {
            return Err(DriverError::Refused(
                "the controller is still stopping the last job".into(),
            ));
        }
        match self.status.state {
            Some(MachineState::Idle) => {}
            Some(MachineState::Alarm) => {
                return Err(DriverError::Refused(self.alarm_reason()));
            }
            Some(state) => {
                return Err(DriverError::Refused(format!(
                    "the controller is not idle ({state:?})"
                )));
            }
            None => {
                return Err(DriverError::Refused(
                    "the controller's state is not known yet".into(),
                ));
            }
        }
        let total = program.lines.len() as u64;
        self.job = Some(ActiveJob {
            job_id,
            program,
            next_to_send: 0,
            acknowledged: 0,
            progress_percent: 0,
            finish_after_poll: None,
            tool_change: None,
        });
        self.events.push_back(DriverEvent::JobStarted { job_id });
        self.events.push_back(DriverEvent::JobProgress {
            job_id,
            done: 0,
            total,
        });
        self.check_all_acknowledged(now);
        self.stream(now);
        self.update_condition();
        Ok(())
    }

    /// The operator changed the tool the job is waiting for: send the rest.
    pub fn tool_changed(&mut self, now: Instant, job_id: i64) -> Result<(), DriverError> {
        let Some(job) = self.job.as_mut().filter(|job| job.job_id == job_id) else {
            return Err(DriverError::Refused(format!(
                "job {job_id} is not the one on this machine"
            )));
        };
        if job.tool_change != Some(ToolChangeStop::Waiting) {
            return Err(DriverError::Refused(format!(
                "job {job_id} is not waiting for a tool change"
            )));
        }
        job.tool_change = None;
        job.program.tool_changes.remove(0);
        self.check_all_acknowledged(now);
        self.stream(now);
        self.update_condition();
        Ok(())
    }

    /// Feed hold (`!`).
    pub fn pause(&mut self, now: Instant) -> Result<(), DriverError> {
        self.require_streaming_job("pause")?;
        self.pause_requested = true;
        self.send_realtime(now, realtime::FEED_HOLD, "!");
        self.update_condition();
        Ok(())
    }

    /// Cycle start (`~`): ends a hold, whoever caused it, with or without a job (a button
    /// pressed on an idle machine holds it too). GRBL ignores it while the safety door is open,
    /// so that is refused here with what to do.
    pub fn resume(&mut self, now: Instant) -> Result<(), DriverError> {
        let held = matches!(
            self.status.state,
            Some(MachineState::Hold(_) | MachineState::Door(_))
        );
        if !held {
            self.require_streaming_job("resume")?;
        } else if let Some(reason) = &self.link_down {
            return Err(DriverError::LinkDown(reason.clone()));
        }
        if let Some(MachineState::Door(1 | 2)) = self.status.state {
            return Err(DriverError::Refused(
                "the safety door is open: close it, then resume".into(),
            ));
        }
        self.pause_requested = false;
        self.send_realtime(now, realtime::CYCLE_START, "~");
        Ok(())
    }

    /// Stop the job: it ends interrupted at once; the machine is held, then reset.
    pub fn abort(&mut self, now: Instant) -> Result<(), DriverError> {
        if let Some(reason) = &self.link_down {
            return Err(DriverError::LinkDown(reason.clone()));
        }
        let moving = matches!(
            self.status.state,
            Some(
                MachineState::Run | MachineState::Jog | MachineState::Home | MachineState::Hold(_)
            )
        );
        if self.job.is_none() && !moving {
            return Err(DriverError::Refused("no job to abort".into()));
        }
        self.interrupt_job("aborted by operator");
        self.start_stop(now);
        self.update_condition();
        Ok(())
    }

    pub fn take_output(&mut self) -> Output {
        std::mem::take(&mut self.output)
    }

    pub fn next_event(&mut self) -> Option<DriverEvent> {
        self.events.pop_front()
    }

    pub fn status(&self) -> &MachineStatus {
        &self.status
    }

    pub fn traffic(&self) -> &TrafficLog {
        &self.traffic
    }

    /// Bytes sent and not yet acknowledged (never above the RX buffer size).
    pub fn in_flight_bytes(&self) -> usize {
        self.in_flight_bytes
    }

    // ----- internals -----

    fn at_ms(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.started).as_millis() as u64
    }

    fn status_answer_timeout(&self) -> Duration {
        (self.config.status_interval * 5).max(Duration::from_secs(1))
    }

    fn forget_firmware_state(&mut self, now: Instant) {
        self.received.clear();
        self.in_flight.clear();
        self.in_flight_bytes = 0;
        self.operator_queue.clear();
        self.stop = None;
        self.status.state = None;
        self.parser_state_wanted = true;
        self.last_received = now;
        self.poll.answered = self.poll.sent;
        self.poll.sent_at = None;
        self.poll.due = now;
    }

    fn require_streaming_job(&self, what: &str) -> Result<(), DriverError> {
        if let Some(reason) = &self.link_down {
            return Err(DriverError::LinkDown(reason.clone()));
        }
        if self.job.is_none() {
            return Err(DriverError::Refused(format!("no job to {what}")));
        }
        Ok(())
    }

    fn send_realtime(&mut self, now: Instant, byte: u8, shown: &str) {
        self.output.realtime.push(byte);
        let at = self.at_ms(now);
        self.traffic.record(at, Direction::Sent, shown);
        // Ask at once how the machine took it.
        self.poll.due = now;
    }

    fn send_reset(&mut self, now: Instant) {
        self.send_realtime(now, realtime::SOFT_RESET, "^X");
        self.stop = Some(Stop::Resetting {
            after_poll: self.poll.sent + 1,
        });
        self.output.discard_queued = true;
    }

    fn start_stop(&mut self, now: Instant) {
        self.send_realtime(now, realtime::FEED_HOLD, "!");
        self.stop = Some(Stop::Holding {
            after_poll: self.poll.sent + 1,
        });
    }

    /// End the active job as interrupted (no more of its lines will be sent).
    fn interrupt_job(&mut self, reason: &str) {
        self.pause_requested = false;
        if let Some(job) = self.job.take() {
            self.events.push_back(DriverEvent::JobInterrupted {
                job_id: job.job_id,
                reason: reason.to_string(),
                resume: None,
            });
        }
    }
}
