//! People at the machines: runs that wait on their machine for an operator's load and unload.
//! A run never starts on a machine whose previous run is not unloaded (raced, and across a
//! SIGKILL of the real `microfab serve`); scrap entered at the unload is replaced exactly as a
//! driver's is; a wrong inspection changes nothing; a load sends the run, and a machine that
//! refuses it sends it back to the plan.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{
    Client, TestDb, TestPlant, assert_stock_exact, plant_config, spawn_server, wait_until,
    write_config,
};
use serde_json::{Value, json};

/// The test plant, with `tasks` (TOML) for its lasers: the gussets step runs there.
fn plant_with_laser_tasks(time_scale: f64, scrap_rate: f64, tasks: &str) -> String {
    format!(
        "{}\n[operator_tasks.laser]\n{tasks}\n",
        plant_config(time_scale, scrap_rate)
    )
}

const UNLOAD: &str = r#"unload = { text = "Take the gussets out and check them", minutes = 2 }"#;
const LOAD: &str = r#"load = { text = "Load a 6 mm birch sheet and focus", minutes = 3 }"#;

/// The bench bracket spec for `quantity` brackets (6 per laser run), in a folder of its own.
fn bracket_spec(dir: &Path, quantity: u32) -> PathBuf {
    bracket_spec_cut_as(dir, quantity, "plywood-6mm")
}

/// The same, its gussets cut in the laser setup `family`.
fn bracket_spec_cut_as(dir: &Path, quantity: u32, family: &str) -> PathBuf {
    common::bracket_spec_in(&dir.join(format!("bracket-{family}")), quantity, |text| {
        text.replace(
            "setup_family = \"plywood-6mm\"",
            &format!("setup_family = \"{family}\""),
        )
    })
}

async fn jobs(client: &Client, query: &str) -> Vec<Value> {
    client
        .ok(&format!("/api/v1/jobs?{query}"))
        .await
        .as_array()
        .unwrap()
        .clone()
}

/// The first run in `state` other than `except`, once there is one (for at most a minute).
async fn first_in(client: &Client, state: &str, except: Option<&Value>) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let found = jobs(client, &format!("state={state}"))
            .await
            .into_iter()
            .find(|j| except.is_none_or(|e| j["id"] != e["id"]));
        if let Some(job) = found {
            return job;
        }
        assert!(tokio::time::Instant::now() < deadline, "no run is {state}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The runs a machine has now (given to it and not ended), other than `except`.
async fn other_runs_on(client: &Client, machine: &str, except: i64) -> Vec<Value> {
    jobs(client, &format!("machine={machine}"))
        .await
        .into_iter()
        .filter(|j| j["id"] != except)
        .filter(|j| {
            !matches!(
                j["state"].as_str().unwrap(),
                "done" | "failed" | "cancelled" | "planned"
            )
        })
        .collect()
}

async fn unit_rows_of(client: &Client, order: &str, job: i64) -> Vec<Value> {
    client
        .ok(&format!("/api/v1/orders/{order}/units"))
        .await
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["job_id"] == job)
        .cloned()
        .collect()
}

/// Unload every run waiting for it with `inspect(job)`, until the order is done.
async fn unload_until_done(client: &Client, order: &str, mut inspect: impl FnMut(&Value) -> Value) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let state = client.ok(&format!("/api/v1/orders/{order}")).await["state"].clone();
        if state == "completed" {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "order {order} never completed"
        );
        for job in jobs(client, "state=awaiting_unload").await {
            let (status, body) = client
                .post(&format!("/api/v1/jobs/{}/unload", job["id"]), inspect(&job))
                .await;
            assert_eq!(status, 200, "unload {job}: {body}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `microfab ARGS` against the client's server, as its admin; its standard output.
async fn microfab_cli(client: &Client, args: &[&str]) -> String {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_microfab"))
        .args(args)
        .args(["--server", &client.base])
        .env("MICROFAB_TOKEN", common::ADMIN_TOKEN)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "microfab {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

async fn assert_consistent(client: &Client) {
    let report = client.ok("/api/v1/verify").await;
    assert_eq!(report["consistent"], true, "{report}");
}

/// Each finished run has exactly its units recorded, once.
async fn assert_units_exact(client: &Client, order: &str) {
    let units = client.ok(&format!("/api/v1/orders/{order}/units")).await;
    let units = units.as_array().unwrap();
    for job in jobs(client, &format!("order={order}")).await {
        let recorded = units.iter().filter(|u| u["job_id"] == job["id"]).count() as i64;
        let expected = if matches!(job["state"].as_str().unwrap(), "done" | "failed") {
            job["units"].as_i64().unwrap()
        } else {
            0
        };
        assert_eq!(recorded, expected, "units recorded for job {job}");
    }
}

/// The real server: a laser run waits for its unload, the machine takes nothing else, not
/// after a SIGKILL and restart either; of many unloads sent at once exactly one counts; then
/// the machine's next run goes.
async fn never_a_run_on_a_machine_not_unloaded(kind: &str) {
    let db = TestDb::of(kind).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &plant_with_laser_tasks(6000.0, 0.0, UNLOAD));
    let spec = bracket_spec(dir.path(), 24);
    let (mut server, mut client) = spawn_server(&config, &db.url).await;
    let before = client.stock().await;
    let order = client.submit_and_approve(spec.to_str().unwrap()).await;

    let waiting = first_in(&client, "awaiting_unload", None).await;
    let job = waiting["id"].as_i64().unwrap();
    let machine = waiting["machine_id"].as_str().unwrap().to_string();
    assert!(
        unit_rows_of(&client, &order, job).await.is_empty(),
        "units wait for the unload"
    );
    let view = client.ok(&format!("/api/v1/machines/{machine}")).await;
    assert_eq!(view["free"], false, "{view}");
    assert_eq!(view["state"], "held", "{view}");
    assert!(
        view["holds"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["kind"] == "awaiting_unload" && h["job_id"] == job),
        "{view}"
    );
    let tasks = client.ok("/api/v1/tasks").await;
    let task = tasks
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == format!("unload-{job}"))
        .unwrap_or_else(|| panic!("no unload task for job {job}: {tasks}"));
    assert_eq!(task["kind"], "unload");
    assert_eq!(task["machine_id"], machine.as_str());
    assert_eq!(task["units"], waiting["units"]);
    // Several dispatch rounds (every 500 ms) go by: the machine gets nothing.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        other_runs_on(&client, &machine, job).await,
        Vec::<Value>::new()
    );

    server.start_kill().unwrap();
    server.wait().await.unwrap();
    (server, client) = spawn_server(&config, &db.url).await;
    let after = client.ok(&format!("/api/v1/jobs?machine={machine}")).await;
    let still = after
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["id"] == job)
        .unwrap();
    assert_eq!(
        still["state"], "awaiting_unload",
        "a restart leaves it: {still}"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        other_runs_on(&client, &machine, job).await,
        Vec::<Value>::new()
    );
    assert_consistent(&client).await;

    // Eight people press "unloaded" at once: one unload counts, the others find it done.
    let presses = (0..8).map(|_| {
        let client = client.with_token(client.token.as_deref());
        async move {
            client
                .post(&format!("/api/v1/jobs/{job}/unload"), json!({}))
                .await
        }
    });
    let answers = futures::future::join_all(presses).await;
    let ok = answers.iter().filter(|(status, _)| *status == 200).count();
    let conflicts = answers.iter().filter(|(status, _)| *status == 409).count();
    assert_eq!((ok, conflicts), (1, 7), "{answers:?}");
    let rows = unit_rows_of(&client, &order, job).await;
    assert_eq!(
        rows.len() as i64,
        waiting["units"].as_i64().unwrap(),
        "units once"
    );
    // The machine waited through both pauses and the restart; its held-up time says so.
    let view = client.ok(&format!("/api/v1/machines/{machine}")).await;
    let held = view["held_up_ms"].as_i64().unwrap();
    assert!(held >= 3000, "held up {held} ms: {view}");
    eprintln!("{kind}: machine {machine} held up {held} ms by job {job}'s unload");

    // The operator's command line: the tasks as JSON, an unload with what they found.
    let next = first_in(&client, "awaiting_unload", None).await;
    let tasks = microfab_cli(&client, &["tasks", "--json"]).await;
    let tasks: Vec<Value> = serde_json::from_str(&tasks).unwrap();
    assert!(
        tasks
            .iter()
            .any(|t| t["id"] == format!("unload-{}", next["id"])),
        "{tasks:?}"
    );
    let job_id = next["id"].to_string();
    let units = next["units"].as_i64().unwrap();
    let good = (units - 1).to_string();
    let unloaded = microfab_cli(
        &client,
        &[
            "unload", &job_id, "--good", &good, "--scrap", "1:warped", "--json",
        ],
    )
    .await;
    let unloaded: Value = serde_json::from_str(&unloaded).unwrap();
    assert_eq!(
        (unloaded["good"].as_i64(), unloaded["scrapped"].as_i64()),
        (Some(units - 1), Some(1))
    );

    // The machine is free again: its next run goes.
    wait_until("the machine's next run", || async {
        !other_runs_on(&client, &machine, job).await.is_empty()
    })
    .await;
    unload_until_done(&client, &order, |_| json!({})).await;
    assert_units_exact(&client, &order).await;
    let all = client.ok(&format!("/api/v1/jobs?order={order}")).await;
    assert_stock_exact(&client, &before, &all, |j| {
        j["state"] == "done" || j["state"] == "failed"
    })
    .await;
    // `verify` also checks on the log that no run was given to a busy machine.
    assert_consistent(&client).await;
    server.start_kill().unwrap();
    server.wait().await.unwrap();
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_never_a_run_on_a_machine_not_unloaded() {
    never_a_run_on_a_machine_not_unloaded("sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_never_a_run_on_a_machine_not_unloaded() {
    never_a_run_on_a_machine_not_unloaded("postgres").await;
}

/// Scrap an operator finds at the unload is recorded piece by piece with its reasons and
/// replaced, as a machine's reported scrap is: the order still ends with its quantity good.
async fn scrap_at_unload_is_replaced(kind: &str) {
    let db = TestDb::of(kind).await;
    let dir = tempfile::tempdir().unwrap();
    let plant = TestPlant::start(&db, &plant_with_laser_tasks(6000.0, 0.0, UNLOAD)).await;
    let client = &plant.client;
    let before = client.stock().await;
    let order = client
        .submit_and_approve(bracket_spec(dir.path(), 24).to_str().unwrap())
        .await;
    // The first three unloads find one warped and two delaminated gussets each.
    let mut scrapped_runs = 0;
    unload_until_done(client, &order, |_| {
        scrapped_runs += 1;
        if scrapped_runs <= 3 {
            json!({ "scrap": [{ "count": 1, "reason": "warped" }, { "count": 2, "reason": "delaminated" }] })
        } else {
            json!({})
        }
    })
    .await;
    let view = client.ok(&format!("/api/v1/orders/{order}")).await;
    assert_eq!(view["good"], 24, "{view}");
    assert_eq!(view["scrapped"], 9, "{view}");
    let gussets = view["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "gussets")
        .unwrap();
    assert_eq!(gussets["scrapped"], 9, "{gussets}");
    assert!(
        gussets["good"].as_i64().unwrap() >= 24,
        "scrap replaced: {gussets}"
    );
    let units = client.ok(&format!("/api/v1/orders/{order}/units")).await;
    let reasons = |reason: &str| {
        units
            .as_array()
            .unwrap()
            .iter()
            .filter(|u| u["result"] == "scrapped" && u["reason"] == reason)
            .count()
    };
    assert_eq!((reasons("warped"), reasons("delaminated")), (3, 6));
    // Replacement runs were made for the scrap (jobs beyond the first four laser runs).
    let laser_runs = jobs(client, &format!("order={order}"))
        .await
        .into_iter()
        .filter(|j| j["step"] == "gussets")
        .count();
    assert!(laser_runs > 4, "{laser_runs} laser runs");
    // Each scrapping unload is in the log as its operator's `job_finished`, with the reasons.
    let log = client.ok("/api/v1/events/log?limit=10000").await;
    let finished_by_operator: Vec<&Value> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"]["kind"] == "job_finished" && e["actor"] == "bootstrap")
        .collect();
    assert!(
        finished_by_operator.len() >= laser_runs,
        "{finished_by_operator:?}"
    );
    assert!(
        finished_by_operator
            .iter()
            .any(|e| e["event"]["reason"] == "1 warped, 2 delaminated"
                && e["event"]["scrapped"] == 3)
    );
    assert_units_exact(client, &order).await;
    let all = client.ok(&format!("/api/v1/jobs?order={order}")).await;
    assert_stock_exact(client, &before, &all, |j| {
        j["state"] == "done" || j["state"] == "failed"
    })
    .await;
    assert_consistent(client).await;
    plant.shutdown.cancel();
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_scrap_at_unload_is_replaced() {
    scrap_at_unload_is_replaced("sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_scrap_at_unload_is_replaced() {
    scrap_at_unload_is_replaced("postgres").await;
}

/// An inspection that does not add up is refused naming its field, and changes nothing.
async fn a_wrong_inspection_changes_nothing(kind: &str) {
    let db = TestDb::of(kind).await;
    let dir = tempfile::tempdir().unwrap();
    let plant = TestPlant::start(&db, &plant_with_laser_tasks(6000.0, 0.0, UNLOAD)).await;
    let client = &plant.client;
    let order = client
        .submit_and_approve(bracket_spec(dir.path(), 6).to_str().unwrap())
        .await;
    let waiting = first_in(client, "awaiting_unload", None).await;
    let job = waiting["id"].as_i64().unwrap();
    let units = waiting["units"].as_i64().unwrap();
    // The bars are milled meanwhile; once they are done, nothing moves until the unload
    // (the assembly needs the gussets), so the log counts what a request changed.
    wait_until("the bars are milled", || async {
        jobs(client, &format!("order={order}"))
            .await
            .iter()
            .filter(|j| j["step"] == "bar")
            .all(|j| j["state"] == "done")
    })
    .await;
    let long = "x".repeat(1001);
    let entry = |count: i64, reason: &str| json!({ "count": count, "reason": reason });
    for (body, field) in [
        (json!({ "good": units + 1 }), "good"),
        (json!({ "good": units - 1 }), "good"),
        (json!({ "good": 1, "scrap": [entry(1, "warped")] }), "good"),
        (json!({ "scrap": [entry(units + 1, "warped")] }), "scrap"),
        (json!({ "scrap": [entry(0, "warped")] }), "scrap[0].count"),
        (
            json!({ "scrap": [entry(1, "warped"), entry(1, "   ")] }),
            "scrap[1].reason",
        ),
        (json!({ "scrap": [entry(1, &long)] }), "scrap[0].reason"),
        (json!({ "scrap": [entry(-1, "warped")] }), "count"),
        (json!({ "good": "all" }), "good"),
        (json!({ "inspected": true }), "inspected"),
    ] {
        let events = client.event_count().await;
        let (status, answer) = client
            .post(&format!("/api/v1/jobs/{job}/unload"), body.clone())
            .await;
        assert_eq!(status, 422, "{body}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(field),
            "{body}: {message} should name {field}"
        );
        assert_eq!(client.event_count().await, events, "{body} changed the log");
        let now = client
            .ok(&format!("/api/v1/jobs?order={order}&state=awaiting_unload"))
            .await;
        assert!(
            now.as_array().unwrap().iter().any(|j| j["id"] == job),
            "{body}: {now}"
        );
    }
    assert!(unit_rows_of(client, &order, job).await.is_empty());
    // A run that is not waiting for its unload is a conflict, and a load of it too.
    let (status, _) = client
        .post(&format!("/api/v1/jobs/{job}/load"), json!({}))
        .await;
    assert_eq!(status, 409);
    let (status, answer) = client
        .post(
            &format!("/api/v1/jobs/{job}/unload"),
            json!({ "good": units }),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["good"], units);
    let (status, _) = client
        .post(&format!("/api/v1/jobs/{job}/unload"), json!({}))
        .await;
    assert_eq!(status, 409);
    // A malformed inspection is refused for its shape whatever the run's state.
    let (status, answer) = client
        .post(
            &format!("/api/v1/jobs/{job}/unload"),
            json!({ "scrap": [{ "count": 0, "reason": "warped" }] }),
        )
        .await;
    assert_eq!(status, 422, "{answer}");
    assert_consistent(client).await;
    plant.shutdown.cancel();
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_wrong_inspection_changes_nothing() {
    a_wrong_inspection_changes_nothing("sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_wrong_inspection_changes_nothing() {
    a_wrong_inspection_changes_nothing("postgres").await;
}

/// A run given to a machine that needs loading waits there, nothing sent, until an operator
/// loads it; then it runs. A machine that cannot take it (here: gone from the config after a
/// restart) sends it back to the plan with its material, and the load is a conflict.
async fn a_load_sends_the_run_and_a_refusal_requeues_it(kind: &str) {
    let db = TestDb::of(kind).await;
    let dir = tempfile::tempdir().unwrap();
    let plain = plant_with_laser_tasks(6000.0, 0.0, LOAD);
    let with_laser_3 = plain.replacen(
        "[[materials]]",
        "[[machines]]\nid = \"laser-3\"\nname = \"laser-3\"\ncapabilities = [\"laser\"]\n\
         envelope_mm = [600, 400, 20]\ndriver = { kind = \"sim\", seed = 7 }\n\n[[materials]]",
        1,
    );
    let plant = TestPlant::start(&db, &with_laser_3).await;
    let client = plant.client.with_token(plant.client.token.as_deref());
    let before = client.stock().await;
    // Only laser 3 cuts: the others are out for maintenance.
    for laser in ["laser-1", "laser-2"] {
        let (status, body) = client
            .post(
                &format!("/api/v1/machines/{laser}/maintenance"),
                json!({ "on": true, "reason": "lens" }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    // Two orders of six brackets: one laser run each, in two setups.
    let plain_order = client
        .submit_and_approve(bracket_spec(dir.path(), 6).to_str().unwrap())
        .await;
    let engraved = bracket_spec_cut_as(dir.path(), 6, "plywood-6mm-engraved");
    let engraved_order = client.submit_and_approve(engraved.to_str().unwrap()).await;
    let first = first_in(&client, "awaiting_load", None).await;
    assert_eq!(first["machine_id"], "laser-3");
    // Dispatch rounds go by: nothing is sent without the load, and the other run waits.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let laser_runs: Vec<Value> = jobs(&client, "")
        .await
        .into_iter()
        .filter(|j| j["step"] == "gussets")
        .collect();
    let states: Vec<&str> = laser_runs
        .iter()
        .map(|j| j["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["awaiting_load", "planned"], "{laser_runs:?}");
    let tasks = client.ok("/api/v1/tasks").await;
    let task = tasks
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == format!("load-{}", first["id"]))
        .unwrap_or_else(|| panic!("no load task: {tasks}"));
    assert_eq!(
        task["kind"], "load",
        "a fresh machine needs no setup change: {task}"
    );
    assert_eq!(task["machine_id"], "laser-3");
    assert!(
        task["what"]
            .as_str()
            .unwrap()
            .starts_with("Load a 6 mm birch sheet"),
        "{task}"
    );
    assert_eq!(task["minutes"], 3.0);
    let machine = client.ok("/api/v1/machines/laser-3").await;
    assert_eq!(machine["free"], false, "{machine}");
    assert!(
        machine["holds"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["kind"] == "awaiting_load" && h["job_id"] == first["id"]),
        "{machine}"
    );

    // A maker loads nothing; an operator loads it once, and it runs.
    let maker = plant
        .account("bcn-street-furniture", microfab::auth::Role::Maker)
        .await;
    let load = |job: &Value| format!("/api/v1/jobs/{}/load", job["id"]);
    let (status, _) = maker.post(&load(&first), json!({})).await;
    assert_eq!(status, 403, "a maker loads nothing");
    let (status, answer) = client.post(&load(&first), json!({})).await;
    assert_eq!(status, 200, "{answer}");
    assert_ne!(answer["state"], "awaiting_load", "{answer}");
    let (status, _) = client.post(&load(&first), json!({})).await;
    assert_eq!(status, 409, "loaded once");
    let log = client.ok("/api/v1/events/log?limit=10000").await;
    assert!(log.as_array().unwrap().iter().any(|e| {
        e["event"]["kind"] == "job_loaded"
            && e["event"]["job_id"] == first["id"]
            && e["actor"] == "bootstrap"
    }));

    // The next run waits on laser 3 for its load; then laser 3 leaves the plant. Loading the
    // run is refused by the runtime (no such machine): it goes back to the plan with its
    // material, and goes again on a laser that is still here.
    let second = first_in(&client, "awaiting_load", Some(&first)).await;
    assert_ne!(second["id"], first["id"]);
    assert_eq!(second["machine_id"], "laser-3");
    // Laser 3 is set up for the first run's family now: the other order's run needs a setup
    // change too, and takes its step's setup time on top of the load.
    let tasks = client.ok("/api/v1/tasks").await;
    let task = tasks
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == format!("load-{}", second["id"]))
        .unwrap_or_else(|| panic!("no load task: {tasks}"));
    assert_eq!(task["kind"], "setup", "{task}");
    assert_eq!(task["minutes"], 3.0 + 5.0, "{task}");
    plant.shutdown.cancel();
    plant.running.join().await;
    let plant = TestPlant::start(&db, &plain).await;
    let client = plant.client.with_token(plant.client.token.as_deref());
    let (status, answer) = client.post(&load(&second), json!({})).await;
    assert_eq!(status, 409, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.contains("went back to the plan"), "{message}");
    let requeued = jobs(&client, "")
        .await
        .into_iter()
        .find(|j| j["id"] == second["id"])
        .unwrap();
    assert!(
        matches!(requeued["state"].as_str().unwrap(), "planned"),
        "{requeued}"
    );
    assert_consistent(&client).await;
    let (status, body) = client
        .post(
            "/api/v1/machines/laser-1/maintenance",
            json!({ "on": false }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    for order in [&plain_order, &engraved_order] {
        load_until_done(&client, order).await;
    }
    let again = jobs(&client, "machine=laser-1").await;
    assert!(
        again
            .iter()
            .any(|j| j["id"] == second["id"] && j["state"] == "done"),
        "{again:?}"
    );
    for order in [&plain_order, &engraved_order] {
        assert_units_exact(&client, order).await;
    }
    let all = client.ok("/api/v1/jobs").await;
    assert_stock_exact(&client, &before, &all, |j| {
        j["state"] == "done" || j["state"] == "failed"
    })
    .await;
    assert_consistent(&client).await;
    plant.shutdown.cancel();
    db.drop_database().await;
}

/// Load every run waiting for it, and settle every interrupted one, until the order is done.
async fn load_until_done(client: &Client, order: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let state = client.ok(&format!("/api/v1/orders/{order}")).await["state"].clone();
        if state == "completed" {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            let all = jobs(client, &format!("order={order}")).await;
            let machines = client.ok("/api/v1/machines").await;
            panic!("order {order} never completed: {all:#?} {machines:#}");
        }
        for job in jobs(client, "state=awaiting_load").await {
            let (status, body) = client
                .post(&format!("/api/v1/jobs/{}/load", job["id"]), json!({}))
                .await;
            assert_eq!(status, 200, "load {job}: {body}");
        }
        // The restart cut the assembly runs short: the operator finds them all good.
        for job in jobs(client, "state=interrupted").await {
            let body = json!({ "good": job["units"], "reason": "checked after the restart" });
            let (status, answer) = client
                .post(&format!("/api/v1/jobs/{}/resolve", job["id"]), body)
                .await;
            assert_eq!(status, 200, "resolve {job}: {answer}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_load_sends_the_run_and_a_refusal_requeues_it() {
    a_load_sends_the_run_and_a_refusal_requeues_it("sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_load_sends_the_run_and_a_refusal_requeues_it() {
    a_load_sends_the_run_and_a_refusal_requeues_it("postgres").await;
}

/// Cancelling an order: its run waiting for a load goes back (cancelled, its material to
/// stock, the machine free); its run waiting for an unload still needs it, and the unload
/// settles that run only.
async fn a_cancelled_orders_waiting_runs(kind: &str) {
    let db = TestDb::of(kind).await;
    let dir = tempfile::tempdir().unwrap();
    let both = format!("{LOAD}\n{UNLOAD}");
    let plant = TestPlant::start(&db, &plant_with_laser_tasks(6000.0, 0.0, &both)).await;
    let client = &plant.client;
    let order = client
        .submit_and_approve(bracket_spec(dir.path(), 12).to_str().unwrap())
        .await;
    wait_until("both laser runs wait for their load", || async {
        jobs(client, "state=awaiting_load").await.len() == 2
    })
    .await;
    let waiting = jobs(client, "state=awaiting_load").await;
    let (loaded, left) = (&waiting[0], &waiting[1]);
    let (status, body) = client
        .post(&format!("/api/v1/jobs/{}/load", loaded["id"]), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    let unloading = first_in(client, "awaiting_unload", None).await;
    assert_eq!(unloading["id"], loaded["id"]);
    client.cancel(&order).await;
    let after = jobs(client, &format!("order={order}")).await;
    let state_of = |job: &Value| {
        after
            .iter()
            .find(|j| j["id"] == job["id"])
            .map(|j| j["state"].clone())
            .unwrap()
    };
    assert_eq!(state_of(left), "cancelled");
    assert_eq!(state_of(loaded), "awaiting_unload");
    let machine = client
        .ok(&format!(
            "/api/v1/machines/{}",
            left["machine_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(machine["current_job"], Value::Null, "{machine}");
    let (status, body) = client
        .post(&format!("/api/v1/jobs/{}/unload", loaded["id"]), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "done");
    assert_eq!(
        unit_rows_of(client, &order, loaded["id"].as_i64().unwrap())
            .await
            .len(),
        6
    );
    let view = client.ok(&format!("/api/v1/orders/{order}")).await;
    assert_eq!(view["state"], "cancelled");
    common::assert_nothing_reserved(client).await;
    assert_consistent(client).await;
    plant.shutdown.cancel();
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_cancelled_orders_waiting_runs() {
    a_cancelled_orders_waiting_runs("sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_cancelled_orders_waiting_runs() {
    a_cancelled_orders_waiting_runs("postgres").await;
}
