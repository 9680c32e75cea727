//! What takes machine time in the simulated printer: heaters that warm towards their target
//! (or cool to ambient), and the length of an arc move.

use super::Wait;
use super::command::Words;

/// The room the printer stands in, °C.
pub(super) const AMBIENT: f64 = 20.0;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Heater {
    pub(super) actual: f64,
    pub(super) target: f64,
    /// °C per machine second.
    pub(super) rate: f64,
}

impl Heater {
    pub(super) fn advance(&mut self, machine_seconds: f64) {
        let goal = if self.target > 0.0 {
            self.target
        } else {
            AMBIENT
        };
        let step = self.rate * machine_seconds;
        if self.actual < goal {
            self.actual = (self.actual + step).min(goal);
        } else {
            self.actual = (self.actual - step).max(goal);
        }
    }

    pub(super) fn reached(&self) -> bool {
        (self.actual - self.target).abs() <= 1.0
    }
}

/// M109/M190 (`Temperature::wait_for_hotend`): `S` waits only while heating up, `R` also while
/// cooling down; without either the command does nothing.
pub(super) fn heat_and_wait(heater: &mut Heater, words: &Words, wait: Wait) -> Wait {
    let (target, wait_for_cooling) = match (words.get('S'), words.get('R')) {
        (Some(s), _) => (s, false),
        (None, Some(r)) => (r, true),
        (None, None) => return Wait::None,
    };
    heater.target = target;
    let heating = heater.actual < target - 1.0;
    if heating || (wait_for_cooling && !heater.reached()) {
        wait
    } else {
        Wait::None
    }
}

/// Path length of an arc from `start` to `end` around `start + centre_offset` (XY plane, with
/// any Z change as a helix); the same start and end make a full circle, as in Marlin.
pub(super) fn arc_length(
    start: [f64; 3],
    end: [f64; 3],
    centre_offset: [f64; 2],
    clockwise: bool,
) -> f64 {
    let centre = [start[0] + centre_offset[0], start[1] + centre_offset[1]];
    let radius = centre_offset[0].hypot(centre_offset[1]);
    let angle_of = |p: [f64; 3]| (p[1] - centre[1]).atan2(p[0] - centre[0]);
    let mut sweep = angle_of(end) - angle_of(start);
    if clockwise {
        sweep = -sweep;
    }
    let sweep = sweep.rem_euclid(std::f64::consts::TAU);
    let sweep = if sweep < 1e-9 {
        std::f64::consts::TAU
    } else {
        sweep
    };
    (radius * sweep).hypot(end[2] - start[2])
}
