//! `/metrics` on a real `microfab serve`: an order run through, then a second one waiting on
//! machines in maintenance; each time the scrape says what the API says (units, orders, runs,
//! machine states, stock, tasks, the log), and `promtool check metrics` finds nothing to say.
//! Who may scrape: this host without an account, unless `[metrics] allow_localhost = false`;
//! then operators and admins only. On SQLite and PostgreSQL.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use common::scrape::{Scrape, scrape};
use common::{
    Client, TestDb, account, bracket_spec_in, plant_config, spawn_server, wait_until, write_config,
};
use microfab::auth::Role;
use serde_json::{Value, json};

/// `promtool check metrics` (Prometheus 2.42's linter) on the body: no problem reported.
fn promtool_is_clean(body: &str) {
    let mut child = Command::new("/usr/bin/promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package) is installed");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && said.trim().is_empty(),
        "promtool: {said}"
    );
}

/// Unix seconds of an RFC 3339 instant the API shows.
fn unix_seconds(rfc3339: &str) -> f64 {
    let at = time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .unwrap();
    at.unix_timestamp_nanos() as f64 / 1e9
}

fn count_by<'a>(items: impl Iterator<Item = &'a Value>, key: &str) -> BTreeMap<String, f64> {
    let mut counts = BTreeMap::new();
    for item in items {
        *counts
            .entry(item[key].as_str().unwrap().to_string())
            .or_insert(0.0) += 1.0;
    }
    counts
}

/// What the API says that the metrics must say too.
#[derive(PartialEq)]
struct ApiState {
    orders: Value,
    jobs: Value,
    machines: Value,
    materials: Value,
    tasks: Value,
}

impl ApiState {
    async fn read(client: &Client) -> ApiState {
        let mut machines = client.ok("/api/v1/machines").await;
        // Live status and held-up time move on their own; the state is what is compared.
        for machine in machines.as_array_mut().unwrap() {
            machine
                .as_object_mut()
                .unwrap()
                .retain(|k, _| k == "id" || k == "state");
        }
        ApiState {
            orders: client.ok("/api/v1/orders").await,
            jobs: client.ok("/api/v1/jobs").await,
            machines,
            materials: client.ok("/api/v1/materials").await,
            tasks: count_by(
                client.ok("/api/v1/tasks").await.as_array().unwrap().iter(),
                "kind",
            )
            .into_iter()
            .map(|(k, v)| (k, json!(v)))
            .collect(),
        }
    }
}

/// A scrape between two equal reads of the API (the plant did not move meanwhile).
async fn scrape_with_api(anonymous: &Client, client: &Client) -> (Scrape, ApiState) {
    loop {
        let before = ApiState::read(client).await;
        let metrics = scrape(anonymous).await;
        if ApiState::read(client).await == before {
            return (metrics, before);
        }
    }
}

async fn last_event_seq(client: &Client) -> f64 {
    let mut after = 0;
    loop {
        let page = client
            .ok(&format!("/api/v1/events/log?after={after}&limit=10000"))
            .await;
        match page.as_array().unwrap().last() {
            Some(event) => after = event["seq"].as_i64().unwrap(),
            None => return after as f64,
        }
    }
}

fn agrees_with_the_api(m: &Scrape, api: &ApiState, initial_stock: &BTreeMap<String, f64>) {
    let orders = api.orders.as_array().unwrap();
    let jobs = api.jobs.as_array().unwrap();

    // Units per product, step and result: the sum of the orders' step counts. The final step
    // (the last, which nothing comes after) made the order's good units.
    let mut units: BTreeMap<(String, String, &str, &str), f64> = BTreeMap::new();
    for order in orders {
        let steps = order["steps"].as_array().unwrap();
        for step in steps {
            let is_final = !steps.iter().any(|later| {
                later["after"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|id| *id == step["id"])
            });
            if is_final {
                assert_eq!(step["good"], order["good"], "{order}");
            }
            for result in ["good", "scrapped"] {
                let key = (
                    order["product"].as_str().unwrap().to_string(),
                    step["id"].as_str().unwrap().to_string(),
                    if is_final { "true" } else { "false" },
                    result,
                );
                *units.entry(key).or_insert(0.0) += step[result].as_f64().unwrap();
            }
        }
    }
    for ((product, step, is_final, result), n) in &units {
        let labels = [
            ("product", product.as_str()),
            ("step", step),
            ("final", is_final),
            ("result", result),
        ];
        assert_eq!(m.get("microfab_units_total", &labels), *n, "{labels:?}");
    }
    let series = m
        .samples
        .keys()
        .filter(|(n, _)| n == "microfab_units_total");
    assert_eq!(series.count(), units.len());

    // Orders and runs by state: every state present, zeros included.
    let by_state = count_by(orders.iter(), "state");
    for (state, n) in m.by("microfab_orders", "state") {
        assert_eq!(
            n,
            by_state.get(&state).copied().unwrap_or(0.0),
            "orders {state}"
        );
    }
    assert_eq!(m.by("microfab_orders", "state").len(), 6);
    let by_state = count_by(jobs.iter(), "state");
    for (state, n) in m.by("microfab_jobs", "state") {
        assert_eq!(
            n,
            by_state.get(&state).copied().unwrap_or(0.0),
            "jobs {state}"
        );
    }
    assert_eq!(m.by("microfab_jobs", "state").len(), 9);
    let wip: f64 = jobs
        .iter()
        .filter(|j| {
            [
                "awaiting_load",
                "dispatched",
                "running",
                "awaiting_unload",
                "interrupted",
            ]
            .contains(&j["state"].as_str().unwrap())
        })
        .map(|j| j["units"].as_f64().unwrap())
        .sum();
    assert_eq!(m.get("microfab_wip_units", &[]), wip);

    // Queued runs and runs done per capability of their step.
    let capability = |job: &Value| -> String {
        let order = orders.iter().find(|o| o["id"] == job["order_id"]).unwrap();
        let step = order["steps"].as_array().unwrap().iter();
        step.clone().find(|s| s["id"] == job["step"]).unwrap()["capability"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let queued = m.by("microfab_queued_runs", "capability");
    for cap in ["laser", "cnc-3axis", "manual:assembly"] {
        let planned = jobs
            .iter()
            .filter(|j| j["state"] == "planned" && capability(j) == cap)
            .count() as f64;
        assert_eq!(queued[cap], planned, "queued {cap}");
        let done = jobs
            .iter()
            .filter(|j| j["state"] == "done" && capability(j) == cap)
            .count() as f64;
        for kind in ["planned", "actual"] {
            let labels = [("capability", cap), ("kind", kind)];
            let count = m.value("microfab_job_duration_seconds_count", &labels);
            assert_eq!(count.unwrap_or(0.0), done, "{labels:?}");
        }
    }

    // Active orders, each with its quantity, good units and due date.
    let active: Vec<&Value> = orders
        .iter()
        .filter(|o| o["state"] == "approved" || o["state"] == "in_progress")
        .collect();
    assert_eq!(
        m.by("microfab_order_quantity_units", "order").len(),
        active.len()
    );
    let mut late = 0.0;
    for order in &active {
        let labels = [
            ("order", order["id"].as_str().unwrap()),
            ("product", order["product"].as_str().unwrap()),
        ];
        assert_eq!(
            m.get("microfab_order_quantity_units", &labels),
            order["quantity"].as_f64().unwrap()
        );
        assert_eq!(
            m.get("microfab_order_good_units", &labels),
            order["good"].as_f64().unwrap()
        );
        let due = unix_seconds(order["due"].as_str().unwrap());
        assert_eq!(m.get("microfab_order_due_timestamp_seconds", &labels), due);
        let eta = order["eta"].as_str().map(unix_seconds);
        assert_eq!(
            m.value("microfab_order_eta_timestamp_seconds", &labels),
            eta
        );
        // The due date is months ahead of the plant clock here: late only by its ETA.
        if eta.is_some_and(|eta| eta > due) {
            late += 1.0;
        }
    }
    assert_eq!(m.get("microfab_orders_late", &[]), late);

    // Each machine: 1 for the API's state, 0 for every other.
    for machine in api.machines.as_array().unwrap() {
        let id = machine["id"].as_str().unwrap();
        let states: BTreeMap<String, f64> = m
            .samples
            .iter()
            .filter(|((n, l), _)| n == "microfab_machine_state" && l["machine"] == id)
            .map(|((_, l), v)| (l["state"].clone(), *v))
            .collect();
        assert_eq!(states.len(), 8, "{id}: {states:?}");
        assert_eq!(states[machine["state"].as_str().unwrap()], 1.0, "{id}");
        assert_eq!(states.values().sum::<f64>(), 1.0, "{id}");
        let ran = jobs
            .iter()
            .any(|j| j["machine_id"] == id && j["state"] == "done");
        let busy = m.get("microfab_machine_busy_seconds_total", &[("machine", id)]);
        assert_eq!(busy > 0.0, ran, "{id} busy {busy}");
    }

    // Stock: as the API shows it, and drawn as much as it went down (no restock here).
    for account in api.materials.as_array().unwrap() {
        let labels = [
            ("account", account["id"].as_str().unwrap()),
            ("material", account["material"].as_str().unwrap()),
            ("owner", account["owner"].as_str().unwrap()),
            ("origin", account["origin"].as_str().unwrap()),
            ("unit", account["unit"].as_str().unwrap()),
        ];
        for (metric, field) in [
            ("microfab_material_on_hand", "on_hand"),
            ("microfab_material_reserved", "reserved"),
            ("microfab_material_reorder_level", "reorder_level"),
        ] {
            assert_eq!(
                m.get(metric, &labels),
                account[field].as_f64().unwrap(),
                "{metric}"
            );
        }
        let drawn = initial_stock[labels[0].1] - account["on_hand"].as_f64().unwrap();
        let consumed = m.get("microfab_material_consumed_total", &labels);
        assert!(
            (consumed - drawn).abs() < 1e-9,
            "{labels:?}: {consumed} vs {drawn}"
        );
    }

    // Operator tasks by kind, every kind present.
    let tasks = m.by("microfab_operator_tasks", "kind");
    assert_eq!(tasks.len(), 6);
    for (kind, n) in tasks {
        assert_eq!(n, api.tasks[&kind].as_f64().unwrap_or(0.0), "tasks {kind}");
    }
    assert_eq!(
        m.by("microfab_build_info", "plant")
            .keys()
            .collect::<Vec<_>>(),
        ["test plant"]
    );
}

async fn metrics_say_what_the_api_says(kind: &str) {
    let db = TestDb::of(kind).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &plant_config(20_000.0, 0.05));
    let (_server, client) = spawn_server(&config, &db.url).await;
    let anonymous = client.with_token(None);
    let initial_stock: BTreeMap<String, f64> = client
        .stock()
        .await
        .into_iter()
        .map(|(account, thousandths)| (account, thousandths as f64 / 1000.0))
        .collect();
    let spec = bracket_spec_in(dir.path(), 24, |text| text);
    let spec = spec.to_str().unwrap();

    let first = client.submit_and_approve(spec).await;
    wait_until("the first order completes", || async {
        client.ok(&format!("/api/v1/orders/{first}")).await["state"] == "completed"
    })
    .await;
    let (metrics, api) = scrape_with_api(&anonymous, &client).await;
    agrees_with_the_api(&metrics, &api, &initial_stock);
    promtool_is_clean(&metrics.body);
    let seq = metrics.get("microfab_events_persisted_total", &[]);
    assert!(seq > 0.0 && seq <= last_event_seq(&client).await);
    let dispatches = metrics.get("microfab_dispatch_latency_seconds_count", &[]);
    let runs_given = api
        .jobs
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["machine_id"].is_string());
    assert_eq!(dispatches, runs_given.count() as f64);

    // Every machine in maintenance: a second order is approved and waits, active and queued.
    for machine in api.machines.as_array().unwrap() {
        let id = machine["id"].as_str().unwrap();
        let body = json!({ "on": true, "reason": "metrics test" });
        let (status, answer) = client
            .post(&format!("/api/v1/machines/{id}/maintenance"), body)
            .await;
        assert_eq!(status, 200, "{answer}");
    }
    let second = client.submit_and_approve(spec).await;
    let (metrics, api) = scrape_with_api(&anonymous, &client).await;
    agrees_with_the_api(&metrics, &api, &initial_stock);
    promtool_is_clean(&metrics.body);
    assert_eq!(
        metrics.get(
            "microfab_machine_state",
            &[("machine", "laser-1"), ("state", "maintenance")]
        ),
        1.0
    );
    let labels = [
        ("order", second.as_str()),
        ("product", "Community bench bracket"),
    ];
    assert_eq!(metrics.get("microfab_order_quantity_units", &labels), 24.0);
    assert!(metrics.get("microfab_queued_runs", &[("capability", "laser")]) > 0.0);
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_say_what_the_api_says_on_sqlite() {
    metrics_say_what_the_api_says("sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_say_what_the_api_says_on_postgres() {
    metrics_say_what_the_api_says("postgres").await;
}

/// With `allow_localhost = false` (a proxy on this host), this host is no different from any
/// other: no account 401, a maker 403, an operator or admin 200. OpenMetrics to who asks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_localhost_only_operators_and_admins_scrape() {
    let db = TestDb::sqlite().await;
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}\n[metrics]\nallow_localhost = false\n",
        plant_config(1.0, 0.0)
    );
    let config = write_config(dir.path(), &text);
    let (_server, admin) = spawn_server(&config, &db.url).await;
    let store = microfab::store::Store::connect(&db.url).await.unwrap();
    let maker = account(&store, &admin, "maker-mo", Role::Maker).await;
    let operator = account(&store, &admin, "olga", Role::Operator).await;
    let status = |client: Client| async move {
        let response = client
            .request(reqwest::Method::GET, "/metrics")
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    };
    let (code, body) = status(admin.with_token(None)).await;
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("unauthorized"), "{body}");
    let (code, body) = status(maker).await;
    assert_eq!(code, 403, "{body}");
    assert!(
        body.contains("reading the metrics needs the operator role"),
        "{body}"
    );
    assert_eq!(
        status(operator.with_token(operator.token.as_deref()))
            .await
            .0,
        200
    );
    assert_eq!(
        status(admin.with_token(admin.token.as_deref())).await.0,
        200
    );

    let response = operator
        .request(reqwest::Method::GET, "/metrics")
        .header(
            "accept",
            "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let body = response.text().await.unwrap();
    assert!(body.ends_with("# EOF\n"), "{body}");
    assert!(body.contains("microfab_machine_state{machine=\"laser-1\",state=\"idle\"}"));
}
