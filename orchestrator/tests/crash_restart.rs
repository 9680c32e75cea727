//! SIGKILL the real `microfab serve` process at several points of a batch and restart it on
//! the same database. The order completes with no unit lost or counted twice and stock exact.
//! Runs the operator's part too: interrupted runs (their outcome is unknown after a crash) are
//! resolved as scrap through the API, and the plant replaces them.

mod common;

use std::time::Duration;

use common::{BRACKET_SPEC, TestDb, assert_stock_exact, plant_config, spawn_server, write_config};

async fn killed_and_restarted(kind: &str) {
    let db = TestDb::of(kind).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &plant_config(6000.0, 0.03));
    let (mut server, mut client) = spawn_server(&config, &db.url).await;
    let before = client.stock().await;
    let id = client.submit_file(BRACKET_SPEC).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, body) = client
        .post(
            &format!("/api/v1/orders/{id}/approve"),
            serde_json::Value::Null,
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let mut kills = 0;
    let mut interrupted_total = 0;
    let pauses = [700u64, 1100, 400, 1500, 900, 300];
    loop {
        let order = client.ok(&format!("/api/v1/orders/{id}")).await;
        if order["state"] == "completed" {
            break;
        }
        if kills < pauses.len() {
            tokio::time::sleep(Duration::from_millis(pauses[kills])).await;
            server.start_kill().unwrap();
            server.wait().await.unwrap();
            kills += 1;
            (server, client) = spawn_server(&config, &db.url).await;
            // The operator settles what the crash interrupted: unknown pieces are scrap.
            let interrupted = client.ok("/api/v1/jobs?state=interrupted").await;
            for job in interrupted.as_array().unwrap() {
                interrupted_total += 1;
                let (status, body) = client
                    .post(
                        &format!("/api/v1/jobs/{}/resolve", job["id"]),
                        serde_json::json!({ "good": 0, "reason": "crash: pieces discarded" }),
                    )
                    .await;
                assert_eq!(status, 200, "{body}");
            }
        } else {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    assert!(
        kills >= 3,
        "the batch ended before the test killed the server {kills} times"
    );
    let order = client.ok(&format!("/api/v1/orders/{id}")).await;
    assert_eq!(order["good"], 200, "{order}");
    assert_eq!(order["remaining"], 0);

    let units = client.ok(&format!("/api/v1/orders/{id}/units")).await;
    let units = units.as_array().unwrap();
    assert_eq!(
        units
            .iter()
            .filter(|u| u["step"] == "assembly" && u["result"] == "good")
            .count(),
        200,
        "no finished unit lost or doubled"
    );
    assert_eq!(
        units.iter().filter(|u| u["result"] == "scrapped").count() as i64,
        order["scrapped"].as_i64().unwrap()
    );
    let mut unit_ids: Vec<i64> = units.iter().map(|u| u["id"].as_i64().unwrap()).collect();
    unit_ids.dedup();
    assert_eq!(unit_ids.len(), units.len());

    let jobs = client.ok(&format!("/api/v1/jobs?order={id}")).await;
    for job in jobs.as_array().unwrap() {
        let recorded = units.iter().filter(|u| u["job_id"] == job["id"]).count() as i64;
        let expected = if job["state"] == "done" || job["state"] == "failed" {
            job["units"].as_i64().unwrap()
        } else {
            0
        };
        assert_eq!(recorded, expected, "units recorded for job {job}");
    }
    assert_stock_exact(&client, &before, &jobs, |j| {
        j["state"] == "done" || j["state"] == "failed"
    })
    .await;
    let report = client.ok("/api/v1/verify").await;
    assert_eq!(report["consistent"], true, "{report}");
    eprintln!(
        "{kind}: {kills} kills, {interrupted_total} runs interrupted and resolved, {} pieces scrapped",
        order["scrapped"]
    );
    server.start_kill().unwrap();
    server.wait().await.unwrap();
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_survives_sigkill() {
    killed_and_restarted("sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_survives_sigkill() {
    killed_and_restarted("postgres").await;
}
