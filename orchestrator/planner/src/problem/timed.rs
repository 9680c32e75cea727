//! The evaluation with operators as a shared resource: a simulation in time order (see the
//! module above). A child of `problem` so it works on the evaluator's own arrays.

use std::cmp::Reverse;

use super::{Evaluator, NONE, Need, Objective, Problem, Solution};

/// Event kinds of the time-ordered evaluation: at equal times unloads (which free machines)
/// go before preparations.
const UNLOAD: u8 = 0;
const PREPARE: u8 = 1;
/// Slot visits of the operator pool per work unit (a visit is far cheaper than an operation's).
const SLOT_VISITS_PER_UNIT: u64 = 4;

impl Evaluator {
    /// The evaluation with limited operators: a simulation in time order. An op's preparation
    /// (maintenance, setup, load: one operator throughout) begins at the first instant its
    /// machine is free and set, its inputs can be there, the machine is not down, an operator is
    /// free and, on a machine not allowed after hours, the run then ends within working time.
    /// Its unload waits for an operator after the run; successors start from the unload's end.
    pub(super) fn evaluate_with_operators(
        &mut self,
        p: &Problem,
        s: &Solution,
    ) -> Option<Objective> {
        let n = p.n_ops();
        self.work += n as u64;
        self.link(s);
        self.pool.reset_to(&p.operators);
        let visits_before = self.pool.visits;
        self.events.clear();
        for op in 0..n as u32 {
            let d = p.preds(op).len() as u32 + u32::from(self.mprev[op as usize] != NONE);
            self.indeg[op as usize] = d;
            if d == 0 {
                self.push_prepare(p, s, op);
            }
        }
        self.topo.clear();
        while let Some(Reverse((t, kind, rank, op))) = self.events.pop() {
            self.work += 1;
            let o = op as usize;
            let machine = p.alt_machine[s.alt[o] as usize] as usize;
            if kind == UNLOAD {
                let unload = p.machine_unload[machine];
                let at = self.pool.fit(t, unload);
                if at > t {
                    self.events.push(Reverse((at, UNLOAD, rank, op)));
                    continue;
                }
                self.pool.book(at, unload);
                self.end[o] = at + unload;
                for i in 0..p.succs(op).len() {
                    let succ = p.succs(op)[i];
                    self.release_prepared(p, s, succ);
                }
                let w = self.mnext[o];
                if w != NONE {
                    self.release_prepared(p, s, w);
                }
                continue;
            }
            let need = self.need(p, s, op);
            let at = self.prepare_at(p, &need, t);
            if at > t {
                self.events.push(Reverse((at, PREPARE, rank, op)));
                continue;
            }
            self.pool.book(at, need.before + need.load);
            self.setup_time[o] = need.setup;
            self.start[o] = at + need.before;
            self.topo.push(op);
            let run_end = self.start[o] + need.load + need.run;
            self.events.push(Reverse((run_end, UNLOAD, rank, op)));
        }
        self.work += (self.pool.visits - visits_before) / SLOT_VISITS_PER_UNIT;
        if self.topo.len() < n {
            return None;
        }
        Some(p.objective(&s.alt, &self.end, &self.setup_time, &mut self.order_end))
    }

    fn push_prepare(&mut self, p: &Problem, s: &Solution, op: u32) {
        let earliest = self.need(p, s, op).earliest;
        self.events
            .push(Reverse((earliest, PREPARE, p.op_rank[op as usize], op)));
    }

    fn release_prepared(&mut self, p: &Problem, s: &Solution, op: u32) {
        let d = &mut self.indeg[op as usize];
        *d -= 1;
        if *d == 0 {
            self.push_prepare(p, s, op);
        }
    }

    /// The first instant ≥ `t` at which the op's preparation may begin (see
    /// [`Evaluator::evaluate_with_operators`]).
    fn prepare_at(&mut self, p: &Problem, need: &Need, mut t: i64) -> i64 {
        let prepare = need.before + need.load;
        loop {
            let mut next = p.fit(need.machine, t, prepare + need.run);
            next = self.pool.fit(next, prepare);
            if !p.machine_after_hours[need.machine as usize] {
                let run = self.pool.run_within_working_time(next + prepare, need.run);
                next = next.max(run - prepare);
            }
            if next == t {
                return t;
            }
            t = next;
        }
    }
}
