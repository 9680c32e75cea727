//! The `microfab` client commands, run as the real binary against a plant in this process:
//! tables for people and JSON only with `--json`, a closed pipe ends quietly, unknown values
//! are errors naming the valid ones, ids stay inside their path segment, `--server` in the
//! forms people write, a repeated `submit` makes no second order, and the operator's everyday
//! actions. Also: commands that read a database never create one.

mod common;

use std::process::{Output, Stdio};
use std::time::Duration;

use common::{BRACKET_SPEC, TestDb, TestPlant, plant_config};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_microfab");

async fn microfab(args: &[&str]) -> Output {
    Command::new(BIN)
        .env("MICROFAB_TOKEN", common::ADMIN_TOKEN)
        .args(args)
        .env_remove("MICROFAB_SERVER")
        .output()
        .await
        .unwrap()
}

/// Run a client command against `server`; returns its stdout, failing the test on a non-zero
/// exit.
async fn ok(server: &str, args: &[&str]) -> String {
    let out = microfab(&[args, &["--server", server]].concat()).await;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "microfab {args:?}: {}\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Run a client command that must fail; returns its stderr.
async fn refused(server: &str, args: &[&str]) -> String {
    let out = microfab(&[args, &["--server", server]].concat()).await;
    assert!(
        !out.status.success(),
        "microfab {args:?} should fail: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// A plant whose machines are far too slow to finish anything while a test runs.
async fn slow_plant(db: &TestDb) -> TestPlant {
    TestPlant::start(db, &plant_config(0.001, 0.0)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_prints_a_table_and_json_only_when_asked() {
    let db = TestDb::sqlite().await;
    let plant = slow_plant(&db).await;
    let server = plant.client.base.clone();
    let submitted = ok(&server, &["submit", BRACKET_SPEC]).await;
    assert!(
        submitted.starts_with("submitted ord-000001: 200 x"),
        "{submitted}"
    );

    let commands: &[&[&str]] = &[
        &["orders"],
        &["order", "ord-000001"],
        &["maintenance", "laser-2", "on", "--reason", "lens cleaning"],
        &["maintenance", "laser-2", "off"],
        &["approve", "ord-000001"],
        &["jobs"],
        &["machines"],
        &["materials"],
        &["plan"],
        &["events"],
        &["restock", "ply6@common", "2", "--lot", "L-1"],
        &[
            "adjust",
            "ply6@common",
            "-1",
            "--reason",
            "count after the shift",
        ],
    ];
    for args in commands {
        let text = ok(&server, args).await;
        assert!(
            serde_json::from_str::<Value>(&text).is_err()
                && !text.trim_start().starts_with(['{', '[']),
            "microfab {args:?} prints for people, not JSON:\n{text}"
        );
        assert!(!text.trim().is_empty(), "microfab {args:?} printed nothing");
    }
    let orders = ok(&server, &["orders"]).await;
    let header = orders.lines().next().unwrap();
    for column in ["id", "state", "good", "eta", "product"] {
        assert!(header.contains(column), "{header}");
    }
    let order = ok(&server, &["order", "ord-000001"]).await;
    for step in ["gussets", "bar", "assembly"] {
        assert!(order.contains(step), "each step's progress: {order}");
    }
    assert!(order.contains("eta"), "{order}");

    for args in [
        &["orders"][..],
        &["order", "ord-000001"],
        &["jobs"],
        &["machines"],
        &["materials"],
        &["plan"],
        &["cancel", "ord-000001", "--reason", "maker withdrew"],
    ] {
        let text = ok(&server, &[args, &["--json"]].concat()).await;
        let value: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("microfab {args:?} --json: {e}\n{text}"));
        assert!(value.is_object() || value.is_array(), "{text}");
    }
    let events = ok(&server, &["events", "--json"]).await;
    for line in events.lines() {
        serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    }
    plant.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_goes_away_ends_the_command_quietly() {
    let db = TestDb::sqlite().await;
    let plant = slow_plant(&db).await;
    let server = plant.client.base.clone();
    ok(&server, &["submit", BRACKET_SPEC]).await;
    ok(&server, &["approve", "ord-000001"]).await;
    let server = ["--server", server.as_str()];
    for args in [
        [&["jobs"][..], &server].concat(),
        [&["events"][..], &server].concat(),
        [&["jobs", "--json"][..], &server].concat(),
        vec!["spec", "check", BRACKET_SPEC],
    ] {
        // The reader is gone before the command writes its first byte: `microfab jobs | head -0`.
        let mut child = Command::new(BIN)
            .env("MICROFAB_TOKEN", common::ADMIN_TOKEN)
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().await.unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.is_empty(),
            "microfab {args:?} into a closed pipe: {} {stderr}",
            out.status
        );
    }
    plant.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_values_are_errors_naming_the_valid_ones() {
    let db = TestDb::sqlite().await;
    let plant = slow_plant(&db).await;
    let server = plant.client.base.clone();
    ok(&server, &["submit", BRACKET_SPEC]).await;

    let stderr = refused(&server, &["jobs", "--state", "interupted"]).await;
    assert!(
        stderr.contains("interupted") && stderr.contains("`interrupted`"),
        "{stderr}"
    );
    let stderr = refused(&server, &["orders", "--state", "done"]).await;
    assert!(stderr.contains("`completed`"), "{stderr}");
    let stderr = refused(&server, &["operator", "router-1", "unlok"]).await;
    assert!(stderr.contains("`unlock`"), "{stderr}");

    let client = &plant.client;
    for (path, names) in [
        ("/api/v1/jobs?state=interupted", "interrupted"),
        ("/api/v1/orders?state=open", "in_progress"),
        ("/api/v1/orders?makr=x", "maker"),
    ] {
        let (status, body) = client.get(path).await;
        assert_eq!(status, 400, "{path}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(names), "{path}: {message}");
    }
    let (_, order) = client.get("/api/v1/orders/ord-000001").await;
    let maker = order["maker"].as_str().unwrap();
    let mine = client.ok(&format!("/api/v1/orders?maker={maker}")).await;
    assert_eq!(mine.as_array().unwrap().len(), 1);
    let others = client.ok("/api/v1/orders?maker=somebody-else").await;
    assert_eq!(others, Value::Array(Vec::new()), "the maker filter filters");
    plant.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_cannot_reach_another_order_and_servers_are_named_as_people_write_them() {
    let db = TestDb::sqlite().await;
    let plant = slow_plant(&db).await;
    let server = plant.client.base.clone();
    let address = server.strip_prefix("http://").unwrap().to_string();
    ok(&server, &["submit", BRACKET_SPEC]).await;

    let stderr = refused(&server, &["approve", "x/../ord-000001"]).await;
    assert!(stderr.contains("'x/../ord-000001' not found"), "{stderr}");
    let order = plant.client.ok("/api/v1/orders/ord-000001").await;
    assert_eq!(order["state"], "submitted", "the other order is untouched");

    for form in [
        address.clone(),
        format!("{server}/"),
        format!("{server}/api/v1"),
        format!("{server}/api/v1/"),
    ] {
        let orders = ok(&form, &["orders"]).await;
        assert!(orders.contains("ord-000001"), "--server {form}: {orders}");
    }
    let stderr = refused(&format!("ftp://{address}"), &["orders"]).await;
    assert!(stderr.contains("http://HOST:PORT"), "{stderr}");
    plant.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submitting_the_same_files_twice_makes_one_order() {
    let db = TestDb::sqlite().await;
    let plant = slow_plant(&db).await;
    let server = plant.client.base.clone();
    ok(&server, &["submit", BRACKET_SPEC]).await;
    let again = ok(&server, &["submit", BRACKET_SPEC]).await;
    assert!(
        again.starts_with("already submitted as ord-000001"),
        "{again}"
    );
    let json = ok(&server, &["submit", BRACKET_SPEC, "--json"]).await;
    let json: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["already_submitted"], true);
    assert_eq!(json["order"]["id"], "ord-000001");
    assert_eq!(
        plant
            .client
            .ok("/api/v1/orders")
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let another = ok(&server, &["submit", BRACKET_SPEC, "--key", "second batch"]).await;
    assert!(another.starts_with("submitted ord-000002"), "{another}");

    // The API says which it was: 201 for a new order, 200 for the one the key names.
    let spec = std::fs::read_to_string(BRACKET_SPEC).unwrap();
    let checked = microfab_job_specs::check_file(std::path::Path::new(BRACKET_SPEC)).unwrap();
    let programs: serde_json::Map<String, Value> = checked
        .programs
        .iter()
        .map(|(k, p)| (k.clone(), Value::String(p.text.clone())))
        .collect();
    let body = serde_json::json!({ "spec_toml": spec, "programs": programs, "submission_key": "second batch" });
    let (status, answer) = plant.client.post("/api/v1/orders", body).await;
    assert_eq!(
        (status, &answer["order"]["id"]),
        (200, &Value::from("ord-000002"))
    );
    plant.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_works_the_plant_from_the_command_line() {
    let db = TestDb::sqlite().await;
    let plant = slow_plant(&db).await;
    let server = plant.client.base.clone();
    let before = plant.client.stock().await["ply6@common"];

    ok(&server, &["restock", "ply6@common", "5", "--lot", "L-42"]).await;
    ok(
        &server,
        &[
            "adjust",
            "ply6@common",
            "-2",
            "--reason",
            "two warped sheets",
        ],
    )
    .await;
    assert_eq!(plant.client.stock().await["ply6@common"], before + 3000);

    let on = ok(
        &server,
        &["maintenance", "mill-1", "on", "--reason", "spindle"],
    )
    .await;
    assert!(on.contains("maintenance"), "{on}");
    let machine = plant.client.ok("/api/v1/machines/mill-1").await;
    assert_eq!(machine["state"], "maintenance");
    ok(&server, &["maintenance", "mill-1", "off"]).await;
    let machine = plant.client.ok("/api/v1/machines/mill-1").await;
    assert_eq!(machine["state"], "idle");

    // A job on a machine: pause and resume it, then abort it.
    ok(&server, &["submit", BRACKET_SPEC]).await;
    ok(&server, &["approve", "ord-000001"]).await;
    let busy = wait_for_busy_machine(&plant.client).await;
    let paused = ok(&server, &["machine", &busy, "pause"]).await;
    assert!(paused.contains(&busy), "{paused}");
    wait_for_state(&plant.client, &busy, "paused").await;
    ok(&server, &["machine", &busy, "resume"]).await;
    wait_for_state(&plant.client, &busy, "busy").await;
    ok(&server, &["machine", &busy, "abort"]).await;

    // A simulated machine has no operator actions: the driver's refusal comes through.
    let stderr = refused(&server, &["operator", "mill-1", "unlock"]).await;
    assert!(stderr.contains("409"), "{stderr}");

    // Who told a machine what is in the event log; a refused action left nothing there.
    let log = plant.client.ok("/api/v1/events/log").await;
    let commands: Vec<(String, String, String)> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|record| record["event"]["kind"] == "machine_commanded")
        .map(|record| {
            let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
            (
                text(&record["actor"]),
                text(&record["event"]["machine_id"]),
                text(&record["event"]["command"]),
            )
        })
        .collect();
    let expected: Vec<(String, String, String)> = ["pause", "resume", "abort"]
        .into_iter()
        .map(|command| ("bootstrap".to_string(), busy.clone(), command.to_string()))
        .collect();
    assert_eq!(commands, expected);

    let plan = ok(&server, &["plan"]).await;
    assert!(
        plan.starts_with("plan of") || plan.starts_with("no plan yet"),
        "{plan}"
    );
    let events = ok(&server, &["events", "--order", "ord-000001"]).await;
    assert!(
        events.lines().next().unwrap().contains("order_submitted"),
        "{events}"
    );
    assert!(events.lines().all(|l| l.contains("ord-000001")), "{events}");

    // `events --follow` prints what happens after it started.
    let mut follower = Command::new(BIN)
        .env("MICROFAB_TOKEN", common::ADMIN_TOKEN)
        .args(["events", "--follow", "--server", &server])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(follower.stdout.take().unwrap()).lines();
    // The stream is live once the server sends its first byte; a restock then must show up.
    let mut restocked = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let restock = async {
        loop {
            ok(&server, &["restock", "m4@common", "10"]).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    tokio::pin!(restock);
    while !restocked {
        tokio::select! {
            line = tokio::time::timeout_at(deadline, lines.next_line()) => {
                let line = line.expect("a restock event in time").unwrap().expect("the stream goes on");
                restocked = line.contains("material_restocked") && line.contains("m4@common");
            }
            _ = &mut restock => unreachable!(),
        }
    }
    plant.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_works_through_a_tls_reverse_proxy() {
    let db = TestDb::sqlite().await;
    let plant = slow_plant(&db).await;
    let port = tls_reverse_proxy(plant.running.address).await;
    let out = Command::new(BIN)
        .env("MICROFAB_TOKEN", common::ADMIN_TOKEN)
        .args(["orders", "--server", &format!("https://127.0.0.1:{port}")])
        // The proxy's certificate is signed by a test CA, trusted like a plant's own CA would be.
        .env(
            "SSL_CERT_FILE",
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls/ca.pem"),
        )
        .env_remove("MICROFAB_SERVER")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).starts_with("id "),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    plant.shutdown.cancel();
}

/// TLS on a free port of 127.0.0.1, every connection passed on to `upstream` in plain HTTP:
/// what nginx or Caddy in front of a plant does. The certificate (for 127.0.0.1 and localhost)
/// and its CA are test fixtures made with openssl, valid for a century.
async fn tls_reverse_proxy(upstream: std::net::SocketAddr) -> u16 {
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio_rustls::rustls::{ServerConfig, crypto};
    let certificates: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(include_bytes!("fixtures/tls/localhost.pem"))
            .collect::<Result<_, _>>()
            .unwrap();
    let key = PrivateKeyDer::from_pem_slice(include_bytes!("fixtures/tls/localhost.key")).unwrap();
    let config =
        ServerConfig::builder_with_provider(std::sync::Arc::new(crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certificates, key)
            .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut client) = acceptor.accept(client).await else {
                    return;
                };
                let mut server = tokio::net::TcpStream::connect(upstream).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            });
        }
    });
    port
}

async fn wait_for_busy_machine(client: &common::Client) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let machines = client.ok("/api/v1/machines").await;
        if let Some(m) = machines
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["state"] == "busy" && m["driver"] == "sim")
        {
            return m["id"].as_str().unwrap().to_string();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no machine got busy"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_for_state(client: &common::Client, machine: &str, state: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let m = client.ok(&format!("/api/v1/machines/{machine}")).await;
        if m["state"] == state {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{machine} never became {state}: {m}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn verify_never_creates_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.db");
    let url = format!("sqlite://{}", missing.display());
    let out = microfab(&["verify", "--database", &url]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        stderr.contains(&missing.display().to_string()),
        "the error names the path: {stderr}"
    );
    assert!(!missing.exists(), "verify created {}", missing.display());

    // The same command on a database `serve` made reads it.
    let db = TestDb::sqlite().await;
    let store = microfab::store::Store::connect(&db.url).await.unwrap();
    drop(store);
    let out = microfab(&["verify", "--database", &db.url]).await;
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).starts_with("consistent"),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A person reading `spec check` or `config check` sees each problem's line with a caret under
/// the column it names, in the spec, in a program and in the plant config.
#[tokio::test]
async fn errors_show_the_line_they_point_at() {
    let dir = tempfile::tempdir().unwrap();
    let spec_folder = std::path::Path::new(BRACKET_SPEC).parent().unwrap();
    let spec = std::fs::read_to_string(BRACKET_SPEC)
        .unwrap()
        .replace("quantity = 200", "quantity = \"lots\"");
    assert!(
        spec.contains("quantity = \"lots\""),
        "the example spec changed"
    );
    let spec_path = dir.path().join("bracket.toml");
    std::fs::write(&spec_path, spec).unwrap();
    let programs = dir.path().join("programs");
    std::fs::create_dir(&programs).unwrap();
    for entry in std::fs::read_dir(spec_folder.join("programs")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), programs.join(entry.file_name())).unwrap();
    }
    let bar = programs.join("bracket-bar.nc");
    let mut program = std::fs::read_to_string(&bar).unwrap();
    program.push_str("G1 X1 Y#\n");
    let bad_line = program.lines().count();
    std::fs::write(&bar, program).unwrap();

    let out = microfab(&["spec", "check", spec_path.to_str().unwrap()]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let quantity = "bracket.toml:5:12: quantity: expected an integer, found string \"lots\"\n  |\n5 | quantity = \"lots\"\n  |            ^";
    assert!(stderr.contains(quantity), "{stderr}");
    let gutter = " ".repeat(bad_line.to_string().len());
    let syntax = format!(
        "programs/bracket-bar.nc:{bad_line}:8: steps[1].program: G-code syntax: unexpected '#' in `G1 X1 Y#`\n{gutter} |\n{bad_line} | G1 X1 Y#\n{gutter} |        ^"
    );
    assert!(stderr.contains(&syntax), "{stderr}");

    let config_path = dir.path().join("plant.toml");
    std::fs::write(&config_path, "[plant]\nlisten = 8080\n").unwrap();
    let out = microfab(&["config", "check", config_path.to_str().unwrap()]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("\n  |\n2 | listen = 8080\n  |          ^"),
        "{stderr}"
    );
}
