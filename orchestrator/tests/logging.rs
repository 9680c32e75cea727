//! The logs of the real `microfab serve` process: `--log-format json` gives one JSON object per
//! stderr line, and every run's lines carry its `job`, `order` and `machine` as span fields, in
//! JSON and in the human format alike. A bad format is refused by the command line.

mod common;

use std::process::Stdio;
use std::sync::{Arc, Mutex};

use common::{TestDb, bracket_spec_in, plant_config, spawn_server_with, wait_until, write_config};
use serde_json::Value;
use tokio::io::AsyncBufReadExt;

/// A run of the plant as the API reports it when its order has completed.
struct Run {
    job: i64,
    order: String,
    machine: String,
}

/// Serve with `format` and `RUST_LOG=microfab=debug`, make a small order of brackets to the
/// end, stop the server; its stderr lines and the order's runs.
async fn serve_an_order(format: &str) -> (Vec<String>, Vec<Run>) {
    let db = TestDb::sqlite().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &plant_config(6000.0, 0.0));
    let (mut server, client) = spawn_server_with(&config, &db.url, |command| {
        command
            .args(["--log-format", format])
            .env("RUST_LOG", "microfab=debug")
            .stderr(Stdio::piped());
    })
    .await;
    // Read stderr as it comes: a full pipe would stall the server.
    let lines = Arc::new(Mutex::new(Vec::new()));
    let mut stderr = tokio::io::BufReader::new(server.stderr.take().unwrap()).lines();
    let reader = tokio::spawn({
        let lines = lines.clone();
        async move {
            while let Ok(Some(line)) = stderr.next_line().await {
                lines.lock().unwrap().push(line);
            }
        }
    });

    let spec = bracket_spec_in(&dir.path().join("spec"), 6, |text| text);
    let order = client.submit_and_approve(spec.to_str().unwrap()).await;
    wait_until("the order completed", || async {
        client.ok(&format!("/api/v1/orders/{order}")).await["state"] == "completed"
    })
    .await;
    let jobs = client.ok(&format!("/api/v1/jobs?order={order}")).await;
    let runs: Vec<Run> = jobs
        .as_array()
        .unwrap()
        .iter()
        .map(|job| Run {
            job: job["id"].as_i64().unwrap(),
            order: job["order_id"].as_str().unwrap().to_string(),
            machine: job["machine_id"].as_str().unwrap().to_string(),
        })
        .collect();
    assert!(!runs.is_empty());

    server.start_kill().unwrap();
    server.wait().await.unwrap();
    reader.await.unwrap();
    let lines = lines.lock().unwrap().clone();
    (lines, runs)
}

/// The fields of every span a JSON log line was in, innermost last.
fn span_fields(line: &Value) -> Vec<&serde_json::Map<String, Value>> {
    line["spans"]
        .as_array()
        .map(|spans| spans.iter().filter_map(Value::as_object).collect())
        .unwrap_or_default()
}

/// Whether a JSON line's spans name this run: its job, its order and its machine.
fn names_run(line: &Value, run: &Run) -> bool {
    let spans = span_fields(line);
    let has = |key: &str, value: &Value| spans.iter().any(|s| s.get(key) == Some(value));
    has("job", &Value::from(run.job))
        && has("order", &Value::from(run.order.as_str()))
        && has("machine", &Value::from(run.machine.as_str()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_json_and_carry_each_runs_job_order_and_machine() {
    let (lines, runs) = serve_an_order("json").await;
    assert!(!lines.is_empty(), "serve logged nothing at debug");
    let parsed: Vec<Value> = lines
        .iter()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("a stderr line is not JSON ({e}): {line}"))
        })
        .collect();
    for line in &parsed {
        assert!(
            line["timestamp"].is_string() && line["level"].is_string(),
            "{line}"
        );
    }
    for run in &runs {
        for message in ["run dispatched", "run finished"] {
            assert!(
                parsed
                    .iter()
                    .any(|l| l["fields"]["message"] == message && names_run(l, run)),
                "no '{message}' line with job {}, order {} and machine {} in its spans",
                run.job,
                run.order,
                run.machine
            );
        }
    }
    let completed = parsed
        .iter()
        .find(|l| l["fields"]["message"] == "order completed")
        .expect("an 'order completed' line");
    assert!(
        span_fields(completed)
            .iter()
            .any(|s| s.get("order") == Some(&Value::from(runs[0].order.as_str()))),
        "{completed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn human_logs_carry_each_runs_job_order_and_machine() {
    let (lines, runs) = serve_an_order("human").await;
    assert!(
        lines.iter().all(|l| !l.contains('\u{1b}')),
        "no colours when stderr is not a terminal"
    );
    for run in &runs {
        let fields = [
            format!("job={}", run.job),
            format!("order={}", run.order),
            format!("machine={}", run.machine),
        ];
        for message in ["run dispatched", "run finished"] {
            assert!(
                lines.iter().any(|l| {
                    let words: Vec<&str> = l.split([' ', '{', '}', ':']).collect();
                    l.contains(message) && fields.iter().all(|f| words.contains(&f.as_str()))
                }),
                "no '{message}' line with {fields:?}"
            );
        }
    }
}

#[tokio::test]
async fn an_unknown_log_format_is_refused_with_the_valid_ones() {
    for (args, env) in [
        (vec!["--log-format", "xml", "spec", "schema"], None),
        (vec!["spec", "schema"], Some("xml")),
    ] {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_microfab"));
        command.args(&args);
        if let Some(value) = env {
            command.env("MICROFAB_LOG_FORMAT", value);
        }
        let output = command.output().await.unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("invalid value 'xml' for '--log-format <LOG_FORMAT>'")
                && stderr.contains("[possible values: human, json]"),
            "{stderr}"
        );
        assert!(output.stdout.is_empty());
    }
}

#[tokio::test]
async fn a_failed_command_in_json_logs_is_a_json_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing-here.db");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_microfab"))
        .args(["--log-format", "json", "verify", "--database"])
        .arg(format!("sqlite://{}", missing.display()))
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let failure = lines
        .iter()
        .find(|l| l["fields"]["message"] == "the command failed")
        .unwrap_or_else(|| panic!("no failure line in {stderr}"));
    assert_eq!(failure["level"], "ERROR");
    assert!(
        failure["fields"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("nothing-here.db")),
        "{failure}"
    );
}
