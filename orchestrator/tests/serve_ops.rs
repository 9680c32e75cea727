//! What an administrator sees of `microfab serve`: a database that cannot be reached is named
//! with its cause within seconds, a password in a database URL is never printed, and every
//! request leaves one access-log line.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{TestDb, plant_config, postgres_base, write_config};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_microfab");
const PASSWORD: &str = "hunter2-not-for-logs";

/// `postgres://user@host:port/name` with [`PASSWORD`] added to the user.
fn with_password(url: &str) -> String {
    url.replacen("@", &format!(":{PASSWORD}@"), 1)
}

/// `serve` on a database it cannot use: it must give up on its own, well before the pool's
/// 30 s acquire timeout; returns its stderr.
async fn serve_fails(dir: &std::path::Path, database: &str) -> String {
    let config = write_config(dir, &plant_config(1.0, 0.0));
    let run = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database",
            database,
            "--config",
        ])
        .arg(&config)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(15), run)
        .await
        .expect("serve reports an unreachable database within seconds")
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !stderr.contains(PASSWORD),
        "the password is printed: {stderr}"
    );
    assert!(stderr.contains("****"), "{stderr}");
    stderr
}

#[tokio::test]
async fn an_unreachable_postgres_is_named_with_its_cause() {
    let dir = tempfile::tempdir().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let stderr = serve_fails(
        dir.path(),
        &format!("postgres://postgres:{PASSWORD}@127.0.0.1:{port}/microfab"),
    )
    .await;
    assert!(
        stderr.contains(&format!("PostgreSQL at 127.0.0.1:{port}")) && stderr.contains("refused"),
        "{stderr}"
    );

    // A port that takes the connection and never answers (a firewall, a hung server).
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let stderr = serve_fails(
        dir.path(),
        &format!("postgres://postgres:{PASSWORD}@127.0.0.1:{port}/microfab"),
    )
    .await;
    assert!(
        stderr.contains(&format!(
            "PostgreSQL at 127.0.0.1:{port}: no answer within 5 s"
        )),
        "{stderr}"
    );
    drop(silent);

    let address = postgres_base().rsplit('@').next().unwrap().to_string();
    let stderr = serve_fails(
        dir.path(),
        &with_password(&format!("{}/microfab_no_such_database", postgres_base())),
    )
    .await;
    assert!(
        stderr.contains(&format!("PostgreSQL at {address}"))
            && stderr.contains("\"microfab_no_such_database\" does not exist"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_startup_line_hides_the_password_and_every_request_is_logged() {
    let db = TestDb::postgres().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &plant_config(0.001, 0.0));
    let mut server = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--database"])
        .arg(with_password(&db.url))
        .arg("--config")
        .arg(&config)
        .env_remove("RUST_LOG")
        .env("MICROFAB_BOOTSTRAP_TOKEN", common::ADMIN_TOKEN)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(server.stdout.take().unwrap()).lines();
    let started = tokio::time::timeout(Duration::from_secs(30), stdout.next_line())
        .await
        .expect("serve starts")
        .unwrap()
        .expect("a startup line");
    assert!(
        !started.contains(PASSWORD) && started.contains("postgres:****@"),
        "{started}"
    );
    let address = started
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap();

    let response = reqwest::Client::new()
        .get(format!("http://{address}/api/v1/orders?state=submitted"))
        .bearer_auth(common::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let missing = reqwest::get(format!("http://{address}/api/v1/orders/ord-999999"))
        .await
        .unwrap();
    assert_eq!(missing.status(), 401, "no account, no answer");

    let mut stderr = BufReader::new(server.stderr.take().unwrap()).lines();
    let mut logged = Vec::new();
    while logged.len() < 2 {
        let line = tokio::time::timeout(Duration::from_secs(10), stderr.next_line())
            .await
            .expect("an access-log line per request")
            .unwrap()
            .expect("serve is still running");
        assert!(!line.contains(PASSWORD), "{line}");
        if line.contains("microfab::access") {
            logged.push(line);
        }
    }
    for (line, expected) in logged.iter().zip([
        [
            "method=GET",
            "path=/api/v1/orders",
            "status=200",
            "account=bootstrap",
        ],
        [
            "method=GET",
            "path=/api/v1/orders/ord-999999",
            "status=401",
            "account=-",
        ],
    ]) {
        for field in expected {
            assert!(line.contains(field), "{field} in {line}");
        }
        assert!(line.contains(" ms="), "{line}");
    }
    server.kill().await.unwrap();
    db.drop_database().await;
}
