//! Accounts over HTTP: no route without an account, what a browser session must send with a
//! change (JSON, its CSRF token, from its own origin), the login rate limit, token
//! revocation, a maker's view of the plant, and the event log naming the account.

mod common;

use common::{BRACKET_SPEC, TestDb, TestPlant, plant_config};
use microfab::auth::{Role, accounts, secrets};
use reqwest::Method;
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, ORIGIN, RETRY_AFTER, SET_COOKIE};
use serde_json::{Value, json};

async fn plant(db: &TestDb) -> TestPlant {
    TestPlant::start(db, &plant_config(0.001, 0.0)).await
}

/// A cross-site HTML form can POST `text/plain` or a form encoding without a preflight; if
/// the API took those, a page on another site could approve an order or abort a machine
/// with a signed-in browser. It takes only JSON, body or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_to_the_api_comes_as_json_or_not_at_all() {
    let db = TestDb::sqlite().await;
    let plant = plant(&db).await;
    let client = &plant.client;
    let order = client.submit_file(BRACKET_SPEC).await;
    let approve = format!("/api/v1/orders/{}/approve", order["id"].as_str().unwrap());
    let before = plant.client.event_count().await;
    for path in [approve.as_str(), "/api/v1/machines/laser-1/abort"] {
        for content_type in [
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some("multipart/form-data; boundary=x"),
            None,
        ] {
            let mut request = client.request(Method::POST, path);
            if let Some(content_type) = content_type {
                request = request.header(CONTENT_TYPE, content_type);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 415, "{path} as {content_type:?}");
            let answer: Value = response.json().await.unwrap();
            assert_eq!(answer["error"]["code"], "unsupported_media_type");
        }
    }
    assert_eq!(plant.client.event_count().await, before, "nothing was done");
    let response = client
        .request(Method::POST, &approve)
        .header(CONTENT_TYPE, "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "a body-less JSON change is fine");
    plant.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_account_only_the_login_page_and_health_probe_answer() {
    let db = TestDb::sqlite().await;
    let plant = plant(&db).await;
    let anonymous = plant.client.with_token(None);
    let (status, answer) = anonymous.get("/api/v1/orders").await;
    assert_eq!(status, 401, "{answer}");
    assert_eq!(answer["error"]["code"], "unauthorized");
    let forged = plant.client.with_token(Some("mf_0000"));
    assert_eq!(forged.get("/api/v1/orders").await.0, 401);
    let http = no_redirects();
    let page = http
        .get(format!("{}/fleet?x=1", anonymous.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 303);
    assert_eq!(page.headers()[LOCATION], "/login?next=/fleet%3Fx%3D1");
    for open in ["/login", "/healthz"] {
        let response = http
            .get(format!("{}{open}", anonymous.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{open}");
    }
    plant.shutdown.cancel();
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// An operator with a password, for the login tests.
async fn operator_with_password(plant: &TestPlant, name: &str, password: &str) {
    let hash = secrets::hash_password(password).unwrap();
    accounts::add(
        &plant.running.runtime.plant.store,
        "local",
        name,
        Role::Operator,
        Some(hash),
        0,
    )
    .await
    .unwrap();
}

async fn login(base: &str, name: &str, password: &str) -> reqwest::Response {
    no_redirects()
        .post(format!("{base}/login"))
        .form(&[("name", name), ("password", password), ("next", "/orders")])
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_session_sends_its_csrf_token_from_its_own_origin() {
    let db = TestDb::sqlite().await;
    let plant = plant(&db).await;
    let base = plant.client.base.clone();
    const PASSWORD: &str = "olga's long password";
    operator_with_password(&plant, "olga", PASSWORD).await;
    let stored: String =
        sqlx::query_scalar("SELECT password_hash FROM accounts WHERE name = 'olga'")
            .fetch_one(&plant.running.runtime.plant.store.pool)
            .await
            .unwrap();
    assert!(
        stored.starts_with("$argon2id$") && !stored.contains(PASSWORD),
        "{stored}"
    );

    assert_eq!(login(&base, "olga", "wrong password!").await.status(), 401);
    assert_eq!(
        login(&base, "nobody", PASSWORD).await.status(),
        401,
        "no account: the same answer"
    );
    let signed_in = login(&base, "olga", PASSWORD).await;
    assert_eq!(signed_in.status(), 303);
    assert_eq!(signed_in.headers()[LOCATION], "/orders");
    let set_cookie = signed_in.headers()[SET_COOKIE]
        .to_str()
        .unwrap()
        .to_string();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    assert!(!set_cookie.contains("Secure"), "plain http: {set_cookie}");
    let behind_tls = no_redirects()
        .post(format!("{base}/login"))
        .header("x-forwarded-proto", "https")
        .form(&[("name", "olga"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    let secure_cookie = behind_tls.headers()[SET_COOKIE].to_str().unwrap();
    assert!(secure_cookie.contains("; Secure"), "{secure_cookie}");
    let cookie_value = set_cookie
        .split(';')
        .next()
        .unwrap()
        .strip_prefix("microfab_session=")
        .unwrap()
        .to_string();
    let cookie = format!("microfab_session={cookie_value}");
    let csrf = secrets::csrf_token(&cookie_value);
    let http = no_redirects();
    let get = http
        .get(format!("{base}/api/v1/orders"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 200);

    let order = plant.client.submit_file(BRACKET_SPEC).await;
    let approve = format!(
        "{base}/api/v1/orders/{}/approve",
        order["id"].as_str().unwrap()
    );
    let post = |csrf: Option<&str>, origin: Option<&str>| {
        let mut request = http
            .post(&approve)
            .header(COOKIE, &cookie)
            .header(CONTENT_TYPE, "application/json");
        if let Some(csrf) = csrf {
            request = request.header("x-csrf-token", csrf);
        }
        if let Some(origin) = origin {
            request = request.header(ORIGIN, origin);
        }
        request.send()
    };
    let before = plant.client.event_count().await;
    assert_eq!(
        post(None, None).await.unwrap().status(),
        403,
        "no CSRF token"
    );
    assert_eq!(
        post(Some("0000"), None).await.unwrap().status(),
        403,
        "a wrong one"
    );
    let cross = post(Some(&csrf), Some("http://evil.example"))
        .await
        .unwrap();
    assert_eq!(cross.status(), 403, "from another site");
    assert_eq!(plant.client.event_count().await, before, "nothing was done");
    let same_origin = post(Some(&csrf), Some(&base)).await.unwrap();
    assert_eq!(same_origin.status(), 200);

    // The event log names the account; signing out ends the session.
    let log = plant.client.ok("/api/v1/events/log?limit=10000").await;
    let approved = log
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"]["kind"] == "order_approved")
        .unwrap();
    assert_eq!(approved["actor"], "olga");
    let logout = http
        .post(format!("{base}/logout"))
        .header(COOKIE, &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 303);
    let after = http
        .get(format!("{base}/api/v1/orders"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 401);
    plant.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_sign_ins_are_limited_per_name_and_per_address() {
    let db = TestDb::sqlite().await;
    let plant = plant(&db).await;
    let base = plant.client.base.clone();
    const PASSWORD: &str = "olga's long password";
    operator_with_password(&plant, "olga", PASSWORD).await;
    // A success is not limited, nor counted.
    assert_eq!(login(&base, "olga", PASSWORD).await.status(), 303);
    for _ in 0..microfab::auth::MAX_FAILED_SIGN_INS {
        assert_eq!(login(&base, "olga", "wrong password!").await.status(), 401);
    }
    let limited = login(&base, "olga", PASSWORD).await;
    assert_eq!(limited.status(), 429, "even the right password waits");
    let wait: u64 = limited.headers()[RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    // The address is limited too (all these came from 127.0.0.1): another name from it
    // waits as well, known or not. (One name tried from many addresses: the limiter's own
    // test, auth/rate_limit.rs.)
    assert_eq!(
        login(&base, "nobody", "whatever password").await.status(),
        429
    );
    plant.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_or_disabled_account_signs_in_no_more_and_only_admins_manage_accounts() {
    let db = TestDb::sqlite().await;
    let plant = plant(&db).await;
    let ops = plant.running.operations();
    let admin = microfab::ops::Actor::Account {
        name: "bootstrap".into(),
        role: Role::Admin,
    };
    let operator = microfab::ops::Actor::Account {
        name: "olga".into(),
        role: Role::Operator,
    };
    ops.add_account(&admin, "olga", Role::Operator, "olga's long password")
        .await
        .unwrap();
    let refused = ops
        .add_account(&operator, "ivan", Role::Admin, "ivan's long password")
        .await;
    assert!(
        matches!(refused, Err(microfab::ops::OpError::Forbidden(_))),
        "{refused:?}"
    );
    assert!(ops.accounts(&operator).await.is_err());
    let short = ops.add_account(&admin, "ivan", Role::Maker, "short").await;
    assert!(short.unwrap_err().to_string().contains("password"));

    let token = ops.create_token(&admin, "olga", "laptop").await.unwrap();
    let olga = plant.client.with_token(Some(&token));
    assert_eq!(olga.get("/api/v1/machines").await.0, 200);
    let listed = ops.accounts(&admin).await.unwrap();
    let olga_account = listed.iter().find(|a| a.name == "olga").unwrap();
    let token_id = olga_account.tokens[0].id;
    let stored: Vec<String> = sqlx::query_scalar("SELECT token_sha256 FROM api_tokens")
        .fetch_all(&plant.running.runtime.plant.store.pool)
        .await
        .unwrap();
    assert!(stored.iter().all(|digest| !digest.contains(&token[3..])));
    ops.revoke_token(&admin, token_id).await.unwrap();
    assert_eq!(olga.get("/api/v1/machines").await.0, 401);

    let token = ops.create_token(&admin, "olga", "tablet").await.unwrap();
    let olga = plant.client.with_token(Some(&token));
    assert_eq!(olga.get("/api/v1/machines").await.0, 200);
    ops.disable_account(&admin, "olga").await.unwrap();
    assert_eq!(olga.get("/api/v1/machines").await.0, 401);

    let log = plant.client.ok("/api/v1/events/log?limit=10000").await;
    let account_events: Vec<(String, String)> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            let kind = e["event"]["kind"].as_str().unwrap();
            kind.starts_with("account_") || kind.starts_with("api_token_")
        })
        .filter(|e| e["actor"] == "bootstrap")
        .map(|e| {
            (
                e["event"]["kind"].as_str().unwrap().to_string(),
                e["event"]["account"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        "account_added",
        "api_token_created",
        "api_token_revoked",
        "api_token_created",
        "account_disabled",
    ]
    .iter()
    .map(|kind| (kind.to_string(), "olga".to_string()))
    .collect();
    assert_eq!(account_events, expected);
    assert!(!log.to_string().contains(&token), "no token in the log");
    plant.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maker_sees_and_acts_on_their_own_orders_only() {
    let db = TestDb::sqlite().await;
    let plant = plant(&db).await;
    // The bracket spec's maker, and another.
    let maker = plant.account("bcn-street-furniture", Role::Maker).await;
    let other = plant.account("pedal-coop", Role::Maker).await;

    let order = maker.submit_file(BRACKET_SPEC).await;
    let id = order["id"].as_str().unwrap().to_string();
    let (status, answer) = other
        .post("/api/v1/orders", common::submission(BRACKET_SPEC))
        .await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["error"]["details"][0]["field"], "maker", "{answer}");

    assert_eq!(
        maker.ok("/api/v1/orders").await.as_array().unwrap().len(),
        1
    );
    assert_eq!(
        maker.ok(&format!("/api/v1/orders/{id}")).await["id"],
        id.as_str()
    );
    assert_eq!(other.ok("/api/v1/orders").await, json!([]));
    assert_eq!(
        other.ok("/api/v1/orders?maker=bcn-street-furniture").await,
        json!([])
    );
    for path in [
        format!("/api/v1/orders/{id}"),
        format!("/api/v1/orders/{id}/units"),
    ] {
        assert_eq!(other.get(&path).await.0, 404, "{path}");
    }
    let (status, _) = other
        .post(
            &format!("/api/v1/orders/{id}/cancel"),
            json!({ "reason": "mine?" }),
        )
        .await;
    assert_eq!(status, 404);
    // Stock: the test plant's accounts are all common, none is a maker's own.
    assert_eq!(maker.ok("/api/v1/materials").await, json!([]));
    assert!(
        !plant
            .client
            .ok("/api/v1/materials")
            .await
            .as_array()
            .unwrap()
            .is_empty()
    );
    // An operator's verbs and views are not a maker's.
    let (status, answer) = maker
        .post(&format!("/api/v1/orders/{id}/approve"), Value::Null)
        .await;
    assert_eq!(status, 403, "{answer}");
    assert_eq!(maker.get("/api/v1/machines").await.0, 403);
    assert_eq!(maker.get("/api/v1/events/log").await.0, 403);

    let cancelled = maker.cancel(&id).await;
    assert_eq!(cancelled["state"], "cancelled");
    let log = plant
        .client
        .ok(&format!("/api/v1/events/log?order={id}"))
        .await;
    let actors: Vec<(&str, &str)> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["event"]["kind"].as_str().unwrap(),
                e["actor"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        actors,
        [
            ("order_submitted", "bcn-street-furniture"),
            ("order_cancelled", "bcn-street-furniture")
        ]
    );
    plant.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_finds_an_event_done_by_someone_not_allowed_to() {
    let db = TestDb::sqlite().await;
    let plant = plant(&db).await;
    let maker = plant.account("bcn-street-furniture", Role::Maker).await;
    plant.account("pedal-coop", Role::Maker).await;
    let order = maker.submit_file(BRACKET_SPEC).await;
    let id = order["id"].as_str().unwrap();
    plant
        .client
        .post(&format!("/api/v1/orders/{id}/approve"), Value::Null)
        .await;
    let verify = plant.client.ok("/api/v1/verify").await;
    assert_eq!(verify["consistent"], true, "{verify}");

    // Someone with the database rewrites who approved the order: a maker.
    sqlx::query("UPDATE events SET actor = 'pedal-coop' WHERE kind = 'order_approved'")
        .execute(&plant.running.runtime.plant.store.pool)
        .await
        .unwrap();
    let verify = plant.client.ok("/api/v1/verify").await;
    assert_eq!(verify["consistent"], false, "{verify}");
    let access = verify["access"].as_array().unwrap();
    assert_eq!(access.len(), 1, "{verify}");
    assert!(
        access[0]
            .as_str()
            .unwrap()
            .contains("(order_approved) was done by 'pedal-coop', who had the maker role then"),
        "{verify}"
    );
    plant.shutdown.cancel();
}
