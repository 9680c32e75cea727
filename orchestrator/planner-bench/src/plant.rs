//! Plant-scale benchmark on a generated day ([`crate::day`]): the first plan, the dispatching
//! rule simulated on its own as the baseline, and a machine failure mid-morning followed by an
//! online re-plan.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use serde::Serialize;

use microfab_planner::check::check_plan;
use microfab_planner::plan::order_etas;
use microfab_planner::{
    Budget, Millis, Objective, OperatorTask, OperatorTaskKind, Plan, PlanInput, PlanMachine,
    PlanRun, Planned, dispatch_ready_runs, plan, run_millis, setup_millis,
};

use crate::day::{HOUR, MINUTE, PlantSpec, after_failure, generate};

/// The dispatching rule on its own, simulated: whenever machines are idle it dispatches ready
/// runs (predecessors done, material in stock) with [`dispatch_ready_runs`]; a dispatched run
/// sets up if needed (a setup task for an operator, as many as needed) and runs; downtime
/// delays work that would overlap it. The plant here has no loads, unloads or shifts.
pub fn simulate_rule(input: &PlanInput) -> Plan {
    let now = input.now;
    let runs: HashMap<i64, &PlanRun> = input.runs.iter().map(|r| (r.id, r)).collect();
    let frozen_end: HashMap<i64, Millis> = input.frozen.iter().map(|f| (f.run_id, f.end)).collect();
    let mut free: Vec<Millis> = input
        .machines
        .iter()
        .map(|m| {
            let busy = input
                .frozen
                .iter()
                .filter(|f| f.machine_id == m.id)
                .map(|f| f.end)
                .max();
            now.max(m.available_from.unwrap_or(now))
                .max(busy.unwrap_or(now))
        })
        .collect();
    let mut family: Vec<Option<String>> = input
        .machines
        .iter()
        .map(|m| {
            let last = input
                .frozen
                .iter()
                .filter(|f| f.machine_id == m.id)
                .max_by_key(|f| f.end);
            last.map(|f| f.setup_family.clone())
                .or_else(|| m.current_setup.clone())
        })
        .collect();
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
    let mut end_of: HashMap<i64, Millis> = HashMap::new();
    let mut remaining: Vec<&PlanRun> = input.runs.iter().collect();
    let mut assignments: Vec<Planned> = Vec::new();
    let mut operator_tasks: Vec<OperatorTask> = Vec::new();
    let mut t = now;
    while !remaining.is_empty() {
        while next_arrival < arrivals.len() && arrivals[next_arrival].0 <= t {
            *stock.entry(arrivals[next_arrival].1).or_default() += arrivals[next_arrival].2;
            next_arrival += 1;
        }
        let done = |id: &i64| match (frozen_end.get(id), end_of.get(id), runs.contains_key(id)) {
            (Some(&e), _, _) | (None, Some(&e), _) => e <= t,
            (None, None, known) => !known,
        };
        let ready: Vec<PlanRun> = remaining
            .iter()
            .filter(|r| r.predecessors.iter().all(done))
            .filter(|r| {
                r.material_needs.iter().all(|n| {
                    stock
                        .get(n.material.as_str())
                        .is_none_or(|s| *s + 1e-9 >= n.quantity)
                })
            })
            .map(|r| PlanRun {
                ready: true,
                ..(*r).clone()
            })
            .collect();
        let in_down = |m: &PlanMachine| m.down.iter().any(|w| w.from <= t && t < w.until);
        let idle: Vec<PlanMachine> = input
            .machines
            .iter()
            .enumerate()
            .filter(|(i, m)| free[*i] <= t && !m.out_of_service && !in_down(m))
            .map(|(_, m)| PlanMachine {
                idle: true,
                ..m.clone()
            })
            .collect();
        let snapshot = PlanInput {
            now: t,
            machines: idle,
            orders: input.orders.clone(),
            runs: ready,
            ..PlanInput::default()
        };
        let mut started = HashSet::new();
        for d in dispatch_ready_runs(&snapshot) {
            let run = runs[&d.run_id];
            // Material is taken when the run starts; a run whose material ran out waits.
            if !run.material_needs.iter().all(|n| {
                stock
                    .get(n.material.as_str())
                    .is_none_or(|s| *s + 1e-9 >= n.quantity)
            }) {
                continue;
            }
            for n in &run.material_needs {
                if let Some(s) = stock.get_mut(n.material.as_str()) {
                    *s -= n.quantity;
                }
            }
            let m = input
                .machines
                .iter()
                .position(|m| m.id == d.machine_id)
                .expect("dispatch to a known machine");
            let machine = &input.machines[m];
            let setup = setup_millis(run, family[m].as_deref());
            let length = setup + run_millis(run, machine);
            let mut setup_start = t;
            for w in &machine.down {
                if setup_start < w.until && w.from < setup_start + length {
                    setup_start = w.until;
                }
            }
            let start = setup_start + setup;
            let end = setup_start + length;
            free[m] = end;
            family[m] = Some(run.setup_family.clone());
            end_of.insert(run.id, end);
            if setup > 0 {
                operator_tasks.push(OperatorTask {
                    machine_id: d.machine_id.clone(),
                    run_id: Some(run.id),
                    kind: OperatorTaskKind::Setup,
                    start: setup_start,
                    end: start,
                });
            }
            assignments.push(Planned {
                run_id: run.id,
                machine_id: d.machine_id,
                setup_start,
                start,
                end,
            });
            started.insert(run.id);
        }
        remaining.retain(|r| !started.contains(&r.id));
        // Next moment anything changes: a machine frees up, material arrives, downtime ends.
        let next = free
            .iter()
            .copied()
            .chain(arrivals.get(next_arrival).map(|a| a.0))
            .chain(
                input
                    .machines
                    .iter()
                    .flat_map(|m| m.down.iter().map(|w| w.until)),
            )
            .filter(|&x| x > t)
            .min();
        match next {
            Some(x) => t = x,
            None => break,
        }
    }
    let unplanned: Vec<i64> = remaining.iter().map(|r| r.id).collect();
    let frozen = input.frozen.iter().map(|f| Planned {
        run_id: f.run_id,
        machine_id: f.machine_id.clone(),
        setup_start: f.start,
        start: f.start,
        end: f.end,
    });
    assignments.extend(frozen);
    let order_eta = order_etas(input, &assignments, &operator_tasks);
    Plan {
        assignments,
        operator_tasks,
        order_eta,
        unplanned,
        ..Plan::default()
    }
}
#[derive(Debug, Clone, Serialize)]
pub struct PlantBenchResult {
    pub machines: usize,
    pub runs: usize,
    pub first_plan_seconds: f64,
    pub first_plan: Objective,
    pub first_plan_iterations: u64,
    pub first_plan_work: u64,
    pub rule: Objective,
    pub failed_machine: String,
    pub replan_runs: usize,
    pub replan_seconds: f64,
    pub replan: Objective,
    pub replan_iterations: u64,
    pub replan_work: u64,
    pub replan_rule: Objective,
    /// Runs placed on another machine than in the plan before the failure.
    pub moved_runs: i64,
    /// Of those, runs that had been planned on the failed machine.
    pub displaced_runs: usize,
    pub feasible: bool,
    pub errors: Vec<String>,
}

/// First plan, the rule's day, a failure of the busiest machine 30 minutes in, the re-plan.
/// Each plan within its own budget.
pub fn run_plant(spec: PlantSpec, first_budget: Budget, replan_budget: Budget) -> PlantBenchResult {
    let input = generate(spec);
    let started = Instant::now();
    let first = plan(&input, None, first_budget, spec.seed);
    let first_plan_seconds = started.elapsed().as_secs_f64();
    let mut errors = Vec::new();
    let mut checked = |input: &PlanInput, p: &Plan, previous: Option<&Plan>, what: &str| {
        check_plan(input, p, previous).unwrap_or_else(|e| {
            errors.extend(e.into_iter().take(5).map(|e| format!("{what}: {e}")));
            Objective::default()
        })
    };
    let first_obj = checked(&input, &first, None, "first plan");
    let rule_obj = checked(&input, &simulate_rule(&input), None, "rule");
    let mut load: HashMap<&str, usize> = HashMap::new();
    for a in &first.assignments {
        *load.entry(a.machine_id.as_str()).or_default() += 1;
    }
    let failed = load
        .iter()
        .max_by_key(|(id, n)| (**n, std::cmp::Reverse(**id)))
        .map_or(String::new(), |(id, _)| id.to_string());
    let next = after_failure(&input, &first, 30, &failed);
    let started = Instant::now();
    let replanned = plan(&next, Some(&first), replan_budget, spec.seed);
    let replan_seconds = started.elapsed().as_secs_f64();
    let replan_obj = checked(&next, &replanned, Some(&first), "re-plan");
    let replan_rule = checked(&next, &simulate_rule(&next), None, "rule after failure");
    let displaced_runs = first
        .assignments
        .iter()
        .filter(|a| a.machine_id == failed && next.runs.iter().any(|r| r.id == a.run_id))
        .count();
    for (what, reported, checked) in [
        ("first plan", first.objective, first_obj),
        ("re-plan", replanned.objective, replan_obj),
    ] {
        if reported != checked {
            errors.push(format!(
                "{what}: planner reports {reported:?}, checker computes {checked:?}"
            ));
        }
    }
    PlantBenchResult {
        machines: input.machines.len(),
        runs: input.runs.len(),
        first_plan_seconds,
        first_plan: first_obj,
        first_plan_iterations: first.iterations,
        first_plan_work: first.work,
        rule: rule_obj,
        failed_machine: failed,
        replan_runs: next.runs.len(),
        replan_seconds,
        replan: replan_obj,
        replan_iterations: replanned.iterations,
        replan_work: replanned.work,
        replan_rule,
        moved_runs: replan_obj.moved,
        displaced_runs,
        feasible: errors.is_empty(),
        errors,
    }
}

/// A short human-readable report.
pub fn format_plant(r: &PlantBenchResult) -> String {
    let obj = |o: &Objective| {
        format!(
            "public tardiness {:.1} min, weighted tardiness {:.1} h, makespan {:.2} h, setup {:.1} h",
            o.public_tardiness as f64 / MINUTE as f64,
            o.weighted_tardiness as f64 / HOUR as f64,
            o.makespan as f64 / HOUR as f64,
            o.setup_time as f64 / HOUR as f64
        )
    };
    let mut out = format!("plant: {} machines, {} runs\n", r.machines, r.runs);
    out += &format!(
        "first plan   {:>7.3} s  {} iterations, {:.1} M work  {}\n",
        r.first_plan_seconds,
        r.first_plan_iterations,
        r.first_plan_work as f64 / 1e6,
        obj(&r.first_plan)
    );
    out += &format!("rule alone               {}\n", obj(&r.rule));
    out += &format!(
        "failure of {} after 30 min: {} runs to re-plan, {} displaced\n",
        r.failed_machine, r.replan_runs, r.displaced_runs
    );
    out += &format!(
        "re-plan      {:>7.3} s  {} iterations, {:.1} M work  {}\n",
        r.replan_seconds,
        r.replan_iterations,
        r.replan_work as f64 / 1e6,
        obj(&r.replan)
    );
    out += &format!("rule alone               {}\n", obj(&r.replan_rule));
    out += &format!("moved runs (other machine than before): {}\n", r.moved_runs);
    out += &format!(
        "planner better than rule: first {}, re-plan {}\n",
        r.first_plan < r.rule,
        r.replan < r.replan_rule
    );
    out += &format!(
        "checker: {}\n",
        if r.feasible {
            "all plans valid".to_string()
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
    fn the_rule_alone_gives_valid_days() {
        let day = generate(PlantSpec {
            machines: 20,
            runs: 200,
            seed: 4,
        });
        let rule = simulate_rule(&day);
        assert!(rule.unplanned.is_empty());
        assert!(check_plan(&day, &rule, None).is_ok());
    }

    #[test]
    fn planner_beats_the_rule_before_and_after_a_failure() {
        let spec = PlantSpec {
            machines: 30,
            runs: 300,
            seed: 6,
        };
        let r = run_plant(spec, Budget::work(5_000_000), Budget::work(1_000_000));
        assert!(r.feasible, "{:?}", r.errors);
        assert!(r.first_plan < r.rule, "{:?} vs {:?}", r.first_plan, r.rule);
        assert!(
            r.replan < r.replan_rule,
            "{:?} vs {:?}",
            r.replan,
            r.replan_rule
        );
        assert!(r.displaced_runs > 0 && r.moved_runs >= r.displaced_runs as i64);
    }
}
