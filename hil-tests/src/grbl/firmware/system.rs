//! GRBL's `$` system commands: help, parser state, settings, homing and unlock, check mode,
//! and what each answers while the machine moves or is alarmed.

// The rest of the firmware's state machine, which these commands read and change.
use super::*;

impl Firmware {
    pub(super) fn system_command(&mut self, now: Instant, line: &str) {
        let idle = !self.moving() && self.hold == Hold::None;
        match line {
            "$" => self
                .reply("[HLP:$$ $# $G $I $N $x=val $Nx=line $J=line $SLP $C $X $H ~ ! ? ctrl-x]"),
            "$G" => {
                let modes = format!(
                    "[GC:G{} G54 G17 G{} G{} G94 M5 M9 T0 F{} S0]",
                    self.modal.motion,
                    if self.modal.inches { 20 } else { 21 },
                    if self.modal.absolute { 90 } else { 91 },
                    self.modal.feed.unwrap_or(0.0)
                );
                self.reply(&modes);
            }
            "$I" => {
                self.reply("[VER:1.1h.20190825:]");
                self.reply(&format!(
                    "[OPT:V,{},{}]",
                    self.config.planner_blocks, self.config.rx_buffer
                ));
            }
            "$X" => {
                if self.alarm {
                    self.alarm = false;
                    self.reply("[MSG:Caution: Unlocked]");
                }
            }
            "$H" if !self.config.homing_lock => {
                self.reply("error:5");
                return;
            }
            "$H" if !idle && !self.alarm => {
                self.reply("error:8");
                return;
            }
            "$H" => {
                // The ok comes when the cycle is done.
                self.homing_until = Some(now + self.scaled(Duration::from_secs(2)));
                return;
            }
            "$$" if !idle => {
                self.reply("error:8");
                return;
            }
            "$$" => {
                let homing = u8::from(self.config.homing_lock).to_string();
                for (number, value) in [
                    (0, "10"),
                    (10, "1"),
                    (22, homing.as_str()),
                    (110, "5000.000"),
                ] {
                    self.reply(&format!("${number}={value}"));
                }
            }
            _ if line.contains('=')
                && line[1..]
                    .split('=')
                    .next()
                    .is_some_and(|n| n.parse::<u16>().is_ok()) =>
            {
                if !idle {
                    self.reply("error:8");
                    return;
                }
            }
            _ => {
                self.reply("error:3");
                return;
            }
        }
        self.reply("ok");
    }
}
