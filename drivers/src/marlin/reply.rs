//! What a Marlin-compatible firmware says, one received line at a time. Pure parsing, no state.
//!
//! Covers Marlin 1.1/2.x, Prusa-Firmware and Klipper's Marlin-style replies: `ok` (with
//! `ADVANCED_OK` fields or an M105 temperature report on the same line), `Resend:`/`rs`,
//! `Error:` lines (classified), `busy:` keep-alives, `//action:` host commands, temperature
//! reports, the `start` line a firmware prints when it boots, and `FIRMWARE_NAME:` (M115).

use std::fmt;

pub use crate::status::TemperatureReading;

#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
pub struct Temperatures {
    pub readings: Vec<TemperatureReading>,
}

impl Temperatures {
    pub fn get(&self, sensor: &str) -> Option<&TemperatureReading> {
        self.readings.iter().find(|r| r.sensor == sensor)
    }
}

/// The line-level errors Marlin answers with a resend request (`queue.cpp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineError {
    ChecksumMismatch,
    /// `Line Number is not Last Line Number+1`: a line was lost, or a stale one arrived.
    LineNumber,
    NoChecksum,
    NoLineNumber,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ErrorReply {
    /// A transmission error; a `Resend:` follows. `last_line` is the last line Marlin accepted.
    Line {
        kind: LineError,
        last_line: Option<u64>,
    },
    /// The firmware stopped itself (kill(), thermal runaway, MINTEMP...): it needs a reset.
    Fatal(String),
    /// Any other error the firmware reports about a command (`Error:Probing Failed`, Klipper's
    /// `!! Move out of range`).
    Command(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostAction {
    /// `//action:pause`: the printer asks the host to pause the job.
    Pause,
    /// `//action:paused`: the printer has paused itself (M600, M125, filament runout).
    Paused,
    Resume,
    Resumed,
    /// `//action:cancel`: the user cancelled on the printer.
    Cancel,
    Other(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Ok {
        /// `ADVANCED_OK`: the line number of the acknowledged command, free planner blocks and
        /// free command buffer slots.
        line: Option<u64>,
        planner_free: Option<u32>,
        buffer_free: Option<u32>,
        /// M105 answers `ok T:...` on one line.
        temperatures: Option<Temperatures>,
    },
    Resend(u64),
    Error(ErrorReply),
    /// `busy: processing`, `echo:busy: paused for user`: a long command is running.
    Busy(String),
    /// The firmware (re)booted.
    Start,
    Action(HostAction),
    Temperatures(Temperatures),
    FirmwareInfo(String),
    /// Echo lines, `wait`, capability lines, noise: logged, not acted on.
    Other(String),
}

/// Parse one received line (without its line ending).
pub fn parse(line: &str) -> Reply {
    let line = line.trim();
    if line == "ok" || line.starts_with("ok ") {
        return parse_ok(line[2..].trim());
    }
    if let Some(number) = resend_number(line) {
        return Reply::Resend(number);
    }
    if let Some(message) = strip_prefix_ignore_case(line, "error:") {
        return Reply::Error(classify_error(message.trim()));
    }
    if let Some(message) = line.strip_prefix("!!") {
        let message = message.trim();
        let fatal = message.to_ascii_lowercase().contains("shutdown");
        return Reply::Error(if fatal {
            ErrorReply::Fatal(message.to_string())
        } else {
            ErrorReply::Command(message.to_string())
        });
    }
    if line == "start" {
        return Reply::Start;
    }
    let unechoed = line.strip_prefix("echo:").unwrap_or(line);
    if let Some(what) = unechoed.strip_prefix("busy:") {
        return Reply::Busy(what.trim().to_string());
    }
    if let Some(action) = line.strip_prefix("//action:") {
        return Reply::Action(match action.trim() {
            "pause" => HostAction::Pause,
            "paused" => HostAction::Paused,
            "resume" => HostAction::Resume,
            "resumed" => HostAction::Resumed,
            "cancel" => HostAction::Cancel,
            other => HostAction::Other(other.to_string()),
        });
    }
    if line.starts_with("FIRMWARE_NAME:") {
        return Reply::FirmwareInfo(line.to_string());
    }
    if let Some(temperatures) = parse_temperatures(line) {
        return Reply::Temperatures(temperatures);
    }
    Reply::Other(line.to_string())
}

fn strip_prefix_ignore_case<'a>(line: &'a str, prefix: &str) -> Option<&'a str> {
    let head = line.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &line[prefix.len()..])
}

fn parse_ok(rest: &str) -> Reply {
    let temperatures = parse_temperatures(rest);
    let mut line = None;
    let mut planner_free = None;
    let mut buffer_free = None;
    if temperatures.is_none() {
        for token in rest.split_whitespace() {
            let (key, value) = token.split_at(1);
            match key {
                "N" => line = value.parse().ok(),
                "P" => planner_free = value.parse().ok(),
                "B" => buffer_free = value.parse().ok(),
                _ => {}
            }
        }
    }
    Reply::Ok {
        line,
        planner_free,
        buffer_free,
        temperatures,
    }
}

/// `Resend: 12`, `Resend:12`, `rs 12`, `rs N12`.
fn resend_number(line: &str) -> Option<u64> {
    let rest = strip_prefix_ignore_case(line, "resend").or_else(|| line.strip_prefix("rs "))?;
    let digits = rest
        .trim_start_matches([':', ' ', 'N'])
        .split(|c: char| !c.is_ascii_digit())
        .next()?;
    digits.parse().ok()
}

fn classify_error(message: &str) -> ErrorReply {
    let lower = message.to_ascii_lowercase();
    let line_error = [
        ("checksum mismatch", LineError::ChecksumMismatch),
        ("line number is not last line number", LineError::LineNumber),
        ("no checksum with line number", LineError::NoChecksum),
        ("no line number with checksum", LineError::NoLineNumber),
    ]
    .into_iter()
    .find(|(text, _)| lower.contains(text));
    if let Some((_, kind)) = line_error {
        let last_line = lower
            .rsplit_once("last line:")
            .and_then(|(_, n)| n.trim().parse().ok());
        return ErrorReply::Line { kind, last_line };
    }
    const FATAL: [&str; 9] = [
        "kill() called",
        "printer halted",
        "printer stopped",
        "thermal runaway",
        "heating failed",
        "mintemp",
        "maxtemp",
        "emergency stop",
        "system stopped",
    ];
    if FATAL.iter().any(|text| lower.contains(text)) {
        ErrorReply::Fatal(message.to_string())
    } else {
        ErrorReply::Command(message.to_string())
    }
}

/// `T:210.0 /210.0 B:60.0 /60.0 @:127 B@:0`, `T0:200 /200 T1:25 /0`, ` T:20.1 /0.0 W:?`.
/// `None` unless at least one sensor reading is present.
pub fn parse_temperatures(text: &str) -> Option<Temperatures> {
    let mut readings: Vec<TemperatureReading> = Vec::new();
    let mut tokens = text.split_whitespace().peekable();
    while let Some(token) = tokens.next() {
        let Some((sensor, value)) = token.split_once(':') else {
            continue;
        };
        if !is_sensor_name(sensor) {
            continue;
        }
        let Ok(actual) = value.parse::<f64>() else {
            continue;
        };
        let target = tokens
            .peek()
            .and_then(|next| next.strip_prefix('/'))
            .and_then(|t| t.parse::<f64>().ok());
        if target.is_some() {
            tokens.next();
        }
        readings.push(TemperatureReading {
            sensor: sensor.to_string(),
            actual,
            target,
        });
    }
    (!readings.is_empty()).then_some(Temperatures { readings })
}

fn is_sensor_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some('T') => chars.all(|c| c.is_ascii_digit()),
        Some('B' | 'C' | 'P' | 'A' | 'R') => chars.next().is_none(),
        _ => false,
    }
}

impl fmt::Display for Temperatures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.readings.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{}:{}", r.sensor, r.actual)?;
            if let Some(target) = r.target {
                write!(f, "/{target}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temps(readings: &[(&str, f64, Option<f64>)]) -> Temperatures {
        Temperatures {
            readings: readings
                .iter()
                .map(|&(sensor, actual, target)| TemperatureReading {
                    sensor: sensor.to_string(),
                    actual,
                    target,
                })
                .collect(),
        }
    }

    fn ok() -> Reply {
        Reply::Ok {
            line: None,
            planner_free: None,
            buffer_free: None,
            temperatures: None,
        }
    }

    #[test]
    fn replies_are_classified() {
        let error = |kind, last_line| Reply::Error(ErrorReply::Line { kind, last_line });
        let cases: Vec<(&str, Reply)> = vec![
            ("ok", ok()),
            ("ok  ", ok()),
            (
                "ok N123 P15 B3",
                Reply::Ok {
                    line: Some(123),
                    planner_free: Some(15),
                    buffer_free: Some(3),
                    temperatures: None,
                },
            ),
            (
                "ok T:210.0 /210.0 B:60.0 /60.0 @:127 B@:0",
                Reply::Ok {
                    line: None,
                    planner_free: None,
                    buffer_free: None,
                    temperatures: Some(temps(&[
                        ("T", 210.0, Some(210.0)),
                        ("B", 60.0, Some(60.0)),
                    ])),
                },
            ),
            ("okay", Reply::Other("okay".into())),
            ("Resend: 12", Reply::Resend(12)),
            ("Resend:12", Reply::Resend(12)),
            ("rs 7", Reply::Resend(7)),
            ("rs N7", Reply::Resend(7)),
            (
                "Error:checksum mismatch, Last Line: 11",
                error(LineError::ChecksumMismatch, Some(11)),
            ),
            (
                "Error:Line Number is not Last Line Number+1, Last Line: 11",
                error(LineError::LineNumber, Some(11)),
            ),
            (
                "Error:No Checksum with line number, Last Line: 3",
                error(LineError::NoChecksum, Some(3)),
            ),
            (
                "Error:No Line Number with checksum, Last Line: 3",
                error(LineError::NoLineNumber, Some(3)),
            ),
            (
                "Error:Printer halted. kill() called!",
                Reply::Error(ErrorReply::Fatal("Printer halted. kill() called!".into())),
            ),
            (
                "Error: MINTEMP triggered, system stopped! Heater_ID: bed",
                Reply::Error(ErrorReply::Fatal(
                    "MINTEMP triggered, system stopped! Heater_ID: bed".into(),
                )),
            ),
            (
                "Error:Probing Failed",
                Reply::Error(ErrorReply::Command("Probing Failed".into())),
            ),
            (
                "!! Move out of range: 300.000 0.000 0.200 [0.000]",
                Reply::Error(ErrorReply::Command(
                    "Move out of range: 300.000 0.000 0.200 [0.000]".into(),
                )),
            ),
            (
                "!! Shutdown due to webhooks request",
                Reply::Error(ErrorReply::Fatal("Shutdown due to webhooks request".into())),
            ),
            ("echo:busy: processing", Reply::Busy("processing".into())),
            ("busy: processing", Reply::Busy("processing".into())),
            (
                "echo:busy: paused for user",
                Reply::Busy("paused for user".into()),
            ),
            ("start", Reply::Start),
            ("//action:pause", Reply::Action(HostAction::Pause)),
            ("//action:paused", Reply::Action(HostAction::Paused)),
            ("//action:resume", Reply::Action(HostAction::Resume)),
            ("//action:resumed", Reply::Action(HostAction::Resumed)),
            ("//action:cancel", Reply::Action(HostAction::Cancel)),
            (
                "//action:notification Printing...",
                Reply::Action(HostAction::Other("notification Printing...".into())),
            ),
            (
                " T:201.3 /210.0 B:59.9 /60.0 @:127 B@:0 W:?",
                Reply::Temperatures(temps(&[("T", 201.3, Some(210.0)), ("B", 59.9, Some(60.0))])),
            ),
            (
                "T:25.0 /0.0 T0:25.0 /0.0 T1:24.5 /200.0 B:22.0 /0.0 C:30.1",
                Reply::Temperatures(temps(&[
                    ("T", 25.0, Some(0.0)),
                    ("T0", 25.0, Some(0.0)),
                    ("T1", 24.5, Some(200.0)),
                    ("B", 22.0, Some(0.0)),
                    ("C", 30.1, None),
                ])),
            ),
            (
                "FIRMWARE_NAME:Marlin 2.1.2 SOURCE_CODE_URL:x",
                Reply::FirmwareInfo("FIRMWARE_NAME:Marlin 2.1.2 SOURCE_CODE_URL:x".into()),
            ),
            (
                "echo:Unknown command: \"X5\"",
                Reply::Other("echo:Unknown command: \"X5\"".into()),
            ),
            ("wait", Reply::Other("wait".into())),
        ];
        for (line, expected) in cases {
            assert_eq!(parse(line), expected, "{line:?}");
        }
    }
}
