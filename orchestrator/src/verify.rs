//! Replays the event log and compares it with the state tables, and checks the plant's
//! business invariants on the tables: the check behind `microfab verify` and
//! `GET /api/v1/verify`.

use std::collections::BTreeMap;

use sqlx::AnyPool;

use crate::amount::Amount;
use crate::plant::state::{JobState, OrderState, sql_list};
use crate::plant::stock::per_run_needs;
use crate::store::events::{self, Replayed};
use crate::store::{Store, StoreError};

#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct VerifyReport {
    /// The event log, replayed, gives exactly the state in the tables, and the tables keep
    /// the plant's business invariants.
    pub consistent: bool,
    pub events: usize,
    /// Where the replayed log and the tables disagree.
    pub differences: Vec<String>,
    /// Business invariants the tables break: work or reservations on a closed order,
    /// reservations that are not what open runs will draw, unit counts that are not the unit
    /// rows, `0 <= reserved <= on_hand`.
    pub invariants: Vec<String>,
    /// Events done by someone whose role did not allow it at that point of the log (an
    /// operator's verb by a maker, an account change by a non-admin, another maker's order).
    #[serde(default)]
    pub access: Vec<String>,
}

pub async fn verify(store: &Store) -> Result<VerifyReport, StoreError> {
    let _quiet = store.quiesce().await;
    let pool = &store.pool;
    let mut records = Vec::new();
    loop {
        let after = records.last().map_or(0, |r: &events::EventRecord| r.seq);
        let batch = events::list(pool, after, 10_000, None).await?;
        if batch.is_empty() {
            break;
        }
        records.extend(batch);
    }
    let replayed = events::replay(&records);
    let current = events::current(pool).await?;
    let mut invariants = broken_invariants(pool).await?;
    invariants.extend(runs_given_to_a_busy_machine(&records));
    let access = crate::auth::audit::unauthorised(&records);
    Ok(VerifyReport {
        consistent: replayed == current && invariants.is_empty() && access.is_empty(),
        events: records.len(),
        differences: differences(&replayed, &current),
        invariants,
        access,
    })
}

/// What the tables say that the plant's rules forbid (ARCHITECTURE.md, invariants 3 and 4),
/// whether or not the log agrees.
async fn broken_invariants(pool: &AnyPool) -> Result<Vec<String>, StoreError> {
    let mut broken = Vec::new();

    let active = sql_list(&OrderState::ACTIVE);

    // Only an active order has work to do or material held for it.
    let closed_with_runs: Vec<(String, String, i64)> = sqlx::query_as(&format!(
        "SELECT o.id AS id, o.state AS state, CAST(COUNT(*) AS BIGINT) AS runs FROM orders o \
         JOIN jobs j ON j.order_id = o.id \
         WHERE o.state NOT IN ({active}) AND j.state = $1 \
         GROUP BY o.id, o.state ORDER BY o.id"
    ))
    .bind(JobState::Planned)
    .fetch_all(pool)
    .await?;
    for (id, state, runs) in closed_with_runs {
        broken.push(format!(
            "order {id} is {state} but has {runs} planned run(s)"
        ));
    }
    let closed_with_stock: Vec<(String, String, String, i64)> = sqlx::query_as(&format!(
        "SELECT o.id AS id, o.state AS state, r.account AS account, r.reserved - r.consumed AS held \
         FROM orders o JOIN reservations r ON r.order_id = o.id \
         WHERE o.state NOT IN ({active}) AND r.reserved > r.consumed ORDER BY o.id, r.account"
    ))
    .fetch_all(pool)
    .await?;
    for (id, state, account, held) in closed_with_stock {
        broken.push(format!(
            "order {id} is {state} but holds a reservation of {} on {account}",
            Amount(held),
        ));
    }

    // Stock: each account's reserved amount is what orders' reservations hold of it.
    let accounts: Vec<(String, i64, i64, i64)> = sqlx::query_as(
        "SELECT m.id AS id, m.on_hand AS on_hand, m.reserved AS reserved, \
         CAST(COALESCE((SELECT SUM(r.reserved - r.consumed) FROM reservations r WHERE r.account = m.id), 0) AS BIGINT) AS held \
         FROM materials m ORDER BY m.id",
    )
    .fetch_all(pool)
    .await?;
    for (account, on_hand, reserved, held) in accounts {
        let (on_hand, reserved, held) = (Amount(on_hand), Amount(reserved), Amount(held));
        if reserved < Amount::ZERO || reserved > on_hand {
            broken.push(format!(
                "{account}: {reserved} reserved with {on_hand} on hand"
            ));
        }
        if reserved != held {
            broken.push(format!(
                "{account}: {reserved} reserved in the account, {held} held by orders' reservations"
            ));
        }
    }

    // Each order's reservations are exactly what its runs not yet dispatched will draw.
    let mut held: BTreeMap<(String, String), Amount> = BTreeMap::new();
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT r.order_id AS order_id, m.material AS material, \
         CAST(SUM(r.reserved - r.consumed) AS BIGINT) AS held \
         FROM reservations r JOIN materials m ON m.id = r.account GROUP BY r.order_id, m.material",
    )
    .fetch_all(pool)
    .await?;
    for (order_id, material, amount) in rows {
        held.insert((order_id, material), Amount(amount));
    }
    let mut to_draw: BTreeMap<(String, String), Amount> = BTreeMap::new();
    let planned: Vec<(String, String)> = sqlx::query_as(
        "SELECT j.order_id AS order_id, s.materials_json AS materials_json FROM jobs j \
         JOIN steps s ON s.order_id = j.order_id AND s.step_index = j.step_index \
         WHERE j.state = $1 AND j.material_reserved = 1",
    )
    .bind(JobState::Planned)
    .fetch_all(pool)
    .await?;
    for (order_id, materials_json) in planned {
        let needs = match per_run_needs(&materials_json) {
            Ok(needs) => needs,
            Err(e) => {
                broken.push(format!("order {order_id}: {e}"));
                continue;
            }
        };
        for (material, amount) in needs {
            let total = to_draw.entry((order_id.clone(), material)).or_default();
            *total = *total + amount;
        }
    }
    let keys: std::collections::BTreeSet<_> = held.keys().chain(to_draw.keys()).collect();
    for key @ (order_id, material) in keys {
        let reserved = held.get(key).copied().unwrap_or_default();
        let drawn = to_draw.get(key).copied().unwrap_or_default();
        if reserved != drawn {
            broken.push(format!(
                "order {order_id}: {reserved} of {material} reserved, its planned runs will draw {drawn}"
            ));
        }
    }

    // One run at a time on a machine: given to it (awaiting its load, dispatched, running),
    // awaiting its unload, or interrupted there.
    let crowded: Vec<(String, i64, String)> = sqlx::query_as(&format!(
        "SELECT machine_id, CAST(COUNT(*) AS BIGINT) AS runs, CAST(MIN(id) AS TEXT) || '..' || CAST(MAX(id) AS TEXT) AS ids \
         FROM jobs WHERE machine_id IS NOT NULL AND state IN ({}, {}, '{}') \
         GROUP BY machine_id HAVING COUNT(*) > 1 ORDER BY machine_id",
        sql_list(&JobState::ON_MACHINE),
        sql_list(&JobState::AWAITING_OPERATOR),
        JobState::Interrupted,
    ))
    .fetch_all(pool)
    .await?;
    for (machine_id, runs, ids) in crowded {
        broken.push(format!(
            "machine {machine_id} has {runs} runs on it at once (jobs {ids})"
        ));
    }

    // Units: each step's and order's counts are its unit rows; an order never makes more
    // than its quantity.
    let steps: Vec<StepUnits> = sqlx::query_as(
        "SELECT s.order_id AS order_id, s.step_id AS step_id, s.good AS good, s.scrapped AS scrapped, \
         CAST((SELECT COUNT(*) FROM units u WHERE u.order_id = s.order_id AND u.step_index = s.step_index AND u.result = 'good') AS BIGINT) AS good_units, \
         CAST((SELECT COUNT(*) FROM units u WHERE u.order_id = s.order_id AND u.step_index = s.step_index AND u.result = 'scrapped') AS BIGINT) AS scrapped_units \
         FROM steps s ORDER BY s.order_id, s.step_index",
    )
    .fetch_all(pool)
    .await?;
    for s in steps {
        if (s.good, s.scrapped) != (s.good_units, s.scrapped_units) {
            broken.push(format!(
                "order {} step {}: counts say {} good and {} scrapped, unit rows {} and {}",
                s.order_id, s.step_id, s.good, s.scrapped, s.good_units, s.scrapped_units
            ));
        }
    }
    let orders: Vec<OrderUnits> = sqlx::query_as(
        "SELECT o.id AS id, o.state AS state, o.quantity AS quantity, o.good AS good, o.scrapped AS scrapped, \
         CAST((SELECT COUNT(*) FROM units u JOIN steps s ON s.order_id = u.order_id AND s.step_index = u.step_index \
               WHERE u.order_id = o.id AND s.is_final = 1 AND u.result = 'good') AS BIGINT) AS good_units, \
         CAST((SELECT COUNT(*) FROM units u WHERE u.order_id = o.id AND u.result = 'scrapped') AS BIGINT) AS scrapped_units \
         FROM orders o ORDER BY o.seq",
    )
    .fetch_all(pool)
    .await?;
    for OrderUnits {
        id,
        state,
        quantity,
        good,
        scrapped,
        good_units,
        scrapped_units,
    } in orders
    {
        if good != good_units || scrapped != scrapped_units {
            broken.push(format!(
                "order {id}: counts say {good} good and {scrapped} scrapped, unit rows {good_units} and {scrapped_units}"
            ));
        }
        if !(0..=quantity).contains(&good)
            || (state == OrderState::Completed.as_str() && good != quantity)
        {
            broken.push(format!(
                "order {id} is {state} with {good} good of {quantity}: good + remaining must be the quantity"
            ));
        }
    }
    Ok(broken)
}

#[derive(sqlx::FromRow)]
struct StepUnits {
    order_id: String,
    step_id: String,
    good: i64,
    scrapped: i64,
    good_units: i64,
    scrapped_units: i64,
}

#[derive(sqlx::FromRow)]
struct OrderUnits {
    id: String,
    /// Text, not [`OrderState`]: a state the plant does not know is reported, not fatal.
    state: String,
    quantity: i64,
    good: i64,
    scrapped: i64,
    good_units: i64,
    scrapped_units: i64,
}

fn differences(log: &Replayed, tables: &Replayed) -> Vec<String> {
    fn diff<K: Ord + std::fmt::Debug, V: PartialEq + std::fmt::Debug>(
        what: &str,
        log: &std::collections::BTreeMap<K, V>,
        tables: &std::collections::BTreeMap<K, V>,
        out: &mut Vec<String>,
    ) {
        for (k, v) in log {
            match tables.get(k) {
                Some(t) if t == v => {}
                other => out.push(format!(
                    "{what} {k:?}: log says {v:?}, tables say {other:?}"
                )),
            }
        }
        for k in tables.keys().filter(|k| !log.contains_key(*k)) {
            out.push(format!("{what} {k:?}: in the tables, not in the log"));
        }
    }
    let mut out = Vec::new();
    diff("order", &log.orders, &tables.orders, &mut out);
    diff("job", &log.jobs, &tables.jobs, &mut out);
    diff("stock", &log.stock, &tables.stock, &mut out);
    out
}

/// The log's account of each machine: a run is given to a machine (`job_dispatched`) only
/// while no other is on it, whether that one is sent, awaiting its load or its unload, or
/// interrupted there. One line per run given too early.
fn runs_given_to_a_busy_machine(records: &[events::EventRecord]) -> Vec<String> {
    use crate::store::Event;
    // machine → (the run on it, where that run is)
    let mut on: BTreeMap<&str, (i64, &str)> = BTreeMap::new();
    let mut machine_of: BTreeMap<i64, &str> = BTreeMap::new();
    let mut found = Vec::new();
    for record in records {
        let mut now = |machine_id: &str, job_id: i64, what| {
            if let Some(slot) = on.get_mut(machine_id).filter(|(job, _)| *job == job_id) {
                slot.1 = what;
            }
        };
        match &record.event {
            Event::JobDispatched {
                job_id,
                machine_id,
                awaiting_load,
                ..
            } => {
                if let Some((other, what)) = on.get(machine_id.as_str()) {
                    found.push(format!(
                        "event {}: job {job_id} was given to machine {machine_id} while job {other} {what}",
                        record.seq
                    ));
                }
                let what = if *awaiting_load {
                    "awaited its load there"
                } else {
                    "was on it"
                };
                on.insert(machine_id, (*job_id, what));
                machine_of.insert(*job_id, machine_id);
            }
            Event::JobLoaded {
                job_id, machine_id, ..
            }
            | Event::JobResumed {
                job_id, machine_id, ..
            } => now(machine_id, *job_id, "was on it"),
            Event::JobAwaitingUnload {
                job_id, machine_id, ..
            } => now(machine_id, *job_id, "awaited its unload there"),
            Event::JobInterrupted {
                job_id, machine_id, ..
            } => now(machine_id, *job_id, "was interrupted there"),
            Event::JobFinished {
                job_id, machine_id, ..
            }
            | Event::JobRequeued {
                job_id, machine_id, ..
            } => leaves(&mut on, machine_id, *job_id),
            Event::JobResolved { job_id, .. } => {
                if let Some(machine_id) = machine_of.get(job_id) {
                    leaves(&mut on, machine_id, *job_id);
                }
            }
            _ => {}
        }
    }
    found
}

/// Run `job_id` is off `machine_id` (ended, sent back, settled), if it was the one on it.
fn leaves(on: &mut BTreeMap<&str, (i64, &str)>, machine_id: &str, job_id: i64) {
    if on.get(machine_id).is_some_and(|(job, _)| *job == job_id) {
        on.remove(machine_id);
    }
}

#[cfg(test)]
mod tests {
    use super::runs_given_to_a_busy_machine;
    use crate::store::{Event, EventRecord};

    fn log(events: Vec<Event>) -> Vec<EventRecord> {
        events
            .into_iter()
            .enumerate()
            .map(|(i, event)| EventRecord {
                seq: i as i64 + 1,
                at_ms: 0,
                actor: "machine".into(),
                event,
            })
            .collect()
    }

    fn given(job_id: i64, awaiting_load: bool) -> Event {
        Event::JobDispatched {
            order_id: "o".into(),
            job_id,
            machine_id: "laser-1".into(),
            consumed: Vec::new(),
            awaiting_load,
        }
    }

    fn awaiting_unload(job_id: i64) -> Event {
        Event::JobAwaitingUnload {
            order_id: "o".into(),
            job_id,
            machine_id: "laser-1".into(),
            scrapped: 0,
            reason: None,
            failed: false,
        }
    }

    fn finished(job_id: i64) -> Event {
        Event::JobFinished {
            order_id: "o".into(),
            job_id,
            machine_id: "laser-1".into(),
            step_index: 0,
            state: "done".into(),
            good: 1,
            scrapped: 0,
            reason: None,
            final_step: true,
            held_ms: 0,
        }
    }

    #[test]
    fn a_run_given_while_another_awaits_its_unload_is_found() {
        let found = runs_given_to_a_busy_machine(&log(vec![
            given(1, false),
            awaiting_unload(1),
            given(2, true),
        ]));
        assert_eq!(
            found,
            ["event 3: job 2 was given to machine laser-1 while job 1 awaited its unload there"]
        );
        let found = runs_given_to_a_busy_machine(&log(vec![given(1, true), given(2, false)]));
        assert_eq!(found.len(), 1, "{found:?}");
    }

    #[test]
    fn a_run_given_after_the_unload_is_fine() {
        let found = runs_given_to_a_busy_machine(&log(vec![
            given(1, true),
            finished(1),
            given(2, false),
            awaiting_unload(2),
            finished(2),
            given(3, false),
        ]));
        assert_eq!(found, Vec::<String>::new());
    }
}
