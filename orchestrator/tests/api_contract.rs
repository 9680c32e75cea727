//! The API's contract at its edges: body and field limits that agree with the spec docs and
//! answer with the usual JSON error, and the event stream's resume from `Last-Event-ID`.

mod common;

use std::time::Duration;

use common::{BRACKET_SPEC, TestDb, TestPlant, plant_config};
use futures::StreamExt;
use serde_json::{Value, json};

/// The bracket spec with its laser program padded by blank lines to `bytes`, as the CLI sends it.
fn bracket_with_laser_program_of(bytes: usize) -> Value {
    let checked = microfab_job_specs::check_file(std::path::Path::new(BRACKET_SPEC)).unwrap();
    let mut programs = serde_json::Map::new();
    for (path, program) in &checked.programs {
        let mut text = program.text.clone();
        if path.contains("gusset") {
            text.push_str(&"\n".repeat(bytes.saturating_sub(text.len())));
        }
        programs.insert(path.clone(), Value::String(text));
    }
    assert!(
        programs.keys().any(|p| p.contains("gusset")),
        "the bracket has a laser program: {:?}",
        programs.keys()
    );
    json!({
        "spec_toml": std::fs::read_to_string(BRACKET_SPEC).unwrap(),
        "source_name": checked.source_name,
        "programs": programs,
    })
}

/// Events a request could cause: machines report their own state whenever it changes.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn programs_up_to_the_documented_limit_are_taken_and_larger_bodies_get_a_json_413() {
    let db = TestDb::sqlite().await;
    let plant = TestPlant::start(&db, &plant_config(0.001, 0.0)).await;
    let client = &plant.client;

    // Real print G-code runs to tens of megabytes: more than the old 2 MiB body and 20 MiB
    // program limits.
    let large = bracket_with_laser_program_of(24 * 1024 * 1024);
    let (status, body) = client.post("/api/v1/orders", large).await;
    assert_eq!(status, 201, "{body:.300}");

    let events = client.event_count().await;
    let over = microfab::api::MAX_SUBMISSION_BYTES + 1;
    let response = client
        .request(reqwest::Method::POST, "/api/v1/orders")
        .header("content-type", "application/json")
        .body(vec![b' '; over])
        .send()
        .await
        .expect("the server answers before or after reading the body, never breaks the pipe");
    assert_eq!(response.status(), 413);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["error"]["code"], "too_large", "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!(
            "limit of {} bytes",
            microfab::api::MAX_SUBMISSION_BYTES
        )) && message.contains("64 MiB each"),
        "{message}"
    );

    // Every other request has a small body limit, answered the same way.
    let response = client
        .request(
            reqwest::Method::POST,
            "/api/v1/materials/ply6@common/adjust",
        )
        .json(&json!({ "delta": 1, "reason": "x".repeat(100_000) }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let answer: Value = response.json().await.unwrap();
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("limit of 65536 bytes"),
        "{answer}"
    );
    assert_eq!(
        client.event_count().await,
        events,
        "refusals change nothing"
    );
    plant.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn free_text_fields_over_their_limits_are_refused_naming_the_field() {
    let db = TestDb::sqlite().await;
    let plant = TestPlant::start(&db, &plant_config(0.001, 0.0)).await;
    let client = &plant.client;
    let order = client.submit_file(BRACKET_SPEC).await;
    let id = order["id"].as_str().unwrap();

    let long_reason = "r".repeat(microfab::api::MAX_REASON_CHARS + 1);
    let long_label = "l".repeat(microfab::api::MAX_LABEL_CHARS + 1);
    let cases = [
        (
            format!("/api/v1/orders/{id}/reject"),
            json!({ "reason": long_reason }),
            "reason",
        ),
        (
            format!("/api/v1/orders/{id}/cancel"),
            json!({ "reason": long_reason }),
            "reason",
        ),
        (
            "/api/v1/materials/ply6@common/adjust".into(),
            json!({ "delta": 1, "reason": long_reason }),
            "reason",
        ),
        (
            "/api/v1/materials/ply6@common/restock".into(),
            json!({ "amount": 1, "lot": long_label }),
            "lot",
        ),
        (
            "/api/v1/machines/laser-1/maintenance".into(),
            json!({ "on": true, "reason": long_reason }),
            "reason",
        ),
        (
            "/api/v1/jobs/1/resolve".into(),
            json!({ "good": 0, "reason": long_reason }),
            "reason",
        ),
    ];
    let events = client.event_count().await;
    for (path, body, field) in cases {
        let (status, answer) = client.post(&path, body).await;
        assert_eq!(status, 422, "{path}: {answer:.300}");
        assert_eq!(answer["error"]["details"][0]["field"], field, "{path}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains("the limit is"),
            "{path}: {answer:.300}"
        );
    }
    // The submission's own labels.
    let mut submission = bracket_with_laser_program_of(4096);
    submission["submission_key"] = json!(long_label);
    let (status, answer) = client.post("/api/v1/orders", submission).await;
    assert_eq!(status, 422, "{answer:.300}");
    assert_eq!(answer["error"]["details"][0]["field"], "submission_key");

    assert_eq!(
        client.event_count().await,
        events,
        "refusals change nothing"
    );
    assert_eq!(
        client.ok(&format!("/api/v1/orders/{id}")).await["state"],
        "submitted"
    );
    // At the limit is fine.
    let (status, answer) = client
        .post(
            &format!("/api/v1/orders/{id}/reject"),
            json!({ "reason": "r".repeat(microfab::api::MAX_REASON_CHARS) }),
        )
        .await;
    assert_eq!(status, 200, "{answer:.300}");
    plant.shutdown.cancel();
}

/// Reads SSE messages until `count` ids have arrived; returns them.
async fn first_ids(response: reqwest::Response, count: usize) -> Vec<i64> {
    let mut stream = response.bytes_stream();
    let mut text = String::new();
    loop {
        let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
        let ids: Vec<i64> = complete
            .lines()
            .filter_map(|l| l.strip_prefix("id:"))
            .map(|v| v.trim().parse().unwrap())
            .collect();
        if ids.len() >= count {
            return ids;
        }
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("the log is replayed")
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_resumes_from_last_event_id_before_after() {
    let db = TestDb::sqlite().await;
    let plant = TestPlant::start(&db, &plant_config(0.001, 0.0)).await;
    let client = &plant.client;
    client.submit_file(BRACKET_SPEC).await;
    client.submit_file(BRACKET_SPEC).await;
    client.submit_file(BRACKET_SPEC).await;
    assert!(client.event_count().await >= 3);
    let url = "/api/v1/events?after=0";

    // A browser's EventSource reconnects to the URL it was given, `?after=` and all, and says
    // where it got to in `Last-Event-ID`: that is where the stream goes on.
    let response = client
        .request(reqwest::Method::GET, url)
        .header("last-event-id", "2")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(first_ids(response, 1).await[0], 3);

    // Without the header, `after` says where to start.
    let response = client
        .request(reqwest::Method::GET, url)
        .send()
        .await
        .unwrap();
    assert_eq!(first_ids(response, 1).await[0], 1);

    // An EventSource that has seen no event sends no header, never an empty one.
    for bad in ["abc", "-1", "3.5", "7 8", ""] {
        let response = client
            .request(reqwest::Method::GET, url)
            .header("last-event-id", bad)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "Last-Event-ID {bad:?}");
        let answer: Value = response.json().await.unwrap();
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains("Last-Event-ID"),
            "{answer}"
        );
    }
    plant.shutdown.cancel();
}

#[tokio::test]
async fn the_cli_refuses_a_program_over_the_limit_before_sending_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("programs")).unwrap();
    let program = std::fs::File::create(dir.path().join("programs/big.nc")).unwrap();
    program
        .set_len(microfab_job_specs::MAX_PROGRAM_BYTES + 1)
        .unwrap();
    let spec = std::fs::read_to_string(BRACKET_SPEC)
        .unwrap()
        .replace("programs/bracket-gussets.nc", "programs/big.nc");
    std::fs::copy(
        std::path::Path::new(BRACKET_SPEC)
            .parent()
            .unwrap()
            .join("programs/bracket-bar.nc"),
        dir.path().join("programs/bracket-bar.nc"),
    )
    .unwrap();
    std::fs::write(dir.path().join("big.toml"), spec).unwrap();
    // A listener that must see no connection: the CLI refuses before sending anything.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_microfab"))
        .args(["submit", "--server"])
        .arg(format!("http://{}", listener.local_addr().unwrap()))
        .arg(dir.path().join("big.toml"))
        .output()
        .await
        .unwrap();
    assert_eq!(
        listener.accept().map_err(|e| e.kind()).err(),
        Some(std::io::ErrorKind::WouldBlock),
        "nothing was sent"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("programs/big.nc") && stderr.contains("the limit is 67108864 bytes"),
        "{stderr}"
    );
}
