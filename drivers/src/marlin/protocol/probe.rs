//! Silence probed early and judged late: the tickle, the timeouts, inserted `M105` probes.

use std::time::Instant;

use super::{LateStale, MAX_ANSWER_LATENCY, Protocol, Stream, StreamLine};

impl Protocol {
    /// When silence sends a probe, or, once one is out, declares the link dead.
    pub(super) fn stall_deadline(&self, stream: &Stream) -> Instant {
        let limit = if stream.long_in_flight() {
            self.settings.long_command_timeout
        } else {
            self.settings.command_timeout
        };
        match self.tickle_at {
            None if stream.late_request_taken => {
                self.last_progress
                    + self.settings.byte_time * stream.bytes_in_flight() as u32
                    + self.answer_latency
                    + self.settings.resend_settle
            }
            None => self.last_progress + limit.min(self.settings.silence_probe),
            Some(tickle_at) => self.last_progress.max(tickle_at) + limit,
        }
    }

    pub(super) fn ready_timeout(&mut self, now: Instant) {
        let Some(stream) = &self.stream else {
            if self.outside_pending > 0 {
                let deadline =
                    self.poll_sent_at.max(self.last_progress) + self.settings.command_timeout;
                if now >= deadline {
                    let secs = self.settings.command_timeout.as_secs_f64();
                    self.link_dead(format!("no answer to M105 for {secs} s"));
                }
            } else if now >= self.next_poll {
                self.send_outside("M105", now);
                self.poll_sent_at = now;
                self.next_poll = now + self.settings.poll_interval;
            }
            return;
        };
        if stream
            .settle
            .is_some_and(|settle| now >= settle.ends_at(self.last_rx, &self.settings))
        {
            if let Some(stream) = self.stream.as_mut()
                && let Some(settle) = stream.settle.take()
            {
                stream.late_stale = Some(LateStale {
                    from: settle.from,
                    due: settle.unanswered,
                    until: now + MAX_ANSWER_LATENCY,
                });
            }
            self.pump(now);
            return;
        }
        if stream.in_flight() > 0 {
            if now < self.stall_deadline(stream) {
                return;
            }
            if self.tickle_at.is_some() {
                let long = stream.long_in_flight();
                self.link_dead(format!(
                    "the printer stopped answering ({} timeout, and no answer to M105)",
                    if long { "long-command" } else { "command" }
                ));
                return;
            }
            self.tickle_at = Some(now);
            // Nothing came for a while: an answer the count still waits for came already,
            // taken for another line's after a late stale request, or was lost. Only the
            // tickle's own answer proves anything now.
            if let Some(stream) = self.stream.as_mut() {
                stream.probes.clear();
            }
            self.send_probe_now(now);
        } else if stream.paused {
            if now >= self.next_poll {
                self.next_poll = now + self.settings.poll_interval;
                self.last_progress = now;
                self.send_probe_now(now);
            }
        } else if now >= self.last_progress + self.settings.command_timeout {
            // Nothing in flight, nothing held, yet nothing sent: an answer went missing. Send
            // again (the stream opens with `M110`); a probe resynchronises the count.
            tracing::warn!("marlin stream stalled with nothing in flight; probing");
            self.last_progress = now;
            self.outside_pending = 0;
            self.pump(now);
            if self.stream.as_ref().is_some_and(|s| s.in_flight() == 0) {
                self.send_probe_now(now);
            }
        }
    }

    /// Insert a numbered M105 at the send position and send it regardless of the window. Below
    /// [`Stream::sent_high`] (after a rewind) the line there goes instead: inserting would give
    /// later lines new numbers, and after a rewind from a late stale request the firmware may
    /// have accepted them under the old ones: it would run them again. Either line draws an
    /// answer.
    pub(super) fn send_probe_now(&mut self, now: Instant) {
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        if stream.next >= stream.sent_high {
            let at = stream.next;
            stream.lines.insert(at, StreamLine::added("M105"));
        } else if stream.next == stream.lines.len() {
            return;
        }
        self.send_numbered(now);
    }
}
