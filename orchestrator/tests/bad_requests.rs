//! Malformed requests get a 4xx JSON error that says what and where, and change nothing:
//! the orders, stock, machines and event log are the same before and after.

mod common;

use common::{BRACKET_SPEC, Client, TestDb, TestPlant, plant_config, wait_until};
use serde_json::{Value, json};

async fn snapshot(client: &Client) -> Value {
    json!({
        "orders": client.ok("/api/v1/orders").await,
        "materials": client.ok("/api/v1/materials").await,
        "jobs": client.ok("/api/v1/jobs").await,
        "events": client.ok("/api/v1/events/log?limit=10000").await.as_array().unwrap().len(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_are_refused_and_change_nothing() {
    let db = TestDb::sqlite().await;
    // Machines far too slow to finish anything during the test, so state only changes on request.
    let TestPlant {
        client,
        shutdown,
        running: _running,
    } = TestPlant::start(&db, &plant_config(0.001, 0.0)).await;
    let submitted = client.submit_file(BRACKET_SPEC).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let approved = client.submit_file(BRACKET_SPEC).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    client
        .post(&format!("/api/v1/orders/{approved}/approve"), Value::Null)
        .await;
    // The approved order's first runs (gussets on the lasers, bars on the CNC machines) go
    // out and start; after that nothing moves at this pace unless a request asks.
    wait_until(
        "every laser and CNC machine runs the approved order",
        || async {
            let machines = client.ok("/api/v1/machines").await;
            let cutting: Vec<&Value> = machines
                .as_array()
                .unwrap()
                .iter()
                .filter(|m| !m["id"].as_str().unwrap().starts_with("assembly"))
                .collect();
            let running = client
                .ok(&format!("/api/v1/jobs?order={approved}&state=running"))
                .await;
            cutting.iter().all(|m| m["state"] == "busy")
                && running.as_array().unwrap().len() == cutting.len()
        },
    )
    .await;

    let spec = std::fs::read_to_string(BRACKET_SPEC).unwrap();
    // (method, path, content type, body, expected status, text the error must contain)
    let cases: Vec<(&str, String, &str, String, u16, &str)> = vec![
        (
            "POST",
            "/api/v1/orders".into(),
            "application/json",
            "{not json".into(),
            400,
            "line 1",
        ),
        (
            "POST",
            "/api/v1/orders".into(),
            "application/json",
            json!({ "spec_toml": spec, "programs": {} }).to_string(),
            422,
            "programs/",
        ),
        (
            "POST",
            "/api/v1/orders".into(),
            "application/json",
            json!({ "spec_toml": spec.replace("quantity = 200", "quantity = 0") }).to_string(),
            422,
            "quantity",
        ),
        (
            "POST",
            "/api/v1/orders".into(),
            "application/json",
            json!({ "spec_toml": "x", "spec": {} }).to_string(),
            422,
            "exactly one",
        ),
        (
            "POST",
            "/api/v1/orders".into(),
            "application/json",
            json!({ "spec_tom": spec }).to_string(),
            400,
            "unknown field",
        ),
        (
            "POST",
            "/api/v1/orders".into(),
            "application/toml",
            "spec_version = 1\nproduct = ".into(),
            422,
            "spec.toml:2",
        ),
        (
            "POST",
            "/api/v1/orders".into(),
            "image/png",
            "x".into(),
            415,
            "application/toml",
        ),
        (
            "POST",
            format!("/api/v1/orders/{approved}/approve"),
            "application/json",
            "{}".into(),
            409,
            "only a submitted order",
        ),
        (
            "POST",
            "/api/v1/orders/ord-999999/approve".into(),
            "application/json",
            "{}".into(),
            404,
            "ord-999999",
        ),
        (
            "POST",
            format!("/api/v1/orders/{submitted}/reject"),
            "application/json",
            json!({ "reason": "  " }).to_string(),
            422,
            "reason",
        ),
        (
            "POST",
            format!("/api/v1/orders/{submitted}/reject"),
            "application/json",
            json!({ "why": "x" }).to_string(),
            422,
            "unknown field",
        ),
        (
            "POST",
            format!("/api/v1/orders/{submitted}/cancel"),
            "application/json",
            "[]".into(),
            422,
            "expected struct Reason",
        ),
        (
            "POST",
            "/api/v1/materials/ply6@common/restock".into(),
            "application/json",
            json!({ "amount": -5 }).to_string(),
            422,
            "negative",
        ),
        (
            "POST",
            "/api/v1/materials/ply6@common/restock".into(),
            "application/json",
            json!({ "amount": 0.0001 }).to_string(),
            422,
            "three decimals",
        ),
        (
            "POST",
            "/api/v1/materials/nope/restock".into(),
            "application/json",
            json!({ "amount": 5 }).to_string(),
            404,
            "nope",
        ),
        (
            "POST",
            "/api/v1/materials/ply6@common/adjust".into(),
            "application/json",
            json!({ "delta": -100000, "reason": "count" }).to_string(),
            409,
            "below",
        ),
        (
            "POST",
            "/api/v1/materials/ply6@common/adjust".into(),
            "application/json",
            json!({ "delta": -1, "reason": "" }).to_string(),
            422,
            "reason",
        ),
        (
            "POST",
            "/api/v1/machines/laser-9/pause".into(),
            "application/json",
            "{}".into(),
            404,
            "laser-9",
        ),
        (
            "POST",
            "/api/v1/machines/laser-1/maintenance".into(),
            "application/json",
            json!({ "on": "yes" }).to_string(),
            422,
            "invalid type",
        ),
        (
            "POST",
            "/api/v1/jobs/1/resolve".into(),
            "application/json",
            json!({ "good": 1, "reason": "x" }).to_string(),
            409,
            "only an interrupted job",
        ),
        (
            "POST",
            "/api/v1/jobs/abc/resolve".into(),
            "application/json",
            json!({ "good": 1, "reason": "x" }).to_string(),
            400,
            "abc",
        ),
        (
            "POST",
            "/api/v1/units/424242/scrap".into(),
            "application/json",
            json!({ "reason": "bent" }).to_string(),
            404,
            "unit 424242",
        ),
        (
            "GET",
            "/api/v1/jobs?colour=red".into(),
            "",
            String::new(),
            400,
            "unknown field",
        ),
        (
            "GET",
            "/api/v1/nothing-here".into(),
            "",
            String::new(),
            404,
            "no such endpoint",
        ),
    ];
    for (method, path, content_type, body, expected, needle) in cases {
        let before = snapshot(&client).await;
        let (status, answer) = if method == "GET" {
            client.get(&path).await
        } else {
            client.post_raw(&path, content_type, &body).await
        };
        assert_eq!(status, expected, "{method} {path} {body:.80}: {answer}");
        let message = answer["error"].to_string();
        assert!(
            message.contains(needle),
            "{method} {path}: error should mention {needle:?}: {answer}"
        );
        assert_eq!(
            snapshot(&client).await,
            before,
            "{method} {path} changed state"
        );
    }
    let openapi = client.ok("/api/v1/openapi.json").await;
    for path in [
        "/api/v1/orders",
        "/api/v1/orders/{id}/approve",
        "/api/v1/machines/{id}/maintenance",
        "/api/v1/units/{id}/scrap",
        "/api/v1/events",
        "/api/v1/plan",
    ] {
        assert!(
            openapi["paths"].get(path).is_some(),
            "OpenAPI documents {path}"
        );
    }
    shutdown.cancel();
}
