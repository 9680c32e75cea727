//! The search's own view of a scheduling problem: flat arrays indexed by operation and
//! machine, times as integers relative to the planning instant. Both the plant model
//! ([`crate::PlanInput`]) and FJSPLIB instances are translated into it.
//!
//! A solution is a machine assignment plus one sequence per machine (the disjunctive-graph
//! view). [`Evaluator::evaluate`] turns it into start times with one topological pass:
//! an operation starts when its predecessors have ended, its release time has passed and its
//! machine is free and set up; setups are sequence-dependent (a setup is needed when the
//! previous family on the machine differs) and done just in time, before the run.
//!
//! Operator work (plant problems only; all zero for FJSPLIB): before a run its machine's
//! maintenance when due (first run only), the setup and the load; after it the unload. The
//! machine is held through all of them, and the run's output counts from the unload's end.
//! Without shifts operators are unlimited and these are plain durations, so the evaluation
//! stays a longest-path pass. With shifts the operators are a shared resource
//! ([`OperatorPool`]): the evaluation becomes a time-ordered simulation (tasks take operators
//! in the order they can begin, the more urgent first on a tie) and is always a full one.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::operators::OperatorPool;

mod timed;

use serde::Serialize;

/// An index that is absent: no setup family, no order, no machine in the previous plan.
pub const NONE: u32 = u32::MAX;
/// Minus infinity for longest-path tails; far from overflow when summed with durations.
pub const NEG: i64 = i64::MIN / 4;

/// The planner's lexicographic objective: compared field by field, in this order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Objective {
    /// Sum over public-service orders of weight × tardiness (ms).
    pub public_tardiness: i64,
    /// Sum over the other orders of weight × tardiness (ms).
    pub weighted_tardiness: i64,
    /// End of the last operation, relative to the planning instant.
    pub makespan: i64,
    /// Total setup time planned.
    pub setup_time: i64,
    /// Operations planned on another machine than in the previous plan (plan stability).
    pub moved: i64,
}

#[derive(Debug, Clone, Default)]
pub struct Problem {
    pub n_machines: usize,
    pred_start: Vec<u32>,
    preds: Vec<u32>,
    succ_start: Vec<u32>,
    succs: Vec<u32>,
    alt_start: Vec<u32>,
    pub(crate) alt_machine: Vec<u32>,
    pub(crate) alt_dur: Vec<i64>,
    /// How long the alternative holds its machine: its duration plus the machine's load and
    /// unload (the search's estimates).
    pub(crate) alt_hold: Vec<i64>,
    pub(crate) release: Vec<i64>,
    pub(crate) family: Vec<u32>,
    pub(crate) setup: Vec<i64>,
    pub(crate) order_of: Vec<u32>,
    pub(crate) order_due: Vec<i64>,
    pub(crate) order_public: Vec<bool>,
    pub(crate) order_weight: Vec<i64>,
    /// Completion already fixed by frozen work (NEG if none).
    pub(crate) order_floor: Vec<i64>,
    pub(crate) machine_ready: Vec<i64>,
    pub(crate) machine_family: Vec<u32>,
    pub(crate) machine_down: Vec<Vec<(i64, i64)>>,
    /// Machine in the previous plan, or NONE.
    pub(crate) previous_machine: Vec<u32>,
    /// Start in the previous plan (relative), or i64::MAX.
    pub(crate) previous_start: Vec<i64>,
    /// Operator work per machine (ms): load before each run, unload after it, maintenance
    /// before its first run; whether it may run outside working time.
    pub(crate) machine_load: Vec<i64>,
    pub(crate) machine_unload: Vec<i64>,
    pub(crate) machine_maintenance: Vec<i64>,
    pub(crate) machine_after_hours: Vec<bool>,
    /// Urgency rank per op (lower first): who gets a free operator on a tie.
    pub(crate) op_rank: Vec<u32>,
    /// The operators, with the tasks of frozen work already booked.
    pub(crate) operators: OperatorPool,
    /// No machine has operator work: the evaluator's inner step skips it (FJSPLIB speed).
    pub(crate) machines_only: bool,
}

/// One operation as given to [`ProblemBuilder::op`].
#[derive(Debug, Clone)]
pub struct OpSpec {
    /// (machine, duration) pairs; durations ≥ 0.
    pub alternatives: Vec<(u32, i64)>,
    pub release: i64,
    /// Setup family, or NONE for "never needs a setup".
    pub family: u32,
    pub setup: i64,
    pub order: u32,
}

impl Default for OpSpec {
    fn default() -> Self {
        OpSpec {
            alternatives: Vec::new(),
            release: 0,
            family: NONE,
            setup: 0,
            order: NONE,
        }
    }
}

#[derive(Debug, Default)]
pub struct ProblemBuilder {
    ops: Vec<OpSpec>,
    arcs: Vec<(u32, u32)>,
    machine_ready: Vec<i64>,
    machine_family: Vec<u32>,
    machine_down: Vec<Vec<(i64, i64)>>,
    orders: Vec<(i64, bool, i64, i64)>,
    previous: Vec<(u32, u32, i64)>,
    operator_work: Vec<OperatorWork>,
    ranks: Vec<(u32, u32)>,
    operators: OperatorPool,
}

/// A machine's operator work, in ms ([`ProblemBuilder::operator_work`]).
#[derive(Debug, Clone, Copy)]
pub struct OperatorWork {
    pub load: i64,
    pub unload: i64,
    pub maintenance: i64,
    pub after_hours: bool,
}

impl Default for OperatorWork {
    fn default() -> Self {
        OperatorWork {
            load: 0,
            unload: 0,
            maintenance: 0,
            after_hours: true,
        }
    }
}

impl ProblemBuilder {
    pub fn machine(&mut self, ready: i64, family: u32, down: Vec<(i64, i64)>) -> u32 {
        self.machine_ready.push(ready);
        self.machine_family.push(family);
        let mut down = down;
        down.sort_unstable();
        self.machine_down.push(down);
        self.operator_work.push(OperatorWork::default());
        (self.machine_ready.len() - 1) as u32
    }

    pub fn operator_work(&mut self, machine: u32, work: OperatorWork) {
        self.operator_work[machine as usize] = work;
    }

    /// The shared operators (default: unlimited, always working).
    pub fn operators(&mut self, pool: OperatorPool) {
        self.operators = pool;
    }

    /// Urgency rank of an op for operator ties (default: its index).
    pub fn rank(&mut self, op: u32, rank: u32) {
        self.ranks.push((op, rank));
    }

    /// An order due at `due`; `floor` is the end of its frozen work (NEG if none).
    pub fn order(&mut self, due: i64, public: bool, weight: i64, floor: i64) -> u32 {
        self.orders.push((due, public, weight, floor));
        (self.orders.len() - 1) as u32
    }

    pub fn op(&mut self, spec: OpSpec) -> u32 {
        self.ops.push(spec);
        (self.ops.len() - 1) as u32
    }

    /// `before` must end before `after` starts.
    pub fn precedence(&mut self, before: u32, after: u32) {
        self.arcs.push((before, after));
    }

    pub fn previous(&mut self, op: u32, machine: u32, start: i64) {
        self.previous.push((op, machine, start));
    }

    pub fn build(self) -> Problem {
        let n = self.ops.len();
        let (succ_start, succs) = compressed_rows(n, self.arcs.iter().copied());
        let (pred_start, preds) = compressed_rows(n, self.arcs.iter().map(|&(a, b)| (b, a)));
        let mut p = Problem {
            n_machines: self.machine_ready.len(),
            pred_start,
            preds,
            succ_start,
            succs,
            machine_ready: self.machine_ready,
            machine_family: self.machine_family,
            machine_down: self.machine_down,
            previous_machine: vec![NONE; n],
            previous_start: vec![i64::MAX; n],
            machine_load: self.operator_work.iter().map(|w| w.load).collect(),
            machine_unload: self.operator_work.iter().map(|w| w.unload).collect(),
            machine_maintenance: self.operator_work.iter().map(|w| w.maintenance).collect(),
            machine_after_hours: self.operator_work.iter().map(|w| w.after_hours).collect(),
            op_rank: (0..n as u32).collect(),
            operators: self.operators,
            ..Problem::default()
        };
        for (op, rank) in self.ranks {
            p.op_rank[op as usize] = rank;
        }
        p.machines_only = self
            .operator_work
            .iter()
            .all(|w| w.load == 0 && w.unload == 0 && w.maintenance == 0);
        p.alt_start.push(0);
        for op in self.ops {
            for (m, d) in op.alternatives {
                p.alt_machine.push(m);
                p.alt_dur.push(d);
            }
            p.alt_start.push(p.alt_machine.len() as u32);
            p.release.push(op.release);
            p.family.push(op.family);
            p.setup.push(op.setup);
            p.order_of.push(op.order);
        }
        for (due, public, weight, floor) in self.orders {
            p.order_due.push(due);
            p.order_public.push(public);
            p.order_weight.push(weight);
            p.order_floor.push(floor);
        }
        for (op, machine, start) in self.previous {
            p.previous_machine[op as usize] = machine;
            p.previous_start[op as usize] = start;
        }
        p.alt_hold = p
            .alt_machine
            .iter()
            .zip(&p.alt_dur)
            .map(|(&m, &d)| d + p.machine_load[m as usize] + p.machine_unload[m as usize])
            .collect();
        p
    }
}

/// Adjacency lists in compressed-row form: row starts (n + 1) and targets, duplicates removed.
fn compressed_rows(n: usize, arcs: impl Iterator<Item = (u32, u32)>) -> (Vec<u32>, Vec<u32>) {
    let mut arcs: Vec<(u32, u32)> = arcs.collect();
    arcs.sort_unstable();
    arcs.dedup();
    let mut start = vec![0u32; n + 1];
    for &(a, _) in &arcs {
        start[a as usize + 1] += 1;
    }
    for i in 0..n {
        start[i + 1] += start[i];
    }
    (start, arcs.into_iter().map(|(_, b)| b).collect())
}

impl Problem {
    pub fn n_ops(&self) -> usize {
        self.release.len()
    }

    pub(crate) fn preds(&self, op: u32) -> &[u32] {
        &self.preds
            [self.pred_start[op as usize] as usize..self.pred_start[op as usize + 1] as usize]
    }

    pub(crate) fn succs(&self, op: u32) -> &[u32] {
        &self.succs
            [self.succ_start[op as usize] as usize..self.succ_start[op as usize + 1] as usize]
    }

    /// Indices into `alt_machine`/`alt_dur` of this op's alternatives.
    pub(crate) fn alts(&self, op: u32) -> std::ops::Range<u32> {
        self.alt_start[op as usize]..self.alt_start[op as usize + 1]
    }

    /// Setup time for `op` when the machine last did `previous_family`.
    #[inline]
    pub(crate) fn setup_after(&self, previous_family: u32, op: u32) -> i64 {
        let family = self.family[op as usize];
        if family != NONE && family == previous_family {
            0
        } else {
            self.setup[op as usize]
        }
    }

    /// Earliest setup start ≥ `earliest` such that setup and run avoid the machine's downtime.
    #[inline]
    pub(crate) fn fit(&self, machine: u32, earliest: i64, length: i64) -> i64 {
        let mut t = earliest;
        for &(from, until) in &self.machine_down[machine as usize] {
            if t + length > from && t < until {
                t = until;
            }
        }
        t
    }

    /// Job-graph topological order (precedence arcs only); None if they form a cycle.
    pub fn job_topological_order(&self) -> Option<Vec<u32>> {
        let n = self.n_ops();
        let mut indeg: Vec<u32> = (0..n as u32).map(|o| self.preds(o).len() as u32).collect();
        let mut stack: Vec<u32> = (0..n as u32)
            .rev()
            .filter(|&o| indeg[o as usize] == 0)
            .collect();
        let mut order = Vec::with_capacity(n);
        while let Some(o) = stack.pop() {
            order.push(o);
            for &s in self.succs(o) {
                indeg[s as usize] -= 1;
                if indeg[s as usize] == 0 {
                    stack.push(s);
                }
            }
        }
        (order.len() == n).then_some(order)
    }

    /// A makespan no schedule can beat: the longest precedence chain of minimum durations
    /// (after release times), the work fixed to one machine, and the total minimum work spread
    /// over the machines that can do anything.
    pub(crate) fn makespan_lower_bound(&self) -> i64 {
        let n = self.n_ops();
        let min_dur: Vec<i64> = (0..n as u32)
            .map(|o| {
                self.alts(o)
                    .map(|a| self.alt_dur[a as usize])
                    .min()
                    .unwrap_or(0)
            })
            .collect();
        let mut chain = 0;
        if let Some(topo) = self.job_topological_order() {
            let mut head = self.release.clone();
            for &o in &topo {
                let end = head[o as usize] + min_dur[o as usize];
                chain = chain.max(end);
                for &s in self.succs(o) {
                    head[s as usize] = head[s as usize].max(end);
                }
            }
        }
        let mut fixed = self.machine_ready.clone();
        let mut used = vec![false; self.n_machines];
        for o in 0..n as u32 {
            let alts = self.alts(o);
            if alts.len() == 1 {
                fixed[self.alt_machine[alts.start as usize] as usize] += min_dur[o as usize];
            }
            for a in alts {
                used[self.alt_machine[a as usize] as usize] = true;
            }
        }
        let one_machine = (0..self.n_machines)
            .filter(|&k| used[k])
            .map(|k| fixed[k])
            .max()
            .unwrap_or(0);
        let n_used = used.iter().filter(|&&u| u).count() as i64;
        let capacity_used: i64 = (0..self.n_machines)
            .filter(|&k| used[k])
            .map(|k| self.machine_ready[k])
            .sum();
        let spread = if n_used == 0 {
            0
        } else {
            (min_dur.iter().sum::<i64>() + capacity_used + n_used - 1) / n_used
        };
        chain.max(one_machine).max(spread)
    }

    /// Objective of a schedule given its ends and setup times.
    pub(crate) fn objective(
        &self,
        alt: &[u32],
        end: &[i64],
        setup_time: &[i64],
        order_end: &mut [i64],
    ) -> Objective {
        order_end.copy_from_slice(&self.order_floor);
        let mut obj = Objective::default();
        for op in 0..self.n_ops() {
            obj.makespan = obj.makespan.max(end[op]);
            obj.setup_time += setup_time[op];
            let previous = self.previous_machine[op];
            if previous != NONE && previous != self.alt_machine[alt[op] as usize] {
                obj.moved += 1;
            }
            let order = self.order_of[op];
            if order != NONE {
                let e = &mut order_end[order as usize];
                *e = (*e).max(end[op]);
            }
        }
        for (o, &e) in order_end.iter().enumerate() {
            let tardiness = (e - self.order_due[o]).max(0) * self.order_weight[o];
            if self.order_public[o] {
                obj.public_tardiness += tardiness;
            } else {
                obj.weighted_tardiness += tardiness;
            }
        }
        obj
    }
}

/// Machine assignment (an alternative index per op) and the order of ops on each machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Solution {
    pub alt: Vec<u32>,
    pub seqs: Vec<Vec<u32>>,
}

impl Solution {
    /// The machine of the alternative chosen for `op`.
    pub fn machine(&self, p: &Problem, op: u32) -> u32 {
        p.alt_machine[self.alt[op as usize] as usize]
    }
}

/// Reusable scratch space for evaluating solutions of one problem (no allocation per call).
#[derive(Debug, Clone)]
pub struct Evaluator {
    pub start: Vec<i64>,
    pub end: Vec<i64>,
    pub setup_time: Vec<i64>,
    pub(crate) mprev: Vec<u32>,
    pub(crate) mnext: Vec<u32>,
    indeg: Vec<u32>,
    pub(crate) topo: Vec<u32>,
    stack: Vec<u32>,
    /// Ops a move can affect, and their membership flags (all false between calls).
    affected: Vec<u32>,
    in_affected: Vec<bool>,
    pub(crate) order_end: Vec<i64>,
    /// Work done so far, in operation visits: the deterministic unit of search budgets.
    pub work: u64,
    /// Operators booked by this evaluation (a copy of the problem's, reset each time).
    pool: OperatorPool,
    /// Pending events of the time-ordered evaluation: (time, kind, urgency rank, op).
    events: BinaryHeap<Reverse<(i64, u8, u32, u32)>>,
}

/// What an op needs on its machine, given what precedes it there.
struct Need {
    /// Earliest start of its preparation (maintenance, setup, load).
    earliest: i64,
    machine: u32,
    /// Maintenance (first run on the machine only) plus setup.
    before: i64,
    setup: i64,
    load: i64,
    run: i64,
    unload: i64,
}

impl Evaluator {
    pub fn new(p: &Problem) -> Self {
        let n = p.n_ops();
        Evaluator {
            start: vec![0; n],
            end: vec![0; n],
            setup_time: vec![0; n],
            mprev: vec![NONE; n],
            mnext: vec![NONE; n],
            indeg: vec![0; n],
            topo: Vec::with_capacity(n),
            stack: Vec::with_capacity(n),
            affected: Vec::with_capacity(n),
            in_affected: vec![false; n],
            order_end: vec![0; p.order_due.len()],
            work: 0,
            pool: p.operators.clone(),
            events: BinaryHeap::new(),
        }
    }

    /// Machine predecessor and successor of every op from the sequences.
    fn link(&mut self, s: &Solution) {
        self.mprev.iter_mut().for_each(|x| *x = NONE);
        self.mnext.iter_mut().for_each(|x| *x = NONE);
        for seq in &s.seqs {
            for w in seq.windows(2) {
                self.mprev[w[1] as usize] = w[0];
                self.mnext[w[0] as usize] = w[1];
            }
        }
    }

    /// Start times of every op; None if machine sequences and precedence form a cycle.
    pub fn evaluate(&mut self, p: &Problem, s: &Solution) -> Option<Objective> {
        if p.operators.is_limited() {
            return self.evaluate_with_operators(p, s);
        }
        let n = p.n_ops();
        self.work += n as u64;
        self.link(s);
        self.stack.clear();
        for op in (0..n as u32).rev() {
            let d = p.preds(op).len() as u32 + u32::from(self.mprev[op as usize] != NONE);
            self.indeg[op as usize] = d;
            if d == 0 {
                self.stack.push(op);
            }
        }
        self.topo.clear();
        while let Some(op) = self.stack.pop() {
            self.topo.push(op);
            self.schedule(p, s, op);
            for &succ in p.succs(op) {
                self.release_arc(succ);
            }
            let w = self.mnext[op as usize];
            if w != NONE {
                self.release_arc(w);
            }
        }
        if self.topo.len() < n {
            return None;
        }
        Some(p.objective(&s.alt, &self.end, &self.setup_time, &mut self.order_end))
    }

    /// Re-evaluates after one op was moved, starting from `base`, the evaluation of the solution
    /// before the move: only the ops downstream of the moved op and of its old machine
    /// successor `old_next` can change, so only those are rescheduled (in topological order).
    /// Same result as [`Evaluator::evaluate`], None on a cycle.
    pub fn evaluate_move(
        &mut self,
        p: &Problem,
        s: &Solution,
        base: &Evaluator,
        moved: u32,
        old_machine: u32,
        old_next: u32,
    ) -> Option<Objective> {
        // Shared operators couple every machine: any op's times can change.
        if p.operators.is_limited() {
            return self.evaluate(p, s);
        }
        let n = p.n_ops();
        self.start.copy_from_slice(&base.start);
        self.end.copy_from_slice(&base.end);
        self.setup_time.copy_from_slice(&base.setup_time);
        self.mprev.copy_from_slice(&base.mprev);
        self.mnext.copy_from_slice(&base.mnext);
        let new_machine = s.machine(p, moved);
        for k in [old_machine, new_machine] {
            let seq = &s.seqs[k as usize];
            for (i, &op) in seq.iter().enumerate() {
                self.mprev[op as usize] = if i == 0 { NONE } else { seq[i - 1] };
                self.mnext[op as usize] = seq.get(i + 1).copied().unwrap_or(NONE);
            }
        }
        // The affected ops: everything reachable from the moved op and its old successor.
        self.affected.clear();
        self.stack.clear();
        for root in [moved, old_next] {
            if root != NONE && !self.in_affected[root as usize] {
                self.in_affected[root as usize] = true;
                self.stack.push(root);
            }
        }
        while let Some(op) = self.stack.pop() {
            self.affected.push(op);
            let next = self.mnext[op as usize];
            for &succ in p.succs(op).iter().chain((next != NONE).then_some(&next)) {
                if !self.in_affected[succ as usize] {
                    self.in_affected[succ as usize] = true;
                    self.stack.push(succ);
                }
            }
        }
        for i in 0..self.affected.len() {
            let op = self.affected[i];
            let prev = self.mprev[op as usize];
            let from_affected = p.preds(op).iter().chain((prev != NONE).then_some(&prev));
            let d = from_affected
                .filter(|&&x| self.in_affected[x as usize])
                .count() as u32;
            self.indeg[op as usize] = d;
            if d == 0 {
                self.stack.push(op);
            }
        }
        // Unaffected ops keep their relative order and precede every affected one.
        self.topo.clear();
        self.topo.extend(
            base.topo
                .iter()
                .copied()
                .filter(|&x| !self.in_affected[x as usize]),
        );
        while let Some(op) = self.stack.pop() {
            self.topo.push(op);
            self.schedule(p, s, op);
            for &succ in p.succs(op) {
                self.release_arc(succ);
            }
            let w = self.mnext[op as usize];
            if w != NONE {
                self.release_arc(w);
            }
        }
        for &op in &self.affected {
            self.in_affected[op as usize] = false;
        }
        self.work += (self.affected.len() + n / 4) as u64;
        if self.topo.len() < n {
            return None;
        }
        Some(p.objective(&s.alt, &self.end, &self.setup_time, &mut self.order_end))
    }

    /// What `op` needs once its predecessors and machine predecessor are scheduled.
    #[inline]
    fn need(&self, p: &Problem, s: &Solution, op: u32) -> Need {
        let o = op as usize;
        let mut ready = p.release[o];
        for &j in p.preds(op) {
            ready = ready.max(self.end[j as usize]);
        }
        let alt = s.alt[o] as usize;
        let machine = p.alt_machine[alt];
        let m = machine as usize;
        let u = self.mprev[o];
        let (free, family, maintenance) = if u == NONE {
            (
                p.machine_ready[m],
                p.machine_family[m],
                p.machine_maintenance[m],
            )
        } else {
            (self.end[u as usize], p.family[u as usize], 0)
        };
        let setup = p.setup_after(family, op);
        // The setup may be done while the inputs are still on their way; the load may not.
        let before = maintenance + setup;
        Need {
            earliest: free.max(ready - before),
            machine,
            before,
            setup,
            load: p.machine_load[m],
            run: p.alt_dur[alt],
            unload: p.machine_unload[m],
        }
    }

    /// Start and end of `op` (operators unlimited) once its predecessors and machine
    /// predecessor are scheduled. `start` is where its load begins, `end` where its unload ends.
    #[inline(always)]
    fn schedule(&mut self, p: &Problem, s: &Solution, op: u32) {
        if p.machines_only {
            self.schedule_machines_only(p, s, op);
        } else {
            self.schedule_with_operator_work(p, s, op);
        }
    }

    #[inline(never)]
    fn schedule_with_operator_work(&mut self, p: &Problem, s: &Solution, op: u32) {
        let o = op as usize;
        let n = self.need(p, s, op);
        let prepare = p.fit(n.machine, n.earliest, n.before + n.load + n.run);
        self.setup_time[o] = n.setup;
        self.start[o] = prepare + n.before;
        self.end[o] = self.start[o] + n.load + n.run + n.unload;
    }

    /// [`Evaluator::schedule`] when no machine has operator work: the same times, without
    /// reading what is all zero (this is the search's innermost step).
    #[inline(always)]
    fn schedule_machines_only(&mut self, p: &Problem, s: &Solution, op: u32) {
        let o = op as usize;
        let mut ready = p.release[o];
        for &j in p.preds(op) {
            ready = ready.max(self.end[j as usize]);
        }
        let alt = s.alt[o] as usize;
        let machine = p.alt_machine[alt];
        let u = self.mprev[o];
        let (free, family) = if u == NONE {
            (
                p.machine_ready[machine as usize],
                p.machine_family[machine as usize],
            )
        } else {
            (self.end[u as usize], p.family[u as usize])
        };
        let setup = p.setup_after(family, op);
        let dur = p.alt_dur[alt];
        let setup_start = p.fit(machine, free.max(ready - setup), setup + dur);
        self.setup_time[o] = setup;
        self.start[o] = setup_start + setup;
        self.end[o] = self.start[o] + dur;
    }

    #[inline]
    fn release_arc(&mut self, op: u32) {
        let d = &mut self.indeg[op as usize];
        *d -= 1;
        if *d == 0 {
            self.stack.push(op);
        }
    }
}
