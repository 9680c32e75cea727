//! The intake, orders, materials, submit and admin pages on a real plant: each renders with
//! its data, a spec with an error is shown at its line and makes nothing, and the pages'
//! htmx actions (approve, reject, restock, adjust, scrap, cancel) change the plant.

mod common;

use common::panel::Panel;
use common::{BRACKET_SPEC, TestDb, TestPlant, plant_config};
use microfab::auth::Role;
use serde_json::Value;

/// An operator's panel (the plant's staff).
async fn operator(plant: &TestPlant) -> Panel {
    Panel::sign_in(plant, "olga", Role::Operator).await
}

const COASTER_SPEC: &str = r#"spec_version = 1
product = "Plywood coaster"
maker = "coaster-co"
quantity = 60
priority = "standard"
due = "2030-06-30"

[[steps]]
id = "cut"
capability = "laser"
program = "programs/coaster.nc"
units_per_run = 6
run_seconds = 120
materials = [{ material = "plywood-birch-6mm", per_run = 1 }]
"#;

const COASTER_PROGRAM: &str =
    "G21\nG90\nG0 X0 Y0\nM4 S800\nG1 X90 F1200\nG1 Y90\nG1 X0\nG1 Y0\nM5\n";

/// The 1-based line of the first line of `text` that starts with `prefix`.
fn line_of(text: &str, prefix: &str) -> usize {
    text.lines().position(|l| l.starts_with(prefix)).unwrap() + 1
}

async fn order_state(plant: &TestPlant, id: &str) -> Value {
    plant.client.ok(&format!("/api/v1/orders/{id}")).await["state"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spec_with_errors_is_shown_at_its_lines_and_makes_nothing() {
    let db = TestDb::sqlite().await;
    let plant = TestPlant::start(&db, &plant_config(1.0, 0.0)).await;
    let panel = Panel::sign_in(&plant, "coaster-co", Role::Maker).await;
    let page = panel.ok("/submit").await;
    assert!(page.contains(r#"data-testid="spec-text""#));

    let wrong = COASTER_SPEC
        .replace("programs/coaster.nc", "programs/coastr.nc")
        .replace("units_per_run = 6", "units_per_run = 0");
    let response = panel
        .submit(&wrong, &[("coaster.nc", COASTER_PROGRAM)])
        .await;
    assert_eq!(response.status().as_u16(), 422);
    let body = response.text().await.unwrap();
    let mut lines: Vec<usize> = body
        .match_indices(r#"data-testid="spec-error" data-line=""#)
        .map(|(at, hook)| {
            let rest = &body[at + hook.len()..];
            rest[..rest.find('"').unwrap()].parse().unwrap()
        })
        .collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            line_of(&wrong, "program ="),
            line_of(&wrong, "units_per_run =")
        ],
        "{body}"
    );
    assert!(body.contains("programs/coastr.nc"), "{body}");
    // The listing shows the spec's lines with their numbers.
    assert!(body.contains(r#"<span class="no">1</span><code>spec_version = 1</code>"#));
    assert_eq!(
        plant.client.ok("/api/v1/orders").await,
        serde_json::json!([])
    );

    // Fixed, the program found by its file name: the browser is sent to the new order.
    let response = panel
        .submit(COASTER_SPEC, &[("coaster.nc", COASTER_PROGRAM)])
        .await;
    assert_eq!(response.status().as_u16(), 204);
    let target = response.headers()["hx-redirect"]
        .to_str()
        .unwrap()
        .to_string();
    let orders = plant.client.ok("/api/v1/orders").await;
    let id = orders[0]["id"].as_str().unwrap();
    assert_eq!(target, format!("/orders/{id}?submitted=1"));
    let greeted = panel.ok(&target).await;
    assert!(greeted.contains(r#"data-testid="flash""#));
    plant.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intake_shows_the_prescreen_and_approves_or_rejects() {
    let db = TestDb::sqlite().await;
    let plant = TestPlant::start(&db, &plant_config(1.0, 0.0)).await;
    let panel = operator(&plant).await;
    let bracket = plant.client.submit_file(BRACKET_SPEC).await;
    let bracket = bracket["id"].as_str().unwrap();
    let (_, coaster) = plant
        .client
        .post(
            "/api/v1/orders",
            serde_json::json!({ "spec_toml": COASTER_SPEC.replace("per_run = 1", "per_run = 20"),
                "programs": { "programs/coaster.nc": COASTER_PROGRAM } }),
        )
        .await;
    let coaster = coaster["order"]["id"].as_str().unwrap();

    let intake = panel.ok("/intake").await;
    for id in [bracket, coaster] {
        assert!(intake.contains(&format!(r#"data-testid="approve-{id}""#)));
        assert!(intake.contains(&format!(r#"data-testid="reject-{id}""#)));
    }
    // The report: machines per step with fit, the critical path, material short for one.
    assert!(intake.contains(r#"data-testid="fit-bar">Can do it: router-1, router-2, mill-1;"#));
    assert!(intake.contains("bar → assembly"));
    assert!(
        intake.contains(r#"<tr class="short" data-testid="material-check-plywood-birch-6mm">"#)
    );
    assert!(intake.contains("Material short: plywood-birch-6mm needs 200, 100 available"));

    // Approval refused for the short one, shown inline; the order stays submitted.
    let (status, refused) = panel
        .action(&format!("/intake/{coaster}/approve"), &[])
        .await;
    assert_eq!(status, 409, "{refused}");
    assert!(refused.contains(r#"data-testid="flash""#) && refused.contains("plywood-birch-6mm"));
    assert_eq!(order_state(&plant, coaster).await, "submitted");

    // A rejection needs a reason.
    let (status, _) = panel
        .action(&format!("/intake/{coaster}/reject"), &[("reason", "  ")])
        .await;
    assert_eq!(status, 422);
    assert_eq!(order_state(&plant, coaster).await, "submitted");
    let (status, body) = panel
        .action(
            &format!("/intake/{coaster}/reject"),
            &[("reason", "too much plywood")],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(order_state(&plant, coaster).await, "rejected");

    let (status, body) = panel
        .action(&format!("/intake/{bracket}/approve"), &[])
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#"data-testid="flash""#));
    assert_ne!(order_state(&plant, bracket).await, "submitted");
    let intake = panel.ok("/intake").await;
    assert!(!intake.contains(&format!("approve-{bracket}")));
    plant.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn materials_page_restocks_and_adjusts() {
    let db = TestDb::sqlite().await;
    let text =
        plant_config(1.0, 0.0).replace("on_hand = 80\n", "on_hand = 80\nreorder_level = 100\n");
    let plant = TestPlant::start(&db, &text).await;
    let panel = operator(&plant).await;
    let page = panel.ok("/materials").await;
    assert!(page.contains(r#"data-testid="material-albar@common" data-low="true""#));
    assert!(page.contains(r#"data-testid="material-ply6@common" data-low="false""#));

    let (status, row) = panel
        .action(
            "/materials/ply6@common/restock",
            &[("amount", "12.5"), ("lot", "LOT-A1"), ("origin", "virgin")],
        )
        .await;
    assert_eq!(status, 200, "{row}");
    assert!(row.contains("LOT-A1") && row.contains(r#"data-testid="on-hand-ply6@common">112.5<"#));
    assert_eq!(plant.client.stock().await["ply6@common"], 112_500);
    // The lot keeps its own origin; the account keeps its own.
    let lots = plant.running.runtime.plant.lots().await.unwrap();
    assert_eq!(
        (lots[0].id.as_str(), lots[0].origin.as_str()),
        ("LOT-A1", "virgin")
    );
    let (status, _) = panel
        .action(
            "/materials/ply6@common/restock",
            &[("amount", "1"), ("origin", "moon")],
        )
        .await;
    assert_eq!(status, 422);

    // An adjustment needs a reason and a number; then it takes a signed amount.
    let (status, _) = panel
        .action(
            "/materials/ply6@common/adjust",
            &[("delta", "-2"), ("reason", "")],
        )
        .await;
    assert_eq!(status, 422);
    let (status, _) = panel
        .action(
            "/materials/ply6@common/adjust",
            &[("delta", "two"), ("reason", "count")],
        )
        .await;
    assert_eq!(status, 422);
    let (status, row) = panel
        .action(
            "/materials/ply6@common/adjust",
            &[("delta", "-2.5"), ("reason", "two sheets warped")],
        )
        .await;
    assert_eq!(status, 200, "{row}");
    assert_eq!(plant.client.stock().await["ply6@common"], 110_000);
    plant.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_pages_show_progress_and_scrap_and_cancel_through_htmx() {
    let db = TestDb::sqlite().await;
    let plant = TestPlant::start(&db, &plant_config(5_000.0, 0.0)).await;
    let panel = operator(&plant).await;
    let order = plant.client.submit_file(BRACKET_SPEC).await;
    let id = order["id"].as_str().unwrap().to_string();
    let (status, body) = plant
        .client
        .post(&format!("/api/v1/orders/{id}/approve"), Value::Null)
        .await;
    assert_eq!(status, 200, "{body}");

    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    let unit = loop {
        let units = plant.client.ok(&format!("/api/v1/orders/{id}/units")).await;
        if let Some(unit) = units
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["result"] == "good")
        {
            break unit["id"].as_i64().unwrap();
        }
        assert!(tokio::time::Instant::now() < deadline, "never a good unit");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };

    let list = panel.ok("/orders").await;
    assert!(list.contains(&format!(r#"data-testid="order-row-{id}""#)));
    assert!(list.contains(r#"data-testid="gantt""#));
    let detail = panel.ok(&format!("/orders/{id}")).await;
    assert!(detail.contains(r#"data-testid="step-gussets""#));
    assert!(detail.contains(&format!(r#"data-testid="scrap-unit-{unit}""#)));

    let (status, _) = panel
        .action(
            &format!("/orders/{id}/units/{unit}/scrap"),
            &[("reason", "")],
        )
        .await;
    assert_eq!(status, 422);
    let before = plant.client.ok(&format!("/api/v1/orders/{id}")).await["scrapped"]
        .as_i64()
        .unwrap();
    let (status, body) = panel
        .action(
            &format!("/orders/{id}/units/{unit}/scrap"),
            &[("reason", "gusset cracked")],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#"id="order-body""#));
    let units = plant.client.ok(&format!("/api/v1/orders/{id}/units")).await;
    let scrapped = units
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == unit)
        .unwrap();
    assert_eq!(scrapped["result"], "scrapped");
    assert_eq!(scrapped["reason"], "gusset cracked");
    let after = plant.client.ok(&format!("/api/v1/orders/{id}")).await["scrapped"]
        .as_i64()
        .unwrap();
    assert!(after > before);

    let (status, body) = panel
        .action(
            &format!("/orders/{id}/cancel"),
            &[("reason", "maker withdrew")],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(order_state(&plant, &id).await, "cancelled");
    plant.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maker_sees_only_their_own_orders_and_stock_and_no_plant_action() {
    let db = TestDb::sqlite().await;
    let text = plant_config(1.0, 0.0)
        + r#"
[[materials]]
id = "ply6@coaster-co"
material = "plywood-birch-6mm"
unit = "sheet"
owner = "coaster-co"
origin = "local"
on_hand = 7
"#;
    let plant = TestPlant::start(&db, &text).await;
    let maker = Panel::sign_in(&plant, "coaster-co", Role::Maker).await;
    let submit = |spec: String| {
        let client = &plant.client;
        async move {
            let (status, body) = client
                .post(
                    "/api/v1/orders",
                    serde_json::json!({ "spec_toml": spec,
                        "programs": { "programs/coaster.nc": COASTER_PROGRAM } }),
                )
                .await;
            assert_eq!(status, 201, "{body}");
            body["order"]["id"].as_str().unwrap().to_string()
        }
    };
    let own = submit(COASTER_SPEC.to_string()).await;
    let other = submit(COASTER_SPEC.replace("coaster-co", "other-maker")).await;

    let mine = maker.ok("/my/orders").await;
    assert!(mine.contains(&format!(r#"data-testid="order-row-{own}""#)));
    assert!(!mine.contains(&other));
    assert!(!mine.contains(r#"data-testid="gantt""#));
    let page = maker.ok(&format!("/orders/{own}")).await;
    assert!(page.contains(&format!(r#"data-testid="cancel-{own}""#)));
    assert!(!page.contains("scrap-unit-"));
    let (status, _) = maker.page(&format!("/orders/{other}")).await;
    assert_eq!(status, 404, "another maker's order is not found");
    let stock = maker.ok("/my/materials").await;
    assert!(stock.contains(r#"data-testid="material-ply6@coaster-co""#));
    assert!(!stock.contains("ply6@common"));
    assert!(!stock.contains("restock-"), "a maker's stock is read only");

    for page in [
        "/intake",
        "/orders",
        "/materials",
        "/admin/config",
        "/admin/users",
    ] {
        let (status, _) = maker.page(page).await;
        assert_eq!(status, 403, "{page} for a maker");
    }
    for (path, form) in [
        (format!("/intake/{own}/approve"), vec![]),
        (format!("/intake/{own}/reject"), vec![("reason", "mine")]),
        (
            "/materials/ply6@coaster-co/restock".to_string(),
            vec![("amount", "5")],
        ),
        (
            "/materials/ply6@coaster-co/adjust".to_string(),
            vec![("delta", "5"), ("reason", "mine")],
        ),
    ] {
        let (status, body) = maker.action(&path, &form).await;
        assert_eq!(status, 403, "POST {path} for a maker: {body}");
    }
    assert_eq!(
        plant.client.ok(&format!("/api/v1/orders/{own}")).await["state"],
        "submitted"
    );
    assert_eq!(plant.client.stock().await["ply6@coaster-co"], 7_000);
    // Another maker's order cannot be cancelled through the page either.
    let (status, _) = maker
        .action(
            &format!("/orders/{other}/cancel"),
            &[("reason", "not mine")],
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(
        plant.client.ok(&format!("/api/v1/orders/{other}")).await["state"],
        "submitted"
    );
    // Their own, still submitted, they withdraw.
    let (status, body) = maker
        .action(
            &format!("/orders/{own}/cancel"),
            &[("reason", "changed my mind")],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        plant.client.ok(&format!("/api/v1/orders/{own}")).await["state"],
        "cancelled"
    );
    plant.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_manages_accounts_and_reads_the_config() {
    let db = TestDb::sqlite().await;
    let plant = TestPlant::start(&db, &plant_config(1.0, 0.0)).await;
    let admin = Panel::sign_in(&plant, "ada", Role::Admin).await;
    let users = admin.ok("/admin/users").await;
    assert!(users.contains(r#"data-testid="user-ada""#));

    let (status, body) = admin
        .action(
            "/admin/users",
            &[
                ("name", "nina"),
                ("role", "maker"),
                ("password", "a long enough secret"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#"data-testid="user-nina""#));
    let (status, body) = admin
        .action("/admin/users/nina/role", &[("role", "operator")])
        .await;
    assert_eq!(status, 200, "{body}");

    // A token is shown once, and signs in.
    let (status, body) = admin
        .action("/admin/users/nina/tokens", &[("label", "bench script")])
        .await;
    assert_eq!(status, 200, "{body}");
    let hook = r#"data-testid="new-token-value">"#;
    let start = body.find(hook).unwrap() + hook.len();
    let token = &body[start..start + body[start..].find('<').unwrap()];
    let nina = plant.client.with_token(Some(token));
    let orders_page = nina
        .request(reqwest::Method::GET, "/orders")
        .send()
        .await
        .unwrap();
    assert!(
        orders_page
            .text()
            .await
            .unwrap()
            .contains(r#"data-testid="nav-orders""#)
    );
    assert!(!admin.ok("/admin/users").await.contains(token));

    let accounts = microfab::auth::accounts::list(&plant.running.runtime.plant.store)
        .await
        .unwrap();
    let nina_account = accounts.iter().find(|a| a.name == "nina").unwrap();
    assert_eq!(nina_account.role, Role::Operator);
    let token_id = nina_account.tokens[0].id;
    let (status, body) = admin
        .action(&format!("/admin/tokens/{token_id}/revoke"), &[])
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = nina.get("/api/v1/orders").await;
    assert_eq!(status, 401, "a revoked token opens nothing");

    let (status, body) = admin.action("/admin/users/nina/disable", &[]).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#"data-testid="user-nina" class="disabled""#));

    let config = admin.ok("/admin/config").await;
    assert!(config.contains(r#"href="/machines/mill-1""#) && config.contains("400 × 300 × 120"));
    let (status, _) = operator(&plant).await.page("/admin/config").await;
    assert_eq!(status, 403, "an operator is no admin");
    plant.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_whose_stored_spec_no_longer_checks_stays_in_intake_with_why() {
    let db = TestDb::sqlite().await;
    let plant = TestPlant::start(&db, &plant_config(1.0, 0.0)).await;
    let panel = operator(&plant).await;
    let broken = plant.client.submit_file(BRACKET_SPEC).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let fine = plant.client.submit_file(BRACKET_SPEC).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    sqlx::query("UPDATE orders SET spec_json = '{}' WHERE id = $1")
        .bind(&broken)
        .execute(&plant.running.runtime.plant.store.pool)
        .await
        .unwrap();

    let (status, body) = plant
        .client
        .get(&format!("/api/v1/orders/{broken}/prescreen"))
        .await;
    assert_eq!(status, 409, "{body}");
    let intake = panel.ok("/intake").await;
    let card = &intake[intake.find(&format!(r#"id="intake-{broken}""#)).unwrap()..];
    let card = &card[..card.find("</article>").unwrap()];
    assert!(card.contains(r#"data-testid="prescreen-failed""#), "{card}");
    assert!(card.contains(&format!(r#"data-testid="approve-{broken}""#)));
    // The other order keeps its report.
    assert!(intake.contains(&format!(r#"data-testid="approve-{fine}""#)));
    assert!(intake.contains("bar → assembly"));
    plant.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_order_lists_its_newest_units_and_a_step_filter_reaches_the_rest() {
    let db = TestDb::sqlite().await;
    let plant = TestPlant::start(&db, &plant_config(20_000.0, 0.0)).await;
    let panel = operator(&plant).await;
    let id = plant.client.submit_file(BRACKET_SPEC).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, body) = plant
        .client
        .post(&format!("/api/v1/orders/{id}/approve"), Value::Null)
        .await;
    assert_eq!(status, 200, "{body}");
    common::wait_until("the order completes", || async {
        order_state(&plant, &id).await == "completed"
    })
    .await;
    let units = plant.client.ok(&format!("/api/v1/orders/{id}/units")).await;
    let total = units.as_array().unwrap().len();
    assert!(total > 300, "{total} units");

    let rows = |page: &str| page.matches(r#"data-testid="unit-"#).count();
    let page = panel.ok(&format!("/orders/{id}")).await;
    assert!(page.contains(r#"data-testid="units-truncated""#));
    assert_eq!(rows(&page), 300);
    let page = panel.ok(&format!("/orders/{id}?step=assembly")).await;
    assert!(!page.contains(r#"data-testid="units-truncated""#));
    assert_eq!(rows(&page), 200);
    let listed = &page[page.find(r#"data-testid="filter-unit-step""#).unwrap()..];
    let listed = &listed[..listed.find("</section>").unwrap()];
    assert_eq!(
        listed.matches("<td>assembly</td>").count(),
        200,
        "only the assembly step's units"
    );
    assert!(!listed.contains("<td>gussets</td>") && !listed.contains("<td>bar</td>"));
    plant.shutdown.cancel();
}
