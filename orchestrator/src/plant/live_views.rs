//! Read models of what the runtime holds in memory rather than in the store: the plan the
//! dispatcher follows and a machine's console. Built here, beside the store's read models
//! (`views.rs`), so the API, the CLI and a panel show the same thing.

use std::collections::{HashMap, HashSet};

use microfab_drivers::traffic::TrafficLog;
use microfab_planner::{Plan, PlanInput};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::views::MachineView;
use crate::machine_status::MachineStatus;
use crate::store::format_ms;

/// One bar of the Gantt chart: a run on a machine, with its setup block before it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GanttRow {
    pub machine_id: String,
    pub run_id: i64,
    pub order_id: String,
    pub step: Option<String>,
    /// Already on the machine: the plan keeps it where it is.
    pub frozen: bool,
    pub setup_start: String,
    pub start: String,
    pub end: String,
}

/// A planned piece of operator work: `kind` is setup, load, unload or maintenance.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OperatorTaskRow {
    pub machine_id: String,
    pub run_id: Option<i64>,
    pub kind: String,
    pub start: String,
    pub end: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OrderEta {
    pub order_id: String,
    pub eta: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PlanView {
    /// The instant the plan was made for.
    pub planned_at: Option<String>,
    pub rows: Vec<GanttRow>,
    /// The operators' planned work (empty when no machine needs any).
    pub operator_tasks: Vec<OperatorTaskRow>,
    pub orders: Vec<OrderEta>,
    /// Runs the planner could not place now (no machine in service, material never covered).
    pub unplanned: Vec<i64>,
    #[schema(value_type = Option<Object>)]
    pub objective: Option<serde_json::Value>,
    /// Plans made since start, and how many the independent schedule checker refused.
    pub plans_made: u64,
    pub plans_refused: u64,
}

/// The plan (with the input it was made from) as Gantt rows per machine; before the first
/// plan, an empty view with the counters. Orders in `closed` (cancelled or rejected since the
/// plan was made) are left out: their runs will never start, whenever the next plan comes.
pub fn plan_view(
    plan: Option<(&Plan, &PlanInput)>,
    closed: &HashSet<String>,
    plans_made: u64,
    plans_refused: u64,
) -> PlanView {
    let Some((plan, input)) = plan else {
        return PlanView {
            planned_at: None,
            rows: Vec::new(),
            operator_tasks: Vec::new(),
            orders: Vec::new(),
            unplanned: Vec::new(),
            objective: None,
            plans_made,
            plans_refused,
        };
    };
    let runs: HashMap<i64, (&str, Option<&str>)> = input
        .runs
        .iter()
        .map(|r| (r.id, (r.order_id.as_str(), Some(r.step_id.as_str()))))
        .chain(
            input
                .frozen
                .iter()
                .map(|f| (f.run_id, (f.order_id.as_str(), None))),
        )
        .collect();
    let frozen: HashSet<i64> = input.frozen.iter().map(|f| f.run_id).collect();
    PlanView {
        planned_at: Some(format_ms(input.now)),
        rows: plan
            .assignments
            .iter()
            .filter_map(|a| {
                let (order_id, step) = runs.get(&a.run_id).copied().unwrap_or(("", None));
                (!closed.contains(order_id)).then(|| GanttRow {
                    machine_id: a.machine_id.clone(),
                    run_id: a.run_id,
                    order_id: order_id.to_string(),
                    step: step.map(str::to_string),
                    frozen: frozen.contains(&a.run_id),
                    setup_start: format_ms(a.setup_start),
                    start: format_ms(a.start),
                    end: format_ms(a.end),
                })
            })
            .collect(),
        operator_tasks: plan
            .operator_tasks
            .iter()
            .filter(|t| {
                t.run_id
                    .and_then(|r| runs.get(&r))
                    .is_none_or(|(order_id, _)| !closed.contains(*order_id))
            })
            .map(|t| OperatorTaskRow {
                machine_id: t.machine_id.clone(),
                run_id: t.run_id,
                kind: serde_json::to_value(t.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                start: format_ms(t.start),
                end: format_ms(t.end),
            })
            .collect(),
        orders: plan
            .order_eta
            .iter()
            .filter(|(id, _)| !closed.contains(id))
            .map(|(id, at)| OrderEta {
                order_id: id.clone(),
                eta: format_ms(*at),
            })
            .collect(),
        unplanned: plan.unplanned.clone(),
        objective: serde_json::to_value(plan.objective).ok(),
        plans_made,
        plans_refused,
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ConsoleLine {
    pub at_ms: u64,
    /// `sent`, `received`, or `note` (a remark of the driver's, not on the wire)
    pub direction: String,
    pub text: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Console {
    pub lines: Vec<ConsoleLine>,
    pub lines_sent: u64,
    pub lines_received: u64,
    pub resends: u64,
    pub errors: u64,
    pub reconnects: u64,
    pub window_fallbacks: u64,
}

/// A machine's recent serial traffic (newest last) and link counters.
pub fn console_view(log: &TrafficLog) -> Console {
    let c = &log.counters;
    Console {
        lines: log
            .lines()
            .map(|l| ConsoleLine {
                at_ms: l.at_ms,
                direction: serde_json::to_value(l.direction)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                text: l.text.clone(),
            })
            .collect(),
        lines_sent: c.lines_sent,
        lines_received: c.lines_received,
        resends: c.resends,
        errors: c.errors,
        reconnects: c.reconnects,
        window_fallbacks: c.window_fallbacks,
    }
}

/// A machine as the plant records it, with what its driver says now.
#[derive(Debug, Serialize, ToSchema)]
pub struct LiveMachineView {
    #[serde(flatten)]
    pub machine: MachineView,
    /// The machine task's live status; null for a machine no longer in the config.
    pub live: Option<MachineStatus>,
}
