//! The Marlin host protocol as a pure state machine: bytes and time in, bytes and events out.
//! No sockets, no clocks; [`super::MarlinDriver`] runs it over a serial link.
//!
//! # How a job is streamed
//! The program is stripped of comments and blank lines ([`prepare_program`]) and numbered:
//! line 0 is `N0 M110 N0*125`, which Marlin applies while *reading* it (not when executing),
//! so the numbering is reset even if the firmware still counts from an earlier job; line 1
//! is an `M105` probe (see below); program lines follow as `N<n> <command>*<checksum>`,
//! then `M400` (optional) and a final `M105`. Nothing follows line 1 until the probe is
//! answered: the `ok` count starts exact, and a resend request can never be answered by
//! resending `M110` after later lines were accepted.
//!
//! Acknowledgements: every line Marlin reads produces exactly one `ok` (after executing it, or
//! right after a `Resend:` when the line was rejected), in order. Up to
//! [`Protocol::line_window`] lines are outstanding (see the last section). An `ok N<n>`
//! (`ADVANCED_OK`) acknowledges through line `n` exactly.
//!
//! Resends: `Resend: R` (or `rs R`) means Marlin accepted everything before `R` and nothing
//! from `R` on; we rewind to `R` and send again from the history. Lines already sent after `R`
//! are stale. Each answers at most once: rejected whole (`Error:Line Number is not Last Line
//! Number+1`), or as the tail left by the flush of Marlin's receive buffer that comes with
//! every line error (`Error:No Line Number with checksum`; a tail cut after its `*` runs as an
//! unknown command instead), or not at all when such a flush swallowed it whole. Marlin empties
//! the buffer right after printing the `Error:` line, so the resend waits until every stale
//! line has answered: then nothing can throw the resent line away. If one was swallowed, it
//! waits until no byte has arrived for [`Settings::resend_settle`], and as long after the
//! last stale line has reached the printer and the printer's answer latency has passed, instead.
//! That latency (a main loop that reads serial once per pass, a USB-serial bridge's latency
//! timer) is learned from the `ok`s' quickest round trips and from line errors (until the
//! printer began its error line), up to
//! [`MAX_ANSWER_LATENCY`]: a printer whose answers take longer than the wire would otherwise
//! see the resend before the stale lines' rejections, and their `Resend:`, taken for a new
//! request, would send the window twice; the firmware rejects the copies, and each rejection's
//! flush cuts the next window. A stale line's `Error:` and request that still come after the
//! resend (for the same line, within [`MAX_ANSWER_LATENCY`], no more than were unanswered)
//! are taken as the stale line's; since that may instead be the resent line's own rejection,
//! whose flush swallows what follows, a probe goes out as soon as silence follows it. Meanwhile, and for the `Resend:` that directly
//! follows a counted `Error:`, requests for `R` are the stale lines': no line goes out twice
//! for one fault. The stale answers are what a line error costs a window (about 6 ms of the
//! printer's answer per stale line at 115,200 baud).
//!
//! A line number keeps its text within a stream (no probe is inserted below the highest line
//! sent): when a late stale request made us rewind although Marlin had accepted the resent
//! lines, it rejects the copies instead of running a line again. Their requests ask for the
//! line after the last one sent (or further): the count jumps there, and the next line waits
//! for the copies' rejections.
//!
//! The `ok` Marlin 2.x prints right after `Resend:` belongs to the rejected line and is
//! swallowed ([`Settings::ok_after_resend`]).
//!
//! Probes: some `ok`s cannot be told apart (a line whose `N` was hit by noise is read as an
//! unnumbered command and acknowledged; a lost `ok` leaves one missing), so the count can drift.
//! Numbered `M105` probes resynchronise it: M105 answers `ok T:...`, and since Marlin executes
//! in order, that answer proves every line before the probe was accepted and executed. A plain
//! `ok` never acknowledges a probe, so a stray `ok` can run the count ahead but never finish a
//! job early. A probe
//! goes out every [`Settings::resync_interval`] lines, when the printer is silent past the
//! timeout (the "tickle"), and at the end of every stream: a job is done only when its final
//! probe is answered.
//!
//! Outside a job, too, every line is numbered and checksummed: the handshake is
//! `N0 M110 N0*125` then `N1 M115`, idle polls continue the numbering (`N2 M105`, ...), and a
//! rejected one makes the next poll an `M110 N0` again. An unchecked line could be turned into
//! another command by noise (`M110 N0` into `M190 N0`, `M105` into `M107`).
//!
//! Silence is probed early and judged late: after [`Settings::silence_probe`] with nothing
//! heard (no `ok`, no `busy:` keep-alive, no temperature report during a heating wait) a probe
//! goes out, whatever is in flight: a lost `ok` costs that long, not a whole timeout. Marlin
//! sends a keep-alive every 2 s while a command blocks (`HOST_KEEPALIVE_FEATURE`), so a probe
//! waits while they come; firmware that never sends them gets the probe, which it answers once
//! the blocking command is done. The link is declared dead only after a further
//! [`Settings::long_command_timeout`] with a long command in flight (M109, M190, M400, G28, G29,
//! ...), otherwise [`Settings::command_timeout`], with nothing heard since the probe.
//!
//! An abort does not wait for anything in flight: the stream is dropped and the cancel script
//! starts a new one at once (`M110 N0`, the sync probe and the script's leading `M108`/`M410`,
//! which Marlin's emergency parser acts on as they arrive even while a command blocks its
//! queue; then a second `M110`, and the rest once it is answered). Marlin applies `M110` again
//! when it runs it: lines it read before that are rejected and resent, so `M108`/`M410` may
//! run twice, which does nothing more.
//!
//! # Windowing and Marlin's receive-buffer flush
//! On a line error Marlin empties its receive buffer (`gcode_line_error` in `queue.cpp`). With
//! more than one line in flight, the buffer may hold the *start* of the next line: its tail then
//! arrives alone, carries no line number (`G1 X5*33` after the cut `N124 |G1 X5*33`). What
//! happens next depends on the firmware:
//! - Marlin 1.1 and 2.x check only lines that start with `N` (`get_serial_commands`), and
//!   `GCodeParser::parse` cuts the line at `*` and runs the rest: the tail runs unchecked, out
//!   of order (before the rejected line is resent), and again when it is resent. A user report of
//!   exactly this is MarlinFirmware/Marlin#11216 (`G1 Z0.24*20` running).
//! - Marlin 1.0, Sprinter and Prusa-Firmware reject a line with `*` and no `N`
//!   (`Error:No Line Number with checksum, Last Line: <n>`; Prusa-Firmware also empties the
//!   buffer and asks for `<n + 1>`). That error is a transmission error like the others: it never
//!   fails the job, and the stale-request handling above covers its `Resend:`.
//!
//! One line in flight (as OctoPrint and Pronterface do) cannot be cut: nothing follows a line
//! until it is answered. A window is safe on firmware that rejects the tails, and on boards
//! whose USB stack delivers whole lines, but not on Marlin 2.x over a UART bridge. No host can
//! prevent it there: the tail that starts at the command word *is* the command. An `ok` that
//! answers no line and follows no `Unknown command` is logged as a warning.
//!
//! So unless [`Settings::in_flight`] fixes it, the window follows the firmware M115 names
//! ([`auto_line_window`]): [`TAIL_REJECTING_WINDOW`] for Prusa-Firmware 3.x, Marlin 1.0 and
//! Sprinter, 1 for Marlin 1.1/2.x, Prusa-Firmware-Buddy (Marlin 2), Klipper and
//! anything not recognised. A configured window is refused on the families known to run cut
//! tails ([`runs_cut_tails`]): one line in flight, a console note and a `window_fallbacks`. Marlin is told apart by its 1.0 report (`Marlin V1; Sprinter/grbl
//! mashup for gen6`), not by a version number: vendors' builds of Marlin 1.1/2.x print any
//! version (`Marlin 1.0.0 (Github)`). Until the handshake has identified the firmware the
//! window is 1, and a restarted board is identified again.
//!
//! Whatever the firmware does with a window's stale lines (and implementations differ in what
//! each rejection flushes and answers), a stream whose resend requests pass
//! [`WINDOW_FALLBACK_SHARE`] of the lines sent goes on with one line in flight, which no flush
//! can cut; the console gets a note and the link's counters a `window_fallbacks`.
//!
//! Marlin 1.0 and Sprinter answer `ok` for a move (G0-G3) when they read it into their queue,
//! not when they have run it, so with a window its `ok` can overtake a probe queued ahead of it
//! ([`acknowledges_moves_on_read`]): on those, the plain `ok`s that came while a probe was the
//! oldest line in flight acknowledge the moves behind it once the probe is answered.
//!
//! # Where an interrupted job can go on
//! When the link dies under a job (I/O error, end of file, silence), `JobInterrupted` carries a
//! [`ResumePoint`] in lines of the program file: everything before the first unacknowledged
//! line ran; the lines in flight may or may not have. After an `ok` that answered no line the
//! count may have run ahead, so the point goes back to the last line a probe proved. A halt, a
//! firmware restart, a cancel or an abort leave no point: the printer's state is gone, or was
//! meant to be.

mod answers;
mod cancel;
mod family;
mod framing;
mod probe;
mod pump;
mod settings;
mod stream;
#[cfg(test)]
mod tests;
mod window;

pub use cancel::default_cancel_script;
pub use family::{
    TAIL_REJECTING_WINDOW, acknowledges_moves_on_read, auto_line_window, runs_cut_tails,
};
pub use framing::{
    MAX_CMD_SIZE, ProgramError, ProgramLine, checksum, command_word, frame, is_long_command,
    prepare_program, strip,
};
pub use settings::{Settings, byte_time};
pub use window::{MAX_ANSWER_LATENCY, WINDOW_FALLBACK_AFTER, WINDOW_FALLBACK_SHARE};

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::reply::Temperatures;
use crate::ResumePoint;
use crate::traffic::TrafficLog;
use family::{firmware_name, is_move};
use stream::{LateStale, Purpose, Settle, Stream, StreamLine};

/// Every stream starts with `M110 N0` and an `M105` probe; nothing follows until the probe is
/// answered, so the `ok` count starts exact whatever was left over from before.
const SYNC_LINES: usize = 2;

#[derive(Debug, Clone, PartialEq)]
pub enum ProtocolEvent {
    /// The firmware answered the handshake; `firmware` is M115's `FIRMWARE_NAME`, and jobs
    /// keep up to `line_window` lines in flight ([`Protocol::line_window`]).
    Ready {
        firmware: Option<String>,
        line_window: usize,
    },
    Temperatures(Temperatures),
    JobProgress {
        done: u64,
        total: u64,
    },
    /// Every line was executed (and the final probe answered).
    JobDone,
    /// The printer reported an error during the job; the cancel script is running.
    JobFailed {
        reason: String,
    },
    /// The job stopped with an unknown outcome; if the link is up the cancel script runs.
    /// `resume` is where it could go on, when the printer may have kept its state (the link
    /// dropped; nothing said the firmware restarted or stopped).
    JobInterrupted {
        reason: String,
        resume: Option<ResumePoint>,
    },
    /// The cancel script was executed.
    CancelDone,
    PausedByPrinter {
        reason: String,
    },
    ResumedByPrinter,
    /// The firmware stopped itself (kill(), thermal error); it needs a reset.
    Halted {
        reason: String,
    },
    /// The firmware restarted (`start`) after the handshake; a handshake follows.
    FirmwareReset,
    /// The firmware printed `start` while we were connecting: it has just booted (many boards
    /// reset when the port opens), so whatever it was doing before is gone.
    Booted,
    /// The printer stopped answering, or the link keeps corrupting lines. Reconnect.
    LinkDead {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("the printer is not ready: {0}")]
    NotReady(String),
    #[error("a job is already running")]
    Busy,
    #[error("no job is running")]
    NoJob,
}

#[derive(Debug, Clone, PartialEq)]
enum Phase {
    Handshake {
        next_try: Instant,
        info_requested: bool,
    },
    Ready,
    Halted {
        reason: String,
    },
    Dead {
        reason: String,
    },
}

#[derive(Debug)]
pub struct Protocol {
    settings: Settings,
    epoch: Instant,
    traffic: TrafficLog,
    partial: Vec<u8>,
    outgoing: Vec<u8>,
    events: VecDeque<ProtocolEvent>,
    phase: Phase,
    /// Commands sent outside a stream (handshake, idle polls) whose `ok` is still due.
    outside_pending: u32,
    /// The printer said `busy: paused for user`; the operator was told.
    waiting_for_user: bool,
    /// The line number for the next command outside a stream; `None` until an `M110` resets
    /// the numbering (after a line error, or before the first hello).
    outside_next: Option<u64>,
    poll_sent_at: Instant,
    next_poll: Instant,
    /// Last `ok`, resend request or keep-alive.
    last_progress: Instant,
    /// Last byte received.
    last_rx: Instant,
    /// Last line sent.
    last_tx: Instant,
    /// When everything sent so far has reached the printer.
    wire_free_at: Instant,
    /// How long the printer takes to answer a line once it has it: its main loop's pass, a
    /// USB-serial bridge's latency timer. Learned from the lower envelope of the `ok`s'
    /// round trips and from line errors, up to [`MAX_ANSWER_LATENCY`]: a resend waits that
    /// long for the stale lines' answers, which otherwise come after it.
    answer_latency: Duration,
    /// When a probe was sent because the printer went silent.
    tickle_at: Option<Instant>,
    /// The previous line was a resend request: an `ok` now belongs to it.
    swallow_ok: bool,
    /// The previous line was a stale line's `Error:`, counted as its answer: a `Resend:` for
    /// this line now is its request.
    stale_request: Option<usize>,
    /// Transmission errors in a row that named the same last accepted line, until the resend
    /// request they lead to: lines already rejected when it comes.
    line_errors: Option<(Option<u64>, usize)>,
    /// The previous line was `echo:Unknown command`.
    after_unknown_command: bool,
    /// Hellos sent before the handshake last started over: a board that did not lose them
    /// (it printed `start` without resetting) may still answer them.
    late_hello_oks: u32,
    firmware: Option<String>,
    temperatures: Option<Temperatures>,
    stream: Option<Stream>,
}

impl Protocol {
    /// A fresh connection: the handshake starts at once.
    pub fn new(settings: Settings, now: Instant) -> Protocol {
        let traffic = TrafficLog::new(settings.traffic_capacity);
        Protocol::fresh(settings, traffic, now, now)
    }

    fn fresh(settings: Settings, traffic: TrafficLog, epoch: Instant, now: Instant) -> Protocol {
        let mut protocol = Protocol {
            settings,
            epoch,
            traffic,
            partial: Vec::new(),
            outgoing: Vec::new(),
            events: VecDeque::new(),
            phase: Phase::Ready,
            outside_pending: 0,
            waiting_for_user: false,
            outside_next: None,
            poll_sent_at: now,
            next_poll: now,
            last_progress: now,
            last_rx: now,
            last_tx: now,
            wire_free_at: now,
            answer_latency: Duration::ZERO,
            tickle_at: None,
            swallow_ok: false,
            stale_request: None,
            line_errors: None,
            after_unknown_command: false,
            late_hello_oks: 0,
            firmware: None,
            temperatures: None,
            stream: None,
        };
        protocol.restart_handshake(now);
        protocol
    }

    /// Not connected yet: nothing is sent until [`Protocol::reconnected`].
    pub fn disconnected(settings: Settings, now: Instant) -> Protocol {
        let mut protocol = Protocol::new(settings, now);
        protocol.outgoing.clear();
        protocol.traffic = TrafficLog::new(protocol.settings.traffic_capacity);
        protocol.phase = Phase::Dead {
            reason: "not connected".into(),
        };
        protocol
    }

    /// Start over on a new connection, keeping the traffic log and its counters.
    pub fn reconnected(&mut self, now: Instant) {
        let traffic = std::mem::replace(&mut self.traffic, TrafficLog::new(0));
        *self = Protocol::fresh(self.settings.clone(), traffic, self.epoch, now);
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn is_ready(&self) -> bool {
        self.phase == Phase::Ready
    }

    /// Why the printer cannot take work, if it cannot.
    pub fn unavailable_reason(&self) -> Option<String> {
        match &self.phase {
            Phase::Ready => None,
            Phase::Handshake { .. } => Some("waiting for the firmware to answer".into()),
            Phase::Halted { reason } => Some(format!("printer halted: {reason}")),
            Phase::Dead { reason } => Some(reason.clone()),
        }
    }

    pub fn is_halted(&self) -> bool {
        matches!(self.phase, Phase::Halted { .. })
    }

    pub fn job_active(&self) -> bool {
        self.stream
            .as_ref()
            .is_some_and(|s| s.purpose == Purpose::Job)
    }

    pub fn busy(&self) -> bool {
        self.stream.is_some()
    }

    pub fn paused(&self) -> bool {
        self.stream.as_ref().is_some_and(|s| s.paused)
    }

    pub fn firmware(&self) -> Option<&str> {
        self.firmware.as_deref()
    }

    /// Lines a job keeps in flight: [`Settings::in_flight`] if set; otherwise 1 until the
    /// handshake has identified the firmware, then its family's window ([`auto_line_window`]).
    pub fn line_window(&self) -> usize {
        match (self.settings.in_flight, &self.phase) {
            (Some(_), Phase::Ready) if self.window_refused() => 1,
            (Some(configured), _) => configured,
            (None, Phase::Ready) => auto_line_window(self.firmware.as_deref()),
            (None, _) => 1,
        }
    }

    /// A configured window above 1 on firmware known to run a cut line's tail
    /// ([`runs_cut_tails`]): a line could run twice, which no throughput is worth.
    fn window_refused(&self) -> bool {
        self.settings.in_flight.is_some_and(|lines| lines > 1)
            && runs_cut_tails(self.firmware.as_deref())
    }

    pub fn temperatures(&self) -> Option<&Temperatures> {
        self.temperatures.as_ref()
    }

    pub fn traffic(&self) -> &TrafficLog {
        &self.traffic
    }

    pub fn traffic_mut(&mut self) -> &mut TrafficLog {
        &mut self.traffic
    }

    /// Bytes to write to the printer, oldest first.
    pub fn take_outgoing(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.outgoing)
    }

    pub fn poll_event(&mut self) -> Option<ProtocolEvent> {
        self.events.pop_front()
    }

    /// Stream a prepared program ([`prepare_program`]).
    pub fn start_job(
        &mut self,
        program: Vec<ProgramLine>,
        now: Instant,
    ) -> Result<(), CommandError> {
        if let Some(reason) = self.unavailable_reason() {
            return Err(CommandError::NotReady(reason));
        }
        if self.stream.is_some() {
            return Err(CommandError::Busy);
        }
        let total = program.len() as u64;
        let mut lines = vec![StreamLine::added("M110 N0"), StreamLine::added("M105")];
        lines.extend(program.into_iter().enumerate().map(|(i, line)| StreamLine {
            probe: command_word(&line.text) == "M105",
            long: is_long_command(&line.text),
            text: line.text,
            program_index: Some(i as u64 + 1),
            source_line: Some(line.line),
            delivered_at: None,
        }));
        if self.settings.finish_with_m400 {
            lines.push(StreamLine::added("M400"));
        }
        self.line_errors = None;
        self.stream = Some(Stream::new(Purpose::Job, lines, total));
        self.pump(now);
        Ok(())
    }

    /// Stop sending; lines in flight still execute.
    pub fn pause(&mut self) -> Result<(), CommandError> {
        let stream = self.job_mut()?;
        stream.paused = true;
        Ok(())
    }

    pub fn resume(&mut self, now: Instant) -> Result<(), CommandError> {
        let stream = self.job_mut()?;
        stream.paused = false;
        self.pump(now);
        Ok(())
    }

    /// Abort the job (or a cancel script that is stuck): the stream is dropped, whatever it
    /// waited for, and the cancel script goes out at once in a stream of its own (see the module
    /// documentation).
    pub fn cancel(&mut self, reason: &str, now: Instant) -> Result<(), CommandError> {
        if self.stream.is_none() {
            return Err(CommandError::NoJob);
        }
        if self.job_active() {
            self.events.push_back(ProtocolEvent::JobInterrupted {
                reason: reason.to_string(),
                resume: None,
            });
        }
        self.start_cancel_stream(now);
        Ok(())
    }

    fn job_mut(&mut self) -> Result<&mut Stream, CommandError> {
        self.stream
            .as_mut()
            .filter(|s| s.purpose == Purpose::Job)
            .ok_or(CommandError::NoJob)
    }

    /// Feed bytes received from the printer.
    pub fn receive(&mut self, bytes: &[u8], now: Instant) {
        if !bytes.is_empty() {
            self.last_rx = now;
        }
        for &byte in bytes {
            if byte == b'\n' || byte == b'\r' {
                if !self.partial.is_empty() {
                    let line = String::from_utf8_lossy(&self.partial).into_owned();
                    self.partial.clear();
                    self.handle_line(&line, now);
                }
            } else if self.partial.len() < 4 * MAX_CMD_SIZE {
                self.partial.push(byte);
            }
        }
    }

    /// When [`Protocol::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Handshake { next_try, .. } => Some(*next_try),
            Phase::Halted { .. } | Phase::Dead { .. } => None,
            Phase::Ready => match &self.stream {
                Some(Stream {
                    settle: Some(settle),
                    ..
                }) => {
                    let settled = settle.ends_at(self.last_rx, &self.settings);
                    Some(settled.min(self.stall_deadline(self.stream.as_ref()?)))
                }
                Some(stream) if stream.in_flight() > 0 => Some(self.stall_deadline(stream)),
                Some(stream) if stream.paused => Some(self.next_poll),
                // Nothing in flight and nothing held: the next line should already be out. A
                // watchdog, so a miscount can cost a timeout but never hang the job.
                Some(_) => Some(self.last_progress + self.settings.command_timeout),
                None if self.outside_pending > 0 => {
                    Some(self.poll_sent_at.max(self.last_progress) + self.settings.command_timeout)
                }
                None => Some(self.next_poll),
            },
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        match self.phase {
            Phase::Handshake { next_try, .. } if now >= next_try => {
                // Whatever was sent before may be lost (the board was booting): start over.
                self.late_hello_oks = self.outside_pending;
                self.outside_pending = 0;
                self.send_outside("M110 N0", now);
                self.phase = Phase::Handshake {
                    next_try: now + self.settings.handshake_retry,
                    info_requested: false,
                };
            }
            Phase::Ready => self.ready_timeout(now),
            _ => {}
        }
    }

    /// The transport failed (I/O error, end of file): the job, if any, is interrupted.
    pub fn connection_lost(&mut self, reason: String) {
        self.link_dead(reason);
    }

    fn link_dead(&mut self, reason: String) {
        if self.job_active() {
            let resume = self.stream.as_ref().and_then(Stream::resume_point);
            self.events.push_back(ProtocolEvent::JobInterrupted {
                reason: reason.clone(),
                resume,
            });
        }
        self.stream = None;
        self.phase = Phase::Dead {
            reason: reason.clone(),
        };
        self.events.push_back(ProtocolEvent::LinkDead { reason });
    }

    fn at_ms(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_millis() as u64
    }
}
