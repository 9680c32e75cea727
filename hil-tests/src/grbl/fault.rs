//! Faults the GRBL simulator can inject, and their command-line syntax `KIND@TRIGGER`:
//!
//! | kind            | effect                                                              |
//! |-----------------|---------------------------------------------------------------------|
//! | `noise`         | the line arrives corrupted (one byte hit on the wire)               |
//! | `swallow-ok`    | the line runs but its `ok` is lost                                  |
//! | `error:N`       | the line is answered `error:N` and not run                          |
//! | `alarm:N`       | `ALARM:N`: motion stops, buffers flushed, G-code locked until `$X`; |
//! |                 | after 1 and 2 (hard, soft limit) GRBL answers nothing but a reset   |
//! | `reset`         | the board resets (watchdog, brown-out): banner, buffers lost        |
//! | `disconnect:MS` | the cable is pulled for MS milliseconds, then plugged in (reboot)   |
//! | `hang:MS`       | the controller stops answering for MS milliseconds, then its        |
//! |                 | watchdog resets it (banner)                                         |
//! | `hold`          | a feed hold nobody sent over the link (a button, a `!` from noise)  |
//! | `door-open`     | the safety door opens: motion stops (`Door:2`, then `Door:1`)       |
//! | `door-close`    | the safety door closes (`Door:0`): cycle start (`~`) may resume     |
//!
//! Triggers: `line:N` (when the N-th G-code line arrives, 1-based) or `time:MS` (after MS
//! milliseconds of wall time since the simulator started).

use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    Noise,
    SwallowOk,
    ErrorReply(u16),
    Alarm(u16),
    Reset,
    Disconnect(Duration),
    Hang(Duration),
    FeedHold,
    DoorOpen,
    DoorClose,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Line(u64),
    Time(Duration),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    pub kind: FaultKind,
    pub trigger: Trigger,
}

impl Fault {
    pub fn at_line(kind: FaultKind, line: u64) -> Fault {
        Fault {
            kind,
            trigger: Trigger::Line(line),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "bad fault '{0}': expected KIND@TRIGGER, e.g. alarm:1@line:50 or disconnect:2000@time:3000"
)]
pub struct BadFault(String);

impl FromStr for Fault {
    type Err = BadFault;

    fn from_str(text: &str) -> Result<Fault, BadFault> {
        let bad = || BadFault(text.to_string());
        let (kind, trigger) = text.split_once('@').ok_or_else(bad)?;
        let (name, arg) = match kind.split_once(':') {
            Some((name, arg)) => (name, Some(arg.parse::<u64>().map_err(|_| bad())?)),
            None => (kind, None),
        };
        let code = |arg: Option<u64>| arg.and_then(|n| u16::try_from(n).ok()).ok_or_else(bad);
        let kind = match name {
            "noise" if arg.is_none() => FaultKind::Noise,
            "swallow-ok" if arg.is_none() => FaultKind::SwallowOk,
            "reset" if arg.is_none() => FaultKind::Reset,
            "hold" if arg.is_none() => FaultKind::FeedHold,
            "door-open" if arg.is_none() => FaultKind::DoorOpen,
            "door-close" if arg.is_none() => FaultKind::DoorClose,
            "error" => FaultKind::ErrorReply(code(arg)?),
            "alarm" => FaultKind::Alarm(code(arg)?),
            "disconnect" => FaultKind::Disconnect(Duration::from_millis(arg.ok_or_else(bad)?)),
            "hang" => FaultKind::Hang(Duration::from_millis(arg.ok_or_else(bad)?)),
            _ => return Err(bad()),
        };
        let (unit, value) = trigger.split_once(':').ok_or_else(bad)?;
        let value: u64 = value.parse().map_err(|_| bad())?;
        let trigger = match unit {
            "line" if value > 0 => Trigger::Line(value),
            "time" => Trigger::Time(Duration::from_millis(value)),
            _ => return Err(bad()),
        };
        Ok(Fault { kind, trigger })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_parse() {
        let cases = [
            ("noise@line:3", Ok(Fault::at_line(FaultKind::Noise, 3))),
            (
                "swallow-ok@line:10",
                Ok(Fault::at_line(FaultKind::SwallowOk, 10)),
            ),
            (
                "error:20@line:7",
                Ok(Fault::at_line(FaultKind::ErrorReply(20), 7)),
            ),
            (
                "alarm:1@line:50",
                Ok(Fault::at_line(FaultKind::Alarm(1), 50)),
            ),
            (
                "disconnect:2000@time:3000",
                Ok(Fault {
                    kind: FaultKind::Disconnect(Duration::from_secs(2)),
                    trigger: Trigger::Time(Duration::from_secs(3)),
                }),
            ),
            (
                "hang:2500@line:9",
                Ok(Fault::at_line(
                    FaultKind::Hang(Duration::from_millis(2500)),
                    9,
                )),
            ),
            ("hold@line:40", Ok(Fault::at_line(FaultKind::FeedHold, 40))),
            (
                "door-close@time:900",
                Ok(Fault {
                    kind: FaultKind::DoorClose,
                    trigger: Trigger::Time(Duration::from_millis(900)),
                }),
            ),
            ("door-open:1@line:3", Err(())),
            ("reset@line:0", Err(())),
            ("alarm@line:5", Err(())),
            ("noise:3@line:5", Err(())),
            ("smoke@line:1", Err(())),
            ("reset", Err(())),
        ];
        for (text, expected) in cases {
            assert_eq!(text.parse::<Fault>().map_err(|_| ()), expected, "{text}");
        }
    }
}
