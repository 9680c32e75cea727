//! `microfab user ...` on the database itself: the first admin before the first `serve`, a
//! password from standard input (kept as an argon2id hash), an API token printed once that
//! client commands sign in with, and its revocation.

mod common;

use std::process::Stdio;

use common::{TestDb, TestPlant, plant_config};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_microfab");

/// `microfab user ARGS --database URL`, with `stdin` on its standard input; (success, stdout,
/// stderr).
async fn user(database: &str, args: &[&str], stdin: &str) -> (bool, String, String) {
    let mut child = Command::new(BIN)
        .arg("user")
        .args(args)
        .args(["--database", database])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    let out = child.wait_with_output().await.unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_and_tokens_from_the_command_line() {
    let db = TestDb::sqlite().await;
    // The first admin comes before the plant: `user add` makes the database.
    let (ok, out, err) = user(&db.url, &["add", "ada", "--role", "admin"], "").await;
    assert!(ok, "{err}");
    let generated = out
        .lines()
        .find_map(|l| l.strip_prefix("password (shown once): "))
        .expect("a generated password, printed once");
    assert!(generated.len() >= 20, "{out}");

    let (ok, _, err) = user(
        &db.url,
        &["add", "olga", "--role", "operator", "--password-stdin"],
        "olga's long password\n",
    )
    .await;
    assert!(ok, "{err}");
    let (ok, _, err) = user(&db.url, &["add", "olga", "--role", "maker"], "").await;
    assert!(!ok && err.contains("exists already"), "{err}");
    let (ok, _, err) = user(&db.url, &["add", "x", "--role", "root"], "").await;
    assert!(!ok && err.contains("maker, operator and admin"), "{err}");
    let (ok, _, err) = user(&db.url, &["add", "Bad Name", "--role", "maker"], "").await;
    assert!(!ok && err.contains("not an account name"), "{err}");
    let (ok, _, err) = user(
        &db.url,
        &["add", "ivan", "--role", "maker", "--password-stdin"],
        "short\n",
    )
    .await;
    assert!(!ok && err.contains("at least 10 characters"), "{err}");

    let (ok, token, err) = user(&db.url, &["token", "olga", "--label", "laptop"], "").await;
    assert!(ok, "{err}");
    let token = token.trim().to_string();
    assert!(token.starts_with("mf_") && token.len() == 67, "{token}");

    let plant = TestPlant::start(&db, &plant_config(0.001, 0.0)).await;
    let stored: String =
        sqlx::query_scalar("SELECT password_hash FROM accounts WHERE name = 'olga'")
            .fetch_one(&plant.running.runtime.plant.store.pool)
            .await
            .unwrap();
    assert!(stored.starts_with("$argon2id$") && !stored.contains("olga's"));
    let machines = |token: String| {
        let server = plant.client.base.clone();
        async move {
            Command::new(BIN)
                .args(["machines", "--server", &server])
                .env("MICROFAB_TOKEN", token)
                .output()
                .await
                .unwrap()
        }
    };
    let out = machines(token.clone()).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (ok, list, err) = user(&db.url, &["list"], "").await;
    assert!(ok, "{err}");
    let olga = list.lines().find(|l| l.starts_with("olga ")).unwrap();
    assert!(
        olga.contains("operator") && olga.contains("#1 laptop"),
        "{list}"
    );
    assert!(!list.contains(&token), "a token is shown once only");
    let (ok, _, err) = user(&db.url, &["revoke-token", "1"], "").await;
    assert!(ok, "{err}");
    let out = machines(token).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("401"), "{stderr}");

    // Every change is in the event log, done by `local`; verify holds.
    let log = plant.client.ok("/api/v1/events/log?limit=10000").await;
    let local: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor"] == "local")
        .map(|e| e["event"]["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        local,
        [
            "account_added",
            "account_added",
            "api_token_created",
            // The test plant's bootstrap admin.
            "account_added",
            "api_token_created",
            "api_token_revoked"
        ]
    );
    let verify = plant.client.ok("/api/v1/verify").await;
    assert_eq!(verify["consistent"], true, "{verify}");
    plant.shutdown.cancel();
}
