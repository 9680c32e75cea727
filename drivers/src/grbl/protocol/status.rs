//! Status reports: what the firmware says about itself, lost answers, and the condition shown.

use std::time::Instant;

use super::{GrblOperatorAction, GrblProtocol, OperatorWait, Sent, Stop, ToolChangeStop};
use crate::grbl::codes::{GrblAlarm, GrblError};
use crate::grbl::gcode::words;
use crate::grbl::reply::{MachineState, StatusReport};
use crate::{Condition, DriverError, DriverEvent};

/// What the firmware last told us about itself.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MachineStatus {
    pub state: Option<MachineState>,
    pub machine_position: Option<Vec<f64>>,
    pub work_position: Option<Vec<f64>>,
    pub work_offset: Option<Vec<f64>>,
    /// Free planner blocks and free serial RX bytes.
    pub buffer: Option<(u32, u32)>,
    pub feed: Option<f64>,
    pub spindle_speed: Option<f64>,
    pub overrides: Option<(u32, u32, u32)>,
    pub pins: Option<String>,
    /// The parser state from `$G` (`G0 G54 G17 G21 G90 G94 M5 M9 T0 F0 S0`).
    pub gcode_modes: Option<String>,
    /// From the welcome banner.
    pub firmware_version: Option<String>,
    /// The last `[MSG:...]`.
    pub last_message: Option<String>,
    pub last_alarm: Option<GrblAlarm>,
    /// The answer to the last `$X`/`$H`: `None` inside is `ok`.
    pub last_operator_reply: Option<(GrblOperatorAction, Option<GrblError>)>,
}

impl MachineStatus {
    fn merge(&mut self, report: StatusReport) {
        self.state = report.state;
        if report.work_offset.is_some() {
            self.work_offset = report.work_offset;
        }
        let offset = |pos: &[f64], sign: f64| -> Option<Vec<f64>> {
            let wco = self.work_offset.as_ref()?;
            Some(pos.iter().zip(wco).map(|(p, o)| p + sign * o).collect())
        };
        if let Some(mpos) = report.machine_position {
            self.work_position = offset(&mpos, -1.0);
            self.machine_position = Some(mpos);
        } else if let Some(wpos) = report.work_position {
            self.machine_position = offset(&wpos, 1.0);
            self.work_position = Some(wpos);
        }
        if report.buffer.is_some() {
            self.buffer = report.buffer;
        }
        if report.feed.is_some() {
            self.feed = report.feed;
        }
        if report.spindle_speed.is_some() {
            self.spindle_speed = report.spindle_speed;
        }
        if report.overrides.is_some() {
            self.overrides = report.overrides;
        }
        // GRBL omits `Pn:` when no pin is triggered.
        self.pins = report.pins;
    }
}

impl GrblProtocol {
    pub(super) fn alarm_reason(&self) -> String {
        let alarm = match (self.status.last_alarm, &self.status.last_message) {
            (Some(alarm), _) => alarm.to_string(),
            (None, Some(message)) => format!("alarm state ({message})"),
            (None, None) => "alarm state: unlock ($X) or home ($H)".into(),
        };
        if self.reset_required {
            format!(
                "{alarm}; the controller takes nothing but a reset: reset first, then home or unlock"
            )
        } else {
            alarm
        }
    }

    pub(super) fn status_report(&mut self, now: Instant, report: StatusReport) {
        if self.poll.sent_at.take().is_some() {
            self.poll.answered = self.poll.sent;
        }
        let answered = self.poll.answered;
        self.status.merge(report);
        let state = self.status.state;
        if state != Some(MachineState::Alarm) {
            self.status.last_alarm = None;
        }
        if let Some(Stop::Holding { after_poll }) = self.stop {
            let stopped = !matches!(
                state,
                Some(
                    MachineState::Run
                        | MachineState::Jog
                        | MachineState::Home
                        | MachineState::Hold(1..)
                )
            );
            if answered >= after_poll && stopped {
                self.send_reset(now);
            }
        } else if let Some(Stop::Resetting { after_poll }) = self.stop
            && answered >= after_poll
        {
            self.finish_operator(Ok(()));
            self.stop = None;
            self.in_flight.clear();
            self.in_flight_bytes = 0;
            self.parser_state_wanted = true;
            self.stream(now);
        }
        if let Some(OperatorWait::LeftAlarm { action, after_poll }) = self.operator_wait
            && answered >= after_poll
        {
            let outcome = if state == Some(MachineState::Alarm) {
                Err(DriverError::Refused(format!(
                    "the controller is still in alarm after {}: {}",
                    action.name(),
                    self.alarm_reason()
                )))
            } else {
                Ok(())
            };
            self.finish_operator(outcome);
        }
        self.detect_lost_answers(now);
        if let Some(job) = &mut self.job
            && let Some(ToolChangeStop::Draining { after_poll }) = job.tool_change
            && answered >= after_poll
            && state == Some(MachineState::Idle)
        {
            job.tool_change = Some(ToolChangeStop::Waiting);
        }
        let finished = self.job.as_ref().is_some_and(|job| {
            job.finish_after_poll.is_some_and(|after| answered >= after)
                && state == Some(MachineState::Idle)
        });
        if finished && let Some(job) = self.job.take() {
            self.pause_requested = false;
            self.events.push_back(DriverEvent::JobFinished {
                job_id: job.job_id,
                scrapped: 0,
                scrap_reason: None,
            });
        }
    }

    /// Idle means GRBL's planner is empty and it parses what it receives within milliseconds;
    /// lines still unanswered long after that had their answer lost on the wire. A dwell (`G4`)
    /// in flight keeps the controller idle legitimately, so it suspends the check.
    fn detect_lost_answers(&mut self, now: Instant) {
        let Some(job) = &self.job else {
            self.idle_unanswered_since = None;
            return;
        };
        let dwell_in_flight = self.in_flight.iter().any(|(_, sent)| match sent {
            Sent::JobLine(index) => words(&job.program.lines[*index])
                .is_ok_and(|words| words.iter().any(|w| w.letter == 'G' && w.value == 4.0)),
            _ => false,
        });
        let waiting = self.status.state == Some(MachineState::Idle)
            && !self.in_flight.is_empty()
            && !dwell_in_flight;
        match self.idle_unanswered_since {
            _ if !waiting => self.idle_unanswered_since = None,
            None => self.idle_unanswered_since = Some(now),
            Some(since) if now.saturating_duration_since(since) >= self.config.ack_timeout => {
                let reason = format!(
                    "the controller is idle but {} line(s) were never answered (an 'ok' was \
                     lost on the link); executed up to about line {}",
                    self.in_flight.len(),
                    job.acknowledged
                );
                self.interrupt_job(&reason);
                self.in_flight.clear();
                self.in_flight_bytes = 0;
                self.idle_unanswered_since = None;
            }
            Some(_) => {}
        }
    }

    fn current_condition(&self) -> Condition {
        if let Some(reason) = &self.link_down {
            return Condition::Unavailable {
                reason: reason.clone(),
            };
        }
        let busy_with_job = self.job.is_some() || self.stop.is_some();
        match self.status.state {
            None => Condition::Unavailable {
                reason: "waiting for the controller's status".into(),
            },
            Some(MachineState::Alarm) => Condition::Alarm {
                reason: self.alarm_reason(),
            },
            Some(MachineState::Check) => Condition::Unavailable {
                reason: "check mode ($C): motion is disabled".into(),
            },
            Some(MachineState::Sleep) => Condition::Unavailable {
                reason: "sleep mode: reset to wake".into(),
            },
            Some(MachineState::Hold(_))
                if self.pause_requested || matches!(self.stop, Some(Stop::Holding { .. })) =>
            {
                Condition::Paused
            }
            Some(MachineState::Hold(sub)) => Condition::Held {
                reason: format!(
                    "feed hold microfab did not send (Hold:{sub}: a feed-hold button or line \
                     noise): resume or abort"
                ),
            },
            Some(MachineState::Door(sub)) => Condition::Held {
                reason: match sub {
                    0 => "safety door closed again (Door:0): resume or abort".into(),
                    1 => "safety door open (Door:1): close it, then resume or abort".into(),
                    2 => "safety door opened, the machine is stopping (Door:2): close it, then \
                          resume or abort"
                        .into(),
                    _ => format!("safety door closed, the machine is restoring (Door:{sub})"),
                },
            },
            Some(MachineState::Run | MachineState::Jog | MachineState::Home) => Condition::Busy,
            Some(MachineState::Idle) => match &self.job {
                Some(job) if job.tool_change == Some(ToolChangeStop::Waiting) => {
                    let change = &job.program.tool_changes[0];
                    let tool = change
                        .tool
                        .map_or("the next tool".into(), |t| format!("tool {t}"));
                    Condition::WaitingForOperator {
                        reason: format!(
                            "change to {tool} (M6 on program line {}), set its length, then \
                             confirm job {}",
                            change.source_line, job.job_id
                        ),
                    }
                }
                _ if busy_with_job || !self.operator_queue.is_empty() => Condition::Busy,
                _ => Condition::Idle,
            },
        }
    }

    pub(super) fn update_condition(&mut self) {
        let condition = self.current_condition();
        if self.condition.as_ref() != Some(&condition) {
            self.condition = Some(condition.clone());
            self.events.push_back(DriverEvent::Condition(condition));
        }
    }
}
