//! The numbered lines of a job or cancel script, what is in flight, and where a job can resume.

use std::collections::VecDeque;
use std::time::Instant;

use super::{Settings, command_word, frame, is_long_command};
use crate::ResumePoint;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Purpose {
    Job,
    Cancel,
}

#[derive(Debug, Clone)]
pub(super) struct StreamLine {
    pub(super) text: String,
    /// 1-based position in the program, for progress; `None` for lines the host added.
    pub(super) program_index: Option<u64>,
    /// The line of the program file it came from; `None` for lines the host added.
    pub(super) source_line: Option<u32>,
    pub(super) probe: bool,
    pub(super) long: bool,
    /// When its last byte reached the printer, the last time it was sent.
    pub(super) delivered_at: Option<Instant>,
}

impl StreamLine {
    pub(super) fn added(text: &str) -> StreamLine {
        StreamLine {
            text: text.to_string(),
            program_index: None,
            source_line: None,
            probe: command_word(text) == "M105",
            long: is_long_command(text),
            delivered_at: None,
        }
    }
}

/// Numbered lines: the job (or the cancel script), indexed by line number.
#[derive(Debug)]
pub(super) struct Stream {
    pub(super) purpose: Purpose,
    pub(super) lines: Vec<StreamLine>,
    /// Next line number to send.
    pub(super) next: usize,
    /// Lines below this are acknowledged.
    pub(super) acked: usize,
    pub(super) paused: bool,
    pub(super) total: u64,
    pub(super) reported_percent: Option<u64>,
    /// Probes sent and not yet answered, oldest first.
    pub(super) probes: VecDeque<usize>,
    pub(super) since_probe: usize,
    /// After a resend request, waiting for the lines sent after the rejected one to drain.
    pub(super) settle: Option<Settle>,
    /// Numbers below this have been sent, each with its text: a number never changes its text
    /// within a stream (after a rewind the firmware may have accepted it already; see
    /// [`Protocol::send_probe_now`](super::Protocol::send_probe_now)).
    pub(super) sent_high: usize,
    /// The last line the firmware certainly executed (answered probe, `ADVANCED_OK`).
    pub(super) confirmed: Option<usize>,
    /// An `ok` for no line arrived since `confirmed`: `acked` may have run ahead of what the
    /// firmware executed.
    pub(super) stray_ok_since_confirmed: bool,
    /// Plain `ok`s (not after `Unknown command`) that came while the oldest line in flight was a
    /// probe, since `acked` last moved. See
    /// [`Protocol::answered_probe`](super::Protocol::answered_probe).
    pub(super) oks_behind_probe: usize,
    /// Fresh requests for `last_resend` in a row.
    pub(super) consecutive_resends: u32,
    /// Fresh resend requests in this stream.
    pub(super) resends: usize,
    /// Resends took more than [`WINDOW_FALLBACK_SHARE`](super::WINDOW_FALLBACK_SHARE) of the lines:
    /// one line in flight for the rest of the stream.
    pub(super) single_line: bool,
    pub(super) last_resend: Option<usize>,
    /// A resend went out before every stale line had answered: their answers may still come.
    pub(super) late_stale: Option<LateStale>,
    /// A request was taken for a stale line's ([`LateStale`]) and no `ok` has come since: if
    /// it was the resent line's own rejection, silence follows, and a probe goes out once the
    /// lines in flight have had time to answer, not after [`Settings::silence_probe`].
    pub(super) late_request_taken: bool,
}

/// Stale lines still unanswered when a resend's wait ended: a request for `from` after one of
/// their `Error:` lines, until `until`, is theirs, not a fresh rejection of the resent line.
/// Taken as fresh, it would send the resent lines again; the firmware, which accepted them,
/// rejects the copies, and each rejection's receive-buffer flush cuts the next window. But it
/// may be the resent line's own rejection (noise hits a resent line too), and the flush that
/// comes with it may swallow every line behind: then nothing more comes, and a probe soon
/// after the silence starts tells ([`Stream::late_request_taken`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct LateStale {
    pub(super) from: usize,
    pub(super) due: usize,
    pub(super) until: Instant,
}

/// The wait before a resend while the lines sent after the rejected one (stale) are still
/// arriving: each line error also empties Marlin's receive buffer, so a line resent now could
/// be thrown away with them.
#[derive(Debug, Clone, Copy)]
pub(super) struct Settle {
    /// The line the firmware asked for.
    pub(super) from: usize,
    /// By then the last stale line has reached the printer ([`StreamLine::delivered_at`]) and its
    /// answer has had the printer's answer latency
    /// ([`Protocol::answer_latency`](super::Protocol::answer_latency)) to come back. Stale lines
    /// swallowed whole by a flush never answer: the wait also ends [`Settings::resend_settle`]
    /// after this and after the last byte received, whichever is later.
    pub(super) delivered_by: Instant,
    /// Stale lines not yet rejected. Each is rejected at most once (the whole line, or its tail
    /// after a flush), and its receive-buffer flush comes with its `Error:` line, so when all
    /// have answered the resend goes out at once.
    pub(super) unanswered: usize,
}

impl Settle {
    pub(super) fn ends_at(&self, last_rx: Instant, settings: &Settings) -> Instant {
        last_rx.max(self.delivered_by) + settings.resend_settle
    }
}

impl Stream {
    pub(super) fn new(purpose: Purpose, lines: Vec<StreamLine>, total: u64) -> Stream {
        Stream {
            purpose,
            lines,
            next: 0,
            acked: 0,
            paused: false,
            total,
            reported_percent: None,
            probes: VecDeque::new(),
            since_probe: 0,
            settle: None,
            sent_high: 0,
            confirmed: None,
            stray_ok_since_confirmed: false,
            oks_behind_probe: 0,
            consecutive_resends: 0,
            last_resend: None,
            late_stale: None,
            late_request_taken: false,
            resends: 0,
            single_line: false,
        }
    }

    pub(super) fn in_flight(&self) -> usize {
        self.next - self.acked
    }

    /// When the last line sent reached the printer (by the wire's pace from when it was
    /// written, behind what was on the wire already).
    pub(super) fn last_delivery(&self) -> Option<Instant> {
        let last = self.next.checked_sub(1)?;
        self.lines[last].delivered_at
    }

    /// Lines sent and not acknowledged, as framed on the wire.
    pub(super) fn bytes_in_flight(&self) -> usize {
        (self.acked..self.next)
            .map(|number| frame(number as u64, &self.lines[number].text).len() + 1)
            .sum()
    }

    pub(super) fn done(&self) -> u64 {
        self.lines[..self.acked]
            .iter()
            .rev()
            .find_map(|line| line.program_index)
            .unwrap_or(0)
    }

    pub(super) fn long_in_flight(&self) -> bool {
        self.lines[self.acked..self.next].iter().any(|l| l.long)
    }

    /// Until an `M110` is answered, the firmware's numbering after it is not certain (see
    /// [`Protocol::cancel`](super::Protocol::cancel)): nothing is sent behind it.
    pub(super) fn renumbering_in_flight(&self) -> bool {
        self.renumbering_before(self.next)
    }

    pub(super) fn renumbering_before(&self, end: usize) -> bool {
        self.lines[self.acked..end]
            .iter()
            .any(|l| command_word(&l.text) == "M110")
    }

    /// Where the job could go on: program lines from the first one not certainly executed.
    /// `None` for the cancel script, or when every program line was acknowledged.
    pub(super) fn resume_point(&self) -> Option<ResumePoint> {
        if self.purpose != Purpose::Job {
            return None;
        }
        let certain = if self.stray_ok_since_confirmed {
            self.confirmed.map_or(0, |line| line + 1)
        } else {
            self.acked
        };
        let next_line = self.lines[certain..].iter().find_map(|l| l.source_line)?;
        let in_doubt = self.lines[certain..self.next.max(certain)]
            .iter()
            .filter_map(|l| l.source_line)
            .collect();
        Some(ResumePoint {
            next_line,
            in_doubt,
        })
    }
}
