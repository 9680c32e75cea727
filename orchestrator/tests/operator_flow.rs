//! The operator's side: manual stations finish when the operator confirms, a finished unit found
//! bad is scrapped (the order reopens, the unit is remade), and the event stream replays the log
//! and then follows it live.

mod common;

use std::time::Duration;

use common::{Client, TestDb, TestPlant, plant_config};
use futures::StreamExt;

fn small_bracket(dir: &std::path::Path, quantity: u32) -> String {
    common::bracket_spec_in(dir, quantity, |text| text)
        .display()
        .to_string()
}

/// Confirm every run at a manual station until the order is complete.
async fn confirm_until_complete(client: &Client, order_id: &str) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    // A confirmed run shows `running` until the station's report is recorded: confirm it once.
    let mut confirmed = std::collections::HashSet::new();
    loop {
        let order = client.ok(&format!("/api/v1/orders/{order_id}")).await;
        if order["state"] == "completed" {
            return order;
        }
        for job in client
            .ok(&format!("/api/v1/jobs?order={order_id}&state=running"))
            .await
            .as_array()
            .unwrap()
        {
            if job["machine_id"].as_str().unwrap().starts_with("assembly")
                && confirmed.insert(job["id"].as_i64().unwrap())
            {
                let (status, body) = client
                    .post(
                        &format!("/api/v1/jobs/{}/confirm", job["id"]),
                        serde_json::Value::Null,
                    )
                    .await;
                assert_eq!(status, 200, "{body}");
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "order never completed: {order}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_confirmation_unit_scrap_and_the_event_stream() {
    let db = TestDb::sqlite().await;
    let dir = tempfile::tempdir().unwrap();
    let config = plant_config(20_000.0, 0.0).replace(
        "capabilities = [\"manual:assembly\"]\nenvelope_mm = [2000, 1000, 1000]\ndriver = { kind = \"sim\"",
        "capabilities = [\"manual:assembly\"]\nenvelope_mm = [2000, 1000, 1000]\ndriver = { kind = \"manual\" }\n#",
    );
    let plant = TestPlant::start(&db, &config).await;
    let client = &plant.client;
    assert!(
        client
            .ok("/api/v1/machines")
            .await
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["driver"] == "manual")
    );

    // Follow the live stream from the start.
    let response = client
        .request(reqwest::Method::GET, "/api/v1/events?after=0")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut stream = response.bytes_stream();

    let order = client.submit_file(&small_bracket(dir.path(), 50)).await;
    let id = order["id"].as_str().unwrap().to_string();
    client
        .post(
            &format!("/api/v1/orders/{id}/approve"),
            serde_json::Value::Null,
        )
        .await;
    let done = confirm_until_complete(client, &id).await;
    assert_eq!(done["good"], 50);

    // A finished bracket fails inspection: scrapped with a reason, the order reopens and remakes it.
    let units = client.ok(&format!("/api/v1/orders/{id}/units")).await;
    let unit = units
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["step"] == "assembly" && u["result"] == "good")
        .unwrap()
        .clone();
    let (status, body) = client
        .post(
            &format!("/api/v1/units/{}/scrap", unit["id"]),
            serde_json::json!({ "reason": "weld crack at inspection" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "in_progress");
    assert_eq!(body["good"], 49);
    let (status, body) = client
        .post(
            &format!("/api/v1/units/{}/scrap", unit["id"]),
            serde_json::json!({ "reason": "again" }),
        )
        .await;
    assert_eq!(status, 409, "a unit is scrapped once: {body}");
    let done = confirm_until_complete(client, &id).await;
    assert_eq!(done["good"], 50);
    assert_eq!(done["scrapped"], 1);
    let units = client.ok(&format!("/api/v1/orders/{id}/units")).await;
    let scrapped: Vec<_> = units
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["result"] == "scrapped")
        .collect();
    assert_eq!(scrapped.len(), 1);
    assert_eq!(scrapped[0]["reason"], "weld crack at inspection");
    assert_eq!(client.ok("/api/v1/verify").await["consistent"], true);

    // The stream carried the log from the first event on, in order.
    let log_length = client
        .ok("/api/v1/events/log?limit=10000")
        .await
        .as_array()
        .unwrap()
        .len();
    let mut text = String::new();
    let mut ids: Vec<i64> = Vec::new();
    while ids.len() < log_length {
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("events keep coming")
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
        // Only whole lines: a chunk may end in the middle of one.
        let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
        ids = complete
            .lines()
            .filter_map(|l| l.strip_prefix("id: ").or_else(|| l.strip_prefix("id:")))
            .map(|v| v.trim().parse().unwrap())
            .collect();
    }
    assert_eq!(ids, (1..=log_length as i64).collect::<Vec<_>>());
    assert!(text.contains("event: unit_scrapped"), "{text:.300}");
    plant.shutdown.cancel();
}
