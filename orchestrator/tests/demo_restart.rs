//! `microfab demo` on a database it already used resumes the plant: it does not submit its
//! orders a second time, and every order still completes exactly.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{TestDb, plant_config, write_config};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

fn demo_config(time_scale: f64) -> String {
    let spec = std::fs::canonicalize(common::BRACKET_SPEC).unwrap();
    format!(
        "{}\n[demo]\nspecs = [{:?}]\nprogress_seconds = 0.2\n",
        plant_config(time_scale, 0.02),
        spec.display().to_string()
    )
}

/// Start `microfab demo --exit-when-done`; its stdout comes line by line.
fn spawn_demo(config: &std::path::Path, database: &str) -> (Child, Lines<BufReader<ChildStdout>>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_microfab"))
        .args([
            "demo",
            "--exit-when-done",
            "--listen",
            "127.0.0.1:0",
            "--database",
            database,
            "--config",
        ])
        .arg(config)
        .env("MICROFAB_BOOTSTRAP_TOKEN", common::ADMIN_TOKEN)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    (child, lines)
}

/// Read the demo's lines until one contains `until` (then stop it) or it exits; the demo must
/// get there within two minutes.
async fn read_until(
    child: &mut Child,
    lines: &mut Lines<BufReader<ChildStdout>>,
    until: Option<&str>,
) -> Vec<String> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while let Ok(Some(line)) = tokio::time::timeout_at(deadline, lines.next_line())
        .await
        .unwrap_or_else(|_| panic!("the demo got there in time; it printed {seen:#?}"))
    {
        let stop = until.is_some_and(|u| line.contains(u));
        seen.push(line);
        if stop {
            return seen;
        }
    }
    assert!(child.wait().await.unwrap().success(), "{seen:#?}");
    seen
}

/// Run the demo until it prints a line containing `until` (or exits); returns its output.
async fn run_demo(config: &std::path::Path, database: &str, until: Option<&str>) -> Vec<String> {
    let (mut child, mut lines) = spawn_demo(config, database);
    let seen = read_until(&mut child, &mut lines, until).await;
    child.start_kill().ok();
    child.wait().await.unwrap();
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_demo_resumes_without_submitting_twice() {
    let db = TestDb::sqlite().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &demo_config(4000.0));
    let first = run_demo(&config, &db.url, Some("busy")).await;
    assert!(
        first
            .iter()
            .any(|l| l.contains("submitted and approved ord-000001")),
        "{first:?}"
    );

    let second = run_demo(&config, &db.url, None).await;
    assert!(
        second.iter().any(|l| l.contains("resuming ord-000001")),
        "{second:?}"
    );
    assert!(
        !second.iter().any(|l| l.contains("ord-000002")),
        "no second submission: {second:?}"
    );
    assert!(
        second
            .iter()
            .any(|l| l.contains("all 1 demo orders ended") && l.contains("1 completed")),
        "{second:?}"
    );

    let store = microfab::store::Store::connect(&db.url).await.unwrap();
    let orders: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders")
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert_eq!(orders, 1);
    let good: i64 = sqlx::query_scalar("SELECT good FROM orders")
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert_eq!(good, 200);
    assert!(microfab::verify::verify(&store).await.unwrap().consistent);
}

/// A demo whose order is cancelled ends too (it waited for completion forever), with a
/// summary; on the way every line fits an 80-column terminal and the open order shows its ETA.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demo_whose_order_is_cancelled_ends_with_a_summary() {
    let db = TestDb::sqlite().await;
    let dir = tempfile::tempdir().unwrap();
    // Slow enough that the order is being made when it is cancelled.
    let config = write_config(dir.path(), &demo_config(100.0));
    let (mut child, mut lines) = spawn_demo(&config, &db.url);
    let mut seen = read_until(&mut child, &mut lines, Some("microfab demo on")).await;
    let address = seen[0]
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap()
        .to_string();
    // The progress shows the order's ETA from the plan, in minutes and seconds.
    loop {
        let line = read_until(&mut child, &mut lines, Some("#1 ")).await;
        seen.extend(line);
        let last = seen.last().unwrap();
        if last
            .split(" eta ")
            .nth(1)
            .is_some_and(|eta| eta.starts_with(|c: char| c.is_ascii_digit()))
        {
            break;
        }
    }
    let client = common::Client::new(address);
    let (status, body) = client
        .post(
            "/api/v1/orders/ord-000001/cancel",
            serde_json::json!({ "reason": "maker withdrew" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    seen.extend(read_until(&mut child, &mut lines, None).await);

    let summary = seen
        .iter()
        .position(|l| l.starts_with("all 1 demo orders ended in"))
        .unwrap_or_else(|| panic!("a summary: {seen:#?}"));
    assert!(seen[summary].ends_with(": 1 cancelled"), "{seen:#?}");
    assert!(seen[summary + 1].starts_with("units: "), "{seen:#?}");
    assert_eq!(seen[summary + 2], "material consumed:", "{seen:#?}");
    assert!(
        seen[summary + 3..]
            .iter()
            .any(|l| l.trim_start().starts_with("plywood-birch-6mm")),
        "the runs that started drew material: {seen:#?}"
    );
    // Everything after the address line (which names the database file).
    for line in &seen[1..] {
        assert!(
            line.chars().count() <= 80,
            "wider than 80 columns: {line:?}"
        );
    }
    let store = microfab::store::Store::connect(&db.url).await.unwrap();
    let report = microfab::verify::verify(&store).await.unwrap();
    assert!(report.consistent, "{report:?}");
}
