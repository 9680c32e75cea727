//! Each machine's live status channel follows its runs as they progress, and the API's machine
//! views show it as `live`.

mod common;

use std::time::Duration;

use common::{BRACKET_SPEC, TestDb, TestPlant, plant_config};
use microfab_drivers::status::ProgressUnit;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_status_follows_a_run_as_it_progresses() {
    let db = TestDb::sqlite().await;
    // A gusset sheet is 840 s of machine time: 2.8 s here.
    let plant = TestPlant::start(&db, &plant_config(300.0, 0.0)).await;
    let client = &plant.client;
    let runtime = &plant.running.runtime;
    assert_eq!(runtime.statuses().len(), 9, "one channel per machine");
    let mut live = runtime.status("laser-1").unwrap();

    let order = client.submit_file(BRACKET_SPEC).await;
    let order_id = order["id"].as_str().unwrap();
    let (status, body) = client
        .post(
            &format!("/api/v1/orders/{order_id}/approve"),
            serde_json::Value::Null,
        )
        .await;
    assert_eq!(status, 200, "{body}");

    // Follow the channel through the laser's first run: it starts, its progress only grows,
    // and it ends.
    let mut first_job = None;
    let mut progress_seen = Vec::new();
    let mut shown_by_the_api = false;
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            live.changed().await.unwrap();
            let now = live.borrow_and_update().clone();
            match (first_job, now.job_id) {
                (None, Some(job)) => first_job = Some(job),
                (Some(first), Some(job)) if job != first => break,
                (Some(_), None) => break,
                _ => {}
            }
            if let Some(progress) = now.progress {
                assert_eq!(progress.unit, ProgressUnit::PerMille);
                assert_eq!(progress.total, 1000);
                progress_seen.push(progress.done);
                if !shown_by_the_api && progress.done > 0 {
                    let view = client.ok("/api/v1/machines/laser-1").await;
                    assert_eq!(view["live"]["job_id"], first_job.unwrap(), "{view}");
                    assert_eq!(view["current_job"], first_job.unwrap(), "{view}");
                    assert_eq!(view["live"]["condition"]["condition"], "busy", "{view}");
                    assert_eq!(view["live"]["progress"]["unit"], "per_mille", "{view}");
                    assert!(view["live"]["updated_ms"].as_i64().unwrap() > 0, "{view}");
                    shown_by_the_api = true;
                }
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the first run never ended: {progress_seen:?}"));

    assert!(shown_by_the_api, "{progress_seen:?}");
    assert!(
        progress_seen.len() >= 3,
        "published while running: {progress_seen:?}"
    );
    assert!(
        progress_seen.windows(2).all(|w| w[0] <= w[1]),
        "{progress_seen:?}"
    );
    assert!(progress_seen.iter().any(|&done| done > 0 && done < 1000));

    let machines = client.ok("/api/v1/machines").await;
    for machine in machines.as_array().unwrap() {
        assert!(machine["live"]["condition"].is_object(), "{machine}");
        assert!(machine["live"]["link"].is_null(), "simulated: {machine}");
    }
    let openapi = client.ok("/api/v1/openapi.json").await;
    for schema in ["LiveMachineView", "MachineStatus", "Progress", "LinkStatus"] {
        assert!(
            openapi["components"]["schemas"][schema].is_object(),
            "{schema}"
        );
    }
    plant.shutdown.cancel();
    plant.running.join().await;
}
