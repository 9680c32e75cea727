//! Through the API, on the simulated fleet: a 200-unit, 3-step order completes with exactly
//! 200 good units, 3 % scrap is replaced, stock drops by exactly what the runs drew, and the
//! event log replays to the same state. On SQLite and on PostgreSQL.

mod common;

use std::time::Duration;

use common::{
    BRACKET_SPEC, Client, TestDb, TestPlant, assert_stock_exact, bracket_draws, plant_config,
    wait_until,
};
use tokio_util::sync::CancellationToken;

async fn start(
    db: &TestDb,
    time_scale: f64,
    scrap_rate: f64,
) -> (Client, CancellationToken, microfab::server::Running) {
    let plant = TestPlant::start(db, &plant_config(time_scale, scrap_rate)).await;
    (plant.client, plant.shutdown, plant.running)
}

async fn wait_for_state(
    client: &Client,
    order_id: &str,
    state: &str,
    limit: Duration,
) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let order = client.ok(&format!("/api/v1/orders/{order_id}")).await;
        if order["state"] == state {
            return order;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "order never became {state}: {order}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn two_hundred_units_with_scrap(kind: &str) {
    let db = TestDb::of(kind).await;
    let (client, shutdown, running) = start(&db, 20_000.0, 0.03).await;
    let before = client.stock().await;
    let order = client.submit_file(BRACKET_SPEC).await;
    let id = order["id"].as_str().unwrap().to_string();
    assert_eq!(order["state"], "submitted");
    assert_eq!(order["quantity"], 200);
    let (status, approved) = client
        .post(
            &format!("/api/v1/orders/{id}/approve"),
            serde_json::Value::Null,
        )
        .await;
    assert_eq!(status, 200, "{approved}");

    // The planner plans the order and the dispatcher follows it (the order's ETA is checked
    // at a pace where the order is still open: `an_open_order_shows_the_plans_eta`).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let plan = client.ok("/api/v1/plan").await;
        if plan["rows"].as_array().is_some_and(|r| !r.is_empty()) {
            assert!(
                plan["rows"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|r| r["order_id"] == id.as_str()),
                "{plan}"
            );
            assert!(
                plan["orders"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|o| o["order_id"] == id.as_str()),
                "{plan}"
            );
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no plan: {plan}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let done = wait_for_state(&client, &id, "completed", Duration::from_secs(120)).await;
    assert_eq!(done["good"], 200);
    assert_eq!(done["remaining"], 0);
    let scrapped = done["scrapped"].as_i64().unwrap();
    assert!(
        scrapped > 0,
        "3 % scrap over 600 pieces should scrap some: {done}"
    );

    // Every finished unit is recorded once; scrap at any step was replaced.
    let units = client.ok(&format!("/api/v1/orders/{id}/units")).await;
    let units = units.as_array().unwrap();
    let good_final = units
        .iter()
        .filter(|u| u["step"] == "assembly" && u["result"] == "good")
        .count();
    assert_eq!(good_final, 200);
    assert_eq!(
        units.iter().filter(|u| u["result"] == "scrapped").count() as i64,
        scrapped
    );
    for step in ["gussets", "bar"] {
        let good = units
            .iter()
            .filter(|u| u["step"] == step && u["result"] == "good")
            .count();
        assert!(good >= 200, "step {step} made only {good} good units");
    }

    // Stock dropped by exactly the runs that drew material.
    let jobs = client.ok(&format!("/api/v1/jobs?order={id}")).await;
    assert_stock_exact(&client, &before, &jobs, |j| {
        j["state"] == "done" || j["state"] == "failed"
    })
    .await;

    let report = client.ok("/api/v1/verify").await;
    assert_eq!(report["consistent"], true, "{report}");
    let plan = client.ok("/api/v1/plan").await;
    assert!(plan["plans_made"].as_u64().unwrap() >= 1, "{plan}");
    assert_eq!(
        plan["plans_refused"], 0,
        "every plan passed the schedule checker"
    );
    shutdown.cancel();
    drop(running);
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_two_hundred_units_with_scrap() {
    two_hundred_units_with_scrap("sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_hundred_units_with_scrap() {
    two_hundred_units_with_scrap("postgres").await;
}

/// The ETA an open order shows is the current plan's, in the order and in the list of orders.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_order_shows_the_plans_eta() {
    let db = TestDb::sqlite().await;
    // Slow enough that the order stays open for the whole test.
    let (client, shutdown, _running) = start(&db, 20.0, 0.0).await;
    let id = client.submit_file(BRACKET_SPEC).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        client.ok(&format!("/api/v1/orders/{id}")).await["eta"],
        serde_json::Value::Null,
        "a submitted order is not planned"
    );
    client
        .post(
            &format!("/api/v1/orders/{id}/approve"),
            serde_json::Value::Null,
        )
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let planned = client.ok("/api/v1/plan").await["orders"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["order_id"] == id.as_str())
            .map(|o| o["eta"].clone());
        let order = client.ok(&format!("/api/v1/orders/{id}")).await;
        let listed = client.ok("/api/v1/orders").await[0].clone();
        assert!(
            order["state"] == "approved" || order["state"] == "in_progress",
            "{order}"
        );
        if planned.is_some()
            && planned == Some(order["eta"].clone())
            && listed["eta"] == order["eta"]
        {
            assert!(order["eta"].is_string(), "{order}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the order never showed the plan's ETA: plan {planned:?}, order {order}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    shutdown.cancel();
}

async fn cancel_releases_unused_material(kind: &str) {
    let db = TestDb::of(kind).await;
    let (client, shutdown, _running) = start(&db, 200.0, 0.0).await;
    let before = client.stock().await;
    let id = client.submit_file(BRACKET_SPEC).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    client
        .post(
            &format!("/api/v1/orders/{id}/approve"),
            serde_json::Value::Null,
        )
        .await;
    let materials = client.ok("/api/v1/materials").await;
    assert!(
        materials
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["reserved"].as_f64().unwrap() > 0.0)
    );
    wait_until("a run of the order took its material", || async {
        let jobs = client.ok(&format!("/api/v1/jobs?order={id}")).await;
        jobs.as_array()
            .unwrap()
            .iter()
            .any(|j| j["state"] != "planned" && j["state"] != "cancelled")
    })
    .await;
    let body = client.cancel(&id).await;
    assert_eq!(body["state"], "cancelled");
    let jobs = client.ok(&format!("/api/v1/jobs?order={id}")).await;
    let drawn: i64 = bracket_draws()
        .iter()
        .map(|(step, _, _)| {
            jobs.as_array()
                .unwrap()
                .iter()
                .filter(|j| {
                    j["step"] == *step && j["state"] != "cancelled" && j["state"] != "planned"
                })
                .count() as i64
        })
        .sum();
    assert!(drawn > 0, "some runs started before the cancel");
    // Cancel released every reservation; runs that started keep their draw.
    assert_stock_exact(&client, &before, &jobs, |j| {
        j["state"] != "cancelled" && j["state"] != "planned"
    })
    .await;
    let report = client.ok("/api/v1/verify").await;
    assert_eq!(report["consistent"], true, "{report}");
    shutdown.cancel();
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_cancel_releases_unused_material() {
    cancel_releases_unused_material("sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_cancel_releases_unused_material() {
    cancel_releases_unused_material("postgres").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_is_refused_when_entitled_stock_is_short() {
    let db = TestDb::sqlite().await;
    let text = plant_config(100.0, 0.0).replace("on_hand = 80", "on_hand = 10");
    let TestPlant {
        client,
        shutdown,
        running: _running,
    } = TestPlant::start(&db, &text).await;
    let order = client.submit_file(BRACKET_SPEC).await;
    let flags = order["prescreen"].as_array().unwrap();
    assert!(
        flags.iter().any(|f| f
            .as_str()
            .unwrap()
            .contains("material short: aluminium-bar-40x10")),
        "{order}"
    );
    let id = order["id"].as_str().unwrap();
    let (status, body) = client
        .post(
            &format!("/api/v1/orders/{id}/approve"),
            serde_json::Value::Null,
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "material_short");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("aluminium-bar-40x10: needs 33"),
        "{body}"
    );
    assert_eq!(
        client.ok(&format!("/api/v1/orders/{id}")).await["state"],
        "submitted"
    );
    assert!(
        client
            .ok("/api/v1/materials")
            .await
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["reserved"] == 0.0)
    );
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_service_orders_are_served_first() {
    let db = TestDb::sqlite().await;
    // Both orders wait for the lasers; whichever gets a laser first shows in the event log.
    let text = plant_config(2000.0, 0.0);
    let TestPlant {
        client,
        shutdown,
        running: _running,
    } = TestPlant::start(&db, &text).await;
    // Keep every laser busy so both orders queue, then approve standard before public-service.
    for m in ["laser-1", "laser-2"] {
        let (s, b) = client
            .post(
                &format!("/api/v1/machines/{m}/maintenance"),
                serde_json::json!({ "on": true, "reason": "lens cleaning" }),
            )
            .await;
        assert_eq!(s, 200, "{b}");
    }
    let spec = std::fs::read_to_string(BRACKET_SPEC).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let programs = std::path::Path::new(BRACKET_SPEC)
        .parent()
        .unwrap()
        .join("programs");
    std::fs::create_dir(dir.path().join("programs")).unwrap();
    for entry in std::fs::read_dir(&programs).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(
            entry.path(),
            dir.path().join("programs").join(entry.file_name()),
        )
        .unwrap();
    }
    let standard = dir.path().join("standard.toml");
    std::fs::write(
        &standard,
        spec.replace("priority = \"public-service\"", "priority = \"standard\""),
    )
    .unwrap();
    let std_id = client.submit_file(standard.to_str().unwrap()).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let pub_id = client.submit_file(BRACKET_SPEC).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    client
        .post(
            &format!("/api/v1/orders/{std_id}/approve"),
            serde_json::Value::Null,
        )
        .await;
    client
        .post(
            &format!("/api/v1/orders/{pub_id}/approve"),
            serde_json::Value::Null,
        )
        .await;
    for m in ["laser-1", "laser-2"] {
        client
            .post(
                &format!("/api/v1/machines/{m}/maintenance"),
                serde_json::json!({ "on": false }),
            )
            .await;
    }
    let laser_dispatch = |log: &serde_json::Value| {
        log.as_array()
            .unwrap()
            .iter()
            .find(|e| {
                e["event"]["kind"] == "job_dispatched"
                    && e["event"]["machine_id"]
                        .as_str()
                        .unwrap()
                        .starts_with("laser")
            })
            .cloned()
    };
    wait_until("a laser got a run", || async {
        laser_dispatch(&client.ok("/api/v1/events/log?limit=10000").await).is_some()
    })
    .await;
    let first_dispatch =
        laser_dispatch(&client.ok("/api/v1/events/log?limit=10000").await).unwrap();
    assert_eq!(
        first_dispatch["event"]["order_id"],
        pub_id.as_str(),
        "public-service first: {first_dispatch}"
    );
    shutdown.cancel();
}
