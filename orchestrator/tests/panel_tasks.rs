//! The operators' tasks page on a real plant whose lasers need a person before and after each
//! run (and no simulated operators): the page lists the loads and unloads the plant waits on,
//! its one-tap and two-tap actions confirm them as the API does (scrap at unload recorded
//! per piece with its reason), the board's cards show what each machine waits for, the list
//! follows the event log, and a maker is kept out.

mod common;

use std::time::Duration;

use common::panel::Panel;
use common::{BRACKET_SPEC, TestDb, TestPlant, plant_config, wait_until};
use microfab::auth::Role;
use reqwest::Method;
use serde_json::Value;

/// The test plant, its lasers needing a sheet loaded before each run and the parts taken off
/// after it; runs at 300× (a 14-minute laser run takes about 3 s).
fn plant_with_laser_tasks() -> String {
    plant_config(300.0, 0.0)
        + r#"
[operator_tasks.laser]
load = { text = "Load a 6 mm birch sheet and focus", minutes = 3 }
unload = { text = "Take the gussets off the bed and inspect them", minutes = 2 }
"#
}

fn testid(id: &str) -> String {
    format!(r#"data-testid="{id}""#)
}

/// The jobs whose card in `page` offers the action `hook` (`loaded`, `all-good`), in order.
fn jobs_offering(page: &str, hook: &str) -> Vec<i64> {
    let prefix = format!(r#"data-testid="{hook}-"#);
    page.match_indices(&prefix)
        .map(|(at, _)| {
            let rest = &page[at + prefix.len()..];
            rest[..rest.find('"').unwrap()].parse().unwrap()
        })
        .collect()
}

/// The task card `id` (`unload-57`) in a page.
fn task_card<'a>(page: &'a str, id: &str) -> &'a str {
    let start = page
        .find(&testid(&format!("task-{id}")))
        .unwrap_or_else(|| panic!("no card for {id} in {page}"));
    let end = page[start..].find("</article>").unwrap() + start;
    &page[start..end]
}

/// The first job the page offers `hook` for, once it does.
async fn first_offering(panel: &Panel, hook: &str) -> i64 {
    wait_until(&format!("the tasks page offers {hook}"), || async {
        !jobs_offering(&panel.ok("/tasks").await, hook).is_empty()
    })
    .await;
    jobs_offering(&panel.ok("/tasks").await, hook)[0]
}

async fn job(plant: &TestPlant, id: i64) -> Value {
    let jobs = plant.client.ok("/api/v1/jobs").await;
    jobs.as_array()
        .unwrap()
        .iter()
        .find(|j| j["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("no job {id}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_loads_then_unloads_with_scrap_from_the_tasks_page() {
    let db = TestDb::sqlite().await;
    let plant = TestPlant::start(&db, &plant_with_laser_tasks()).await;
    let panel = Panel::sign_in(&plant, "olga", Role::Operator).await;
    assert!(
        panel.ok("/tasks").await.contains(&testid("tasks-none")),
        "nothing waits before there is work"
    );
    let order = plant.client.submit_and_approve(BRACKET_SPEC).await;

    // A laser was given a run and waits for its sheet: the task, and on the board the badge.
    let load = first_offering(&panel, "loaded").await;
    let run = job(&plant, load).await;
    assert_eq!(run["state"], "awaiting_load", "{run}");
    let laser = run["machine_id"].as_str().unwrap().to_string();
    let page = panel.ok("/tasks").await;
    assert!(page.contains(r#"data-testid="nav-tasks" class="active""#));
    assert!(page.contains(r#"sse-connect="/tasks/stream""#));
    let card = task_card(&page, &format!("load-{load}"));
    for shown in [
        laser.as_str(),
        order.as_str(),
        "gussets",
        "Load a 6 mm birch sheet and focus",
        "Held up",
        "data-held-ms=",
    ] {
        assert!(card.contains(shown), "{shown} on the card: {card}");
    }
    let board = panel.ok("/fleet").await;
    let machine_card = &board[board
        .find(&testid(&format!("machine-card-{laser}")))
        .unwrap()..];
    let machine_card = &machine_card[..machine_card.find("</article>").unwrap()];
    assert!(
        machine_card.contains(r#"data-task="load""#)
            && machine_card.contains(&testid(&format!("task-badge-{laser}"))),
        "{machine_card}"
    );
    assert!(
        machine_card.contains(&format!(r#"href="/tasks#task-load-{load}""#)),
        "the badge leads to the task: {machine_card}"
    );
    assert!(
        !machine_card.contains(&testid(&format!("maintenance-on-{laser}"))),
        "a machine waiting for its load is not offered maintenance: {machine_card}"
    );
    let machine_page = panel.ok(&format!("/machines/{laser}")).await;
    assert!(
        machine_page.contains(&testid(&format!("machine-task-load-{load}")))
            && machine_page.contains(&testid("machine-held-up")),
        "the machine page's task line: {machine_page}"
    );

    // "Loaded": one tap, one operation; the run goes to the machine.
    let (status, answer) = panel.action(&format!("/tasks/{load}/load"), &[]).await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("Load confirmed"), "{answer}");
    assert_ne!(job(&plant, load).await["state"], "awaiting_load");
    let (status, refusal) = panel.action(&format!("/tasks/{load}/load"), &[]).await;
    assert_eq!(status, 409, "a second load is refused: {refusal}");
    let log = plant.client.ok("/api/v1/events/log").await;
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .any(|e| e["actor"] == "olga" && e["event"]["kind"] == "job_loaded"),
        "the load is in the log with who confirmed it"
    );

    // The run ends and waits to be unloaded.
    wait_until("the loaded run waits for its unload", || async {
        job(&plant, load).await["state"] == "awaiting_unload"
    })
    .await;
    let page = panel.ok("/tasks").await;
    let card = task_card(&page, &format!("unload-{load}"));
    for hook in ["all-good", "scrap-open", "scrap-count", "scrap-confirm"] {
        assert!(card.contains(&testid(&format!("{hook}-{load}"))), "{card}");
    }
    let units = run["units"].as_i64().unwrap();

    // More scrap than pieces: the plant's refusal, naming the field, and nothing changes.
    let (status, refusal) = panel
        .action(
            &format!("/tasks/{load}/unload"),
            &[("scrap", &(units + 1).to_string()), ("reason", "warped")],
        )
        .await;
    assert_eq!(status, 422, "{refusal}");
    assert!(refusal.contains("scrap"), "{refusal}");
    assert_eq!(job(&plant, load).await["state"], "awaiting_unload");
    let (status, refusal) = panel
        .action(
            &format!("/tasks/{load}/unload"),
            &[("scrap", "one"), ("reason", "warped")],
        )
        .await;
    assert_eq!(status, 422);
    assert!(
        refusal.contains("Scrapped pieces: not a whole number"),
        "{refusal}"
    );

    // "Scrap…", then "Confirm": one piece, the chip's reason typed over by the operator.
    let (status, answer) = panel
        .action(
            &format!("/tasks/{load}/unload"),
            &[
                ("scrap", "1"),
                ("reason", "warped"),
                ("other", "delaminated at the corner"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("Unload confirmed"), "{answer}");
    let done = job(&plant, load).await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(
        (done["good"].as_i64(), done["scrapped"].as_i64()),
        (Some(units - 1), Some(1)),
        "{done}"
    );
    let pieces = plant
        .client
        .ok(&format!("/api/v1/orders/{order}/units"))
        .await;
    let scrapped: Vec<&Value> = pieces
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["job_id"] == load && u["result"] == "scrapped")
        .collect();
    assert_eq!(scrapped.len(), 1, "{pieces}");
    assert_eq!(scrapped[0]["reason"], "delaminated at the corner");
    assert!(
        !panel
            .ok("/tasks")
            .await
            .contains(&testid(&format!("task-unload-{load}"))),
        "the task is gone"
    );

    // The next unload with "All good": the default inspection, every piece good.
    let loads = jobs_offering(&panel.ok("/tasks").await, "loaded");
    for next in &loads {
        let (status, answer) = panel.action(&format!("/tasks/{next}/load"), &[]).await;
        assert_eq!(status, 200, "{answer}");
    }
    let unload = first_offering(&panel, "all-good").await;
    let (status, answer) = panel.action(&format!("/tasks/{unload}/unload"), &[]).await;
    assert_eq!(status, 200, "{answer}");
    let all_good = job(&plant, unload).await;
    assert_eq!(
        (all_good["state"].as_str(), all_good["scrapped"].as_i64()),
        (Some("done"), Some(0)),
        "{all_good}"
    );
    plant.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_is_offered_as_all_scrap_not_all_good() {
    let db = TestDb::sqlite().await;
    // The laser runs fail part-way (the seeds make the first ones do); the machine reports no
    // count, only the failure.
    let config = plant_with_laser_tasks()
        .replace(
            "seed = 100, scrap_rate = 0",
            "seed = 100, scrap_rate = 0, failure_rate = 0.999",
        )
        .replace(
            "seed = 101, scrap_rate = 0",
            "seed = 101, scrap_rate = 0, failure_rate = 0.999",
        );
    let plant = TestPlant::start(&db, &config).await;
    let panel = Panel::sign_in(&plant, "olga", Role::Operator).await;
    plant.client.submit_and_approve(BRACKET_SPEC).await;
    let load = first_offering(&panel, "loaded").await;
    let (status, answer) = panel.action(&format!("/tasks/{load}/load"), &[]).await;
    assert_eq!(status, 200, "{answer}");
    wait_until("the failed run waits for its unload", || async {
        job(&plant, load).await["state"] == "awaiting_unload"
    })
    .await;
    let units = job(&plant, load).await["units"].as_i64().unwrap();

    let page = panel.ok("/tasks").await;
    let card = task_card(&page, &format!("unload-{load}"));
    assert!(
        card.contains(&format!("The machine reported {units} scrapped."))
            && card.contains(&format!("As reported: 0 good, {units} scrap")),
        "{card}"
    );
    assert!(!card.contains("All good"), "{card}");
    let (status, answer) = panel.action(&format!("/tasks/{load}/unload"), &[]).await;
    assert_eq!(status, 200, "{answer}");
    let failed = job(&plant, load).await;
    assert_eq!(
        (failed["state"].as_str(), failed["scrapped"].as_i64()),
        (Some("failed"), Some(units)),
        "{failed}"
    );
    plant.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn due_maintenance_is_done_from_the_tasks_page() {
    let db = TestDb::sqlite().await;
    let config = plant_config(300.0, 0.0).replacen(
        "driver = { kind = \"sim\", seed = 100, scrap_rate = 0 }",
        "driver = { kind = \"sim\", seed = 100, scrap_rate = 0 }\n\
         maintenance = [{ task = \"clean lens\", every_runs = 1, minutes = 10 }]",
        1,
    );
    let plant = TestPlant::start(&db, &config).await;
    let panel = Panel::sign_in(&plant, "olga", Role::Operator).await;
    plant.client.submit_and_approve(BRACKET_SPEC).await;
    let hook = testid("maintained-maintenance-laser-1-0");
    wait_until("the lens is due on the tasks page", || async {
        panel.ok("/tasks").await.contains(&hook)
    })
    .await;
    let page = panel.ok("/tasks").await;
    let card = task_card(&page, "maintenance-laser-1-0");
    assert!(
        card.contains("clean lens") && card.contains("Maintenance"),
        "{card}"
    );
    let board = panel.ok("/fleet").await;
    let laser = &board[board.find(&testid("machine-card-laser-1")).unwrap()..];
    let laser = &laser[..laser.find("</article>").unwrap()];
    assert!(
        laser.contains(r#"data-task="maintenance""#)
            && laser.contains(&testid("task-badge-laser-1")),
        "{laser}"
    );

    // Due as its run ended or while it runs: the maintenance waits for the machine to be empty.
    wait_until("laser-1 holds no run", || async {
        plant.client.ok("/api/v1/machines/laser-1").await["current_job"].is_null()
    })
    .await;
    let (status, refusal) = panel
        .action(
            "/tasks/machines/laser-1/maintained",
            &[("task", "oil the rails")],
        )
        .await;
    assert!((400..500).contains(&status), "{status}: {refusal}");
    let (status, answer) = panel
        .action(
            "/tasks/machines/laser-1/maintained",
            &[("task", "clean lens")],
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("Maintenance done:"), "{answer}");
    let log = plant.client.ok("/api/v1/events/log?limit=10000").await;
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .any(|e| e["actor"] == "olga" && e["event"]["kind"] == "maintenance_done"),
        "the maintenance is in the log with who did it"
    );
    plant.shutdown.cancel();
}

/// A plant with one manual station, whose runs end when a person says the work is done.
const MANUAL_STATION: &str = r#"
[plant]
name = "bench"

[[machines]]
id = "bench-1"
name = "bench 1"
capabilities = ["manual:assembly"]
envelope_mm = [2000, 1000, 1000]
driver = { kind = "manual" }
"#;

const ASSEMBLY_SPEC: &str = r#"spec_version = 1
product = "Bench kit"
maker = "bcn-street-furniture"
quantity = 2
priority = "standard"
due = "2030-06-30"

[[steps]]
id = "assembly"
capability = "manual:assembly"
instructions = "Screw the slats to the frame."
units_per_run = 1
run_seconds = 240
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_station_run_is_confirmed_done_from_the_tasks_page() {
    let db = TestDb::sqlite().await;
    let plant = TestPlant::start(&db, MANUAL_STATION).await;
    let panel = Panel::sign_in(&plant, "olga", Role::Operator).await;
    let (status, submitted) = plant
        .client
        .post(
            "/api/v1/orders",
            serde_json::json!({ "spec_toml": ASSEMBLY_SPEC, "source_name": "kit.toml" }),
        )
        .await;
    assert_eq!(status, 201, "{submitted}");
    let order = submitted["order"]["id"].as_str().unwrap();
    let (status, body) = plant
        .client
        .post(&format!("/api/v1/orders/{order}/approve"), Value::Null)
        .await;
    assert_eq!(status, 200, "{body}");

    let run = first_offering(&panel, "done").await;
    let page = panel.ok("/tasks").await;
    let card = task_card(&page, &format!("manual_run-{run}"));
    assert!(
        card.contains("bench-1") && card.contains("Manual run"),
        "{card}"
    );
    let (status, answer) = panel.action(&format!("/tasks/{run}/confirm"), &[]).await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("Confirmed:"), "{answer}");
    wait_until("the confirmed run is done", || async {
        job(&plant, run).await["state"] == "done"
    })
    .await;
    plant.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_task_list_follows_the_plant_and_a_maker_is_kept_out() {
    let db = TestDb::sqlite().await;
    let plant = TestPlant::start(&db, &plant_with_laser_tasks()).await;
    let panel = Panel::sign_in(&plant, "olga", Role::Operator).await;
    let response = panel
        .request(Method::GET, "/tasks/stream")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut lists = Lists::of(response);
    let opening = lists.next(&|_| true).await;
    assert!(opening.contains(&testid("tasks-none")), "{opening}");

    plant.client.submit_and_approve(BRACKET_SPEC).await;
    let list = lists
        .next(&|list| !jobs_offering(list, "loaded").is_empty())
        .await;
    let load = jobs_offering(&list, "loaded")[0];
    let (status, answer) = panel.action(&format!("/tasks/{load}/load"), &[]).await;
    assert_eq!(status, 200, "{answer}");
    lists
        .next(&|list| !jobs_offering(list, "loaded").contains(&load))
        .await;
    lists
        .next(&|list| jobs_offering(list, "all-good").contains(&load))
        .await;

    let maker = Panel::sign_in(&plant, "mia", Role::Maker).await;
    let (status, page) = maker.page("/tasks").await;
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("Your account may not do this."));
    assert!(!maker.ok("/my/orders").await.contains(&testid("nav-tasks")));
    let (status, _) = maker.action(&format!("/tasks/{load}/unload"), &[]).await;
    assert_eq!(status, 403);
    assert_eq!(job(&plant, load).await["state"], "awaiting_unload");
    let (status, _) = maker.page("/tasks/stream").await;
    assert_eq!(status, 403);
    plant.shutdown.cancel();
}

/// The lists a `/tasks/stream` answer carries, one `tasks` message at a time.
struct Lists {
    response: reqwest::Response,
    seen: String,
}

impl Lists {
    fn of(response: reqwest::Response) -> Lists {
        Lists {
            response,
            seen: String::new(),
        }
    }

    /// The next list that satisfies `wanted` (those before it are passed over).
    async fn next(&mut self, wanted: &dyn Fn(&str) -> bool) -> String {
        tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                while let Some(at) = self.seen.find("\n\n") {
                    let message: String = self.seen.drain(..at + 2).collect();
                    let list = message
                        .lines()
                        .filter_map(|l| l.strip_prefix("data:"))
                        .map(|l| l.strip_prefix(' ').unwrap_or(l))
                        .collect::<Vec<_>>()
                        .join("\n");
                    if message.starts_with("event: tasks\n") && wanted(&list) {
                        return list;
                    }
                }
                let chunk = self
                    .response
                    .chunk()
                    .await
                    .unwrap()
                    .expect("the stream goes on");
                self.seen.push_str(&String::from_utf8_lossy(&chunk));
            }
        })
        .await
        .expect("the list came within 30 s")
    }
}
