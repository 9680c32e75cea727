//! Shared fixtures for the orchestrator's end-to-end tests: a small plant config, a fresh
//! database on SQLite (a temp file) or PostgreSQL (a new database on the local server), and
//! a thin HTTP client.
#![allow(dead_code)]

pub mod panel;
pub mod scrape;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::Value;
use tokio::io::AsyncBufReadExt;

/// The `MICROFAB_BOOTSTRAP_TOKEN` of every test plant: the admin `bootstrap` signs in with it.
pub const ADMIN_TOKEN: &str = "mf_test0bootstrap0token0000000000000000000000000000000000000000000";

pub const BRACKET_SPEC: &str =
    "../job-specs/examples/community-bench-bracket/community-bench-bracket.toml";

/// The bench bracket spec for `quantity` brackets, with its programs, written into `dir` as
/// `bracket.toml`; `edit` changes the spec's text further (or `|text| text`).
pub fn bracket_spec_in(dir: &Path, quantity: u32, edit: impl FnOnce(String) -> String) -> PathBuf {
    let source = Path::new(BRACKET_SPEC).parent().unwrap();
    std::fs::create_dir_all(dir.join("programs")).unwrap();
    for entry in std::fs::read_dir(source.join("programs")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join("programs").join(entry.file_name())).unwrap();
    }
    let text = std::fs::read_to_string(BRACKET_SPEC)
        .unwrap()
        .replace("quantity = 200", &format!("quantity = {quantity}"));
    let path = dir.join("bracket.toml");
    std::fs::write(&path, edit(text)).unwrap();
    path
}

/// A plant that can make the community bench bracket (laser → CNC → manual assembly).
pub fn plant_config(time_scale: f64, scrap_rate: f64) -> String {
    let mut text = format!(
        r#"
[plant]
name = "test plant"

[simulation]
time_scale = {time_scale}
"#
    );
    let machines: &[(&str, &str, [u32; 3])] = &[
        ("laser-1", "laser", [600, 400, 20]),
        ("laser-2", "laser", [600, 400, 20]),
        ("router-1", "cnc-3axis", [1200, 800, 120]),
        ("router-2", "cnc-3axis", [1200, 800, 120]),
        ("mill-1", "cnc-3axis", [400, 300, 120]),
        ("assembly-1", "manual:assembly", [2000, 1000, 1000]),
        ("assembly-2", "manual:assembly", [2000, 1000, 1000]),
        ("assembly-3", "manual:assembly", [2000, 1000, 1000]),
        ("assembly-4", "manual:assembly", [2000, 1000, 1000]),
    ];
    for (i, (id, capability, [x, y, z])) in machines.iter().enumerate() {
        text.push_str(&format!(
            r#"
[[machines]]
id = "{id}"
name = "{id}"
capabilities = ["{capability}"]
envelope_mm = [{x}, {y}, {z}]
driver = {{ kind = "sim", seed = {seed}, scrap_rate = {scrap_rate} }}
"#,
            seed = 100 + i
        ));
    }
    for (id, material, unit, on_hand) in [
        ("ply6@common", "plywood-birch-6mm", "sheet", 100),
        ("albar@common", "aluminium-bar-40x10", "m", 80),
        ("m4@common", "fasteners-m4", "piece", 2000),
    ] {
        text.push_str(&format!(
            r#"
[[materials]]
id = "{id}"
material = "{material}"
unit = "{unit}"
owner = "common"
origin = "recycled"
on_hand = {on_hand}
"#
        ));
    }
    text
}

pub struct TestDb {
    pub url: String,
    postgres_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

pub fn postgres_base() -> String {
    std::env::var("MICROFAB_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl TestDb {
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("plant.db").display());
        TestDb {
            url,
            postgres_name: None,
            _dir: Some(dir),
        }
    }

    pub async fn postgres() -> TestDb {
        sqlx::any::install_default_drivers();
        let name = format!(
            "microfab_test_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        );
        let admin = format!("{}/postgres", postgres_base());
        let pool = sqlx::AnyPool::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {admin} is needed for this test (start it, or set MICROFAB_TEST_POSTGRES): {e}"));
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        TestDb {
            url: format!("{}/{name}", postgres_base()),
            postgres_name: Some(name),
            _dir: None,
        }
    }

    pub async fn of(kind: &str) -> TestDb {
        match kind {
            "sqlite" => TestDb::sqlite().await,
            _ => TestDb::postgres().await,
        }
    }

    pub async fn drop_database(self) {
        if let Some(name) = &self.postgres_name {
            let admin = format!("{}/postgres", postgres_base());
            if let Ok(pool) = sqlx::AnyPool::connect(&admin).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&pool)
                    .await;
                pool.close().await;
            }
        }
    }
}

pub fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("plant.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A plant in this process on a free port, with a client for its API. The plant stops when
/// the token is cancelled.
pub struct TestPlant {
    pub client: Client,
    pub shutdown: tokio_util::sync::CancellationToken,
    pub running: microfab::server::Running,
}

impl TestPlant {
    pub async fn start(db: &TestDb, config_text: &str) -> TestPlant {
        let config = microfab::config::PlantConfig::parse("test.toml", config_text).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let shutdown = tokio_util::sync::CancellationToken::new();
        let running = microfab::server::start(config, &db.url, listener, shutdown.clone())
            .await
            .unwrap();
        microfab::auth::accounts::ensure_bootstrap(&running.runtime.plant.store, ADMIN_TOKEN, 0)
            .await
            .unwrap();
        TestPlant {
            client: Client::new(format!("http://{}", running.address)),
            shutdown,
            running,
        }
    }

    /// A new account with `role`, and a client signed in as it (with an API token).
    pub async fn account(&self, name: &str, role: microfab::auth::Role) -> Client {
        account(&self.running.runtime.plant.store, &self.client, name, role).await
    }
}

/// A new account with `role` in `store`, and `client`'s server signed in as it.
pub async fn account(
    store: &microfab::store::Store,
    client: &Client,
    name: &str,
    role: microfab::auth::Role,
) -> Client {
    use microfab::auth::accounts;
    accounts::add(store, "local", name, role, None, 0)
        .await
        .unwrap();
    let (_, token) = accounts::create_token(store, "local", name, "test", 0)
        .await
        .unwrap();
    client.with_token(Some(&token))
}

/// A client of the API, signed in with an API token (the bootstrap admin's unless told).
pub struct Client {
    pub base: String,
    pub token: Option<String>,
    http: reqwest::Client,
}

impl Client {
    pub fn new(base: String) -> Client {
        Client {
            base,
            token: Some(ADMIN_TOKEN.to_string()),
            http: reqwest::Client::new(),
        }
    }

    /// The same server, signed in with `token` (or anonymous with `None`).
    pub fn with_token(&self, token: Option<&str>) -> Client {
        Client {
            base: self.base.clone(),
            token: token.map(str::to_string),
            http: self.http.clone(),
        }
    }

    /// A request to `path` on this server, with this client's token.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .request(reqwest::Method::GET, path)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// How many events the log holds, leaving out the machines' own state reports: what a
    /// refused request must leave unchanged.
    pub async fn event_count(&self) -> usize {
        self.ok("/api/v1/events/log?limit=10000")
            .await
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["event"]["kind"] != "machine_state")
            .count()
    }

    pub async fn ok(&self, path: &str) -> Value {
        let (status, body) = self.get(path).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        // `Value::Null`: an action that takes no fields, sent as JSON without a body.
        let request = self.request(reqwest::Method::POST, path);
        let request = if body.is_null() {
            request.header("content-type", "application/json")
        } else {
            request.json(&body)
        };
        let r = request.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn post_raw(&self, path: &str, content_type: &str, body: &str) -> (u16, Value) {
        let r = self
            .request(reqwest::Method::POST, path)
            .header("content-type", content_type)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Cancel an order as its maker withdrew it; the order as the API answers.
    pub async fn cancel(&self, order_id: &str) -> Value {
        let (status, body) = self
            .post(
                &format!("/api/v1/orders/{order_id}/cancel"),
                serde_json::json!({ "reason": "maker withdrew" }),
            )
            .await;
        assert_eq!(status, 200, "cancel {order_id}: {body}");
        body
    }

    /// Submit a spec file with its programs, as `microfab submit` does.
    pub async fn submit_file(&self, path: &str) -> Value {
        let (status, body) = self.post("/api/v1/orders", submission(path)).await;
        assert_eq!(status, 201, "submit {path}: {body}");
        body["order"].clone()
    }

    /// Submit the spec at `path` and approve it; the order's id.
    pub async fn submit_and_approve(&self, path: &str) -> String {
        let id = self.submit_file(path).await["id"]
            .as_str()
            .unwrap()
            .to_string();
        let (status, body) = self
            .post(&format!("/api/v1/orders/{id}/approve"), Value::Null)
            .await;
        assert_eq!(status, 200, "approve {id}: {body}");
        id
    }

    /// Stock on hand per account, in thousandths.
    pub async fn stock(&self) -> std::collections::BTreeMap<String, i64> {
        self.ok("/api/v1/materials")
            .await
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["id"].as_str().unwrap().to_string(),
                    (m["on_hand"].as_f64().unwrap() * 1000.0).round() as i64,
                )
            })
            .collect()
    }
}

/// The body of `POST /api/v1/orders` for a spec file with its programs.
pub fn submission(path: &str) -> Value {
    let checked = microfab_job_specs::check_file(Path::new(path)).unwrap();
    let programs: serde_json::Map<String, Value> = checked
        .programs
        .iter()
        .map(|(k, p)| (k.clone(), Value::String(p.text.clone())))
        .collect();
    serde_json::json!({ "spec_toml": std::fs::read_to_string(path).unwrap(), "source_name": checked.source_name, "programs": programs })
}

/// Stock dropped by exactly one draw per run that took material (`drew` says which jobs did),
/// and nothing is left reserved.
pub async fn assert_stock_exact(
    client: &Client,
    before: &std::collections::BTreeMap<String, i64>,
    jobs: &Value,
    drew: impl Fn(&Value) -> bool,
) {
    let after = client.stock().await;
    for (step, account, per_run) in bracket_draws() {
        let runs = jobs
            .as_array()
            .unwrap()
            .iter()
            .filter(|j| j["step"] == step && drew(j))
            .count() as i64;
        assert_eq!(
            before[account] - after[account],
            runs * per_run,
            "stock of {account} for step {step}"
        );
    }
    assert_nothing_reserved(client).await;
}

/// No stock account holds a reservation: every order is closed, or its runs all drew.
pub async fn assert_nothing_reserved(client: &Client) {
    let materials = client.ok("/api/v1/materials").await;
    assert!(
        materials
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["reserved"] == 0.0),
        "nothing stays reserved: {materials}"
    );
}

/// Per-run material of the bracket spec, in thousandths, by step id.
pub fn bracket_draws() -> Vec<(&'static str, &'static str, i64)> {
    vec![
        ("gussets", "ply6@common", 1000),
        ("bar", "albar@common", 660),
        ("assembly", "m4@common", 4000),
    ]
}

/// `microfab serve` on the config file at `config` and `database`, listening on a free port,
/// and a client for the address it prints.
pub async fn spawn_server(
    config: &std::path::Path,
    database: &str,
) -> (tokio::process::Child, Client) {
    spawn_server_with(config, database, |_| {}).await
}

/// [`spawn_server`] with the command changed by `adjust` before it starts: more arguments
/// (`--log-format json`), environment (`RUST_LOG`), or stderr piped to read the logs.
pub async fn spawn_server_with(
    config: &std::path::Path,
    database: &str,
    adjust: impl FnOnce(&mut tokio::process::Command),
) -> (tokio::process::Child, Client) {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_microfab"));
    command
        .args(["serve", "--config"])
        .arg(config)
        .args(["--database", database, "--listen", "127.0.0.1:0"])
        .env("MICROFAB_BOOTSTRAP_TOKEN", ADMIN_TOKEN)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true);
    adjust(&mut command);
    let mut child = command.spawn().unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line())
        .await
        .expect("the server printed its address")
        .unwrap()
        .unwrap();
    let address = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap()
        .to_string();
    (child, Client::new(address))
}

/// Wait (polling) until `done` holds, for at most a minute; `what` names it in the failure.
/// Tests wait for the state that matters rather than sleeping a guessed time.
pub async fn wait_until<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    while !done().await {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
