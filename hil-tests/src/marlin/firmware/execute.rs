//! What a command does on the simulated printer once Marlin's queue hands it over: moves and
//! the planner they fill, dwell, heaters and their waits, reports, and what it costs in machine
//! time.

// The rest of the firmware's state machine, which a command reads and changes.
use super::*;

impl Firmware {
    /// Parse and begin one command (`GcodeSuite::process_parsed_command`).
    pub(super) fn start(&mut self, number: Option<i64>, text: &str) -> Running {
        let command = strip_number_and_checksum(text);
        let words = Words::parse(&command);
        let mut running = Running {
            executed: Executed {
                line_number: number,
                command: command.clone(),
            },
            wait: Wait::None,
            pending_move: None,
            reply: Reply::Ok,
            swallow_ok: false,
        };
        match words.code.as_str() {
            "G0" | "G1" => {
                let target = self.move_target(&words);
                let distance = target
                    .iter()
                    .zip(self.position)
                    .map(|(a, b)| (a - b).powi(2))
                    .sum::<f64>()
                    .sqrt();
                self.position = target;
                running.pending_move = Some(self.machine_time(distance / (self.feedrate / 60.0)));
                running.wait = Wait::PlannerSpace;
            }
            "G2" | "G3" => {
                // Arcs (`ARC_SUPPORT`, on by default): end at X/Y(/Z), centre at I/J from the start.
                let target = self.move_target(&words);
                let offset = [words.get('I').unwrap_or(0.0), words.get('J').unwrap_or(0.0)];
                let length = arc_length(self.position, target, offset, words.code == "G2");
                self.position = target;
                running.pending_move = Some(self.machine_time(length / (self.feedrate / 60.0)));
                running.wait = Wait::PlannerSpace;
            }
            "G4" => {
                let seconds =
                    words.get('S').unwrap_or(0.0) + words.get('P').unwrap_or(0.0) / 1000.0;
                running.wait = self.after_moves(seconds);
            }
            "G28" => {
                self.position = [0.0; 3];
                running.wait = self.after_moves(8.0);
            }
            "G29" => running.wait = self.after_moves(30.0),
            "G90" => self.relative = false,
            "G91" => self.relative = true,
            "M400" => running.wait = Wait::PlannerEmpty,
            "M104" => {
                if let Some(target) = words.get('S') {
                    self.hotend.target = target;
                }
            }
            "M140" => {
                if let Some(target) = words.get('S') {
                    self.bed.target = target;
                }
            }
            "M109" => running.wait = heat_and_wait(&mut self.hotend, &words, Wait::Hotend),
            "M190" => running.wait = heat_and_wait(&mut self.bed, &words, Wait::Bed),
            "M0" | "M1" => running.wait = Wait::User,
            "M105" => running.reply = Reply::OkWithTemperatures,
            "M110" => {
                if let Some(n) = words.get('N') {
                    self.last_n = n as i64;
                }
            }
            "M114" => {
                let [x, y, z] = self.position;
                self.say(&format!(
                    "X:{x:.2} Y:{y:.2} Z:{z:.2} E:0.00 Count X:0 Y:0 Z:0"
                ));
            }
            "M115" => {
                let firmware = self.config.unnumbered_checksum.firmware_report();
                self.say(&format!(
                    "FIRMWARE_NAME:{firmware} PROTOCOL_VERSION:1.0 MACHINE_TYPE:3D Printer \
                     EXTRUDER_COUNT:1 UUID:00000000-0000-0000-0000-000000000000"
                ));
                self.say("Cap:AUTOREPORT_TEMP:1");
                self.say("Cap:EMERGENCY_PARSER:1");
                let advanced = u8::from(self.config.advanced_ok);
                self.say(&format!("Cap:ADVANCED_OK:{advanced}"));
            }
            "M155" => {
                let seconds = words.get('S').unwrap_or(0.0);
                self.autoreport =
                    (seconds > 0.0).then(|| (Duration::from_secs_f64(seconds), self.now));
            }
            "M108" | "M410" | "M112" | "M82" | "M83" | "M84" | "M18" | "M106" | "M107" | "M117"
            | "M220" | "M221" | "M999" | "G92" | "G21" => {}
            _ => {
                self.say(&format!("echo:Unknown command: \"{command}\""));
                running.executed.command.clear();
            }
        }
        self.apply_line_faults(number, &mut running);
        running
    }

    /// Where a move's X/Y/Z words lead (absolute or relative), taking its feed rate.
    pub(super) fn move_target(&mut self, words: &Words) -> [f64; 3] {
        let mut target = self.position;
        for (axis, letter) in ['X', 'Y', 'Z'].into_iter().enumerate() {
            if let Some(v) = words.get(letter) {
                target[axis] = if self.relative { target[axis] + v } else { v };
            }
        }
        if let Some(f) = words.get('F').filter(|f| *f > 0.0) {
            self.feedrate = f;
        }
        target
    }

    pub(super) fn after_moves(&self, machine_seconds: f64) -> Wait {
        let start = self
            .planner
            .back()
            .copied()
            .unwrap_or(self.now)
            .max(self.now);
        Wait::Until(start + self.machine_time(machine_seconds))
    }

    pub(super) fn temperature_report(&self) -> String {
        format!(
            "T:{:.2} /{:.2} B:{:.2} /{:.2} @:{} B@:{}",
            self.hotend.actual,
            self.hotend.target,
            self.bed.actual,
            self.bed.target,
            if self.hotend.target > self.hotend.actual {
                127
            } else {
                0
            },
            if self.bed.target > self.bed.actual {
                127
            } else {
                0
            },
        )
    }

    pub(super) fn machine_time(&self, machine_seconds: f64) -> Duration {
        Duration::from_secs_f64((machine_seconds / self.config.time_scale.max(1e-9)).max(0.0))
    }
}
