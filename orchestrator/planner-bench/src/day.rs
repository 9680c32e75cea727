//! A generated busy day at plant scale, seeded and reproducible: machines of varied speeds and
//! capabilities, multi-step orders with setups, due dates, public-service work, limited
//! material; and the same day after a machine fails.

use std::collections::{HashMap, HashSet};

use microfab_planner::{
    FrozenRun, FrozenStage, MaterialArrival, MaterialNeed, Millis, Plan, PlanInput, PlanMachine,
    PlanMaterial, PlanOrder, PlanRun, Priority, Window,
};
use microfab_rng::SplitMix64;

pub(crate) const MINUTE: Millis = 60_000;
pub(crate) const HOUR: Millis = 60 * MINUTE;
/// 2026-01-05 06:00 UTC: an arbitrary fixed "now" so generated days are reproducible.
const DAY_START: Millis = 1_767_592_800_000;

const CAPABILITIES: [(&str, Option<&str>); 8] = [
    ("laser", Some("plywood")),
    ("cnc-3axis", Some("aluminium")),
    ("fdm", Some("pla")),
    ("sla", None),
    ("press-brake", Some("steel-sheet")),
    ("sewing", None),
    ("finishing", None),
    ("assembly", None),
];

#[derive(Debug, Clone, Copy)]
pub struct PlantSpec {
    pub machines: usize,
    pub runs: usize,
    pub seed: u64,
}

impl Default for PlantSpec {
    fn default() -> Self {
        PlantSpec {
            machines: 200,
            runs: 2000,
            seed: 1,
        }
    }
}
/// A reproducible day: `spec.runs` runs in multi-step orders over `spec.machines` machines.
pub fn generate(spec: PlantSpec) -> PlanInput {
    let mut rng = SplitMix64::new(spec.seed);
    let now = DAY_START;
    let mut machines = Vec::with_capacity(spec.machines);
    for i in 0..spec.machines {
        // Every capability gets machines; some machines have a second one.
        let first = i % CAPABILITIES.len();
        let mut capabilities = vec![CAPABILITIES[first].0.to_string()];
        if rng.below(4) == 0 {
            let second = rng.below(CAPABILITIES.len() as u64) as usize;
            if second != first {
                capabilities.push(CAPABILITIES[second].0.to_string());
            }
        }
        let down = if rng.below(10) == 0 {
            let from = now + (2 + rng.below(8) as Millis) * HOUR;
            vec![Window {
                from,
                until: from + (30 + rng.below(90) as Millis) * MINUTE,
            }]
        } else {
            Vec::new()
        };
        machines.push(PlanMachine {
            id: format!("m{i:03}"),
            current_setup: Some(format!("{}-f{}", CAPABILITIES[first].0, rng.below(4))),
            capabilities,
            idle: true,
            speed_factor: 0.7 + 0.9 * rng.next_f64(),
            available_from: (rng.below(3) == 0).then(|| now + rng.below(60) as Millis * MINUTE),
            down,
            ..PlanMachine::default()
        });
    }
    let mut orders = Vec::new();
    let mut runs: Vec<PlanRun> = Vec::with_capacity(spec.runs);
    let mut demand: HashMap<&str, f64> = HashMap::new();
    while runs.len() < spec.runs {
        let o = orders.len();
        let order_id = format!("o{o:04}");
        let steps = 1 + rng.below(5) as usize;
        let mut step_runs: Vec<Vec<i64>> = Vec::with_capacity(steps);
        let mut work: Millis = 0;
        for s in 0..steps {
            let (capability, material) =
                CAPABILITIES[rng.below(CAPABILITIES.len() as u64) as usize];
            // The process plan is a DAG: each later step takes the output of one or two earlier ones.
            let mut predecessors = Vec::new();
            if s > 0 {
                predecessors.extend(&step_runs[s - 1]);
                if s > 1 && rng.below(3) == 0 {
                    predecessors.extend(&step_runs[rng.below(s as u64 - 1) as usize]);
                }
            }
            let units = 1 + rng.below(3) as usize;
            let run_seconds = (10 + rng.below(80)) as f64 * 60.0;
            let family = format!("{capability}-f{}", rng.below(4));
            let mut ids = Vec::with_capacity(units);
            for u in 0..units {
                if runs.len() == spec.runs {
                    break;
                }
                let id = runs.len() as i64 + 1;
                let material_needs = material
                    .map(|m| {
                        let quantity = (1 + rng.below(4)) as f64;
                        *demand.entry(m).or_default() += quantity;
                        vec![MaterialNeed {
                            material: m.to_string(),
                            quantity,
                        }]
                    })
                    .unwrap_or_default();
                runs.push(PlanRun {
                    id,
                    order_id: order_id.clone(),
                    step_id: format!("{order_id}-s{s}"),
                    capability: capability.to_string(),
                    run_seconds,
                    setup_seconds: (5 + rng.below(25)) as f64 * 60.0,
                    setup_family: family.clone(),
                    ready: s == 0,
                    predecessors: predecessors.clone(),
                    material_needs,
                    only_on: Vec::new(),
                });
                ids.push(id);
                if u == 0 {
                    work += (run_seconds * 1000.0) as Millis;
                }
            }
            step_runs.push(ids);
        }
        let public = rng.below(7) == 0;
        orders.push(PlanOrder {
            id: order_id,
            priority: if public {
                Priority::PublicService
            } else {
                Priority::Standard
            },
            due: now + work + (rng.below(12 * 60) as Millis) * MINUTE,
            sequence: o as i64,
            weight: 1 + rng.below(3) as u32,
        });
    }
    // Most material is on hand; the rest arrives through the day.
    let mut materials: Vec<PlanMaterial> = demand
        .into_iter()
        .map(|(id, total)| PlanMaterial {
            id: id.to_string(),
            on_hand: (total * 0.6).floor(),
            arrivals: (1..=4)
                .map(|h| MaterialArrival {
                    at: now + 2 * h * HOUR,
                    quantity: (total * 0.11).ceil(),
                })
                .collect(),
        })
        .collect();
    materials.sort_by(|a, b| a.id.cmp(&b.id));
    PlanInput {
        now,
        machines,
        orders,
        runs,
        frozen: Vec::new(),
        materials,
        shifts: Vec::new(),
    }
}
/// The state `minutes` after the plan started, with `failed` out of service: runs that ended are
/// gone, runs under way are frozen, the failed machine's running work is lost and goes back to
/// the queue, material consumed by started runs has left the stock.
pub fn after_failure(input: &PlanInput, executed: &Plan, minutes: i64, failed: &str) -> PlanInput {
    let t = input.now + minutes * MINUTE;
    let runs: HashMap<i64, &PlanRun> = input.runs.iter().map(|r| (r.id, r)).collect();
    let mut next = input.clone();
    next.now = t;
    let mut gone = HashSet::new();
    let mut frozen = input.frozen.clone();
    frozen.retain(|f| f.end > t && f.machine_id != failed);
    for a in &executed.assignments {
        let Some(run) = runs.get(&a.run_id) else {
            continue;
        };
        let lost = a.machine_id == failed && a.end > t;
        if a.start >= t || lost {
            continue;
        }
        gone.insert(a.run_id);
        for n in &run.material_needs {
            if let Some(m) = next.materials.iter_mut().find(|m| m.id == n.material) {
                m.on_hand -= n.quantity;
            }
        }
        if a.end > t {
            frozen.push(FrozenRun {
                run_id: a.run_id,
                order_id: run.order_id.clone(),
                machine_id: a.machine_id.clone(),
                setup_family: run.setup_family.clone(),
                start: a.start,
                end: a.end,
                stage: FrozenStage::Running,
            });
        }
    }
    for m in &mut next.materials {
        for a in m.arrivals.iter().filter(|a| a.at <= t) {
            m.on_hand += a.quantity;
        }
        m.arrivals.retain(|a| a.at > t);
    }
    next.runs.retain(|r| !gone.contains(&r.id));
    next.frozen = frozen;
    for m in &mut next.machines {
        m.out_of_service |= m.id == failed;
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_days_are_reproducible_and_sized_as_asked() {
        let spec = PlantSpec {
            machines: 30,
            runs: 300,
            seed: 9,
        };
        let day = generate(spec);
        assert_eq!(day, generate(spec));
        assert_eq!((day.machines.len(), day.runs.len()), (30, 300));
        assert!(
            day.orders
                .iter()
                .any(|o| o.priority == Priority::PublicService)
        );
        assert!(
            day.runs.iter().any(|r| r.predecessors.len() > 1),
            "multi-step DAG orders"
        );
    }
}
