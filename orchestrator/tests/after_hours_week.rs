//! A simulated week-end and more: a plant with a calendar (two shifts Monday to Friday, a
//! Saturday morning), machines with and without `after_hours`, lasers with load and unload
//! tasks, and two simulated operators, runs 200 brackets from Friday evening on at a high
//! time scale. Afterwards the event log and the jobs table must show that no run on a machine
//! not allowed after hours started or was running outside working time, that the machines
//! allowed did run at night, and that every task was confirmed in working time. The work
//! outlasts Friday's shift and Saturday morning, so it waits through the night and Sunday.
//!
//! Event times are wall instants taken when the store recorded them, mapped to plant time by
//! the plant's clock: a few wall milliseconds of the coordinator's latency are many plant
//! seconds at this scale, so instants are compared with [`RESOLUTION_MS`] of slack.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{TestDb, TestPlant, plant_config};
use microfab::calendar::Calendar;
use microfab::clock::PlantClock;
use microfab::store::{Event, EventRecord};
use serde_json::json;

const TIME_SCALE: f64 = 6000.0;
/// The measurement's resolution in plant ms: 150 wall ms at the time scale.
const RESOLUTION_MS: i64 = (0.150 * TIME_SCALE * 1000.0) as i64;

/// The test plant with a calendar in UTC, starting on Friday 2026-12-11 at 19:00.
fn config() -> String {
    let mut text = plant_config(TIME_SCALE, 0.0).replace(
        "[simulation]\n",
        "[planner]\nfirst_plan_seconds = 0.2\nreplan_seconds = 0.05\n\n[simulation]\n\
         start = \"2026-12-11T19:00:00Z\"\n\
         operators = { count = 2, reaction_seconds = 60, scrap_rate = 0.02, seed = 3 }\n",
    );
    text.push_str(
        r#"
[calendar]
utc_offset = "+00:00"
shifts = [
  { days = ["mon", "tue", "wed", "thu", "fri"], start = "06:00", end = "14:00", operators = 2 },
  { days = ["mon", "tue", "wed", "thu", "fri"], start = "14:00", end = "22:00", operators = 1 },
  { days = ["sat"], start = "08:00", end = "12:00", operators = 1 },
]

[operator_tasks.laser]
load = { text = "Load a birch sheet and focus", minutes = 4 }
unload = { text = "Take the gussets out and inspect them", minutes = 3 }

[operator_tasks.cnc-3axis]
unattended = true
unattended_reason = "bar feeder and parts catcher"
"#,
    );
    // The routers may run through the night; the lasers, the mill and the assembly stations
    // may not. The mill and the stations have no operator tasks: only the dispatcher's rule
    // holds them, and the mill's bars need nothing made first, so it has work every night.
    for machine in ["router-1", "router-2"] {
        let at = text.find(&format!("id = \"{machine}\"")).unwrap();
        let line_end = at + text[at..].find('\n').unwrap();
        text.insert_str(line_end, "\nafter_hours = true");
    }
    let laser = text.find("id = \"laser-1\"").unwrap();
    let line_end = laser + text[laser..].find('\n').unwrap();
    text.insert_str(
        line_end,
        "\nmaintenance = [{ task = \"clean lens\", every_runs = 12, minutes = 20 }]",
    );
    text
}

/// Plant instants of what happened to each run.
#[derive(Debug, Default)]
struct RunTimes {
    machine: String,
    started: Option<i64>,
    /// When the machine said it was done (before any unload).
    ended: Option<i64>,
}

fn run_times(log: &[EventRecord], clock: &PlantClock) -> BTreeMap<i64, RunTimes> {
    let mut runs: BTreeMap<i64, RunTimes> = BTreeMap::new();
    for record in log {
        let at = clock.to_plant(record.at_ms);
        match &record.event {
            Event::JobStarted {
                job_id, machine_id, ..
            } => {
                let run = runs.entry(*job_id).or_default();
                run.machine = machine_id.clone();
                run.started = Some(at);
                run.ended = None;
            }
            Event::JobAwaitingUnload { job_id, .. } => {
                runs.entry(*job_id).or_default().ended = Some(at);
            }
            Event::JobFinished { job_id, .. } | Event::JobInterrupted { job_id, .. } => {
                let run = runs.entry(*job_id).or_default();
                run.ended.get_or_insert(at);
            }
            _ => {}
        }
    }
    runs
}

/// The end of the working stretch an instant is in, allowing the measurement's resolution.
fn stretch_end(calendar: &Calendar, at: i64) -> Option<i64> {
    calendar
        .working_until(at)
        .or_else(|| calendar.working_until(at - RESOLUTION_MS))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_runs_after_hours_on_a_machine_not_allowed_to_on_sqlite() {
    nothing_runs_after_hours_on_a_machine_not_allowed_to("sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_runs_after_hours_on_a_machine_not_allowed_to_on_postgres() {
    nothing_runs_after_hours_on_a_machine_not_allowed_to("postgres").await;
}

/// One plant at a time: two at this time scale on a shared machine would blur the instants
/// beyond [`RESOLUTION_MS`].
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn nothing_runs_after_hours_on_a_machine_not_allowed_to(kind: &str) {
    let _alone = ONE_AT_A_TIME.lock().await;
    let db = TestDb::of(kind).await;
    let config_text = config();
    let plant = TestPlant::start(&db, &config_text).await;
    let client = &plant.client;
    let order = client.submit_file(common::BRACKET_SPEC).await;
    let order_id = order["id"].as_str().unwrap().to_string();
    let quantity = order["quantity"].as_i64().unwrap();
    assert_eq!(quantity, 200);
    let (status, body) = client
        .post(&format!("/api/v1/orders/{order_id}/approve"), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    loop {
        let order = client.ok(&format!("/api/v1/orders/{order_id}")).await;
        if order["state"] == "completed" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the order did not complete unattended: {order}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    let runtime_plant = &plant.running.runtime.plant;
    let clock = runtime_plant.clock;
    let calendar = runtime_plant.calendar.clone().expect("a calendar");
    let log = microfab::store::events::list(&runtime_plant.store.pool, 0, 1_000_000, None)
        .await
        .unwrap();
    let runs = run_times(&log, &clock);
    let config = &runtime_plant.config;
    let (mut checked, mut at_night, mut worst_overrun) = (0, 0, i64::MIN);
    let mut worst = String::new();
    for (job_id, run) in &runs {
        let (Some(started), Some(ended)) = (run.started, run.ended) else {
            panic!("run {job_id} on {} never ended: {run:?}", run.machine);
        };
        let after_hours = config.machine(&run.machine).unwrap().after_hours;
        let end = stretch_end(&calendar, started);
        if after_hours {
            if end.is_none_or(|end| ended > end) {
                at_night += 1;
            }
            continue;
        }
        checked += 1;
        let end = end.unwrap_or_else(|| {
            panic!(
                "run {job_id} started on {} at {} outside working time",
                run.machine,
                microfab::store::format_ms(started)
            )
        });
        if ended - end > worst_overrun {
            worst_overrun = ended - end;
            worst = format!(
                "run {job_id} on {} from {} to {} (shift end {})",
                run.machine,
                microfab::store::format_ms(started),
                microfab::store::format_ms(ended),
                microfab::store::format_ms(end)
            );
        }
        assert!(
            ended <= end + RESOLUTION_MS,
            "run {job_id} on {} ran from {} to {}, past the end of the shift at {}",
            run.machine,
            microfab::store::format_ms(started),
            microfab::store::format_ms(ended),
            microfab::store::format_ms(end)
        );
    }
    // The jobs table says the same of every run's start.
    let started: Vec<(i64, String, i64)> =
        sqlx::query_as("SELECT id, machine_id, started_ms FROM jobs WHERE started_ms IS NOT NULL")
            .fetch_all(&runtime_plant.store.pool)
            .await
            .unwrap();
    for (job_id, machine, started_ms) in &started {
        if !config.machine(machine).unwrap().after_hours {
            assert!(
                stretch_end(&calendar, clock.to_plant(*started_ms)).is_some(),
                "jobs table: run {job_id} started on {machine} outside working time"
            );
        }
    }
    // Every task a simulated operator confirmed, in working time.
    let mut confirmed = 0;
    for record in log.iter().filter(|r| r.actor == "sim-operator") {
        confirmed += 1;
        let at = clock.to_plant(record.at_ms);
        assert!(
            stretch_end(&calendar, at).is_some(),
            "event {} ({}) by a simulated operator at {}, outside working time",
            record.seq,
            record.event.kind(),
            microfab::store::format_ms(at)
        );
    }
    let last = clock.to_plant(log.last().unwrap().at_ms);
    let monday = microfab::clock::parse_start("2026-12-14T06:00:00Z").unwrap();
    eprintln!(
        "week on {kind}: {} runs, {checked} on machines not allowed after hours (worst end vs shift end \
         {} s: {worst}), {at_night} after hours on machines allowed; {confirmed} tasks confirmed by \
         simulated operators; the order ended at {} plant time",
        runs.len(),
        worst_overrun / 1000,
        microfab::store::format_ms(last),
    );
    assert!(checked > 0 && at_night > 0, "the week tested nothing");
    assert!(
        last > monday,
        "the order ended before a night and a week-end passed"
    );
    let report = client.ok("/api/v1/verify").await;
    assert_eq!(report["consistent"], true, "{report}");
    plant.shutdown.cancel();
    plant.running.join().await;
    db.drop_database().await;
}
