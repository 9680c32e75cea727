//! Each serial machine keeps a bounded ring of the recent lines sent and received (for the
//! panel's console view and for support) and counters of what happened on its link.

use std::collections::VecDeque;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Sent,
    Received,
    /// A remark of the driver's for whoever reads the console, not on the wire.
    Note,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrafficLine {
    /// Milliseconds since the link's driver started (a monotonic clock, given by the caller).
    pub at_ms: u64,
    pub direction: Direction,
    pub text: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LinkCounters {
    pub lines_sent: u64,
    pub lines_received: u64,
    pub resends: u64,
    pub errors: u64,
    pub reconnects: u64,
    /// Windows given up for one line in flight: a stream's that drew too many resends, or a
    /// configured one refused on firmware that runs a cut line's tail.
    pub window_fallbacks: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrafficLog {
    capacity: usize,
    lines: VecDeque<TrafficLine>,
    pub counters: LinkCounters,
}

impl TrafficLog {
    pub fn new(capacity: usize) -> Self {
        TrafficLog {
            capacity,
            lines: VecDeque::with_capacity(capacity),
            counters: LinkCounters::default(),
        }
    }

    pub fn record(&mut self, at_ms: u64, direction: Direction, text: impl Into<String>) {
        match direction {
            Direction::Sent => self.counters.lines_sent += 1,
            Direction::Received => self.counters.lines_received += 1,
            Direction::Note => {}
        }
        if self.capacity == 0 {
            return;
        }
        if self.lines.len() == self.capacity {
            self.lines.pop_front();
        }
        self.lines.push_back(TrafficLine {
            at_ms,
            direction,
            text: text.into(),
        });
    }

    pub fn lines(&self) -> impl Iterator<Item = &TrafficLine> {
        self.lines.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_keeps_the_newest_lines_and_counts_all() {
        let mut log = TrafficLog::new(2);
        log.record(1, Direction::Sent, "G0 X1");
        log.record(2, Direction::Received, "ok");
        log.record(3, Direction::Sent, "G0 X2");
        let texts: Vec<_> = log.lines().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["ok", "G0 X2"]);
        assert_eq!(log.counters.lines_sent, 2);
        assert_eq!(log.counters.lines_received, 1);
    }
}
