//! Maintenance steering: a reached interval is recorded once as `maintenance_due`, the machine
//! takes no new run while it is due (its current one finishes), the operator says it is done
//! (API and CLI), the counters start again and the machine goes back to work. Both databases.

mod common;

use std::time::Duration;

use common::{Client, TestDb, TestPlant, plant_config};
use serde_json::{Value, json};

/// The test plant with one laser (laser-2 left out) whose lens is cleaned every two runs.
fn config() -> String {
    let mut text = plant_config(20_000.0, 0.0);
    let laser_2 = text.find("[[machines]]\nid = \"laser-2\"").unwrap();
    let router_1 = text.find("[[machines]]\nid = \"router-1\"").unwrap();
    text.replace_range(laser_2..router_1, "");
    text.replacen(
        "driver = { kind = \"sim\", seed = 100, scrap_rate = 0 }",
        "driver = { kind = \"sim\", seed = 100, scrap_rate = 0 }\n\
         maintenance = [{ task = \"clean lens\", every_runs = 2, minutes = 10 }]",
        1,
    )
}

async fn events_of(client: &Client, kind: &str) -> Vec<Value> {
    let log = client.ok("/api/v1/events/log?limit=10000").await;
    log.as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"]["kind"] == kind)
        .cloned()
        .collect()
}

async fn laser_dispatches(client: &Client) -> usize {
    events_of(client, "job_dispatched")
        .await
        .iter()
        .filter(|e| e["event"]["machine_id"] == "laser-1")
        .count()
}

async fn maintenance_stops_a_machine_between_runs(kind: &str) {
    let db = TestDb::of(kind).await;
    let dir = tempfile::tempdir().unwrap();
    let plant = TestPlant::start(&db, &config()).await;
    let client = &plant.client;
    // 24 brackets: four gusset runs on the one laser.
    let spec_path = common::bracket_spec_in(dir.path(), 24, |text| text);
    let order_id = client
        .submit_and_approve(&spec_path.display().to_string())
        .await;

    common::wait_until("the lens is due", || async {
        !events_of(client, "maintenance_due").await.is_empty()
    })
    .await;
    let machine = client.ok("/api/v1/machines/laser-1").await;
    let counter = &machine["maintenance"][0];
    assert_eq!(counter["task"], "clean lens", "{machine}");
    assert_eq!(counter["runs"], 2, "{machine}");
    assert_eq!(counter["due"], true, "{machine}");
    assert!(
        machine["holds"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["kind"] == "maintenance_due" && h["reason"] == "clean lens"),
        "{machine}"
    );
    let tasks = client.ok("/api/v1/tasks").await;
    let task = tasks
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "maintenance-laser-1-0")
        .unwrap_or_else(|| panic!("the lens in the task list: {tasks}"));
    assert_eq!(task["kind"], "maintenance");
    assert_eq!(task["what"], "clean lens");
    assert_eq!(task["minutes"], 10.0);
    // Due: the two remaining gusset runs wait, however long (20,000× plant time: hours).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        laser_dispatches(client).await,
        2,
        "{kind}: a run went to a machine due"
    );
    assert_eq!(
        events_of(client, "maintenance_due").await.len(),
        1,
        "recorded once"
    );
    let order = client.ok(&format!("/api/v1/orders/{order_id}")).await;
    assert_ne!(order["state"], "completed");

    // A task the machine does not have is refused, naming the field; a maker may not.
    let (status, body) = client
        .post(
            "/api/v1/machines/laser-1/maintained",
            json!({ "task": "oil chain" }),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(body.to_string().contains("clean lens"), "{body}");

    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_microfab"))
        .args(["maintained", "laser-1", "clean lens", "--json", "--server"])
        .arg(&client.base)
        .env("MICROFAB_TOKEN", common::ADMIN_TOKEN)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let view: Value = serde_json::from_slice(&out.stdout).unwrap();
    // Counted again from the maintenance: the machine, free now, may have begun its next run.
    assert!(
        view["maintenance"][0]["runs"].as_i64().unwrap() <= 1,
        "{view}"
    );
    assert_eq!(view["maintenance"][0]["due"], false, "{view}");
    let tasks = client.ok("/api/v1/tasks").await;
    assert!(
        !tasks.to_string().contains("maintenance-laser-1"),
        "done, not a task: {tasks}"
    );
    let done = events_of(client, "maintenance_done").await;
    assert_eq!(done.len(), 1);
    assert_eq!(done[0]["actor"], "bootstrap");
    assert!(
        done[0]["event"]["held_ms"].as_i64().unwrap() >= 1500,
        "{done:?}"
    );

    // Back to work: the last two runs go, which makes the lens due once more.
    common::wait_until("the laser's four runs", || async {
        laser_dispatches(client).await == 4
    })
    .await;
    common::wait_until("due again after runs three and four", || async {
        events_of(client, "maintenance_due").await.len() == 2
    })
    .await;
    let report = client.ok("/api/v1/verify").await;
    assert_eq!(report["consistent"], true, "{report}");
    // Due again: the machine's page shows the counter against its interval, and that it is
    // due (after verify: the panel's test account is made without an actor who may).
    let panel = common::panel::Panel::sign_in(&plant, "olga", microfab::auth::Role::Operator).await;
    let page = panel.ok("/machines/laser-1").await;
    let row = &page[page
        .find("data-testid=\"maintenance-0\"")
        .expect("a maintenance row")..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(
        row.contains("clean lens") && row.contains("2 / 2") && row.contains("Maintenance due"),
        "{row}"
    );
    plant.shutdown.cancel();
    plant.running.join().await;
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_stops_a_machine_between_runs_on_sqlite() {
    maintenance_stops_a_machine_between_runs("sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_stops_a_machine_between_runs_on_postgres() {
    maintenance_stops_a_machine_between_runs("postgres").await;
}
