//! `microfab demo` on a database it already used resumes the plant: it does not submit its
//! orders a second time, and every order still completes exactly.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{TestDb, plant_config, write_config};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

fn demo_config(time_scale: f64) -> String {
    let spec = std::fs::canonicalize(common::BRACKET_SPEC).unwrap();
    format!(
        "{}\n[demo]\nspecs = [{:?}]\nprogress_seconds = 0.2\n",
        plant_config(time_scale, 0.02),
        spec.display().to_string()
    )
}

/// Run the demo until it prints a line containing `until` (or exits); returns its output.
async fn run_demo(config: &std::path::Path, database: &str, until: Option<&str>) -> Vec<String> {
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
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while let Ok(Some(line)) = tokio::time::timeout_at(deadline, lines.next_line())
        .await
        .expect("the demo finished in time")
    {
        let stop = until.is_some_and(|u| line.contains(u));
        seen.push(line);
        if stop {
            child.start_kill().unwrap();
            break;
        }
    }
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
            .last()
            .unwrap()
            .contains("all 1 demo orders complete"),
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
