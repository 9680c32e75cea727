//! Anytime improvement: tabu search over the critical path, with restarts from the best plan.
//!
//! Each iteration picks a *target*: the most pressing part of the objective (a tardy
//! public-service order, else a tardy standard order, else the makespan). The target's
//! critical operations are those on a longest path ending at it. Every critical operation `v`
//! may move to any position on any of its eligible machines (Mastrolilli & Gambardella's
//! neighbourhood). Each move is first estimated in O(1) from current heads and tails: the new
//! longest path through `v` ≈ max(preds' ends, new machine predecessor's end + setup) +
//! duration + max(job successors' tails, new machine successor's setup + duration + tail).
//! Insertions that could close a cycle are filtered with head-time bounds (a descendant of a
//! successor cannot start before that successor ends). The few best estimates are then
//! evaluated exactly and the best non-tabu one is taken, even if it is worse (that is what
//! lets tabu search leave local optima). Moving `v` back behind its old machine predecessor is
//! tabu for a randomised tenure. After a stretch without improvement the search restarts from
//! the best plan with a few random critical moves (a kick); a run goes on as long as it keeps
//! improving its own best.

use crate::problem::{Evaluator, NEG, NONE, Objective, Problem, Solution};
use microfab_rng::SplitMix64;

/// How long to search, in work units: the same problem, budget and seed always give the same
/// plan, so the planner never reads a clock. A unit is one operation visited by the evaluator (a
/// full evaluation of n operations costs n). A caller with a time limit converts it once, outside
/// the planner, with [`Budget::from_seconds`] (or its own calibration, see [`WORK_PER_SECOND`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    units: u64,
}

/// Work units per second of search on one core of the development machine (release build,
/// shared with other jobs), as reported by `microfab bench plan`. It covers the search only:
/// translation and construction come on top (about 60–85 ms per 1,000 runs for a first plan,
/// 30 ms for a re-plan). Only a starting point for callers converting seconds into a
/// [`Budget`].
pub const WORK_PER_SECOND: u64 = 45_000_000;

impl Budget {
    pub const fn work(units: u64) -> Budget {
        Budget { units }
    }

    /// Seconds of search on the reference machine ([`WORK_PER_SECOND`]).
    pub fn from_seconds(seconds: f64) -> Budget {
        Budget::work((seconds.max(0.0) * WORK_PER_SECOND as f64) as u64)
    }

    pub fn units(self) -> u64 {
        self.units
    }

    fn exhausted(&self, work: u64) -> bool {
        work >= self.units
    }
}

#[derive(Debug, Clone)]
pub struct SearchOutcome {
    pub solution: Solution,
    pub objective: Objective,
    pub iterations: u64,
    pub work: u64,
}

/// Moves evaluated exactly per iteration (the best estimates) when the target is the makespan.
const EXACT_MAKESPAN: usize = 3;
/// The same when the target is one order: other orders' tardiness, which the estimate does not
/// see, makes the best estimate wrong more often.
const EXACT_ORDER: usize = 8;
/// Iterations without a new best before restarting from the best (with a kick).
const STALL_LIMIT: u64 = 200;
/// Critical operations considered per iteration (sampled when more).
const MAX_CRITICAL: usize = 96;

#[derive(Debug, Clone, Copy)]
struct Candidate {
    estimate: i64,
    tie: u64,
    op: u32,
    alt: u32,
    position: u32,
}

impl Candidate {
    fn key(&self) -> (i64, u64) {
        (self.estimate, self.tie)
    }
}

#[derive(Debug, Clone, Copy)]
struct TabuEntry {
    op: u32,
    machine: u32,
    previous: u32,
    expires: u64,
}

#[derive(Debug, Clone, Copy)]
enum Target {
    Makespan,
    Order(u32),
}

struct Search<'a> {
    p: &'a Problem,
    rng: SplitMix64,
    current: Solution,
    current_obj: Objective,
    eval: Evaluator,
    trial: Evaluator,
    /// Evaluation of the best move of the current step (swapped with `trial`).
    chosen_eval: Evaluator,
    tail: Vec<i64>,
    critical: Vec<u32>,
    best_moves: Vec<Candidate>,
    /// Moves evaluated exactly this iteration.
    exact: usize,
    tabu: Vec<TabuEntry>,
    iteration: u64,
    estimates: u64,
}

/// Improves `initial` (which must be acyclic) until the budget is spent.
pub fn tabu_search(p: &Problem, initial: Solution, budget: Budget, seed: u64) -> SearchOutcome {
    let mut eval = Evaluator::new(p);
    let current_obj = eval
        .evaluate(p, &initial)
        .expect("initial solution must be acyclic");
    let mut s = Search {
        p,
        rng: SplitMix64::new(seed),
        current: initial.clone(),
        current_obj,
        trial: Evaluator::new(p),
        chosen_eval: Evaluator::new(p),
        eval,
        tail: vec![NEG; p.n_ops()],
        critical: Vec::new(),
        best_moves: Vec::with_capacity(EXACT_ORDER + 1),
        exact: 0,
        tabu: Vec::new(),
        iteration: 0,
        estimates: 0,
    };
    let mut best = initial;
    let mut best_obj = current_obj;
    let mut since_improvement = 0u64;
    // Each run (from the start or a restart) goes on while it keeps improving its own best,
    // even if that is still worse than the overall best.
    let mut run_best = current_obj;
    // Nothing can beat a plan with no tardiness, no setup, no moves and the makespan bound.
    let floor = Objective {
        makespan: p.makespan_lower_bound(),
        ..Objective::default()
    };
    while best_obj > floor && !budget.exhausted(s.work()) {
        s.iteration += 1;
        let moved = s.step(best_obj);
        if s.current_obj < run_best {
            run_best = s.current_obj;
            since_improvement = 0;
            if s.current_obj < best_obj {
                best_obj = s.current_obj;
                best.clone_from(&s.current);
            }
        } else {
            since_improvement += 1;
        }
        if !moved || since_improvement > STALL_LIMIT {
            s.restart_from(&best, best_obj);
            run_best = s.current_obj;
            since_improvement = 0;
        }
    }
    SearchOutcome {
        solution: best,
        objective: best_obj,
        iterations: s.iteration,
        work: s.work(),
    }
}

impl Search<'_> {
    fn work(&self) -> u64 {
        self.eval.work + self.trial.work + self.chosen_eval.work + self.estimates
    }

    fn dur(&self, op: u32) -> i64 {
        self.eval.end[op as usize] - self.eval.start[op as usize]
    }

    fn choose_target(&mut self) -> Target {
        let p = self.p;
        let public = self.current_obj.public_tardiness > 0;
        if !public && self.current_obj.weighted_tardiness == 0 {
            return Target::Makespan;
        }
        let tardiness =
            |o: usize, end: &[i64]| (end[o] - p.order_due[o]).max(0) * p.order_weight[o];
        let total: i64 = (0..p.order_due.len())
            .filter(|&o| p.order_public[o] == public)
            .map(|o| tardiness(o, &self.eval.order_end))
            .sum();
        let mut pick = self.rng.below(total.max(1) as u64) as i64;
        for o in 0..p.order_due.len() {
            if p.order_public[o] != public {
                continue;
            }
            let t = tardiness(o, &self.eval.order_end);
            if t > 0 && pick < t {
                return Target::Order(o as u32);
            }
            pick -= t;
        }
        Target::Makespan
    }

    fn is_terminal(&self, target: Target, op: u32) -> bool {
        match target {
            Target::Makespan => true,
            Target::Order(o) => self.p.order_of[op as usize] == o,
        }
    }

    /// Longest path lengths from each op's end to the target (NEG if it does not reach it),
    /// then the critical operations. Returns the target's completion time.
    fn tails_and_critical(&mut self, target: Target) -> i64 {
        let p = self.p;
        let mut completion = i64::MIN;
        for i in (0..self.eval.topo.len()).rev() {
            let v = self.eval.topo[i];
            let terminal = self.is_terminal(target, v);
            let mut t = if terminal { 0 } else { NEG };
            for &s in p.succs(v) {
                if self.tail[s as usize] > NEG {
                    t = t.max(self.dur(s) + self.tail[s as usize]);
                }
            }
            let w = self.eval.mnext[v as usize];
            if w != NONE && self.tail[w as usize] > NEG {
                t = t.max(self.eval.setup_time[w as usize] + self.dur(w) + self.tail[w as usize]);
            }
            self.tail[v as usize] = t;
            if terminal {
                completion = completion.max(self.eval.end[v as usize]);
            }
        }
        self.estimates += self.eval.topo.len() as u64;
        self.critical.clear();
        for v in 0..p.n_ops() as u32 {
            let t = self.tail[v as usize];
            if t > NEG && self.eval.end[v as usize] + t == completion {
                self.critical.push(v);
            }
        }
        while self.critical.len() > MAX_CRITICAL {
            let i = self.rng.below(self.critical.len() as u64) as usize;
            self.critical.swap_remove(i);
        }
        completion
    }

    fn is_tabu(&self, op: u32, machine: u32, previous: u32) -> bool {
        self.tabu.iter().any(|t| {
            t.op == op
                && t.machine == machine
                && t.previous == previous
                && t.expires > self.iteration
        })
    }

    /// Estimates every move of every critical op; keeps the best few non-tabu ones in
    /// `best_moves` and returns the best tabu one (for aspiration). With `random`, estimates are
    /// replaced by random keys: a uniform pick among the cycle-free moves (for kicks).
    fn collect_moves(&mut self, target: Target, random: bool) -> Option<Candidate> {
        let p = self.p;
        self.best_moves.clear();
        self.exact = match target {
            Target::Makespan => EXACT_MAKESPAN,
            Target::Order(_) => EXACT_ORDER,
        };
        let mut best_tabu: Option<Candidate> = None;
        for ci in 0..self.critical.len() {
            let v = self.critical[ci];
            let vi = v as usize;
            let mut job_ready = p.release[vi];
            let mut pred_bound = i64::MIN;
            for &j in p.preds(v) {
                job_ready = job_ready.max(self.eval.end[j as usize]);
                pred_bound = pred_bound.max(self.eval.start[j as usize]);
            }
            let mut job_tail = if self.is_terminal(target, v) { 0 } else { NEG };
            let mut succ_bound = i64::MAX;
            for &s in p.succs(v) {
                if self.tail[s as usize] > NEG {
                    job_tail = job_tail.max(self.dur(s) + self.tail[s as usize]);
                }
                succ_bound = succ_bound.min(self.eval.end[s as usize]);
            }
            let current_machine = self.current.machine(p, v);
            let current_prev = self.eval.mprev[vi];
            let v_has_tabu = self
                .tabu
                .iter()
                .any(|t| t.op == v && t.expires > self.iteration);
            for a in p.alts(v) {
                let k = p.alt_machine[a as usize];
                let dur = p.alt_hold[a as usize];
                let seq = &self.current.seqs[k as usize];
                let mut position = 0u32;
                let mut u = NONE;
                // Walk the sequence as it would be without v: positions 0..=len.
                let mut idx = 0usize;
                loop {
                    while idx < seq.len() && seq[idx] == v {
                        idx += 1;
                    }
                    let w = if idx < seq.len() { seq[idx] } else { NONE };
                    let u_ok = u == NONE || self.eval.start[u as usize] < succ_bound;
                    if !u_ok {
                        break;
                    }
                    let w_ok = w == NONE || self.eval.end[w as usize] > pred_bound;
                    let unchanged = k == current_machine && u == current_prev;
                    if w_ok && !unchanged {
                        let (free, family) = if u == NONE {
                            (p.machine_ready[k as usize], p.machine_family[k as usize])
                        } else {
                            (self.eval.end[u as usize], p.family[u as usize])
                        };
                        let head = job_ready.max(free + p.setup_after(family, v));
                        let mut tail = job_tail;
                        if w != NONE && self.tail[w as usize] > NEG {
                            tail = tail.max(
                                p.setup_after(p.family[vi], w)
                                    + self.dur(w)
                                    + self.tail[w as usize],
                            );
                        }
                        let candidate = Candidate {
                            estimate: if random { 0 } else { head + dur + tail.max(0) },
                            tie: self.rng.next_u64(),
                            op: v,
                            alt: a,
                            position,
                        };
                        self.estimates += 1;
                        if v_has_tabu && self.is_tabu(v, k, u) {
                            if best_tabu.is_none_or(|b| candidate.key() < b.key()) {
                                best_tabu = Some(candidate);
                            }
                        } else {
                            keep(&mut self.best_moves, self.exact, candidate);
                        }
                    }
                    if w == NONE {
                        break;
                    }
                    u = w;
                    idx += 1;
                    position += 1;
                }
            }
        }
        best_tabu
    }
}

/// Inserts a candidate into the short sorted list of best moves.
fn keep(moves: &mut Vec<Candidate>, limit: usize, c: Candidate) {
    {
        if moves.len() == limit && moves[moves.len() - 1].key() <= c.key() {
            return;
        }
        let at = moves.partition_point(|m| m.key() <= c.key());
        if moves.len() == limit {
            moves.pop();
        }
        moves.insert(at, c);
    }
}

impl Search<'_> {
    /// Applies a move; returns what undoes it.
    fn apply(&mut self, c: Candidate) -> (u32, u32, usize) {
        let p = self.p;
        let v = c.op;
        let old_alt = self.current.alt[v as usize];
        let old_machine = p.alt_machine[old_alt as usize];
        let seq = &mut self.current.seqs[old_machine as usize];
        let old_index = seq
            .iter()
            .position(|&x| x == v)
            .expect("op is on its machine");
        seq.remove(old_index);
        let k = p.alt_machine[c.alt as usize];
        self.current.seqs[k as usize].insert(c.position as usize, v);
        self.current.alt[v as usize] = c.alt;
        (old_alt, old_machine, old_index)
    }

    fn undo(&mut self, c: Candidate, (old_alt, old_machine, old_index): (u32, u32, usize)) {
        let k = self.p.alt_machine[c.alt as usize];
        self.current.seqs[k as usize].remove(c.position as usize);
        self.current.seqs[old_machine as usize].insert(old_index, c.op);
        self.current.alt[c.op as usize] = old_alt;
    }

    /// One tabu-search move. Returns false when no move was possible.
    fn step(&mut self, best_obj: Objective) -> bool {
        let target = self.choose_target();
        self.tails_and_critical(target);
        let best_tabu = self.collect_moves(target, false);
        let mut chosen: Option<((Objective, i64), Candidate)> = None;
        for i in 0..=self.best_moves.len() {
            let (c, tabu) = match (self.best_moves.get(i), best_tabu) {
                (Some(&c), _) => (c, false),
                (None, Some(c)) => (c, true),
                (None, None) => break,
            };
            let old_next = self.eval.mnext[c.op as usize];
            let old_machine = self.current.machine(self.p, c.op);
            let undo = self.apply(c);
            let result = self.trial.evaluate_move(
                self.p,
                &self.current,
                &self.eval,
                c.op,
                old_machine,
                old_next,
            );
            #[cfg(debug_assertions)]
            {
                let mut full = Evaluator::new(self.p);
                assert_eq!(result, full.evaluate(self.p, &self.current));
                if result.is_some() {
                    assert_eq!(
                        (&self.trial.start, &self.trial.end),
                        (&full.start, &full.end)
                    );
                    assert_eq!(
                        (&self.trial.mprev, &self.trial.mnext),
                        (&full.mprev, &full.mnext)
                    );
                    let mut seen = vec![false; self.p.n_ops()];
                    for &op in &self.trial.topo {
                        let mut before = self.p.preds(op).iter().chain(
                            (self.trial.mprev[op as usize] != NONE)
                                .then_some(&self.trial.mprev[op as usize]),
                        );
                        assert!(before.all(|&x| seen[x as usize]), "topological order");
                        seen[op as usize] = true;
                    }
                }
            }
            self.undo(c, undo);
            if let Some(obj) = result {
                let allowed = !tabu || obj < best_obj;
                // Among equal objectives, prefer less total processing time (faster machines).
                let workload = self.p.alt_dur[c.alt as usize]
                    - self.p.alt_dur[self.current.alt[c.op as usize] as usize];
                let key = (obj, workload);
                if allowed && chosen.is_none_or(|(o, _)| key < o) {
                    chosen = Some((key, c));
                    std::mem::swap(&mut self.trial, &mut self.chosen_eval);
                }
            }
        }
        let Some(((obj, _), c)) = chosen else {
            return false;
        };
        let old_machine = self.current.machine(self.p, c.op);
        let old_prev = self.eval.mprev[c.op as usize];
        self.apply(c);
        self.tabu.retain(|t| t.expires > self.iteration);
        let tenure = 2 + self.critical.len() as u64 / 4 + self.rng.below(8);
        self.tabu.push(TabuEntry {
            op: c.op,
            machine: old_machine,
            previous: old_prev,
            expires: self.iteration + tenure,
        });
        // The chosen move's evaluation becomes the current one (no re-evaluation).
        std::mem::swap(&mut self.eval, &mut self.chosen_eval);
        self.current_obj = obj;
        debug_assert_eq!(
            Evaluator::new(self.p).evaluate(self.p, &self.current),
            Some(obj)
        );
        true
    }

    /// Back to the best plan, then a few random critical moves so the search explores anew.
    fn restart_from(&mut self, best: &Solution, best_obj: Objective) {
        self.current.clone_from(best);
        self.current_obj = best_obj;
        self.tabu.clear();
        self.eval.evaluate(self.p, &self.current);
        let kicks = 1 + self.rng.below(3);
        for _ in 0..kicks {
            let target = self.choose_target();
            self.tails_and_critical(target);
            self.collect_moves(target, true);
            let Some(&c) = self.best_moves.first() else {
                return;
            };
            let undo = self.apply(c);
            match self.eval.evaluate(self.p, &self.current) {
                Some(obj) => self.current_obj = obj,
                None => {
                    self.undo(c, undo);
                    self.current_obj = self
                        .eval
                        .evaluate(self.p, &self.current)
                        .expect("undone to acyclic");
                }
            }
        }
    }
}
