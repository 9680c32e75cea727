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

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::reply::{self, ErrorReply, HostAction, Reply, Temperatures};
use crate::ResumePoint;
use crate::traffic::{Direction, TrafficLog};

/// Marlin's `MAX_CMD_SIZE`: a line longer than this, framing included, is cut by the firmware.
pub const MAX_CMD_SIZE: usize = 96;

/// Every stream starts with `M110 N0` and an `M105` probe; nothing follows until the probe is
/// answered, so the `ok` count starts exact whatever was left over from before.
const SYNC_LINES: usize = 2;

/// Commands Marlin's emergency parser acts on as soon as they arrive, even while a command
/// blocks its queue (`EMERGENCY_PARSER`).
const EMERGENCY_COMMANDS: [&str; 3] = ["M108", "M410", "M112"];

/// Commands that may legitimately keep the printer silent for minutes.
const LONG_COMMANDS: [&str; 17] = [
    "M109", "M190", "M191", "M400", "M303", "M600", "M0", "M1", "M226", "M116", "M48", "G4", "G28",
    "G29", "G34", "G35", "G76",
];

/// XOR of all bytes, as Marlin computes it over everything before `*`.
pub fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0, |sum, byte| sum ^ byte)
}

/// `N<number> <command>*<checksum>`, without the newline.
pub fn frame(number: u64, command: &str) -> String {
    let body = format!("N{number} {command}");
    let sum = checksum(body.as_bytes());
    format!("{body}*{sum}")
}

/// A program line without its `;` comment and surrounding blanks; `None` if nothing is left.
pub fn strip(line: &str) -> Option<&str> {
    let code = line.split(';').next().unwrap_or("").trim();
    (!code.is_empty()).then_some(code)
}

/// The command word, upper-cased: `g1 x5` → `G1`.
pub fn command_word(line: &str) -> String {
    line.split_whitespace()
        .next()
        .unwrap_or("")
        .to_ascii_uppercase()
}

pub fn is_long_command(line: &str) -> bool {
    LONG_COMMANDS.contains(&command_word(line).as_str())
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProgramError {
    #[error("the program has no commands")]
    Empty,
    #[error("program line {line}: {reason}")]
    BadLine { line: usize, reason: String },
}

/// One command of a prepared program, with the line of the submitted file it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramLine {
    /// 1-based line in the program file.
    pub line: u32,
    pub text: String,
}

/// Strip comments and blank lines and check that each line can be framed for Marlin.
pub fn prepare_program(text: &str) -> Result<Vec<ProgramLine>, ProgramError> {
    let mut lines = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let Some(code) = strip(raw) else { continue };
        let bad = |reason: &str| ProgramError::BadLine {
            line: index + 1,
            reason: reason.to_string(),
        };
        if code.contains('*') {
            return Err(bad(
                "contains '*', which Marlin reads as the checksum marker",
            ));
        }
        if code.bytes().any(|b| b.is_ascii_control()) {
            return Err(bad("contains a control character"));
        }
        let framed = frame(lines.len() as u64 + 1, code).len() + 1;
        if framed > MAX_CMD_SIZE - 1 {
            return Err(bad(&format!(
                "{framed} bytes with line number and checksum, Marlin reads at most {}",
                MAX_CMD_SIZE - 1
            )));
        }
        lines.push(ProgramLine {
            line: (index + 1) as u32,
            text: code.to_string(),
        });
    }
    if lines.is_empty() {
        return Err(ProgramError::Empty);
    }
    Ok(lines)
}

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Numbered lines sent but not yet acknowledged; `None` chooses from the firmware's family
    /// once the handshake has identified it ([`auto_line_window`]), 1 until then. 1 is safe on
    /// every board (see the module documentation); more keeps the wire busy, and is refused
    /// (1, with a console note) on firmware that runs the tail of a line cut by its
    /// receive-buffer flush ([`runs_cut_tails`]: Marlin 1.1/2.x).
    pub in_flight: Option<usize>,
    /// Silence allowed while ordinary commands are in flight.
    pub command_timeout: Duration,
    /// Silence allowed while a long command (M109, M190, M400, G28, G29, ...) is in flight.
    pub long_command_timeout: Duration,
    /// Silence after which a probe goes out (a lost `ok`), before either timeout; longer than
    /// Marlin's 2 s keep-alive interval, so keep-alives hold it off.
    pub silence_probe: Duration,
    /// How often the handshake (`M110 N0`, then `M115`) is repeated until answered.
    pub handshake_retry: Duration,
    /// Temperature poll (`M105`) while idle or paused; also proves the link alive.
    pub poll_interval: Duration,
    /// After a resend request with later lines in flight that have not all been rejected yet,
    /// wait until no byte has arrived for this long, and as long after every one of them has
    /// reached the printer (the wire time of what was in flight when the last was sent),
    /// before resending: the rest were swallowed by a flush.
    pub resend_settle: Duration,
    /// One byte's time on the wire: 10 bits at the configured baud rate. Native USB is faster,
    /// which only makes the resend wait a little longer than needed.
    pub byte_time: Duration,
    /// Resend requests in a row for the same line before the link is declared faulty.
    pub max_consecutive_resends: u32,
    /// A numbered `M105` probe after this many lines, to resynchronise the `ok` count.
    pub resync_interval: usize,
    /// Marlin 2.x answers `Resend:` with an `ok` for the rejected line; some older builds do not.
    pub ok_after_resend: bool,
    /// End each job with `M400`, so "done" means the moves are finished, not just planned.
    pub finish_with_m400: bool,
    /// Sent after an abort or a failed job (`M108` ends a heating wait, `M410` stops moves).
    pub cancel_script: Vec<String>,
    /// Lines kept in the traffic ring.
    pub traffic_capacity: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            in_flight: None,
            command_timeout: Duration::from_secs(10),
            long_command_timeout: Duration::from_secs(900),
            silence_probe: Duration::from_millis(2500),
            handshake_retry: Duration::from_secs(2),
            poll_interval: Duration::from_secs(5),
            resend_settle: Duration::from_millis(3),
            byte_time: byte_time(115_200),
            max_consecutive_resends: 10,
            resync_interval: 200,
            ok_after_resend: true,
            finish_with_m400: true,
            cancel_script: default_cancel_script(),
            traffic_capacity: 500,
        }
    }
}

/// 10 bits (start, 8 data, stop) per byte.
pub fn byte_time(baud: u32) -> Duration {
    Duration::from_secs(10) / baud.max(1)
}

pub fn default_cancel_script() -> Vec<String> {
    ["M108", "M410", "M104 S0", "M140 S0", "M107", "M84"]
        .map(String::from)
        .to_vec()
}

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Job,
    Cancel,
}

#[derive(Debug, Clone)]
struct StreamLine {
    text: String,
    /// 1-based position in the program, for progress; `None` for lines the host added.
    program_index: Option<u64>,
    /// The line of the program file it came from; `None` for lines the host added.
    source_line: Option<u32>,
    probe: bool,
    long: bool,
    /// When its last byte reached the printer, the last time it was sent.
    delivered_at: Option<Instant>,
}

impl StreamLine {
    fn added(text: &str) -> StreamLine {
        StreamLine {
            text: text.to_string(),
            program_index: None,
            source_line: None,
            probe: command_word(text) == "M105",
            long: is_long_command(text),
            delivered_at: None,
        }
    }
}

/// Numbered lines: the job (or the cancel script), indexed by line number.
#[derive(Debug)]
struct Stream {
    purpose: Purpose,
    lines: Vec<StreamLine>,
    /// Next line number to send.
    next: usize,
    /// Lines below this are acknowledged.
    acked: usize,
    paused: bool,
    total: u64,
    reported_percent: Option<u64>,
    /// Probes sent and not yet answered, oldest first.
    probes: VecDeque<usize>,
    since_probe: usize,
    /// After a resend request, waiting for the lines sent after the rejected one to drain.
    settle: Option<Settle>,
    /// Numbers below this have been sent, each with its text: a number never changes its text
    /// within a stream (after a rewind the firmware may have accepted it already; see
    /// [`Protocol::send_probe_now`]).
    sent_high: usize,
    /// The last line the firmware certainly executed (answered probe, `ADVANCED_OK`).
    confirmed: Option<usize>,
    /// An `ok` for no line arrived since `confirmed`: `acked` may have run ahead of what the
    /// firmware executed.
    stray_ok_since_confirmed: bool,
    /// Plain `ok`s (not after `Unknown command`) that came while the oldest line in flight was
    /// a probe, since `acked` last moved. See [`Protocol::answered_probe`].
    oks_behind_probe: usize,
    /// Fresh requests for `last_resend` in a row.
    consecutive_resends: u32,
    /// Fresh resend requests in this stream.
    resends: usize,
    /// Resends took more than [`WINDOW_FALLBACK_SHARE`] of the lines: one line in flight for
    /// the rest of the stream.
    single_line: bool,
    last_resend: Option<usize>,
    /// A resend went out before every stale line had answered: their answers may still come.
    late_stale: Option<LateStale>,
    /// A request was taken for a stale line's ([`LateStale`]) and no `ok` has come since: if
    /// it was the resent line's own rejection, silence follows, and a probe goes out once the
    /// lines in flight have had time to answer, not after [`Settings::silence_probe`].
    late_request_taken: bool,
}

/// Stale lines still unanswered when a resend's wait ended: a request for `from` after one of
/// their `Error:` lines, until `until`, is theirs, not a fresh rejection of the resent line.
/// Taken as fresh, it would send the resent lines again; the firmware, which accepted them,
/// rejects the copies, and each rejection's receive-buffer flush cuts the next window. But it
/// may be the resent line's own rejection (noise hits a resent line too), and the flush that
/// comes with it may swallow every line behind: then nothing more comes, and a probe soon
/// after the silence starts tells ([`Stream::late_request_taken`]).
#[derive(Debug, Clone, Copy)]
struct LateStale {
    from: usize,
    due: usize,
    until: Instant,
}

/// The wait before a resend while the lines sent after the rejected one (stale) are still
/// arriving: each line error also empties Marlin's receive buffer, so a line resent now could
/// be thrown away with them.
#[derive(Debug, Clone, Copy)]
struct Settle {
    /// The line the firmware asked for.
    from: usize,
    /// By then the last stale line has reached the printer ([`StreamLine::delivered_at`]) and
    /// its answer has had the printer's answer latency ([`Protocol::answer_latency`]) to come
    /// back. Stale lines swallowed whole by a
    /// flush never answer: the wait also ends [`Settings::resend_settle`] after this and after
    /// the last byte received, whichever is later.
    delivered_by: Instant,
    /// Stale lines not yet rejected. Each is rejected at most once (the whole line, or its tail
    /// after a flush), and its receive-buffer flush comes with its `Error:` line, so when all
    /// have answered the resend goes out at once.
    unanswered: usize,
}

impl Settle {
    fn ends_at(&self, last_rx: Instant, settings: &Settings) -> Instant {
        last_rx.max(self.delivered_by) + settings.resend_settle
    }
}

impl Stream {
    fn new(purpose: Purpose, lines: Vec<StreamLine>, total: u64) -> Stream {
        Stream {
            purpose,
            lines,
            next: 0,
            acked: 0,
            paused: false,
            total,
            reported_percent: None,
            probes: VecDeque::new(),
            since_probe: 0,
            settle: None,
            sent_high: 0,
            confirmed: None,
            stray_ok_since_confirmed: false,
            oks_behind_probe: 0,
            consecutive_resends: 0,
            last_resend: None,
            late_stale: None,
            late_request_taken: false,
            resends: 0,
            single_line: false,
        }
    }

    fn in_flight(&self) -> usize {
        self.next - self.acked
    }

    /// When the last line sent reached the printer (by the wire's pace from when it was
    /// written, behind what was on the wire already).
    fn last_delivery(&self) -> Option<Instant> {
        let last = self.next.checked_sub(1)?;
        self.lines[last].delivered_at
    }

    /// Lines sent and not acknowledged, as framed on the wire.
    fn bytes_in_flight(&self) -> usize {
        (self.acked..self.next)
            .map(|number| frame(number as u64, &self.lines[number].text).len() + 1)
            .sum()
    }

    fn done(&self) -> u64 {
        self.lines[..self.acked]
            .iter()
            .rev()
            .find_map(|line| line.program_index)
            .unwrap_or(0)
    }

    fn long_in_flight(&self) -> bool {
        self.lines[self.acked..self.next].iter().any(|l| l.long)
    }

    /// Until an `M110` is answered, the firmware's numbering after it is not certain (see
    /// [`Protocol::cancel`]): nothing is sent behind it.
    fn renumbering_in_flight(&self) -> bool {
        self.renumbering_before(self.next)
    }

    fn renumbering_before(&self, end: usize) -> bool {
        self.lines[self.acked..end]
            .iter()
            .any(|l| command_word(&l.text) == "M110")
    }

    /// Where the job could go on: program lines from the first one not certainly executed.
    /// `None` for the cancel script, or when every program line was acknowledged.
    fn resume_point(&self) -> Option<ResumePoint> {
        if self.purpose != Purpose::Job {
            return None;
        }
        let certain = if self.stray_ok_since_confirmed {
            self.confirmed.map_or(0, |line| line + 1)
        } else {
            self.acked
        };
        let next_line = self.lines[certain..].iter().find_map(|l| l.source_line)?;
        let in_doubt = self.lines[certain..self.next.max(certain)]
            .iter()
            .filter_map(|l| l.source_line)
            .collect();
        Some(ResumePoint {
            next_line,
            in_doubt,
        })
    }
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

    fn start_cancel_stream(&mut self, now: Instant) {
        let script = &self.settings.cancel_script;
        let urgent = script
            .iter()
            .take_while(|line| EMERGENCY_COMMANDS.contains(&command_word(line).as_str()))
            .count();
        let mut lines = vec![StreamLine::added("M110 N0"), StreamLine::added("M105")];
        lines.extend(script[..urgent].iter().map(|line| StreamLine::added(line)));
        if urgent > 0 {
            // Marlin also applies `M110 N0` when it executes it, which may come after it has
            // read the lines sent with it: the numbering is then 0, or the last of them. A
            // second M110, sent once they are answered, makes it certain.
            let number = lines.len();
            lines.push(StreamLine::added(&format!("M110 N{number}")));
        }
        lines.extend(script[urgent..].iter().map(|line| StreamLine::added(line)));
        self.line_errors = None;
        self.stale_request = None;
        self.swallow_ok = false;
        self.tickle_at = None;
        self.last_progress = now;
        self.stream = Some(Stream::new(Purpose::Cancel, lines, 0));
        for _ in 0..SYNC_LINES + urgent {
            self.send_numbered(now);
        }
    }

    fn job_mut(&mut self) -> Result<&mut Stream, CommandError> {
        self.stream
            .as_mut()
            .filter(|s| s.purpose == Purpose::Job)
            .ok_or(CommandError::NoJob)
    }

    fn switch_to_cancel_script(&mut self, now: Instant) {
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        stream.lines.truncate(stream.next);
        let script = self.settings.cancel_script.iter();
        stream
            .lines
            .extend(script.map(|line| StreamLine::added(line)));
        stream.purpose = Purpose::Cancel;
        stream.paused = false;
        self.pump(now);
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

    /// When silence sends a probe, or, once one is out, declares the link dead.
    fn stall_deadline(&self, stream: &Stream) -> Instant {
        let limit = if stream.long_in_flight() {
            self.settings.long_command_timeout
        } else {
            self.settings.command_timeout
        };
        match self.tickle_at {
            None if stream.late_request_taken => {
                self.last_progress
                    + self.settings.byte_time * stream.bytes_in_flight() as u32
                    + self.answer_latency
                    + self.settings.resend_settle
            }
            None => self.last_progress + limit.min(self.settings.silence_probe),
            Some(tickle_at) => self.last_progress.max(tickle_at) + limit,
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

    fn ready_timeout(&mut self, now: Instant) {
        let Some(stream) = &self.stream else {
            if self.outside_pending > 0 {
                let deadline =
                    self.poll_sent_at.max(self.last_progress) + self.settings.command_timeout;
                if now >= deadline {
                    let secs = self.settings.command_timeout.as_secs_f64();
                    self.link_dead(format!("no answer to M105 for {secs} s"));
                }
            } else if now >= self.next_poll {
                self.send_outside("M105", now);
                self.poll_sent_at = now;
                self.next_poll = now + self.settings.poll_interval;
            }
            return;
        };
        if stream
            .settle
            .is_some_and(|settle| now >= settle.ends_at(self.last_rx, &self.settings))
        {
            if let Some(stream) = self.stream.as_mut()
                && let Some(settle) = stream.settle.take()
            {
                stream.late_stale = Some(LateStale {
                    from: settle.from,
                    due: settle.unanswered,
                    until: now + MAX_ANSWER_LATENCY,
                });
            }
            self.pump(now);
            return;
        }
        if stream.in_flight() > 0 {
            if now < self.stall_deadline(stream) {
                return;
            }
            if self.tickle_at.is_some() {
                let long = stream.long_in_flight();
                self.link_dead(format!(
                    "the printer stopped answering ({} timeout, and no answer to M105)",
                    if long { "long-command" } else { "command" }
                ));
                return;
            }
            self.tickle_at = Some(now);
            // Nothing came for a while: an answer the count still waits for came already,
            // taken for another line's after a late stale request, or was lost. Only the
            // tickle's own answer proves anything now.
            if let Some(stream) = self.stream.as_mut() {
                stream.probes.clear();
            }
            self.send_probe_now(now);
        } else if stream.paused {
            if now >= self.next_poll {
                self.next_poll = now + self.settings.poll_interval;
                self.last_progress = now;
                self.send_probe_now(now);
            }
        } else if now >= self.last_progress + self.settings.command_timeout {
            // Nothing in flight, nothing held, yet nothing sent: an answer went missing. Send
            // again (the stream opens with `M110`); a probe resynchronises the count.
            tracing::warn!("marlin stream stalled with nothing in flight; probing");
            self.last_progress = now;
            self.outside_pending = 0;
            self.pump(now);
            if self.stream.as_ref().is_some_and(|s| s.in_flight() == 0) {
                self.send_probe_now(now);
            }
        }
    }

    /// Insert a numbered M105 at the send position and send it regardless of the window. Below
    /// [`Stream::sent_high`] (after a rewind) the line there goes instead: inserting would give
    /// later lines new numbers, and after a rewind from a late stale request the firmware may
    /// have accepted them under the old ones: it would run them again. Either line draws an
    /// answer.
    fn send_probe_now(&mut self, now: Instant) {
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        if stream.next >= stream.sent_high {
            let at = stream.next;
            stream.lines.insert(at, StreamLine::added("M105"));
        } else if stream.next == stream.lines.len() {
            return;
        }
        self.send_numbered(now);
    }

    fn handle_line(&mut self, line: &str, now: Instant) {
        self.traffic
            .record(self.at_ms(now), Direction::Received, line);
        let after_resend = std::mem::take(&mut self.swallow_ok);
        let stale_request = self.stale_request.take();
        let reply = reply::parse(line);
        let follows_unknown_command = std::mem::replace(
            &mut self.after_unknown_command,
            matches!(&reply, Reply::Other(text) if text.starts_with("echo:Unknown command")),
        );
        match reply {
            Reply::Ok { .. } if after_resend => {}
            Reply::Ok {
                line, temperatures, ..
            } => {
                self.end_wait_for_user();
                let answered_m105 = temperatures.is_some();
                if let Some(temperatures) = temperatures {
                    self.set_temperatures(temperatures);
                }
                self.on_ok(line, answered_m105, follows_unknown_command, now);
            }
            Reply::Resend(number) => self.on_resend(number, stale_request, now),
            Reply::Error(error) => {
                // The printer began this answer a line's wire time before its end came.
                let wire_time = self.settings.byte_time * (line.len() as u32 + 1);
                let began = now.checked_sub(wire_time).unwrap_or(now);
                self.on_error(error, began, now)
            }
            Reply::Busy(what) => {
                self.last_progress = now;
                self.on_busy(&what);
            }
            Reply::Start => self.on_start(now),
            Reply::Action(action) => self.on_action(action, now),
            Reply::Temperatures(temperatures) => {
                if self.stream.as_ref().is_some_and(|s| s.long_in_flight()) {
                    // Marlin reports temperatures every second while it waits in M109/M190.
                    self.last_progress = now;
                }
                self.set_temperatures(temperatures);
            }
            Reply::FirmwareInfo(info) => self.firmware = Some(firmware_name(&info)),
            Reply::Other(_) => {}
        }
    }

    fn set_temperatures(&mut self, temperatures: Temperatures) {
        self.events
            .push_back(ProtocolEvent::Temperatures(temperatures.clone()));
        self.temperatures = Some(temperatures);
    }

    /// `follows_unknown_command`: Marlin reported an unknown command just before; its `ok` is
    /// for a line read wrongly, not executed.
    fn on_ok(
        &mut self,
        advanced_line: Option<u64>,
        answered_m105: bool,
        follows_unknown_command: bool,
        now: Instant,
    ) {
        self.last_progress = now;
        match self.phase {
            Phase::Handshake { info_requested, .. } => {
                if info_requested && self.firmware.is_none() && self.late_hello_oks > 0 {
                    // M115 names the firmware before its `ok`: this one answers an earlier
                    // hello. Taken for M115's, the handshake would end before the firmware is
                    // known, and M115's own `ok` would then run the job's count ahead.
                    self.late_hello_oks -= 1;
                    return;
                }
                self.outside_pending = self.outside_pending.saturating_sub(1);
                if self.outside_pending > 0 {
                    return;
                }
                if self.outside_next.is_none() {
                    // The hello or M115 was rejected (noise): start again, M115 included (the
                    // window depends on its answer).
                    self.send_outside("M110 N0", now);
                    self.phase = Phase::Handshake {
                        next_try: now + self.settings.handshake_retry,
                        info_requested: false,
                    };
                } else if !info_requested {
                    self.send_outside("M115", now);
                    self.phase = Phase::Handshake {
                        next_try: now + self.settings.handshake_retry,
                        info_requested: true,
                    };
                } else {
                    self.phase = Phase::Ready;
                    if self.window_refused() {
                        self.note_refused_window(now);
                    }
                    // Read the temperatures at once: they tell whether a printer kept its
                    // state across a reconnect (heaters still on) before anyone resumes a job.
                    self.next_poll = now;
                    self.events.push_back(ProtocolEvent::Ready {
                        firmware: self.firmware.clone(),
                        line_window: self.line_window(),
                    });
                }
                return;
            }
            Phase::Ready => {}
            Phase::Halted { .. } | Phase::Dead { .. } => return,
        }
        if self.outside_pending > 0 {
            self.outside_pending -= 1;
            self.pump(now);
            return;
        }
        // Only the tail of a line cut by Marlin 1.1/2.x's receive-buffer flush makes an `ok`
        // for no line; it needs a window, and firmware whose auto window is 1.
        let tails_run = self.line_window() > 1 && auto_line_window(self.firmware.as_deref()) == 1;
        let moves_acked_on_read = acknowledges_moves_on_read(self.firmware.as_deref());
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        self.tickle_at = None;
        stream.late_request_taken = false;
        if follows_unknown_command && stream.settle.is_some() {
            // The tail of a stale line cut after its `*` (`17`), read as a command: that line
            // has answered, without a line error (no flush).
            self.stale_line_answered(now);
            return;
        }
        // `confirmed`: a line the firmware has certainly executed (a plain `ok` may be stray).
        let (acked, confirmed) = if answered_m105
            && moves_acked_on_read
            && let Some(probe) = stream.probes.pop_front()
        {
            // The plain `ok`s that came while the probe was the oldest line in flight were
            // the moves behind it, acknowledged as they were read.
            let moves_behind = stream.lines[probe + 1..stream.next]
                .iter()
                .take_while(|line| is_move(&line.text))
                .count();
            (
                probe + 1 + stream.oks_behind_probe.min(moves_behind),
                Some(probe),
            )
        } else if answered_m105 && let Some(probe) = Self::answered_probe(stream, tails_run) {
            // Marlin executes in order: everything up to the probe was accepted and executed.
            (probe + 1, Some(probe))
        } else if let Some(n) = advanced_line.map(|n| n as usize)
            && n >= stream.acked
            && n < stream.next
        {
            (n + 1, Some(n))
        } else if stream.acked < stream.next && !stream.lines[stream.acked].probe {
            (stream.acked + 1, None)
        } else {
            // Nothing in flight, or the oldest line is a probe, which only `ok T:` answers
            // (lines after it execute after it): a stray `ok`. It may also be the probe itself,
            // its `N` hit by noise and read as an unknown command; a second probe tells at
            // once (Marlin rejects it and asks for the first) instead of after a timeout.
            stream.stray_ok_since_confirmed = true;
            if !follows_unknown_command {
                stream.oks_behind_probe += 1;
            }
            if stream.acked >= SYNC_LINES && !follows_unknown_command {
                if tails_run {
                    tracing::warn!(
                        "an `ok` for no line: the tail of a line cut by the printer's \
                         receive-buffer flush may have run unchecked (a command may have run twice)"
                    );
                } else {
                    // The count ran behind (a jump over copies of accepted lines, a lost
                    // `ok`): the next probe puts it right.
                    tracing::debug!("an `ok` for no line");
                }
            }
            if stream.acked < stream.next
                    && !moves_acked_on_read
                    && stream.probes.len() == 1
                    && stream.settle.is_none()
                    && stream.next >= stream.sent_high
                    // Before an abort's second `M110`, `ok`s of the aborted job's lines are
                    // expected: no probe may go out until the numbering is certain.
                    && !stream.renumbering_before(stream.lines.len())
            {
                self.send_probe_now(now);
            }
            return;
        };
        if acked == stream.acked + 1 {
            let line = stream.acked;
            self.learn_answer_latency(line, now);
        }
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        stream.acked = acked;
        stream.oks_behind_probe = 0;
        if confirmed.is_some() {
            stream.confirmed = confirmed;
            stream.stray_ok_since_confirmed = false;
        }
        self.report_progress();
        self.finish_stream_if_done(now);
        self.pump(now);
    }

    /// The probe an `ok T:` answers: the oldest one outstanding, unless the plain `ok`s that
    /// came while it was the oldest line in flight cover every command between it and the next
    /// probe. Marlin answers in order and a probe only with `ok T:`, so those `ok`s prove its
    /// answer was taken earlier for another (a stale resend request made us drop and resend a
    /// probe the firmware had accepted): this answer is the next probe's. Without that, the
    /// count stays one answer behind and every window waits out a timeout. Not where cut tails
    /// run ([`Settings::in_flight`] above 1 on firmware not known to reject them): there a
    /// plain `ok` may answer no line at all.
    fn answered_probe(stream: &mut Stream, tails_run: bool) -> Option<usize> {
        let oldest = *stream.probes.front()?;
        if let Some(&next) = stream.probes.get(1)
            && !tails_run
        {
            let commands = (oldest + 1..next)
                .filter(|&line| !stream.lines[line].probe)
                .count();
            if commands > 0 && stream.oks_behind_probe >= commands {
                stream.probes.pop_front();
            }
        }
        stream.probes.pop_front()
    }

    fn report_progress(&mut self) {
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        if stream.purpose != Purpose::Job {
            return;
        }
        let done = stream.done();
        let percent = done * 100 / stream.total.max(1);
        if stream.reported_percent.is_none_or(|p| percent > p) {
            stream.reported_percent = Some(percent);
            self.events.push_back(ProtocolEvent::JobProgress {
                done,
                total: stream.total,
            });
        }
    }

    fn finish_stream_if_done(&mut self, now: Instant) {
        let Some(stream) = &self.stream else { return };
        let all_sent = stream.next == stream.lines.len();
        let proven = stream.lines.last().is_some_and(|l| l.probe);
        if !(all_sent && stream.acked == stream.next && proven) {
            return;
        }
        let purpose = stream.purpose;
        let total = stream.total;
        let last_reported = stream.reported_percent;
        self.outside_next = Some(stream.lines.len() as u64);
        self.stream = None;
        self.next_poll = now + self.settings.poll_interval;
        match purpose {
            Purpose::Job => {
                if last_reported != Some(100) {
                    self.events
                        .push_back(ProtocolEvent::JobProgress { done: total, total });
                }
                self.events.push_back(ProtocolEvent::JobDone);
            }
            Purpose::Cancel => self.events.push_back(ProtocolEvent::CancelDone),
        }
    }

    /// `stale_request`: the line before was the `Error:` of a stale line already counted as
    /// answered; this is its request.
    fn on_resend(&mut self, number: u64, stale_request: Option<usize>, now: Instant) {
        self.last_progress = now;
        self.tickle_at = None;
        let line_window = self.line_window();
        let at_ms = self.at_ms(now);
        // Outside lines are answered before a stream sends anything (`pump` waits for them),
        // so while one is pending the request is about it, even if a job has just started.
        let stream = match self.stream.as_mut() {
            Some(stream) if self.outside_pending == 0 => stream,
            _ => {
                // An idle poll or the handshake was rejected: nothing to resend, but the
                // numbering is in doubt until the next `M110` (every stream starts with one).
                self.outside_next = None;
                if !self.settings.ok_after_resend {
                    self.outside_pending = self.outside_pending.saturating_sub(1);
                    self.pump(now);
                }
                return;
            }
        };
        self.swallow_ok = self.settings.ok_after_resend;
        let requested = usize::try_from(number).unwrap_or(usize::MAX);
        if stale_request == Some(requested) {
            return;
        }
        let rewind_to = if stream.acked < SYNC_LINES && requested != 1 {
            // Only M110 and the sync probe are in flight, and until M110 gets through the
            // firmware counts from its old numbering: start over from M110.
            0
        } else if stream.settle.is_some_and(|settle| requested == settle.from) {
            // A stale line's request whose `Error:` did not come as a line error: it answered.
            self.stale_line_answered(now);
            return;
        } else if requested >= stream.next {
            if requested <= stream.sent_high {
                // Marlin asks for the line after the last one it accepted, so it accepted every
                // line before, whatever the count says: after a rewind from a late stale
                // request their `ok`s were taken for no line, and the lines counted in flight
                // are copies it rejects, each with this same request.
                let rejected = rejected_before(&mut self.line_errors, requested);
                let copies = stream.in_flight().saturating_sub(rejected.max(1));
                let delivered_by =
                    stream.last_delivery().unwrap_or(self.last_tx) + self.answer_latency;
                stream.settle = (copies > 0).then_some(Settle {
                    from: requested,
                    delivered_by,
                    unanswered: copies,
                });
                stream.next = requested;
                if stream.acked < requested {
                    stream.acked = requested;
                    // Accepted is not executed: a resume goes back to the last probe.
                    stream.stray_ok_since_confirmed = true;
                }
                stream.probes.retain(|&probe| probe >= requested);
                self.report_progress();
            }
            // With nothing in flight, nothing else would send the next line.
            self.pump(now);
            return;
        } else if stream
            .confirmed
            .is_some_and(|confirmed| requested + line_window < confirmed)
        {
            // (Slack of one window: the tail of a probe cut by Marlin's receive-buffer flush
            // can answer for the probe.)
            let reason = format!(
                "the printer asked for line {requested}, which it had executed: it lost its state"
            );
            self.interrupt_and_rehandshake(reason, now);
            return;
        } else {
            requested
        };
        if stream.last_resend != Some(rewind_to) {
            stream.consecutive_resends = 0;
        }
        stream.last_resend = Some(rewind_to);
        stream.consecutive_resends += 1;
        self.traffic.counters.resends += 1;
        stream.resends += 1;
        if !stream.single_line
            && line_window > 1
            && stream.sent_high >= WINDOW_FALLBACK_AFTER
            && stream.resends as f64 > WINDOW_FALLBACK_SHARE * stream.sent_high as f64
        {
            stream.single_line = true;
            let note = format!(
                "{} resends for {} lines with {line_window} in flight: one line in flight for \
                 the rest of this stream",
                stream.resends, stream.sent_high
            );
            tracing::warn!("marlin: {note}");
            self.traffic.counters.window_fallbacks += 1;
            self.traffic.record(at_ms, Direction::Note, note);
        }
        if stream.consecutive_resends > self.settings.max_consecutive_resends {
            let reason = format!(
                "{} resend requests in a row for line {rewind_to}: the link is faulty",
                stream.consecutive_resends
            );
            self.link_dead(reason);
            return;
        }
        // Every line sent from the rejected one on is rejected once; those whose `Error:` has
        // come (the rejected line's own, and stale ones ahead of this request) are done.
        let rejected = rejected_before(&mut self.line_errors, rewind_to);
        let unanswered = stream.next.saturating_sub(rewind_to + rejected.max(1));
        let delivered_by = stream.last_delivery().unwrap_or(self.last_tx) + self.answer_latency;
        stream.settle = (unanswered > 0).then_some(Settle {
            from: rewind_to,
            delivered_by,
            unanswered,
        });
        stream.late_stale = None;
        stream.next = rewind_to;
        stream.acked = stream.acked.min(rewind_to);
        stream.probes.retain(|&probe| probe < rewind_to);
        self.pump(now);
    }

    /// A transmission error (`Error:checksum mismatch, Last Line: 11`): a stale line answering
    /// while a resend waits, or the first rejection, whose `Resend:` follows (or not, on Marlin
    /// 1.0 for a line without a number).
    fn on_line_error(&mut self, last_line: Option<u64>, began: Instant, now: Instant) {
        let settling_from = self
            .stream
            .as_ref()
            .and_then(|stream| stream.settle)
            .map(|settle| settle.from)
            .filter(|&from| last_line.is_none_or(|line| line + 1 == from as u64));
        if self.outside_pending == 0
            && settling_from.is_none()
            && let Some(stream) = self.stream.as_mut()
            && let Some(late) = stream.late_stale.as_mut()
            && late.due > 0
            && now <= late.until
            && last_line.is_none_or(|line| line + 1 == late.from as u64)
        {
            late.due -= 1;
            stream.late_request_taken = true;
            self.last_progress = now;
            self.stale_request = Some(late.from);
            return;
        }
        if let Some(sample) = self.rejected_line_latency(last_line, began) {
            self.answer_latency = self.answer_latency.max(sample);
        }
        if self.outside_pending == 0
            && let Some(from) = settling_from
        {
            // Marlin empties its receive buffer right after this line: once every stale line
            // has been rejected, nothing can throw the resent line away.
            self.stale_request = Some(from);
            self.stale_line_answered(now);
            return;
        }
        self.line_errors = match self.line_errors {
            Some((line, count)) if line == last_line => Some((line, count + 1)),
            _ => Some((last_line, 1)),
        };
    }

    /// How long the line a first `Error:` rejects (the one after `last_line`) took to be
    /// answered: until the printer `began` its error line.
    fn rejected_line_latency(&self, last_line: Option<u64>, began: Instant) -> Option<Duration> {
        let stream = self.stream.as_ref()?;
        if stream.settle.is_some() {
            return None;
        }
        let rejected = usize::try_from(last_line? + 1).ok()?;
        if rejected < stream.acked || rejected >= stream.next {
            return None;
        }
        let delivered_at = stream.lines[rejected].delivered_at?;
        Some(
            began
                .saturating_duration_since(delivered_at)
                .min(MAX_ANSWER_LATENCY),
        )
    }

    /// An `ok` for `line`: its round trip moves the answer latency's lower envelope (an `ok`
    /// also waits for its command to run; the quickest ones show the printer's own delay).
    fn learn_answer_latency(&mut self, line: usize, now: Instant) {
        let Some(delivered_at) = self
            .stream
            .as_ref()
            .and_then(|stream| stream.lines.get(line))
            .and_then(|line| line.delivered_at)
        else {
            return;
        };
        let sample = now
            .saturating_duration_since(delivered_at)
            .min(MAX_ANSWER_LATENCY);
        self.answer_latency = if sample <= self.answer_latency {
            sample
        } else {
            self.answer_latency + (sample - self.answer_latency) / 8
        };
    }

    fn note_refused_window(&mut self, now: Instant) {
        let note = format!(
            "in_flight = {} refused: {} runs the tail of a line cut by its receive-buffer \
             flush, so a window could run a line twice; one line in flight",
            self.settings.in_flight.unwrap_or(1),
            self.firmware.as_deref().unwrap_or("this firmware"),
        );
        tracing::warn!("marlin: {note}");
        self.traffic.counters.window_fallbacks += 1;
        self.traffic.record(self.at_ms(now), Direction::Note, note);
    }

    /// A stale line has answered while a resend waits: when all have, the resend goes out.
    fn stale_line_answered(&mut self, now: Instant) {
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        let Some(settle) = stream.settle.as_mut() else {
            return;
        };
        settle.unanswered = settle.unanswered.saturating_sub(1);
        if settle.unanswered == 0 {
            stream.settle = None;
            self.pump(now);
        }
    }

    /// `began`: when the printer started writing the error line.
    fn on_error(&mut self, error: ErrorReply, began: Instant, now: Instant) {
        self.traffic.counters.errors += 1;
        match error {
            ErrorReply::Line { last_line, .. } => self.on_line_error(last_line, began, now),
            ErrorReply::Fatal(reason) => {
                if matches!(self.phase, Phase::Halted { .. }) {
                    return;
                }
                if self.job_active() {
                    self.events.push_back(ProtocolEvent::JobInterrupted {
                        reason: format!("the printer halted: {reason}"),
                        resume: None,
                    });
                }
                self.stream = None;
                self.phase = Phase::Halted {
                    reason: reason.clone(),
                };
                self.events.push_back(ProtocolEvent::Halted { reason });
            }
            ErrorReply::Command(reason) => {
                if self.job_active() {
                    self.events.push_back(ProtocolEvent::JobFailed {
                        reason: format!("the printer reported an error: {reason}"),
                    });
                    self.switch_to_cancel_script(now);
                }
            }
        }
    }

    fn on_start(&mut self, now: Instant) {
        if matches!(self.phase, Phase::Handshake { .. }) {
            // The board rebooted as the port opened (DTR); earlier hellos are lost.
            self.events.push_back(ProtocolEvent::Booted);
            self.restart_handshake(now);
            return;
        }
        self.events.push_back(ProtocolEvent::FirmwareReset);
        self.interrupt_and_rehandshake(
            "the firmware restarted mid-job (it printed 'start'): its state is lost".into(),
            now,
        );
    }

    fn interrupt_and_rehandshake(&mut self, reason: String, now: Instant) {
        if self.job_active() {
            self.events.push_back(ProtocolEvent::JobInterrupted {
                reason,
                resume: None,
            });
        }
        self.stream = None;
        self.restart_handshake(now);
    }

    /// `busy: paused for user` (M0/M1, a filament change): the job waits for someone at the
    /// printer's screen, which the operator must hear about; any other answer ends the wait.
    fn on_busy(&mut self, what: &str) {
        let waits_for_user = what.starts_with("paused for");
        if waits_for_user && !self.waiting_for_user && self.job_active() {
            self.events.push_back(ProtocolEvent::PausedByPrinter {
                reason: format!("the printer waits for someone at its screen (busy: {what})"),
            });
        } else if !waits_for_user {
            self.end_wait_for_user();
        }
        self.waiting_for_user = waits_for_user && self.job_active();
    }

    fn end_wait_for_user(&mut self) {
        if std::mem::take(&mut self.waiting_for_user) && self.job_active() {
            self.events.push_back(ProtocolEvent::ResumedByPrinter);
        }
    }

    fn on_action(&mut self, action: HostAction, now: Instant) {
        match action {
            HostAction::Pause | HostAction::Paused => {
                if let Ok(stream) = self.job_mut()
                    && !stream.paused
                {
                    stream.paused = true;
                    self.events.push_back(ProtocolEvent::PausedByPrinter {
                        reason: "the printer asked to pause (//action:pause)".into(),
                    });
                }
            }
            HostAction::Resume | HostAction::Resumed => {
                if let Ok(stream) = self.job_mut()
                    && stream.paused
                {
                    stream.paused = false;
                    self.events.push_back(ProtocolEvent::ResumedByPrinter);
                    self.pump(now);
                }
            }
            HostAction::Cancel => {
                let _ = self.cancel("cancelled on the printer (//action:cancel)", now);
            }
            HostAction::Other(_) => {}
        }
    }

    fn restart_handshake(&mut self, now: Instant) {
        // The board may have been flashed with other firmware: a name from before must not
        // choose the window.
        self.firmware = None;
        self.late_hello_oks = self.outside_pending;
        self.outside_pending = 0;
        self.swallow_ok = false;
        self.stale_request = None;
        self.line_errors = None;
        self.tickle_at = None;
        self.phase = Phase::Handshake {
            next_try: now + self.settings.handshake_retry,
            info_requested: false,
        };
        self.send_outside("M110 N0", now);
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

    /// Send numbered lines while the window and the stream allow.
    fn pump(&mut self, now: Instant) {
        if self.phase != Phase::Ready || self.outside_pending > 0 {
            return;
        }
        let line_window = self.line_window();
        loop {
            let Some(stream) = self.stream.as_mut() else {
                return;
            };
            let m110_unconfirmed = stream.acked < SYNC_LINES && stream.next >= SYNC_LINES;
            let held = (stream.paused && stream.purpose == Purpose::Job) || stream.settle.is_some();
            // One line at a time until the sync probe is answered: a line error empties Marlin's
            // receive buffer, and the tail of the probe must not answer for it.
            let window = if stream.acked < SYNC_LINES || stream.single_line {
                1
            } else {
                line_window
            };
            if m110_unconfirmed
                || held
                || stream.in_flight() >= window
                || stream.renumbering_in_flight()
            {
                return;
            }
            if stream.next == stream.lines.len() {
                if stream.lines.last().is_some_and(|l| l.probe) {
                    return;
                }
                stream.lines.push(StreamLine::added("M105"));
            } else if stream.since_probe >= self.settings.resync_interval
                && !stream.lines[stream.next].probe
                && stream.next >= stream.sent_high
            {
                let at = stream.next;
                stream.lines.insert(at, StreamLine::added("M105"));
            }
            if stream.in_flight() == 0 {
                self.last_progress = now;
            }
            self.send_numbered(now);
        }
    }

    fn send_numbered(&mut self, now: Instant) {
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        let number = stream.next;
        let line = &stream.lines[number];
        if line.probe {
            stream.probes.push_back(number);
            stream.since_probe = 0;
        } else {
            stream.since_probe += 1;
        }
        stream.next += 1;
        stream.sent_high = stream.sent_high.max(stream.next);
        let framed = frame(number as u64, &line.text);
        let delivered_at = self.send_raw(&framed, now);
        if let Some(stream) = self.stream.as_mut() {
            stream.lines[number].delivered_at = Some(delivered_at);
        }
    }

    /// A command outside a stream, numbered and checksummed like every line (noise must not turn
    /// an idle poll into another command). Without a known numbering, `M110 N0` goes instead.
    fn send_outside(&mut self, command: &str, now: Instant) {
        let framed = match self.outside_next {
            Some(number) if command_word(command) != "M110" => {
                self.outside_next = Some(number + 1);
                frame(number, command)
            }
            _ => {
                self.outside_next = Some(1);
                frame(0, "M110 N0")
            }
        };
        self.outside_pending += 1;
        self.send_raw(&framed, now);
    }

    /// When the line's last byte reaches the printer.
    fn send_raw(&mut self, text: &str, now: Instant) -> Instant {
        self.last_tx = now;
        self.wire_free_at =
            self.wire_free_at.max(now) + self.settings.byte_time * (text.len() as u32 + 1);
        self.outgoing.extend_from_slice(text.as_bytes());
        self.outgoing.push(b'\n');
        self.traffic.record(self.at_ms(now), Direction::Sent, text);
        self.wire_free_at
    }

    fn at_ms(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_millis() as u64
    }
}

/// `FIRMWARE_NAME:Marlin 2.1.2 (Jun 1 2023) SOURCE_CODE_URL:...` → `Marlin 2.1.2 (Jun 1 2023)`.
/// The line errors counted since the last resend request (see [`Protocol::line_errors`]) that
/// named `line - 1` as the last line accepted: lines already rejected when Marlin asks for
/// `line`.
fn rejected_before(line_errors: &mut Option<(Option<u64>, usize)>, line: usize) -> usize {
    match line_errors.take() {
        Some((last_line, count)) if last_line.is_none_or(|l| l + 1 == line as u64) => count,
        _ => 0,
    }
}

fn firmware_name(info: &str) -> String {
    let rest = info.trim_start_matches("FIRMWARE_NAME:");
    let mut name = Vec::new();
    for token in rest.split_whitespace() {
        let is_key = token.split_once(':').is_some_and(|(key, _)| {
            !key.is_empty() && key.chars().all(|c| c.is_ascii_uppercase() || c == '_')
        });
        if is_key {
            break;
        }
        name.push(token);
    }
    name.join(" ")
}

/// Whatever the firmware does with a window's stale lines, a stream whose resend requests pass
/// this share of the lines sent (after [`WINDOW_FALLBACK_AFTER`] lines; 1 % line corruption
/// makes about 1 %) goes on with one line in flight, which no flush can cut.
pub const WINDOW_FALLBACK_SHARE: f64 = 0.05;
pub const WINDOW_FALLBACK_AFTER: usize = 200;

/// The longest answer latency a resend waits for: a printer slower than this to answer a line
/// is not one a window can keep busy anyway (the fallback to one line in flight takes over).
pub const MAX_ANSWER_LATENCY: Duration = Duration::from_millis(100);

/// The window for firmware that rejects the unnumbered tail of a cut line. Measured with 1 % of
/// lines corrupted (`microfab bench streaming`, 10,000 lines at 115,200 baud): 3 keeps the wire
/// busiest on Prusa-Firmware (0.90 of it with the lines' framing, against 0.79-0.85 for 2,
/// which idles on every round trip that takes longer than a line, and 0.84 for 4, where each
/// line error throws away more stale lines). Marlin's command queue holds 4 (`BUFSIZE`), so 3
/// unanswered lines always fit and never overrun its receive buffer.
pub const TAIL_REJECTING_WINDOW: usize = 3;

/// Marlin 1.0 and Sprinter answer `ok` for G0-G3 when they read the line into their queue
/// (`get_command`), not when they have run it: that `ok` overtakes those of the commands queued
/// ahead of it, a probe among them.
pub fn acknowledges_moves_on_read(firmware: Option<&str>) -> bool {
    let name = firmware.unwrap_or("");
    name.starts_with("Sprinter") || is_marlin_1_0(name)
}

fn is_marlin_1_0(name: &str) -> bool {
    name.starts_with("Marlin V1") && name.contains("Sprinter/grbl mashup")
}

/// G0-G3, which Marlin 1.0 acknowledges as it reads them.
fn is_move(line: &str) -> bool {
    matches!(command_word(line).as_str(), "G0" | "G1" | "G2" | "G3")
}

/// Marlin 1.1/2.x (Prusa-Firmware-Buddy is Marlin 2) checks only lines that start with `N` and
/// runs the tail of a line cut by its receive-buffer flush (see the module documentation). Any
/// name starting with `Marlin` but Marlin 1.0's report counts: vendors' builds print any version.
pub fn runs_cut_tails(firmware: Option<&str>) -> bool {
    let name = firmware.unwrap_or("");
    (name.starts_with("Marlin") && !is_marlin_1_0(name)) || name.starts_with("Prusa-Firmware-Buddy")
}

/// The line window for a firmware identified by its `FIRMWARE_NAME` ([`Protocol::firmware`]):
/// [`TAIL_REJECTING_WINDOW`] for the families that reject the unnumbered tail of a line cut by
/// their receive-buffer flush (see the module documentation), 1 for Marlin 1.1/2.x, which runs
/// it, and for anything else.
pub fn auto_line_window(firmware: Option<&str>) -> usize {
    let name = firmware.unwrap_or("");
    // Not `Prusa-Firmware-Buddy` (MK4, XL, MINI): that is Marlin 2.
    let prusa_firmware = name.starts_with("Prusa-Firmware ");
    // Early Marlin still called itself `Sprinter/grbl mashup for gen6`.
    let sprinter = name.starts_with("Sprinter");
    // Marlin 1.0.x reports `Marlin V1; Sprinter/grbl mashup for gen6`. From 1.1 on the name is
    // `Marlin <version>`, and vendors' builds of Marlin 1.1/2.x print any version there
    // (`Marlin 1.0.0 (Github)`, `Marlin V1.1.4 (...)`): the version number proves nothing.
    let marlin_1_0 = is_marlin_1_0(name);
    if prusa_firmware || sprinter || marlin_1_0 {
        TAIL_REJECTING_WINDOW
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_auto_window_is_above_1_only_for_firmware_that_rejects_a_cut_tail() {
        let cases = [
            (
                "FIRMWARE_NAME:Prusa-Firmware 3.13.3 based on Marlin \
                 FIRMWARE_URL:https://github.com/prusa3d/Prusa-Firmware PROTOCOL_VERSION:1.0 \
                 MACHINE_TYPE:Prusa i3 MK3S EXTRUDER_COUNT:1 UUID:00000000-0000-0000-0000-000000000000",
                TAIL_REJECTING_WINDOW,
            ),
            (
                "FIRMWARE_NAME:Prusa-Firmware 3.14.1+8237_abcdef0 based on Marlin \
                 FIRMWARE_URL:https://github.com/prusa3d/Prusa-Firmware PROTOCOL_VERSION:1.0",
                TAIL_REJECTING_WINDOW,
            ),
            (
                "FIRMWARE_NAME:Marlin V1.0.2; Sprinter/grbl mashup for gen6 \
                 FIRMWARE_URL:https://github.com/prusa3d/Prusa-i3-Plus/ PROTOCOL_VERSION:1.0 \
                 MACHINE_TYPE:Prusa i3 EXTRUDER_COUNT:1 UUID:00000000-0000-0000-0000-000000000000",
                TAIL_REJECTING_WINDOW,
            ),
            (
                "FIRMWARE_NAME:Marlin V1; Sprinter/grbl mashup for gen6 \
                 FIRMWARE_URL:https://www.github.com/tenlog PROTOCOL_VERSION:1.0.0 \
                 MACHINE_TYPE:TL 3D Printer EXTRUDER_COUNT:2",
                TAIL_REJECTING_WINDOW,
            ),
            (
                "FIRMWARE_NAME:Sprinter FIRMWARE_URL:http%%3A/github.com/kliment/Sprinter/ \
                 PROTOCOL_VERSION:1.0 MACHINE_TYPE:Mendel EXTRUDER_COUNT:1",
                TAIL_REJECTING_WINDOW,
            ),
            (
                "FIRMWARE_NAME:Sprinter/grbl mashup for gen6 FIRMWARE_URL:http://www.mendel-parts.com \
                 PROTOCOL_VERSION:1.0 MACHINE_TYPE:Mendel EXTRUDER_COUNT:1",
                TAIL_REJECTING_WINDOW,
            ),
            (
                "FIRMWARE_NAME:Marlin bugfix-2.1.x (Jun 12 2023 12:00:00) \
                 SOURCE_CODE_URL:github.com/MarlinFirmware/Marlin PROTOCOL_VERSION:1.0 \
                 MACHINE_TYPE:3D Printer EXTRUDER_COUNT:1 UUID:cede2a2f-41a2-4748-9b12-c55c62f367ff",
                1,
            ),
            (
                "FIRMWARE_NAME:Marlin 2.1.2 (microfab simulator) \
                 SOURCE_CODE_URL:github.com/MarlinFirmware/Marlin PROTOCOL_VERSION:1.0",
                1,
            ),
            (
                "FIRMWARE_NAME:Marlin 1.1.9.1 (Github) SOURCE_CODE_URL:https://github.com/MarlinFirmware/Marlin \
                 PROTOCOL_VERSION:1.0 MACHINE_TYPE:3D Printer EXTRUDER_COUNT:1",
                1,
            ),
            (
                "FIRMWARE_NAME:Marlin 1.1.0-RC8 (Github) SOURCE_CODE_URL:https://github.com/MarlinFirmware/Marlin \
                 PROTOCOL_VERSION:1.0 MACHINE_TYPE:ANYCUBIC EXTRUDER_COUNT:1",
                1,
            ),
            // A vendor's Marlin 1.1/2.x (Kingroon KP3S stock) claiming 1.0.0.
            (
                "FIRMWARE_NAME:Marlin 1.0.0 (Github) SOURCE_CODE_URL:https://github.com/MarlinFirmware/Marlin \
                 PROTOCOL_VERSION:1.0 MACHINE_TYPE:3D Printer EXTRUDER_COUNT:2",
                1,
            ),
            (
                "FIRMWARE_NAME:Marlin V1.1.4 (Jun 28 2022 14:16:31) \
                 SOURCE_CODE_URL:github.com/MarlinFirmware/Marlin PROTOCOL_VERSION:1.0 \
                 MACHINE_TYPE:Ender-3 V2 Neo EXTRUDER_COUNT:1",
                1,
            ),
            (
                "FIRMWARE_NAME:Prusa-Firmware-Buddy 5.1.0 (Github) \
                 SOURCE_CODE_URL:https://github.com/prusa3d/Prusa-Firmware-Buddy PROTOCOL_VERSION:1.0 \
                 MACHINE_TYPE:Prusa-MK4 EXTRUDER_COUNT:1",
                1,
            ),
            (
                "FIRMWARE_NAME:Klipper FIRMWARE_VERSION:v0.12.0-60-g0665dc89",
                1,
            ),
            ("FIRMWARE_NAME:", 1),
            (
                "FIRMWARE_NAME:Pr\u{fffd}sa-Firmware 3.13.3 based on Marlin",
                1,
            ),
            (
                "FIRMWARE_NAME:Marlin V\u{fffd}; Sprinter/grbl mashup for gen6",
                1,
            ),
        ];
        for (line, window) in cases {
            let name = firmware_name(line);
            assert_eq!(auto_line_window(Some(&name)), window, "{name}");
        }
        assert_eq!(auto_line_window(None), 1, "no answer to M115");
    }

    #[test]
    fn a_configured_window_is_refused_on_firmware_that_runs_cut_tails() {
        let cases = [
            (
                "Marlin 2.1.2 (Mar 1 2024) SOURCE_CODE_URL:github.com/MarlinFirmware/Marlin",
                1,
            ),
            (
                "Prusa-Firmware-Buddy 5.1.0 (Github) PROTOCOL_VERSION:1.0",
                1,
            ),
            (
                "Prusa-Firmware 3.13.3 based on Marlin PROTOCOL_VERSION:1.0",
                4,
            ),
            (
                "Marlin V1; Sprinter/grbl mashup for gen6 PROTOCOL_VERSION:1.0",
                4,
            ),
            ("Klipper FIRMWARE_VERSION:v0.12.0", 4),
        ];
        for (info, window) in cases {
            let settings = Settings {
                in_flight: Some(4),
                ..Settings::default()
            };
            let now = Instant::now();
            let mut protocol = Protocol::new(settings, now);
            protocol.receive(b"ok\n", now);
            protocol.receive(format!("FIRMWARE_NAME:{info}\nok\n").as_bytes(), now);
            assert!(protocol.is_ready(), "{info}");
            assert_eq!(protocol.line_window(), window, "{info}");
            let refused = u64::from(window == 1);
            let traffic = protocol.traffic();
            assert_eq!(traffic.counters.window_fallbacks, refused, "{info}");
            let notes = traffic.lines().filter(|l| l.direction == Direction::Note);
            assert_eq!(notes.count() as u64, refused, "{info}");
        }
    }
}
