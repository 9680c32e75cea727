//! Every route of the OpenAPI document, with every kind of caller: nobody, a maker, another
//! maker, an operator, an admin. The table below says what each route needs; a route missing
//! from it fails the test, so a new route must be classified before it ships.

mod common;

use common::{BRACKET_SPEC, Client, TestDb, TestPlant, plant_config};
use microfab::auth::Role;
use serde_json::json;

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Needs {
    /// Nothing: open to anyone.
    Nothing,
    /// Any account (a maker's answer is scoped to their own orders and stock).
    Account,
    /// The order in the path is the maker's own (another maker gets 404), or staff.
    OwnOrder,
    /// Staff only: every maker gets 403, whose order it names or not.
    Operator,
}

fn needs(method: &str, path: &str) -> Needs {
    use Needs::*;
    match (method, path) {
        ("get", "/healthz") => Nothing,
        // Open to this host's peers, as this test is (tests/metrics.rs checks it from
        // elsewhere, i.e. with `[metrics] allow_localhost = false`).
        ("get", "/metrics") => Nothing,
        ("get", "/api/v1/orders") | ("post", "/api/v1/orders") | ("get", "/api/v1/materials") => {
            Account
        }
        ("get", "/api/v1/orders/{id}")
        | ("get", "/api/v1/orders/{id}/units")
        | ("post", "/api/v1/orders/{id}/cancel") => OwnOrder,
        ("post", "/api/v1/orders/{id}/approve")
        // Refused to every maker alike: it tells nothing of whose orders exist.
        | ("get", "/api/v1/orders/{id}/prescreen")
        | ("post", "/api/v1/orders/{id}/reject")
        | ("post", "/api/v1/units/{id}/scrap")
        | ("get", "/api/v1/machines")
        | ("get", "/api/v1/machines/{id}")
        | ("post", "/api/v1/machines/{id}/pause")
        | ("post", "/api/v1/machines/{id}/resume")
        | ("post", "/api/v1/machines/{id}/abort")
        | ("post", "/api/v1/machines/{id}/maintenance")
        | ("post", "/api/v1/machines/{id}/maintained")
        | ("post", "/api/v1/machines/{id}/operator")
        | ("get", "/api/v1/machines/{id}/console")
        | ("post", "/api/v1/materials/{id}/restock")
        | ("post", "/api/v1/materials/{id}/adjust")
        | ("get", "/api/v1/jobs")
        | ("post", "/api/v1/jobs/{id}/resolve")
        | ("post", "/api/v1/jobs/{id}/resume")
        | ("post", "/api/v1/jobs/{id}/confirm")
        | ("post", "/api/v1/jobs/{id}/load")
        | ("post", "/api/v1/jobs/{id}/unload")
        | ("get", "/api/v1/tasks")
        | ("get", "/api/v1/plan")
        | ("get", "/api/v1/events")
        | ("get", "/api/v1/events/log")
        | ("get", "/api/v1/verify") => Operator,
        _ => panic!("{method} {path} is not in the role matrix: say what it needs"),
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Who {
    Nobody,
    OtherMaker,
    Maker,
    Operator,
    Admin,
}

/// The status class `who` must get from a route that `needs` this: `Ok(())` for "let in"
/// (whatever the route then says: 200, or 404/409/422 for the test's ids and bodies), or the
/// refusal's status.
fn expected(needs: Needs, who: Who) -> Result<(), u16> {
    match (needs, who) {
        (Needs::Nothing, _) => Ok(()),
        (_, Who::Nobody) => Err(401),
        (Needs::Account, _) => Ok(()),
        (Needs::OwnOrder, Who::OtherMaker) => Err(404),
        (Needs::OwnOrder, _) => Ok(()),
        (Needs::Operator, Who::Maker | Who::OtherMaker) => Err(403),
        (Needs::Operator, Who::Operator | Who::Admin) => Ok(()),
    }
}

/// The path with its `{id}` filled for its resource: the maker's order, a real machine and
/// stock account, run and unit ids that may not exist (a 404 is still "let in").
fn concrete(path: &str, order: &str) -> String {
    let segments: Vec<&str> = path.split('/').collect();
    let resource = segments
        .iter()
        .position(|s| *s == "{id}")
        .map(|at| segments[at - 1]);
    let id = match resource {
        Some("orders") => order,
        Some("machines") => "laser-1",
        Some("materials") => "ply6@common",
        _ => "1",
    };
    path.replace("{id}", id)
}

/// A body the route takes, so that what answers is the route's role check, not its body's:
/// the caller who may then does it (or gets 404/409 for the test's ids and states).
fn valid_body(path: &str) -> serde_json::Value {
    let reason = "role matrix";
    if path.starts_with("/api/v1/machines/") && path.ends_with("/resume") {
        return json!({});
    }
    match path.rsplit('/').next().unwrap() {
        "reject" | "cancel" | "scrap" | "resume" => json!({ "reason": reason }),
        "resolve" => json!({ "good": 0, "reason": reason }),
        "maintenance" => json!({ "on": false }),
        "maintained" => json!({ "task": "clean" }),
        "operator" => json!({ "action": "home" }),
        "restock" => json!({ "amount": 1 }),
        "adjust" => json!({ "delta": 1, "reason": reason }),
        // Actions without fields take it; a submission refuses it (422): both let in.
        _ => json!({}),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_lets_in_exactly_the_roles_it_should() {
    let db = TestDb::sqlite().await;
    let plant = TestPlant::start(&db, &plant_config(0.001, 0.0)).await;
    let maker = plant.account("bcn-street-furniture", Role::Maker).await;
    // In this order on each route: a maker's own verb (cancel) and an operator's (approve)
    // each find the order still submitted.
    let callers: Vec<(Who, Client)> = vec![
        (Who::Nobody, plant.client.with_token(None)),
        (
            Who::OtherMaker,
            plant.account("pedal-coop", Role::Maker).await,
        ),
        (Who::Maker, maker.with_token(maker.token.as_deref())),
        (Who::Operator, plant.account("olga", Role::Operator).await),
        (Who::Admin, plant.account("ada", Role::Admin).await),
    ];

    let document = plant.client.ok("/api/v1/openapi.json").await;
    let mut routes: Vec<(String, String)> = document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|k| ["get", "post", "put", "patch", "delete"].contains(&k.as_str()))
                .map(move |method| (method.clone(), path.clone()))
        })
        .collect();
    routes.sort();
    assert!(routes.len() >= 28, "{routes:?}");
    // The document itself is not in its own paths: any account reads it.
    routes.push(("get".into(), "/api/v1/openapi.json".into()));

    let mut wrong = Vec::new();
    for (method, path) in &routes {
        let needs = if path == "/api/v1/openapi.json" {
            Needs::Account
        } else {
            needs(method, path)
        };
        // A fresh order for each route, submitted by the maker.
        let order = maker.submit_file(BRACKET_SPEC).await;
        let url = concrete(path, order["id"].as_str().unwrap());
        for (who, client) in &callers {
            let request = match method.as_str() {
                "get" => client.request(reqwest::Method::GET, &url),
                _ => client
                    .request(reqwest::Method::POST, &url)
                    .json(&valid_body(path)),
            };
            let status = request.send().await.unwrap().status().as_u16();
            let got = if [401, 403].contains(&status)
                || (status == 404 && expected(needs, *who) == Err(404))
            {
                Err(status)
            } else {
                Ok(())
            };
            if got != expected(needs, *who) {
                wrong.push(format!(
                    "{} {url} as {who:?}: {status}, expected {:?}",
                    method.to_uppercase(),
                    expected(needs, *who)
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    plant.shutdown.cancel();
}

/// Every panel page (`panel::PAGES`): nobody is sent to the login page; a role below the
/// page's gets 403, another maker's order page 404; the page's role and above, 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_panel_page_opens_for_exactly_the_roles_it_should() {
    let db = TestDb::sqlite().await;
    let plant = TestPlant::start(&db, &plant_config(0.001, 0.0)).await;
    let maker = plant.account("bcn-street-furniture", Role::Maker).await;
    let callers: Vec<(Option<Role>, bool, Client)> = vec![
        (None, false, plant.client.with_token(None)),
        (
            Some(Role::Maker),
            false,
            plant.account("pedal-coop", Role::Maker).await,
        ),
        (
            Some(Role::Maker),
            true,
            maker.with_token(maker.token.as_deref()),
        ),
        (
            Some(Role::Operator),
            false,
            plant.account("olga", Role::Operator).await,
        ),
        (
            Some(Role::Admin),
            false,
            plant.account("ada", Role::Admin).await,
        ),
    ];
    let order = maker.submit_file(BRACKET_SPEC).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    assert!(microfab::panel::PAGES.len() >= 10);
    let mut wrong = Vec::new();
    for (pattern, least) in microfab::panel::PAGES {
        let path = concrete(pattern, order["id"].as_str().unwrap());
        for (role, owns_the_order, client) in &callers {
            let mut request = http.get(format!("{}{path}", client.base));
            if let Some(token) = &client.token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let expected = match role {
                None => 303,
                Some(role) if !role.includes(*least) => 403,
                Some(Role::Maker) if pattern.starts_with("/orders/") && !owns_the_order => 404,
                Some(_) => 200,
            };
            let to_login = status != 303
                || response.headers()["location"]
                    .to_str()
                    .unwrap()
                    .starts_with("/login?next=");
            if status != expected || !to_login {
                wrong.push(format!(
                    "GET {path} as {role:?}: {status}, expected {expected}"
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    plant.shutdown.cancel();
}
