//! Faults the OPC UA simulator injects, and their command-line syntax `KIND@TRIGGER`:
//!
//! | kind                 | effect                                                          |
//! |----------------------|-----------------------------------------------------------------|
//! | `alarm:N`            | alarm number N as an event on `Notification/Messages` (severity |
//! |                      | 800); the running job is interrupted until `Resume`             |
//! | `restart:MS`         | the server stops (every session and connection ends), and MS    |
//! |                      | milliseconds later listens again on the same port; the machine  |
//! |                      | keeps running meanwhile and every counter is kept               |
//! | `drop-sessions`      | every connection and session ends, new ones are accepted at once|
//! | `bad-status:METHOD`  | the next call of METHOD answers BadInternalError, doing nothing |
//! | `slow:MS`            | from then on every method call answers MS milliseconds late     |
//!
//! Triggers: `runs:N` (the moment the N-th run completes, counted over all jobs, before the next
//! one starts however fast time runs) or `time:MS` (MS wall milliseconds after the simulator
//! started, at the next 20 ms tick).

use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultKind {
    Alarm(u32),
    Restart(Duration),
    DropSessions,
    BadStatus(String),
    Slow(Duration),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Runs(u64),
    Time(Duration),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub kind: FaultKind,
    pub trigger: Trigger,
}

impl Fault {
    /// Whether the fault strikes now, `runs` runs and `elapsed` wall time after the start.
    pub fn is_due(&self, runs: u64, elapsed: Duration) -> bool {
        match self.trigger {
            Trigger::Runs(n) => runs >= n,
            Trigger::Time(at) => elapsed >= at,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "bad fault '{0}': expected KIND@TRIGGER with KIND one of alarm:N, restart:MS, drop-sessions, \
     bad-status:METHOD, slow:MS and TRIGGER runs:N or time:MS, e.g. alarm:1021@runs:2"
)]
pub struct BadFault(String);

impl FromStr for Fault {
    type Err = BadFault;

    fn from_str(text: &str) -> Result<Fault, BadFault> {
        let bad = || BadFault(text.to_string());
        let (kind, trigger) = text.split_once('@').ok_or_else(bad)?;
        let (name, arg) = match kind.split_once(':') {
            Some((name, arg)) => (name, Some(arg)),
            None => (kind, None),
        };
        let number = || arg.and_then(|a| a.parse::<u64>().ok()).ok_or_else(bad);
        let millis = || number().map(Duration::from_millis);
        let kind = match name {
            "alarm" => FaultKind::Alarm(u32::try_from(number()?).map_err(|_| bad())?),
            "restart" => FaultKind::Restart(millis()?),
            "drop-sessions" if arg.is_none() => FaultKind::DropSessions,
            "bad-status" => match arg {
                Some(method) if !method.is_empty() => FaultKind::BadStatus(method.to_string()),
                _ => return Err(bad()),
            },
            "slow" => FaultKind::Slow(millis()?),
            _ => return Err(bad()),
        };
        let (unit, value) = trigger.split_once(':').ok_or_else(bad)?;
        let value: u64 = value.parse().map_err(|_| bad())?;
        let trigger = match unit {
            "runs" => Trigger::Runs(value),
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
        let fault = |kind, trigger| Ok(Fault { kind, trigger });
        let cases = [
            (
                "alarm:1021@runs:2",
                fault(FaultKind::Alarm(1021), Trigger::Runs(2)),
            ),
            (
                "restart:1500@time:3000",
                fault(
                    FaultKind::Restart(Duration::from_millis(1500)),
                    Trigger::Time(Duration::from_secs(3)),
                ),
            ),
            (
                "drop-sessions@runs:1",
                fault(FaultKind::DropSessions, Trigger::Runs(1)),
            ),
            (
                "bad-status:StoreAndStart@time:0",
                fault(
                    FaultKind::BadStatus("StoreAndStart".into()),
                    Trigger::Time(Duration::ZERO),
                ),
            ),
            (
                "slow:200@runs:0",
                fault(
                    FaultKind::Slow(Duration::from_millis(200)),
                    Trigger::Runs(0),
                ),
            ),
            ("alarm@runs:2", Err(())),
            ("alarm:x@runs:2", Err(())),
            ("drop-sessions:3@runs:1", Err(())),
            ("bad-status:@runs:1", Err(())),
            ("restart:100@line:4", Err(())),
            ("smoke@time:1", Err(())),
            ("alarm:3", Err(())),
        ];
        for (text, expected) in cases {
            let parsed = text.parse::<Fault>().map_err(|_| ());
            assert_eq!(parsed, expected, "{text}");
        }
    }

    #[test]
    fn triggers_strike_on_runs_or_time() {
        let by_runs: Fault = "alarm:1@runs:3".parse().unwrap();
        assert!(!by_runs.is_due(2, Duration::from_secs(100)));
        assert!(by_runs.is_due(3, Duration::ZERO));
        let by_time: Fault = "alarm:1@time:500".parse().unwrap();
        assert!(!by_time.is_due(100, Duration::from_millis(499)));
        assert!(by_time.is_due(0, Duration::from_millis(500)));
    }
}
