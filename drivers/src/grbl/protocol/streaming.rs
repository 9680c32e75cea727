//! Character-counting streaming, and the answers that acknowledge the lines in flight.

use std::time::Instant;

use super::{GrblProtocol, OperatorWait, Sent, Stop, Streaming, ToolChangeStop};
use crate::grbl::codes::GrblError;
use crate::grbl::reply::{MachineState, Reply};
use crate::traffic::Direction;
use crate::{DriverError, DriverEvent};

impl GrblProtocol {
    /// Send what fits into the firmware's receive buffer: operator commands first, then job lines.
    pub(super) fn stream(&mut self, now: Instant) {
        if self.link_down.is_some() || self.stop.is_some() {
            return;
        }
        loop {
            let (text, sent): (String, Sent) =
                if self.parser_state_wanted && self.status.state.is_some() {
                    ("$G".into(), Sent::ParserStateQuery)
                } else if let Some(&(action, text)) = self.operator_queue.front() {
                    (text.into(), Sent::Operator(action))
                } else if let Some(job) = &self.job {
                    if job.at_tool_change() {
                        return;
                    }
                    match job.program.lines.get(job.next_to_send) {
                        Some(line) => (line.clone(), Sent::JobLine(job.next_to_send)),
                        None => return,
                    }
                } else {
                    return;
                };
            let bytes = text.len() + 1;
            let window_full = match self.config.streaming {
                Streaming::CharacterCounting => {
                    self.in_flight_bytes + bytes > self.config.rx_buffer
                }
                Streaming::SendAndWait => !self.in_flight.is_empty(),
            };
            if window_full {
                return;
            }
            match sent {
                Sent::ParserStateQuery => self.parser_state_wanted = false,
                Sent::Operator(_) => {
                    self.operator_queue.pop_front();
                }
                Sent::JobLine(_) => {
                    if let Some(job) = &mut self.job {
                        job.next_to_send += 1;
                    }
                }
            }
            self.in_flight_bytes += bytes;
            self.in_flight.push_back((bytes, sent));
            self.output.lines.extend_from_slice(text.as_bytes());
            self.output.lines.push(b'\n');
            let at = self.at_ms(now);
            self.traffic.record(at, Direction::Sent, text);
        }
    }

    pub(super) fn handle_line(&mut self, now: Instant, line: &str) {
        let reply = Reply::parse(line);
        if !matches!(reply, Reply::Status(_)) {
            let at = self.at_ms(now);
            self.traffic.record(at, Direction::Received, line);
        }
        match reply {
            Reply::Ok => self.acknowledged(now, None),
            Reply::Error(error) => {
                self.traffic.counters.errors += 1;
                self.acknowledged(now, Some(error));
            }
            Reply::Alarm(alarm) => {
                self.status.last_alarm = Some(alarm);
                self.status.state = Some(MachineState::Alarm);
                self.interrupt_job(&alarm.to_string());
                if !matches!(self.operator_wait, Some(OperatorWait::Reset)) {
                    self.finish_operator(Err(DriverError::Refused(alarm.to_string())));
                }
                // GRBL flushes its buffers on an alarm: nothing in flight will be answered.
                self.in_flight.clear();
                self.in_flight_bytes = 0;
            }
            Reply::Status(report) => self.status_report(now, report),
            Reply::Welcome { version } => {
                self.status.firmware_version = Some(version);
                if !matches!(self.stop, Some(Stop::Resetting { .. })) {
                    self.interrupt_job("the controller reset (welcome banner mid-job)");
                }
                self.reset_required = false;
                let outcome = match self.operator_wait {
                    Some(OperatorWait::Reset) => Ok(()),
                    _ => Err(DriverError::Refused(
                        "the controller reset before it answered".into(),
                    )),
                };
                self.finish_operator(outcome);
                self.forget_firmware_state(now);
                self.output.discard_queued = true;
            }
            Reply::Feedback { kind, text } => match kind.as_str() {
                "MSG" => {
                    if text == "Reset to continue" {
                        self.reset_required = true;
                    }
                    self.status.last_message = Some(text);
                }
                "GC" => self.status.gcode_modes = Some(text),
                _ => {}
            },
            Reply::Setting { .. } | Reply::StartupLine(_) => {}
            Reply::Unknown(text) => {
                tracing::debug!(line = %text, "unrecognised line from GRBL");
            }
        }
    }

    pub(super) fn acknowledged(&mut self, now: Instant, error: Option<GrblError>) {
        let Some((bytes, sent)) = self.in_flight.pop_front() else {
            // Expected after an alarm: lines still on the wire when GRBL flushed its buffers
            // come back as `error:9`. Anywhere else an answer for nothing is a broken link.
            if self.status.state == Some(MachineState::Alarm) {
                tracing::debug!(?error, "an answer for a line flushed by the alarm");
            } else {
                tracing::warn!(?error, "an answer for no line in flight");
            }
            return;
        };
        self.in_flight_bytes -= bytes;
        self.idle_unanswered_since = None;
        match sent {
            Sent::JobLine(index) => {
                let Some(job) = &mut self.job else {
                    return;
                };
                if let Some(error) = error {
                    let line_number = job.program.source_lines[index];
                    let reason = format!(
                        "{error} at line {line_number}: {}",
                        job.program.lines[index]
                    );
                    self.interrupt_job(&reason);
                    self.start_stop(now);
                    return;
                }
                job.acknowledged += 1;
                let total = job.program.lines.len() as u64;
                let done = job.acknowledged as u64;
                let percent = done * 100 / total.max(1);
                if percent != job.progress_percent {
                    job.progress_percent = percent;
                    self.events.push_back(DriverEvent::JobProgress {
                        job_id: job.job_id,
                        done,
                        total,
                    });
                }
                self.check_all_acknowledged(now);
            }
            Sent::Operator(action) => {
                match error {
                    Some(error) => {
                        tracing::warn!(action = action.name(), %error, "operator command refused");
                        self.finish_operator(Err(DriverError::Refused(format!(
                            "{} answered {error}",
                            action.name()
                        ))));
                    }
                    None => {
                        tracing::info!(action = action.name(), "operator command answered ok");
                        if self.operator_wait == Some(OperatorWait::Answer(action)) {
                            self.operator_wait = Some(OperatorWait::LeftAlarm {
                                action,
                                after_poll: self.poll.sent + 1,
                            });
                            self.poll.due = now;
                        }
                    }
                }
                self.status.last_operator_reply = Some((action, error));
            }
            Sent::ParserStateQuery => {}
        }
    }

    pub(super) fn check_all_acknowledged(&mut self, now: Instant) {
        let Some(job) = &mut self.job else {
            return;
        };
        if job.at_tool_change() && job.acknowledged == job.next_to_send && job.tool_change.is_none()
        {
            job.tool_change = Some(ToolChangeStop::Draining {
                after_poll: self.poll.sent + 1,
            });
            self.poll.due = now;
        }
        if job.acknowledged == job.program.lines.len() && job.finish_after_poll.is_none() {
            // Only a report requested from now on can say the last move has finished.
            job.finish_after_poll = Some(self.poll.sent + 1);
            self.poll.due = now;
        }
    }
}
