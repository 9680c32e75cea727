//! Operator work in plans: loads, unloads, setups and maintenance on the shared operators,
//! shifts, after-hours, frozen runs' stages, and dispatching on the plan's operator times.

use super::*;
use crate::check::check_plan;
use crate::{FrozenRun, PlanMachine, ShiftWindow};

const MIN: Millis = 60_000;

fn machine(id: &str, load: f64, unload: f64, after_hours: bool) -> PlanMachine {
    PlanMachine {
        id: id.into(),
        capabilities: vec!["laser".into()],
        idle: true,
        current_setup: Some("f".into()),
        load_seconds: load * 60.0,
        unload_seconds: unload * 60.0,
        after_hours,
        ..PlanMachine::default()
    }
}

fn run(id: i64, order: &str, minutes: f64) -> PlanRun {
    PlanRun {
        id,
        order_id: order.into(),
        capability: "laser".into(),
        run_seconds: minutes * 60.0,
        setup_seconds: 600.0,
        setup_family: "f".into(),
        ready: true,
        ..PlanRun::default()
    }
}

fn order(id: &str, due: Millis) -> PlanOrder {
    PlanOrder {
        id: id.into(),
        due,
        ..PlanOrder::default()
    }
}

fn shift(from: i64, until: i64, operators: u32) -> ShiftWindow {
    ShiftWindow {
        from: from * MIN,
        until: until * MIN,
        operators,
    }
}

fn checked(input: &PlanInput) -> Plan {
    let plan = plan(input, None, Budget::work(200_000), 5);
    match check_plan(input, &plan, None) {
        Ok(objective) => assert_eq!(objective, plan.objective, "objective mismatch"),
        Err(errors) => panic!("checker rejects the plan: {errors:#?}"),
    }
    plan
}

fn tasks(plan: &Plan, kind: OperatorTaskKind) -> Vec<(String, Option<i64>, Millis, Millis)> {
    plan.operator_tasks
        .iter()
        .filter(|t| t.kind == kind)
        .map(|t| (t.machine_id.clone(), t.run_id, t.start / MIN, t.end / MIN))
        .collect()
}

fn at(plan: &Plan, run_id: i64) -> (Millis, Millis) {
    let a = plan
        .assignments
        .iter()
        .find(|a| a.run_id == run_id)
        .unwrap();
    (a.start / MIN, a.end / MIN)
}

#[test]
fn one_operator_loads_one_machine_at_a_time_and_etas_include_the_unload() {
    let input = PlanInput {
        machines: vec![machine("a", 10.0, 5.0, true), machine("b", 10.0, 5.0, true)],
        orders: vec![order("o1", 1000 * MIN), order("o2", 1000 * MIN)],
        runs: vec![run(1, "o1", 30.0), run(2, "o2", 30.0)],
        shifts: vec![shift(0, 600, 1)],
        ..PlanInput::default()
    };
    let plan = checked(&input);
    let mut loads: Vec<_> = tasks(&plan, OperatorTaskKind::Load)
        .into_iter()
        .map(|t| (t.2, t.3))
        .collect();
    loads.sort();
    assert_eq!(
        loads,
        vec![(0, 10), (10, 20)],
        "the second load waits for the operator"
    );
    let mut unloads: Vec<_> = tasks(&plan, OperatorTaskKind::Unload)
        .into_iter()
        .map(|t| (t.2, t.3))
        .collect();
    unloads.sort();
    assert_eq!(unloads, vec![(40, 45), (50, 55)]);
    let eta: Vec<Millis> = plan.order_eta.iter().map(|(_, e)| e / MIN).collect();
    let mut sorted = eta.clone();
    sorted.sort();
    assert_eq!(sorted, vec![45, 55]);
    // With two operators both load at once.
    let plan = checked(&PlanInput {
        shifts: vec![shift(0, 600, 2)],
        ..input.clone()
    });
    assert!(
        tasks(&plan, OperatorTaskKind::Load)
            .iter()
            .all(|t| t.2 == 0)
    );
}

#[test]
fn nobody_works_between_shifts_and_runs_not_allowed_after_hours_wait() {
    // Shift until 60, next one from 600; a 50 min run after a 5 min load from 30 would end at 85.
    let input = PlanInput {
        now: 30 * MIN,
        machines: vec![machine("a", 5.0, 5.0, false)],
        orders: vec![order("o", 0)],
        runs: vec![run(1, "o", 50.0)],
        shifts: vec![shift(0, 60, 1), shift(600, 700, 1)],
        ..PlanInput::default()
    };
    let plan = checked(&input);
    assert_eq!(at(&plan, 1), (605, 655), "waits for the morning shift");
    // A machine allowed after hours runs through the night; its unload waits for the morning.
    let mut input = input;
    input.machines[0].after_hours = true;
    let plan = checked(&input);
    assert_eq!(at(&plan, 1), (35, 85));
    assert_eq!(
        tasks(&plan, OperatorTaskKind::Unload),
        vec![("a".into(), Some(1), 600, 605)]
    );
}

#[test]
fn frozen_runs_keep_their_remaining_operator_work() {
    let frozen = |run_id, machine: &str, stage, start, end| FrozenRun {
        run_id,
        order_id: "o".into(),
        machine_id: machine.into(),
        setup_family: "f".into(),
        start: start * MIN,
        end: end * MIN,
        stage,
    };
    let mut next = run(4, "o", 10.0);
    next.predecessors = vec![2];
    let input = PlanInput {
        machines: vec![
            machine("a", 5.0, 5.0, true),
            machine("b", 5.0, 5.0, true),
            machine("c", 5.0, 5.0, true),
        ],
        orders: vec![order("o", 0)],
        runs: vec![next],
        frozen: vec![
            frozen(1, "a", FrozenStage::AwaitingUnload, -30, -1),
            frozen(2, "b", FrozenStage::AwaitingLoad, 0, 20),
            frozen(3, "c", FrozenStage::Running, -10, 10),
        ],
        shifts: vec![shift(0, 600, 1)],
        ..PlanInput::default()
    };
    let plan = checked(&input);
    assert_eq!(
        at(&plan, 1),
        (-30, -1),
        "an unloading run stays where it is"
    );
    assert_eq!(at(&plan, 3), (-10, 10), "a running one too");
    assert_eq!(
        at(&plan, 2),
        (10, 30),
        "after the unload of a (0–5) and its load (5–10)"
    );
    let unloads = tasks(&plan, OperatorTaskKind::Unload);
    assert!(unloads.contains(&("a".into(), Some(1), 0, 5)));
    assert!(unloads.contains(&("c".into(), Some(3), 10, 15)));
    assert!(unloads.contains(&("b".into(), Some(2), 30, 35)));
    // The successor's load waits for its predecessor's unload: its output counts from then.
    let successor_load = tasks(&plan, OperatorTaskKind::Load)
        .into_iter()
        .find(|t| t.1 == Some(4))
        .unwrap();
    assert!(successor_load.2 >= 35, "{successor_load:?}");
}

#[test]
fn due_maintenance_comes_before_the_next_run_and_setups_need_the_operator() {
    let mut input = PlanInput {
        machines: vec![
            PlanMachine {
                maintenance_seconds: 20.0 * 60.0,
                ..machine("a", 0.0, 0.0, true)
            },
            PlanMachine {
                current_setup: Some("other".into()),
                ..machine("b", 0.0, 0.0, true)
            },
        ],
        orders: vec![order("o", 1000 * MIN)],
        runs: vec![run(1, "o", 30.0), run(2, "o", 30.0)],
        shifts: vec![shift(0, 600, 1)],
        ..PlanInput::default()
    };
    input.runs[0].only_on = vec!["a".into()];
    input.runs[1].only_on = vec!["b".into()];
    let plan = checked(&input);
    let maintenance = tasks(&plan, OperatorTaskKind::Maintenance);
    let setup = tasks(&plan, OperatorTaskKind::Setup);
    assert_eq!(maintenance.len(), 1);
    assert_eq!(
        setup,
        vec![("b".into(), Some(2), setup[0].2, setup[0].2 + 10)]
    );
    assert!(
        maintenance[0].3 <= setup[0].2 || setup[0].3 <= maintenance[0].2,
        "one operator: maintenance and setup one after the other"
    );
    assert!(at(&plan, 1).0 >= maintenance[0].3);
}

#[test]
fn without_shifts_loads_and_unloads_hold_the_machine_but_nobody_is_waited_for() {
    let input = PlanInput {
        machines: vec![
            machine("a", 10.0, 5.0, false),
            machine("b", 10.0, 5.0, false),
        ],
        orders: vec![order("o", 0)],
        runs: vec![run(1, "o", 30.0), run(2, "o", 30.0), run(3, "o", 30.0)],
        ..PlanInput::default()
    };
    let plan = checked(&input);
    let mut starts: Vec<_> = (1..=3).map(|r| at(&plan, r)).collect();
    starts.sort();
    assert_eq!(starts, vec![(10, 40), (10, 40), (55, 85)]);
    assert_eq!(plan.order_eta[0].1 / MIN, 90);
}

#[test]
fn operators_that_never_bind_change_nothing() {
    let mut input = PlanInput {
        machines: vec![machine("a", 3.0, 2.0, true), machine("b", 4.0, 1.0, true)],
        orders: vec![order("o1", 50 * MIN), order("o2", 80 * MIN)],
        runs: (1..=6)
            .map(|i| run(i, if i % 2 == 0 { "o1" } else { "o2" }, 7.0 * i as f64))
            .collect(),
        ..PlanInput::default()
    };
    input.runs[3].setup_family = "g".into();
    input.runs[4].predecessors = vec![1];
    let unlimited = plan(&input, None, Budget::work(0), 1);
    input.shifts = vec![shift(-60, 100_000, 100)];
    let with_shifts = plan(&input, None, Budget::work(0), 1);
    assert_eq!(unlimited.assignments, with_shifts.assignments);
    assert_eq!(unlimited.operator_tasks, with_shifts.operator_tasks);
    assert_eq!(unlimited.objective, with_shifts.objective);
}

#[test]
fn with_shifts_a_machine_is_dispatched_when_its_preparation_is_due() {
    let input = PlanInput {
        now: 0,
        machines: vec![machine("a", 5.0, 5.0, false)],
        orders: vec![order("o", 0)],
        runs: vec![run(1, "o", 30.0)],
        shifts: vec![shift(30, 600, 1)],
        ..PlanInput::default()
    };
    let plan = checked(&input);
    assert_eq!(at(&plan, 1).0, 35);
    assert!(
        next_dispatches(&plan, &input).is_empty(),
        "not before the shift"
    );
    let later = PlanInput {
        now: 30 * MIN,
        ..input.clone()
    };
    assert_eq!(next_dispatches(&plan, &later).len(), 1);
}

#[test]
fn the_checker_catches_operator_violations() {
    let input = PlanInput {
        machines: vec![
            machine("a", 10.0, 5.0, false),
            machine("b", 10.0, 5.0, true),
        ],
        orders: vec![order("o1", 1000 * MIN), order("o2", 1000 * MIN)],
        runs: vec![run(1, "o1", 30.0), run(2, "o2", 30.0)],
        shifts: vec![shift(0, 100, 1), shift(200, 600, 1)],
        ..PlanInput::default()
    };
    let good = checked(&input);
    type Mutation = fn(&mut Plan);
    let cases: [(&str, Mutation); 4] = [
        ("two loads at once for one operator", |p| {
            for t in &mut p.operator_tasks {
                if t.kind == OperatorTaskKind::Load {
                    (t.start, t.end) = (0, 10 * MIN);
                }
            }
            for a in &mut p.assignments {
                (a.setup_start, a.start, a.end) = (0, 10 * MIN, 40 * MIN);
            }
            for t in &mut p.operator_tasks {
                if t.kind == OperatorTaskKind::Unload {
                    let other = if t.machine_id == "a" { 0 } else { 5 * MIN };
                    (t.start, t.end) = (40 * MIN + other, 45 * MIN + other);
                }
            }
        }),
        ("unload missing", |p| {
            p.operator_tasks
                .retain(|t| t.kind != OperatorTaskKind::Unload)
        }),
        ("unload between shifts", |p| {
            for t in &mut p.operator_tasks {
                if t.kind == OperatorTaskKind::Unload {
                    (t.start, t.end) = (t.start + 120 * MIN, t.end + 120 * MIN);
                }
            }
        }),
        ("run after hours", |p| {
            let a = p
                .assignments
                .iter_mut()
                .find(|a| a.machine_id == "a")
                .unwrap();
            (a.setup_start, a.start, a.end) = (
                a.setup_start + 60 * MIN,
                a.start + 60 * MIN,
                a.end + 60 * MIN,
            );
            for t in &mut p.operator_tasks {
                if t.machine_id == "a" {
                    (t.start, t.end) = (t.start + 60 * MIN, t.end + 60 * MIN);
                }
            }
        }),
    ];
    for (name, mutate) in cases {
        let mut plan = good.clone();
        mutate(&mut plan);
        assert!(
            check_plan(&input, &plan, None).is_err(),
            "{name} not caught"
        );
    }
}
