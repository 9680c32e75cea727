//! The plant planner: [`plan`] turns a [`PlanInput`] into a [`Plan`] (machine, sequence and
//! times per run, an ETA per order); [`next_dispatches`] lets the runtime follow it.
//!
//! Translation into the search problem (times relative to `now`, in ms):
//! - a run may go to every in-service machine with its capability; duration = run seconds ×
//!   speed factor;
//! - frozen runs (already on machines) stay as they are: they push back their machine's
//!   availability, set its setup family and release their successors at their end;
//! - material is a constraint, enforced conservatively through release times: the runs needing a
//!   material are ranked by urgency (public service, due date, submission, run id) and the k-th
//!   may not start before stock on hand plus arrivals covers the first k's demand. Whatever order
//!   the runs then start in, stock never goes short. Runs whose need is never covered, that no
//!   in-service machine can do, or whose predecessors cannot be planned are returned as
//!   `unplanned`.
//! - operator work: each machine's load, unload and due maintenance; frozen runs' remaining
//!   operator work (a load still to do, an unload) is booked first, since those runs hold their
//!   machines now; the shifts make the operators a shared resource ([`crate::operators`]).

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::construct::{Rule, construct, work_remaining};
use crate::operators::OperatorPool;
use crate::problem::{
    Evaluator, NEG, NONE, Objective, OpSpec, OperatorWork, Problem, ProblemBuilder,
};
use crate::search::{Budget, tabu_search};
use crate::{
    Dispatch, FrozenRun, FrozenStage, Millis, PlanInput, PlanMachine, PlanOrder, PlanRun, Priority,
    dispatch_ready_runs, run_millis, setup_millis,
};

/// One run's place in the plan: its machine is prepared from `setup_start` (setup when the
/// family changes, then the load; `setup_start == start` when neither is needed) and runs from
/// `start` to `end`. The unload after it is in [`Plan::operator_tasks`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Planned {
    pub run_id: i64,
    pub machine_id: String,
    pub setup_start: Millis,
    pub start: Millis,
    pub end: Millis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OperatorTaskKind {
    Setup,
    Load,
    Unload,
    Maintenance,
}

/// A planned piece of operator work; its machine is held meanwhile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OperatorTask {
    pub machine_id: String,
    /// The run it prepares or unloads (`None` for maintenance).
    pub run_id: Option<i64>,
    pub kind: OperatorTaskKind,
    pub start: Millis,
    pub end: Millis,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Plan {
    /// Every planned run, frozen ones included (unchanged, except that a run awaiting its load
    /// starts when the load is planned), sorted by machine then start.
    pub assignments: Vec<Planned>,
    /// Setups, loads, unloads and maintenance, sorted by start then machine. Empty when no
    /// machine needs any.
    pub operator_tasks: Vec<OperatorTask>,
    /// Expected completion per order with planned or frozen work, in input order.
    pub order_eta: Vec<(String, Millis)>,
    /// Objective of the plan (times in ms relative to `PlanInput::now`).
    pub objective: Objective,
    /// Runs that cannot be planned now (no in-service machine, material never covered, or an
    /// unplannable predecessor), in input order.
    pub unplanned: Vec<i64>,
    /// Search effort spent (tabu iterations, work units).
    pub iterations: u64,
    pub work: u64,
}

/// Urgency order shared by material allocation and construction tie-breaks.
pub(crate) fn urgency_key(
    order: Option<&PlanOrder>,
    run: &PlanRun,
) -> (Priority, Millis, i64, i64) {
    match order {
        Some(o) => (o.priority, o.due, o.sequence, run.id),
        None => (Priority::Standard, Millis::MAX, i64::MAX, run.id),
    }
}

/// A century in ms: beyond any plan, far below overflow.
const HORIZON: Millis = 100 * 365 * 24 * 3_600_000;

struct Translation {
    problem: Problem,
    /// Index into `input.runs` per op.
    run_of_op: Vec<usize>,
    unplanned: Vec<i64>,
    frozen: Vec<FrozenPlacement>,
}

/// A frozen run as planned, with its remaining operator work.
struct FrozenPlacement {
    planned: Planned,
    tasks: Vec<OperatorTask>,
    /// When its output counts and its machine is free: after the unload.
    release: Millis,
}

fn ms(seconds: f64) -> Millis {
    (seconds.max(0.0) * 1000.0).round() as Millis
}

/// A machine's operator work in ms (an unknown machine: none).
fn operator_work(machine: Option<&PlanMachine>) -> OperatorWork {
    machine.map_or_else(OperatorWork::default, |m| OperatorWork {
        load: ms(m.load_seconds),
        unload: ms(m.unload_seconds),
        maintenance: ms(m.maintenance_seconds),
        after_hours: m.after_hours,
    })
}

/// Books the operator work left on frozen runs (in the order it becomes possible) and returns
/// where each run now stands. A run awaiting its load starts after it (and, on a machine not
/// allowed after hours, when its run fits in working time); every run is then unloaded.
fn place_frozen(
    input: &PlanInput,
    machines: &HashMap<&str, usize>,
    pool: &mut OperatorPool,
) -> Vec<FrozenPlacement> {
    let now = input.now;
    let earliest = |f: &FrozenRun| match f.stage {
        FrozenStage::Running => f.end.max(now),
        FrozenStage::AwaitingLoad | FrozenStage::AwaitingUnload => now,
    };
    let mut order: Vec<&FrozenRun> = input.frozen.iter().collect();
    order.sort_by_key(|f| (earliest(f), f.run_id));
    let mut placed: Vec<FrozenPlacement> = order
        .into_iter()
        .map(|f| {
            let machine = machines
                .get(f.machine_id.as_str())
                .map(|&m| &input.machines[m]);
            let work = operator_work(machine);
            let task = |kind, start: Millis, length: Millis| OperatorTask {
                machine_id: f.machine_id.clone(),
                run_id: Some(f.run_id),
                kind,
                start: now + start,
                end: now + start + length,
            };
            let mut tasks = Vec::new();
            let (mut start, mut end) = (f.start, f.end);
            let mut setup_start = f.start;
            if f.stage == FrozenStage::AwaitingLoad {
                let run = (f.end - f.start).max(0);
                let mut t = 0;
                loop {
                    let mut next = pool.fit(t, work.load);
                    if !work.after_hours {
                        next = next
                            .max(pool.run_within_working_time(next + work.load, run) - work.load);
                    }
                    if next == t {
                        break;
                    }
                    t = next;
                }
                pool.book(t, work.load);
                if work.load > 0 {
                    tasks.push(task(OperatorTaskKind::Load, t, work.load));
                }
                setup_start = now + t;
                start = setup_start + work.load;
                end = start + run;
            }
            let unload_from = if f.stage == FrozenStage::AwaitingUnload {
                0
            } else {
                end.max(now) - now
            };
            let unload = pool.fit(unload_from, work.unload);
            pool.book(unload, work.unload);
            if work.unload > 0 {
                tasks.push(task(OperatorTaskKind::Unload, unload, work.unload));
            }
            FrozenPlacement {
                planned: Planned {
                    run_id: f.run_id,
                    machine_id: f.machine_id.clone(),
                    setup_start,
                    start,
                    end,
                },
                tasks,
                release: end.max(now + unload + work.unload),
            }
        })
        .collect();
    placed.sort_by_key(|p| p.planned.run_id);
    placed
}

/// When stock on hand plus arrivals first reaches `demand`; None if never.
fn covered_at(
    now: Millis,
    on_hand: f64,
    arrivals: &[(Millis, f64)],
    demand: f64,
) -> Option<Millis> {
    const EPS: f64 = 1e-9;
    let mut stock = on_hand;
    if stock + EPS >= demand {
        return Some(now);
    }
    for &(at, quantity) in arrivals {
        stock += quantity;
        if stock + EPS >= demand {
            return Some(at.max(now));
        }
    }
    None
}

fn translate(input: &PlanInput, previous: Option<&Plan>) -> Translation {
    let now = input.now;
    let machine_index: HashMap<&str, usize> = input
        .machines
        .iter()
        .enumerate()
        .map(|(i, m)| (m.id.as_str(), i))
        .collect();
    let orders: HashMap<&str, (usize, &PlanOrder)> = input
        .orders
        .iter()
        .enumerate()
        .map(|(i, o)| (o.id.as_str(), (i, o)))
        .collect();
    let mut families: HashMap<String, u32> = HashMap::new();
    let mut family = |name: &str| -> u32 {
        if let Some(&f) = families.get(name) {
            return f;
        }
        let next = families.len() as u32;
        families.insert(name.to_string(), next);
        next
    };
    // Frozen work: machine availability and family, predecessor ends, order floors, all from
    // when its unload is done.
    let mut pool = OperatorPool::new(&input.shifts, now);
    let frozen_placed = place_frozen(input, &machine_index, &mut pool);
    let mut frozen_end: HashMap<i64, Millis> = HashMap::new();
    let mut machine_tail: Vec<Option<(Millis, &str)>> = vec![None; input.machines.len()];
    let mut order_floor = vec![NEG; input.orders.len()];
    let frozen_by_id: HashMap<i64, &FrozenRun> =
        input.frozen.iter().map(|f| (f.run_id, f)).collect();
    for placed in &frozen_placed {
        let f = frozen_by_id[&placed.planned.run_id];
        let release = placed.release;
        frozen_end.insert(f.run_id, release);
        if let Some(&m) = machine_index.get(f.machine_id.as_str())
            && machine_tail[m].is_none_or(|(end, _)| release >= end)
        {
            machine_tail[m] = Some((release, f.setup_family.as_str()));
        }
        if let Some(&(o, _)) = orders.get(f.order_id.as_str()) {
            order_floor[o] = order_floor[o].max(release - now);
        }
    }
    let mut b = ProblemBuilder::default();
    b.operators(pool);
    for (m, machine) in input.machines.iter().enumerate() {
        let mut ready = now.max(machine.available_from.unwrap_or(now));
        let mut fam = machine.current_setup.as_deref().map_or(NONE, &mut family);
        if let Some((end, f)) = machine_tail[m] {
            ready = ready.max(end);
            fam = family(f);
        }
        // Open-ended downtime (until = Millis::MAX) is clamped far out so sums cannot overflow.
        let relative = |t: Millis| t.saturating_sub(now).clamp(-HORIZON, HORIZON);
        let down = machine
            .down
            .iter()
            .filter(|w| w.until > now)
            .map(|w| (relative(w.from), relative(w.until)))
            .collect();
        let k = b.machine(ready - now, fam, down);
        b.operator_work(k, operator_work(Some(machine)));
    }
    for (o, order) in input.orders.iter().enumerate() {
        let public = order.priority == Priority::PublicService;
        b.order(
            order.due - now,
            public,
            i64::from(order.weight),
            order_floor[o],
        );
    }
    // Which runs can be planned: eligible machine, acyclic predecessors that can be planned.
    let run_index: HashMap<i64, usize> = input
        .runs
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id, i))
        .collect();
    let eligible = |r: &PlanRun| {
        input
            .machines
            .iter()
            .any(|m| !m.out_of_service && r.can_run_on(m))
    };
    let mut plannable: Vec<bool> = input.runs.iter().map(eligible).collect();
    let in_plan_preds = |r: &PlanRun| {
        r.predecessors
            .iter()
            .filter_map(|p| run_index.get(p).copied())
            .collect::<Vec<_>>()
    };
    let mut topo = Vec::with_capacity(input.runs.len());
    {
        let mut indeg: Vec<usize> = input.runs.iter().map(|r| in_plan_preds(r).len()).collect();
        let mut succs: Vec<Vec<usize>> = vec![Vec::new(); input.runs.len()];
        for (i, r) in input.runs.iter().enumerate() {
            for p in in_plan_preds(r) {
                succs[p].push(i);
            }
        }
        let mut stack: Vec<usize> = (0..input.runs.len())
            .rev()
            .filter(|&i| indeg[i] == 0)
            .collect();
        while let Some(i) = stack.pop() {
            topo.push(i);
            for &s in &succs[i] {
                indeg[s] -= 1;
                if indeg[s] == 0 {
                    stack.push(s);
                }
            }
        }
    }
    let mut in_topo = vec![false; input.runs.len()];
    topo.iter().for_each(|&i| in_topo[i] = true);
    let propagate = |plannable: &mut Vec<bool>| {
        for (i, ok) in plannable.iter_mut().enumerate() {
            *ok &= in_topo[i];
        }
        for &i in &topo {
            if in_plan_preds(&input.runs[i]).iter().any(|&p| !plannable[p]) {
                plannable[i] = false;
            }
        }
    };
    propagate(&mut plannable);
    // Material release times, by urgency rank.
    let mut material_release = vec![now; input.runs.len()];
    let mut by_urgency: Vec<usize> = (0..input.runs.len()).filter(|&i| plannable[i]).collect();
    by_urgency.sort_by_key(|&i| {
        let r = &input.runs[i];
        urgency_key(orders.get(r.order_id.as_str()).map(|(_, o)| *o), r)
    });
    for material in &input.materials {
        let mut arrivals: Vec<(Millis, f64)> = material
            .arrivals
            .iter()
            .map(|a| (a.at, a.quantity))
            .collect();
        arrivals.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
        let mut demand = 0.0;
        for &i in &by_urgency {
            let need: f64 = input.runs[i]
                .material_needs
                .iter()
                .filter(|n| n.material == material.id)
                .map(|n| n.quantity)
                .sum();
            if need <= 0.0 || !plannable[i] {
                continue;
            }
            demand += need;
            match covered_at(now, material.on_hand, &arrivals, demand) {
                Some(at) => material_release[i] = material_release[i].max(at),
                None => {
                    plannable[i] = false;
                    demand -= need;
                }
            }
        }
    }
    propagate(&mut plannable);
    // Ops, in input order.
    let mut rank = vec![0u32; input.runs.len()];
    for (r, &i) in by_urgency.iter().enumerate() {
        rank[i] = r as u32;
    }
    let mut op_of_run = vec![NONE; input.runs.len()];
    let mut run_of_op = Vec::new();
    for (i, r) in input.runs.iter().enumerate() {
        if !plannable[i] {
            continue;
        }
        let mut release = material_release[i] - now;
        for p in &r.predecessors {
            if let Some(&end) = frozen_end.get(p) {
                release = release.max(end - now);
            }
        }
        let alternatives = input
            .machines
            .iter()
            .enumerate()
            .filter(|(_, m)| !m.out_of_service && r.can_run_on(m))
            .map(|(k, m)| (k as u32, run_millis(r, m)))
            .collect();
        op_of_run[i] = b.op(OpSpec {
            alternatives,
            release,
            family: family(&r.setup_family),
            setup: setup_millis(r, None),
            order: orders
                .get(r.order_id.as_str())
                .map_or(NONE, |(o, _)| *o as u32),
        });
        b.rank(op_of_run[i], rank[i]);
        run_of_op.push(i);
    }
    for (i, r) in input.runs.iter().enumerate() {
        if op_of_run[i] == NONE {
            continue;
        }
        for p in r.predecessors.iter().filter_map(|p| run_index.get(p)) {
            b.precedence(op_of_run[*p], op_of_run[i]);
        }
    }
    if let Some(previous) = previous {
        for a in &previous.assignments {
            if let (Some(&i), Some(&m)) = (
                run_index.get(&a.run_id),
                machine_index.get(a.machine_id.as_str()),
            ) && op_of_run[i] != NONE
            {
                b.previous(op_of_run[i], m as u32, a.start - now);
            }
        }
    }
    let unplanned = input
        .runs
        .iter()
        .zip(&plannable)
        .filter(|(_, ok)| !**ok)
        .map(|(r, _)| r.id)
        .collect();
    Translation {
        problem: b.build(),
        run_of_op,
        unplanned,
        frozen: frozen_placed,
    }
}

/// Rules tried for a first plan. A re-plan keeps every run on its previous machine when it
/// still may (stability: any other run it moves, the search moved for a gain) and tries the
/// previous order as well as fresh urgency orders: after a failure the old order can be far off.
const FIRST_PLAN_RULES: [Rule; 5] = [
    Rule::Urgency,
    Rule::ApparentTardinessCost,
    Rule::Slack,
    Rule::MostWorkRemaining,
    Rule::EarliestCompletion,
];
const REPLAN_RULES: [Rule; 3] = [Rule::Previous, Rule::Urgency, Rule::ApparentTardinessCost];

/// Plans all runs of `input`. With `previous`, the search starts from it and counts runs moved
/// to another machine as the last objective level, so the plan is only reshuffled for a gain.
/// Deterministic: same input, previous plan, budget and seed, same plan.
pub fn plan(input: &PlanInput, previous: Option<&Plan>, budget: Budget, seed: u64) -> Plan {
    let t = translate(input, previous);
    let p = &t.problem;
    let topo = p
        .job_topological_order()
        .expect("translation drops cyclic runs");
    let work = work_remaining(p, &topo);
    let rules: &[Rule] = if previous.is_some() {
        &REPLAN_RULES
    } else {
        &FIRST_PLAN_RULES
    };
    let mut eval = Evaluator::new(p);
    let start = rules
        .iter()
        .map(|&rule| {
            let s = construct(p, rule, &work);
            (
                eval.evaluate(p, &s)
                    .expect("constructed solutions are acyclic"),
                s,
            )
        })
        .min_by_key(|(obj, _)| *obj)
        .map(|(_, s)| s)
        .expect("at least one rule");
    let outcome = tabu_search(p, start, budget, seed);
    eval.evaluate(p, &outcome.solution)
        .expect("search keeps solutions acyclic");
    let now = input.now;
    let mut assignments = Vec::with_capacity(t.frozen.len() + t.run_of_op.len());
    let mut operator_tasks = Vec::new();
    for placed in t.frozen {
        assignments.push(placed.planned);
        operator_tasks.extend(placed.tasks);
    }
    for (op, &i) in t.run_of_op.iter().enumerate() {
        let machine = outcome.solution.machine(p, op as u32) as usize;
        let machine_id = &input.machines[machine].id;
        let run_id = input.runs[i].id;
        let load_start = now + eval.start[op];
        let setup = eval.setup_time[op];
        let maintenance = if eval.mprev[op] == NONE {
            p.machine_maintenance[machine]
        } else {
            0
        };
        let (load, unload) = (p.machine_load[machine], p.machine_unload[machine]);
        let start = load_start + load;
        let end = start + p.alt_dur[outcome.solution.alt[op] as usize];
        let mut task = |run_id, kind, start: Millis, length: Millis| {
            if length > 0 {
                operator_tasks.push(OperatorTask {
                    machine_id: machine_id.clone(),
                    run_id,
                    kind,
                    start,
                    end: start + length,
                });
            }
        };
        let maintenance_start = load_start - setup - maintenance;
        task(
            None,
            OperatorTaskKind::Maintenance,
            maintenance_start,
            maintenance,
        );
        task(
            Some(run_id),
            OperatorTaskKind::Setup,
            load_start - setup,
            setup,
        );
        task(Some(run_id), OperatorTaskKind::Load, load_start, load);
        let unload_end = now + eval.end[op];
        task(
            Some(run_id),
            OperatorTaskKind::Unload,
            unload_end - unload,
            unload,
        );
        assignments.push(Planned {
            run_id,
            machine_id: machine_id.clone(),
            setup_start: load_start - setup,
            start,
            end,
        });
    }
    assignments.sort_by(|a, b| {
        (&a.machine_id, a.start, a.run_id).cmp(&(&b.machine_id, b.start, b.run_id))
    });
    operator_tasks.sort_by(|a, b| {
        (a.start, &a.machine_id, a.run_id).cmp(&(b.start, &b.machine_id, b.run_id))
    });
    let order_eta = order_etas(input, &assignments, &operator_tasks);
    Plan {
        assignments,
        operator_tasks,
        order_eta,
        objective: outcome.objective,
        unplanned: t.unplanned,
        iterations: outcome.iterations,
        work: outcome.work,
    }
}

/// Expected completion per order (its last planned or frozen run's end, or unload's end if it
/// has one), in input order.
pub fn order_etas(
    input: &PlanInput,
    assignments: &[Planned],
    operator_tasks: &[OperatorTask],
) -> Vec<(String, Millis)> {
    let order_of_run: HashMap<i64, &str> = input
        .runs
        .iter()
        .map(|r| (r.id, r.order_id.as_str()))
        .chain(input.frozen.iter().map(|f| (f.run_id, f.order_id.as_str())))
        .collect();
    let mut eta: HashMap<&str, Millis> = HashMap::new();
    let ends = assignments.iter().map(|a| (a.run_id, a.end)).chain(
        operator_tasks
            .iter()
            .filter_map(|t| t.run_id.map(|run| (run, t.end))),
    );
    for (run_id, end) in ends {
        if let Some(order) = order_of_run.get(&run_id) {
            let e = eta.entry(order).or_insert(Millis::MIN);
            *e = (*e).max(end);
        }
    }
    input
        .orders
        .iter()
        .filter_map(|o| eta.get(o.id.as_str()).map(|&e| (o.id.clone(), e)))
        .collect()
}

/// What to start now, following the plan: each idle machine starts the first run of its
/// planned queue that is ready. A machine whose queue has nothing ready falls back to the
/// dispatching rule over the ready runs the plan does not place on another usable machine
/// (new since planning, unplanned, or planned on a machine now out of service or gone): an idle
/// machine never waits on the planner.
pub fn next_dispatches(plan: &Plan, input: &PlanInput) -> Vec<Dispatch> {
    let runs: HashMap<i64, &PlanRun> = input.runs.iter().map(|r| (r.id, r)).collect();
    let usable: HashSet<&str> = input
        .machines
        .iter()
        .filter(|m| !m.out_of_service)
        .map(|m| m.id.as_str())
        .collect();
    let planned_on: HashMap<i64, &str> = plan
        .assignments
        .iter()
        .map(|a| (a.run_id, a.machine_id.as_str()))
        .collect();
    let mut taken: HashSet<i64> = HashSet::new();
    let mut decisions = Vec::new();
    for machine in input
        .machines
        .iter()
        .filter(|m| m.idle && !m.out_of_service)
    {
        // Assignments are sorted by machine then start.
        let queued = plan
            .assignments
            .iter()
            .filter(|a| a.machine_id == machine.id)
            .find(|a| !taken.contains(&a.run_id) && runs.get(&a.run_id).is_some_and(|r| r.ready));
        // With operators planned, the machine waits for its run's setup or load to be due: the
        // operators' time is planned too.
        if queued.is_some_and(|a| !input.shifts.is_empty() && a.setup_start > input.now) {
            continue;
        }
        if let Some(a) = queued {
            taken.insert(a.run_id);
            decisions.push(Dispatch {
                run_id: a.run_id,
                machine_id: machine.id.clone(),
            });
            continue;
        }
        let free_runs: Vec<PlanRun> = input
            .runs
            .iter()
            .filter(|r| !taken.contains(&r.id))
            .filter(|r| {
                planned_on
                    .get(&r.id)
                    .is_none_or(|m| *m == machine.id || !usable.contains(m))
            })
            .cloned()
            .collect();
        let alone = PlanInput {
            now: input.now,
            machines: vec![machine.clone()],
            orders: input.orders.clone(),
            runs: free_runs,
            ..PlanInput::default()
        };
        for d in dispatch_ready_runs(&alone) {
            taken.insert(d.run_id);
            decisions.push(d);
        }
    }
    decisions
}

#[cfg(test)]
mod operator_tests;
#[cfg(test)]
mod tests;
