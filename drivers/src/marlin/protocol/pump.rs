//! Sending: the window's lines out, and the unnumbered-stream commands outside a job.

use std::time::Instant;

use super::{Phase, Protocol, Purpose, SYNC_LINES, StreamLine, command_word, frame};
use crate::traffic::Direction;

impl Protocol {
    /// Send numbered lines while the window and the stream allow.
    pub(super) fn pump(&mut self, now: Instant) {
        if self.phase != Phase::Ready || self.outside_pending > 0 {
            return;
        }
        let line_window = self.line_window();
        loop {
            let Some(stream) = self.stream.as_mut() else {
                return;
            };
            let m110_unconfirmed = stream.acked < SYNC_LINES && stream.next >= SYNC_LINES;
            let held = (stream.paused && stream.purpose == Purpose::Job) || stream.settle.is_some();
            // One line at a time until the sync probe is answered: a line error empties Marlin's
            // receive buffer, and the tail of the probe must not answer for it.
            let window = if stream.acked < SYNC_LINES || stream.single_line {
                1
            } else {
                line_window
            };
            if m110_unconfirmed
                || held
                || stream.in_flight() >= window
                || stream.renumbering_in_flight()
            {
                return;
            }
            if stream.next == stream.lines.len() {
                if stream.lines.last().is_some_and(|l| l.probe) {
                    return;
                }
                stream.lines.push(StreamLine::added("M105"));
            } else if stream.since_probe >= self.settings.resync_interval
                && !stream.lines[stream.next].probe
                && stream.next >= stream.sent_high
            {
                let at = stream.next;
                stream.lines.insert(at, StreamLine::added("M105"));
            }
            if stream.in_flight() == 0 {
                self.last_progress = now;
            }
            self.send_numbered(now);
        }
    }

    pub(super) fn send_numbered(&mut self, now: Instant) {
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        let number = stream.next;
        let line = &stream.lines[number];
        if line.probe {
            stream.probes.push_back(number);
            stream.since_probe = 0;
        } else {
            stream.since_probe += 1;
        }
        stream.next += 1;
        stream.sent_high = stream.sent_high.max(stream.next);
        let framed = frame(number as u64, &line.text);
        let delivered_at = self.send_raw(&framed, now);
        if let Some(stream) = self.stream.as_mut() {
            stream.lines[number].delivered_at = Some(delivered_at);
        }
    }

    /// A command outside a stream, numbered and checksummed like every line (noise must not turn
    /// an idle poll into another command). Without a known numbering, `M110 N0` goes instead.
    pub(super) fn send_outside(&mut self, command: &str, now: Instant) {
        let framed = match self.outside_next {
            Some(number) if command_word(command) != "M110" => {
                self.outside_next = Some(number + 1);
                frame(number, command)
            }
            _ => {
                self.outside_next = Some(1);
                frame(0, "M110 N0")
            }
        };
        self.outside_pending += 1;
        self.send_raw(&framed, now);
    }

    /// When the line's last byte reaches the printer.
    fn send_raw(&mut self, text: &str, now: Instant) -> Instant {
        self.last_tx = now;
        self.wire_free_at =
            self.wire_free_at.max(now) + self.settings.byte_time * (text.len() as u32 + 1);
        self.outgoing.extend_from_slice(text.as_bytes());
        self.outgoing.push(b'\n');
        self.traffic.record(self.at_ms(now), Direction::Sent, text);
        self.wire_free_at
    }
}
