//! GRBL 1.1's replies, one line at a time (interface.md: "Grbl Response Messages" and "Real-time
//! Status Reports"). Pure parsing: no state beyond the line given.

use super::codes::{GrblAlarm, GrblError};

/// The machine state a status report names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MachineState {
    Idle,
    Run,
    /// `Hold:0` hold complete, `Hold:1` decelerating to a stop.
    Hold(u8),
    Jog,
    Alarm,
    /// `Door:0` closed and ready to resume ... `Door:3` restoring.
    Door(u8),
    Check,
    Home,
    Sleep,
}

impl MachineState {
    fn parse(text: &str) -> Option<MachineState> {
        let (name, sub) = match text.split_once(':') {
            Some((name, sub)) => (name, Some(sub.parse::<u8>().ok()?)),
            None => (text, None),
        };
        Some(match (name, sub) {
            ("Idle", None) => MachineState::Idle,
            ("Run", None) => MachineState::Run,
            ("Hold", sub) => MachineState::Hold(sub.unwrap_or(0)),
            ("Jog", None) => MachineState::Jog,
            ("Alarm", None) => MachineState::Alarm,
            ("Door", sub) => MachineState::Door(sub.unwrap_or(0)),
            ("Check", None) => MachineState::Check,
            ("Home", None) => MachineState::Home,
            ("Sleep", None) => MachineState::Sleep,
            _ => return None,
        })
    }
}

/// One `<...>` status report. Fields GRBL did not include this time are `None`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StatusReport {
    pub state: Option<MachineState>,
    pub machine_position: Option<Vec<f64>>,
    pub work_position: Option<Vec<f64>>,
    pub work_offset: Option<Vec<f64>>,
    /// `Bf:` free planner blocks, free serial RX bytes.
    pub buffer: Option<(u32, u32)>,
    pub line_number: Option<u32>,
    pub feed: Option<f64>,
    pub spindle_speed: Option<f64>,
    /// `Pn:` input pins that are triggered (X, Y, Z, P, D, H, R, S).
    pub pins: Option<String>,
    /// `Ov:` feed, rapid and spindle overrides, in percent.
    pub overrides: Option<(u32, u32, u32)>,
    /// `A:` accessory state (S, C spindle; F flood; M mist).
    pub accessories: Option<String>,
}

/// One line the firmware sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Ok,
    Error(GrblError),
    Alarm(GrblAlarm),
    Status(StatusReport),
    /// The welcome banner, printed at power-up and after every reset.
    Welcome {
        version: String,
    },
    /// A bracketed feedback message: `[MSG:...]`, `[GC:...]`, `[PRB:...]`, `[VER:...]`, ...
    Feedback {
        kind: String,
        text: String,
    },
    /// A `$N=value` line from `$$`.
    Setting {
        number: u16,
        value: String,
    },
    /// `>G54:ok`: the result of a startup line.
    StartupLine(String),
    /// Anything else (line noise, another firmware's chatter).
    Unknown(String),
}

fn numbers(text: &str) -> Option<Vec<f64>> {
    text.split(',').map(|n| n.parse::<f64>().ok()).collect()
}

fn pair(text: &str) -> Option<(u32, u32)> {
    let (a, b) = text.split_once(',')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

fn parse_status(body: &str) -> Option<StatusReport> {
    let mut fields = body.split('|');
    let mut report = StatusReport {
        state: Some(MachineState::parse(fields.next()?)?),
        ..StatusReport::default()
    };
    for field in fields {
        let (name, value) = field.split_once(':').unwrap_or((field, ""));
        match name {
            "MPos" => report.machine_position = Some(numbers(value)?),
            "WPos" => report.work_position = Some(numbers(value)?),
            "WCO" => report.work_offset = Some(numbers(value)?),
            "Bf" => report.buffer = Some(pair(value)?),
            "Ln" => report.line_number = Some(value.parse().ok()?),
            "F" => report.feed = Some(value.parse().ok()?),
            "FS" => {
                let (feed, speed) = value.split_once(',')?;
                report.feed = Some(feed.parse().ok()?);
                report.spindle_speed = Some(speed.parse().ok()?);
            }
            "Pn" => report.pins = Some(value.to_string()),
            "Ov" => {
                let parts: Vec<u32> = value
                    .split(',')
                    .map(|n| n.parse().ok())
                    .collect::<Option<_>>()?;
                let [feed, rapid, spindle] = parts[..] else {
                    return None;
                };
                report.overrides = Some((feed, rapid, spindle));
            }
            "A" => report.accessories = Some(value.to_string()),
            // Fields other firmwares add (grblHAL's `SD:`, `H:`, ...) are not errors.
            _ => {}
        }
    }
    Some(report)
}

impl Reply {
    /// Parse one line, without its line ending.
    pub fn parse(line: &str) -> Reply {
        let line = line.trim();
        let unknown = || Reply::Unknown(line.to_string());
        if line == "ok" {
            return Reply::Ok;
        }
        if let Some(code) = line.strip_prefix("error:") {
            return code
                .parse()
                .map_or_else(|_| unknown(), |c| Reply::Error(GrblError(c)));
        }
        if let Some(code) = line.strip_prefix("ALARM:") {
            return code
                .parse()
                .map_or_else(|_| unknown(), |c| Reply::Alarm(GrblAlarm(c)));
        }
        if let Some(body) = line.strip_prefix('<').and_then(|l| l.strip_suffix('>')) {
            return parse_status(body).map_or_else(unknown, Reply::Status);
        }
        if let Some(body) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let (kind, text) = body.split_once(':').unwrap_or(("", body));
            return Reply::Feedback {
                kind: kind.to_string(),
                text: text.to_string(),
            };
        }
        if let Some((number, value)) = line.strip_prefix('$').and_then(|l| l.split_once('='))
            && let Ok(number) = number.parse()
        {
            return Reply::Setting {
                number,
                value: value.to_string(),
            };
        }
        if let Some(startup) = line.strip_prefix('>') {
            return Reply::StartupLine(startup.to_string());
        }
        // "Grbl 1.1h ['$' for help]", and grblHAL's "GrblHAL 1.1f ['$' or '$HELP' for help]".
        if line.to_ascii_lowercase().starts_with("grbl") && line.contains("help") {
            let version = line
                .split_whitespace()
                .nth(1)
                .unwrap_or_default()
                .to_string();
            return Reply::Welcome { version };
        }
        unknown()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(state: MachineState) -> StatusReport {
        StatusReport {
            state: Some(state),
            ..StatusReport::default()
        }
    }

    #[test]
    fn replies_parse() {
        let full = StatusReport {
            state: Some(MachineState::Run),
            machine_position: Some(vec![1.0, -2.5, 0.0]),
            buffer: Some((15, 128)),
            line_number: Some(99),
            feed: Some(500.0),
            spindle_speed: Some(8000.0),
            work_offset: Some(vec![0.0, 0.0, -1.0]),
            pins: Some("XZ".into()),
            overrides: Some((100, 50, 120)),
            accessories: Some("SF".into()),
            work_position: None,
        };
        let cases: Vec<(&str, Reply)> = vec![
            ("ok", Reply::Ok),
            ("error:22", Reply::Error(GrblError(22))),
            ("ALARM:1", Reply::Alarm(GrblAlarm(1))),
            ("error:x", Reply::Unknown("error:x".into())),
            (
                "<Idle|MPos:0.000,0.000,0.000|FS:0,0>",
                Reply::Status(StatusReport {
                    machine_position: Some(vec![0.0; 3]),
                    feed: Some(0.0),
                    spindle_speed: Some(0.0),
                    ..status(MachineState::Idle)
                }),
            ),
            (
                "<Run|MPos:1.000,-2.500,0.000|Bf:15,128|Ln:99|FS:500,8000|WCO:0.000,0.000,-1.000|Pn:XZ|Ov:100,50,120|A:SF>",
                Reply::Status(full),
            ),
            (
                "<Hold:0|WPos:1,2,3|F:100>",
                Reply::Status(StatusReport {
                    work_position: Some(vec![1.0, 2.0, 3.0]),
                    feed: Some(100.0),
                    ..status(MachineState::Hold(0))
                }),
            ),
            ("<Hold:1>", Reply::Status(status(MachineState::Hold(1)))),
            ("<Jog>", Reply::Status(status(MachineState::Jog))),
            (
                "<Alarm|MPos:0,0,0>",
                Reply::Status(StatusReport {
                    machine_position: Some(vec![0.0; 3]),
                    ..status(MachineState::Alarm)
                }),
            ),
            ("<Door:2>", Reply::Status(status(MachineState::Door(2)))),
            ("<Check>", Reply::Status(status(MachineState::Check))),
            ("<Home>", Reply::Status(status(MachineState::Home))),
            ("<Sleep>", Reply::Status(status(MachineState::Sleep))),
            ("<Idle|SD:1,x>", Reply::Status(status(MachineState::Idle))),
            (
                "<Flying|MPos:0,0,0>",
                Reply::Unknown("<Flying|MPos:0,0,0>".into()),
            ),
            (
                "<Idle|MPos:0,a,0>",
                Reply::Unknown("<Idle|MPos:0,a,0>".into()),
            ),
            (
                "<Idle|Ov:100,100>",
                Reply::Unknown("<Idle|Ov:100,100>".into()),
            ),
            (
                "Grbl 1.1h ['$' for help]",
                Reply::Welcome {
                    version: "1.1h".into(),
                },
            ),
            (
                "GrblHAL 1.1f ['$' or '$HELP' for help]",
                Reply::Welcome {
                    version: "1.1f".into(),
                },
            ),
            (
                "[MSG:'$H'|'$X' to unlock]",
                Reply::Feedback {
                    kind: "MSG".into(),
                    text: "'$H'|'$X' to unlock".into(),
                },
            ),
            (
                "[GC:G0 G54 G17 G21 G90 G94 M5 M9 T0 F0 S0]",
                Reply::Feedback {
                    kind: "GC".into(),
                    text: "G0 G54 G17 G21 G90 G94 M5 M9 T0 F0 S0".into(),
                },
            ),
            (
                "[PRB:0.000,0.000,1.492:1]",
                Reply::Feedback {
                    kind: "PRB".into(),
                    text: "0.000,0.000,1.492:1".into(),
                },
            ),
            (
                "$110=500.000",
                Reply::Setting {
                    number: 110,
                    value: "500.000".into(),
                },
            ),
            (">G54G20:ok", Reply::StartupLine("G54G20:ok".into())),
            ("\u{fffd}k", Reply::Unknown("\u{fffd}k".into())),
            ("  ok  ", Reply::Ok),
        ];
        for (line, expected) in cases {
            assert_eq!(Reply::parse(line), expected, "{line:?}");
        }
    }
}
