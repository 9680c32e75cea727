//! Construction: schedule generation driven by priority rules (several are tried, the best
//! kept). Each step looks at the operations whose predecessors are all scheduled, finds the
//! earliest completion C* any of them could reach, keeps those that could start before C*
//! (the Giffler–Thompson conflict set, which avoids needless idle time), picks one by the
//! rule and appends it to the machine where it ends earliest.

use crate::problem::{NONE, Problem, Solution};
use microfab_rng::SplitMix64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Public service first, then earliest due date, then most work remaining.
    Urgency,
    /// Public service first, then least slack (due date minus remaining work).
    Slack,
    /// Public service first, then apparent tardiness cost (weight / duration, discounted
    /// exponentially by slack): the classic weighted-tardiness rule.
    ApparentTardinessCost,
    /// Most work remaining (longest chain of minimum durations still to do).
    MostWorkRemaining,
    /// Earliest possible completion.
    EarliestCompletion,
    /// Shortest time to completion from the earliest possible start.
    ShortestProcessing,
    /// The previous plan's order (warm start); operations new to the plan slot in at their
    /// earliest possible start. (Every rule keeps an op on its previous machine when it may.)
    Previous,
    /// Most work remaining with ±15 % noise from this seed (diversity).
    NoisyWorkRemaining(u64),
}

/// Look-ahead of the apparent tardiness cost rule, in mean durations.
const ATC_K: f64 = 2.0;

/// Longest chain of minimum durations from each op to the end of its job graph, op included.
pub fn work_remaining(p: &Problem, job_topo: &[u32]) -> Vec<i64> {
    let mut tail = vec![0i64; p.n_ops()];
    for &op in job_topo.iter().rev() {
        let own = p.alts(op).map(|a| p.alt_dur[a as usize]).min().unwrap_or(0);
        let after = p
            .succs(op)
            .iter()
            .map(|&s| tail[s as usize])
            .max()
            .unwrap_or(0);
        tail[op as usize] = own + after;
    }
    tail
}

/// Builds a complete solution. Every op must have at least one alternative and the
/// precedence graph must be acyclic (checked by the callers that build problems).
pub fn construct(p: &Problem, rule: Rule, work_left: &[i64]) -> Solution {
    let n = p.n_ops();
    let mut preds_left: Vec<u32> = (0..n as u32).map(|o| p.preds(o).len() as u32).collect();
    let mut ready_at: Vec<i64> = p.release.clone();
    let mut machine_free = p.machine_ready.clone();
    let mut machine_family = p.machine_family.clone();
    let mut seqs: Vec<Vec<u32>> = vec![Vec::new(); p.n_machines];
    let mut alt = vec![NONE; n];
    let mut ready: Vec<u32> = (0..n as u32)
        .filter(|&o| preds_left[o as usize] == 0)
        .collect();
    let mut best_alt = vec![0u32; n];
    let mut best_end = vec![0i64; n];
    let mut min_start = vec![0i64; n];
    let noise: Vec<i64> = match rule {
        Rule::NoisyWorkRemaining(seed) => {
            let mut rng = SplitMix64::new(seed);
            (0..n).map(|_| 85 + rng.below(31) as i64).collect()
        }
        _ => Vec::new(),
    };
    let min_dur: Vec<i64> = (0..n as u32)
        .map(|o| p.alts(o).map(|a| p.alt_dur[a as usize]).min().unwrap_or(0))
        .collect();
    let mean_dur = (min_dur.iter().sum::<i64>() as f64 / n.max(1) as f64).max(1.0);
    let class_due = |op: u32| -> (i64, i64) {
        let order = p.order_of[op as usize];
        if order == NONE {
            (2, i64::MAX / 4)
        } else {
            (
                i64::from(!p.order_public[order as usize]),
                p.order_due[order as usize],
            )
        }
    };
    // Only ops that can use the machine just loaded need a new appraisal.
    let mut ops_on_machine: Vec<Vec<u32>> = vec![Vec::new(); p.n_machines];
    for op in 0..n as u32 {
        for a in p.alts(op) {
            ops_on_machine[p.alt_machine[a as usize] as usize].push(op);
        }
    }
    let mut stale = vec![true; n];
    while !ready.is_empty() {
        let mut c_star = i64::MAX;
        for &op in &ready {
            let o = op as usize;
            if stale[o] {
                stale[o] = false;
                (best_end[o], best_alt[o], min_start[o]) =
                    appraise(p, op, ready_at[o], &machine_free, &machine_family);
            }
            c_star = c_star.min(best_end[o]);
        }
        let key = |op: u32| -> (i64, i64, i64, u32) {
            let o = op as usize;
            let (class, due) = class_due(op);
            let k = match rule {
                Rule::Urgency => (class, due, -work_left[o]),
                Rule::Slack => (class, due - work_left[o], -work_left[o]),
                Rule::ApparentTardinessCost => {
                    let order = p.order_of[o];
                    let weight = if order == NONE {
                        1
                    } else {
                        p.order_weight[order as usize]
                    };
                    let slack = (due - work_left[o] - min_start[o]).max(0) as f64;
                    let index = weight as f64 / min_dur[o].max(1) as f64
                        * (-slack / (ATC_K * mean_dur)).exp();
                    // Non-negative floats order like their bit patterns.
                    (class, -(index.to_bits() as i64), -work_left[o])
                }
                Rule::MostWorkRemaining => (-work_left[o], best_end[o], 0),
                Rule::EarliestCompletion => (best_end[o], -work_left[o], 0),
                Rule::ShortestProcessing => (best_end[o] - min_start[o], -work_left[o], 0),
                Rule::Previous => {
                    let previous = p.previous_start[o];
                    (
                        if previous == i64::MAX {
                            min_start[o]
                        } else {
                            previous
                        },
                        class,
                        due,
                    )
                }
                Rule::NoisyWorkRemaining(_) => (-work_left[o] * noise[o], best_end[o], 0),
            };
            (k.0, k.1, k.2, op)
        };
        // The Previous rule replays the old order exactly; the conflict set would reorder it.
        let use_conflict_set = rule != Rule::Previous;
        let (pick_index, _) = ready
            .iter()
            .enumerate()
            .filter(|&(_, &op)| {
                !use_conflict_set
                    || min_start[op as usize] < c_star
                    || best_end[op as usize] == c_star
            })
            .map(|(i, &op)| (i, key(op)))
            .min_by_key(|&(_, k)| k)
            .expect("the op reaching C* is always in the conflict set");
        let op = ready.swap_remove(pick_index);
        let o = op as usize;
        let a = best_alt[o];
        let machine = p.alt_machine[a as usize] as usize;
        alt[o] = a;
        seqs[machine].push(op);
        machine_free[machine] = best_end[o];
        machine_family[machine] = p.family[o];
        for &other in &ops_on_machine[machine] {
            stale[other as usize] = true;
        }
        for &s in p.succs(op) {
            let s_ = s as usize;
            ready_at[s_] = ready_at[s_].max(best_end[o]);
            preds_left[s_] -= 1;
            if preds_left[s_] == 0 {
                ready.push(s);
            }
        }
    }
    Solution { alt, seqs }
}

/// The machine an op would go to now (its machine in the previous plan if it still may, else
/// where it ends earliest) as (end, alternative), and its earliest possible start on any machine.
fn appraise(
    p: &Problem,
    op: u32,
    ready_at: i64,
    machine_free: &[i64],
    machine_family: &[u32],
) -> (i64, u32, i64) {
    let (mut b_end, mut b_dur, mut b_alt, mut m_start) = (i64::MAX, i64::MAX, 0, i64::MAX);
    let mut on_previous = None;
    for a in p.alts(op) {
        let machine = p.alt_machine[a as usize];
        let m = machine as usize;
        let setup = p.setup_after(machine_family[m], op);
        let dur = p.alt_dur[a as usize];
        let setup_start = p.fit(machine, machine_free[m].max(ready_at - setup), setup + dur);
        let start = setup_start + setup;
        let end = start + dur;
        m_start = m_start.min(start);
        if (end, dur) < (b_end, b_dur) {
            (b_end, b_dur, b_alt) = (end, dur, a);
        }
        if machine == p.previous_machine[op as usize] {
            on_previous = Some((end, a));
        }
    }
    let (end, alt) = on_previous.unwrap_or((b_end, b_alt));
    (end, alt, m_start)
}
