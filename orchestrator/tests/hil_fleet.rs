//! Hardware in the loop, end to end: the real `microfab serve` process drives a fleet of
//! protocol-level simulators (`microfab sim grbl`, `microfab sim marlin`, each a separate process
//! on its own pseudo-terminal) next to in-process stations. Two orders run while a router raises
//! an alarm mid-job and a printer's firmware resets mid-job. The operator sees why, resolves the
//! interrupted runs, the rest of the fleet keeps working, and unit counts come out exact.
//!
//! It lives here rather than in `hil-tests/` because it runs the `microfab` binary, whose path
//! Cargo gives only to this package's tests.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::{Client, TestDb};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_microfab");

async fn simulator(kind: &str, link: &Path, extra: &[String]) -> Child {
    let child = Command::new(BIN)
        .args(["sim", kind, "--link"])
        .arg(link)
        .args(["--time-scale", "2000"])
        .args(extra)
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if link.exists() {
            return child;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the {kind} simulator never created {}", link.display());
}

/// A copy of an example spec with a smaller quantity, programs alongside.
fn small_spec(dir: &Path, example: &str, quantity: u32) -> PathBuf {
    let source = Path::new("../job-specs/examples").join(example);
    let target = dir.join(example);
    std::fs::create_dir_all(target.join("programs")).unwrap();
    for entry in std::fs::read_dir(source.join("programs")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(
            entry.path(),
            target.join("programs").join(entry.file_name()),
        )
        .unwrap();
    }
    let spec_path = target.join(format!("{example}.toml"));
    let text = std::fs::read_to_string(source.join(format!("{example}.toml"))).unwrap();
    let quantity_line = text
        .lines()
        .find(|l| l.starts_with("quantity"))
        .unwrap()
        .to_string();
    std::fs::write(
        &spec_path,
        text.replace(&quantity_line, &format!("quantity = {quantity}")),
    )
    .unwrap();
    spec_path
}

fn machine(id: &str, capability: &str, envelope: &str, driver: &str) -> String {
    format!(
        "\n[[machines]]\nid = \"{id}\"\nname = \"{id}\"\ncapabilities = [\"{capability}\"]\nenvelope_mm = {envelope}\ndriver = {driver}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_of_protocol_simulators_survives_an_alarm_and_a_firmware_reset() {
    let dir = tempfile::tempdir().unwrap();
    let link = |name: &str| dir.path().join(name);
    let router_log = dir.path().join("router-1.log");
    let _laser = simulator("grbl", &link("laser-1"), &[]).await;
    let _router1 = simulator(
        "grbl",
        &link("router-1"),
        &["--execution-log".into(), router_log.display().to_string()],
    )
    .await;
    let _router2 = simulator(
        "grbl",
        &link("router-2"),
        &["--fault".into(), "alarm:1@line:120".into()],
    )
    .await;
    let _printer1 = simulator("marlin", &link("printer-1"), &[]).await;
    let _printer2 = simulator(
        "marlin",
        &link("printer-2"),
        &["--fault".into(), "reset@line:400".into()],
    )
    .await;

    let grbl = |name: &str| format!("{{ kind = \"grbl\", port = \"{}\" }}", link(name).display());
    let marlin = |name: &str| {
        format!(
            "{{ kind = \"marlin\", port = \"{}\" }}",
            link(name).display()
        )
    };
    let station = "{ kind = \"sim\", seed = 5, time_scale = 5000 }";
    let mut config = String::from("[plant]\nname = \"hil fleet\"\n");
    config += &machine("laser-1", "laser", "[600, 400, 20]", &grbl("laser-1"));
    config += &machine(
        "router-1",
        "cnc-3axis",
        "[1200, 800, 120]",
        &grbl("router-1"),
    );
    config += &machine(
        "router-2",
        "cnc-3axis",
        "[1200, 800, 120]",
        &grbl("router-2"),
    );
    config += &machine("printer-1", "fdm", "[220, 220, 250]", &marlin("printer-1"));
    config += &machine("printer-2", "fdm", "[220, 220, 250]", &marlin("printer-2"));
    config += &machine(
        "assembly-1",
        "manual:assembly",
        "[2000, 1000, 1000]",
        station,
    );
    config += &machine(
        "inspection-1",
        "manual:inspection",
        "[2000, 1000, 1000]",
        station,
    );
    for (id, material, unit, on_hand) in [
        ("ply6", "plywood-birch-6mm", "sheet", 50),
        ("albar", "aluminium-bar-40x10", "m", 50),
        ("m4", "fasteners-m4", "piece", 1000),
        ("petg", "petg-black", "g", 5000),
    ] {
        config += &format!(
            "\n[[materials]]\nid = \"{id}\"\nmaterial = \"{material}\"\nunit = \"{unit}\"\nowner = \"common\"\norigin = \"local\"\non_hand = {on_hand}\n"
        );
    }
    let config_path = common::write_config(dir.path(), &config);
    let db = TestDb::sqlite().await;
    let mut server = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&config_path)
        .args(["--database", &db.url, "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let line = lines.next_line().await.unwrap().unwrap();
    let client = Client::new(
        line.split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap()
            .to_string(),
    );

    let bracket = client
        .submit_file(
            small_spec(dir.path(), "community-bench-bracket", 24)
                .to_str()
                .unwrap(),
        )
        .await;
    let mount = client
        .submit_file(
            small_spec(dir.path(), "bike-light-mount", 24)
                .to_str()
                .unwrap(),
        )
        .await;
    let ids = [
        bracket["id"].as_str().unwrap().to_string(),
        mount["id"].as_str().unwrap().to_string(),
    ];
    for id in &ids {
        let (status, body) = client
            .post(
                &format!("/api/v1/orders/{id}/approve"),
                serde_json::Value::Null,
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }

    let mut interruptions = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(240);
    loop {
        for job in client
            .ok("/api/v1/jobs?state=interrupted")
            .await
            .as_array()
            .unwrap()
        {
            let machine = client
                .ok(&format!(
                    "/api/v1/machines/{}",
                    job["machine_id"].as_str().unwrap()
                ))
                .await;
            interruptions.push((job.clone(), machine.clone()));
            let (status, body) = client
                .post(&format!("/api/v1/jobs/{}/resolve", job["id"]), serde_json::json!({ "good": 0, "reason": "operator: pieces scrapped after the fault" }))
                .await;
            assert_eq!(status, 200, "{body}");
        }
        let mut done = true;
        for id in &ids {
            done &= client.ok(&format!("/api/v1/orders/{id}")).await["state"] == "completed";
        }
        if done {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "orders did not complete; machines: {}",
            client.ok("/api/v1/machines").await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    for id in &ids {
        let order = client.ok(&format!("/api/v1/orders/{id}")).await;
        assert_eq!(order["good"], 24, "{order}");
        assert_eq!(order["remaining"], 0);
    }
    // The alarm: the router's run was interrupted with GRBL's meaning, and the router stays in alarm.
    let router2 = client.ok("/api/v1/machines/router-2").await;
    assert_eq!(router2["state"], "alarm", "{router2}");
    assert!(
        interruptions
            .iter()
            .any(|(job, _)| job["machine_id"] == "router-2"),
        "{interruptions:?}"
    );
    // The firmware reset: the printer's run was interrupted, never silently continued.
    let reset = interruptions
        .iter()
        .find(|(job, _)| job["machine_id"] == "printer-2");
    assert!(
        reset.is_some_and(|(job, _)| !job["reason"].as_str().unwrap_or_default().is_empty()),
        "{interruptions:?}"
    );
    // The rest of the fleet kept working: router-1 ran every bar run after the alarm, line for line.
    let jobs = client.ok("/api/v1/jobs?machine=router-1&state=done").await;
    let runs = jobs.as_array().unwrap().len();
    assert!(runs > 0);
    let program = std::fs::read_to_string(
        dir.path()
            .join("community-bench-bracket/programs/bracket-bar.nc"),
    )
    .unwrap();
    let prepared = microfab_drivers::grbl::gcode::preflight(&program, 80).unwrap();
    let executed: Vec<String> = std::fs::read_to_string(&router_log)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(
        executed.len(),
        runs * prepared.lines.len(),
        "no line executed twice or skipped on router-1"
    );
    for (i, line) in executed.iter().enumerate() {
        assert_eq!(
            line,
            &prepared.lines[i % prepared.lines.len()],
            "line {i} of router-1's execution log"
        );
    }
    // The operator reads the router's console, then clears the alarm ($X): only they may.
    let console = client.ok("/api/v1/machines/router-2/console").await;
    assert!(
        console["lines"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["text"].as_str().unwrap().starts_with("ALARM:1")),
        "{console}"
    );
    assert!(console["lines_sent"].as_u64().unwrap() > 0);
    let (status, body) = client
        .post(
            "/api/v1/machines/router-2/operator",
            serde_json::json!({ "action": "unlock" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while client.ok("/api/v1/machines/router-2").await["state"] != "idle" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "router-2 stayed locked after $X"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, body) = client
        .post(
            "/api/v1/machines/assembly-1/operator",
            serde_json::json!({ "action": "home" }),
        )
        .await;
    assert_eq!(status, 409, "a simulated station has no homing: {body}");
    assert_eq!(client.ok("/api/v1/verify").await["consistent"], true);
    server.start_kill().unwrap();
}
