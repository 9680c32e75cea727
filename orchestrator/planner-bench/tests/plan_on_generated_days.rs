//! The planner on generated plant days: determinism, search and re-planning at a scale the
//! planner's own hand-made cases do not reach.

use microfab_planner::check::check_plan;
use microfab_planner::{Budget, Objective, PlanInput, plan};
use microfab_planner_bench::day::{PlantSpec, after_failure, generate};

fn small_plant(seed: u64) -> PlanInput {
    generate(PlantSpec {
        machines: 24,
        runs: 240,
        seed,
    })
}

#[test]
fn same_seed_same_plan() {
    let input = small_plant(5);
    let a = plan(&input, None, Budget::work(3_000_000), 11);
    let b = plan(&input, None, Budget::work(3_000_000), 11);
    assert_eq!(a, b);
    assert!(a.iterations > 0);
    assert_eq!(check_plan(&input, &a, None), Ok(a.objective));
}

#[test]
fn search_improves_on_construction() {
    let input = small_plant(8);
    let constructed = plan(&input, None, Budget::work(0), 1);
    let searched = plan(&input, None, Budget::work(5_000_000), 1);
    assert!(
        searched.objective < constructed.objective,
        "{:?} vs {:?}",
        searched.objective,
        constructed.objective
    );
}

#[test]
fn replanning_moves_runs_only_for_a_gain() {
    let input = small_plant(2);
    let first = plan(&input, None, Budget::work(2_000_000), 1);
    let unchanged = Objective {
        moved: 0,
        ..first.objective
    };
    let warm = plan(&input, Some(&first), Budget::work(0), 2);
    // The previous order is among the starts, and every start keeps the machines.
    assert!(warm.objective <= unchanged);
    assert_eq!(warm.objective.moved, 0);
    let searched = plan(&input, Some(&first), Budget::work(2_000_000), 2);
    assert_eq!(
        check_plan(&input, &searched, Some(&first)),
        Ok(searched.objective)
    );
    assert!(searched.objective <= unchanged);
    let gain = Objective {
        moved: 0,
        ..searched.objective
    } < unchanged;
    assert!(
        gain || searched.objective.moved == 0,
        "moved {} runs for no gain",
        searched.objective.moved
    );
}

#[test]
fn replanning_after_a_failure_moves_the_failed_machines_work() {
    let input = small_plant(4);
    let first = plan(&input, None, Budget::work(2_000_000), 1);
    let failed = first.assignments[first.assignments.len() / 2]
        .machine_id
        .clone();
    let next = after_failure(&input, &first, 30, &failed);
    let displaced = first
        .assignments
        .iter()
        .filter(|a| a.machine_id == failed && next.runs.iter().any(|r| r.id == a.run_id))
        .count() as i64;
    assert!(displaced > 0);
    let warm = plan(&next, Some(&first), Budget::work(0), 1);
    assert_eq!(check_plan(&next, &warm, Some(&first)), Ok(warm.objective));
    assert_eq!(
        warm.objective.moved, displaced,
        "the warm start moves only the displaced runs"
    );
    let replanned = plan(&next, Some(&first), Budget::work(1_000_000), 1);
    assert_eq!(
        check_plan(&next, &replanned, Some(&first)),
        Ok(replanned.objective)
    );
    assert!(replanned.assignments.iter().all(|a| a.machine_id != failed));
    assert!(replanned.objective <= warm.objective);
}
