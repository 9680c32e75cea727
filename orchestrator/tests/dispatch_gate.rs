//! The coordinator asks the plant's gate before giving a run to a machine: a machine whose
//! maintenance is due takes no new run (its current one is never stopped).

mod common;

use std::time::Duration;

use common::{BRACKET_SPEC, TestDb, TestPlant, plant_config, wait_until};
use serde_json::{Value, json};

async fn due_maintenance_keeps_the_next_run_off(kind: &str) {
    let db = TestDb::of(kind).await;
    // Laser 1 wants its lens cleaned after every run; laser 2 is out, so laser 1 cuts alone.
    let config = plant_config(6000.0, 0.0).replacen(
        "id = \"laser-1\"\n",
        "id = \"laser-1\"\nmaintenance = [{ task = \"clean lens\", every_runs = 1, minutes = 5 }]\n",
        1,
    );
    let plant = TestPlant::start(&db, &config).await;
    let client = &plant.client;
    let (status, body) = client
        .post(
            "/api/v1/machines/laser-2/maintenance",
            json!({ "on": true, "reason": "mirror" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let order = client.submit_file(BRACKET_SPEC).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, body) = client
        .post(&format!("/api/v1/orders/{order}/approve"), Value::Null)
        .await;
    assert_eq!(status, 200, "{body}");
    let laser_runs = || async {
        client
            .ok("/api/v1/jobs?machine=laser-1")
            .await
            .as_array()
            .unwrap()
            .clone()
    };
    wait_until("laser 1 finished a run", || async {
        laser_runs().await.iter().any(|j| j["state"] == "done")
    })
    .await;
    // Dispatch rounds go by (every 500 ms): the maintenance is due, nothing more is cut.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let runs = laser_runs().await;
    assert_eq!(
        runs.len(),
        1,
        "laser 1 took another run with maintenance due: {runs:?}"
    );
    let log = client.ok("/api/v1/events/log?limit=10000").await;
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"]["kind"] == "maintenance_due"
                && e["event"]["machine_id"] == "laser-1"),
        "{log}"
    );
    plant.shutdown.cancel();
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_due_maintenance_keeps_the_next_run_off() {
    due_maintenance_keeps_the_next_run_off("sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_due_maintenance_keeps_the_next_run_off() {
    due_maintenance_keeps_the_next_run_off("postgres").await;
}
