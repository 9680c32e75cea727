//! The panel in a real browser: Playwright (npm `playwright-core`, in `tests/browser/`) drives
//! Debian's chromium against the real `microfab serve` process, as makers, an operator and an
//! admin would (the scenarios are in `tests/browser/scenarios.mjs`; the operator's tasks at a
//! tablet, on a plant whose lasers need loading and unloading, in `tasks.mjs`). Screenshots of
//! every page, for every role that sees it, at 1024×768 and 1600×1000 go to
//! `target/browser-artifacts/` (or `$MICROFAB_ARTIFACTS`).
//!
//! Needs `node` (18 or later, with npm) and chromium at `/usr/bin/chromium` (or
//! `$MICROFAB_CHROMIUM`); `.ci/run` installs both. The node packages are installed here
//! (`npm ci`) when `node_modules` is missing or does not match `package-lock.json`.
//!
//! The fleet board at 200 machines is a measurement, not a test: `cargo test -p microfab --test
//! browser -- --ignored --nocapture fleet_board` prints its table (see docs/benchmarks.md).

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use microfab::cli::fleet_config;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_microfab");
/// The admin API token `serve` seeds from `MICROFAB_BOOTSTRAP_TOKEN`; the scenarios use it to
/// look up ids and set up what is not under test.
const BOOTSTRAP_TOKEN: &str = "mf_browser_test_bootstrap_0123456789abcdef0123456789";

/// The accounts the scenarios log in with: (key the scripts use, name, role).
const ACCOUNTS: &[(&str, &str, &str)] = &[
    ("maker", "ana-makerspace", "maker"),
    ("otherMaker", "ben-workshop", "maker"),
    ("operator", "olga-operator", "operator"),
    ("admin", "ada-admin", "admin"),
];

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

fn chromium() -> PathBuf {
    std::env::var_os("MICROFAB_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// Where screenshots and the server's log go: `$MICROFAB_ARTIFACTS`, else
/// `browser-artifacts/` in the target directory this test binary was built into.
fn artifacts_dir(run: &str) -> PathBuf {
    let base = std::env::var_os("MICROFAB_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            // target/<profile>/deps/browser-<hash>
            let exe = std::env::current_exe().unwrap();
            exe.ancestors().nth(3).unwrap().join("browser-artifacts")
        });
    let dir = base.join(run);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// What the test needs outside Rust, with what to do when it is missing.
fn check_prerequisites() {
    let node = std::process::Command::new("node").arg("--version").output();
    assert!(
        node.as_ref().is_ok_and(|o| o.status.success()),
        "the browser tests need Node.js 18 or later with npm on PATH (.ci/run installs Debian's \
         nodejs and npm): {node:?}"
    );
    assert!(
        chromium().exists(),
        "the browser tests need chromium at {} (Debian: apt-get install chromium; .ci/run does \
         it) or MICROFAB_CHROMIUM set to a chromium binary",
        chromium().display()
    );
}

/// The packages `package-lock.json` names that are missing from `node_modules` or installed at
/// another version.
fn stale_node_packages(dir: &Path) -> Vec<String> {
    let lock: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("package-lock.json")).unwrap())
            .expect("package-lock.json is JSON");
    let mut stale = Vec::new();
    for (path, package) in lock["packages"].as_object().unwrap() {
        if path.is_empty() {
            continue;
        }
        let installed = std::fs::read_to_string(dir.join(path).join("package.json"))
            .ok()
            .and_then(|text| serde_json::from_str::<Value>(&text).ok());
        if installed.as_ref().map(|p| &p["version"]) != Some(&package["version"]) {
            stale.push(format!("{path}@{}", package["version"]));
        }
    }
    stale
}

/// `npm ci` in the node project unless `node_modules` already matches the lock file, so a
/// fresh clone needs nothing else. Tests in this binary may run at once: one installs.
fn ensure_node_packages() {
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = browser_dir();
    let stale = stale_node_packages(&dir);
    if stale.is_empty() {
        return;
    }
    eprintln!("browser tests: npm ci ({} stale: {stale:?})", dir.display());
    let out = std::process::Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&dir)
        .output()
        .expect("npm runs");
    assert!(
        out.status.success(),
        "npm ci in {} failed:\n{}\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let still = stale_node_packages(&dir);
    assert!(still.is_empty(), "npm ci left {still:?} stale");
}

/// `microfab serve` on a fresh SQLite file with the accounts in [`ACCOUNTS`]; stops on drop.
struct Plant {
    server: Child,
    url: String,
    passwords: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Plant {
    async fn start(config_text: &str, artifacts: &Path) -> Plant {
        let dir = tempfile::tempdir().unwrap();
        let config = common::write_config(dir.path(), config_text);
        let database = format!("sqlite://{}", dir.path().join("plant.db").display());
        let log = std::fs::File::create(artifacts.join("server.log")).unwrap();
        let mut server = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--database", &database])
            .arg("--config")
            .arg(&config)
            .env("MICROFAB_BOOTSTRAP_TOKEN", BOOTSTRAP_TOKEN)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(server.stdout.take().unwrap()).lines();
        let started = tokio::time::timeout(Duration::from_secs(60), stdout.next_line())
            .await
            .expect("serve prints its address within a minute")
            .unwrap()
            .unwrap_or_else(|| {
                let log = std::fs::read_to_string(artifacts.join("server.log")).unwrap_or_default();
                panic!("serve stopped before it printed its address:\n{log}")
            });
        let url = started
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in {started:?}"))
            .trim_end_matches('/')
            .to_string();
        // Keep reading what serve prints so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = stdout.next_line().await {} });

        let mut passwords = Vec::new();
        for (i, (_, name, role)) in ACCOUNTS.iter().enumerate() {
            let password = format!("pw-{name}-{i}-correct-horse");
            add_user(&database, name, role, &password).await;
            passwords.push(password);
        }
        Plant {
            server,
            url,
            passwords,
            _dir: dir,
        }
    }

    /// The accounts as the scripts read them: `{"maker": {"name", "password", "role"}, ...}`.
    fn accounts_json(&self) -> String {
        let accounts: serde_json::Map<String, Value> = ACCOUNTS
            .iter()
            .zip(&self.passwords)
            .map(|((key, name, role), password)| {
                (
                    key.to_string(),
                    json!({ "name": name, "role": role, "password": password }),
                )
            })
            .collect();
        Value::Object(accounts).to_string()
    }
}

impl Drop for Plant {
    fn drop(&mut self) {
        let _ = self.server.start_kill();
    }
}

/// An account made with `microfab user add` on the plant's database while it runs, as an admin
/// would; the password goes in on standard input, never on a command line.
async fn add_user(database: &str, name: &str, role: &str, password: &str) {
    use tokio::io::AsyncWriteExt as _;
    let mut child = Command::new(BIN)
        .args(["user", "add", name, "--role", role, "--password-stdin"])
        .args(["--database", database])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(format!("{password}\n").as_bytes())
        .await
        .unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "microfab user add {name} --role {role}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The panel's pages with the least role that sees each, for the screenshot walk.
fn pages_json() -> String {
    let pages: Vec<Value> = microfab::panel::PAGES
        .iter()
        .map(|(path, role)| json!({ "path": path, "role": role.as_str() }))
        .collect();
    Value::Array(pages).to_string()
}

/// Run one node script of the browser project against `plant`: what it prints on standard
/// output (each step, or the figures) is returned and shown; its standard error (progress, a
/// crash) goes straight to the terminal. Panics with its output when it fails.
async fn run_script(script: &str, plant: &Plant, artifacts: &Path, limit: Duration) -> String {
    let run = Command::new("node")
        .arg(script)
        .current_dir(browser_dir())
        .env("MICROFAB_URL", &plant.url)
        .env("MICROFAB_TOKEN", BOOTSTRAP_TOKEN)
        .env("MICROFAB_ACCOUNTS", plant.accounts_json())
        .env("MICROFAB_PAGES", pages_json())
        .env("MICROFAB_ARTIFACTS", artifacts)
        .env("MICROFAB_CHROMIUM", chromium())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(limit, run)
        .await
        .unwrap_or_else(|_| panic!("{script} did not finish within {limit:?}"))
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{script} failed ({}); screenshots and server.log in {}\n{stdout}",
        out.status,
        artifacts.display()
    );
    print!("{stdout}");
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panel_scenarios_in_chromium() {
    check_prerequisites();
    ensure_node_packages();
    let artifacts = artifacts_dir("scenarios");
    // A 14-minute laser run takes about 3 s: jobs visibly start and end while a person watches.
    let plant = Plant::start(&fleet_config("browser test plant", 9, 300.0), &artifacts).await;
    run_script(
        "scenarios.mjs",
        &plant,
        &artifacts,
        Duration::from_secs(240),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_tasks_in_chromium() {
    check_prerequisites();
    ensure_node_packages();
    let artifacts = artifacts_dir("tasks");
    // Lasers that wait for a person before and after each run; nobody simulated does it.
    let config = fleet_config("browser test plant", 6, 300.0)
        + "\n[operator_tasks.laser]\n\
           load = { text = \"Load a 6 mm birch sheet and focus\", minutes = 3 }\n\
           unload = { text = \"Take the coasters off the bed and inspect them\", minutes = 2 }\n";
    let plant = Plant::start(&config, &artifacts).await;
    run_script("tasks.mjs", &plant, &artifacts, Duration::from_secs(180)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run with --ignored --nocapture to print the fleet board's figures"]
async fn fleet_board_at_200_machines() {
    check_prerequisites();
    ensure_node_packages();
    let artifacts = artifacts_dir("fleet-200");
    // Runs of 4 s (assembly) to 40 s (the bar): the fleet stays busy for the whole measurement.
    let plant = Plant::start(&fleet_config("browser test plant", 200, 60.0), &artifacts).await;
    run_script(
        "bench-fleet.mjs",
        &plant,
        &artifacts,
        Duration::from_secs(900),
    )
    .await;
}
