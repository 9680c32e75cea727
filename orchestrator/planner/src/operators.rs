//! The operators as a resource of the search: how many are in the plant at each moment (the
//! shift windows) and how many are busy with planned tasks. Times are relative to the planning
//! instant, like everything in [`crate::problem::Problem`].
//!
//! Occupancy is kept per [`SLOT`] (30 s, aligned to absolute time so that shift boundaries on
//! whole half-minutes fall on slot edges): a task occupies every slot it touches, and a slot's
//! capacity is the operator count of the window covering it entirely (0 when part of it is
//! outside every window). That is conservative (two tasks never share an operator within one
//! slot), so plans pass the exact checker, and it makes a placement cost a few slot visits
//! instead of a search through interval lists.
//!
//! Beyond the last window the calendar is unknown: the plant counts as working with operators
//! unlimited there (the runtime gives a horizon longer than its plans), which also bounds every
//! search for a free operator.

use crate::{Millis, ShiftWindow};

/// Resolution of the occupancy bookkeeping, in ms.
pub const SLOT: Millis = 30_000;

#[derive(Debug, Clone, Default)]
pub struct OperatorPool {
    /// Shifts given: operators are limited and work only in the windows.
    limited: bool,
    /// Relative time of slot 0's start (≤ 0: slots are aligned to absolute multiples of SLOT).
    origin: i64,
    capacity: Vec<u16>,
    busy: Vec<u16>,
    /// Working stretches (windows merged where they touch), relative, sorted; the last one
    /// extends to infinity.
    stretches: Vec<(i64, i64)>,
    /// Slot visits so far: the pool's share of the evaluator's work units.
    pub visits: u64,
}

impl OperatorPool {
    /// The pool for these shifts seen from `now`; no shifts: always working, operators unlimited.
    pub fn new(shifts: &[ShiftWindow], now: Millis) -> OperatorPool {
        let mut windows: Vec<(i64, i64, u32)> = shifts
            .iter()
            .filter(|w| w.until > now && w.until > w.from)
            .map(|w| (w.from - now, w.until - now, w.operators))
            .collect();
        if windows.is_empty() {
            return OperatorPool::default();
        }
        windows.sort_unstable();
        let origin = -now.rem_euclid(SLOT);
        let horizon = windows.iter().map(|w| w.1).max().unwrap_or(0);
        let n_slots = ((horizon - origin).max(0) / SLOT) as usize + 1;
        let mut capacity = vec![0u16; n_slots];
        let slot_start = |j: usize| origin + j as i64 * SLOT;
        for &(from, until, operators) in &windows {
            let first = ((from - origin).max(0) + SLOT - 1) / SLOT;
            let operators = operators.min(u32::from(u16::MAX)) as u16;
            for (j, slot) in capacity.iter_mut().enumerate().skip(first as usize) {
                if slot_start(j) + SLOT > until {
                    break;
                }
                *slot = (*slot).max(operators);
            }
        }
        let mut stretches: Vec<(i64, i64)> = Vec::new();
        for &(from, until, _) in &windows {
            match stretches.last_mut() {
                Some(last) if from <= last.1 => last.1 = last.1.max(until),
                _ => stretches.push((from, until)),
            }
        }
        OperatorPool {
            limited: true,
            origin,
            busy: vec![0; n_slots],
            capacity,
            stretches,
            visits: 0,
        }
    }

    pub fn is_limited(&self) -> bool {
        self.limited
    }

    /// Forget every booking, back to the occupancy of `base` (same shifts).
    pub fn reset_to(&mut self, base: &OperatorPool) {
        self.busy.copy_from_slice(&base.busy);
        self.visits += self.busy.len() as u64 / 64;
    }

    fn slot(&self, t: i64) -> usize {
        ((t - self.origin).max(0) / SLOT) as usize
    }

    /// The earliest instant ≥ `earliest` at which an operator is free for `length` ms.
    pub fn fit(&mut self, earliest: i64, length: i64) -> i64 {
        if !self.limited || length <= 0 {
            return earliest;
        }
        let mut t = earliest;
        let mut j = self.slot(t);
        loop {
            let last = self.slot(t + length - 1);
            if j >= self.busy.len() {
                return t;
            }
            let mut blocked = None;
            while j <= last && j < self.busy.len() {
                self.visits += 1;
                if self.busy[j] >= self.capacity[j] {
                    blocked = Some(j);
                    break;
                }
                j += 1;
            }
            match blocked {
                None => return t,
                Some(b) => {
                    j = b + 1;
                    t = t.max(self.origin + j as i64 * SLOT);
                }
            }
        }
    }

    /// One operator busy on `[start, start + length)`.
    pub fn book(&mut self, start: i64, length: i64) {
        if !self.limited || length <= 0 {
            return;
        }
        let first = self.slot(start);
        let end = (self.slot(start + length - 1) + 1).min(self.busy.len());
        for j in first..end {
            self.busy[j] += 1;
        }
        self.visits += end.saturating_sub(first) as u64;
    }

    /// The earliest instant ≥ `t` from which a run of `length` ms lies within one working
    /// stretch (for machines that may not run after hours).
    pub fn run_within_working_time(&self, t: i64, length: i64) -> i64 {
        if !self.limited || length <= 0 {
            return t;
        }
        let last = self.stretches.len() - 1;
        let mut i = self.stretches.partition_point(|s| s.1 <= t);
        loop {
            if i >= last {
                return t.max(self.stretches[last].0);
            }
            let (from, until) = self.stretches[i];
            let start = t.max(from);
            if start + length <= until {
                return start;
            }
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn window(from: i64, until: i64, operators: u32) -> ShiftWindow {
        ShiftWindow {
            from: from * MIN,
            until: until * MIN,
            operators,
        }
    }

    #[test]
    fn tasks_wait_for_a_free_operator_within_the_windows() {
        let mut pool = OperatorPool::new(&[window(10, 60, 1), window(60, 120, 2)], 0);
        assert_eq!(pool.fit(0, 5 * MIN), 10 * MIN, "nobody before the shift");
        pool.book(10 * MIN, 5 * MIN);
        assert_eq!(pool.fit(10 * MIN, 5 * MIN), 15 * MIN, "one operator, busy");
        assert_eq!(pool.fit(57 * MIN, 5 * MIN), 57 * MIN);
        pool.book(57 * MIN, 5 * MIN);
        assert_eq!(
            pool.fit(58 * MIN, 5 * MIN),
            60 * MIN,
            "the second operator comes at 60"
        );
        assert_eq!(
            pool.fit(200 * MIN, 5 * MIN),
            200 * MIN,
            "beyond the horizon: unlimited"
        );
    }

    #[test]
    fn a_gap_between_shifts_holds_no_task() {
        let mut pool = OperatorPool::new(&[window(0, 30, 3), window(40, 90, 3)], 0);
        assert_eq!(pool.fit(28 * MIN, 5 * MIN), 40 * MIN);
    }

    #[test]
    fn runs_not_allowed_after_hours_stay_within_one_stretch() {
        let pool = OperatorPool::new(
            &[
                window(0, 30, 1),
                window(30, 60, 1),
                window(100, 130, 1),
                window(200, 220, 1),
            ],
            0,
        );
        assert_eq!(
            pool.run_within_working_time(10 * MIN, 45 * MIN),
            10 * MIN,
            "touching windows merge"
        );
        assert_eq!(pool.run_within_working_time(50 * MIN, 20 * MIN), 100 * MIN);
        assert_eq!(
            pool.run_within_working_time(20 * MIN, 45 * MIN),
            200 * MIN,
            "too long for 100–130"
        );
        assert_eq!(
            pool.run_within_working_time(70 * MIN, 10 * MIN),
            100 * MIN,
            "not before the shift"
        );
        assert_eq!(
            pool.run_within_working_time(110 * MIN, 40 * MIN),
            200 * MIN,
            "the last stretch is open-ended"
        );
    }

    #[test]
    fn without_shifts_nothing_waits() {
        let mut pool = OperatorPool::new(&[], 0);
        pool.book(0, 10 * MIN);
        assert_eq!(pool.fit(0, 10 * MIN), 0);
        assert_eq!(pool.run_within_working_time(5, 10 * MIN), 5);
    }
}
