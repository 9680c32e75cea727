//! Window and resend bookkeeping: stale lines, the settle wait, answer latency, the fallback.

use std::time::{Duration, Instant};

use super::{Protocol, SYNC_LINES, Settle};
use crate::traffic::Direction;

/// The line errors counted since the last resend request (see [`Protocol::line_errors`]) that
/// named `line - 1` as the last line accepted: lines already rejected when Marlin asks for
/// `line`.
fn rejected_before(line_errors: &mut Option<(Option<u64>, usize)>, line: usize) -> usize {
    match line_errors.take() {
        Some((last_line, count)) if last_line.is_none_or(|l| l + 1 == line as u64) => count,
        _ => 0,
    }
}

/// Whatever the firmware does with a window's stale lines, a stream whose resend requests pass
/// this share of the lines sent (after [`WINDOW_FALLBACK_AFTER`] lines; 1 % line corruption
/// makes about 1 %) goes on with one line in flight, which no flush can cut.
pub const WINDOW_FALLBACK_SHARE: f64 = 0.05;

pub const WINDOW_FALLBACK_AFTER: usize = 200;

/// The longest answer latency a resend waits for: a printer slower than this to answer a line
/// is not one a window can keep busy anyway (the fallback to one line in flight takes over).
pub const MAX_ANSWER_LATENCY: Duration = Duration::from_millis(100);

impl Protocol {
    /// `stale_request`: the line before was the `Error:` of a stale line already counted as
    /// answered; this is its request.
    pub(super) fn on_resend(&mut self, number: u64, stale_request: Option<usize>, now: Instant) {
        self.last_progress = now;
        self.tickle_at = None;
        let line_window = self.line_window();
        let at_ms = self.at_ms(now);
        // Outside lines are answered before a stream sends anything (`pump` waits for them),
        // so while one is pending the request is about it, even if a job has just started.
        let stream = match self.stream.as_mut() {
            Some(stream) if self.outside_pending == 0 => stream,
            _ => {
                // An idle poll or the handshake was rejected: nothing to resend, but the
                // numbering is in doubt until the next `M110` (every stream starts with one).
                self.outside_next = None;
                if !self.settings.ok_after_resend {
                    self.outside_pending = self.outside_pending.saturating_sub(1);
                    self.pump(now);
                }
                return;
            }
        };
        self.swallow_ok = self.settings.ok_after_resend;
        let requested = usize::try_from(number).unwrap_or(usize::MAX);
        if stale_request == Some(requested) {
            return;
        }
        let rewind_to = if stream.acked < SYNC_LINES && requested != 1 {
            // Only M110 and the sync probe are in flight, and until M110 gets through the
            // firmware counts from its old numbering: start over from M110.
            0
        } else if stream.settle.is_some_and(|settle| requested == settle.from) {
            // A stale line's request whose `Error:` did not come as a line error: it answered.
            self.stale_line_answered(now);
            return;
        } else if requested >= stream.next {
            if requested <= stream.sent_high {
                // Marlin asks for the line after the last one it accepted, so it accepted every
                // line before, whatever the count says: after a rewind from a late stale
                // request their `ok`s were taken for no line, and the lines counted in flight
                // are copies it rejects, each with this same request.
                let rejected = rejected_before(&mut self.line_errors, requested);
                let copies = stream.in_flight().saturating_sub(rejected.max(1));
                let delivered_by =
                    stream.last_delivery().unwrap_or(self.last_tx) + self.answer_latency;
                stream.settle = (copies > 0).then_some(Settle {
                    from: requested,
                    delivered_by,
                    unanswered: copies,
                });
                stream.next = requested;
                if stream.acked < requested {
                    stream.acked = requested;
                    // Accepted is not executed: a resume goes back to the last probe.
                    stream.stray_ok_since_confirmed = true;
                }
                stream.probes.retain(|&probe| probe >= requested);
                self.report_progress();
            }
            // With nothing in flight, nothing else would send the next line.
            self.pump(now);
            return;
        } else if stream
            .confirmed
            .is_some_and(|confirmed| requested + line_window < confirmed)
        {
            // (Slack of one window: the tail of a probe cut by Marlin's receive-buffer flush
            // can answer for the probe.)
            let reason = format!(
                "the printer asked for line {requested}, which it had executed: it lost its state"
            );
            self.interrupt_and_rehandshake(reason, now);
            return;
        } else {
            requested
        };
        if stream.last_resend != Some(rewind_to) {
            stream.consecutive_resends = 0;
        }
        stream.last_resend = Some(rewind_to);
        stream.consecutive_resends += 1;
        self.traffic.counters.resends += 1;
        stream.resends += 1;
        if !stream.single_line
            && line_window > 1
            && stream.sent_high >= WINDOW_FALLBACK_AFTER
            && stream.resends as f64 > WINDOW_FALLBACK_SHARE * stream.sent_high as f64
        {
            stream.single_line = true;
            let note = format!(
                "{} resends for {} lines with {line_window} in flight: one line in flight for \
                 the rest of this stream",
                stream.resends, stream.sent_high
            );
            tracing::warn!("marlin: {note}");
            self.traffic.counters.window_fallbacks += 1;
            self.traffic.record(at_ms, Direction::Note, note);
        }
        if stream.consecutive_resends > self.settings.max_consecutive_resends {
            let reason = format!(
                "{} resend requests in a row for line {rewind_to}: the link is faulty",
                stream.consecutive_resends
            );
            self.link_dead(reason);
            return;
        }
        // Every line sent from the rejected one on is rejected once; those whose `Error:` has
        // come (the rejected line's own, and stale ones ahead of this request) are done.
        let rejected = rejected_before(&mut self.line_errors, rewind_to);
        let unanswered = stream.next.saturating_sub(rewind_to + rejected.max(1));
        let delivered_by = stream.last_delivery().unwrap_or(self.last_tx) + self.answer_latency;
        stream.settle = (unanswered > 0).then_some(Settle {
            from: rewind_to,
            delivered_by,
            unanswered,
        });
        stream.late_stale = None;
        stream.next = rewind_to;
        stream.acked = stream.acked.min(rewind_to);
        stream.probes.retain(|&probe| probe < rewind_to);
        self.pump(now);
    }

    /// A transmission error (`Error:checksum mismatch, Last Line: 11`): a stale line answering
    /// while a resend waits, or the first rejection, whose `Resend:` follows (or not, on Marlin
    /// 1.0 for a line without a number).
    pub(super) fn on_line_error(&mut self, last_line: Option<u64>, began: Instant, now: Instant) {
        let settling_from = self
            .stream
            .as_ref()
            .and_then(|stream| stream.settle)
            .map(|settle| settle.from)
            .filter(|&from| last_line.is_none_or(|line| line + 1 == from as u64));
        if self.outside_pending == 0
            && settling_from.is_none()
            && let Some(stream) = self.stream.as_mut()
            && let Some(late) = stream.late_stale.as_mut()
            && late.due > 0
            && now <= late.until
            && last_line.is_none_or(|line| line + 1 == late.from as u64)
        {
            late.due -= 1;
            stream.late_request_taken = true;
            self.last_progress = now;
            self.stale_request = Some(late.from);
            return;
        }
        if let Some(sample) = self.rejected_line_latency(last_line, began) {
            self.answer_latency = self.answer_latency.max(sample);
        }
        if self.outside_pending == 0
            && let Some(from) = settling_from
        {
            // Marlin empties its receive buffer right after this line: once every stale line
            // has been rejected, nothing can throw the resent line away.
            self.stale_request = Some(from);
            self.stale_line_answered(now);
            return;
        }
        self.line_errors = match self.line_errors {
            Some((line, count)) if line == last_line => Some((line, count + 1)),
            _ => Some((last_line, 1)),
        };
    }

    /// How long the line a first `Error:` rejects (the one after `last_line`) took to be
    /// answered: until the printer `began` its error line.
    fn rejected_line_latency(&self, last_line: Option<u64>, began: Instant) -> Option<Duration> {
        let stream = self.stream.as_ref()?;
        if stream.settle.is_some() {
            return None;
        }
        let rejected = usize::try_from(last_line? + 1).ok()?;
        if rejected < stream.acked || rejected >= stream.next {
            return None;
        }
        let delivered_at = stream.lines[rejected].delivered_at?;
        Some(
            began
                .saturating_duration_since(delivered_at)
                .min(MAX_ANSWER_LATENCY),
        )
    }

    /// An `ok` for `line`: its round trip moves the answer latency's lower envelope (an `ok`
    /// also waits for its command to run; the quickest ones show the printer's own delay).
    pub(super) fn learn_answer_latency(&mut self, line: usize, now: Instant) {
        let Some(delivered_at) = self
            .stream
            .as_ref()
            .and_then(|stream| stream.lines.get(line))
            .and_then(|line| line.delivered_at)
        else {
            return;
        };
        let sample = now
            .saturating_duration_since(delivered_at)
            .min(MAX_ANSWER_LATENCY);
        self.answer_latency = if sample <= self.answer_latency {
            sample
        } else {
            self.answer_latency + (sample - self.answer_latency) / 8
        };
    }

    pub(super) fn note_refused_window(&mut self, now: Instant) {
        let note = format!(
            "in_flight = {} refused: {} runs the tail of a line cut by its receive-buffer \
             flush, so a window could run a line twice; one line in flight",
            self.settings.in_flight.unwrap_or(1),
            self.firmware.as_deref().unwrap_or("this firmware"),
        );
        tracing::warn!("marlin: {note}");
        self.traffic.counters.window_fallbacks += 1;
        self.traffic.record(self.at_ms(now), Direction::Note, note);
    }

    /// A stale line has answered while a resend waits: when all have, the resend goes out.
    pub(super) fn stale_line_answered(&mut self, now: Instant) {
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        let Some(settle) = stream.settle.as_mut() else {
            return;
        };
        settle.unanswered = settle.unanswered.saturating_sub(1);
        if settle.unanswered == 0 {
            stream.settle = None;
            self.pump(now);
        }
    }
}
