//! `microfab demo`: the demo factory, its example orders submitted and approved, and its
//! progress printed until every order has ended.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::ops::{Actor, Operations};
use crate::plant::OrderState;
use crate::plant::views::OrderView;
use crate::store::now_ms;

use super::{listen_and_start, load_config};

pub(super) async fn run(
    config_path: PathBuf,
    database: String,
    listen: String,
    exit_when_done: bool,
) -> anyhow::Result<i32> {
    let config = load_config(&config_path)?;
    let demo = config
        .demo
        .clone()
        .context("the config has no [demo] section")?;
    let time_scale = config.simulation.time_scale;
    let config_plans_operators = config.planner.plan_operators;
    let shutdown = CancellationToken::new();
    let running = listen_and_start(config, &database, &listen, &shutdown).await?;
    super::users::bootstrap_from_env(&running.runtime.plant.store).await?;
    println!(
        "microfab demo on http://{} (database {})",
        running.address,
        crate::store::redact_url(&database)
    );
    println!(
        "log in at http://{}/login (passwords new at every start):",
        running.address
    );
    for (name, role, password) in super::users::demo_accounts(&running.runtime.plant.store).await? {
        println!("  {role:<8} {name:<12} {password}");
    }
    println!(
        "simulated machines run {time_scale}x real speed; an eta is the time left at that speed"
    );
    let ops = running.operations();
    let plant = running.runtime.plant.clone();
    let mut order_ids = Vec::new();
    for path in demo.spec_paths(&config_path) {
        let checked = microfab_job_specs::check_file(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
        let key = format!("demo:{}", checked.source_name);
        let order = ops.submit(&Actor::Demo, &checked, Some(&key)).await?.order;
        let id = order.id.clone();
        if order.state == OrderState::Submitted {
            for flag in &order.prescreen {
                println!("  pre-screen {id}: {flag}");
            }
            ops.approve(&Actor::Demo, &id).await?;
            println!(
                "submitted and approved {id}: {} x {}",
                order.quantity, order.product
            );
        } else {
            println!(
                "resuming {id}: {} x {} ({})",
                order.quantity, order.product, order.state
            );
        }
        order_ids.push(id);
    }
    let started = std::time::Instant::now();
    let mut first_etas = BTreeMap::new();
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(demo.progress_seconds.max(0.1)));
    let mut summarised = false;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = tokio::signal::ctrl_c() => break,
        }
        resolve_interrupted_as_demo_operator(&ops).await?;
        let orders: Vec<OrderView> =
            futures::future::try_join_all(order_ids.iter().map(|id| plant.order(id))).await?;
        let machines = plant.machines().await?;
        let etas = plant.etas.current();
        for (order_id, &eta) in &etas.by_order {
            first_etas.entry(order_id.clone()).or_insert(eta);
        }
        let starved = plant
            .jobs(None, None, Some("planned"))
            .await?
            .iter()
            .filter(|j| j.waiting_for_material)
            .count();
        let plant_now = plant.clock.now();
        let plant_time = match &plant.calendar {
            Some(calendar) => calendar.local_text(plant_now),
            None => crate::store::format_ms(plant_now),
        };
        let moment = Moment {
            elapsed: started.elapsed(),
            plant_time: &plant_time,
            now: now_ms(),
            clock: &plant.clock,
        };
        for line in progress_lines(&moment, &machines, starved, &orders, &etas) {
            println!("{line}");
        }
        if orders.iter().all(|o| ENDED.contains(&o.state)) {
            if !summarised {
                summarised = true;
                let consumed = plant.consumed_by(&order_ids).await?;
                let lines = summary(started.elapsed(), &orders, &consumed)
                    .into_iter()
                    .chain(held_up_lines(&machines, time_scale));
                for line in lines {
                    println!("{line}");
                }
                let completed = completion_times(&ops, &plant.clock).await?;
                println!(
                    "{}",
                    eta_accuracy(&first_etas, &completed, config_plans_operators)
                );
            }
            if exit_when_done {
                break;
            }
        }
    }
    shutdown.cancel();
    running.join().await;
    Ok(0)
}

/// An order in one of these states has ended: nothing more will be made for it.
const ENDED: [OrderState; 3] = [
    OrderState::Completed,
    OrderState::Cancelled,
    OrderState::Rejected,
];

/// Width of the terminal the demo's progress is written for.
const PROGRESS_WIDTH: usize = 80;

/// When a progress report is made: since the demo began (wall), the plant's local time, the
/// wall clock (ms) and the plant clock.
struct Moment<'a> {
    elapsed: Duration,
    plant_time: &'a str,
    now: i64,
    clock: &'a crate::clock::PlantClock,
}

/// The demo's progress: the plant's time, the fleet (with the time machines have waited on
/// operators, in plant time), then each order (its ETA while it is open, in demo time), packed
/// into lines that fit an 80-column terminal.
fn progress_lines(
    moment: &Moment<'_>,
    machines: &[crate::plant::views::MachineView],
    starved_runs: usize,
    orders: &[OrderView],
    etas: &crate::plant::Etas,
) -> Vec<String> {
    let Moment {
        elapsed,
        plant_time,
        now,
        clock,
    } = *moment;
    let time_scale = clock.scale();
    let busy = machines.iter().filter(|m| m.state == "busy").count();
    let held = machines.iter().filter(|m| !m.holds.is_empty()).count();
    let held_up_ms: i64 = machines.iter().map(|m| m.held_up_ms).sum();
    let mut fleet = format!(
        "{busy} busy, {held} held, held up {}",
        duration_text(plant_seconds(held_up_ms, time_scale))
    );
    if starved_runs > 0 {
        fleet.push_str(&format!(", {starved_runs} short"));
    }
    let mut segments = vec![plant_time.to_string(), fleet];
    segments.extend(orders.iter().map(|o| {
        let number = o.id.trim_start_matches("ord-").trim_start_matches('0');
        let progress = format!("#{number} {}/{}", o.good, o.quantity);
        if ENDED.contains(&o.state) {
            format!("{progress} {}", o.state)
        } else {
            // The plan lives in plant time; the demo's clock says when that is on the wall.
            let eta = etas
                .by_order
                .get(&o.id)
                .map(|&at| duration_text((clock.to_wall(at) - now).max(0) / 1000));
            format!("{progress} eta {}", eta.as_deref().unwrap_or("--"))
        }
    }));
    let prefix = format!("[{:>6.1}s] ", elapsed.as_secs_f64());
    let mut lines = vec![prefix.clone()];
    let mut first_on_line = true;
    for segment in segments {
        let line = lines.last_mut().expect("one line at least");
        let separator = if first_on_line { "" } else { " | " };
        if !first_on_line && line.len() + separator.len() + segment.len() > PROGRESS_WIDTH {
            lines.push(format!("{:width$}{segment}", "", width = prefix.len()));
        } else {
            line.push_str(separator);
            line.push_str(&segment);
        }
        first_on_line = false;
    }
    lines
}

/// Wall ms as plant seconds.
fn plant_seconds(wall_ms: i64, time_scale: f64) -> i64 {
    (wall_ms as f64 * time_scale / 1000.0).round() as i64
}

/// Each machine's time waiting on operators (loads, unloads), in plant time, most first.
fn held_up_lines(machines: &[crate::plant::views::MachineView], time_scale: f64) -> Vec<String> {
    let mut held: Vec<(&str, i64)> = machines
        .iter()
        .filter(|m| m.held_up_ms > 0)
        .map(|m| (m.id.as_str(), plant_seconds(m.held_up_ms, time_scale)))
        .collect();
    held.sort_by_key(|(id, seconds)| (-seconds, *id));
    let mut lines = vec!["held up waiting on operators (plant time):".to_string()];
    lines.extend(
        held.iter()
            .map(|(id, seconds)| format!("  {id:<32} {:>10}", duration_text(*seconds))),
    );
    lines
}

/// `m:ss`, or `h:mm:ss` from an hour on.
fn duration_text(seconds: i64) -> String {
    let (h, m, s) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

/// What the demo made, once every order has ended.
fn summary(
    elapsed: Duration,
    orders: &[OrderView],
    consumed: &[(String, String, crate::amount::Amount)],
) -> Vec<String> {
    let by_state: Vec<String> = ENDED
        .iter()
        .map(|state| (state, orders.iter().filter(|o| o.state == *state).count()))
        .filter(|(_, n)| *n > 0)
        .map(|(state, n)| format!("{n} {state}"))
        .collect();
    let mut lines = vec![
        format!(
            "all {} demo orders ended in {:.1}s: {}",
            orders.len(),
            elapsed.as_secs_f64(),
            by_state.join(", ")
        ),
        format!(
            "units: {} good, {} scrapped",
            orders.iter().map(|o| o.good).sum::<i64>(),
            orders.iter().map(|o| o.scrapped).sum::<i64>()
        ),
        "material consumed:".to_string(),
    ];
    lines.extend(consumed.iter().map(|(material, unit, amount)| {
        format!("  {material:<32} {:>10} {unit}", amount.to_string())
    }));
    lines
}

/// When each order completed, in plant time (from the event log).
async fn completion_times(
    ops: &Operations,
    clock: &crate::clock::PlantClock,
) -> anyhow::Result<BTreeMap<String, i64>> {
    let filter = crate::store::events::search::EventFilter {
        kind: Some("order_completed".into()),
        ..Default::default()
    };
    Ok(ops
        .search_events(&Actor::Demo, &filter, None, 10_000)
        .await?
        .into_iter()
        .filter_map(|record| {
            let order_id = record.event.order_id()?.to_string();
            Some((order_id, clock.to_plant(record.at_ms)))
        })
        .collect())
}

/// How far the first plan's ETA of each order was from when it completed (plant time): the
/// mean absolute error over the orders that have both.
fn eta_accuracy(
    first_etas: &BTreeMap<String, i64>,
    completed: &BTreeMap<String, i64>,
    plans_operators: bool,
) -> String {
    // Completion minus ETA per order, in hours: positive when the order ended later than planned.
    let late_by: Vec<(&str, f64)> = first_etas
        .iter()
        .filter_map(|(order_id, eta)| {
            let done = completed.get(order_id)?;
            Some((order_id.as_str(), (done - eta) as f64 / 3_600_000.0))
        })
        .collect();
    let people = if plans_operators {
        "planning operators"
    } else {
        "not planning operators"
    };
    if late_by.is_empty() {
        return format!("eta accuracy ({people}): no completed order had a planned eta");
    }
    let mean = late_by.iter().map(|(_, h)| h.abs()).sum::<f64>() / late_by.len() as f64;
    let worst = late_by.iter().map(|(_, h)| h.abs()).fold(0.0, f64::max);
    let each: Vec<String> = late_by
        .iter()
        .map(|(order_id, h)| format!("{order_id} {h:+.1} h"))
        .collect();
    format!(
        "eta accuracy ({people}): first plan's eta vs completion, mean absolute error {mean:.1} h, worst {worst:.1} h, over {} orders (plant time; completion minus eta: {})",
        late_by.len(),
        each.join(", ")
    )
}

/// The demo has no operator at the panel: a run cut short by a restart is taken as scrap,
/// which the plant then replaces. A real plant leaves this decision to a person.
async fn resolve_interrupted_as_demo_operator(ops: &Operations) -> anyhow::Result<()> {
    for job in ops.plant().jobs(None, None, Some("interrupted")).await? {
        ops.resolve(
            &Actor::DemoOperator,
            job.id,
            0,
            "demo operator: pieces of an interrupted run are scrapped",
        )
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eta_accuracy_is_the_mean_absolute_error_over_orders_with_both() {
        let hour = 3_600_000;
        let first: BTreeMap<String, i64> = [
            ("a".into(), 10 * hour),
            ("b".into(), 20 * hour),
            ("c".into(), 5 * hour),
        ]
        .into();
        let completed: BTreeMap<String, i64> =
            [("a".into(), 12 * hour), ("b".into(), 19 * hour)].into();
        assert_eq!(
            eta_accuracy(&first, &completed, true),
            "eta accuracy (planning operators): first plan's eta vs completion, mean absolute error 1.5 h, worst 2.0 h, over 2 orders (plant time; completion minus eta: a +2.0 h, b -1.0 h)"
        );
        assert!(eta_accuracy(&first, &BTreeMap::new(), false).contains("no completed order"));
    }
}
