//! The emulated GRBL 1.1 controller, byte by byte, without I/O: the wire loop in `mod.rs` feeds
//! it received bytes and the time, and sends what it prints.
//!
//! Modelled after GRBL's documented behaviour (interface.md, commands.md): a 128-byte serial
//! receive buffer that loses bytes when full; real-time commands (`?`, `!`, `~`, Ctrl-X) taken
//! out of the stream on arrival; a line buffer of 80 characters (whitespace and comments
//! stripped, letters upper-cased, `error:11` on overflow); a 15-block planner whose filling
//! stops the reading of the receive buffer; `ok`/`error:N` per line; alarms that lock G-code
//! out until `$X`/`$H`; hard and soft limit alarms after which GRBL answers nothing (not even
//! `?`) until a soft reset (`[MSG:Reset to continue]`, protocol.c); feed holds and the safety
//! door (`Door:0..2`) from outside the link; the welcome banner after every reset.
//!
//! Every block leaves the planner in order and is then written to the execution log: the
//! record the tests compare with the program.

use std::collections::VecDeque;
use std::time::Duration;

use microfab_drivers::grbl::gcode::{G_CODES, M_CODES, Word, WordError, tenths, words};
use tokio::time::Instant;

use super::fault::{Fault, FaultKind, Trigger};

pub const BANNER: &str = "\r\nGrbl 1.1h ['$' for help]\r\n";
const UNLOCK_HINT: &str = "[MSG:'$H'|'$X' to unlock]\r\n";
const RESET_HINT: &str = "[MSG:Reset to continue]";

#[derive(Debug, Clone)]
pub struct FirmwareConfig {
    pub rx_buffer: usize,
    pub line_buffer: usize,
    pub planner_blocks: usize,
    /// Machine seconds per wall second.
    pub time_scale: f64,
    /// `$22=1`: boot locked in alarm until homed or unlocked.
    pub homing_lock: bool,
    /// Bootloader delay after a hardware reset or replug; bytes arriving meanwhile are lost.
    pub boot: Duration,
    pub rapid_mm_per_min: f64,
    /// Deceleration time of a feed hold, in machine time.
    pub hold_decel: Duration,
    pub faults: Vec<Fault>,
}

#[derive(Debug, Clone)]
struct Block {
    line: String,
    duration: Duration,
    from: [f64; 3],
    to: [f64; 3],
    motion: bool,
}

#[derive(Debug)]
struct Active {
    block: Block,
    /// Left to run when last resumed.
    remaining: Duration,
    resumed_at: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Hold {
    None,
    Decelerating { until: Instant },
    Complete,
}

/// The safety door's switch while the door suspends the machine.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Door {
    Ajar,
    /// Closed again: a cycle start resumes.
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Modal {
    motion: u16,
    absolute: bool,
    inches: bool,
    feed: Option<f64>,
}

const POWER_ON_MODAL: Modal = Modal {
    motion: 0,
    absolute: true,
    inches: false,
    feed: None,
};

/// What the wire loop must do besides sending bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireAction {
    Disconnect(Duration),
}

#[derive(Debug)]
pub struct Firmware {
    config: FirmwareConfig,
    started: Instant,
    rx: VecDeque<u8>,
    line: Vec<u8>,
    line_overflow: bool,
    in_paren_comment: bool,
    in_semicolon_comment: bool,
    planner: VecDeque<Block>,
    active: Option<Active>,
    /// When the next queued block starts: the end of the previous one, while the planner runs.
    chain_from: Option<Instant>,
    hold: Hold,
    door: Option<Door>,
    alarm: bool,
    /// After a hard or soft limit: everything but a soft reset is ignored.
    reset_required: bool,
    homing_until: Option<Instant>,
    booting_until: Option<Instant>,
    modal: Modal,
    position: [f64; 3],
    planned_position: [f64; 3],
    lines_received: u64,
    faults: Vec<(Fault, bool)>,
    swallow_next_ok: bool,
    reports: u64,
    out: Vec<u8>,
    executed: Vec<String>,
    rx_overflow: u64,
    wire_action: Option<WireAction>,
}

impl Firmware {
    /// Power on: the board boots (bootloader delay), then prints its banner.
    pub fn new(config: FirmwareConfig, now: Instant) -> Firmware {
        let faults = config.faults.iter().map(|&f| (f, false)).collect();
        let mut firmware = Firmware {
            started: now,
            rx: VecDeque::new(),
            line: Vec::new(),
            line_overflow: false,
            in_paren_comment: false,
            in_semicolon_comment: false,
            planner: VecDeque::new(),
            active: None,
            chain_from: None,
            hold: Hold::None,
            door: None,
            alarm: false,
            reset_required: false,
            homing_until: None,
            booting_until: None,
            modal: POWER_ON_MODAL,
            position: [0.0; 3],
            planned_position: [0.0; 3],
            lines_received: 0,
            faults,
            swallow_next_ok: false,
            reports: 0,
            out: Vec::new(),
            executed: Vec::new(),
            rx_overflow: 0,
            wire_action: None,
            config,
        };
        firmware.hardware_reset(now);
        firmware
    }

    // ----- outputs -----

    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    pub fn take_wire_action(&mut self) -> Option<WireAction> {
        self.wire_action.take()
    }

    /// Lines executed since the last call, in order.
    pub fn take_executed(&mut self) -> Vec<String> {
        std::mem::take(&mut self.executed)
    }

    /// Bytes lost because they arrived with the receive buffer full.
    pub fn rx_overflow(&self) -> u64 {
        self.rx_overflow
    }

    pub fn next_wakeup(&self) -> Option<Instant> {
        let motion = match (&self.active, self.hold) {
            (Some(active), Hold::None) => Some(active.resumed_at + active.remaining),
            (None, Hold::None) if !self.planner.is_empty() => {
                Some(self.chain_from.unwrap_or(self.started))
            }
            (_, Hold::Decelerating { until }) => Some(until),
            _ => None,
        };
        let fault = self
            .faults
            .iter()
            .find_map(|(fault, fired)| match fault.trigger {
                Trigger::Time(after) if !fired => Some(self.started + after),
                _ => None,
            });
        [motion, fault, self.homing_until, self.booting_until]
            .into_iter()
            .flatten()
            .min()
    }

    // ----- inputs -----

    /// One byte from the host.
    pub fn receive(&mut self, now: Instant, byte: u8) {
        if self.booting_until.is_some() {
            // The bootloader eats what arrives before the firmware runs.
            return;
        }
        if self.reset_required {
            // GRBL spins in protocol_exec_rt_system until a reset; the rest waits in the receive
            // buffer, which the reset flushes.
            match byte {
                0x18 => self.soft_reset(now),
                0x80.. | b'?' | b'!' | b'~' => {}
                _ if self.rx.len() >= self.config.rx_buffer => self.rx_overflow += 1,
                _ => self.rx.push_back(byte),
            }
            return;
        }
        match byte {
            b'?' => self.status_report(now),
            b'!' => self.feed_hold(now),
            b'~' => self.cycle_start(now),
            0x18 => self.soft_reset(now),
            0x80.. => {}
            _ if self.rx.len() >= self.config.rx_buffer => self.rx_overflow += 1,
            _ => self.rx.push_back(byte),
        }
    }

    /// A fault from outside the wire, now (a test's or the operator's hand on the machine).
    pub fn inject(&mut self, now: Instant, kind: FaultKind) {
        self.fire(now, kind, None);
    }

    /// Let time pass: finish motion, boot, homing; fire time faults; read the receive buffer.
    pub fn advance(&mut self, now: Instant) {
        if let Some(until) = self.booting_until
            && until <= now
        {
            self.booting_until = None;
            self.boot_complete();
        }
        if self.booting_until.is_some() {
            return;
        }
        self.fire_time_faults(now);
        if let Some(until) = self.homing_until
            && until <= now
        {
            self.homing_until = None;
            self.alarm = false;
            self.position = [0.0; 3];
            self.planned_position = [0.0; 3];
            self.reply("ok");
        }
        self.run_motion(now);
        self.read_rx(now);
        self.run_motion(now);
    }

    // ----- motion -----

    fn moving(&self) -> bool {
        self.active.is_some() || !self.planner.is_empty()
    }

    fn scaled(&self, machine: Duration) -> Duration {
        machine.div_f64(self.config.time_scale.max(1e-9))
    }

    fn run_motion(&mut self, now: Instant) {
        loop {
            if let Hold::Decelerating { until } = self.hold
                && until <= now
            {
                self.hold = Hold::Complete;
            }
            if self.hold != Hold::None {
                return;
            }
            if self.active.is_none() {
                let Some(block) = self.planner.pop_front() else {
                    self.chain_from = None;
                    return;
                };
                let start = self.chain_from.map_or(now, |at| at.min(now));
                self.active = Some(Active {
                    remaining: block.duration,
                    resumed_at: start,
                    block,
                });
            }
            let Some(active) = &self.active else { return };
            let end = active.resumed_at + active.remaining;
            if end > now {
                return;
            }
            let done = self.active.take().map(|a| a.block);
            if let Some(block) = done {
                self.position = block.to;
                self.executed.push(block.line);
            }
            self.chain_from = Some(end);
        }
    }

    fn current_position(&self, now: Instant) -> [f64; 3] {
        let Some(active) = &self.active else {
            return self.position;
        };
        let total = active.block.duration.as_secs_f64();
        if total <= 0.0 {
            return active.block.from;
        }
        let left = match self.hold {
            Hold::None => (active.resumed_at + active.remaining)
                .saturating_duration_since(now)
                .as_secs_f64(),
            _ => active.remaining.as_secs_f64(),
        };
        let done = (1.0 - left / total).clamp(0.0, 1.0);
        let (from, to) = (active.block.from, active.block.to);
        [0, 1, 2].map(|axis| from[axis] + (to[axis] - from[axis]) * done)
    }

    // ----- real-time commands -----

    fn state_name(&self) -> &'static str {
        if self.alarm {
            "Alarm"
        } else if self.homing_until.is_some() {
            "Home"
        } else if let Some(door) = self.door {
            match (door, self.hold) {
                (Door::Ajar, Hold::Decelerating { .. }) => "Door:2",
                (Door::Ajar, _) => "Door:1",
                (Door::Closed, _) => "Door:0",
            }
        } else {
            match self.hold {
                Hold::Decelerating { .. } => "Hold:1",
                Hold::Complete => "Hold:0",
                Hold::None if self.moving() => "Run",
                Hold::None => "Idle",
            }
        }
    }

    fn status_report(&mut self, now: Instant) {
        self.run_motion(now);
        let [x, y, z] = self.current_position(now);
        let motion_blocks =
            self.planner.iter().filter(|b| b.motion).count() + usize::from(self.active.is_some());
        let free_blocks = self.config.planner_blocks.saturating_sub(motion_blocks);
        let free_rx = self.config.rx_buffer - self.rx.len();
        let feed = if self.moving() {
            self.modal.feed.unwrap_or(0.0)
        } else {
            0.0
        };
        let mut report = format!(
            "<{}|MPos:{x:.3},{y:.3},{z:.3}|Bf:{free_blocks},{free_rx}|FS:{feed:.0},0",
            self.state_name()
        );
        // GRBL interleaves WCO and overrides into every 10th report or so.
        if self.door == Some(Door::Ajar) {
            report.push_str("|Pn:D");
        }
        if self.reports.is_multiple_of(10) {
            report.push_str("|WCO:0.000,0.000,0.000");
        } else if self.reports % 10 == 1 {
            report.push_str("|Ov:100,100,100");
        }
        self.reports += 1;
        report.push('>');
        self.reply(&report);
    }

    fn feed_hold(&mut self, now: Instant) {
        if self.alarm || self.door.is_some() || self.hold != Hold::None {
            return;
        }
        if self.moving() {
            self.start_hold(now);
        } else {
            // Idle: nothing to slow down, the hold is complete at once (`Hold:0`).
            self.hold = Hold::Complete;
        }
    }

    fn start_hold(&mut self, now: Instant) {
        self.run_motion(now);
        if let Some(active) = &mut self.active {
            active.remaining =
                (active.resumed_at + active.remaining).saturating_duration_since(now);
            active.resumed_at = now;
        }
        self.hold = Hold::Decelerating {
            until: now + self.scaled(self.config.hold_decel),
        };
    }

    /// The door switch opens: a hold that only a closed door and a cycle start end.
    fn open_door(&mut self, now: Instant) {
        if self.alarm {
            return;
        }
        self.reply("[MSG:Check Door]");
        self.door = Some(Door::Ajar);
        if self.moving() && self.hold == Hold::None {
            self.start_hold(now);
        }
    }

    fn close_door(&mut self) {
        if self.door.is_some() {
            self.door = Some(Door::Closed);
        }
    }

    fn cycle_start(&mut self, now: Instant) {
        match self.door {
            Some(Door::Ajar) => return,
            Some(Door::Closed) if matches!(self.hold, Hold::Decelerating { .. }) => return,
            Some(Door::Closed) => {
                self.door = None;
                if self.hold == Hold::None {
                    return;
                }
            }
            None => {}
        }
        if self.hold != Hold::Complete {
            return;
        }
        self.hold = Hold::None;
        if let Some(active) = &mut self.active {
            active.resumed_at = now;
        }
        self.chain_from = Some(now);
    }

    /// Ctrl-X. A reset while moving loses position: GRBL raises `ALARM:3` first.
    fn soft_reset(&mut self, now: Instant) {
        self.run_motion(now);
        let moving =
            self.homing_until.is_some() || (self.moving() && !matches!(self.hold, Hold::Complete));
        if moving {
            self.reply("ALARM:3");
            self.alarm = true;
        }
        self.position = self.current_position(now);
        self.clear_buffers();
        self.reset_required = false;
        self.out.extend_from_slice(BANNER.as_bytes());
        if self.alarm {
            self.out.extend_from_slice(UNLOCK_HINT.as_bytes());
        }
    }

    /// Power cycle or hardware reset: all state lost; the banner follows the boot delay.
    pub fn hardware_reset(&mut self, now: Instant) {
        self.clear_buffers();
        self.out.clear();
        self.position = [0.0; 3];
        self.planned_position = [0.0; 3];
        self.alarm = false;
        self.reset_required = false;
        self.booting_until = Some(now + self.config.boot);
    }

    fn boot_complete(&mut self) {
        self.out.extend_from_slice(BANNER.as_bytes());
        if self.config.homing_lock {
            self.alarm = true;
            self.out.extend_from_slice(UNLOCK_HINT.as_bytes());
        }
    }

    fn clear_buffers(&mut self) {
        self.rx.clear();
        self.line.clear();
        self.line_overflow = false;
        self.in_paren_comment = false;
        self.in_semicolon_comment = false;
        self.planner.clear();
        self.active = None;
        self.chain_from = None;
        self.hold = Hold::None;
        self.door = None;
        self.homing_until = None;
        self.modal = POWER_ON_MODAL;
        self.planned_position = self.position;
        self.swallow_next_ok = false;
    }

    fn raise_alarm(&mut self, now: Instant, code: u16) {
        self.position = self.current_position(now);
        self.clear_buffers();
        self.alarm = true;
        self.reply(&format!("ALARM:{code}"));
        // Hard and soft limits are GRBL's critical events (protocol.c).
        if matches!(code, 1 | 2) {
            self.reply(RESET_HINT);
            self.reset_required = true;
        }
    }

    // ----- faults -----

    fn fire_time_faults(&mut self, now: Instant) {
        let due: Vec<FaultKind> = self
            .faults
            .iter_mut()
            .filter(|(fault, fired)| {
                !fired
                    && matches!(fault.trigger, Trigger::Time(after) if self.started + after <= now)
            })
            .map(|(fault, fired)| {
                *fired = true;
                fault.kind
            })
            .collect();
        for kind in due {
            self.fire(now, kind, None);
        }
    }

    /// Apply a fault; for line faults, returns the line as it continues (or `None` if lost).
    fn fire(&mut self, now: Instant, kind: FaultKind, line: Option<String>) -> Option<String> {
        match kind {
            FaultKind::Noise => line.map(|line| {
                // One byte hit: GRBL sees a character that is no word letter nor digit.
                let mut bytes = line.into_bytes();
                let at = 1.min(bytes.len().saturating_sub(1));
                bytes[at] = b'"';
                String::from_utf8_lossy(&bytes).into_owned()
            }),
            FaultKind::SwallowOk => {
                self.swallow_next_ok = true;
                line
            }
            FaultKind::ErrorReply(code) => {
                if line.is_some() {
                    self.reply(&format!("error:{code}"));
                }
                None
            }
            FaultKind::Alarm(code) => {
                self.raise_alarm(now, code);
                None
            }
            FaultKind::Reset => {
                self.hardware_reset(now);
                None
            }
            FaultKind::Hang(duration) => {
                self.hardware_reset(now);
                // Silent until the watchdog fires: then it boots as after any reset.
                self.booting_until = Some(now + duration + self.config.boot);
                None
            }
            FaultKind::Disconnect(duration) => {
                self.hardware_reset(now);
                self.wire_action = Some(WireAction::Disconnect(duration));
                None
            }
            FaultKind::FeedHold => {
                self.feed_hold(now);
                line
            }
            FaultKind::DoorOpen => {
                self.open_door(now);
                line
            }
            FaultKind::DoorClose => {
                self.close_door();
                line
            }
        }
    }

    // ----- lines -----

    fn reply(&mut self, text: &str) {
        self.out.extend_from_slice(text.as_bytes());
        self.out.extend_from_slice(b"\r\n");
    }

    fn ok(&mut self) {
        if std::mem::take(&mut self.swallow_next_ok) {
            return;
        }
        self.reply("ok");
    }

    /// GRBL's main loop: move bytes from the receive buffer into the line buffer, and run each
    /// complete line, unless the planner is full (then the receive buffer fills up).
    fn read_rx(&mut self, now: Instant) {
        while self.booting_until.is_none() && self.homing_until.is_none() && !self.reset_required {
            let Some(&byte) = self.rx.front() else {
                return;
            };
            if byte == b'\n' || byte == b'\r' {
                if self.line_is_motion() && self.planner_full() {
                    return;
                }
                self.rx.pop_front();
                let line = String::from_utf8_lossy(&std::mem::take(&mut self.line)).into_owned();
                let overflow = std::mem::take(&mut self.line_overflow);
                self.in_paren_comment = false;
                self.in_semicolon_comment = false;
                if overflow {
                    self.reply("error:11");
                } else if !line.is_empty() {
                    self.line_arrived(now, line);
                }
                continue;
            }
            self.rx.pop_front();
            match byte {
                _ if self.in_semicolon_comment => {}
                b')' if self.in_paren_comment => self.in_paren_comment = false,
                _ if self.in_paren_comment => {}
                b'(' => self.in_paren_comment = true,
                b';' => self.in_semicolon_comment = true,
                _ if byte <= b' ' => {}
                _ if self.line.len() >= self.config.line_buffer - 1 => self.line_overflow = true,
                _ => self.line.push(byte.to_ascii_uppercase()),
            }
        }
    }

    fn line_is_motion(&self) -> bool {
        self.line.first() != Some(&b'$')
            && self.line.iter().any(|b| matches!(b, b'X' | b'Y' | b'Z'))
    }

    fn planner_full(&self) -> bool {
        let blocks = self.planner.iter().filter(|b| b.motion).count()
            + usize::from(self.active.as_ref().is_some_and(|a| a.block.motion));
        blocks >= self.config.planner_blocks
    }

    fn line_arrived(&mut self, now: Instant, line: String) {
        if line.starts_with('$') {
            self.system_command(now, &line);
            return;
        }
        self.lines_received += 1;
        let number = self.lines_received;
        let mut line = Some(line);
        let due: Vec<FaultKind> = self
            .faults
            .iter_mut()
            .filter(|(fault, fired)| !fired && fault.trigger == Trigger::Line(number))
            .map(|(fault, fired)| {
                *fired = true;
                fault.kind
            })
            .collect();
        for kind in due {
            line = self.fire(now, kind, line);
        }
        if let Some(line) = line {
            self.gcode_line(line);
        }
    }

    fn gcode_line(&mut self, line: String) {
        if self.alarm {
            self.reply("error:9");
            return;
        }
        match self.plan(&line) {
            Ok(block) => {
                self.planner.push_back(block);
                self.ok();
            }
            Err(code) => self.reply(&format!("error:{code}")),
        }
    }

    /// Parse a line into a planner block, as GRBL's `gc_execute_line` would accept or reject it.
    fn plan(&mut self, line: &str) -> Result<Block, u16> {
        let words = words(line).map_err(|error| match error {
            WordError::ExpectedLetter(_) => 1u16,
            WordError::BadNumber(_) => 2,
        })?;
        let mut modal = self.modal;
        let mut target = self.planned_position;
        let mut axis_words = false;
        let mut dwell = None;
        let mut p_word = None;
        for &Word { letter, value } in &words {
            let code = || tenths(value);
            match letter {
                'G' => match code() {
                    Some(c @ (0 | 10 | 20 | 30)) => modal.motion = c / 10,
                    Some(40) => dwell = Some(()),
                    Some(200) => modal.inches = true,
                    Some(210) => modal.inches = false,
                    Some(900) => modal.absolute = true,
                    Some(910) => modal.absolute = false,
                    Some(c) if G_CODES.contains(&c) => {}
                    _ => return Err(20),
                },
                'M' => match code() {
                    Some(c) if M_CODES.contains(&c) => {}
                    _ => return Err(20),
                },
                'F' if value <= 0.0 => return Err(4),
                'F' => modal.feed = Some(value * if modal.inches { 25.4 } else { 1.0 }),
                'X' | 'Y' | 'Z' => {
                    axis_words = true;
                    let axis = usize::from(letter as u8 - b'X');
                    let mm = value * if modal.inches { 25.4 } else { 1.0 };
                    target[axis] = if modal.absolute {
                        mm
                    } else {
                        target[axis] + mm
                    };
                }
                'P' => p_word = Some(value),
                'I' | 'J' | 'K' | 'L' | 'N' | 'R' | 'S' | 'T' => {}
                _ => return Err(20),
            }
        }
        let from = self.planned_position;
        let duration = if dwell.is_some() {
            let seconds = p_word.ok_or(28u16)?;
            Duration::from_secs_f64(seconds.max(0.0))
        } else if axis_words {
            let rate = match modal.motion {
                0 => self.config.rapid_mm_per_min,
                _ => modal.feed.ok_or(22u16)?,
            };
            let distance = (0..3)
                .map(|a| (target[a] - from[a]).powi(2))
                .sum::<f64>()
                .sqrt();
            Duration::from_secs_f64(distance / rate * 60.0)
        } else {
            Duration::ZERO
        };
        self.modal = modal;
        if axis_words {
            self.planned_position = target;
        }
        Ok(Block {
            line: line.to_string(),
            duration: self.scaled(duration),
            from,
            to: self.planned_position,
            motion: axis_words,
        })
    }
}

mod system;
#[cfg(test)]
mod tests;
