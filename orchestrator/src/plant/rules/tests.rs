//! Each rule is a table: (case, input, expected), run through one `check`.

use super::*;

/// Named cases: (what the case shows, input, expected output).
type Cases<I, O> = [(&'static str, I, O)];

/// Run `rule` over every case and report all the cases that fail, by name.
fn check<I, O: PartialEq + std::fmt::Debug>(cases: &Cases<I, O>, rule: impl Fn(&I) -> O) {
    let failed: Vec<String> = cases
        .iter()
        .filter_map(|(name, input, expected)| {
            let got = rule(input);
            (got != *expected).then(|| format!("{name}: expected {expected:?}, got {got:?}"))
        })
        .collect();
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// A step of ten units per run after `after`.
fn step(index: i64, after: &[i64]) -> StepCounts {
    StepCounts {
        index,
        units_per_run: 10,
        predecessors: after.to_vec(),
        ..StepCounts::default()
    }
}

impl StepCounts {
    fn good(mut self, n: i64) -> Self {
        self.good = n;
        self
    }
    fn scrapped(mut self, n: i64) -> Self {
        self.scrapped = n;
        self
    }
    fn open(mut self, n: i64) -> Self {
        self.open = n;
        self
    }
    fn started(mut self, n: i64) -> Self {
        self.started = n;
        self
    }
    fn last(mut self) -> Self {
        self.is_final = true;
        self
    }
}

/// cut → bend → paint (final).
fn chain(counts: [(i64, i64, i64, i64); 3]) -> Vec<StepCounts> {
    let after: [&[i64]; 3] = [&[], &[0], &[1]];
    (0..3)
        .map(|i| {
            let (good, scrapped, open, started) = counts[i];
            let s = step(i as i64, after[i])
                .good(good)
                .scrapped(scrapped)
                .open(open)
                .started(started);
            if i == 2 { s.last() } else { s }
        })
        .collect()
}

/// cut → (bend, drill) → assemble (final): a step with two predecessors.
fn diamond(counts: [(i64, i64, i64, i64); 4]) -> Vec<StepCounts> {
    let after: [&[i64]; 4] = [&[], &[0], &[0], &[1, 2]];
    (0..4)
        .map(|i| {
            let (good, scrapped, open, started) = counts[i];
            let s = step(i as i64, after[i])
                .good(good)
                .scrapped(scrapped)
                .open(open)
                .started(started);
            if i == 3 { s.last() } else { s }
        })
        .collect()
}

const NONE: (i64, i64, i64, i64) = (0, 0, 0, 0);

#[test]
#[rustfmt::skip]
fn deficit_per_step() {
    // (steps, step index, quantity) → units still owed
    let cases: &Cases<(Vec<StepCounts>, i64, i64), i64> = &[
        ("fresh order: the approved runs cover it", (chain([(0, 0, 20, 0), (0, 0, 20, 0), (0, 0, 20, 0)]), 0, 20), 0),
        ("nothing planned owes the quantity", (chain([NONE; 3]), 0, 20), 20),
        ("open runs count as coming", (chain([(5, 0, 10, 10), NONE, NONE]), 0, 20), 5),
        ("scrap at the step itself", (chain([(18, 2, 0, 20), (0, 0, 20, 0), NONE]), 0, 20), 2),
        ("scrap at the last step is owed by every step", (chain([(20, 0, 0, 20), (20, 0, 0, 20), (18, 2, 0, 20)]), 0, 20), 2),
        ("scrap at the last step, the middle step", (chain([(20, 0, 0, 20), (20, 0, 0, 20), (18, 2, 0, 20)]), 1, 20), 2),
        ("scrap at the last step, the last step", (chain([(20, 0, 0, 20), (20, 0, 0, 20), (18, 2, 0, 20)]), 2, 20), 2),
        ("scrap at the middle step is not owed downstream", (chain([(20, 0, 0, 20), (17, 3, 0, 20), (0, 0, 17, 0)]), 2, 20), 3),
        ("scrap at the middle step is owed upstream", (chain([(20, 0, 0, 20), (17, 3, 0, 20), NONE]), 0, 20), 3),
        ("scrap at two later steps adds up", (chain([(20, 0, 0, 20), (19, 1, 0, 20), (17, 2, 0, 19)]), 0, 20), 3),
        ("zero quantity left", (chain([(20, 0, 0, 20), (20, 0, 0, 20), (20, 0, 0, 20)]), 2, 20), 0),
        ("more made than owed is not negative", (chain([(25, 0, 0, 25), NONE, NONE]), 0, 20), 0),
        ("a replacement already planned covers the scrap", (chain([(18, 2, 2, 20), NONE, NONE]), 0, 20), 0),
        ("an unknown step owes nothing", (chain([NONE; 3]), 7, 20), 0),
        ("diamond: scrap at the join is owed by both branches", (diamond([(10, 0, 0, 10), (10, 0, 0, 10), (10, 0, 0, 10), (8, 2, 0, 10)]), 2, 10), 2),
        ("diamond: the root counts each later scrap once", (diamond([(10, 0, 0, 10), (9, 1, 0, 10), (10, 0, 0, 10), (8, 2, 0, 9)]), 0, 10), 3),
        ("diamond: a branch's scrap is not owed by the other branch", (diamond([(10, 0, 0, 10), (9, 1, 0, 10), (10, 0, 0, 10), NONE]), 2, 10), 0),
    ];
    check(cases, |(steps, index, quantity)| {
        deficit(steps, *index, *quantity)
    });
}

#[test]
#[rustfmt::skip]
fn required_units_per_step() {
    let cases: &Cases<(Vec<StepCounts>, i64, i64), i64> = &[
        ("no scrap: the quantity", (chain([NONE; 3]), 0, 20), 20),
        ("the last step owes only its quantity", (chain([(0, 4, 0, 0), (0, 3, 0, 0), (0, 2, 0, 0)]), 2, 20), 20),
        ("the first step owes every later scrap", (chain([(0, 4, 0, 0), (0, 3, 0, 0), (0, 2, 0, 0)]), 0, 20), 25),
        ("diamond join: both branches' scrap reach the root", (diamond([NONE, (0, 1, 0, 0), (0, 2, 0, 0), (0, 3, 0, 0)]), 0, 10), 16),
    ];
    check(cases, |(steps, index, quantity)| {
        required(steps, *index, *quantity)
    });
}

#[test]
#[rustfmt::skip]
fn replacement_runs_for_a_deficit() {
    // (deficit, units per run, the last planned partial run's units) → top-up and new runs
    let r = |topped_up, new_runs: &[i64]| Replacement {
        topped_up,
        new_runs: new_runs.to_vec(),
    };
    let cases: &Cases<(i64, i64, Option<i64>), Replacement> = &[
        ("nothing owed", (0, 10, None), r(0, &[])),
        ("nothing owed, a partial run stays", (0, 10, Some(3)), r(0, &[])),
        ("one partial run", (5, 10, None), r(0, &[5])),
        ("full runs, the last partial", (25, 10, None), r(0, &[10, 10, 5])),
        ("exactly one run", (10, 10, None), r(0, &[10])),
        ("the partial run takes all", (2, 10, Some(8)), r(2, &[])),
        ("the partial run fills, then a new run", (3, 10, Some(8)), r(2, &[1])),
        ("a small partial run fills up", (15, 10, Some(5)), r(5, &[10])),
        ("one unit per run", (3, 1, None), r(0, &[1, 1, 1])),
    ];
    check(cases, |(deficit, per_run, partial)| {
        replacement(*deficit, *per_run, *partial)
    });
}

#[test]
#[rustfmt::skip]
fn runs_for_a_quantity() {
    let cases: &Cases<(i64, i64), Vec<i64>> = &[
        ("zero units, no run", (0, 10), vec![]),
        ("fewer than a run", (7, 10), vec![7]),
        ("exactly one run", (10, 10), vec![10]),
        ("the last run partial", (200, 30), vec![30, 30, 30, 30, 30, 30, 20]),
        ("exact multiple", (200, 50), vec![50, 50, 50, 50]),
        ("one per run", (3, 1), vec![1, 1, 1]),
    ];
    check(cases, |(units, per_run)| run_sizes(*units, *per_run));
}

fn needs(list: &[(&str, i64)]) -> BTreeMap<String, Amount> {
    list.iter()
        .map(|(m, a)| (m.to_string(), Amount(*a)))
        .collect()
}

#[test]
#[rustfmt::skip]
fn approval_reserves_runs_times_per_run() {
    // (quantity, steps as (units per run, per-run draw)) → reserved
    let bracket = vec![
        (30, needs(&[("sheet", 1000)])),
        (50, needs(&[("sheet", 500), ("paint", 200)])),
        (200, needs(&[])),
    ];
    type PerRun = BTreeMap<String, Amount>;
    type Steps = Vec<(i64, PerRun)>;
    let cases: &Cases<(i64, Steps), PerRun> = &[
        ("partial last runs draw a whole run", (200, bracket.clone()), needs(&[("sheet", 9000), ("paint", 800)])),
        ("one unit: one run per step", (1, bracket.clone()), needs(&[("sheet", 1500), ("paint", 200)])),
        ("exact multiples", (150, bracket), needs(&[("sheet", 6500), ("paint", 600)])),
        ("a step with no material", (10, vec![(5, needs(&[]))]), needs(&[])),
    ];
    check(cases, |(quantity, steps)| {
        approval_needs(
            *quantity,
            steps.iter().map(|(per_run, draw)| (*per_run, draw)),
        )
    });
}

#[test]
#[rustfmt::skip]
fn when_an_order_is_complete() {
    use OrderState::*;
    // (state, quantity, good, runs not finished) → complete
    let cases: &Cases<(OrderState, i64, i64, i64), bool> = &[
        ("all made, nothing left", (InProgress, 10, 10, 0), true),
        ("one short", (InProgress, 10, 9, 0), false),
        ("an interrupted run may still change the counts", (InProgress, 10, 10, 1), false),
        ("a replacement still planned", (InProgress, 10, 10, 2), false),
        ("approved, nothing dispatched yet", (Approved, 10, 10, 0), false),
        ("already completed", (Completed, 10, 10, 0), false),
        ("cancelled", (Cancelled, 10, 10, 0), false),
    ];
    check(cases, |(state, quantity, good, unfinished)| {
        order_complete(*state, *quantity, *good, *unfinished)
    });
}

#[test]
#[rustfmt::skip]
fn a_runs_outcome_in_units() {
    // (units, scrapped reported, failed) → (good, scrapped)
    let cases: &Cases<(i64, i64, bool), (i64, i64)> = &[
        ("all good", (10, 0, false), (10, 0)),
        ("some scrap", (10, 2, false), (8, 2)),
        ("all scrap", (10, 10, false), (0, 10)),
        ("more scrap than units is held to the run", (10, 12, false), (0, 10)),
        ("negative scrap is none", (10, -1, false), (10, 0)),
        ("a failed run scraps everything", (10, 3, true), (0, 10)),
        ("an empty run", (0, 0, false), (0, 0)),
    ];
    check(cases, |(units, scrapped, failed)| {
        settle(*units, *scrapped, *failed)
    });
}

#[test]
#[rustfmt::skip]
fn when_one_unit_may_be_scrapped_alone() {
    // (steps, step of the unit) → may be scrapped on its own
    let cases: &Cases<(Vec<StepCounts>, i64), bool> = &[
        ("the final step, always", (chain([(10, 0, 0, 10), (10, 0, 0, 10), (10, 0, 0, 10)]), 2), true),
        ("every good unit is in the next step's work", (chain([(10, 0, 0, 10), (0, 0, 10, 10), NONE]), 0), false),
        ("one good unit not yet used", (chain([(10, 0, 0, 10), (0, 0, 9, 9), NONE]), 0), true),
        ("nothing used yet", (chain([(10, 0, 0, 10), NONE, NONE]), 0), true),
        ("no good unit at all", (chain([(0, 10, 0, 10), NONE, NONE]), 0), false),
        ("diamond: the branch that used the most decides", (diamond([(10, 0, 0, 10), (0, 0, 10, 10), (0, 0, 4, 4), NONE]), 0), false),
        ("diamond: both branches left one", (diamond([(11, 0, 0, 11), (0, 0, 10, 10), (0, 0, 4, 4), NONE]), 0), true),
        ("an unknown step", (chain([NONE; 3]), 9), false),
    ];
    check(cases, |(steps, index)| unit_scrappable(steps, *index));
}

fn run(id: i64, step_index: i64, units: i64) -> OpenRun {
    OpenRun {
        id,
        step_index,
        units,
        state: JobState::Planned,
        material_reserved: true,
    }
}

fn on_machine(mut r: OpenRun) -> OpenRun {
    r.state = JobState::Running;
    r
}

fn short_of_material(mut r: OpenRun) -> OpenRun {
    r.material_reserved = false;
    r
}

/// (run id, ready, the runs it waits for)
fn ready(list: &[(i64, bool, &[i64])]) -> Vec<Readiness> {
    list.iter()
        .map(|(run_id, ready, predecessors)| Readiness {
            run_id: *run_id,
            ready: *ready,
            predecessors: predecessors.to_vec(),
        })
        .collect()
}

#[test]
#[rustfmt::skip]
fn readiness_of_planned_runs() {
    // (steps, open runs in id order) → readiness of each planned run
    let cases: &Cases<(Vec<StepCounts>, Vec<OpenRun>), Vec<Readiness>> = &[
        ("no runs", (chain([NONE; 3]), vec![]), vec![]),
        ("fresh order: the first step starts, later steps wait for the runs that feed them",
         (chain([NONE; 3]), vec![run(1, 0, 10), run(2, 0, 10), run(3, 1, 10), run(4, 1, 10), run(5, 2, 10), run(6, 2, 10)]),
         ready(&[(1, true, &[]), (2, true, &[]), (3, false, &[1]), (4, false, &[1, 2]), (5, false, &[3]), (6, false, &[3, 4])])),
        ("made inputs let as many units start",
         (chain([(10, 0, 10, 20), NONE, NONE]), vec![on_machine(run(2, 0, 10)), run(3, 1, 10), run(4, 1, 10)]),
         ready(&[(3, true, &[]), (4, false, &[2])])),
        ("units on machines already took their inputs",
         (chain([(15, 0, 5, 20), (0, 0, 20, 10), NONE]), vec![on_machine(run(3, 1, 10)), run(4, 1, 10)]),
         ready(&[(4, false, &[])])),
        ("runs take inputs in id order",
         (chain([(15, 0, 0, 15), NONE, NONE]), vec![run(3, 1, 10), run(4, 1, 10)]),
         ready(&[(3, true, &[]), (4, false, &[])])),
        ("a run without its material neither starts nor takes inputs",
         (chain([(10, 0, 0, 10), NONE, NONE]), vec![short_of_material(run(3, 1, 10)), run(4, 1, 10)]),
         ready(&[(3, false, &[]), (4, true, &[])])),
        ("a partial run waits while its step has a run on a machine",
         (chain([(0, 0, 15, 10), NONE, NONE]), vec![on_machine(run(1, 0, 10)), run(2, 0, 5)]),
         ready(&[(2, false, &[])])),
        ("a partial run starts when its step has nothing on machines",
         (chain([(15, 0, 0, 15), NONE, NONE]), vec![run(3, 1, 10), run(4, 1, 5)]),
         ready(&[(3, true, &[]), (4, true, &[])])),
        ("a full run does not wait for runs of its own step",
         (chain([(0, 0, 20, 10), NONE, NONE]), vec![on_machine(run(1, 0, 10)), run(2, 0, 10)]),
         ready(&[(2, true, &[])])),
        ("diamond: the join waits for its scarcest branch",
         (diamond([(10, 0, 0, 10), (10, 0, 0, 10), (4, 0, 6, 10), NONE]), vec![on_machine(run(7, 2, 6)), run(8, 3, 10)]),
         ready(&[(8, false, &[7])])),
        ("diamond: both branches made enough",
         (diamond([(10, 0, 0, 10), (10, 0, 0, 10), (10, 0, 0, 10), NONE]), vec![run(8, 3, 10)]),
         ready(&[(8, true, &[])])),
        ("diamond: each branch runs as its root's runs feed it",
         (diamond([NONE; 4]), vec![run(1, 0, 10), run(2, 1, 10), run(3, 2, 10), run(4, 3, 10)]),
         ready(&[(1, true, &[]), (2, false, &[1]), (3, false, &[1]), (4, false, &[2, 3])])),
        ("scrap at the last step: each step's replacement waits for the one before",
         (chain([(20, 0, 2, 20), (20, 0, 2, 20), (18, 2, 2, 20)]), vec![run(7, 0, 2), run(8, 1, 2), run(9, 2, 2)]),
         ready(&[(7, true, &[]), (8, false, &[7]), (9, false, &[8])])),
    ];
    check(cases, |(steps, runs)| readiness(steps, runs));
}

fn draws(list: &[(&str, i64)]) -> Vec<Draw> {
    list.iter()
        .map(|(account, amount)| Draw {
            account: account.to_string(),
            amount: Amount(*amount),
        })
        .collect()
}

#[test]
#[rustfmt::skip]
fn drawing_from_accounts_in_order() {
    // (needed, accounts in order of preference) → (draws, not covered)
    type Accounts = Vec<(String, Amount)>;
    let accounts = |list: &[(&str, i64)]| -> Accounts {
        list.iter()
            .map(|(a, n)| (a.to_string(), Amount(*n)))
            .collect()
    };
    let cases: &Cases<(i64, Accounts), (Vec<Draw>, Amount)> = &[
        ("one account covers it", (5, accounts(&[("own", 10)])), (draws(&[("own", 5)]), Amount(0))),
        ("own storage first, then common", (15, accounts(&[("own", 10), ("common", 10)])), (draws(&[("own", 10), ("common", 5)]), Amount(0))),
        ("not enough", (25, accounts(&[("own", 10), ("common", 10)])), (draws(&[("own", 10), ("common", 10)]), Amount(5))),
        ("an empty account is skipped", (5, accounts(&[("own", 0), ("common", 10)])), (draws(&[("common", 5)]), Amount(0))),
        ("nothing needed", (0, accounts(&[("own", 10)])), (draws(&[]), Amount(0))),
        ("no account", (5, accounts(&[])), (draws(&[]), Amount(5))),
    ];
    check(cases, |(needed, accounts)| {
        draw_in_order(Amount(*needed), accounts)
    });
}

#[test]
#[rustfmt::skip]
fn what_closing_a_reservation_gives_back() {
    // (account, reserved, consumed) → released
    let rows = |list: &[(&str, i64, i64)]| -> Vec<(String, Amount, Amount)> {
        list.iter()
            .map(|(a, r, c)| (a.to_string(), Amount(*r), Amount(*c)))
            .collect()
    };
    let cases: &Cases<Vec<(String, Amount, Amount)>, Vec<Draw>> = &[
        ("no reservation", rows(&[]), draws(&[])),
        ("the unconsumed rest", rows(&[("a", 10, 4)]), draws(&[("a", 6)])),
        ("all consumed", rows(&[("a", 10, 10)]), draws(&[])),
        ("several accounts", rows(&[("a", 5, 0), ("b", 3, 3), ("c", 2, 1)]), draws(&[("a", 5), ("c", 1)])),
    ];
    check(cases, |rows| released(rows));
}

#[test]
#[rustfmt::skip]
fn a_program_fits_an_envelope() {
    // (envelope, program size) → fits
    let cases: &Cases<([f64; 3], [f64; 3]), bool> = &[
        ("well inside", ([300.0, 200.0, 100.0], [100.0, 100.0, 10.0]), true),
        ("exactly the envelope", ([300.0, 200.0, 100.0], [300.0, 200.0, 100.0]), true),
        ("turned a quarter", ([300.0, 200.0, 100.0], [200.0, 300.0, 10.0]), true),
        ("too tall", ([300.0, 200.0, 100.0], [10.0, 10.0, 101.0]), false),
        ("too long either way", ([300.0, 200.0, 100.0], [310.0, 10.0, 10.0]), false),
        ("too wide both ways", ([300.0, 200.0, 100.0], [250.0, 250.0, 10.0]), false),
        ("rounding noise fits", ([300.0, 200.0, 100.0], [300.000_000_1, 200.0, 100.0]), true),
    ];
    check(cases, |(envelope, size)| envelope_fits(*envelope, *size));
    check(
        &[(
            "min to max",
            ([-5.0, 0.0, 1.0], [5.0, 20.0, 3.0]),
            [10.0, 20.0, 2.0],
        )],
        |corners| bbox_size(*corners),
    );
}
