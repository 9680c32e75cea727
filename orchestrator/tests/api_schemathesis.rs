//! The OpenAPI document is the contract: schemathesis (PyPI) generates requests from it against a
//! live `microfab serve` and fails on any 5xx, any status code the document does not list, any
//! response that does not match its schema, any schema-valid request refused and any
//! schema-violating one accepted. Settings: `tests/schemathesis/schemathesis.toml`.
//!
//! Two passes: first only schema-violating requests (every one must be refused), with the plant's
//! orders, stock, jobs and event count compared before and after, so a refused request that
//! changed something fails; then every check and every phase, stateful included.

mod common;

use std::path::Path;

use common::{BRACKET_SPEC, Client, TestDb, plant_config};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

const SCHEMATHESIS: &str = "schemathesis";
const INSTALL: &str = "pip install schemathesis==4.32.5";
/// Test cases per operation and phase: enough to cover every route's shapes, and a few minutes
/// on two cores.
const EXAMPLES_PER_OPERATION: &str = "25";

async fn serve(dir: &Path, db: &TestDb) -> (Child, Client) {
    // Machines far too slow to finish anything during the test: state changes only on request.
    let config_path = common::write_config(dir, &plant_config(0.001, 0.0));
    common::spawn_server(&config_path, &db.url).await
}

/// What a refused request must leave as it was. Machines report their own state whenever it
/// changes: those events are not counted.
async fn snapshot(client: &Client) -> Value {
    let events = client.ok("/api/v1/events/log?limit=10000").await;
    json!({
        "orders": client.ok("/api/v1/orders").await,
        "materials": client.ok("/api/v1/materials").await,
        "jobs": client.ok("/api/v1/jobs").await,
        "events": events
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["event"]["kind"] != "machine_state")
            .count(),
    })
}

/// Runs schemathesis against `base` with `extra` options; returns its output and the number of
/// test cases it generated.
async fn schemathesis(base: &str, extra: &[&str]) -> (bool, String, u64) {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis/schemathesis.toml");
    // Run where hypothesis's example database is thrown away after: each run starts afresh.
    let scratch = tempfile::tempdir().unwrap();
    let output = Command::new(SCHEMATHESIS)
        .current_dir(scratch.path())
        .arg("--config-file")
        .arg(&config)
        .args(["--no-color", "run"])
        .arg(format!("{base}/api/v1/openapi.json"))
        .args(["--url", base, "--checks", "all", "--seed", "20261204"])
        // The bootstrap admin's token, for the document and every request (the checks that
        // leave it out expect the documented 401).
        .arg("--header")
        .arg(format!("Authorization: Bearer {}", common::ADMIN_TOKEN))
        .args(["--max-examples", EXAMPLES_PER_OPERATION])
        // One worker: Python 3.11's parser is not thread-safe (hypothesis then fails with
        // "AST constructor recursion depth mismatch", a runtime error that is no API failure).
        .args(["--workers", "1"])
        .args(extra)
        .output()
        .await
        .unwrap_or_else(|e| panic!("{SCHEMATHESIS} did not start ({e}); install it: {INSTALL}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // The summary's "N generated, ..." (a warning may say "generated" too).
    let generated = text
        .lines()
        .find_map(|l| l.trim().split_once(" generated")?.0.parse().ok())
        .unwrap_or(0);
    (output.status.success(), text, generated)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_api_keeps_its_openapi_contract() {
    let version = Command::new(SCHEMATHESIS).arg("--version").output().await;
    assert!(
        version.as_ref().is_ok_and(|o| o.status.success()),
        "schemathesis is needed for the API contract test; install it: {INSTALL}"
    );
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::sqlite().await;
    let (_server, client) = serve(dir.path(), &db).await;
    // Something for generated ids to find: a submitted order, its steps and programs.
    client.submit_file(BRACKET_SPEC).await;

    let started = std::time::Instant::now();
    let before = snapshot(&client).await;
    let (passed, output, refused_cases) = schemathesis(
        &client.base,
        &["--mode", "negative", "--phases", "coverage,fuzzing"],
    )
    .await;
    assert!(passed, "schema-violating requests:\n{output}");
    assert!(refused_cases > 0, "no test case ran:\n{output}");
    assert_eq!(
        snapshot(&client).await,
        before,
        "schema-violating requests were all refused, and must have changed nothing"
    );

    let (passed, output, cases) = schemathesis(
        &client.base,
        &["--phases", "examples,coverage,fuzzing,stateful"],
    )
    .await;
    assert!(passed, "the API breaks its OpenAPI contract:\n{output}");
    assert!(
        output.contains("Stateful") && cases > refused_cases,
        "every phase ran:\n{output}"
    );
    let phases = output
        .split_once("Test Phases:")
        .map_or("", |(_, rest)| rest.split("\n\n").next().unwrap_or(""));
    eprintln!(
        "schemathesis: {refused_cases} schema-violating test cases, then {cases} of every kind, in {:.0} s; phases:{phases}",
        started.elapsed().as_secs_f64()
    );
    let verify = client.ok("/api/v1/verify").await;
    assert_eq!(verify["consistent"], true, "{verify}");
}
