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

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::codes::{GrblAlarm, GrblError};
use super::gcode::{PreparedProgram, words};
use super::reply::{MachineState, Reply, StatusReport};
use crate::traffic::{Direction, TrafficLog};
use crate::{Condition, DriverError, DriverEvent};

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

/// Commands only an operator gives: never part of a job, never sent on the driver's own
/// initiative (homing moves the machine; unlocking skips the safety the alarm stands for).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrblOperatorAction {
    /// `$X`: clear the alarm lock without homing.
    Unlock,
    /// `$H`: run the homing cycle.
    Home,
    /// Ctrl-X: soft reset (stops everything; position is lost if the machine was moving).
    SoftReset,
}

impl GrblOperatorAction {
    pub fn name(self) -> &'static str {
        match self {
            GrblOperatorAction::Unlock => "unlock",
            GrblOperatorAction::Home => "home",
            GrblOperatorAction::SoftReset => "soft_reset",
        }
    }

    /// How long the machine may take to show it did it. Homing moves every axis to its switch.
    pub fn timeout(self) -> Duration {
        match self {
            GrblOperatorAction::Home => Duration::from_secs(120),
            GrblOperatorAction::Unlock | GrblOperatorAction::SoftReset => Duration::from_secs(5),
        }
    }
}

/// An operator action sent, and what must come back before it counts as done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OperatorWait {
    /// `$X` or `$H` sent: waiting for its `ok` or `error:N`.
    Answer(GrblOperatorAction),
    /// Answered `ok`: a status report requested after it must no longer say `Alarm`.
    LeftAlarm {
        action: GrblOperatorAction,
        after_poll: u64,
    },
    /// Ctrl-X sent: done when the controller is back (banner, or a report after it).
    Reset,
}

/// What the firmware last told us about itself.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MachineStatus {
    pub state: Option<MachineState>,
    pub machine_position: Option<Vec<f64>>,
    pub work_position: Option<Vec<f64>>,
    pub work_offset: Option<Vec<f64>>,
    /// Free planner blocks and free serial RX bytes.
    pub buffer: Option<(u32, u32)>,
    pub feed: Option<f64>,
    pub spindle_speed: Option<f64>,
    pub overrides: Option<(u32, u32, u32)>,
    pub pins: Option<String>,
    /// The parser state from `$G` (`G0 G54 G17 G21 G90 G94 M5 M9 T0 F0 S0`).
    pub gcode_modes: Option<String>,
    /// From the welcome banner.
    pub firmware_version: Option<String>,
    /// The last `[MSG:...]`.
    pub last_message: Option<String>,
    pub last_alarm: Option<GrblAlarm>,
    /// The answer to the last `$X`/`$H`: `None` inside is `ok`.
    pub last_operator_reply: Option<(GrblOperatorAction, Option<GrblError>)>,
}

impl MachineStatus {
    fn merge(&mut self, report: StatusReport) {
        self.state = report.state;
        if report.work_offset.is_some() {
            self.work_offset = report.work_offset;
        }
        let offset = |pos: &[f64], sign: f64| -> Option<Vec<f64>> {
            let wco = self.work_offset.as_ref()?;
            Some(pos.iter().zip(wco).map(|(p, o)| p + sign * o).collect())
        };
        if let Some(mpos) = report.machine_position {
            self.work_position = offset(&mpos, -1.0);
            self.machine_position = Some(mpos);
        } else if let Some(wpos) = report.work_position {
            self.machine_position = offset(&wpos, 1.0);
            self.work_position = Some(wpos);
        }
        if report.buffer.is_some() {
            self.buffer = report.buffer;
        }
        if report.feed.is_some() {
            self.feed = report.feed;
        }
        if report.spindle_speed.is_some() {
            self.spindle_speed = report.spindle_speed;
        }
        if report.overrides.is_some() {
            self.overrides = report.overrides;
        }
        // GRBL omits `Pn:` when no pin is triggered.
        self.pins = report.pins;
    }
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

    /// An operator's explicit command (`$X`, `$H`, soft reset). Refused while a job streams.
    pub fn operator(
        &mut self,
        now: Instant,
        action: GrblOperatorAction,
    ) -> Result<(), DriverError> {
        if let Some(reason) = &self.link_down {
            return Err(DriverError::LinkDown(reason.clone()));
        }
        if let Some(job) = &self.job {
            return Err(DriverError::Refused(format!(
                "job {} is running; abort it first",
                job.job_id
            )));
        }
        if self.operator_wait.is_some() {
            return Err(DriverError::Refused(
                "another operator action is under way".into(),
            ));
        }
        self.operator_outcome = None;
        match action {
            GrblOperatorAction::SoftReset => {
                self.send_reset(now);
                self.operator_wait = Some(OperatorWait::Reset);
            }
            GrblOperatorAction::Unlock | GrblOperatorAction::Home if self.reset_required => {
                return Err(DriverError::Refused(self.alarm_reason()));
            }
            GrblOperatorAction::Unlock | GrblOperatorAction::Home => {
                let text = if action == GrblOperatorAction::Unlock {
                    "$X"
                } else {
                    "$H"
                };
                self.operator_queue.push_back((action, text));
                self.operator_wait = Some(OperatorWait::Answer(action));
                self.stream(now);
            }
        }
        self.update_condition();
        Ok(())
    }

    /// What became of the last operator action, once the machine showed it (taken once).
    pub fn take_operator_outcome(&mut self) -> Option<Result<(), DriverError>> {
        self.operator_outcome.take()
    }

    /// The machine did not show the action's result in time: give up waiting for it.
    pub fn operator_timed_out(&mut self, action: GrblOperatorAction) -> DriverError {
        self.operator_wait = None;
        self.operator_outcome = None;
        DriverError::LinkDown(format!(
            "the controller did not confirm {} within {:?}",
            action.name(),
            action.timeout()
        ))
    }

    // ----- outputs -----

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

    fn finish_operator(&mut self, outcome: Result<(), DriverError>) {
        if self.operator_wait.take().is_some() {
            self.operator_outcome = Some(outcome);
        }
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

    fn alarm_reason(&self) -> String {
        let alarm = match (self.status.last_alarm, &self.status.last_message) {
            (Some(alarm), _) => alarm.to_string(),
            (None, Some(message)) => format!("alarm state ({message})"),
            (None, None) => "alarm state: unlock ($X) or home ($H)".into(),
        };
        if self.reset_required {
            format!(
                "{alarm}; the controller takes nothing but a reset: reset first, then home or unlock"
            )
        } else {
            alarm
        }
    }

    /// Send what fits into the firmware's receive buffer: operator commands first, then job lines.
    fn stream(&mut self, now: Instant) {
        if self.link_down.is_some() || self.stop.is_some() {
            return;
        }
        loop {
            let (text, sent): (String, Sent) =
                if self.parser_state_wanted && self.status.state.is_some() {
                    ("$G".into(), Sent::ParserStateQuery)
                } else if let Some(&(action, text)) = self.operator_queue.front() {
                    (text.into(), Sent::Operator(action))
                } else if let Some(job) = &self.job {
                    if job.at_tool_change() {
                        return;
                    }
                    match job.program.lines.get(job.next_to_send) {
                        Some(line) => (line.clone(), Sent::JobLine(job.next_to_send)),
                        None => return,
                    }
                } else {
                    return;
                };
            let bytes = text.len() + 1;
            let window_full = match self.config.streaming {
                Streaming::CharacterCounting => {
                    self.in_flight_bytes + bytes > self.config.rx_buffer
                }
                Streaming::SendAndWait => !self.in_flight.is_empty(),
            };
            if window_full {
                return;
            }
            match sent {
                Sent::ParserStateQuery => self.parser_state_wanted = false,
                Sent::Operator(_) => {
                    self.operator_queue.pop_front();
                }
                Sent::JobLine(_) => {
                    if let Some(job) = &mut self.job {
                        job.next_to_send += 1;
                    }
                }
            }
            self.in_flight_bytes += bytes;
            self.in_flight.push_back((bytes, sent));
            self.output.lines.extend_from_slice(text.as_bytes());
            self.output.lines.push(b'\n');
            let at = self.at_ms(now);
            self.traffic.record(at, Direction::Sent, text);
        }
    }

    fn handle_line(&mut self, now: Instant, line: &str) {
        let reply = Reply::parse(line);
        if !matches!(reply, Reply::Status(_)) {
            let at = self.at_ms(now);
            self.traffic.record(at, Direction::Received, line);
        }
        match reply {
            Reply::Ok => self.acknowledged(now, None),
            Reply::Error(error) => {
                self.traffic.counters.errors += 1;
                self.acknowledged(now, Some(error));
            }
            Reply::Alarm(alarm) => {
                self.status.last_alarm = Some(alarm);
                self.status.state = Some(MachineState::Alarm);
                self.interrupt_job(&alarm.to_string());
                if !matches!(self.operator_wait, Some(OperatorWait::Reset)) {
                    self.finish_operator(Err(DriverError::Refused(alarm.to_string())));
                }
                // GRBL flushes its buffers on an alarm: nothing in flight will be answered.
                self.in_flight.clear();
                self.in_flight_bytes = 0;
            }
            Reply::Status(report) => self.status_report(now, report),
            Reply::Welcome { version } => {
                self.status.firmware_version = Some(version);
                if !matches!(self.stop, Some(Stop::Resetting { .. })) {
                    self.interrupt_job("the controller reset (welcome banner mid-job)");
                }
                self.reset_required = false;
                let outcome = match self.operator_wait {
                    Some(OperatorWait::Reset) => Ok(()),
                    _ => Err(DriverError::Refused(
                        "the controller reset before it answered".into(),
                    )),
                };
                self.finish_operator(outcome);
                self.forget_firmware_state(now);
                self.output.discard_queued = true;
            }
            Reply::Feedback { kind, text } => match kind.as_str() {
                "MSG" => {
                    if text == "Reset to continue" {
                        self.reset_required = true;
                    }
                    self.status.last_message = Some(text);
                }
                "GC" => self.status.gcode_modes = Some(text),
                _ => {}
            },
            Reply::Setting { .. } | Reply::StartupLine(_) => {}
            Reply::Unknown(text) => {
                tracing::debug!(line = %text, "unrecognised line from GRBL");
            }
        }
    }

    fn acknowledged(&mut self, now: Instant, error: Option<GrblError>) {
        let Some((bytes, sent)) = self.in_flight.pop_front() else {
            // Expected after an alarm: lines still on the wire when GRBL flushed its buffers
            // come back as `error:9`. Anywhere else an answer for nothing is a broken link.
            if self.status.state == Some(MachineState::Alarm) {
                tracing::debug!(?error, "an answer for a line flushed by the alarm");
            } else {
                tracing::warn!(?error, "an answer for no line in flight");
            }
            return;
        };
        self.in_flight_bytes -= bytes;
        self.idle_unanswered_since = None;
        match sent {
            Sent::JobLine(index) => {
                let Some(job) = &mut self.job else {
                    return;
                };
                if let Some(error) = error {
                    let line_number = job.program.source_lines[index];
                    let reason = format!(
                        "{error} at line {line_number}: {}",
                        job.program.lines[index]
                    );
                    self.interrupt_job(&reason);
                    self.start_stop(now);
                    return;
                }
                job.acknowledged += 1;
                let total = job.program.lines.len() as u64;
                let done = job.acknowledged as u64;
                let percent = done * 100 / total.max(1);
                if percent != job.progress_percent {
                    job.progress_percent = percent;
                    self.events.push_back(DriverEvent::JobProgress {
                        job_id: job.job_id,
                        done,
                        total,
                    });
                }
                self.check_all_acknowledged(now);
            }
            Sent::Operator(action) => {
                match error {
                    Some(error) => {
                        tracing::warn!(action = action.name(), %error, "operator command refused");
                        self.finish_operator(Err(DriverError::Refused(format!(
                            "{} answered {error}",
                            action.name()
                        ))));
                    }
                    None => {
                        tracing::info!(action = action.name(), "operator command answered ok");
                        if self.operator_wait == Some(OperatorWait::Answer(action)) {
                            self.operator_wait = Some(OperatorWait::LeftAlarm {
                                action,
                                after_poll: self.poll.sent + 1,
                            });
                            self.poll.due = now;
                        }
                    }
                }
                self.status.last_operator_reply = Some((action, error));
            }
            Sent::ParserStateQuery => {}
        }
    }

    fn check_all_acknowledged(&mut self, now: Instant) {
        let Some(job) = &mut self.job else {
            return;
        };
        if job.at_tool_change() && job.acknowledged == job.next_to_send && job.tool_change.is_none()
        {
            job.tool_change = Some(ToolChangeStop::Draining {
                after_poll: self.poll.sent + 1,
            });
            self.poll.due = now;
        }
        if job.acknowledged == job.program.lines.len() && job.finish_after_poll.is_none() {
            // Only a report requested from now on can say the last move has finished.
            job.finish_after_poll = Some(self.poll.sent + 1);
            self.poll.due = now;
        }
    }

    fn status_report(&mut self, now: Instant, report: StatusReport) {
        if self.poll.sent_at.take().is_some() {
            self.poll.answered = self.poll.sent;
        }
        let answered = self.poll.answered;
        self.status.merge(report);
        let state = self.status.state;
        if state != Some(MachineState::Alarm) {
            self.status.last_alarm = None;
        }
        if let Some(Stop::Holding { after_poll }) = self.stop {
            let stopped = !matches!(
                state,
                Some(
                    MachineState::Run
                        | MachineState::Jog
                        | MachineState::Home
                        | MachineState::Hold(1..)
                )
            );
            if answered >= after_poll && stopped {
                self.send_reset(now);
            }
        } else if let Some(Stop::Resetting { after_poll }) = self.stop
            && answered >= after_poll
        {
            self.finish_operator(Ok(()));
            self.stop = None;
            self.in_flight.clear();
            self.in_flight_bytes = 0;
            self.parser_state_wanted = true;
            self.stream(now);
        }
        if let Some(OperatorWait::LeftAlarm { action, after_poll }) = self.operator_wait
            && answered >= after_poll
        {
            let outcome = if state == Some(MachineState::Alarm) {
                Err(DriverError::Refused(format!(
                    "the controller is still in alarm after {}: {}",
                    action.name(),
                    self.alarm_reason()
                )))
            } else {
                Ok(())
            };
            self.finish_operator(outcome);
        }
        self.detect_lost_answers(now);
        if let Some(job) = &mut self.job
            && let Some(ToolChangeStop::Draining { after_poll }) = job.tool_change
            && answered >= after_poll
            && state == Some(MachineState::Idle)
        {
            job.tool_change = Some(ToolChangeStop::Waiting);
        }
        let finished = self.job.as_ref().is_some_and(|job| {
            job.finish_after_poll.is_some_and(|after| answered >= after)
                && state == Some(MachineState::Idle)
        });
        if finished && let Some(job) = self.job.take() {
            self.pause_requested = false;
            self.events.push_back(DriverEvent::JobFinished {
                job_id: job.job_id,
                scrapped: 0,
                scrap_reason: None,
            });
        }
    }

    /// Idle means GRBL's planner is empty and it parses what it receives within milliseconds;
    /// lines still unanswered long after that had their answer lost on the wire. A dwell (`G4`)
    /// in flight keeps the controller idle legitimately, so it suspends the check.
    fn detect_lost_answers(&mut self, now: Instant) {
        let Some(job) = &self.job else {
            self.idle_unanswered_since = None;
            return;
        };
        let dwell_in_flight = self.in_flight.iter().any(|(_, sent)| match sent {
            Sent::JobLine(index) => words(&job.program.lines[*index])
                .is_ok_and(|words| words.iter().any(|w| w.letter == 'G' && w.value == 4.0)),
            _ => false,
        });
        let waiting = self.status.state == Some(MachineState::Idle)
            && !self.in_flight.is_empty()
            && !dwell_in_flight;
        match self.idle_unanswered_since {
            _ if !waiting => self.idle_unanswered_since = None,
            None => self.idle_unanswered_since = Some(now),
            Some(since) if now.saturating_duration_since(since) >= self.config.ack_timeout => {
                let reason = format!(
                    "the controller is idle but {} line(s) were never answered (an 'ok' was \
                     lost on the link); executed up to about line {}",
                    self.in_flight.len(),
                    job.acknowledged
                );
                self.interrupt_job(&reason);
                self.in_flight.clear();
                self.in_flight_bytes = 0;
                self.idle_unanswered_since = None;
            }
            Some(_) => {}
        }
    }

    fn current_condition(&self) -> Condition {
        if let Some(reason) = &self.link_down {
            return Condition::Unavailable {
                reason: reason.clone(),
            };
        }
        let busy_with_job = self.job.is_some() || self.stop.is_some();
        match self.status.state {
            None => Condition::Unavailable {
                reason: "waiting for the controller's status".into(),
            },
            Some(MachineState::Alarm) => Condition::Alarm {
                reason: self.alarm_reason(),
            },
            Some(MachineState::Check) => Condition::Unavailable {
                reason: "check mode ($C): motion is disabled".into(),
            },
            Some(MachineState::Sleep) => Condition::Unavailable {
                reason: "sleep mode: reset to wake".into(),
            },
            Some(MachineState::Hold(_))
                if self.pause_requested || matches!(self.stop, Some(Stop::Holding { .. })) =>
            {
                Condition::Paused
            }
            Some(MachineState::Hold(sub)) => Condition::Held {
                reason: format!(
                    "feed hold microfab did not send (Hold:{sub}: a feed-hold button or line \
                     noise): resume or abort"
                ),
            },
            Some(MachineState::Door(sub)) => Condition::Held {
                reason: match sub {
                    0 => "safety door closed again (Door:0): resume or abort".into(),
                    1 => "safety door open (Door:1): close it, then resume or abort".into(),
                    2 => "safety door opened, the machine is stopping (Door:2): close it, then \
                          resume or abort"
                        .into(),
                    _ => format!("safety door closed, the machine is restoring (Door:{sub})"),
                },
            },
            Some(MachineState::Run | MachineState::Jog | MachineState::Home) => Condition::Busy,
            Some(MachineState::Idle) => match &self.job {
                Some(job) if job.tool_change == Some(ToolChangeStop::Waiting) => {
                    let change = &job.program.tool_changes[0];
                    let tool = change
                        .tool
                        .map_or("the next tool".into(), |t| format!("tool {t}"));
                    Condition::WaitingForOperator {
                        reason: format!(
                            "change to {tool} (M6 on program line {}), set its length, then \
                             confirm job {}",
                            change.source_line, job.job_id
                        ),
                    }
                }
                _ if busy_with_job || !self.operator_queue.is_empty() => Condition::Busy,
                _ => Condition::Idle,
            },
        }
    }

    fn update_condition(&mut self) {
        let condition = self.current_condition();
        if self.condition.as_ref() != Some(&condition) {
            self.condition = Some(condition.clone());
            self.events.push_back(DriverEvent::Condition(condition));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grbl::gcode::preflight;

    const INTERVAL: Duration = Duration::from_millis(200);

    /// Drives the protocol through a transcript and records what it sends and reports.
    struct Transcript {
        protocol: GrblProtocol,
        now: Instant,
        sent: Vec<u8>,
        events: Vec<DriverEvent>,
        max_in_flight: usize,
    }

    impl Transcript {
        fn new(rx_buffer: usize) -> Transcript {
            let now = Instant::now();
            let config = ProtocolConfig {
                rx_buffer,
                status_interval: INTERVAL,
                link_timeout: Duration::from_secs(3),
                traffic_lines: 100,
                streaming: Streaming::CharacterCounting,
                ack_timeout: Duration::from_secs(2),
            };
            let mut t = Transcript {
                protocol: GrblProtocol::new(config, now),
                now,
                sent: Vec::new(),
                events: Vec::new(),
                max_in_flight: 0,
            };
            t.protocol.connected(now);
            t.advance(0).unwrap();
            t
        }

        /// Connected, status read, `$G` answered: ready for a job.
        fn idle(rx_buffer: usize) -> Transcript {
            let mut t = Transcript::new(rx_buffer);
            t.recv("<Idle|MPos:0.000,0.000,0.000|FS:0,0>\r\n");
            t.recv("[GC:G0 G54 G17 G21 G90 G94 M5 M9 T0 F0 S0]\r\nok\r\n");
            t.sent();
            t.events();
            t
        }

        fn collect(&mut self) {
            let output = self.protocol.take_output();
            self.sent.extend(output.realtime);
            self.sent.extend(output.lines);
            self.max_in_flight = self.max_in_flight.max(self.protocol.in_flight_bytes());
            while let Some(event) = self.protocol.next_event() {
                self.events.push(event);
            }
        }

        fn recv(&mut self, bytes: &str) {
            self.protocol.receive(self.now, bytes.as_bytes());
            self.collect();
        }

        fn advance(&mut self, ms: u64) -> Result<(), LinkSilent> {
            self.now += Duration::from_millis(ms);
            let result = self.protocol.tick(self.now);
            self.collect();
            result
        }

        fn start(&mut self, job_id: i64, text: &str) {
            let program = preflight(text, 80).unwrap();
            self.protocol.start_job(self.now, job_id, program).unwrap();
            self.collect();
        }

        fn sent(&mut self) -> String {
            String::from_utf8_lossy(&std::mem::take(&mut self.sent)).into_owned()
        }

        fn events(&mut self) -> Vec<DriverEvent> {
            std::mem::take(&mut self.events)
        }

        fn conditions(&mut self) -> Vec<Condition> {
            self.events()
                .into_iter()
                .filter_map(|e| match e {
                    DriverEvent::Condition(c) => Some(c),
                    _ => None,
                })
                .collect()
        }
    }

    fn held(reason: &str) -> Condition {
        Condition::Held {
            reason: reason.into(),
        }
    }

    fn unavailable(reason: &str) -> Condition {
        Condition::Unavailable {
            reason: reason.into(),
        }
    }

    #[test]
    fn connecting_polls_status_then_reads_the_parser_state() {
        let mut t = Transcript::new(128);
        assert_eq!(t.sent(), "?");
        assert_eq!(
            t.conditions(),
            [
                unavailable("not connected yet"),
                unavailable("waiting for the controller's status")
            ]
        );
        t.recv("<Idle|MPos:1.000,2.000,3.000|FS:0,0|WCO:1.000,0.000,0.000>\r\n");
        assert_eq!(t.sent(), "$G\n");
        assert_eq!(t.conditions(), [Condition::Idle]);
        t.recv("[GC:G0 G54 G17 G21 G90 G94 M5 M9 T0 F0 S0]\r\nok\r\n");
        let status = t.protocol.status();
        assert_eq!(
            status.gcode_modes.as_deref(),
            Some("G0 G54 G17 G21 G90 G94 M5 M9 T0 F0 S0")
        );
        assert_eq!(status.work_position, Some(vec![0.0, 2.0, 3.0]));
        assert_eq!(t.protocol.in_flight_bytes(), 0);
    }

    #[test]
    fn status_states_map_to_conditions() {
        let cases: &[(&str, Condition)] = &[
            ("<Idle>", Condition::Idle),
            ("<Run>", Condition::Busy),
            ("<Jog>", Condition::Busy),
            ("<Home>", Condition::Busy),
            (
                "<Hold:0>",
                held(
                    "feed hold microfab did not send (Hold:0: a feed-hold button or line noise): resume or abort",
                ),
            ),
            (
                "<Hold:1>",
                held(
                    "feed hold microfab did not send (Hold:1: a feed-hold button or line noise): resume or abort",
                ),
            ),
            (
                "<Door:1>",
                held("safety door open (Door:1): close it, then resume or abort"),
            ),
            (
                "<Door:0>",
                held("safety door closed again (Door:0): resume or abort"),
            ),
            (
                "<Alarm>",
                Condition::Alarm {
                    reason: "alarm state ('$H'|'$X' to unlock)".into(),
                },
            ),
            (
                "<Check>",
                unavailable("check mode ($C): motion is disabled"),
            ),
            ("<Sleep>", unavailable("sleep mode: reset to wake")),
        ];
        for (report, expected) in cases {
            let mut t = Transcript::new(128);
            t.recv("[MSG:'$H'|'$X' to unlock]\r\n");
            t.events();
            t.recv(&format!("{report}\r\n"));
            assert_eq!(t.conditions(), std::slice::from_ref(expected), "{report}");
        }
    }

    #[test]
    fn character_counting_never_overfills_the_rx_buffer() {
        let mut t = Transcript::idle(32);
        // 9 bytes per line with the newline: three fit into 32 bytes, a fourth would not.
        let program: String = (0..20).map(|i| format!("G1X{i:02}F100\n")).collect();
        t.start(7, &program);
        assert_eq!(t.sent(), "G1X00F100\nG1X01F100\nG1X02F100\n");
        t.recv("ok\r\n");
        assert_eq!(t.sent(), "G1X03F100\n");
        t.recv("ok\r\nok\r\n");
        assert_eq!(t.sent(), "G1X04F100\nG1X05F100\n");
        for _ in 0..17 {
            t.recv("ok\r\n");
        }
        assert_eq!(t.max_in_flight, 30);
        assert_eq!(t.protocol.in_flight_bytes(), 0);
    }

    #[test]
    fn a_reply_split_across_reads_and_bare_newlines_count_once() {
        let mut t = Transcript::idle(128);
        t.start(1, "G0X1\nG0X2\n");
        t.sent();
        t.recv("o");
        t.recv("k\r");
        t.recv("\nok\n");
        assert_eq!(t.protocol.in_flight_bytes(), 0);
        let progress: Vec<_> = t
            .events()
            .into_iter()
            .filter(|e| matches!(e, DriverEvent::JobProgress { .. }))
            .collect();
        assert_eq!(
            progress,
            [
                DriverEvent::JobProgress {
                    job_id: 1,
                    done: 0,
                    total: 2
                },
                DriverEvent::JobProgress {
                    job_id: 1,
                    done: 1,
                    total: 2
                },
                DriverEvent::JobProgress {
                    job_id: 1,
                    done: 2,
                    total: 2
                }
            ]
        );
    }

    #[test]
    fn garbage_and_feedback_lines_do_not_acknowledge_anything() {
        let mut t = Transcript::idle(128);
        t.start(1, "G0X1\n");
        for line in [
            "\u{7f}\u{3}kk",
            "[MSG:Pgm End]",
            "$0=10",
            ">G20:ok",
            "[echo:G0X1]",
        ] {
            t.recv(&format!("{line}\r\n"));
            assert_eq!(t.protocol.in_flight_bytes(), 5, "{line}");
        }
        assert_eq!(t.protocol.status().last_message.as_deref(), Some("Pgm End"));
    }

    #[test]
    fn a_job_finishes_only_on_idle_reported_after_the_last_ok() {
        let mut t = Transcript::idle(128);
        t.advance(200).unwrap();
        assert_eq!(t.sent(), "?", "a poll is outstanding when the job starts");
        t.start(3, "G1X10F100\n");
        assert_eq!(t.sent(), "G1X10F100\n");
        t.recv("ok\r\n");
        // This report answers the poll sent before the last ok: it proves nothing.
        t.recv("<Idle|MPos:0,0,0>\r\n");
        t.advance(0).unwrap();
        assert_eq!(t.sent(), "?");
        t.recv("<Run|MPos:5,0,0>\r\n");
        t.advance(200).unwrap();
        assert_eq!(t.sent(), "?");
        assert!(
            !t.events()
                .iter()
                .any(|e| matches!(e, DriverEvent::JobFinished { .. }))
        );
        t.recv("<Idle|MPos:10,0,0>\r\n");
        assert_eq!(
            t.events(),
            [
                DriverEvent::JobFinished {
                    job_id: 3,
                    scrapped: 0,
                    scrap_reason: None
                },
                DriverEvent::Condition(Condition::Idle)
            ]
        );
    }

    #[test]
    fn a_tool_change_waits_for_the_spindle_to_stop_and_for_the_operator() {
        let mut t = Transcript::idle(128);
        t.start(4, "G0X1\nT2 M6 (end mill 2 mm)\nG1X2F100\n");
        assert_eq!(t.sent(), "G0X1\n", "nothing from the M6 on goes out");
        t.recv("ok\r\n");
        t.advance(0).unwrap();
        assert_eq!(t.sent(), "?");
        t.recv("<Run|MPos:0.5,0,0>\r\n");
        t.advance(200).unwrap();
        assert_eq!(t.sent(), "?");
        assert!(t.protocol.tool_changed(t.now, 4).is_err(), "still moving");
        t.recv("<Idle|MPos:1,0,0>\r\n");
        let reason = "change to tool 2 (M6 on program line 2), set its length, then confirm job 4";
        assert!(
            t.events()
                .contains(&DriverEvent::Condition(Condition::WaitingForOperator {
                    reason: reason.into()
                }))
        );
        t.advance(200).unwrap();
        assert_eq!(t.sent(), "?", "it waits, polling");
        assert!(t.protocol.tool_changed(t.now, 5).is_err(), "another job");
        t.protocol.tool_changed(t.now, 4).unwrap();
        t.collect();
        assert_eq!(t.sent(), "T2\nG1X2F100\n");
        assert!(
            t.events()
                .contains(&DriverEvent::Condition(Condition::Busy))
        );
    }

    #[test]
    fn an_error_stops_streaming_holds_and_resets() {
        let mut t = Transcript::idle(24);
        t.start(5, "G21\nG1X1F100\nG1X2\nG1X3\nG1X4\nG1X5\n");
        assert_eq!(t.sent(), "G21\nG1X1F100\nG1X2\nG1X3\n");
        t.recv("ok\r\nerror:22\r\n");
        let events = t.events();
        assert!(
            events.contains(&DriverEvent::JobInterrupted {
                job_id: 5,
                reason: "error:22 (Undefined feed rate: Feed rate has not yet been set or is \
                     undefined.) at line 2: G1X1F100"
                    .into(),
                resume: None,
            })
        );
        assert_eq!(t.sent(), "!", "feed hold at once, no further job line");
        t.advance(0).unwrap();
        assert_eq!(t.sent(), "?");
        t.recv("ok\r\n<Hold:1>\r\n");
        t.advance(200).unwrap();
        assert_eq!(t.sent(), "?");
        t.recv("<Hold:0>\r\n");
        assert_eq!(t.sent(), "\u{18}");
        t.recv("\r\nGrbl 1.1h ['$' for help]\r\n");
        assert_eq!(t.protocol.in_flight_bytes(), 0);
        t.advance(0).unwrap();
        assert_eq!(t.sent(), "?");
        t.recv("<Idle>\r\n");
        assert_eq!(t.sent(), "$G\n");
        assert_eq!(t.conditions().last(), Some(&Condition::Idle));
    }

    #[test]
    fn an_alarm_mid_job_interrupts_with_grbls_meaning() {
        let mut t = Transcript::idle(128);
        t.start(9, "G0X100\nG0X0\n");
        t.sent();
        t.events();
        t.recv("ALARM:1\r\n");
        let reason = "ALARM:1 (Hard limit: Hard limit has been triggered. Machine position is \
                      likely lost due to sudden halt. Re-homing is highly recommended.)";
        assert_eq!(
            t.events(),
            [
                DriverEvent::JobInterrupted {
                    job_id: 9,
                    reason: reason.into(),
                    resume: None,
                },
                DriverEvent::Condition(Condition::Alarm {
                    reason: reason.into()
                })
            ]
        );
        assert_eq!(t.protocol.in_flight_bytes(), 0);
        // The answers GRBL sends for what was in its buffers are ignored.
        t.recv("error:9\r\n[MSG:Reset to continue]\r\n");
        assert_eq!(
            t.sent(),
            "",
            "no job line and no unlock on the driver's own initiative"
        );
        let refused = t
            .protocol
            .start_job(t.now, 10, preflight("G0X1", 80).unwrap());
        assert!(matches!(refused, Err(DriverError::Refused(r)) if r.starts_with("ALARM:1")));
    }

    #[test]
    fn a_banner_mid_job_means_the_controller_reset() {
        let mut t = Transcript::idle(128);
        t.start(4, "G0X1\nG0X2\nG0X3\n");
        t.sent();
        t.recv("ok\r\n\r\nGrbl 1.1h ['$' for help]\r\n");
        let events = t.events();
        assert!(events.contains(&DriverEvent::JobInterrupted {
            job_id: 4,
            reason: "the controller reset (welcome banner mid-job)".into(),
            resume: None,
        }));
        assert_eq!(t.protocol.in_flight_bytes(), 0);
        assert_eq!(
            t.protocol.status().firmware_version.as_deref(),
            Some("1.1h")
        );
    }

    #[test]
    fn pause_resume_and_abort_use_realtime_commands() {
        let mut t = Transcript::idle(128);
        t.start(2, "G1X50F100\nG1X0\n");
        t.sent();
        t.protocol.pause(t.now).unwrap();
        t.protocol.resume(t.now).unwrap();
        t.collect();
        assert_eq!(t.sent(), "!~");
        t.recv("ok\r\n");
        t.protocol.abort(t.now).unwrap();
        t.advance(0).unwrap();
        assert_eq!(t.sent(), "!?");
        assert!(t.events().contains(&DriverEvent::JobInterrupted {
            job_id: 2,
            reason: "aborted by operator".into(),
            resume: None,
        }));
        t.recv("<Hold:0>\r\n");
        assert_eq!(t.sent(), "\u{18}");
        assert!(t.protocol.pause(t.now).is_err());
    }

    #[test]
    fn a_hold_nobody_asked_for_is_held_with_its_cause_until_the_operator_resumes() {
        let mut t = Transcript::idle(128);
        t.start(2, "G1X50F100\nG1X0\n");
        t.sent();
        t.recv("<Run>\r\n");
        t.recv("<Hold:1>\r\n");
        t.recv("<Hold:0>\r\n");
        assert_eq!(
            t.conditions(),
            [
                Condition::Busy,
                held(
                    "feed hold microfab did not send (Hold:1: a feed-hold button or line noise): resume or abort"
                ),
                held(
                    "feed hold microfab did not send (Hold:0: a feed-hold button or line noise): resume or abort"
                ),
            ]
        );
        for _ in 0..100 {
            t.advance(200).unwrap();
            t.recv("<Hold:0>\r\n");
        }
        assert_eq!(t.sent(), "?".repeat(100), "no cycle start on its own");
        assert!(t.events().is_empty(), "the job stays as it is");
        t.recv("<Door:2>\r\n<Door:1>\r\n");
        let refused = t.protocol.resume(t.now);
        assert_eq!(
            refused,
            Err(DriverError::Refused(
                "the safety door is open: close it, then resume".into()
            ))
        );
        t.recv("<Door:0>\r\n");
        t.protocol.resume(t.now).unwrap();
        t.collect();
        assert_eq!(t.sent(), "~");
        t.recv("<Run>\r\n");
        // The operator's own pause is a pause, not a hold from outside.
        t.protocol.pause(t.now).unwrap();
        t.recv("<Hold:0>\r\n");
        assert_eq!(t.conditions().last(), Some(&Condition::Paused));
        // A button pressed on an idle machine holds it too: the operator can resume it.
        let mut t = Transcript::idle(128);
        assert!(t.protocol.resume(t.now).is_err(), "nothing to resume");
        t.recv("<Hold:0>\r\n");
        t.protocol.resume(t.now).unwrap();
        t.collect();
        assert_eq!(t.sent(), "~");
    }

    #[test]
    fn after_a_hard_limit_unlock_is_refused_until_a_reset_and_succeeds_only_out_of_alarm() {
        let mut t = Transcript::idle(128);
        t.recv("ALARM:1\r\n[MSG:Reset to continue]\r\n");
        let locked = "ALARM:1 (Hard limit: Hard limit has been triggered. Machine position is \
                      likely lost due to sudden halt. Re-homing is highly recommended.); the \
                      controller takes nothing but a reset: reset first, then home or unlock";
        assert_eq!(
            t.conditions().last(),
            Some(&Condition::Alarm {
                reason: locked.into()
            })
        );
        t.sent();
        // GRBL answers nothing now, not even `?`: that is no lost link.
        for _ in 0..50 {
            assert_eq!(t.advance(200), Ok(()));
        }
        for action in [GrblOperatorAction::Unlock, GrblOperatorAction::Home] {
            assert_eq!(
                t.protocol.operator(t.now, action),
                Err(DriverError::Refused(locked.into()))
            );
        }
        assert!(!t.sent().contains('$'), "nothing GRBL would ignore is sent");
        t.protocol
            .operator(t.now, GrblOperatorAction::SoftReset)
            .unwrap();
        t.collect();
        assert_eq!(t.sent(), "\u{18}");
        assert_eq!(t.protocol.take_operator_outcome(), None);
        t.recv("\r\nGrbl 1.1h ['$' for help]\r\n[MSG:'$H'|'$X' to unlock]\r\n");
        assert_eq!(t.protocol.take_operator_outcome(), Some(Ok(())));
        t.advance(0).unwrap();
        t.recv("<Alarm>\r\n");
        t.recv("[GC:G0 G54 G17 G21 G90 G94 M5 M9 T0 F0 S0]\r\nok\r\n");
        t.protocol
            .operator(t.now, GrblOperatorAction::Unlock)
            .unwrap();
        t.collect();
        assert!(t.sent().ends_with("$X\n"));
        t.recv("[MSG:Caution: Unlocked]\r\nok\r\n");
        t.recv("<Alarm>\r\n");
        assert_eq!(
            t.protocol.take_operator_outcome(),
            None,
            "a report requested before the ok proves nothing"
        );
        t.advance(0).unwrap();
        t.recv("<Idle>\r\n");
        assert_eq!(t.protocol.take_operator_outcome(), Some(Ok(())));
    }

    #[test]
    fn an_unlock_that_leaves_the_alarm_in_place_is_refused() {
        let mut t = Transcript::new(128);
        t.recv("<Alarm>\r\n");
        t.protocol
            .operator(t.now, GrblOperatorAction::Unlock)
            .unwrap();
        t.recv("ok\r\nok\r\n");
        t.advance(200).unwrap();
        t.recv("<Alarm>\r\n");
        let outcome = t.protocol.take_operator_outcome();
        assert!(
            matches!(&outcome, Some(Err(DriverError::Refused(r))) if r.starts_with("the controller is still in alarm after unlock")),
            "{outcome:?}"
        );
    }

    #[test]
    fn operator_actions_are_lines_only_when_asked_and_never_during_a_job() {
        let mut t = Transcript::new(128);
        t.recv("<Alarm|MPos:0,0,0>\r\n");
        t.recv("ok\r\n");
        t.sent();
        t.protocol
            .operator(t.now, GrblOperatorAction::Unlock)
            .unwrap();
        t.collect();
        assert_eq!(t.sent(), "$X\n");
        t.recv("[MSG:Caution: Unlocked]\r\nok\r\n<Idle>\r\n");
        t.start(1, "G0X1\n");
        let refused = t.protocol.operator(t.now, GrblOperatorAction::Home);
        assert!(matches!(refused, Err(DriverError::Refused(_))));
    }

    #[test]
    fn a_reset_without_banner_completes_on_the_next_status_report() {
        let mut t = Transcript::idle(128);
        t.protocol
            .operator(t.now, GrblOperatorAction::SoftReset)
            .unwrap();
        t.advance(0).unwrap();
        assert_eq!(t.sent(), "\u{18}?");
        t.recv("<Idle>\r\n");
        assert_eq!(
            t.sent(),
            "$G\n",
            "no longer stopping: the parser state is read again"
        );
        t.recv("[GC:G0 G54 G17 G21 G90 G94 M5 M9 T0 F0 S0]\r\nok\r\n");
        t.start(1, "G0X1\n");
        assert_eq!(t.sent(), "G0X1\n");
    }

    #[test]
    fn operator_replies_are_kept_for_the_operator() {
        let mut t = Transcript::idle(128);
        t.protocol
            .operator(t.now, GrblOperatorAction::Home)
            .unwrap();
        t.recv("error:5\r\n");
        assert_eq!(
            t.protocol.status().last_operator_reply,
            Some((GrblOperatorAction::Home, Some(GrblError(5))))
        );
    }

    #[test]
    fn silence_past_the_timeout_is_a_lost_link() {
        let mut t = Transcript::idle(128);
        for _ in 0..15 {
            assert_eq!(t.advance(200), Ok(()));
        }
        assert!(t.advance(200).is_err());
        t.protocol.disconnected(t.now, "no answer");
        t.collect();
        assert_eq!(t.conditions(), [unavailable("no answer")]);
    }

    #[test]
    fn the_next_deadline_is_the_next_poll_or_the_silence_limit() {
        let mut t = Transcript::idle(128);
        let start = t.now;
        assert_eq!(t.protocol.next_deadline(), Some(start + INTERVAL));
        t.advance(200).unwrap();
        let answer_timeout = Duration::from_secs(1);
        assert_eq!(t.protocol.next_deadline(), Some(t.now + answer_timeout));
        t.protocol.disconnected(t.now, "gone");
        assert_eq!(t.protocol.next_deadline(), None);
    }

    #[test]
    fn an_unanswered_status_request_is_repeated() {
        let mut t = Transcript::idle(128);
        t.advance(200).unwrap();
        assert_eq!(t.sent(), "?");
        t.advance(200).unwrap();
        assert_eq!(t.sent(), "", "one request outstanding at a time");
        t.advance(700).unwrap();
        assert_eq!(t.sent(), "", "not yet given up on");
        t.advance(200).unwrap();
        assert_eq!(t.sent(), "?");
    }

    #[test]
    fn a_lost_ok_interrupts_the_job_instead_of_hanging() {
        let mut t = Transcript::idle(128);
        t.start(8, "G0X1\nG0X2\n");
        t.sent();
        t.recv("ok\r\n");
        for _ in 0..10 {
            t.advance(200).unwrap();
            t.recv("<Idle>\r\n");
        }
        assert!(
            !t.events()
                .iter()
                .any(|e| matches!(e, DriverEvent::JobInterrupted { .. }))
        );
        t.advance(200).unwrap();
        t.recv("<Idle>\r\n");
        let events = t.events();
        assert!(
            matches!(&events[..], [DriverEvent::JobInterrupted { job_id: 8, reason, .. }, DriverEvent::Condition(Condition::Idle)]
                if reason.contains("never answered")),
            "{events:?}"
        );
        assert_eq!(t.protocol.in_flight_bytes(), 0);
    }

    #[test]
    fn a_dwell_in_flight_is_not_a_lost_ok() {
        let mut t = Transcript::idle(128);
        t.start(8, "G4P10\n");
        for _ in 0..30 {
            t.advance(200).unwrap();
            t.recv("<Idle>\r\n");
        }
        assert!(
            !t.events()
                .iter()
                .any(|e| matches!(e, DriverEvent::JobInterrupted { .. }))
        );
    }

    #[test]
    fn send_and_wait_keeps_one_line_in_flight() {
        let mut t = Transcript::idle(128);
        t.protocol.config.streaming = Streaming::SendAndWait;
        t.start(1, "G0X1\nG0X2\n");
        assert_eq!(t.sent(), "G0X1\n");
        t.recv("ok\r\n");
        assert_eq!(t.sent(), "G0X2\n");
    }

    #[test]
    fn link_loss_interrupts_the_job_and_forgets_the_buffers() {
        let mut t = Transcript::idle(128);
        t.start(6, "G0X1\n");
        t.protocol.disconnected(t.now, "serial I/O error: EIO");
        t.collect();
        let events = t.events();
        assert!(events.contains(&DriverEvent::JobInterrupted {
            job_id: 6,
            reason: "link lost: serial I/O error: EIO".into(),
            resume: None,
        }));
        assert_eq!(t.protocol.in_flight_bytes(), 0);
        let refused = t
            .protocol
            .start_job(t.now, 7, preflight("G0X1", 80).unwrap());
        assert!(matches!(refused, Err(DriverError::LinkDown(_))));
    }
}
