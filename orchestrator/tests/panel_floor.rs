//! The floor pages on a real plant: the fleet board and its live stream, a machine's page, the
//! interrupted runs and the event log render what the plant holds, and their htmx actions
//! (pause, resume, abort, maintenance, resolve) change the plant as the API's do.

mod common;

use std::time::Duration;

use common::panel::Panel;
use common::{BRACKET_SPEC, TestDb, TestPlant, plant_config, wait_until};
use futures::StreamExt;
use microfab::auth::Role;
use reqwest::Method;
use serde_json::Value;

const MACHINES: [&str; 9] = [
    "laser-1",
    "laser-2",
    "router-1",
    "router-2",
    "mill-1",
    "assembly-1",
    "assembly-2",
    "assembly-3",
    "assembly-4",
];

async fn operator(plant: &TestPlant) -> Panel {
    Panel::sign_in(plant, "olga", Role::Operator).await
}

fn testid(id: &str) -> String {
    format!(r#"data-testid="{id}""#)
}

/// An approved bracket order on a plant whose machines take real time (time scale 1), and the
/// laser that got its first run, with that run's id.
async fn a_laser_at_work(plant: &TestPlant) -> (String, i64) {
    let order = plant.client.submit_file(BRACKET_SPEC).await;
    let id = order["id"].as_str().unwrap();
    let (status, body) = plant
        .client
        .post(&format!("/api/v1/orders/{id}/approve"), Value::Null)
        .await;
    assert_eq!(status, 200, "{body}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let machines = plant.client.ok("/api/v1/machines").await;
        let busy = machines.as_array().unwrap().iter().find_map(|m| {
            (m["state"] == "busy" && m["capabilities"][0] == "laser").then(|| {
                (
                    m["id"].as_str().unwrap().to_string(),
                    m["current_job"].as_i64().unwrap(),
                )
            })
        });
        if let Some(busy) = busy {
            return busy;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no laser took the order's run"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn machine_state(plant: &TestPlant, id: &str) -> Value {
    plant.client.ok(&format!("/api/v1/machines/{id}")).await["state"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_board_shows_every_machine_and_its_commands_change_the_plant() {
    let db = TestDb::sqlite().await;
    let plant = TestPlant::start(&db, &plant_config(1.0, 0.0)).await;
    let panel = operator(&plant).await;

    let board = panel.ok("/fleet").await;
    for id in MACHINES {
        assert!(
            board.contains(&testid(&format!("machine-card-{id}"))),
            "{id}"
        );
        assert!(
            board.contains(&format!(r#"sse-swap="machine-{id}""#)),
            "{id}"
        );
    }
    assert!(board.contains(r#"sse-connect="/fleet/stream""#));
    assert!(board.contains(r#"data-testid="nav-fleet" class="active""#));

    let (laser, job) = a_laser_at_work(&plant).await;
    let board = panel.ok("/fleet").await;
    let card = card_of(&board, &laser);
    assert!(card.contains(r#"data-state="busy""#), "{card}");
    assert!(card.contains(&format!("#{job}")), "{card}");
    assert!(card.contains("gussets"), "the step: {card}");
    assert!(card.contains(&testid(&format!("pause-{laser}"))), "{card}");

    // A change without the page's CSRF token is refused, and changes nothing.
    let session = panel.request(Method::GET, "/").build().unwrap().headers()["cookie"].clone();
    let forged = panel
        .http
        .post(format!("{}/machines/{laser}/pause", panel.base))
        .header("cookie", session)
        .header("hx-request", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status().as_u16(), 403);
    assert_eq!(machine_state(&plant, &laser).await, "busy");

    // A maker sees no fleet and commands no machine.
    let maker = Panel::sign_in(&plant, "mia", Role::Maker).await;
    let (status, page) = maker.page("/fleet").await;
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("Your account may not do this."));
    let (status, _) = maker.action(&format!("/machines/{laser}/pause"), &[]).await;
    assert_eq!(status, 403);
    assert_eq!(machine_state(&plant, &laser).await, "busy");

    // Pause: the answer is the card, with the message out of band into the flash area. The
    // machine reports that it paused a moment later (the stream brings that card).
    let (status, answer) = panel.action(&format!("/machines/{laser}/pause"), &[]).await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer.contains(&testid(&format!("machine-card-{laser}"))),
        "{answer}"
    );
    assert!(answer.contains(r#"hx-swap-oob="innerHTML""#) && answer.contains("Machine paused."));
    wait_until("the machine reports it paused", || async {
        machine_state(&plant, &laser).await == "paused"
    })
    .await;
    let board = panel.ok("/fleet").await;
    let card = card_of(&board, &laser);
    assert!(card.contains(r#"data-state="paused""#), "{card}");
    assert!(card.contains(&testid(&format!("resume-{laser}"))), "{card}");
    let log = plant.client.ok("/api/v1/events/log").await;
    assert!(
        log.as_array().unwrap().iter().any(|e| e["actor"] == "olga"
            && e["event"]["kind"] == "machine_commanded"
            && e["event"]["command"] == "pause"),
        "the pause is in the log with who gave it"
    );
    let (status, answer) = panel
        .action(&format!("/machines/{laser}/resume"), &[])
        .await;
    assert_eq!(status, 200, "{answer}");
    wait_until("the machine reports it goes on", || async {
        machine_state(&plant, &laser).await == "busy"
    })
    .await;

    // Maintenance needs a reason: without one the plant's refusal is shown in the flash area.
    let response = panel
        .request(Method::POST, "/machines/assembly-1/maintenance")
        .header("hx-request", "true")
        .form(&[("on", "true")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 422);
    assert_eq!(response.headers()["hx-retarget"], "#flash");
    let refusal = response.text().await.unwrap();
    assert!(
        refusal.contains(r#"data-tone="error""#) && refusal.contains("say why"),
        "{refusal}"
    );
    assert_eq!(machine_state(&plant, "assembly-1").await, "idle");

    // The reason from htmx's prompt, percent-encoded as htmx sends what a header cannot carry.
    let response = panel
        .request(Method::POST, "/machines/assembly-1/maintenance")
        .header("hx-request", "true")
        .header("hx-prompt", "%EB%85%B8%EC%A6%90%20swap")
        .header("hx-prompt-uri-autoencoded", "true")
        .form(&[("on", "true")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let card = response.text().await.unwrap();
    assert!(
        card.contains(r#"data-state="maintenance""#) && card.contains("노즐 swap"),
        "{card}"
    );
    assert_eq!(machine_state(&plant, "assembly-1").await, "maintenance");

    // The filter shows only what matches.
    let filtered = panel.ok("/fleet?state=maintenance").await;
    assert!(filtered.contains(&testid("machine-card-assembly-1")));
    assert!(!filtered.contains(&testid(&format!("machine-card-{laser}"))));
    let lasers = panel.ok("/fleet?capability=laser").await;
    assert!(lasers.contains(&testid("machine-card-laser-2")));
    assert!(!lasers.contains(&testid("machine-card-assembly-1")));

    let (status, _) = panel
        .action("/machines/assembly-1/maintenance", &[("on", "false")])
        .await;
    assert_eq!(status, 200);
    assert_eq!(machine_state(&plant, "assembly-1").await, "idle");

    // A machine with a run may not go into maintenance: a conflict, in the catalog's words.
    let (status, refusal) = panel
        .action(
            &format!("/machines/{laser}/maintenance"),
            &[("on", "true"), ("reason", "belt check")],
        )
        .await;
    assert_eq!(status, 409, "{refusal}");
    assert!(refusal.contains("Not possible right now.") && refusal.contains(&laser));
    plant.shutdown.cancel();
}

/// The card of machine `id` in a page.
fn card_of<'a>(page: &'a str, id: &str) -> &'a str {
    let start = page
        .find(&testid(&format!("machine-card-{id}")))
        .unwrap_or_else(|| panic!("no card for {id}"));
    let end = page[start..].find("</article>").unwrap() + start;
    &page[start..end]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_board_stream_pushes_the_card_of_a_machine_that_changed() {
    let db = TestDb::sqlite().await;
    let plant = TestPlant::start(&db, &plant_config(1.0, 0.0)).await;
    let panel = operator(&plant).await;
    // The machines' first reports after the start are changes too: let them pass.
    wait_until("every machine has reported", || async {
        let machines = plant.client.ok("/api/v1/machines").await;
        machines
            .as_array()
            .unwrap()
            .iter()
            .all(|m| !m["live"]["condition"].is_null())
    })
    .await;
    let response = panel
        .request(Method::GET, "/fleet/stream")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut stream = response.bytes_stream();

    let (status, body) = plant
        .client
        .post(
            "/api/v1/machines/mill-1/maintenance",
            serde_json::json!({ "on": true, "reason": "spindle" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut seen = String::new();
    let card = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(chunk) = stream.next().await {
            seen.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            if let Some(at) = seen.find("event: machine-mill-1\n") {
                let rest = &seen[at..];
                if let Some(end) = rest.find("\n\n") {
                    return rest[..end].to_string();
                }
            }
        }
        panic!("the stream ended");
    })
    .await
    .unwrap_or_else(|_| panic!("no card for mill-1 within 10 s; got {seen:?}"));
    assert!(card.contains(r#"data-state="maintenance""#), "{card}");
    assert!(card.contains("spindle"), "{card}");
    assert!(
        !seen.contains("event: machine-assembly-1"),
        "only machines that changed are sent: {:?}",
        seen.lines()
            .filter(|l| l.starts_with("event:"))
            .collect::<Vec<_>>()
    );
    plant.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_run_shows_on_its_machine_and_is_resolved_from_the_interrupted_page() {
    let db = TestDb::sqlite().await;
    let plant = TestPlant::start(&db, &plant_config(1.0, 0.0)).await;
    let panel = operator(&plant).await;
    let (laser, job) = a_laser_at_work(&plant).await;

    let (status, answer) = panel.action(&format!("/machines/{laser}/abort"), &[]).await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("Run aborted."));
    wait_until("the aborted run is interrupted", || async {
        plant
            .client
            .ok("/api/v1/jobs?state=interrupted")
            .await
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["id"] == job)
    })
    .await;

    let page = panel.ok(&format!("/machines/{laser}")).await;
    assert!(
        page.contains(&testid(&format!("machine-run-{job}"))),
        "{page}"
    );
    let counters = &page[page.find(&testid("machine-counters")).unwrap()..];
    let interrupted = &counters[counters.find("Runs interrupted").unwrap()..];
    assert!(
        interrupted.starts_with("Runs interrupted</dt><dd>1</dd>"),
        "{interrupted}"
    );
    assert!(page.contains("Interrupted run"), "the hold: {page}");
    assert!(
        page.contains("has no serial console"),
        "a simulated machine has none"
    );
    let (status, _) = panel.page(&format!("/machines/{laser}/console")).await;
    assert_eq!(status, 404);
    let (status, missing) = panel.page("/machines/no-such-machine").await;
    assert_eq!(status, 404);
    assert!(missing.contains("Not found.") && missing.contains("no-such-machine"));

    let board = panel.ok("/fleet").await;
    let card = card_of(&board, &laser);
    assert!(card.contains(r#"data-state="held""#), "{card}");
    assert!(
        card.contains(&format!(r#"href="/interrupted#run-{job}""#)),
        "{card}"
    );
    let page = panel.ok("/interrupted").await;
    assert!(
        page.contains(&testid(&format!("interrupted-{job}"))),
        "{page}"
    );
    assert!(page.contains(&testid(&format!("resolve-{job}"))));
    assert!(
        !page.contains(&testid(&format!("resume-run-{job}"))),
        "a simulated machine cannot go on from a line"
    );

    let resolve = format!("/interrupted/{job}/resolve");
    let (status, refusal) = panel
        .action(&resolve, &[("good", "two"), ("reason", "counted")])
        .await;
    assert_eq!(status, 422);
    assert!(
        refusal.contains("Good units: not a whole number"),
        "{refusal}"
    );
    let (status, refusal) = panel
        .action(&resolve, &[("good", "0"), ("reason", " ")])
        .await;
    assert_eq!(status, 422, "the plant wants a reason: {refusal}");
    let (status, done) = panel
        .action(&resolve, &[("good", "0"), ("reason", "gussets scorched")])
        .await;
    assert_eq!(status, 200, "{done}");
    assert!(done.contains("Run resolved."));
    let resolved = plant.client.ok("/api/v1/jobs").await;
    let resolved = resolved
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["id"] == job)
        .unwrap();
    assert_ne!(resolved["state"], "interrupted");
    assert!(
        !panel
            .ok("/interrupted")
            .await
            .contains(&testid(&format!("interrupted-{job}")))
    );
    let (status, refusal) = panel
        .action(
            &format!("/interrupted/{job}/resume"),
            &[("reason", "again")],
        )
        .await;
    assert_eq!(status, 409, "{refusal}");
    plant.shutdown.cancel();
}

/// The seqs of the event rows in a page, in order.
fn event_rows(page: &str) -> Vec<i64> {
    page.match_indices(r#"data-testid="event-"#)
        .map(|(at, hook)| {
            let rest = &page[at + hook.len()..];
            rest[..rest.find('"').unwrap()].parse().unwrap()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_log_pages_filters_and_follows_new_events() {
    let db = TestDb::sqlite().await;
    let plant = TestPlant::start(&db, &plant_config(1.0, 0.0)).await;
    let panel = operator(&plant).await;
    for round in 0..100 {
        let (status, body) = plant
            .client
            .post(
                "/api/v1/machines/mill-1/maintenance",
                serde_json::json!({ "on": round % 2 == 0, "reason": "calibration" }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }

    let first = panel.ok("/events").await;
    let seqs = event_rows(&first);
    assert_eq!(seqs.len(), 100, "a page");
    assert!(seqs.windows(2).all(|w| w[0] > w[1]), "newest first");
    assert!(
        first.contains(r#"sse-connect="/events/stream""#),
        "the first page follows"
    );
    let older = &first[first.find(r#"class="pager""#).unwrap()..];
    let older = &older[..older.find("</a>").unwrap()];
    assert!(older.contains(&testid("events-older")), "{older}");
    assert!(
        older.contains(&format!("/events?before={}", seqs[99])),
        "{older}"
    );
    let second = panel.ok(&format!("/events?before={}", seqs[99])).await;
    let next = event_rows(&second);
    assert!(
        !next.is_empty() && next[0] < seqs[99],
        "the next page goes on"
    );
    assert!(!second.contains("sse-connect"), "older pages stay still");

    let log = plant.client.ok("/api/v1/events/log").await;
    let api_account = log.as_array().unwrap().last().unwrap()["actor"]
        .as_str()
        .unwrap()
        .to_string();
    let mill = panel
        .ok(&format!(
            "/events?machine=mill-1&kind=machine_maintenance&actor={api_account}"
        ))
        .await;
    let rows = event_rows(&mill);
    assert_eq!(rows.len(), 100, "each maintenance change once, on one page");
    assert_eq!(
        mill.matches(r#"data-kind="machine_maintenance""#).count(),
        100
    );
    let none = panel.ok("/events?actor=nobody").await;
    assert!(event_rows(&none).is_empty() && none.contains("No events match."));
    let future = panel.ok("/events?since=2999-01-01T00%3A00").await;
    assert!(event_rows(&future).is_empty());
    let (status, wrong) = panel.page("/events?until=tomorrow").await;
    assert_eq!(status, 422);
    assert!(
        wrong.contains("Until (UTC): not a date and time"),
        "{wrong}"
    );

    // New events that match are pushed as rows; others are not.
    let response = panel
        .request(Method::GET, "/events/stream?machine=mill-1")
        .send()
        .await
        .unwrap();
    let mut stream = response.bytes_stream();
    for (machine, on) in [("laser-1", true), ("mill-1", true)] {
        let (status, body) = plant
            .client
            .post(
                &format!("/api/v1/machines/{machine}/maintenance"),
                serde_json::json!({ "on": on, "reason": "lens" }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let mut seen = String::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        while !seen.contains("</tr>") {
            let chunk = stream.next().await.expect("the stream goes on").unwrap();
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no row within 10 s: {seen:?}"));
    assert!(seen.starts_with("event: event\n"), "{seen}");
    assert!(
        seen.contains("/machines/mill-1") && !seen.contains("laser-1"),
        "{seen}"
    );
    plant.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_speak_the_asked_language_and_assets_are_cached() {
    let db = TestDb::sqlite().await;
    let plant = TestPlant::start(&db, &plant_config(1.0, 0.0)).await;
    let panel = operator(&plant).await;
    let text = |request: reqwest::RequestBuilder| async move {
        request.send().await.unwrap().text().await.unwrap()
    };

    let korean = text(
        panel
            .request(Method::GET, "/fleet")
            .header("accept-language", "ko-KR,ko;q=0.9,en;q=0.5"),
    )
    .await;
    assert!(korean.contains(r#"<html lang="ko">"#) && korean.contains("설비 현황"));
    let chosen = text(
        panel
            .request(Method::GET, "/fleet")
            .header("accept-language", "ko")
            .header("cookie", "lang=en"),
    )
    .await;
    assert!(chosen.contains(r#"<html lang="en">"#) && chosen.contains("Fleet"));
    assert!(
        chosen.contains(r#"href="/lang/ko?next=%2Ffleet""#),
        "the switch comes back"
    );

    let switched = panel
        .request(Method::GET, "/lang/ko?next=/events")
        .send()
        .await
        .unwrap();
    assert_eq!(switched.status().as_u16(), 303);
    assert_eq!(switched.headers()["location"], "/events");
    assert!(
        switched.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .starts_with("lang=ko;")
    );
    let elsewhere = panel
        .request(Method::GET, "/lang/en?next=//elsewhere.example/")
        .send()
        .await
        .unwrap();
    assert_eq!(
        elsewhere.headers()["location"],
        "/",
        "never to another site"
    );

    let home = panel.request(Method::GET, "/").send().await.unwrap();
    assert_eq!(home.status().as_u16(), 303);
    assert_eq!(home.headers()["location"], "/fleet");

    let css = &chosen[chosen.find("/assets/app.").unwrap()..];
    let css = &css[..css.find('"').unwrap()];
    let asset = panel.request(Method::GET, css).send().await.unwrap();
    assert_eq!(asset.status().as_u16(), 200);
    assert_eq!(asset.headers()["content-type"], "text/css; charset=utf-8");
    assert!(
        asset.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    let (status, _) = panel.page("/assets/app.css").await;
    assert_eq!(status, 404, "only the hashed name is served");
    plant.shutdown.cancel();
}
