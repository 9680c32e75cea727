//! Marlin's serial command handling and enough of its machine to answer like it: bytes and time
//! in, bytes out. The PTY runner ([`super::run`]) moves the bytes.
//!
//! Modelled on Marlin 2.1 (`gcode/queue.cpp`, `gcode/gcode.cpp`, `module/temperature.cpp`):
//! - a receive buffer of [`FirmwareConfig::rx_buffer`] bytes (bytes beyond it are lost, as on
//!   a UART) and a command ring of `BUFSIZE` ([`FirmwareConfig::bufsize`]) lines; serial input
//!   is only read while the ring has room and no command is blocking;
//! - line checks exactly as `get_serial_commands`: a line starting with `N` must carry
//!   `last_N + 1` (unless it contains `M110`, whose own `N` is then taken at once) and a
//!   matching `*` XOR checksum; a failure prints `Error:<why>, Last Line: <last_N>`, **empties
//!   the receive buffer**, prints `Resend: <last_N + 1>` and `ok`. Lines without `N` are
//!   accepted unchecked, also when they carry a `*` checksum (the tail of a numbered line cut
//!   by that flush), unless [`FirmwareConfig::unnumbered_checksum`] models an older firmware
//!   that rejects them (M115 then names that firmware, so a host can choose its line window);
//! - `ok` when a command finishes (a move: when it is in the planner, whose
//!   [`FirmwareConfig::block_buffer`] blocks drain in machine time); M105 answers `ok T:...`;
//!   `ADVANCED_OK` optional;
//! - blocking commands (M109, M190, M400, G4, G28, G29, a full planner) print
//!   `echo:busy: processing` every 2 s (`HOST_KEEPALIVE_FEATURE`, unless
//!   [`FirmwareConfig::host_keepalive`] is off, as in builds without it), and M109/M190 a
//!   temperature line every second; M155 auto-reports;
//! - optionally, a share of the `ok`s lost on the way ([`FirmwareConfig::drop_ok`]);
//! - output written byte by byte at the baud rate, as AVR boards do (`MarlinSerial::write`
//!   waits for the UART; `TX_BUFFER_SIZE` is 0 by default): the receive buffer is emptied after
//!   a line error's `Error:` line has gone out, so what arrives while it is written is lost too,
//!   unless [`FirmwareConfig::tx_buffer`] models a board that buffers its output;
//! - `M108`, `M112` and `M410` are seen as soon as they arrive (`EMERGENCY_PARSER`);
//! - boot prints `start` and a banner.
//!
//! Every command it executes is appended to the execution log, without line number and checksum.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use microfab_rng::SplitMix64;

use self::command::{Words, strip_number_and_checksum, strtol};
use self::physics::{AMBIENT, Heater, arc_length, heat_and_wait};
use super::fault::{Fault, FaultKind, Trigger};

const MAX_CMD_SIZE: usize = 96;
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(2);
const WAIT_REPORT_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq)]
pub struct FirmwareConfig {
    /// Command ring size (Marlin's `BUFSIZE`).
    pub bufsize: usize,
    /// Receive buffer size in bytes (`RX_BUFFER_SIZE`; 128 on AVR).
    pub rx_buffer: usize,
    /// Planner blocks (`BLOCK_BUFFER_SIZE`).
    pub block_buffer: usize,
    /// Machine seconds per wall second: moves and heating run this much faster.
    pub time_scale: f64,
    pub advanced_ok: bool,
    /// Marlin 2.x prints `ok` after `Resend:`; some builds do not.
    pub ok_after_resend: bool,
    pub unnumbered_checksum: UnnumberedChecksum,
    /// The board buffers its output (`TX_BUFFER_SIZE` > 0, or native USB): writes return at
    /// once, so a line error empties the receive buffer as soon as the line is read.
    pub tx_buffer: bool,
    /// `busy: processing` every 2 s while a command blocks (`HOST_KEEPALIVE_FEATURE`).
    pub host_keepalive: bool,
    /// One pass of the firmware's main loop: it reads its receive buffer and runs commands only
    /// at the start of each pass, so a line waits up to this long for its answer. Zero answers
    /// as bytes arrive. Real boards spend from under a millisecond to tens of milliseconds per
    /// pass (a graphical LCD's redraw, heater management, a full planner).
    pub loop_time: Duration,
    /// What the firmware writes reaches the host this much later: a USB-serial bridge that
    /// forwards the board's output in packets on a timer (an FTDI chip's latency timer, 16 ms by
    /// default; an ATmega16U2 bridge's few milliseconds), or an emulation behind a slow pipe.
    pub answer_delay: Duration,
    pub drop_ok: Option<DropOk>,
    pub faults: Vec<Fault>,
}

/// A share of the plain `ok`s that finish a command never reaches the host (noise on the way
/// back, a USB stack dropping a packet), at random from a seed.
#[derive(Debug, Clone, PartialEq)]
pub struct DropOk {
    /// 0.01 = 1 %.
    pub share: f64,
    /// Only the `ok`s of this command (`M400`), or of any.
    pub command: Option<String>,
    pub seed: u64,
}

/// What the firmware does with a line that carries a `*` checksum but no leading `N`: in
/// practice the tail of a numbered line cut by the receive-buffer flush after a line error
/// (`G1 X5*33` from `N124 G1 X5*33`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum UnnumberedChecksum {
    /// Marlin 1.1 and 2.x: `get_serial_commands` checks only lines that start with `N`, and
    /// `GCodeParser::parse` cuts the line at `*` and runs the rest.
    #[default]
    Run,
    /// Marlin 1.0 and Sprinter: `Error:No Line Number with checksum, Last Line: <n>`; the line
    /// is dropped with no resend request and no `ok`. These also answer `ok` for G0-G3 when
    /// they read the line into their queue, not when it has run (`get_command`).
    Reject,
    /// Prusa-Firmware (`cmdqueue.cpp`): the same error, handled like any line error (receive
    /// buffer emptied, `Resend: <n + 1>`, `ok`).
    RejectAndResend,
}

impl UnnumberedChecksum {
    /// The start of M115's report for the family that handles a cut tail this way, so that a
    /// host can tell the families apart: name, version and source URL.
    pub fn firmware_report(self) -> &'static str {
        match self {
            UnnumberedChecksum::Run => {
                "Marlin 2.1.2 (microfab simulator) SOURCE_CODE_URL:github.com/MarlinFirmware/Marlin"
            }
            UnnumberedChecksum::Reject => {
                "Marlin V1.0.2; Sprinter/grbl mashup for gen6 \
                 FIRMWARE_URL:https://github.com/MarlinFirmware/Marlin"
            }
            UnnumberedChecksum::RejectAndResend => {
                "Prusa-Firmware 3.13.3 based on Marlin \
                 FIRMWARE_URL:https://github.com/prusa3d/Prusa-Firmware"
            }
        }
    }
}

impl Default for FirmwareConfig {
    fn default() -> Self {
        FirmwareConfig {
            bufsize: 4,
            rx_buffer: 128,
            block_buffer: 16,
            time_scale: 1.0,
            advanced_ok: false,
            ok_after_resend: true,
            unnumbered_checksum: UnnumberedChecksum::default(),
            tx_buffer: false,
            host_keepalive: true,
            loop_time: Duration::ZERO,
            answer_delay: Duration::ZERO,
            drop_ok: None,
            faults: Vec::new(),
        }
    }
}

/// One executed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Executed {
    /// The `N` it came with, if any.
    pub line_number: Option<i64>,
    /// The command without line number and checksum: `G1 X10`.
    pub command: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Wait {
    /// Done at once.
    None,
    Until(Instant),
    PlannerSpace,
    PlannerEmpty,
    Hotend,
    Bed,
    /// M0/M1: until M108.
    User,
}

#[derive(Debug, Clone)]
struct Running {
    executed: Executed,
    wait: Wait,
    /// A move waiting for planner space, queued when there is room.
    pending_move: Option<Duration>,
    reply: Reply,
    swallow_ok: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum Reply {
    Ok,
    /// `ok T:...` (M105).
    OkWithTemperatures,
    /// An error line, then `ok`.
    ErrorThenOk(String),
}

#[derive(Debug)]
pub struct Firmware {
    config: FirmwareConfig,
    faults: Vec<(Fault, bool)>,
    started: Instant,
    now: Instant,
    rx: VecDeque<u8>,
    rx_overflows: u64,
    /// When the main loop's next pass starts ([`FirmwareConfig::loop_time`]).
    next_pass: Instant,
    /// One byte's time on the wire when writes block until the byte is out; zero with a TX
    /// buffer.
    tx_byte_time: Duration,
    /// When everything written so far is out.
    tx_free_at: Instant,
    /// A line error empties the receive buffer once its `Error:` line is out: bytes arriving
    /// before then are lost.
    flush_until: Option<Instant>,
    line: Vec<u8>,
    in_comment: bool,
    last_n: i64,
    /// Accepted lines: their number, text, and whether their `ok` went out when they were read.
    ring: VecDeque<(Option<i64>, String, bool)>,
    running: Option<Running>,
    planner: VecDeque<Instant>,
    position: [f64; 3],
    feedrate: f64,
    relative: bool,
    hotend: Heater,
    bed: Heater,
    killed: bool,
    /// Locked up (a hang fault) until then; the watchdog resets the board at that time.
    hung_until: Option<Instant>,
    last_keepalive: Instant,
    last_wait_report: Instant,
    autoreport: Option<(Duration, Instant)>,
    output: Vec<u8>,
    /// Output on its way to the host ([`FirmwareConfig::answer_delay`]): when it arrives.
    delayed_output: VecDeque<(Instant, Vec<u8>)>,
    log: Vec<Executed>,
    resets: u64,
    /// The last bytes received, for a command the emergency parser sees across two chunks.
    emergency_tail: Vec<u8>,
    drop_ok_rng: SplitMix64,
    oks_dropped: u64,
}

impl Firmware {
    /// A board that has just booted, on a serial link at `baud`: `start` and the banner are
    /// already in its output.
    pub fn new(config: FirmwareConfig, baud: u32, now: Instant) -> Firmware {
        let faults = config.faults.iter().cloned().map(|f| (f, false)).collect();
        let tx_byte_time = if config.tx_buffer {
            Duration::ZERO
        } else {
            Duration::from_secs(10) / baud.max(1)
        };
        let drop_ok_seed = config.drop_ok.as_ref().map_or(0, |drop| drop.seed);
        let mut firmware = Firmware {
            tx_byte_time,
            tx_free_at: now,
            flush_until: None,
            config,
            faults,
            started: now,
            now,
            rx: VecDeque::new(),
            rx_overflows: 0,
            next_pass: now,
            line: Vec::new(),
            in_comment: false,
            last_n: 0,
            ring: VecDeque::new(),
            running: None,
            planner: VecDeque::new(),
            position: [0.0; 3],
            feedrate: 1500.0,
            relative: false,
            hotend: Heater {
                actual: AMBIENT,
                target: 0.0,
                rate: 2.0,
            },
            bed: Heater {
                actual: AMBIENT,
                target: 0.0,
                rate: 1.0,
            },
            killed: false,
            hung_until: None,
            last_keepalive: now,
            last_wait_report: now,
            autoreport: None,
            output: Vec::new(),
            delayed_output: VecDeque::new(),
            log: Vec::new(),
            resets: 0,
            emergency_tail: Vec::new(),
            drop_ok_rng: SplitMix64::new(drop_ok_seed),
            oks_dropped: 0,
        };
        firmware.boot();
        firmware
    }

    /// Commands executed so far, in order.
    pub fn log(&self) -> &[Executed] {
        &self.log
    }

    /// The last line number accepted.
    pub fn last_line(&self) -> i64 {
        self.last_n
    }

    pub fn resets(&self) -> u64 {
        self.resets
    }

    /// `ok`s lost to [`FirmwareConfig::drop_ok`].
    pub fn oks_dropped(&self) -> u64 {
        self.oks_dropped
    }

    /// The host opened the port and DTR reset the board (AVR boards with an auto-reset
    /// circuit): the bootloader runs for `boot_time`, deaf and silent, then the firmware starts.
    pub fn reset_by_dtr(&mut self, boot_time: Duration, now: Instant) {
        self.advance_clock(now);
        self.hang(boot_time.as_secs_f64());
    }

    /// Bytes lost to a full receive buffer.
    pub fn rx_overflows(&self) -> u64 {
        self.rx_overflows
    }

    /// What has reached the host by the firmware's clock (the last `receive` or `poll`).
    pub fn take_output(&mut self) -> Vec<u8> {
        while let Some((at, bytes)) = self.delayed_output.front_mut()
            && *at <= self.now
        {
            self.output.append(bytes);
            self.delayed_output.pop_front();
        }
        std::mem::take(&mut self.output)
    }

    /// Bytes from the wire. `M108`, `M112` and `M410` act at once (`EMERGENCY_PARSER`).
    pub fn receive(&mut self, bytes: &[u8], now: Instant) {
        self.advance_clock(now);
        if self.hung_until.is_some() {
            self.poll(now);
            return;
        }
        // The emergency parser sees the byte stream, not chunks: a command may straddle two.
        let mut seen = std::mem::take(&mut self.emergency_tail);
        seen.extend_from_slice(bytes);
        let text = String::from_utf8_lossy(&seen).into_owned();
        self.emergency_tail = seen[seen.len().saturating_sub(3)..].to_vec();
        if text.contains("M112") {
            self.kill("Killed (M112)");
        }
        if text.contains("M108")
            && let Some(running) = self.running.as_mut()
            && matches!(running.wait, Wait::Hotend | Wait::Bed | Wait::User)
        {
            running.wait = Wait::None;
        }
        if text.contains("M410") {
            self.planner.clear();
        }
        if self.flush_until.is_some_and(|until| now < until) {
            self.poll(now);
            return;
        }
        for &byte in bytes {
            if self.rx.len() < self.config.rx_buffer {
                self.rx.push_back(byte);
            } else {
                self.rx_overflows += 1;
            }
        }
        self.poll(now);
    }

    /// When [`Firmware::poll`] must run next, if nothing arrives before.
    pub fn next_wakeup(&self) -> Option<Instant> {
        let mut wake: Vec<Instant> = self
            .delayed_output
            .front()
            .map(|(at, _)| *at)
            .into_iter()
            .collect();
        if let Some(until) = self.hung_until {
            wake.push(until);
            return wake.into_iter().min();
        }
        if let Some(running) = &self.running {
            if self.config.host_keepalive {
                wake.push(self.last_keepalive + KEEPALIVE_INTERVAL);
            }
            match running.wait {
                Wait::Until(at) => wake.push(at),
                Wait::PlannerSpace | Wait::PlannerEmpty => {
                    wake.extend(self.planner.front().copied());
                }
                Wait::Hotend | Wait::Bed => {
                    wake.push(self.last_wait_report + WAIT_REPORT_INTERVAL);
                    wake.push(self.now + Duration::from_millis(50));
                }
                Wait::None | Wait::User => {}
            }
        }
        if let Some((interval, last)) = self.autoreport {
            wake.push(last + interval);
        }
        if !self.rx.is_empty() || !self.ring.is_empty() {
            wake.push(self.next_pass);
        }
        wake.extend(self.planner.front().copied());
        for (fault, fired) in &self.faults {
            if let (false, true, Trigger::Time(secs)) =
                (fired, is_immediate(&fault.kind), fault.trigger)
            {
                wake.push(self.started + Duration::from_secs_f64(secs));
            }
        }
        wake.into_iter().min()
    }

    /// Run the firmware's main loop up to `now`.
    pub fn poll(&mut self, now: Instant) {
        self.advance_clock(now);
        if let Some(until) = self.hung_until {
            if now < until {
                return;
            }
            self.hung_until = None;
            self.reset();
        }
        self.fire_time_faults();
        if self.killed {
            self.rx.clear();
            return;
        }
        if now < self.next_pass {
            return;
        }
        self.next_pass = self.pass_after(now);
        if let Some((interval, last)) = self.autoreport
            && now >= last + interval
        {
            let report = self.temperature_report();
            self.say(&report);
            self.autoreport = Some((interval, now));
        }
        loop {
            self.read_serial();
            if !self.step_command() {
                break;
            }
        }
        if self.config.host_keepalive
            && self.running.is_some()
            && now >= self.last_keepalive + KEEPALIVE_INTERVAL
        {
            let busy = match self.running.as_ref().map(|r| &r.wait) {
                Some(Wait::User) => "echo:busy: paused for user",
                _ => "echo:busy: processing",
            };
            self.say(busy);
            self.last_keepalive = now;
        }
    }

    /// The start of the first main-loop pass after `now`: passes follow each other every
    /// [`FirmwareConfig::loop_time`] from boot.
    fn pass_after(&self, now: Instant) -> Instant {
        let period = self.config.loop_time;
        if period.is_zero() {
            return now;
        }
        let passes = now.duration_since(self.started).as_nanos() / period.as_nanos() + 1;
        self.started + period * passes as u32
    }

    fn advance_clock(&mut self, now: Instant) {
        if now <= self.now {
            return;
        }
        let machine_seconds = now.duration_since(self.now).as_secs_f64() * self.config.time_scale;
        self.hotend.advance(machine_seconds);
        self.bed.advance(machine_seconds);
        self.now = now;
        while self.planner.front().is_some_and(|&end| end <= now) {
            self.planner.pop_front();
        }
    }

    fn boot(&mut self) {
        self.say("start");
        self.say("echo:Marlin 2.1.2 (microfab simulator)");
        self.say("echo: Last Updated: 2024-03-01 | Author: (microfab)");
        self.say("echo:Free Memory: 4000  PlannerBufferBytes: 1232");
        let bufsize = format!("echo:  BUFSIZE: {}", self.config.bufsize);
        self.say(&bufsize);
    }

    /// Power cycle or watchdog reset: everything volatile is lost.
    pub fn reset(&mut self) {
        self.rx.clear();
        self.flush_until = None;
        self.line.clear();
        self.in_comment = false;
        self.last_n = 0;
        self.ring.clear();
        self.running = None;
        self.planner.clear();
        self.hotend.target = 0.0;
        self.bed.target = 0.0;
        self.killed = false;
        self.autoreport = None;
        self.resets += 1;
        self.boot();
    }

    /// Locked up: input is lost, nothing is said, until the watchdog resets the board.
    fn hang(&mut self, seconds: f64) {
        self.hung_until = Some(self.now + Duration::from_secs_f64(seconds));
        self.rx.clear();
    }

    fn kill(&mut self, why: &str) {
        if self.killed {
            return;
        }
        self.say(&format!("Error:{why}"));
        if !why.contains("kill() called") {
            self.say("Error:Printer halted. kill() called!");
        }
        self.killed = true;
        self.ring.clear();
        self.running = None;
        self.planner.clear();
        self.hotend.target = 0.0;
        self.bed.target = 0.0;
    }

    fn say(&mut self, line: &str) {
        let mut bytes = line.as_bytes().to_vec();
        bytes.push(b'\n');
        if self.config.answer_delay.is_zero() {
            self.output.append(&mut bytes);
        } else {
            self.delayed_output
                .push_back((self.now + self.config.answer_delay, bytes));
        }
        self.tx_free_at =
            self.tx_free_at.max(self.now) + self.tx_byte_time * (line.len() as u32 + 1);
    }

    /// `get_serial_commands`: read while the ring has room and nothing blocks.
    fn read_serial(&mut self) {
        while self.ring.len() < self.config.bufsize && self.running.is_none() && !self.killed {
            let Some(byte) = self.rx.pop_front() else {
                return;
            };
            if byte == b'\n' || byte == b'\r' {
                self.in_comment = false;
                if self.line.is_empty() {
                    continue;
                }
                let line = String::from_utf8_lossy(&std::mem::take(&mut self.line)).into_owned();
                self.accept_line(line);
            } else if self.in_comment {
                continue;
            } else if byte == b';' {
                self.in_comment = true;
            } else {
                self.line.push(byte);
                if self.line.len() >= MAX_CMD_SIZE - 1 {
                    self.in_comment = true;
                }
            }
        }
    }

    fn accept_line(&mut self, line: String) {
        let command = line.trim_start_matches(' ');
        let mut number = None;
        if command.starts_with('N') {
            let is_m110 = command.contains("M110");
            let n_at = if is_m110 {
                command
                    .get(4..)
                    .and_then(|rest| rest.find('N'))
                    .map_or(0, |i| i + 4)
            } else {
                0
            };
            let gcode_n = strtol(&command[n_at + 1..]);
            if gcode_n != self.last_n + 1 && !is_m110 {
                return self.line_error("Line Number is not Last Line Number+1, Last Line: ");
            }
            match command.rfind('*') {
                Some(star) => {
                    let sum = command.as_bytes()[..star].iter().fold(0u8, |a, b| a ^ b);
                    if strtol(&command[star + 1..]) != i64::from(sum) {
                        return self.line_error("checksum mismatch, Last Line: ");
                    }
                }
                None => return self.line_error("No Checksum with line number, Last Line: "),
            }
            self.last_n = gcode_n;
            number = Some(gcode_n);
        } else if command.contains('*') {
            const NO_LINE_NUMBER: &str = "No Line Number with checksum, Last Line: ";
            match self.config.unnumbered_checksum {
                UnnumberedChecksum::Run => {}
                UnnumberedChecksum::Reject => {
                    let report = format!("Error:{NO_LINE_NUMBER}{}", self.last_n);
                    self.say(&report);
                    return;
                }
                UnnumberedChecksum::RejectAndResend => return self.line_error(NO_LINE_NUMBER),
            }
        }
        if self
            .take_line_fault(number, |k| *k == FaultKind::Reset)
            .is_some()
        {
            self.reset();
            return;
        }
        if let Some(FaultKind::Hang { seconds }) =
            self.take_line_fault(number, |k| matches!(k, FaultKind::Hang { .. }))
        {
            self.hang(seconds);
            return;
        }
        // Marlin 1.0 and Sprinter acknowledge a move as they read it (`get_command`), not when
        // they have planned it: its `ok` overtakes those of the commands still queued before it.
        let acknowledged = self.config.unnumbered_checksum == UnnumberedChecksum::Reject
            && matches!(
                Words::parse(&strip_number_and_checksum(command))
                    .code
                    .as_str(),
                "G0" | "G1" | "G2" | "G3"
            );
        if acknowledged {
            self.say("ok");
        }
        self.ring
            .push_back((number, command.to_string(), acknowledged));
    }

    fn line_error(&mut self, message: &str) {
        let report = format!("Error:{message}{}", self.last_n);
        self.say(&report);
        // `gcode_line_error` empties the receive buffer before asking for the resend, once the
        // error line is written.
        self.rx.clear();
        self.flush_until = Some(self.tx_free_at);
        self.say(&format!("Resend: {}", self.last_n + 1));
        if self.config.ok_after_resend {
            self.say("ok");
        }
    }

    /// Start the next command or finish the running one. `true` if something changed.
    fn step_command(&mut self) -> bool {
        if self.running.is_none() {
            let Some((number, text, acknowledged)) = self.ring.pop_front() else {
                return false;
            };
            let mut running = self.start(number, &text);
            running.swallow_ok |= acknowledged;
            self.running = Some(running);
            self.last_keepalive = self.now;
            self.last_wait_report = self.now;
        }
        let now = self.now;
        let Some(running) = self.running.as_mut() else {
            return false;
        };
        let done = match running.wait {
            Wait::None => true,
            Wait::Until(at) => now >= at,
            Wait::PlannerSpace => self.planner.len() < self.config.block_buffer,
            Wait::PlannerEmpty => self.planner.is_empty(),
            Wait::Hotend => self.hotend.reached(),
            Wait::Bed => self.bed.reached(),
            Wait::User => false,
        };
        if !done {
            if matches!(running.wait, Wait::Hotend | Wait::Bed)
                && now >= self.last_wait_report + WAIT_REPORT_INTERVAL
            {
                self.last_wait_report = now;
                let report = format!(" {} W:?", self.temperature_report());
                self.say(&report);
            }
            return false;
        }
        let Some(running) = self.running.take() else {
            return false;
        };
        if let Some(duration) = running.pending_move {
            let start = self.planner.back().copied().unwrap_or(now).max(now);
            self.planner.push_back(start + duration);
        }
        if !running.executed.command.is_empty() {
            // Unknown commands are acknowledged, not executed.
            self.log.push(running.executed.clone());
        }
        let ok = self.ok_line(running.executed.line_number);
        match running.reply {
            Reply::Ok => {}
            Reply::OkWithTemperatures => {
                let report = format!("ok {}", self.temperature_report());
                self.say(&report);
                return true;
            }
            Reply::ErrorThenOk(error) => self.say(&format!("Error:{error}")),
        }
        if !running.swallow_ok && !self.drops_ok(&running.executed.command) {
            self.say(&ok);
        }
        true
    }

    fn drops_ok(&mut self, command: &str) -> bool {
        let Some(drop) = &self.config.drop_ok else {
            return false;
        };
        let word = command.split_whitespace().next().unwrap_or("");
        if drop.command.as_deref().is_some_and(|only| only != word) {
            return false;
        }
        let dropped = self.drop_ok_rng.chance(drop.share);
        self.oks_dropped += u64::from(dropped);
        dropped
    }

    fn ok_line(&self, number: Option<i64>) -> String {
        if !self.config.advanced_ok {
            return "ok".into();
        }
        let n = number.map(|n| format!(" N{n}")).unwrap_or_default();
        let planner_free = self
            .config
            .block_buffer
            .saturating_sub(self.planner.len() + 1);
        let buffer_free = self.config.bufsize - self.ring.len();
        format!("ok{n} P{planner_free} B{buffer_free}")
    }
}

/// Faults that happen at their time; the others wait for the next command.
fn is_immediate(kind: &FaultKind) -> bool {
    matches!(
        kind,
        FaultKind::Reset | FaultKind::Kill | FaultKind::Hang { .. }
    )
}

mod command;
mod execute;
mod faults;
mod physics;
#[cfg(test)]
mod tests;
