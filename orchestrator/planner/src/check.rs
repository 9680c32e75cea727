//! An independent plan checker. It reads the [`PlanInput`] and [`Plan`] directly and shares no
//! code with the search's evaluator (only the two unit conversions of the model), so a bug in
//! the evaluator cannot hide itself. It also recomputes the objective from the plan.
//!
//! Operator work: every run's setup, load and unload are tasks of the right length in the right
//! place (the machine held from its setup to its unload's end, its output counting from then),
//! a due maintenance comes before the machine's first new run, and with shifts the tasks are in
//! working time, never more at once than the operators on shift, and runs on machines not
//! allowed after hours lie within one working stretch. Beyond the last shift the calendar is
//! unknown and nothing is checked (see [`crate::operators`]).

use std::collections::{HashMap, HashSet};

use crate::{
    FrozenStage, Millis, Objective, OperatorTask, OperatorTaskKind, Plan, PlanInput, Priority,
    ShiftWindow, run_millis, setup_millis,
};

fn ms(seconds: f64) -> Millis {
    (seconds.max(0.0) * 1000.0).round() as Millis
}

/// Every violation found, or the objective recomputed from the plan. `previous` is the plan this
/// one replaces, for the count of runs moved to another machine.
pub fn check_plan(
    input: &PlanInput,
    plan: &Plan,
    previous: Option<&Plan>,
) -> Result<Objective, Vec<String>> {
    let mut errors = Vec::new();
    let now = input.now;
    let runs: HashMap<i64, _> = input.runs.iter().map(|r| (r.id, r)).collect();
    let frozen: HashMap<i64, _> = input.frozen.iter().map(|f| (f.run_id, f)).collect();
    let machines: HashMap<&str, _> = input.machines.iter().map(|m| (m.id.as_str(), m)).collect();
    let unplanned: HashSet<i64> = plan.unplanned.iter().copied().collect();
    let mut tasks: HashMap<(i64, OperatorTaskKind), &OperatorTask> = HashMap::new();
    for t in &plan.operator_tasks {
        if let Some(run) = t.run_id
            && tasks.insert((run, t.kind), t).is_some()
        {
            errors.push(format!("run {run} has two {:?} tasks", t.kind));
        }
    }
    let task_length = |run: i64, kind| tasks.get(&(run, kind)).map_or(0, |t| t.end - t.start);
    // When each run's output counts and its machine is free: the end of its unload, if any.
    let release: HashMap<i64, Millis> = plan
        .assignments
        .iter()
        .map(|a| {
            let unload = tasks.get(&(a.run_id, OperatorTaskKind::Unload));
            (a.run_id, unload.map_or(a.end, |t| t.end.max(a.end)))
        })
        .collect();
    let mut planned = HashMap::new();
    for a in &plan.assignments {
        if planned.insert(a.run_id, a).is_some() {
            errors.push(format!("run {} is planned twice", a.run_id));
        }
        if unplanned.contains(&a.run_id) {
            errors.push(format!("run {} is both planned and unplanned", a.run_id));
        }
        let machine = machines.get(a.machine_id.as_str());
        let (load, unload) = machine.map_or((0, 0), |m| (ms(m.load_seconds), ms(m.unload_seconds)));
        if let Some(t) = tasks.get(&(a.run_id, OperatorTaskKind::Unload))
            && (t.start < a.end || t.machine_id != a.machine_id)
        {
            errors.push(format!("run {} is unloaded before it ends", a.run_id));
        }
        if task_length(a.run_id, OperatorTaskKind::Unload) != unload {
            errors.push(format!("run {} needs an unload of {unload} ms", a.run_id));
        }
        if let Some(f) = frozen.get(&a.run_id) {
            let unchanged = if f.stage == FrozenStage::AwaitingLoad {
                a.machine_id == f.machine_id
                    && a.end - a.start == f.end - f.start
                    && a.setup_start >= now
                    && a.start - a.setup_start == load
                    && task_length(a.run_id, OperatorTaskKind::Load) == load
            } else {
                (a.machine_id.as_str(), a.start, a.end) == (f.machine_id.as_str(), f.start, f.end)
            };
            if !unchanged {
                errors.push(format!("frozen run {} was changed", a.run_id));
            }
            continue;
        }
        if task_length(a.run_id, OperatorTaskKind::Load) != load
            || tasks
                .get(&(a.run_id, OperatorTaskKind::Load))
                .is_some_and(|t| t.end != a.start)
        {
            errors.push(format!(
                "run {} needs a load of {load} ms just before it",
                a.run_id
            ));
        }
        let Some(run) = runs.get(&a.run_id) else {
            errors.push(format!("run {} is not in the input", a.run_id));
            continue;
        };
        let Some(machine) = machines.get(a.machine_id.as_str()) else {
            errors.push(format!(
                "run {} is on unknown machine {}",
                a.run_id, a.machine_id
            ));
            continue;
        };
        if machine.out_of_service || !run.can_run_on(machine) {
            errors.push(format!(
                "run {} is on {}, which cannot take it",
                a.run_id, a.machine_id
            ));
        }
        if a.end - a.start != run_millis(run, machine) {
            errors.push(format!(
                "run {} lasts {} ms, not {}",
                a.run_id,
                a.end - a.start,
                run_millis(run, machine)
            ));
        }
        if a.setup_start > a.start || a.setup_start < now.max(machine.available_from.unwrap_or(now))
        {
            errors.push(format!(
                "run {} has its setup at {} (start {}, now {now})",
                a.run_id, a.setup_start, a.start
            ));
        }
        if machine
            .down
            .iter()
            .any(|w| a.setup_start < w.until && w.from < a.end)
        {
            errors.push(format!(
                "run {} overlaps downtime of {}",
                a.run_id, a.machine_id
            ));
        }
    }
    for f in &input.frozen {
        if !planned.contains_key(&f.run_id) {
            errors.push(format!("frozen run {} is missing from the plan", f.run_id));
        }
    }
    for run in &input.runs {
        if !planned.contains_key(&run.id) && !unplanned.contains(&run.id) {
            errors.push(format!("run {} is neither planned nor unplanned", run.id));
        }
        let pred_ends: Vec<Option<Millis>> = run
            .predecessors
            .iter()
            .filter(|p| runs.contains_key(p) || frozen.contains_key(p))
            .map(|p| release.get(p).copied())
            .collect();
        match planned.get(&run.id) {
            Some(a) => {
                for end in &pred_ends {
                    let load_start = a.start - task_length(run.id, OperatorTaskKind::Load);
                    match end {
                        None => errors.push(format!(
                            "run {} is planned but a predecessor is not",
                            run.id
                        )),
                        Some(end) if *end > load_start => {
                            errors.push(format!("run {} starts before a predecessor ends", run.id))
                        }
                        Some(_) => {}
                    }
                }
            }
            None if unplanned.contains(&run.id) => {
                let no_machine = !input
                    .machines
                    .iter()
                    .any(|m| !m.out_of_service && run.can_run_on(m));
                let limited = run
                    .material_needs
                    .iter()
                    .any(|n| input.materials.iter().any(|m| m.id == n.material));
                if !no_machine && !limited && !pred_ends.contains(&None) {
                    errors.push(format!("run {} is unplanned without a reason", run.id));
                }
            }
            None => {}
        }
    }
    // One thing at a time per machine, and the setup each run needs after the one before.
    let mut objective = Objective::default();
    let mut by_machine: HashMap<&str, Vec<_>> = HashMap::new();
    for a in &plan.assignments {
        by_machine.entry(a.machine_id.as_str()).or_default().push(a);
    }
    for (machine_id, mut list) in by_machine {
        list.sort_by_key(|a| (a.setup_start, a.start, a.end));
        let machine = machines.get(machine_id);
        let mut family = machine.and_then(|m| m.current_setup.as_deref());
        let load = machine.map_or(0, |m| ms(m.load_seconds));
        let maintenance = machine.map_or(0, |m| ms(m.maintenance_seconds));
        let mut maintained = maintenance == 0;
        for (i, a) in list.iter().enumerate() {
            let held_until = (i > 0).then(|| release[&list[i - 1].run_id]);
            if held_until.is_some_and(|end| end > a.setup_start) {
                errors.push(format!(
                    "runs {} and {} overlap on {machine_id}",
                    list[i - 1].run_id,
                    a.run_id
                ));
            }
            if let Some(f) = frozen.get(&a.run_id) {
                family = Some(f.setup_family.as_str());
            } else if let Some(run) = runs.get(&a.run_id) {
                let need = setup_millis(run, family);
                if a.start - a.setup_start != need + load {
                    errors.push(format!(
                        "run {} has {} ms of setup and load, needs {need} + {load}",
                        a.run_id,
                        a.start - a.setup_start
                    ));
                }
                if task_length(a.run_id, OperatorTaskKind::Setup) != need
                    || tasks
                        .get(&(a.run_id, OperatorTaskKind::Setup))
                        .is_some_and(|t| t.start != a.setup_start)
                {
                    errors.push(format!("run {} needs a setup task of {need} ms", a.run_id));
                }
                if !maintained {
                    maintained = plan.operator_tasks.iter().any(|t| {
                        t.kind == OperatorTaskKind::Maintenance
                            && t.machine_id == machine_id
                            && t.end - t.start == maintenance
                            && t.end <= a.setup_start
                            && held_until.is_none_or(|end| t.start >= end)
                            && t.start >= now
                    });
                    if !maintained {
                        errors.push(format!(
                            "{machine_id} runs {} before its maintenance",
                            a.run_id
                        ));
                        maintained = true;
                    }
                }
                objective.setup_time += need;
                objective.makespan = objective.makespan.max(release[&a.run_id] - now);
                family = Some(run.setup_family.as_str());
            }
        }
    }
    if !input.shifts.is_empty() {
        errors.extend(check_shifts(input, plan));
    }
    // Material: consumption at start never exceeds stock on hand plus arrivals so far.
    for material in &input.materials {
        let mut events: Vec<(Millis, bool, f64)> = material
            .arrivals
            .iter()
            .map(|a| (a.at.max(now), false, a.quantity))
            .collect();
        for a in &plan.assignments {
            if let Some(run) = runs.get(&a.run_id) {
                for n in run
                    .material_needs
                    .iter()
                    .filter(|n| n.material == material.id)
                {
                    events.push((a.start, true, n.quantity));
                }
            }
        }
        events.sort_by_key(|e| (e.0, e.1));
        let mut stock = material.on_hand;
        for (at, consume, quantity) in events {
            stock += if consume { -quantity } else { quantity };
            if stock < -1e-9 {
                errors.push(format!(
                    "material {} is short by {:.3} at {at}",
                    material.id, -stock
                ));
                break;
            }
        }
    }
    // Objective: tardiness by order (frozen work included), moved runs.
    let order_of: HashMap<i64, &str> = input
        .runs
        .iter()
        .map(|r| (r.id, r.order_id.as_str()))
        .chain(input.frozen.iter().map(|f| (f.run_id, f.order_id.as_str())))
        .collect();
    let mut completion: HashMap<&str, Millis> = HashMap::new();
    for a in &plan.assignments {
        if let Some(order) = order_of.get(&a.run_id) {
            let c = completion.entry(order).or_insert(Millis::MIN);
            *c = (*c).max(release[&a.run_id]);
        }
    }
    for order in &input.orders {
        let Some(&c) = completion.get(order.id.as_str()) else {
            continue;
        };
        let tardiness = (c - order.due).max(0) * i64::from(order.weight);
        match order.priority {
            Priority::PublicService => objective.public_tardiness += tardiness,
            Priority::Standard => objective.weighted_tardiness += tardiness,
        }
        if plan
            .order_eta
            .iter()
            .find(|(id, _)| *id == order.id)
            .map(|(_, e)| *e)
            != Some(c)
        {
            errors.push(format!("order {} has a wrong or missing ETA", order.id));
        }
    }
    if let Some(previous) = previous {
        let before: HashMap<i64, &str> = previous
            .assignments
            .iter()
            .map(|a| (a.run_id, a.machine_id.as_str()))
            .collect();
        objective.moved = plan
            .assignments
            .iter()
            .filter(|a| runs.contains_key(&a.run_id))
            .filter(|a| {
                before
                    .get(&a.run_id)
                    .is_some_and(|m| *m != a.machine_id && machines.contains_key(m))
            })
            .count() as i64;
    }
    if errors.is_empty() {
        Ok(objective)
    } else {
        Err(errors)
    }
}

/// Operator tasks in working time and within the operators on shift; runs on machines not
/// allowed after hours within one working stretch.
fn check_shifts(input: &PlanInput, plan: &Plan) -> Vec<String> {
    let mut errors = Vec::new();
    let mut windows: Vec<&ShiftWindow> = input.shifts.iter().collect();
    windows.sort_by_key(|w| (w.from, w.until));
    let horizon = windows.iter().map(|w| w.until).max().unwrap_or(Millis::MIN);
    let operators_at = |t: Millis| -> Option<u32> {
        if t >= horizon {
            return None;
        }
        Some(
            windows
                .iter()
                .filter(|w| w.from <= t && t < w.until)
                .map(|w| w.operators)
                .max()
                .unwrap_or(0),
        )
    };
    let mut events: Vec<(Millis, i32)> = Vec::new();
    for t in plan.operator_tasks.iter().filter(|t| t.end > t.start) {
        events.push((t.start, 1));
        events.push((t.end, -1));
    }
    events.extend(windows.iter().flat_map(|w| [(w.from, 0), (w.until, 0)]));
    events.sort_unstable();
    let mut busy = 0i32;
    for (i, &(t, delta)) in events.iter().enumerate() {
        busy += delta;
        let next = events.get(i + 1).map_or(t, |e| e.0);
        if next > t && busy > 0 {
            let on_shift = operators_at(t);
            if on_shift.is_some_and(|n| busy > n as i32) {
                errors.push(format!(
                    "{busy} operator tasks at {t} with {} on shift",
                    on_shift.unwrap_or(0)
                ));
                break;
            }
        }
    }
    // Working stretches: windows merged where they touch; the last one is open-ended.
    let mut stretches: Vec<(Millis, Millis)> = Vec::new();
    for w in &windows {
        match stretches.last_mut() {
            Some(last) if w.from <= last.1 => last.1 = last.1.max(w.until),
            _ => stretches.push((w.from, w.until)),
        }
    }
    if let Some(last) = stretches.last_mut() {
        last.1 = Millis::MAX;
    }
    let within =
        |from: Millis, until: Millis| stretches.iter().any(|&(a, b)| a <= from && until <= b);
    let machines: HashMap<&str, _> = input.machines.iter().map(|m| (m.id.as_str(), m)).collect();
    let frozen: HashSet<i64> = input.frozen.iter().map(|f| f.run_id).collect();
    for a in plan
        .assignments
        .iter()
        .filter(|a| !frozen.contains(&a.run_id))
    {
        if machines
            .get(a.machine_id.as_str())
            .is_some_and(|m| !m.after_hours)
            && a.end > a.start
            && !within(a.start, a.end)
        {
            errors.push(format!(
                "run {} on {} runs after hours",
                a.run_id, a.machine_id
            ));
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        FrozenRun, MaterialArrival, MaterialNeed, PlanMachine, PlanMaterial, PlanOrder, PlanRun,
        Planned,
    };

    const MIN: Millis = 60_000;

    fn input() -> PlanInput {
        let machine = |id: &str, capability: &str, setup: Option<&str>| PlanMachine {
            id: id.into(),
            capabilities: vec![capability.into()],
            current_setup: setup.map(Into::into),
            ..PlanMachine::default()
        };
        let run = |id, capability: &str, family: &str| PlanRun {
            id,
            order_id: "o".into(),
            capability: capability.into(),
            run_seconds: 600.0,
            setup_seconds: 600.0,
            setup_family: family.into(),
            ..PlanRun::default()
        };
        PlanInput {
            now: 0,
            machines: vec![
                machine("m1", "laser", Some("a")),
                machine("m2", "laser", None),
                machine("m3", "bend", None),
            ],
            orders: vec![PlanOrder {
                id: "o".into(),
                due: 35 * MIN,
                ..PlanOrder::default()
            }],
            runs: vec![
                run(1, "laser", "a"),
                PlanRun {
                    material_needs: vec![MaterialNeed {
                        material: "ply".into(),
                        quantity: 1.0,
                    }],
                    ..run(2, "laser", "b")
                },
                PlanRun {
                    predecessors: vec![1],
                    ..run(3, "bend", "c")
                },
            ],
            frozen: vec![FrozenRun {
                run_id: 9,
                order_id: "o".into(),
                machine_id: "m2".into(),
                setup_family: "b".into(),
                start: -20 * MIN,
                end: 5 * MIN,
                ..FrozenRun::default()
            }],
            materials: vec![PlanMaterial {
                id: "ply".into(),
                on_hand: 0.0,
                arrivals: vec![MaterialArrival {
                    at: 30 * MIN,
                    quantity: 1.0,
                }],
            }],
            shifts: Vec::new(),
        }
    }

    fn valid_plan() -> Plan {
        let at = |run_id, machine: &str, setup_start: i64, start: i64| Planned {
            run_id,
            machine_id: machine.into(),
            setup_start: setup_start * MIN,
            start: start * MIN,
            end: (start + 10) * MIN,
        };
        Plan {
            assignments: vec![
                at(1, "m1", 0, 0),
                at(2, "m2", 30, 30),
                at(3, "m3", 10, 20),
                Planned {
                    run_id: 9,
                    machine_id: "m2".into(),
                    setup_start: -20 * MIN,
                    start: -20 * MIN,
                    end: 5 * MIN,
                },
            ],
            order_eta: vec![("o".into(), 40 * MIN)],
            operator_tasks: vec![OperatorTask {
                machine_id: "m3".into(),
                run_id: Some(3),
                kind: OperatorTaskKind::Setup,
                start: 10 * MIN,
                end: 20 * MIN,
            }],
            ..Plan::default()
        }
    }

    #[test]
    fn accepts_a_valid_plan_and_computes_its_objective() {
        let expected = Objective {
            public_tardiness: 0,
            weighted_tardiness: 5 * MIN,
            makespan: 40 * MIN,
            setup_time: 10 * MIN,
            moved: 0,
        };
        assert_eq!(check_plan(&input(), &valid_plan(), None), Ok(expected));
    }

    #[test]
    fn catches_every_kind_of_violation() {
        type Mutation = fn(&mut PlanInput, &mut Plan);
        let cases: [(&str, Mutation); 11] = [
            ("overlap with frozen run", |_, p| {
                p.assignments[1].setup_start = 0;
                p.assignments[1].start = 0;
                p.assignments[1].end = 10 * MIN;
            }),
            ("wrong duration", |_, p| p.assignments[0].end += 1),
            ("missing setup", |_, p| {
                p.assignments[2].setup_start = p.assignments[2].start
            }),
            ("frozen run changed", |_, p| p.assignments[3].end += MIN),
            ("precedence", |_, p| {
                p.assignments[2].setup_start = 0;
                p.assignments[2].start = 5 * MIN;
                p.assignments[2].end = 15 * MIN;
            }),
            ("material short", |i, _| {
                i.materials[0].arrivals[0].at = 31 * MIN
            }),
            ("ineligible machine", |_, p| {
                p.assignments[2].machine_id = "m1".into()
            }),
            ("run missing", |_, p| {
                p.assignments.remove(0);
            }),
            ("wrong eta", |_, p| p.order_eta[0].1 += 1),
            ("unplanned without reason", |_, p| {
                p.assignments.remove(0);
                p.unplanned.push(1);
            }),
            ("downtime", |i, _| {
                i.machines[2].down.push(crate::Window {
                    from: 25 * MIN,
                    until: 26 * MIN,
                })
            }),
        ];
        for (name, mutate) in cases {
            let (mut input, mut plan) = (input(), valid_plan());
            mutate(&mut input, &mut plan);
            assert!(
                check_plan(&input, &plan, None).is_err(),
                "{name} not caught"
            );
        }
    }

    #[test]
    fn counts_runs_moved_from_the_previous_plan() {
        let mut previous = valid_plan();
        previous.assignments[1].machine_id = "m1".into();
        assert_eq!(
            check_plan(&input(), &valid_plan(), Some(&previous)).map(|o| o.moved),
            Ok(1)
        );
    }
}
