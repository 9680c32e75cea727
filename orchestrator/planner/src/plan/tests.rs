use super::*;
use crate::check::check_plan;
use crate::{FrozenRun, MaterialArrival, MaterialNeed, PlanMachine, PlanMaterial, Window};

const MIN: Millis = 60_000;

fn machine(id: &str, capability: &str, speed_factor: f64) -> PlanMachine {
    PlanMachine {
        id: id.into(),
        capabilities: vec![capability.into()],
        idle: true,
        speed_factor,
        ..PlanMachine::default()
    }
}

fn order(id: &str, priority: Priority, due: Millis) -> PlanOrder {
    PlanOrder {
        id: id.into(),
        priority,
        due,
        ..PlanOrder::default()
    }
}

fn run(id: i64, order: &str, capability: &str, minutes: f64, family: &str) -> PlanRun {
    PlanRun {
        id,
        order_id: order.into(),
        capability: capability.into(),
        run_seconds: minutes * 60.0,
        setup_seconds: 600.0,
        setup_family: family.into(),
        ready: true,
        ..PlanRun::default()
    }
}

fn planned(plan: &Plan, run_id: i64) -> &Planned {
    plan.assignments
        .iter()
        .find(|a| a.run_id == run_id)
        .expect("run is planned")
}

/// Plans, demands that the checker accepts the plan and agrees on the objective, then runs
/// the case's own expectation.
fn check(name: &str, input: PlanInput, expect: impl Fn(&Plan)) {
    let plan = plan(&input, None, Budget::work(300_000), 3);
    match check_plan(&input, &plan, None) {
        Ok(objective) => assert_eq!(objective, plan.objective, "{name}: objective mismatch"),
        Err(errors) => panic!("{name}: checker rejects the plan: {errors:#?}"),
    }
    expect(&plan);
}

#[test]
fn plans_respect_the_plant_rules() {
    check(
        "public service first",
        PlanInput {
            machines: vec![machine("laser", "laser", 1.0)],
            orders: vec![
                order("std", Priority::Standard, 10 * MIN),
                order("pub", Priority::PublicService, 60 * MIN),
            ],
            runs: vec![
                run(1, "std", "laser", 30.0, "f"),
                run(2, "pub", "laser", 30.0, "f"),
            ],
            ..PlanInput::default()
        },
        |p| assert!(planned(p, 2).start < planned(p, 1).start),
    );
    check(
        "same family grouped to save setups",
        PlanInput {
            machines: vec![machine("mill", "cnc", 1.0)],
            orders: vec![order("o", Priority::Standard, 1000 * MIN)],
            runs: (1..=4)
                .map(|i| run(i, "o", "cnc", 1.0, if i % 2 == 0 { "a" } else { "b" }))
                .collect(),
            ..PlanInput::default()
        },
        |p| assert_eq!(p.objective.setup_time, 2 * 10 * MIN),
    );
    check(
        "named machines only (work envelope)",
        PlanInput {
            machines: vec![machine("fast", "fdm", 0.5), machine("big", "fdm", 2.0)],
            orders: vec![order("o", Priority::Standard, 0)],
            runs: vec![PlanRun {
                only_on: vec!["big".into()],
                ..run(1, "o", "fdm", 60.0, "f")
            }],
            ..PlanInput::default()
        },
        |p| assert_eq!(planned(p, 1).machine_id, "big"),
    );
    check("nothing to plan", PlanInput::default(), |p| {
        assert_eq!(*p, Plan::default());
    });
    check(
        "open-ended downtime is never planned over",
        PlanInput {
            machines: vec![
                PlanMachine {
                    down: vec![Window {
                        from: 30 * MIN,
                        until: Millis::MAX,
                    }],
                    ..machine("m1", "cnc", 1.0)
                },
                machine("m2", "cnc", 4.0),
            ],
            orders: vec![order("o", Priority::Standard, 0)],
            runs: (1..=3).map(|i| run(i, "o", "cnc", 20.0, "f")).collect(),
            ..PlanInput::default()
        },
        |p| {
            assert_eq!(
                p.assignments
                    .iter()
                    .filter(|a| a.machine_id == "m1")
                    .count(),
                1
            )
        },
    );
    check(
        "fast machine preferred",
        PlanInput {
            machines: vec![machine("slow", "fdm", 2.0), machine("fast", "fdm", 0.5)],
            orders: vec![order("o", Priority::Standard, 0)],
            runs: vec![run(1, "o", "fdm", 60.0, "f")],
            ..PlanInput::default()
        },
        |p| assert_eq!(planned(p, 1).machine_id, "fast"),
    );
    check(
        "frozen work kept and waited for",
        PlanInput {
            machines: vec![machine("laser", "laser", 1.0), machine("bend", "bend", 1.0)],
            orders: vec![order("o", Priority::Standard, 0)],
            runs: vec![
                run(2, "o", "laser", 5.0, "f"),
                PlanRun {
                    predecessors: vec![1],
                    ..run(3, "o", "bend", 5.0, "g")
                },
            ],
            frozen: vec![FrozenRun {
                run_id: 1,
                order_id: "o".into(),
                machine_id: "laser".into(),
                setup_family: "f".into(),
                start: -10 * MIN,
                end: 60 * MIN,
                ..FrozenRun::default()
            }],
            ..PlanInput::default()
        },
        |p| {
            assert_eq!(
                planned(p, 2).setup_start,
                60 * MIN,
                "no setup after a frozen run of the same family"
            );
            assert!(planned(p, 3).start >= 60 * MIN);
            assert_eq!(
                p.order_eta,
                vec![("o".to_string(), planned(p, 2).end.max(planned(p, 3).end))]
            );
        },
    );
    check(
        "material waits for its arrival, never-covered runs unplanned",
        PlanInput {
            machines: vec![machine("a", "laser", 1.0), machine("b", "laser", 1.0)],
            orders: vec![order("o", Priority::Standard, 0)],
            runs: (1..=3)
                .map(|i| PlanRun {
                    material_needs: vec![MaterialNeed {
                        material: "ply".into(),
                        quantity: 1.0,
                    }],
                    ..run(i, "o", "laser", 10.0, "f")
                })
                .collect(),
            materials: vec![PlanMaterial {
                id: "ply".into(),
                on_hand: 1.0,
                arrivals: vec![MaterialArrival {
                    at: 120 * MIN,
                    quantity: 1.0,
                }],
            }],
            ..PlanInput::default()
        },
        |p| {
            assert_eq!(p.unplanned, vec![3]);
            assert!(planned(p, 2).start >= 120 * MIN);
        },
    );
    check(
        "nothing on machines out of service; successors of unplanned runs wait too",
        PlanInput {
            machines: vec![
                PlanMachine {
                    out_of_service: true,
                    ..machine("sla", "sla", 1.0)
                },
                machine("f", "finish", 1.0),
            ],
            orders: vec![order("o", Priority::Standard, 0)],
            runs: vec![
                run(1, "o", "sla", 5.0, "f"),
                PlanRun {
                    predecessors: vec![1],
                    ..run(2, "o", "finish", 5.0, "f")
                },
            ],
            ..PlanInput::default()
        },
        |p| {
            assert_eq!(p.unplanned, vec![1, 2]);
            assert!(p.assignments.is_empty());
        },
    );
    check(
        "downtime is worked around",
        PlanInput {
            machines: vec![PlanMachine {
                down: vec![Window {
                    from: 20 * MIN,
                    until: 80 * MIN,
                }],
                current_setup: Some("f".into()),
                ..machine("m", "cnc", 1.0)
            }],
            orders: vec![order("o", Priority::Standard, 0)],
            runs: vec![run(1, "o", "cnc", 15.0, "f"), run(2, "o", "cnc", 15.0, "f")],
            ..PlanInput::default()
        },
        |p| {
            let (a, b) = (planned(p, 1), planned(p, 2));
            assert_eq!((a.start.min(b.start), a.start.max(b.start)), (0, 80 * MIN));
        },
    );
}

fn dispatch_input() -> PlanInput {
    PlanInput {
        machines: vec![machine("m1", "cnc", 0.5), machine("m2", "cnc", 1.0)],
        orders: vec![order("o", Priority::Standard, 0)],
        runs: vec![
            run(1, "o", "cnc", 10.0, "f"),
            run(2, "o", "cnc", 10.0, "f"),
            run(3, "o", "cnc", 10.0, "f"),
        ],
        ..PlanInput::default()
    }
}

fn at(run_id: i64, machine_id: &str, start: Millis) -> Planned {
    Planned {
        run_id,
        machine_id: machine_id.into(),
        setup_start: start,
        start,
        end: start + MIN,
    }
}

#[test]
fn dispatches_follow_the_plan_and_fall_back_to_the_rule() {
    let d = |run_id: i64, machine_id: &str| Dispatch {
        run_id,
        machine_id: machine_id.into(),
    };
    let plan_of = |assignments| Plan {
        assignments,
        ..Plan::default()
    };
    type Case = (
        &'static str,
        Plan,
        Box<dyn Fn(&mut PlanInput)>,
        Vec<Dispatch>,
    );
    let cases: Vec<Case> = vec![
        (
            "each machine starts the head of its queue",
            plan_of(vec![at(3, "m1", 0), at(1, "m1", 5), at(2, "m2", 0)]),
            Box::new(|_| {}),
            vec![d(3, "m1"), d(2, "m2")],
        ),
        (
            "a head that is not ready is skipped for the next ready planned run",
            plan_of(vec![at(3, "m1", 0), at(1, "m1", 5), at(2, "m2", 0)]),
            Box::new(|i| i.runs[2].ready = false),
            vec![d(1, "m1"), d(2, "m2")],
        ),
        (
            "an idle machine with an empty queue takes unplanned work by the rule",
            plan_of(vec![at(1, "m1", 0)]),
            Box::new(|i| i.machines[0].idle = false),
            vec![d(2, "m2")],
        ),
        (
            "work planned on a machine now out of service is free for others",
            plan_of(vec![at(1, "m1", 0), at(2, "m1", 5), at(3, "m1", 9)]),
            Box::new(|i| i.machines[0].out_of_service = true),
            vec![d(1, "m2")],
        ),
    ];
    for (name, plan, edit, expected) in cases {
        let mut input = dispatch_input();
        edit(&mut input);
        assert_eq!(next_dispatches(&plan, &input), expected, "{name}");
    }
}
