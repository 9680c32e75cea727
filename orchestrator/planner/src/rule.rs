//! The dispatching rule: for every idle machine, the most urgent ready run it can do.
//! Urgency: public-service before standard, then earliest due date, then submission order,
//! then run id. Used on its own until a plan exists, and whenever an idle machine has nothing
//! planned (an idle machine never waits on the planner).

use std::collections::{HashMap, HashSet};

use crate::{Dispatch, PlanInput, PlanOrder, PlanRun};

pub fn dispatch_ready_runs(input: &PlanInput) -> Vec<Dispatch> {
    let orders: HashMap<&str, &PlanOrder> =
        input.orders.iter().map(|o| (o.id.as_str(), o)).collect();
    let mut ready: Vec<&PlanRun> = input
        .runs
        .iter()
        .filter(|r| r.ready && orders.contains_key(r.order_id.as_str()))
        .collect();
    ready.sort_by_key(|r| {
        let o = orders[r.order_id.as_str()];
        (o.priority, o.due, o.sequence, r.id)
    });
    let mut taken: HashSet<i64> = HashSet::new();
    let mut decisions = Vec::new();
    let mut idle: Vec<_> = input
        .machines
        .iter()
        .filter(|m| m.idle && !m.out_of_service)
        .collect();
    // Faster machines choose first, so urgent work lands where it finishes soonest.
    idle.sort_by(|a, b| {
        a.speed_factor
            .total_cmp(&b.speed_factor)
            .then(a.id.cmp(&b.id))
    });
    for machine in idle {
        let choice = ready
            .iter()
            .find(|r| !taken.contains(&r.id) && r.can_run_on(machine));
        if let Some(run) = choice {
            taken.insert(run.id);
            decisions.push(Dispatch {
                run_id: run.id,
                machine_id: machine.id.clone(),
            });
        }
    }
    decisions
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PlanMachine, Priority};

    fn machine(id: &str, caps: &[&str]) -> PlanMachine {
        PlanMachine {
            id: id.into(),
            capabilities: caps.iter().map(|c| c.to_string()).collect(),
            idle: true,
            speed_factor: 1.0,
            current_setup: None,
            ..Default::default()
        }
    }

    fn order(id: &str, priority: Priority, due: i64, sequence: i64) -> PlanOrder {
        PlanOrder {
            id: id.into(),
            priority,
            due,
            sequence,
            ..Default::default()
        }
    }

    fn run(id: i64, order: &str, cap: &str) -> PlanRun {
        PlanRun {
            id,
            order_id: order.into(),
            step_id: "s".into(),
            capability: cap.into(),
            run_seconds: 60.0,
            setup_seconds: 0.0,
            setup_family: "f".into(),
            ready: true,
            predecessors: vec![],
            ..Default::default()
        }
    }

    #[test]
    fn public_service_goes_first_even_if_due_later() {
        let input = PlanInput {
            now: 0,
            machines: vec![machine("laser-1", &["laser"])],
            orders: vec![
                order("std", Priority::Standard, 10, 1),
                order("pub", Priority::PublicService, 99, 2),
            ],
            runs: vec![run(1, "std", "laser"), run(2, "pub", "laser")],
            ..Default::default()
        };
        assert_eq!(
            dispatch_ready_runs(&input),
            vec![Dispatch {
                run_id: 2,
                machine_id: "laser-1".into()
            }]
        );
    }

    #[test]
    fn runs_go_only_to_capable_idle_machines_once() {
        let mut busy = machine("mill-2", &["cnc-3axis"]);
        busy.idle = false;
        let mut not_ready = run(3, "a", "cnc-3axis");
        not_ready.ready = false;
        let input = PlanInput {
            now: 0,
            machines: vec![
                machine("mill-1", &["cnc-3axis"]),
                busy,
                machine("printer-1", &["fdm"]),
            ],
            orders: vec![order("a", Priority::Standard, 0, 1)],
            runs: vec![
                not_ready,
                run(4, "a", "cnc-3axis"),
                run(5, "a", "cnc-3axis"),
            ],
            ..Default::default()
        };
        assert_eq!(
            dispatch_ready_runs(&input),
            vec![Dispatch {
                run_id: 4,
                machine_id: "mill-1".into()
            }]
        );
    }
}
