//! Simulated operators never work more tasks at once than the shift has people: with one
//! operator on shift (and two in the crew), every confirmation comes at least one task's
//! minutes after the one before.

mod common;

use std::time::Duration;

use common::{TestDb, TestPlant, plant_config};
use microfab::store::Event;
use serde_json::json;

const TIME_SCALE: f64 = 2000.0;
/// Ten minutes of operator work per load and per unload.
const TASK_MS: i64 = 10 * 60_000;
/// The measurement's resolution in plant ms: 50 wall ms at the time scale.
const RESOLUTION_MS: i64 = (0.050 * TIME_SCALE * 1000.0) as i64;

fn config() -> String {
    let mut text = plant_config(TIME_SCALE, 0.0).replace(
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
    let source = std::path::Path::new(common::BRACKET_SPEC).parent().unwrap();
    std::fs::create_dir_all(dir.path().join("programs")).unwrap();
    for entry in std::fs::read_dir(source.join("programs")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(
            entry.path(),
            dir.path().join("programs").join(entry.file_name()),
        )
        .unwrap();
    }
    let spec = dir.path().join("bracket.toml");
    std::fs::write(
        &spec,
        std::fs::read_to_string(common::BRACKET_SPEC)
            .unwrap()
            .replace("quantity = 200", "quantity = 36"),
    )
    .unwrap();
    let order = client.submit_file(&spec.display().to_string()).await;
    let order_id = order["id"].as_str().unwrap().to_string();
    let (status, body) = client
        .post(&format!("/api/v1/orders/{order_id}/approve"), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
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
    let confirmed: Vec<i64> = log
        .iter()
        .filter(|r| r.actor == "sim-operator")
        .filter(|r| matches!(r.event, Event::JobLoaded { .. } | Event::JobFinished { .. }))
        .map(|r| clock.to_plant(r.at_ms))
        .collect();
    // Six laser runs: a load and an unload each.
    assert_eq!(confirmed.len(), 12, "{confirmed:?}");
    let closest = confirmed
        .windows(2)
        .map(|pair| pair[1] - pair[0])
        .min()
        .unwrap();
    eprintln!("closest confirmations: {} s apart", closest / 1000);
    assert!(
        closest >= TASK_MS - RESOLUTION_MS,
        "two tasks confirmed {} s apart: the one operator worked on two at once",
        closest / 1000
    );
    plant.shutdown.cancel();
    plant.running.join().await;
}
