//! The process plan: every step's `after` resolved (the previous step by default), ids
//! checked, cycles named step by step, exactly one final step.

use std::collections::BTreeMap;

use super::{After, Checker, StepDraft};
use crate::suggest::closest;

impl Checker<'_> {
    /// Resolves `after` (defaults included), checks ids, cycles and the single final step.
    pub(super) fn plan(&mut self, steps: &[StepDraft]) -> Option<(Vec<Vec<usize>>, usize)> {
        if steps.is_empty() {
            return None;
        }
        let mut index_of: BTreeMap<&str, usize> = BTreeMap::new();
        let mut plan_sound = steps.iter().all(|step| step.id.is_some());
        for (index, step) in steps.iter().enumerate() {
            let Some((id, offset)) = &step.id else {
                continue;
            };
            if let Some(&first) = index_of.get(id.as_str()) {
                self.report(
                    *offset,
                    format!("steps[{index}].id"),
                    format!("duplicate step id '{id}' (also steps[{first}])"),
                );
                plan_sound = false;
            } else {
                index_of.insert(id, index);
            }
        }

        // Edges as (predecessor, offset of the `after` entry naming it, or None when implicit).
        let mut edges: Vec<Vec<(usize, Option<usize>)>> = Vec::with_capacity(steps.len());
        for (index, step) in steps.iter().enumerate() {
            let mut predecessors = Vec::new();
            match &step.after {
                After::Invalid => plan_sound = false,
                After::Default => {
                    if index > 0 {
                        predecessors.push((index - 1, None));
                    }
                }
                After::Listed(ids) => {
                    for (position, (id, offset)) in ids.iter().enumerate() {
                        let field = format!("steps[{index}].after[{position}]");
                        match index_of.get(id.as_str()) {
                            Some(&target) if target == index => {
                                self.report(
                                    *offset,
                                    field,
                                    format!("step '{id}' cannot come after itself"),
                                );
                                plan_sound = false;
                            }
                            Some(&target) => predecessors.push((target, Some(*offset))),
                            None => {
                                let hint = closest(id, index_of.keys().copied())
                                    .map(|known| format!(", did you mean '{known}'?"))
                                    .unwrap_or_else(|| {
                                        let known: Vec<&str> = index_of.keys().copied().collect();
                                        format!("; step ids are: {}", known.join(", "))
                                    });
                                self.report(
                                    *offset,
                                    field,
                                    format!("unknown step id '{id}'{hint}"),
                                );
                                plan_sound = false;
                            }
                        }
                    }
                }
            }
            edges.push(predecessors);
        }

        if self.report_cycles(steps, &edges) {
            return None;
        }
        if !plan_sound {
            return None;
        }
        let mut has_successor = vec![false; steps.len()];
        for predecessors in &edges {
            for &(predecessor, _) in predecessors {
                has_successor[predecessor] = true;
            }
        }
        let finals: Vec<usize> = (0..steps.len()).filter(|&i| !has_successor[i]).collect();
        match finals.as_slice() {
            [final_step] => Some((
                edges
                    .into_iter()
                    .map(|predecessors| predecessors.into_iter().map(|(p, _)| p).collect())
                    .collect(),
                *final_step,
            )),
            _ => {
                let ids: Vec<String> = finals
                    .iter()
                    .filter_map(|&i| steps[i].id.as_ref().map(|(id, _)| format!("'{id}'")))
                    .collect();
                // Without cycles (checked above) a non-empty plan has at least one final step.
                let &last = finals.last()?;
                self.report(
                    steps[last].header,
                    format!("steps[{last}]"),
                    format!(
                        "steps {} are all final (no step comes after them), but a plan has exactly one final step that makes the finished unit; add one after them, e.g. id = \"pack\", capability = \"manual:pack\", after = [{}]",
                        ids.join(", "),
                        ids.iter().map(|id| id.replace('\'', "\"")).collect::<Vec<_>>().join(", ")
                    ),
                );
                None
            }
        }
    }

    /// Reports each cycle once, at an `after` entry that closes it. Returns whether any exist.
    fn report_cycles(
        &mut self,
        steps: &[StepDraft],
        edges: &[Vec<(usize, Option<usize>)>],
    ) -> bool {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            OnPath,
            Done,
        }
        let mut marks = vec![Mark::New; steps.len()];
        let mut found = false;
        for start in 0..steps.len() {
            if marks[start] != Mark::New {
                continue;
            }
            // Iterative depth-first search; `path` holds (step, next edge to follow).
            let mut path: Vec<(usize, usize)> = vec![(start, 0)];
            marks[start] = Mark::OnPath;
            while let Some(&mut (step, ref mut next)) = path.last_mut() {
                let Some(&(target, _)) = edges[step].get(*next) else {
                    marks[step] = Mark::Done;
                    path.pop();
                    continue;
                };
                *next += 1;
                match marks[target] {
                    Mark::New => {
                        marks[target] = Mark::OnPath;
                        path.push((target, 0));
                    }
                    Mark::OnPath => {
                        found = true;
                        self.report_cycle(steps, edges, &path, target);
                    }
                    Mark::Done => {}
                }
            }
        }
        found
    }

    fn report_cycle(
        &mut self,
        steps: &[StepDraft],
        edges: &[Vec<(usize, Option<usize>)>],
        path: &[(usize, usize)],
        target: usize,
    ) {
        let cycle_start = path
            .iter()
            .position(|&(step, _)| step == target)
            .unwrap_or(0);
        // Each hop: (step, index of the edge followed); the last hop is the one closing the cycle.
        let hops: Vec<(usize, usize)> = path[cycle_start..]
            .iter()
            .map(|&(step, next)| (step, next - 1))
            .collect();
        let id = |step: usize| {
            steps[step]
                .id
                .as_ref()
                .map_or_else(|| format!("steps[{step}]"), |(id, _)| id.clone())
        };
        let mut names: Vec<String> = hops.iter().map(|&(step, _)| id(step)).collect();
        names.push(id(target));
        // Implicit edges only point backwards, so a cycle has an explicit `after` entry.
        let Some((step, edge, offset)) = hops
            .iter()
            .rev()
            .find_map(|&(step, edge)| edges[step][edge].1.map(|offset| (step, edge, offset)))
        else {
            return;
        };
        let position = match &steps[step].after {
            After::Listed(ids) => ids.iter().position(|(_, o)| *o == offset).unwrap_or(edge),
            After::Default | After::Invalid => edge,
        };
        self.report(
            offset,
            format!("steps[{step}].after[{position}]"),
            format!(
                "cycle in the process plan: {} (each step comes after the next)",
                names.join(" -> ")
            ),
        );
    }
}
