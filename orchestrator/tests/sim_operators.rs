//! Simulated operators never work more tasks at once than the shift has people: with one
//! operator on shift (and two in the crew), every confirmation — the lasers' loads and unloads,
//! the manual assembly stations' runs — comes at least that task's minutes after the one
//! before.

mod common;

use std::time::Duration;

use common::{TestDb, TestPlant, plant_config};
use microfab::store::Event;

const TIME_SCALE: f64 = 2000.0;
/// Ten minutes of operator work per load and per unload.
const LASER_TASK_MS: i64 = 10 * 60_000;
/// An assembly run: the spec's 240 s, done by the operator.
const ASSEMBLY_MS: i64 = 240_000;
/// The measurement's resolution in plant ms: 50 wall ms at the time scale.
const RESOLUTION_MS: i64 = (0.050 * TIME_SCALE * 1000.0) as i64;

fn config() -> String {
    let mut text = plant_config(TIME_SCALE, 0.0)
        .replace(
            "capabilities = [\"manual:assembly\"]\nenvelope_mm = [2000, 1000, 1000]\ndriver = { kind = \"sim\"",
            "capabilities = [\"manual:assembly\"]\nenvelope_mm = [2000, 1000, 1000]\ndriver = { kind = \"manual\" }\n#",
        )
        .replace(
        "[simulation]\n",
        "[simulation]\noperators = { count = 2, reaction_seconds = 0, seed = 5 }\n",
    );
    text.push_str(
        r#"
[calendar]
shifts = [
  { days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], start = "00:00", end = "12:00", operators = 1 },
  { days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], start = "12:00", end = "00:00", operators = 1 },
]

[operator_tasks.laser]
load = { text = "Load a sheet", minutes = 10 }
unload = { text = "Unload and inspect", minutes = 10 }
"#,
    );
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_operator_on_shift_does_one_task_at_a_time() {
    let db = TestDb::sqlite().await;
    let plant = TestPlant::start(&db, &config()).await;
    let client = &plant.client;
    let dir = tempfile::tempdir().unwrap();
    let spec = common::bracket_spec_in(dir.path(), 36, |text| text);
    let order_id = client.submit_and_approve(&spec.display().to_string()).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while client.ok(&format!("/api/v1/orders/{order_id}")).await["state"] != "completed" {
        assert!(tokio::time::Instant::now() < deadline, "never completed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let runtime_plant = &plant.running.runtime.plant;
    let clock = runtime_plant.clock;
    let log = microfab::store::events::list(&runtime_plant.store.pool, 0, 1_000_000, None)
        .await
        .unwrap();
    // (plant instant, the task's minutes) of every confirmation, in order.
    let confirmed: Vec<(i64, i64)> = log
        .iter()
        .filter(|r| r.actor == "sim-operator")
        .filter_map(|r| {
            let minutes = match r.event {
                Event::JobLoaded { .. } | Event::JobFinished { .. } => LASER_TASK_MS,
                Event::MachineCommanded { .. } => ASSEMBLY_MS,
                _ => return None,
            };
            Some((clock.to_plant(r.at_ms), minutes))
        })
        .collect();
    // Six laser runs (a load and an unload each) and 36 assembly runs.
    let stations = confirmed.iter().filter(|(_, m)| *m == ASSEMBLY_MS).count();
    assert_eq!((confirmed.len() - stations, stations), (12, 36));
    let tightest = confirmed
        .windows(2)
        .map(|pair| (pair[1].0 - pair[0].0) - pair[1].1)
        .min()
        .unwrap();
    eprintln!(
        "tightest gap between confirmations, less the later task's time: {} s",
        tightest / 1000
    );
    assert!(
        tightest >= -RESOLUTION_MS,
        "a task confirmed {} s before its time: the one operator worked on two at once",
        -tightest / 1000
    );
    plant.shutdown.cancel();
    plant.running.join().await;
}
