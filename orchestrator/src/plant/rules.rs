//! The plant's rules as pure functions over plain data: how many units a run may start, how
//! many a step still owes, when an order is done, how material is reserved, drawn and given
//! back. No SQL and no clock here: the transactions read the counts, call these, and write
//! what they decide. Table-driven tests in `rules/tests.rs`.

use std::collections::{BTreeMap, HashMap};

use super::state::{JobState, OrderState};
use crate::amount::Amount;
use crate::store::Draw;

/// One step of an order with its unit counts, as the accounting needs it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepCounts {
    pub index: i64,
    pub units_per_run: i64,
    pub predecessors: Vec<i64>,
    pub is_final: bool,
    pub good: i64,
    pub scrapped: i64,
    /// Units in runs not yet finished (planned, on a machine, or interrupted).
    pub open: i64,
    /// Units of runs that took their inputs (dispatched, running, done, failed, interrupted).
    pub started: i64,
}

fn step(steps: &[StepCounts], index: i64) -> Option<&StepCounts> {
    steps.iter().find(|s| s.index == index)
}

/// Steps that come after `index`, directly or not.
fn descendants(steps: &[StepCounts], index: i64) -> Vec<i64> {
    let mut found: Vec<i64> = Vec::new();
    let mut frontier = vec![index];
    while let Some(current) = frontier.pop() {
        for s in steps {
            if s.predecessors.contains(&current) && !found.contains(&s.index) {
                found.push(s.index);
                frontier.push(s.index);
            }
        }
    }
    found
}

/// Units step `index` must deliver: the order's quantity, plus one for every piece scrapped
/// downstream (it carried one of this step's units with it).
pub fn required(steps: &[StepCounts], index: i64, quantity: i64) -> i64 {
    let downstream: i64 = descendants(steps, index)
        .iter()
        .filter_map(|d| step(steps, *d))
        .map(|s| s.scrapped)
        .sum();
    quantity + downstream
}

/// Units step `index` still owes beyond what it made and what its open runs will make: what
/// replacement runs must cover. Zero when nothing is owed.
pub fn deficit(steps: &[StepCounts], index: i64, quantity: i64) -> i64 {
    step(steps, index).map_or(0, |s| {
        (required(steps, index, quantity) - s.good - s.open).max(0)
    })
}

/// How a step's deficit is covered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replacement {
    /// Units added to the step's last planned partial run: it already holds one run's
    /// material, so this reserves nothing.
    pub topped_up: i64,
    /// The sizes of the new runs; each reserves one run's material, whatever its size.
    pub new_runs: Vec<i64>,
}

/// Cover `deficit` units: fill the last planned partial run (`partial`: its units) first, so a
/// sheet is not cut for one part, then new runs of at most `units_per_run`, the last partial.
pub fn replacement(deficit: i64, units_per_run: i64, partial: Option<i64>) -> Replacement {
    let topped_up = partial.map_or(0, |units| deficit.min(units_per_run - units).max(0));
    Replacement {
        topped_up,
        new_runs: run_sizes(deficit - topped_up, units_per_run),
    }
}

/// Runs of at most `units_per_run` units that make `units`: full runs, the last one partial.
pub fn run_sizes(units: i64, units_per_run: i64) -> Vec<i64> {
    let mut runs = Vec::new();
    let mut left = units;
    while left > 0 && units_per_run > 0 {
        let run = left.min(units_per_run);
        runs.push(run);
        left -= run;
    }
    runs
}

/// What approval reserves: per step, one run's draw for every run that makes `quantity`.
/// `steps` gives each step's units per run and per-run draw.
pub fn approval_needs<'a>(
    quantity: i64,
    steps: impl IntoIterator<Item = (i64, &'a BTreeMap<String, Amount>)>,
) -> BTreeMap<String, Amount> {
    let mut needs: BTreeMap<String, Amount> = BTreeMap::new();
    for (units_per_run, per_run) in steps {
        let runs = run_sizes(quantity, units_per_run).len() as i64;
        for (material, amount) in per_run {
            let total = needs.entry(material.clone()).or_insert(Amount::ZERO);
            *total = *total + amount.times(runs);
        }
    }
    needs
}

/// An order is done when it is in progress, its final step delivered the quantity, and no
/// run is left planned, on a machine or waiting for an operator (its outcome could still
/// change the counts).
pub fn order_complete(state: OrderState, quantity: i64, good: i64, unfinished_runs: i64) -> bool {
    state == OrderState::InProgress && good >= quantity && unfinished_runs == 0
}

/// A run's outcome as units: a failed run scraps every unit; a report of more scrap than
/// units (or less than none) is held to the run's size. Returns (good, scrapped).
pub fn settle(units: i64, scrapped: i64, failed: bool) -> (i64, i64) {
    let scrapped = if failed {
        units
    } else {
        scrapped.clamp(0, units)
    };
    (units - scrapped, scrapped)
}

/// Whether one good unit of step `index` may be scrapped on its own: always at the final
/// step; earlier, only while some good unit of it is not already in a later step's work.
pub fn unit_scrappable(steps: &[StepCounts], index: i64) -> bool {
    let Some(s) = step(steps, index) else {
        return false;
    };
    let used_downstream = steps
        .iter()
        .filter(|later| later.predecessors.contains(&index))
        .map(|later| later.started)
        .max()
        .unwrap_or(0);
    s.is_final || s.good - used_downstream >= 1
}

/// A run of an order not yet finished, as the planner's input needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenRun {
    pub id: i64,
    pub step_index: i64,
    pub units: i64,
    /// Planned, dispatched or running.
    pub state: JobState,
    pub material_reserved: bool,
}

/// Whether a planned run may start now, and the runs of earlier steps it waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    pub run_id: i64,
    pub ready: bool,
    pub predecessors: Vec<i64>,
}

/// Readiness of an order's planned runs (`runs` in id order; runs already on machines count
/// as started). Inputs are counted, not tracked piece by piece: a step may start as many
/// units as every predecessor step has made good, runs taken in id order. A run must have
/// its material reserved. A partial run waits while other runs of its step are on machines:
/// their scrap can still join it, instead of each replacement drawing a whole sheet or bed.
/// A run waits for the earliest open runs of each predecessor step that, with the units that
/// step already made, cover every unit its step will have started by then.
pub fn readiness(steps: &[StepCounts], runs: &[OpenRun]) -> Vec<Readiness> {
    let good = |index: i64| step(steps, index).map_or(0, |s| s.good);
    let mut open: HashMap<i64, Vec<&OpenRun>> = HashMap::new();
    for run in runs {
        open.entry(run.step_index).or_default().push(run);
    }
    let in_flight = |index: i64| {
        open.get(&index)
            .is_some_and(|r| r.iter().any(|r| r.state != JobState::Planned))
    };
    let mut started: HashMap<i64, i64> = steps.iter().map(|s| (s.index, s.started)).collect();
    let mut wanted = started.clone();
    let mut decided = Vec::new();
    for run in runs.iter().filter(|r| r.state == JobState::Planned) {
        let this = step(steps, run.step_index);
        let predecessors = this.map(|s| s.predecessors.as_slice()).unwrap_or_default();
        let inputs = this.map_or(0, |_| {
            predecessors
                .iter()
                .map(|p| good(*p))
                .min()
                .unwrap_or(i64::MAX)
        });
        let already = started.get(&run.step_index).copied().unwrap_or(0);
        let partial_waits =
            this.is_some_and(|s| run.units < s.units_per_run) && in_flight(run.step_index);
        let ready = run.material_reserved && already + run.units <= inputs && !partial_waits;
        if ready {
            started.insert(run.step_index, already + run.units);
        }
        let need = wanted.get(&run.step_index).copied().unwrap_or(0) + run.units;
        wanted.insert(run.step_index, need);
        let mut waits_for = Vec::new();
        for p in predecessors {
            let mut covered = good(*p);
            for earlier in open.get(p).map(Vec::as_slice).unwrap_or_default() {
                if covered >= need {
                    break;
                }
                waits_for.push(earlier.id);
                covered += earlier.units;
            }
        }
        decided.push(Readiness {
            run_id: run.id,
            ready,
            predecessors: waits_for,
        });
    }
    decided
}

/// Take `needed` from `accounts` (id, what is left there) in their order of preference.
/// Returns the draws and what the accounts could not cover.
pub fn draw_in_order(needed: Amount, accounts: &[(String, Amount)]) -> (Vec<Draw>, Amount) {
    let mut draws = Vec::new();
    let mut left = needed;
    for (account, available) in accounts {
        if left <= Amount::ZERO {
            break;
        }
        let take = left.min(*available);
        if take > Amount::ZERO {
            draws.push(Draw {
                account: account.clone(),
                amount: take,
            });
            left = left - take;
        }
    }
    (draws, left)
}

/// What closing a reservation gives back: per account (id, reserved, consumed), whatever was
/// reserved and not consumed.
pub fn released(reservations: &[(String, Amount, Amount)]) -> Vec<Draw> {
    reservations
        .iter()
        .filter(|(_, reserved, consumed)| reserved > consumed)
        .map(|(account, reserved, consumed)| Draw {
            account: account.clone(),
            amount: *reserved - *consumed,
        })
        .collect()
}

/// The size of a program's bounding box (min and max corners, mm).
pub fn bbox_size((min, max): ([f64; 3], [f64; 3])) -> [f64; 3] {
    [max[0] - min[0], max[1] - min[1], max[2] - min[2]]
}

/// Does a program whose moves span `size` fit an envelope? Parts may be turned a quarter
/// on the table, so X and Y may swap.
pub fn envelope_fits(envelope: [f64; 3], size: [f64; 3]) -> bool {
    let fits = |x: f64, y: f64| x <= envelope[0] + 1e-6 && y <= envelope[1] + 1e-6;
    size[2] <= envelope[2] + 1e-6 && (fits(size[0], size[1]) || fits(size[1], size[0]))
}

#[cfg(test)]
mod tests;
