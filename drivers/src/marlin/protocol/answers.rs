//! What the printer says: `ok`s, probe answers, errors, restarts, busy and host actions.

use std::time::Instant;

use super::{
    Phase, Protocol, ProtocolEvent, Purpose, SYNC_LINES, Stream, acknowledges_moves_on_read,
    auto_line_window, firmware_name, is_move,
};
use crate::marlin::reply::{self, ErrorReply, HostAction, Reply, Temperatures};
use crate::traffic::Direction;

impl Protocol {
    pub(super) fn handle_line(&mut self, line: &str, now: Instant) {
        self.traffic
            .record(self.at_ms(now), Direction::Received, line);
        let after_resend = std::mem::take(&mut self.swallow_ok);
        let stale_request = self.stale_request.take();
        let reply = reply::parse(line);
        let follows_unknown_command = std::mem::replace(
            &mut self.after_unknown_command,
            matches!(&reply, Reply::Other(text) if text.starts_with("echo:Unknown command")),
        );
        match reply {
            Reply::Ok { .. } if after_resend => {}
            Reply::Ok {
                line, temperatures, ..
            } => {
                self.end_wait_for_user();
                let answered_m105 = temperatures.is_some();
                if let Some(temperatures) = temperatures {
                    self.set_temperatures(temperatures);
                }
                self.on_ok(line, answered_m105, follows_unknown_command, now);
            }
            Reply::Resend(number) => self.on_resend(number, stale_request, now),
            Reply::Error(error) => {
                // The printer began this answer a line's wire time before its end came.
                let wire_time = self.settings.byte_time * (line.len() as u32 + 1);
                let began = now.checked_sub(wire_time).unwrap_or(now);
                self.on_error(error, began, now)
            }
            Reply::Busy(what) => {
                self.last_progress = now;
                self.on_busy(&what);
            }
            Reply::Start => self.on_start(now),
            Reply::Action(action) => self.on_action(action, now),
            Reply::Temperatures(temperatures) => {
                if self.stream.as_ref().is_some_and(|s| s.long_in_flight()) {
                    // Marlin reports temperatures every second while it waits in M109/M190.
                    self.last_progress = now;
                }
                self.set_temperatures(temperatures);
            }
            Reply::FirmwareInfo(info) => self.firmware = Some(firmware_name(&info)),
            Reply::Other(_) => {}
        }
    }

    fn set_temperatures(&mut self, temperatures: Temperatures) {
        self.events
            .push_back(ProtocolEvent::Temperatures(temperatures.clone()));
        self.temperatures = Some(temperatures);
    }

    /// `follows_unknown_command`: Marlin reported an unknown command just before; its `ok` is
    /// for a line read wrongly, not executed.
    fn on_ok(
        &mut self,
        advanced_line: Option<u64>,
        answered_m105: bool,
        follows_unknown_command: bool,
        now: Instant,
    ) {
        self.last_progress = now;
        match self.phase {
            Phase::Handshake { info_requested, .. } => {
                if info_requested && self.firmware.is_none() && self.late_hello_oks > 0 {
                    // M115 names the firmware before its `ok`: this one answers an earlier
                    // hello. Taken for M115's, the handshake would end before the firmware is
                    // known, and M115's own `ok` would then run the job's count ahead.
                    self.late_hello_oks -= 1;
                    return;
                }
                self.outside_pending = self.outside_pending.saturating_sub(1);
                if self.outside_pending > 0 {
                    return;
                }
                if self.outside_next.is_none() {
                    // The hello or M115 was rejected (noise): start again, M115 included (the
                    // window depends on its answer).
                    self.send_outside("M110 N0", now);
                    self.phase = Phase::Handshake {
                        next_try: now + self.settings.handshake_retry,
                        info_requested: false,
                    };
                } else if !info_requested {
                    self.send_outside("M115", now);
                    self.phase = Phase::Handshake {
                        next_try: now + self.settings.handshake_retry,
                        info_requested: true,
                    };
                } else {
                    self.phase = Phase::Ready;
                    if self.window_refused() {
                        self.note_refused_window(now);
                    }
                    // Read the temperatures at once: they tell whether a printer kept its
                    // state across a reconnect (heaters still on) before anyone resumes a job.
                    self.next_poll = now;
                    self.events.push_back(ProtocolEvent::Ready {
                        firmware: self.firmware.clone(),
                        line_window: self.line_window(),
                    });
                }
                return;
            }
            Phase::Ready => {}
            Phase::Halted { .. } | Phase::Dead { .. } => return,
        }
        if self.outside_pending > 0 {
            self.outside_pending -= 1;
            self.pump(now);
            return;
        }
        // Only the tail of a line cut by Marlin 1.1/2.x's receive-buffer flush makes an `ok`
        // for no line; it needs a window, and firmware whose auto window is 1.
        let tails_run = self.line_window() > 1 && auto_line_window(self.firmware.as_deref()) == 1;
        let moves_acked_on_read = acknowledges_moves_on_read(self.firmware.as_deref());
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        self.tickle_at = None;
        stream.late_request_taken = false;
        if follows_unknown_command && stream.settle.is_some() {
            // The tail of a stale line cut after its `*` (`17`), read as a command: that line
            // has answered, without a line error (no flush).
            self.stale_line_answered(now);
            return;
        }
        // `confirmed`: a line the firmware has certainly executed (a plain `ok` may be stray).
        let (acked, confirmed) = if answered_m105
            && moves_acked_on_read
            && let Some(probe) = stream.probes.pop_front()
        {
            // The plain `ok`s that came while the probe was the oldest line in flight were
            // the moves behind it, acknowledged as they were read.
            let moves_behind = stream.lines[probe + 1..stream.next]
                .iter()
                .take_while(|line| is_move(&line.text))
                .count();
            (
                probe + 1 + stream.oks_behind_probe.min(moves_behind),
                Some(probe),
            )
        } else if answered_m105 && let Some(probe) = Self::answered_probe(stream, tails_run) {
            // Marlin executes in order: everything up to the probe was accepted and executed.
            (probe + 1, Some(probe))
        } else if let Some(n) = advanced_line.map(|n| n as usize)
            && n >= stream.acked
            && n < stream.next
        {
            (n + 1, Some(n))
        } else if stream.acked < stream.next && !stream.lines[stream.acked].probe {
            (stream.acked + 1, None)
        } else {
            // Nothing in flight, or the oldest line is a probe, which only `ok T:` answers
            // (lines after it execute after it): a stray `ok`. It may also be the probe itself,
            // its `N` hit by noise and read as an unknown command; a second probe tells at
            // once (Marlin rejects it and asks for the first) instead of after a timeout.
            stream.stray_ok_since_confirmed = true;
            if !follows_unknown_command {
                stream.oks_behind_probe += 1;
            }
            if stream.acked >= SYNC_LINES && !follows_unknown_command {
                if tails_run {
                    tracing::warn!(
                        "an `ok` for no line: the tail of a line cut by the printer's \
                         receive-buffer flush may have run unchecked (a command may have run twice)"
                    );
                } else {
                    // The count ran behind (a jump over copies of accepted lines, a lost
                    // `ok`): the next probe puts it right.
                    tracing::debug!("an `ok` for no line");
                }
            }
            if stream.acked < stream.next
                    && !moves_acked_on_read
                    && stream.probes.len() == 1
                    && stream.settle.is_none()
                    && stream.next >= stream.sent_high
                    // Before an abort's second `M110`, `ok`s of the aborted job's lines are
                    // expected: no probe may go out until the numbering is certain.
                    && !stream.renumbering_before(stream.lines.len())
            {
                self.send_probe_now(now);
            }
            return;
        };
        if acked == stream.acked + 1 {
            let line = stream.acked;
            self.learn_answer_latency(line, now);
        }
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        stream.acked = acked;
        stream.oks_behind_probe = 0;
        if confirmed.is_some() {
            stream.confirmed = confirmed;
            stream.stray_ok_since_confirmed = false;
        }
        self.report_progress();
        self.finish_stream_if_done(now);
        self.pump(now);
    }

    /// The probe an `ok T:` answers: the oldest one outstanding, unless the plain `ok`s that came
    /// while it was the oldest line in flight cover every command between it and the next probe.
    /// Marlin answers in order and a probe only with `ok T:`, so those `ok`s prove its answer was
    /// taken earlier for another (a stale resend request made us drop and resend a probe the
    /// firmware had accepted): this answer is the next probe's. Without that, the count stays one
    /// answer behind and every window waits out a timeout. Not where cut tails run
    /// ([`Settings::in_flight`](super::Settings::in_flight) above 1 on firmware not known to reject
    /// them): there a plain `ok` may answer no line at all.
    pub(super) fn answered_probe(stream: &mut Stream, tails_run: bool) -> Option<usize> {
        let oldest = *stream.probes.front()?;
        if let Some(&next) = stream.probes.get(1)
            && !tails_run
        {
            let commands = (oldest + 1..next)
                .filter(|&line| !stream.lines[line].probe)
                .count();
            if commands > 0 && stream.oks_behind_probe >= commands {
                stream.probes.pop_front();
            }
        }
        stream.probes.pop_front()
    }

    pub(super) fn report_progress(&mut self) {
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        if stream.purpose != Purpose::Job {
            return;
        }
        let done = stream.done();
        let percent = done * 100 / stream.total.max(1);
        if stream.reported_percent.is_none_or(|p| percent > p) {
            stream.reported_percent = Some(percent);
            self.events.push_back(ProtocolEvent::JobProgress {
                done,
                total: stream.total,
            });
        }
    }

    fn finish_stream_if_done(&mut self, now: Instant) {
        let Some(stream) = &self.stream else { return };
        let all_sent = stream.next == stream.lines.len();
        let proven = stream.lines.last().is_some_and(|l| l.probe);
        if !(all_sent && stream.acked == stream.next && proven) {
            return;
        }
        let purpose = stream.purpose;
        let total = stream.total;
        let last_reported = stream.reported_percent;
        self.outside_next = Some(stream.lines.len() as u64);
        self.stream = None;
        self.next_poll = now + self.settings.poll_interval;
        match purpose {
            Purpose::Job => {
                if last_reported != Some(100) {
                    self.events
                        .push_back(ProtocolEvent::JobProgress { done: total, total });
                }
                self.events.push_back(ProtocolEvent::JobDone);
            }
            Purpose::Cancel => self.events.push_back(ProtocolEvent::CancelDone),
        }
    }

    /// `began`: when the printer started writing the error line.
    fn on_error(&mut self, error: ErrorReply, began: Instant, now: Instant) {
        self.traffic.counters.errors += 1;
        match error {
            ErrorReply::Line { last_line, .. } => self.on_line_error(last_line, began, now),
            ErrorReply::Fatal(reason) => {
                if matches!(self.phase, Phase::Halted { .. }) {
                    return;
                }
                if self.job_active() {
                    self.events.push_back(ProtocolEvent::JobInterrupted {
                        reason: format!("the printer halted: {reason}"),
                        resume: None,
                    });
                }
                self.stream = None;
                self.phase = Phase::Halted {
                    reason: reason.clone(),
                };
                self.events.push_back(ProtocolEvent::Halted { reason });
            }
            ErrorReply::Command(reason) => {
                if self.job_active() {
                    self.events.push_back(ProtocolEvent::JobFailed {
                        reason: format!("the printer reported an error: {reason}"),
                    });
                    self.switch_to_cancel_script(now);
                }
            }
        }
    }

    fn on_start(&mut self, now: Instant) {
        if matches!(self.phase, Phase::Handshake { .. }) {
            // The board rebooted as the port opened (DTR); earlier hellos are lost.
            self.events.push_back(ProtocolEvent::Booted);
            self.restart_handshake(now);
            return;
        }
        self.events.push_back(ProtocolEvent::FirmwareReset);
        self.interrupt_and_rehandshake(
            "the firmware restarted mid-job (it printed 'start'): its state is lost".into(),
            now,
        );
    }

    pub(super) fn interrupt_and_rehandshake(&mut self, reason: String, now: Instant) {
        if self.job_active() {
            self.events.push_back(ProtocolEvent::JobInterrupted {
                reason,
                resume: None,
            });
        }
        self.stream = None;
        self.restart_handshake(now);
    }

    /// `busy: paused for user` (M0/M1, a filament change): the job waits for someone at the
    /// printer's screen, which the operator must hear about; any other answer ends the wait.
    fn on_busy(&mut self, what: &str) {
        let waits_for_user = what.starts_with("paused for");
        if waits_for_user && !self.waiting_for_user && self.job_active() {
            self.events.push_back(ProtocolEvent::PausedByPrinter {
                reason: format!("the printer waits for someone at its screen (busy: {what})"),
            });
        } else if !waits_for_user {
            self.end_wait_for_user();
        }
        self.waiting_for_user = waits_for_user && self.job_active();
    }

    fn end_wait_for_user(&mut self) {
        if std::mem::take(&mut self.waiting_for_user) && self.job_active() {
            self.events.push_back(ProtocolEvent::ResumedByPrinter);
        }
    }

    fn on_action(&mut self, action: HostAction, now: Instant) {
        match action {
            HostAction::Pause | HostAction::Paused => {
                if let Ok(stream) = self.job_mut()
                    && !stream.paused
                {
                    stream.paused = true;
                    self.events.push_back(ProtocolEvent::PausedByPrinter {
                        reason: "the printer asked to pause (//action:pause)".into(),
                    });
                }
            }
            HostAction::Resume | HostAction::Resumed => {
                if let Ok(stream) = self.job_mut()
                    && stream.paused
                {
                    stream.paused = false;
                    self.events.push_back(ProtocolEvent::ResumedByPrinter);
                    self.pump(now);
                }
            }
            HostAction::Cancel => {
                let _ = self.cancel("cancelled on the printer (//action:cancel)", now);
            }
            HostAction::Other(_) => {}
        }
    }

    pub(super) fn restart_handshake(&mut self, now: Instant) {
        // The board may have been flashed with other firmware: a name from before must not
        // choose the window.
        self.firmware = None;
        self.late_hello_oks = self.outside_pending;
        self.outside_pending = 0;
        self.swallow_ok = false;
        self.stale_request = None;
        self.line_errors = None;
        self.tickle_at = None;
        self.phase = Phase::Handshake {
            next_try: now + self.settings.handshake_retry,
            info_requested: false,
        };
        self.send_outside("M110 N0", now);
    }
}
