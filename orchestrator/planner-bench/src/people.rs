//! The plant-scale day with people ([`crate::day`] plus a calendar and operator work), and one
//! simulator that executes a dispatching policy through that calendar and operator count: the
//! operator-aware plan followed with [`next_dispatches`], or the dispatching rule that ignores
//! the operators ([`dispatch_ready_runs`]). The simulator is the plant, not the planner: a
//! dispatched run's setup and load wait for a free operator in working time (oldest request
//! first), its unload too; a run on a machine not allowed after hours is only prepared when it
//! would end within the working stretch; work is released when its unload is done.

use std::collections::HashMap;
use std::time::Instant;

use serde::Serialize;

use microfab_planner::check::check_plan;
use microfab_planner::{
    Budget, Millis, Plan, PlanInput, PlanMachine, PlanRun, Priority, ShiftWindow,
    dispatch_ready_runs, next_dispatches, plan, run_millis, setup_millis,
};
use microfab_rng::SplitMix64;

use crate::day::{HOUR, MINUTE, PlantSpec, generate};

const DAY: Millis = 24 * HOUR;
/// Length of the benchmark's calendar: longer than any policy needs for the day's work.
const CALENDAR_DAYS: i64 = 56;

/// The calendar of the benchmark: two shifts (06–14, 14–22) Monday to Friday with `operators`
/// each; nights and the weekend nobody is there. Eight weeks from the generated day's start (a
/// Monday, 06:00).
pub fn shifts(from: Millis, operators: u32) -> Vec<ShiftWindow> {
    let midnight = from - 6 * HOUR;
    (0..CALENDAR_DAYS)
        .filter(|day| day % 7 < 5)
        .flat_map(|day| {
            let base = midnight + day * DAY;
            [(6, 14), (14, 22)].map(|(a, b)| ShiftWindow {
                from: base + a * HOUR,
                until: base + b * HOUR,
                operators,
            })
        })
        .collect()
}

/// Load and unload minutes per capability, and whether its machines may run unattended at night.
fn operator_work(capability: &str) -> (f64, f64, bool) {
    match capability {
        "laser" => (3.0, 4.0, false),
        "cnc-3axis" => (8.0, 5.0, false),
        "fdm" => (2.0, 3.0, true),
        "sla" => (3.0, 6.0, true),
        "press-brake" => (2.0, 2.0, false),
        "sewing" => (2.0, 2.0, false),
        "finishing" => (3.0, 3.0, false),
        _ => (2.0, 2.0, false),
    }
}

/// The generated day with people: the calendar with `operators` per shift, each machine's
/// load, unload and after-hours permission from its first capability (one in eight of the
/// others may run unattended too).
pub fn generate_with_people(spec: PlantSpec, operators: u32) -> PlanInput {
    let mut input = generate(spec);
    let mut rng = SplitMix64::new(spec.seed ^ 0x5eed_0f9e_0b1e);
    input.shifts = shifts(input.now, operators);
    for m in &mut input.machines {
        let (load, unload, after_hours) = operator_work(&m.capabilities[0]);
        m.load_seconds = load * 60.0;
        m.unload_seconds = unload * 60.0;
        m.after_hours = after_hours || rng.below(8) == 0;
    }
    input
}

/// How a policy fared when executed.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Executed {
    /// Σ weight × tardiness (ms) over public-service orders, then over the others.
    pub public_tardiness: i64,
    pub weighted_tardiness: i64,
    /// End of the last unload, relative to the start.
    pub makespan: i64,
    /// Machine time spent waiting for an operator (ms).
    pub held_up: i64,
    /// Runs never done (should be 0).
    pub not_done: usize,
}

enum Policy<'a> {
    Rule,
    Plan(&'a Plan),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Free,
    /// Dispatched; its setup and load wait for an operator.
    AwaitingPrep {
        run: usize,
        length: Millis,
    },
    Prep {
        run: usize,
        until: Millis,
    },
    Running {
        run: usize,
        until: Millis,
    },
    AwaitingUnload {
        run: usize,
    },
    Unloading {
        run: usize,
        until: Millis,
    },
}

struct Calendar<'a> {
    windows: &'a [ShiftWindow],
}

impl Calendar<'_> {
    fn operators_at(&self, t: Millis) -> u32 {
        self.windows
            .iter()
            .filter(|w| w.from <= t && t < w.until)
            .map(|w| w.operators)
            .max()
            .unwrap_or(0)
    }

    /// End of the working stretch containing `t` (windows merged where they touch).
    fn working_until(&self, t: Millis) -> Option<Millis> {
        let mut end = self
            .windows
            .iter()
            .find(|w| w.from <= t && t < w.until)?
            .until;
        while let Some(w) = self.windows.iter().find(|w| w.from <= end && end < w.until) {
            end = w.until;
        }
        Some(end)
    }
}

/// Executes `policy` on `input` through its calendar and operators (see the module).
fn execute(input: &PlanInput, policy: Policy<'_>) -> Executed {
    let calendar = Calendar {
        windows: &input.shifts,
    };
    let n_machines = input.machines.len();
    let index: HashMap<i64, usize> = input
        .runs
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id, i))
        .collect();
    let machine_index: HashMap<&str, usize> = input
        .machines
        .iter()
        .enumerate()
        .map(|(i, m)| (m.id.as_str(), i))
        .collect();
    let mut phase = vec![Phase::Free; n_machines];
    let mut free_from: Vec<Millis> = input
        .machines
        .iter()
        .map(|m| m.available_from.unwrap_or(input.now).max(input.now))
        .collect();
    let mut family: Vec<Option<String>> = input
        .machines
        .iter()
        .map(|m| m.current_setup.clone())
        .collect();
    let mut released: Vec<Option<Millis>> = vec![None; input.runs.len()];
    let mut dispatched = vec![false; input.runs.len()];
    let mut stock: HashMap<&str, f64> = input
        .materials
        .iter()
        .map(|m| (m.id.as_str(), m.on_hand))
        .collect();
    let mut arrivals: Vec<(Millis, &str, f64)> = input
        .materials
        .iter()
        .flat_map(|m| m.arrivals.iter().map(|a| (a.at, m.id.as_str(), a.quantity)))
        .collect();
    arrivals.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    let mut next_arrival = 0;
    // Operator requests: (since, machine), served oldest first.
    let mut requests: Vec<(Millis, usize)> = Vec::new();
    let mut busy_operators = 0u32;
    let mut held_up: Millis = 0;
    let mut t = input.now;
    let boundaries: Vec<Millis> = input
        .shifts
        .iter()
        .flat_map(|w| [w.from, w.until])
        .collect();
    let ms = |s: f64| (s * 1000.0).round() as Millis;
    loop {
        while next_arrival < arrivals.len() && arrivals[next_arrival].0 <= t {
            *stock.entry(arrivals[next_arrival].1).or_default() += arrivals[next_arrival].2;
            next_arrival += 1;
        }
        // Completions due now.
        for m in 0..n_machines {
            let machine = &input.machines[m];
            match phase[m] {
                Phase::Prep { run, until } if until <= t => {
                    busy_operators -= 1;
                    let length = run_millis(&input.runs[run], machine);
                    phase[m] = Phase::Running {
                        run,
                        until: t + length,
                    };
                }
                _ => {}
            }
            match phase[m] {
                Phase::Running { run, until } if until <= t => {
                    if machine.unload_seconds > 0.0 {
                        phase[m] = Phase::AwaitingUnload { run };
                        requests.push((t, m));
                    } else {
                        released[run] = Some(t);
                        phase[m] = Phase::Free;
                        free_from[m] = t;
                    }
                }
                Phase::Unloading { run, until } if until <= t => {
                    busy_operators -= 1;
                    released[run] = Some(t);
                    phase[m] = Phase::Free;
                    free_from[m] = t;
                }
                _ => {}
            }
        }
        // Dispatch to free machines.
        let done = |id: &i64| {
            index
                .get(id)
                .is_none_or(|&i| released[i].is_some_and(|r| r <= t))
        };
        let has_stock = |r: &PlanRun, stock: &HashMap<&str, f64>| {
            r.material_needs.iter().all(|n| {
                stock
                    .get(n.material.as_str())
                    .is_none_or(|s| *s + 1e-9 >= n.quantity)
            })
        };
        let in_down = |m: &PlanMachine| m.down.iter().any(|w| w.from <= t && t < w.until);
        let snapshot = PlanInput {
            now: t,
            machines: input
                .machines
                .iter()
                .enumerate()
                .map(|(i, m)| PlanMachine {
                    idle: phase[i] == Phase::Free && free_from[i] <= t && !in_down(m),
                    ..m.clone()
                })
                .collect(),
            orders: input.orders.clone(),
            runs: input
                .runs
                .iter()
                .enumerate()
                .filter(|(i, _)| !dispatched[*i])
                .map(|(_, r)| PlanRun {
                    ready: r.predecessors.iter().all(done) && has_stock(r, &stock),
                    ..r.clone()
                })
                .collect(),
            shifts: input.shifts.clone(),
            ..PlanInput::default()
        };
        let decisions = match policy {
            Policy::Rule => dispatch_ready_runs(&snapshot),
            Policy::Plan(p) => next_dispatches(p, &snapshot),
        };
        for d in decisions {
            let run = index[&d.run_id];
            let r = &input.runs[run];
            if dispatched[run] || !has_stock(r, &stock) {
                continue;
            }
            for n in &r.material_needs {
                if let Some(s) = stock.get_mut(n.material.as_str()) {
                    *s -= n.quantity;
                }
            }
            let m = machine_index[d.machine_id.as_str()];
            let machine = &input.machines[m];
            dispatched[run] = true;
            let length = setup_millis(r, family[m].as_deref()) + ms(machine.load_seconds);
            family[m] = Some(r.setup_family.clone());
            phase[m] = Phase::AwaitingPrep { run, length };
            requests.push((t, m));
        }
        // Operators take requests, oldest first, while on shift and with time to finish.
        requests.sort_unstable();
        let mut waiting = Vec::new();
        for (since, m) in std::mem::take(&mut requests) {
            let machine = &input.machines[m];
            let stretch_end = calendar.working_until(t);
            let (length, run_length) = match phase[m] {
                Phase::AwaitingPrep { run, length } => {
                    (length, run_millis(&input.runs[run], machine))
                }
                _ => (ms(machine.unload_seconds), 0),
            };
            let fits = |end: Millis| stretch_end.is_some_and(|e| end <= e);
            let needs_operator = length > 0;
            let operator_free = !needs_operator || busy_operators < calendar.operators_at(t);
            let in_time = (!needs_operator || fits(t + length))
                && (machine.after_hours || run_length == 0 || fits(t + length + run_length));
            if !(operator_free && in_time) {
                waiting.push((since, m));
                continue;
            }
            held_up += t - since;
            busy_operators += u32::from(needs_operator);
            phase[m] = match phase[m] {
                Phase::AwaitingPrep { run, .. } if !needs_operator => Phase::Running {
                    run,
                    until: t + run_length,
                },
                Phase::AwaitingPrep { run, .. } => Phase::Prep {
                    run,
                    until: t + length,
                },
                Phase::AwaitingUnload { run } => Phase::Unloading {
                    run,
                    until: t + length,
                },
                other => other,
            };
        }
        requests = waiting;
        if released.iter().all(Option::is_some) {
            break;
        }
        // The next moment anything changes.
        let mut next = Millis::MAX;
        for (m, p) in phase.iter().enumerate() {
            match *p {
                Phase::Prep { until, .. }
                | Phase::Running { until, .. }
                | Phase::Unloading { until, .. } => next = next.min(until),
                Phase::Free if free_from[m] > t => next = next.min(free_from[m]),
                _ => {}
            }
        }
        let later = |x: Millis| x > t;
        let planned_starts = match policy {
            Policy::Plan(p) => p
                .assignments
                .iter()
                .filter(|a| index.get(&a.run_id).is_some_and(|&i| !dispatched[i]))
                .map(|a| a.setup_start)
                .filter(|&x| later(x))
                .min(),
            Policy::Rule => None,
        };
        next = boundaries
            .iter()
            .copied()
            .filter(|&x| later(x))
            .chain(arrivals.get(next_arrival).map(|a| a.0))
            .chain(planned_starts)
            .chain(
                input
                    .machines
                    .iter()
                    .flat_map(|m| m.down.iter().map(|w| w.until))
                    .filter(|&x| later(x)),
            )
            .fold(next, Millis::min);
        if next == Millis::MAX {
            // Nothing will ever change again: the rest can never run.
            break;
        }
        t = next;
    }
    let mut completion: HashMap<&str, Millis> = HashMap::new();
    for (i, r) in input.runs.iter().enumerate() {
        if let Some(at) = released[i] {
            let c = completion.entry(r.order_id.as_str()).or_insert(Millis::MIN);
            *c = (*c).max(at);
        }
    }
    let mut out = Executed {
        held_up,
        not_done: released.iter().filter(|r| r.is_none()).count(),
        makespan: released
            .iter()
            .flatten()
            .max()
            .map_or(0, |&e| e - input.now),
        ..Executed::default()
    };
    for order in &input.orders {
        let Some(&c) = completion.get(order.id.as_str()) else {
            continue;
        };
        let tardiness = (c - order.due).max(0) * i64::from(order.weight);
        match order.priority {
            Priority::PublicService => out.public_tardiness += tardiness,
            Priority::Standard => out.weighted_tardiness += tardiness,
        }
    }
    out
}

#[derive(Debug, Clone, Serialize)]
pub struct PeopleBenchResult {
    pub machines: usize,
    pub runs: usize,
    pub operators: u32,
    pub plan_seconds: f64,
    /// What the operator-aware plan expects, and what came of following it.
    pub planned: microfab_planner::Objective,
    pub plan_executed: Executed,
    /// The plan made as if operators were unlimited and always there, followed the same way.
    pub blind_plan_executed: Executed,
    /// The dispatching rule (which ignores operators) executed.
    pub rule_executed: Executed,
    pub feasible: bool,
    pub errors: Vec<String>,
}

/// The operator-aware plan, the plan blind to operators and the rule, each executed through
/// the same calendar and operator count.
pub fn run_people(spec: PlantSpec, operators: u32, budget: Budget) -> PeopleBenchResult {
    let input = generate_with_people(spec, operators);
    let started = Instant::now();
    let aware = plan(&input, None, budget, spec.seed);
    let plan_seconds = started.elapsed().as_secs_f64();
    let mut errors = Vec::new();
    match check_plan(&input, &aware, None) {
        Ok(objective) if objective == aware.objective => {}
        Ok(objective) => errors.push(format!(
            "planner reports {:?}, checker computes {objective:?}",
            aware.objective
        )),
        Err(e) => errors.extend(e.into_iter().take(5)),
    }
    let blind_input = PlanInput {
        shifts: Vec::new(),
        machines: input
            .machines
            .iter()
            .map(|m| PlanMachine {
                load_seconds: 0.0,
                unload_seconds: 0.0,
                ..m.clone()
            })
            .collect(),
        ..input.clone()
    };
    let blind = plan(&blind_input, None, budget, spec.seed);
    PeopleBenchResult {
        machines: input.machines.len(),
        runs: input.runs.len(),
        operators,
        plan_seconds,
        planned: aware.objective,
        plan_executed: execute(&input, Policy::Plan(&aware)),
        blind_plan_executed: execute(&input, Policy::Plan(&blind)),
        rule_executed: execute(&input, Policy::Rule),
        feasible: errors.is_empty(),
        errors,
    }
}

/// The comparison as a table.
pub fn format_people(r: &PeopleBenchResult) -> String {
    let mut out = format!(
        "plant with people: {} machines, {} runs, {} operators per shift (Mon–Fri 06–14, 14–22; nights and weekends off)\n",
        r.machines, r.runs, r.operators
    );
    out += &format!(
        "{:<34} {:>16} {:>16} {:>12} {:>12}\n",
        "executed through the calendar",
        "public tard. min",
        "weighted tard. h",
        "makespan h",
        "held up h"
    );
    let row = |name: &str, e: &Executed| {
        format!(
            "{:<34} {:>16.1} {:>16.1} {:>12.1} {:>12.1}{}\n",
            name,
            e.public_tardiness as f64 / MINUTE as f64,
            e.weighted_tardiness as f64 / HOUR as f64,
            e.makespan as f64 / HOUR as f64,
            e.held_up as f64 / HOUR as f64,
            if e.not_done > 0 {
                format!("  ({} runs not done)", e.not_done)
            } else {
                String::new()
            }
        )
    };
    out += &row("plan with operators", &r.plan_executed);
    out += &row("plan blind to operators", &r.blind_plan_executed);
    out += &row("dispatching rule", &r.rule_executed);
    out += &format!(
        "the plan with operators expected: public {:.1} min, weighted {:.1} h, makespan {:.1} h ({:.1} s to plan)\n",
        r.planned.public_tardiness as f64 / MINUTE as f64,
        r.planned.weighted_tardiness as f64 / HOUR as f64,
        r.planned.makespan as f64 / HOUR as f64,
        r.plan_seconds
    );
    out += &format!(
        "checker: {}\n",
        if r.feasible {
            "plan valid".to_string()
        } else {
            r.errors.join("; ")
        }
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_policy_finishes_the_day_and_the_aware_plan_beats_the_rule() {
        let spec = PlantSpec {
            machines: 20,
            runs: 200,
            seed: 3,
        };
        let r = run_people(spec, 2, Budget::work(2_000_000));
        assert!(r.feasible, "{:?}", r.errors);
        for e in [r.plan_executed, r.blind_plan_executed, r.rule_executed] {
            assert_eq!(e.not_done, 0, "{r:?}");
        }
        let key = |e: &Executed| (e.public_tardiness, e.weighted_tardiness);
        assert!(key(&r.plan_executed) < key(&r.rule_executed), "{r:?}");
    }

    #[test]
    fn the_calendar_has_nights_and_a_weekend() {
        let windows = shifts(0, 3);
        assert_eq!(windows.len() as i64, CALENDAR_DAYS / 7 * 5 * 2);
        let calendar = Calendar { windows: &windows };
        assert_eq!(calendar.operators_at(HOUR), 3, "07:00 Monday");
        assert_eq!(calendar.operators_at(17 * HOUR), 0, "23:00 Monday");
        assert_eq!(
            calendar.operators_at(5 * DAY + 4 * HOUR),
            0,
            "Saturday 10:00"
        );
        assert_eq!(
            calendar.working_until(HOUR),
            Some(16 * HOUR),
            "the shifts touch"
        );
    }
}
