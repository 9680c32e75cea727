//! How client commands print answers for people: aligned tables and short times.

use crate::api::PlanView;
use crate::plant::tasks::TaskView;
use crate::plant::views::{JobView, MachineView, MaterialView, OrderView};

/// Rows under a header, each column as wide as its widest cell.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let padded: Vec<String> = cells
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut text = line(&mut header.iter().copied());
    for row in rows {
        text.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    text
}

/// `2026-12-04T16:01:15Z` as `2026-12-04 16:01`: what a person reads in a table.
pub(super) fn short_time(rfc3339: &str) -> String {
    rfc3339.replacen('T', " ", 1).chars().take(16).collect()
}

fn or_dash(text: Option<&str>) -> String {
    text.unwrap_or("-").to_string()
}

pub(super) fn render_orders(orders: &[OrderView]) -> String {
    let rows: Vec<Vec<String>> = orders
        .iter()
        .map(|o| {
            vec![
                o.id.clone(),
                o.state.to_string(),
                o.quantity.to_string(),
                o.good.to_string(),
                o.scrapped.to_string(),
                o.remaining.to_string(),
                or_dash(o.eta.as_deref().map(short_time).as_deref()),
                o.product.clone(),
            ]
        })
        .collect();
    table(
        &[
            "id", "state", "qty", "good", "scrap", "left", "eta", "product",
        ],
        &rows,
    )
}

pub(super) fn render_order(o: &OrderView) -> String {
    let mut text = format!("{}  {} x {}  ({})\n", o.id, o.quantity, o.product, o.state);
    if let Some(reason) = &o.state_reason {
        text.push_str(&format!("  reason:    {reason}\n"));
    }
    text.push_str(&format!(
        "  maker:     {}  priority {}\n  submitted: {}  due {}\n  units:     {} good, {} scrapped, {} left  eta {}\n",
        o.maker,
        o.priority,
        short_time(&o.submitted),
        short_time(&o.due),
        o.good,
        o.scrapped,
        o.remaining,
        or_dash(o.eta.as_deref().map(short_time).as_deref()),
    ));
    for flag in &o.prescreen {
        text.push_str(&format!("  pre-screen: {flag}\n"));
    }
    let rows: Vec<Vec<String>> = o
        .steps
        .iter()
        .map(|s| {
            vec![
                s.id.clone(),
                s.capability.clone(),
                format!("{}/{}", s.good, o.quantity),
                s.scrapped.to_string(),
                s.units_per_run.to_string(),
                if s.after.is_empty() {
                    "-".into()
                } else {
                    s.after.join(",")
                },
            ]
        })
        .collect();
    text.push('\n');
    text.push_str(&table(
        &["step", "capability", "good", "scrap", "per run", "after"],
        &rows,
    ));
    text
}

pub(super) fn render_order_state(o: &OrderView) -> String {
    let reason = o
        .state_reason
        .as_deref()
        .map(|r| format!(" ({r})"))
        .unwrap_or_default();
    format!(
        "{} is {}{reason}: {} x {}\n",
        o.id, o.state, o.quantity, o.product
    )
}

pub(super) fn render_jobs(jobs: &[JobView]) -> String {
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .map(|j| {
            let note = if j.waiting_for_material {
                "waiting for material".to_string()
            } else if let Some(resume) = &j.resume {
                format!("can resume from line {}", resume.next_line)
            } else {
                j.reason.clone().unwrap_or_default()
            };
            vec![
                j.id.to_string(),
                j.order_id.clone(),
                j.step.clone(),
                j.units.to_string(),
                j.state.to_string(),
                or_dash(j.machine_id.as_deref()),
                j.good.to_string(),
                j.scrapped.to_string(),
                note,
            ]
        })
        .collect();
    table(
        &[
            "id", "order", "step", "units", "state", "machine", "good", "scrap", "note",
        ],
        &rows,
    )
}

/// The operators' tasks; "held" is how long each has kept its machine waiting so far.
pub(super) fn render_tasks(tasks: &[TaskView]) -> String {
    if tasks.is_empty() {
        return "nothing to do at the machines\n".into();
    }
    let rows: Vec<Vec<String>> = tasks
        .iter()
        .map(|t| {
            let inspect = match (t.units, t.machine_scrapped) {
                (Some(units), Some(bad)) if bad > 0 => format!("{units} ({bad} bad)"),
                (Some(units), _) => units.to_string(),
                (None, _) => "-".into(),
            };
            vec![
                t.kind.as_str().to_string(),
                t.machine_id.clone(),
                t.job_id.map_or_else(|| "-".into(), |j| j.to_string()),
                or_dash(t.order_id.as_deref()),
                inspect,
                minutes(t.held_up_ms),
                format!("{:.0} min", t.minutes),
                t.what.clone(),
            ]
        })
        .collect();
    table(
        &[
            "task", "machine", "job", "order", "units", "held", "takes", "what",
        ],
        &rows,
    )
}

/// A wait in whole minutes (seconds under one).
fn minutes(ms: i64) -> String {
    if ms < 60_000 {
        format!("{} s", ms / 1000)
    } else {
        format!("{} min", ms / 60_000)
    }
}

pub(super) fn render_machines(machines: &[MachineView]) -> String {
    let rows: Vec<Vec<String>> = machines
        .iter()
        .map(|m| {
            vec![
                m.id.clone(),
                m.state.clone(),
                or_dash(m.current_job.map(|j| j.to_string()).as_deref()),
                m.capabilities.join(","),
                m.reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(&["id", "state", "job", "capabilities", "reason"], &rows)
}

pub(super) fn render_materials(materials: &[MaterialView]) -> String {
    let rows: Vec<Vec<String>> = materials
        .iter()
        .map(|m| {
            vec![
                m.id.clone(),
                m.on_hand.to_string(),
                m.reserved.to_string(),
                m.available.to_string(),
                m.unit.clone(),
                if m.below_reorder_level {
                    format!("below reorder level {}", m.reorder_level)
                } else {
                    String::new()
                },
            ]
        })
        .collect();
    table(
        &[
            "account",
            "on hand",
            "reserved",
            "available",
            "unit",
            "note",
        ],
        &rows,
    )
}

pub(super) fn render_plan(plan: &PlanView) -> String {
    let Some(planned_at) = &plan.planned_at else {
        return "no plan yet: nothing to plan, or the planner has not finished its first plan\n"
            .into();
    };
    let mut text = format!(
        "plan of {}: {} runs ({} plans made, {} refused by the checker)\n",
        short_time(planned_at),
        plan.rows.len(),
        plan.plans_made,
        plan.plans_refused
    );
    if !plan.unplanned.is_empty() {
        let ids: Vec<String> = plan.unplanned.iter().map(i64::to_string).collect();
        text.push_str(&format!("not placed now: runs {}\n", ids.join(", ")));
    }
    let etas: Vec<Vec<String>> = plan
        .orders
        .iter()
        .map(|o| vec![o.order_id.clone(), short_time(&o.eta)])
        .collect();
    text.push('\n');
    text.push_str(&table(&["order", "eta"], &etas));
    let rows: Vec<Vec<String>> = plan
        .rows
        .iter()
        .map(|r| {
            vec![
                r.machine_id.clone(),
                r.run_id.to_string(),
                r.order_id.clone(),
                or_dash(r.step.as_deref()),
                short_time(&r.start),
                short_time(&r.end),
                if r.frozen { "on machine" } else { "" }.to_string(),
            ]
        })
        .collect();
    text.push('\n');
    text.push_str(&table(
        &["machine", "run", "order", "step", "start", "end", ""],
        &rows,
    ));
    text
}
