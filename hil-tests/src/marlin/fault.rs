//! Faults the Marlin simulator can inject, each once, at a line number or a time.
//!
//! Syntax (`--fault`): `<kind>[:<value>]@line:<n>` or `<kind>[:<value>]@time:<seconds>`, e.g.
//! `noise:0.01@time:0`, `swallow-ok@line:120`, `disconnect:2@line:300` (replug after 2 s),
//! `reset@line:500`, `busy:30@line:10`, `error@line:7`, `kill@time:5`, `hang:3@line:40`,
//! `cancel@line:50` (aborted on the printer's screen).

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq)]
pub enum FaultKind {
    /// From now on, corrupt this share of the lines the host sends (one flipped bit each).
    Noise { probability: f64 },
    /// The `ok` for this line is never sent.
    SwallowOk,
    /// The USB cable is pulled, and plugged again after `seconds`.
    Disconnect { seconds: f64 },
    /// The board resets (watchdog, brown-out): `start` banner, state lost.
    Reset,
    /// This command keeps the firmware busy for `seconds` of wall time (`busy: processing`).
    Busy { seconds: f64 },
    /// This command answers `Error:Probing Failed` (then `ok`).
    Error,
    /// The firmware halts: `Error:Printer halted. kill() called!`.
    Kill,
    /// The firmware locks up, silent, for `seconds` of wall time; then its watchdog resets it.
    Hang { seconds: f64 },
    /// Someone aborts the print on the printer's screen: `//action:cancel`.
    CancelOnPrinter,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Trigger {
    /// When the firmware accepts (reset) or executes (the others) the line with this `N`; wire
    /// faults when the firmware has accepted it.
    Line(u64),
    /// This many wall seconds after the simulator started.
    Time(f64),
}

#[derive(Debug, Clone, PartialEq)]
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

    pub fn at_time(kind: FaultKind, seconds: f64) -> Fault {
        Fault {
            kind,
            trigger: Trigger::Time(seconds),
        }
    }

    /// Faults acted on by the cable rather than the firmware.
    pub fn is_wire_fault(&self) -> bool {
        matches!(
            self.kind,
            FaultKind::Noise { .. } | FaultKind::Disconnect { .. }
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad fault '{spec}': {reason} (expected e.g. reset@line:500 or disconnect:2@time:3)")]
pub struct FaultParseError {
    spec: String,
    reason: String,
}

impl FromStr for Fault {
    type Err = FaultParseError;

    fn from_str(spec: &str) -> Result<Fault, FaultParseError> {
        let error = |reason: &str| FaultParseError {
            spec: spec.to_string(),
            reason: reason.to_string(),
        };
        let (what, when) = spec.split_once('@').ok_or_else(|| error("missing @"))?;
        let (kind, value) = match what.split_once(':') {
            Some((kind, value)) => {
                let value: f64 = value
                    .parse()
                    .map_err(|_| error("the value is not a number"))?;
                (kind, Some(value))
            }
            None => (what, None),
        };
        let needs = |value: Option<f64>| value.ok_or_else(|| error("this fault needs a value"));
        let kind = match kind {
            "noise" => FaultKind::Noise {
                probability: needs(value)?,
            },
            "swallow-ok" => FaultKind::SwallowOk,
            "disconnect" => FaultKind::Disconnect {
                seconds: value.unwrap_or(1.0),
            },
            "reset" => FaultKind::Reset,
            "busy" => FaultKind::Busy {
                seconds: needs(value)?,
            },
            "error" => FaultKind::Error,
            "kill" => FaultKind::Kill,
            "cancel" => FaultKind::CancelOnPrinter,
            "hang" => FaultKind::Hang {
                seconds: needs(value)?,
            },
            other => return Err(error(&format!("unknown fault kind '{other}'"))),
        };
        let trigger = match when.split_once(':') {
            Some(("line", n)) => Trigger::Line(n.parse().map_err(|_| error("bad line number"))?),
            Some(("time", s)) => Trigger::Time(s.parse().map_err(|_| error("bad time"))?),
            _ => return Err(error("the trigger must be line:<n> or time:<seconds>")),
        };
        Ok(Fault { kind, trigger })
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            FaultKind::Noise { probability } => write!(f, "noise:{probability}")?,
            FaultKind::SwallowOk => f.write_str("swallow-ok")?,
            FaultKind::Disconnect { seconds } => write!(f, "disconnect:{seconds}")?,
            FaultKind::Reset => f.write_str("reset")?,
            FaultKind::Busy { seconds } => write!(f, "busy:{seconds}")?,
            FaultKind::Error => f.write_str("error")?,
            FaultKind::Kill => f.write_str("kill")?,
            FaultKind::Hang { seconds } => write!(f, "hang:{seconds}")?,
            FaultKind::CancelOnPrinter => f.write_str("cancel")?,
        }
        match self.trigger {
            Trigger::Line(n) => write!(f, "@line:{n}"),
            Trigger::Time(s) => write!(f, "@time:{s}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_specs_parse_and_print_back() {
        for spec in [
            "noise:0.01@time:0",
            "swallow-ok@line:120",
            "disconnect:2@line:300",
            "reset@line:500",
            "busy:30@line:10",
            "error@line:7",
            "kill@time:5",
            "hang:3@line:40",
            "cancel@line:50",
        ] {
            let fault: Fault = spec.parse().unwrap();
            assert_eq!(fault.to_string(), spec);
        }
        for bad in [
            "reset",
            "busy@line:3",
            "melt@line:3",
            "reset@step:3",
            "noise:x@time:1",
        ] {
            assert!(bad.parse::<Fault>().is_err(), "{bad}");
        }
    }
}
