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

use common::scrape::scrape;
use common::{Client, TestDb};
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

/// Submit a spec and approve it; the order's id.
async fn submit_and_approve(client: &Client, spec: &Path) -> String {
    let order = client.submit_file(spec.to_str().unwrap()).await;
    let order_id = order["id"].as_str().unwrap().to_string();
    let (status, body) = client
        .post(
            &format!("/api/v1/orders/{order_id}/approve"),
            serde_json::Value::Null,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    order_id
}

/// `microfab serve` on `config`, and a client for it.
async fn serve(dir: &Path, config: &str, db: &TestDb) -> (Child, Client) {
    common::spawn_server(&common::write_config(dir, config), &db.url).await
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
    // An Arduino Uno board: it reboots each time the port opens.
    let _laser = simulator(
        "grbl",
        &link("laser-1"),
        &["--reset-on-open".into(), "--boot-ms".into(), "500".into()],
    )
    .await;
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
    let db = TestDb::sqlite().await;
    let (mut server, client) = serve(dir.path(), &config, &db).await;

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
    // The operator reads the router's console, then clears the alarm: only they may. After a
    // hard limit GRBL ignores `$X` until it is reset, and the API says so instead of a 200.
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
    let operator = async |action: &str| {
        client
            .post(
                "/api/v1/machines/router-2/operator",
                serde_json::json!({ "action": action }),
            )
            .await
    };
    let (status, body) = operator("unlock").await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("reset first, then home or unlock"),
        "{body}"
    );
    // The same refusal from the CLI, then the reset it asks for.
    let cli = async |action: &str| {
        Command::new(BIN)
            .env("MICROFAB_TOKEN", common::ADMIN_TOKEN)
            .args(["operator", "router-2", action, "--server", &client.base])
            .output()
            .await
            .unwrap()
    };
    let refused = cli("unlock").await;
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(
        stderr.contains("reset first, then home or unlock"),
        "{stderr}"
    );
    let reset = cli("reset").await;
    assert!(
        reset.status.success(),
        "{}",
        String::from_utf8_lossy(&reset.stderr)
    );
    let (status, body) = operator("unlock").await;
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
    links_in_metrics_match_the_consoles(&client).await;
    server.start_kill().unwrap();
}

/// `/metrics` shows each serial machine's link up with its driver's own counters (what the
/// console shows; the status channel carries them within its 500 ms refresh), and no link for
/// a simulated station.
async fn links_in_metrics_match_the_consoles(client: &Client) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mismatches = link_mismatches(client).await;
        if mismatches.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{}",
            mismatches.join("; ")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn link_mismatches(client: &Client) -> Vec<String> {
    let metrics = scrape(client).await;
    assert_eq!(
        metrics.value("microfab_machine_link_up", &[("machine", "assembly-1")]),
        None,
        "a simulated station has no link"
    );
    let mut mismatches = Vec::new();
    for machine in ["laser-1", "router-1", "router-2", "printer-1", "printer-2"] {
        let labels = [("machine", machine)];
        if metrics.get("microfab_machine_link_up", &labels) != 1.0 {
            mismatches.push(format!("{machine}: link down"));
        }
        let console = client
            .ok(&format!("/api/v1/machines/{machine}/console"))
            .await;
        for (metric, field) in [
            ("microfab_machine_link_resends_total", "resends"),
            ("microfab_machine_link_errors_total", "errors"),
            ("microfab_machine_link_reconnects_total", "reconnects"),
        ] {
            let (scraped, shown) = (metrics.get(metric, &labels), console[field].as_f64());
            if Some(scraped) != shown {
                mismatches.push(format!("{machine} {metric} {scraped} vs {field} {shown:?}"));
            }
        }
    }
    mismatches
}

/// A printer's USB cable is pulled mid-print and plugged back 2 s later. The run is
/// interrupted with where it stopped; the printer takes no other run while its bed holds that
/// print; the operator resumes it from the first unacknowledged line, and the firmware's
/// execution log shows every command of the program ran, none skipped, and none twice except
/// the lines the API reported as in doubt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_resumes_a_print_after_the_cable_was_pulled() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("printer-1");
    let log_path = dir.path().join("printer-1.log");
    let _printer = simulator(
        "marlin",
        &link,
        &[
            "--fault".into(),
            "disconnect:2@line:700".into(),
            "--execution-log".into(),
            log_path.display().to_string(),
        ],
    )
    .await;
    let marlin = format!("{{ kind = \"marlin\", port = \"{}\" }}", link.display());
    let station = "{ kind = \"sim\", seed = 5, time_scale = 5000 }";
    let mut config = String::from("[plant]\nname = \"resume\"\n");
    config += &machine("printer-1", "fdm", "[220, 220, 250]", &marlin);
    config += &machine(
        "inspection-1",
        "manual:inspection",
        "[2000, 1000, 1000]",
        station,
    );
    config += "\n[[materials]]\nid = \"petg\"\nmaterial = \"petg-black\"\nunit = \"g\"\nowner = \"common\"\norigin = \"local\"\non_hand = 5000\n";
    let db = TestDb::sqlite().await;
    let (mut server, client) = serve(dir.path(), &config, &db).await;
    let order_id =
        &submit_and_approve(&client, &small_spec(dir.path(), "bike-light-mount", 24)).await;

    let interrupted = wait_for(
        &client,
        120,
        "the print to be interrupted",
        async |client| {
            let jobs = client.ok("/api/v1/jobs?state=interrupted").await;
            jobs.as_array().unwrap().first().cloned()
        },
    )
    .await;
    let job_id = interrupted["id"].as_i64().unwrap();
    assert!(
        interrupted["reason"].as_str().unwrap().contains("lost"),
        "{interrupted}"
    );
    let resume = interrupted["resume"].clone();
    let next_line = resume["next_line"].as_u64().unwrap() as u32;
    let in_doubt: Vec<u32> = serde_json::from_value(resume["in_doubt"].clone()).unwrap();
    assert!(in_doubt.len() <= 1, "one line in flight: {resume}");

    // Back on line, the printer is connected but held by the interrupted print: it never reads
    // as idle, and no other run starts.
    let printer = wait_for(&client, 30, "the printer to reconnect", async |client| {
        let printer = client.ok("/api/v1/machines/printer-1").await;
        (printer["state"] == "held").then_some(printer)
    })
    .await;
    assert_eq!(printer["free"], false, "{printer}");
    assert_eq!(printer["holds"][0]["job_id"], job_id, "{printer}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let on_printer = client.ok("/api/v1/jobs?machine=printer-1").await;
    assert!(
        on_printer
            .as_array()
            .unwrap()
            .iter()
            .all(|j| j["id"] == job_id || j["state"] == "planned"),
        "{on_printer}"
    );

    // Resuming past a line that may never have run is refused (here from the CLI), and
    // changes nothing.
    let past = (resume["latest_start"].as_u64().unwrap() + 1).to_string();
    let refused = Command::new(BIN)
        .env("MICROFAB_TOKEN", common::ADMIN_TOKEN)
        .args(["resume", &job_id.to_string(), "--from-line", &past])
        .args(["--reason", "skip ahead", "--server", &client.base])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(stderr.contains("from_line"), "{stderr}");
    let still = client
        .ok("/api/v1/jobs?machine=printer-1&state=interrupted")
        .await;
    assert_eq!(still.as_array().unwrap().len(), 1, "{still}");
    let resumed = wait_for(
        &client,
        20,
        "the printer to accept the resume",
        async |client| {
            let (status, body) = client
            .post(
                &format!("/api/v1/jobs/{job_id}/resume"),
                serde_json::json!({ "reason": "operator: print still on the bed, nozzle clean" }),
            )
            .await;
            // Right after reconnecting the printer may not have reported its heaters yet.
            if status == 409
                && body["message"]
                    .as_str()
                    .unwrap()
                    .contains("temperature report")
            {
                return None;
            }
            assert_eq!(status, 200, "{body}");
            Some(body)
        },
    )
    .await;
    assert!(resumed["resume"].is_null(), "{resumed}");

    // The machine view's live status follows the print line by line, with the link's story
    // (up again after the cable came back) and the printer's temperatures.
    let live = wait_for(&client, 60, "the print's live progress", async |client| {
        let printer = client.ok("/api/v1/machines/printer-1").await;
        let live = printer["live"].clone();
        (live["job_id"].is_i64() && live["progress"]["done"].as_u64().unwrap_or(0) > 0)
            .then_some(live)
    })
    .await;
    assert_eq!(live["progress"]["unit"], "lines", "{live}");
    assert_eq!(live["link"]["up"], true, "{live}");
    assert!(
        live["link"]["counters"]["reconnects"].as_u64().unwrap() >= 1,
        "{live}"
    );
    assert!(
        !live["temperatures"].as_array().unwrap().is_empty(),
        "{live}"
    );

    wait_for(&client, 240, "the order to complete", async |client| {
        let order = client.ok(&format!("/api/v1/orders/{order_id}")).await;
        (order["state"] == "completed").then_some(order)
    })
    .await;
    let order = client.ok(&format!("/api/v1/orders/{order_id}")).await;
    assert_eq!(order["good"], 24, "{order}");

    // The firmware ran run 1 up to the cut, then from the resume line on, then run 2 whole.
    let source = std::fs::read_to_string(
        dir.path()
            .join("bike-light-mount/programs/mount-12up.gcode"),
    )
    .unwrap();
    let program = microfab_drivers::marlin::protocol::prepare_program(&source).unwrap();
    let is_program = |command: &str| {
        !["M110", "M105", "M115", "M400"].contains(&command.split_whitespace().next().unwrap_or(""))
    };
    let executed: Vec<String> = std::fs::read_to_string(&log_path)
        .unwrap()
        .lines()
        .filter(|c| is_program(c))
        .map(str::to_string)
        .collect();
    let texts =
        |range: &mut dyn Iterator<Item = &microfab_drivers::marlin::protocol::ProgramLine>| {
            range
                .map(|l| l.text.clone())
                .filter(|t| is_program(t))
                .collect::<Vec<_>>()
        };
    let after_resume = texts(&mut program.iter().filter(|l| l.line >= next_line));
    let whole = texts(&mut program.iter());
    let matches = (0..=in_doubt.len()).any(|ran| {
        let mut expected = texts(
            &mut program
                .iter()
                .filter(|l| l.line < next_line || in_doubt[..ran].contains(&l.line)),
        );
        expected.extend(after_resume.iter().cloned());
        expected.extend(whole.iter().cloned());
        expected == executed
    });
    assert!(
        matches,
        "execution log ({} commands) is not run 1 to line {next_line} (in doubt {in_doubt:?}), \
         run 1 from line {next_line}, then run 2 ({} commands each)",
        executed.len(),
        whole.len()
    );
    assert_eq!(client.ok("/api/v1/verify").await["consistent"], true);
    server.start_kill().unwrap();
}

/// A 3-tool PCB program on a GRBL mill: the job stops at each `M6`, the machine shows what to
/// change, and the operator's confirm (`POST /api/v1/jobs/{id}/confirm`) lets it go on. Once,
/// someone presses the mill's feed-hold button: the mill shows it held with that cause, the
/// job stays running, and only the operator's resume (`POST /api/v1/machines/{id}/resume`)
/// lets it go on. The mill's execution log is the program without its `M6` lines, once per run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_changes_tools_on_a_grbl_pcb_mill() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("pcb-1");
    let log_path = dir.path().join("pcb-1.log");
    let _mill = simulator(
        "grbl",
        &link,
        &[
            "--execution-log".into(),
            log_path.display().to_string(),
            "--fault".into(),
            "hold@line:40".into(),
        ],
    )
    .await;
    let grbl = format!("{{ kind = \"grbl\", port = \"{}\" }}", link.display());
    let station =
        "{ kind = \"sim\", seed = 5, time_scale = 5000, scrap_rate = 0.0, failure_rate = 0.0 }";
    let mut config = String::from("[plant]\nname = \"tool change\"\n");
    config += &machine("pcb-1", "pcb-mill", "[300, 200, 40]", &grbl);
    config += &machine("printer-1", "fdm", "[250, 250, 250]", station);
    config += &machine("laser-1", "laser", "[600, 400, 20]", station);
    config += &machine(
        "assembly-1",
        "manual:assembly",
        "[2000, 1000, 1000]",
        station,
    );
    for (id, material, unit) in [
        ("pla", "pla-recycled", "g"),
        ("fr4", "fr4-copper-clad", "sheet"),
        ("acrylic", "acrylic-clear-3mm", "sheet"),
        ("m4", "fasteners-m4", "piece"),
    ] {
        config += &format!(
            "\n[[materials]]\nid = \"{id}\"\nmaterial = \"{material}\"\nunit = \"{unit}\"\nowner = \"common\"\norigin = \"local\"\non_hand = 5000\n"
        );
    }
    let db = TestDb::sqlite().await;
    let (mut server, client) = serve(dir.path(), &config, &db).await;
    let order_id = &submit_and_approve(
        &client,
        &small_spec(dir.path(), "air-quality-sensor-enclosure", 12),
    )
    .await;

    let mut tool_changes = Vec::new();
    let mut holds = Vec::new();
    wait_for(&client, 180, "the order to complete", async |client| {
        let mill = client.ok("/api/v1/machines/pcb-1").await;
        if mill["state"] == "paused"
            && let Some(reason) = mill["reason"].as_str()
            && reason.starts_with("feed hold microfab did not send")
        {
            let job = mill["current_job"].as_i64().unwrap();
            let running = client.ok("/api/v1/jobs?machine=pcb-1&state=running").await;
            let (status, body) = client
                .post("/api/v1/machines/pcb-1/resume", serde_json::Value::Null)
                .await;
            assert_eq!(status, 200, "{body}");
            holds.push((job, reason.to_string(), running));
            // The view follows the machine's next status report.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            while client.ok("/api/v1/machines/pcb-1").await["reason"] == reason {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "still held after resume"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        } else if mill["state"] == "paused"
            && let Some(reason) = mill["reason"].as_str()
        {
            let job = mill["current_job"].as_i64().unwrap();
            let (status, body) = client
                .post(
                    &format!("/api/v1/jobs/{job}/confirm"),
                    serde_json::Value::Null,
                )
                .await;
            assert_eq!(status, 200, "{body}");
            tool_changes.push(reason.to_string());
        }
        let order = client.ok(&format!("/api/v1/orders/{order_id}")).await;
        (order["state"] == "completed").then_some(())
    })
    .await;
    let order = client.ok(&format!("/api/v1/orders/{order_id}")).await;
    assert_eq!(order["good"], 12, "{order}");
    let [(job, reason, running)] = &holds[..] else {
        panic!("one hold from the button: {holds:#?}");
    };
    assert!(reason.contains("a feed-hold button"), "{reason}");
    assert!(
        running
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["id"].as_i64() == Some(*job)),
        "the held job stayed running: {running}"
    );
    let runs = client.ok("/api/v1/jobs?machine=pcb-1&state=done").await;
    let runs = runs.as_array().unwrap().len();
    assert_eq!(runs, 2, "12 boards, 6 per panel");
    let expected_tools: Vec<String> = (1..=3).map(|t| format!("change to tool {t} ")).collect();
    assert_eq!(tool_changes.len(), 3 * runs, "{tool_changes:#?}");
    for (i, reason) in tool_changes.iter().enumerate() {
        assert!(reason.starts_with(&expected_tools[i % 3]), "{reason}");
    }
    let program = std::fs::read_to_string(
        dir.path()
            .join("air-quality-sensor-enclosure/programs/sensor-pcb-6up.nc"),
    )
    .unwrap();
    let prepared = microfab_drivers::grbl::gcode::preflight(&program, 80).unwrap();
    let executed: Vec<String> = std::fs::read_to_string(&log_path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let expected: Vec<String> = (0..runs).flat_map(|_| prepared.lines.clone()).collect();
    assert_eq!(
        executed, expected,
        "the mill ran each line once per run, and never an M6"
    );
    assert_eq!(client.ok("/api/v1/verify").await["consistent"], true);
    server.start_kill().unwrap();
}

/// Poll `probe` every 200 ms until it yields, for at most `seconds`.
async fn wait_for<T>(
    client: &Client,
    seconds: u64,
    what: &str,
    mut probe: impl AsyncFnMut(&Client) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
    loop {
        if let Some(value) = probe(client).await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}; machines: {}; jobs: {}",
            client.ok("/api/v1/machines").await,
            client.ok("/api/v1/jobs").await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// An operator action on a machine that cannot be reached answers 503 with why, never a 200
/// nor the 409 of a machine that refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_action_on_an_unreachable_machine_answers_503() {
    let dir = tempfile::tempdir().unwrap();
    let port = dir.path().join("unplugged");
    let grbl = format!("{{ kind = \"grbl\", port = \"{}\" }}", port.display());
    let mut config = String::from("[plant]\nname = \"unplugged\"\n");
    config += &machine("laser-9", "laser", "[600, 400, 100]", &grbl);
    let db = TestDb::sqlite().await;
    let (mut server, client) = serve(dir.path(), &config, &db).await;
    for action in ["unlock", "home", "reset"] {
        let (status, body) = client
            .post(
                "/api/v1/machines/laser-9/operator",
                serde_json::json!({ "action": action }),
            )
            .await;
        assert_eq!(status, 503, "{action}: {body}");
        assert_eq!(body["error"]["code"], "unreachable", "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("unplugged"),
            "{body}"
        );
    }
    server.start_kill().unwrap();
}

/// `microfab sim opcua` prints its endpoint on its first line, on a free port, and an OPC UA
/// server answers there: a Hello gets an Acknowledge (the OPC UA TCP handshake, Part 6 7.1.2).
/// The simulator's behaviour behind that is tested with a real client in `hil-tests`.
#[tokio::test]
async fn the_opcua_simulator_prints_its_endpoint_first_and_answers_there() {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

    let pki = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["sim", "opcua", "--port", "0", "--pki-dir"])
        .arg(pki.path())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("the simulator printed a line")
        .unwrap()
        .unwrap();
    let port: u16 = first
        .strip_prefix("opc.tcp://127.0.0.1:")
        .and_then(|rest| rest.strip_suffix('/'))
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("first line is not the endpoint: {first}"));
    assert_ne!(port, 0);

    let mut hello = Vec::new();
    for field in [0u32, 65_536, 65_536, 0, 0] {
        hello.extend(field.to_le_bytes());
    }
    hello.extend((first.len() as i32).to_le_bytes());
    hello.extend(first.as_bytes());
    let mut message = b"HELF".to_vec();
    message.extend((hello.len() as u32 + 8).to_le_bytes());
    message.extend(hello);
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream.write_all(&message).await.unwrap();
    let mut answer = [0u8; 8];
    tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut answer))
        .await
        .expect("the server answered the Hello")
        .unwrap();
    assert_eq!(&answer[..4], b"ACKF", "{answer:?}");
    child.start_kill().unwrap();
}
