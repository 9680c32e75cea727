//! The monitoring files under `deploy/` checked by what will read them: `promtool` for the
//! Prometheus config, the rules and their unit tests; Grafana's provisioning shape for the
//! dashboards; every PromQL expression of the rules and dashboards parsed, and the metrics it
//! selects found in a live plant's `/metrics`; and a real Prometheus scraping a plant at work
//! and evaluating the recording rules.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{TestDb, TestPlant, plant_config};
use promql_parser::parser::Expr;
use serde_json::Value as Json;
use serde_norway::Value as Yaml;

const PROMETHEUS: &str = "../deploy/prometheus";
const GRAFANA: &str = "../deploy/grafana";

/// A program the tests run, found on PATH. Never skipped: CI (`.ci/run`) installs Debian's
/// `prometheus` package, which brings `prometheus` and `promtool`, when they are missing.
fn tool(name: &str) -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
        .unwrap_or_else(|| {
            panic!("`{name}` is not on PATH: .ci/run installs it (Debian package `prometheus`)")
        })
}

fn yaml(path: &Path) -> Yaml {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The rule files prometheus.yml loads, relative to its folder.
fn rule_files() -> Vec<String> {
    let config = yaml(&Path::new(PROMETHEUS).join("prometheus.yml"));
    let files: Vec<String> = config["rule_files"]
        .as_sequence()
        .expect("prometheus.yml has rule_files")
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect();
    assert!(files.len() >= 2, "recording and alert rules: {files:?}");
    files
}

/// Every rule of every rule file: (file, rule).
fn rules() -> Vec<(String, Yaml)> {
    rule_files()
        .into_iter()
        .flat_map(|file| {
            let rules = yaml(&Path::new(PROMETHEUS).join(&file));
            rules["groups"]
                .as_sequence()
                .unwrap()
                .iter()
                .flat_map(|group| group["rules"].as_sequence().unwrap().clone())
                .map(|rule| (file.clone(), rule))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The series the recording rules make: names a dashboard or an alert may select.
fn recording_rule_names() -> BTreeSet<String> {
    rules()
        .iter()
        .filter_map(|(_, rule)| rule["record"].as_str().map(String::from))
        .collect()
}

fn dashboard_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(Path::new(GRAFANA).join("dashboards"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

/// One PromQL expression and where it is written, for the failure message.
struct Expression {
    place: String,
    text: String,
}

/// Every expression of the rule files and the dashboards (panel targets and template
/// variables' queries), with Grafana's variables replaced by values of their kind.
fn expressions() -> Vec<Expression> {
    let mut found: Vec<Expression> = rules()
        .into_iter()
        .map(|(file, rule)| Expression {
            place: format!(
                "{file}: {}",
                rule["record"].as_str().or(rule["alert"].as_str()).unwrap()
            ),
            text: rule["expr"].as_str().unwrap().to_string(),
        })
        .collect();
    for file in dashboard_files() {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let dashboard: Json = serde_json::from_str(&std::fs::read_to_string(&file).unwrap())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let variables = &dashboard["templating"]["list"];
        let declared: BTreeSet<&str> = variables
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v["name"].as_str())
            .collect();
        let mut add = |place: String, text: &str| {
            let text = substitute(text, &declared)
                .unwrap_or_else(|unknown| format!("{text} (uses undeclared variable ${unknown})"));
            found.push(Expression { place, text });
        };
        for variable in variables.as_array().into_iter().flatten() {
            let query = variable["query"]["query"].as_str().unwrap_or_default();
            // `label_values(selector, label)` lists one label's values in what a selector finds.
            if let Some(arguments) = query
                .strip_prefix("label_values(")
                .and_then(|rest| rest.strip_suffix(')'))
            {
                let selector = arguments.rsplit_once(',').map_or(arguments, |(s, _)| s);
                add(format!("{name}: variable {}", variable["name"]), selector);
            }
        }
        for panel in all_panels(&dashboard) {
            for target in panel["targets"].as_array().into_iter().flatten() {
                add(
                    format!("{name}: {} ({})", panel["title"], target["refId"]),
                    target["expr"].as_str().unwrap_or_default(),
                );
            }
        }
    }
    found
}

/// `text` with Grafana's variables replaced: the interval ones by durations, the dashboard's
/// own by a label value; `Err` names a variable the dashboard does not declare.
fn substitute(text: &str, declared: &BTreeSet<&str>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let braced = after.starts_with('{');
        let body = if braced { &after[1..] } else { after };
        let name_len = body
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(body.len());
        let name = &body[..name_len];
        let mut used = name_len;
        if braced {
            // `${name}` or `${name:format}`.
            used = body.find('}').ok_or_else(|| name.to_string())? + 2;
        }
        out.push_str(match name {
            "__rate_interval" | "__range" => "1h",
            "__interval" => "1m",
            _ if declared.contains(name) => "x",
            _ => return Err(name.to_string()),
        });
        rest = &after[used..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The metric names an expression selects; `Err` if it does not parse.
fn metric_names(text: &str) -> Result<BTreeSet<String>, String> {
    struct Names(BTreeSet<String>);
    impl promql_parser::util::ExprVisitor for Names {
        type Error = String;
        fn pre_visit(&mut self, expr: &Expr) -> Result<bool, String> {
            let selector = match expr {
                Expr::VectorSelector(selector) => selector,
                Expr::MatrixSelector(matrix) => &matrix.vs,
                _ => return Ok(true),
            };
            let by_matcher = selector
                .matchers
                .matchers
                .iter()
                .find(|m| m.name == "__name__" && m.op == promql_parser::label::MatchOp::Equal);
            let name = selector
                .name
                .clone()
                .or(by_matcher.map(|m| m.value.clone()))
                .ok_or_else(|| format!("a selector without a metric name: {selector}"))?;
            self.0.insert(name);
            Ok(true)
        }
    }
    let expr = promql_parser::parser::parse(text).map_err(|e| format!("does not parse: {e}"))?;
    let mut names = Names(BTreeSet::new());
    promql_parser::util::walk_expr(&mut names, &expr)?;
    Ok(names.0)
}

/// The sample names an exposition can hold: each family's (`# TYPE`) with the suffixes of its
/// type, so a family without series yet counts, and every sample's name.
fn names_in_exposition(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        if let Some(family) = line.strip_prefix("# TYPE ") {
            let mut words = family.split_whitespace();
            let (Some(name), Some(kind)) = (words.next(), words.next()) else {
                continue;
            };
            let suffixes: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" | "gaugehistogram" => &["_bucket", "_sum", "_count"],
                "summary" => &["", "_sum", "_count"],
                "info" => &["_info"],
                _ => &[""],
            };
            names.extend(suffixes.iter().map(|suffix| format!("{name}{suffix}")));
        } else if !line.starts_with('#') && !line.is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            names.insert(line[..end].to_string());
        }
    }
    names
}

/// Each expression that does not parse or selects a name not in `known`, with its place.
fn unknown_metrics(expressions: &[Expression], known: &BTreeSet<String>) -> Vec<String> {
    let mut problems = Vec::new();
    for expression in expressions {
        match metric_names(&expression.text) {
            Err(e) => problems.push(format!("{}: {e}", expression.place)),
            Ok(names) => {
                for name in names.difference(known) {
                    problems.push(format!(
                        "{}: {name} is not exposed ({})",
                        expression.place, expression.text
                    ));
                }
            }
        }
    }
    problems
}

fn promtool(args: &[&str]) {
    let output = std::process::Command::new(tool("promtool"))
        .args(args)
        .current_dir(PROMETHEUS)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "promtool {} failed:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn promtool_accepts_the_configs_the_rules_and_their_unit_tests() {
    promtool(&["check", "config", "prometheus.yml"]);
    // The compose variant's token file exists only inside the compose deployment.
    promtool(&["check", "config", "--syntax-only", "prometheus-compose.yml"]);
    let rules = rule_files();
    let mut args = vec!["check", "rules"];
    args.extend(rules.iter().map(String::as_str));
    promtool(&args);
    let tests: Vec<String> = yaml_files_in(&Path::new(PROMETHEUS).join("tests"));
    assert!(
        !tests.is_empty(),
        "no rule unit tests in {PROMETHEUS}/tests"
    );
    let mut args = vec!["test", "rules"];
    args.extend(tests.iter().map(String::as_str));
    promtool(&args);
}

/// The `.yml` files in `dir`, relative to the Prometheus folder, sorted.
fn yaml_files_in(dir: &Path) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "yml"))
        .map(|path| path.strip_prefix(PROMETHEUS).unwrap().display().to_string())
        .collect();
    files.sort();
    files
}

#[test]
fn every_alert_has_a_unit_test_that_fires_and_one_that_stays_quiet() {
    let tests: Vec<Yaml> = yaml_files_in(&Path::new(PROMETHEUS).join("tests"))
        .iter()
        .map(|file| yaml(&Path::new(PROMETHEUS).join(file)))
        .collect();
    let cases: Vec<&Yaml> = tests
        .iter()
        .flat_map(|file| file["tests"].as_sequence().into_iter().flatten())
        .collect();
    let alert_cases: Vec<(&str, bool)> = cases
        .iter()
        .flat_map(|case| case["alert_rule_test"].as_sequence().into_iter().flatten())
        .map(|test| {
            let fires = test["exp_alerts"]
                .as_sequence()
                .is_some_and(|alerts| !alerts.is_empty());
            (test["alertname"].as_str().unwrap_or_default(), fires)
        })
        .collect();
    let alerts = yaml(&Path::new(PROMETHEUS).join("rules/alerts.yml"));
    let mut missing = Vec::new();
    for rule in alerts["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|group| group["rules"].as_sequence().unwrap())
    {
        let name = rule["alert"]
            .as_str()
            .expect("alerts.yml holds only alerts");
        for (fires, case) in [(true, "fires"), (false, "stays quiet")] {
            if !alert_cases.contains(&(name, fires)) {
                missing.push(format!("{name}: no unit test where it {case}"));
            }
        }
    }

    // Each recording rule is queried by some unit test.
    let queried: BTreeSet<String> = cases
        .iter()
        .flat_map(|case| case["promql_expr_test"].as_sequence().into_iter().flatten())
        .flat_map(|test| metric_names(test["expr"].as_str().unwrap()).unwrap())
        .collect();
    for name in recording_rule_names() {
        if !queried.contains(&name) {
            missing.push(format!("{name}: no promql_expr_test queries it"));
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

#[test]
fn dashboards_are_provisioning_json_on_the_provisioned_datasource() {
    let datasources = yaml(&Path::new(GRAFANA).join("provisioning/datasources/prometheus.yml"));
    let datasource = &datasources["datasources"][0];
    assert_eq!(datasource["type"].as_str(), Some("prometheus"));
    let uid = datasource["uid"]
        .as_str()
        .expect("the datasource has a uid");

    let providers = yaml(&Path::new(GRAFANA).join("provisioning/dashboards/microfab.yml"));
    let provider = &providers["providers"][0];
    assert_eq!(provider["type"].as_str(), Some("file"));
    let path = provider["options"]["path"]
        .as_str()
        .expect("the file provider has options.path");
    // Grafana reads the folder the compose file mounts there: deploy/grafana/dashboards.
    assert_eq!(
        Path::new(path).file_name(),
        Path::new(GRAFANA).join("dashboards").file_name(),
        "the provider's path {path} is where deploy/grafana/dashboards is mounted"
    );

    let files = dashboard_files();
    let names: BTreeSet<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for expected in ["factory-overview.json", "machine.json", "materials.json"] {
        assert!(
            names.contains(expected),
            "{expected} in {GRAFANA}/dashboards"
        );
    }

    let mut problems = Vec::new();
    let mut uids = BTreeSet::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let dashboard: Json = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{}: not JSON: {e}", file.display()));
        let mut problem = |what: String| problems.push(format!("{}: {what}", file.display()));
        match dashboard["uid"].as_str() {
            // Grafana refuses uids over 40 characters.
            Some(u) if !u.is_empty() && u.len() <= 40 => {
                if !uids.insert(u.to_string()) {
                    problem(format!("uid {u} is another dashboard's"));
                }
            }
            other => problem(format!("uid {other:?} is not 1 to 40 characters")),
        }
        if dashboard["title"].as_str().is_none_or(str::is_empty) {
            problem("no title".into());
        }
        if dashboard["schemaVersion"].as_u64().is_none_or(|v| v < 36) {
            problem("schemaVersion is missing or older than 36".into());
        }
        let panels = all_panels(&dashboard);
        if panels.iter().filter(|p| p["type"] != "row").count() == 0 {
            problem("no panels".into());
        }
        let mut ids = BTreeSet::new();
        for panel in &panels {
            let title = panel["title"].as_str().unwrap_or("(untitled)");
            match panel["id"].as_u64() {
                Some(id) if ids.insert(id) => {}
                id => problem(format!("panel {title}: id {id:?} missing or repeated")),
            }
            let grid = &panel["gridPos"];
            if ["h", "w", "x", "y"]
                .iter()
                .any(|k| grid[k].as_u64().is_none())
                || grid["x"].as_u64().unwrap_or(0) + grid["w"].as_u64().unwrap_or(0) > 24
            {
                problem(format!(
                    "panel {title}: gridPos {grid} is not within 24 columns"
                ));
            }
            if panel["type"] == "row" {
                continue;
            }
            if panel["datasource"]["uid"] != uid {
                problem(format!("panel {title}: datasource is not uid {uid}"));
            }
            let targets = panel["targets"].as_array().cloned().unwrap_or_default();
            if targets.is_empty() {
                problem(format!("panel {title}: no targets"));
            }
            for target in &targets {
                if target["datasource"]["uid"] != uid {
                    problem(format!(
                        "panel {title}: a target's datasource is not uid {uid}"
                    ));
                }
                if target["expr"].as_str().is_none_or(str::is_empty) {
                    problem(format!("panel {title}: a target without expr"));
                }
            }
        }
        for variable in dashboard["templating"]["list"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if variable["type"] == "query" && variable["datasource"]["uid"] != uid {
                problem(format!(
                    "variable {}: datasource is not uid {uid}",
                    variable["name"]
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The dashboard's panels, those inside collapsed rows included.
fn all_panels(dashboard: &Json) -> Vec<Json> {
    let mut panels = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        panels.push(panel.clone());
        panels.extend(panel["panels"].as_array().into_iter().flatten().cloned());
    }
    panels
}

/// A plant at work: the simulated fleet with a 200-bracket order approved, until its first
/// units are made, at a pace where the order stays in progress for minutes.
async fn plant_at_work(db: &TestDb) -> TestPlant {
    let plant = TestPlant::start(db, &plant_config(300.0, 0.05)).await;
    let order = plant.client.submit_and_approve(common::BRACKET_SPEC).await;
    common::wait_until("the order's first units", || async {
        let order = plant.client.ok(&format!("/api/v1/orders/{order}")).await;
        order["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|step| step["good"].as_i64() > Some(0))
    })
    .await;
    plant
}

/// `/metrics` as Prometheus on the same host gets it: over loopback, without a token.
async fn scrape(plant: &TestPlant) -> String {
    let response = reqwest::get(format!("{}/metrics", plant.client.base))
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "GET /metrics over loopback");
    response.text().await.unwrap()
}

#[tokio::test]
async fn every_expression_parses_and_selects_only_metrics_the_plant_exposes() {
    let db = TestDb::sqlite().await;
    let plant = plant_at_work(&db).await;
    let mut known = names_in_exposition(&scrape(&plant).await);
    plant.shutdown.cancel();
    known.extend(recording_rule_names());
    // Prometheus's own series for each target.
    known.insert("up".into());

    let checked = expressions();
    assert!(
        checked.len() > 50,
        "rules and dashboards hold {} expressions",
        checked.len()
    );
    let problems = unknown_metrics(&checked, &known);
    assert!(
        problems.is_empty(),
        "expressions that do not parse or select a metric the plant does not expose:\n{}",
        problems.join("\n")
    );
}

#[test]
fn a_renamed_metric_is_named_with_the_expression_that_selects_it() {
    // The check the live test makes, on a catalog where one name has drifted.
    let known: BTreeSet<String> = ["microfab_machine_busy_seconds_total", "microfab_wip_units"]
        .map(String::from)
        .into();
    let expressions = vec![
        Expression {
            place: "rules/recording.yml: machine:utilisation".into(),
            text: "rate(microfab_machine_busy_seconds_total[1h])".into(),
        },
        Expression {
            place: "factory-overview.json: Work in progress".into(),
            text: "microfab_wip_unit".into(),
        },
        Expression {
            place: "machine.json: broken".into(),
            text: "rate(microfab_wip_units[5m]".into(),
        },
    ];
    let problems = unknown_metrics(&expressions, &known);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert_eq!(
        problems[0],
        "factory-overview.json: Work in progress: microfab_wip_unit is not exposed (microfab_wip_unit)"
    );
    assert!(
        problems[1].starts_with("machine.json: broken: does not parse: "),
        "{}",
        problems[1]
    );
}

/// A port free now on 127.0.0.1, for a program that takes an address rather than a listener.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The repo's prometheus.yml aimed at `target`, sampling and evaluating every second, its rule
/// files by absolute path.
fn prometheus_config_for(target: &str) -> String {
    let mut config = yaml(&Path::new(PROMETHEUS).join("prometheus.yml"));
    config["global"]["scrape_interval"] = "1s".into();
    config["global"]["evaluation_interval"] = "1s".into();
    let rules: Vec<Yaml> = rule_files()
        .iter()
        .map(|file| {
            std::fs::canonicalize(Path::new(PROMETHEUS).join(file))
                .unwrap()
                .display()
                .to_string()
                .into()
        })
        .collect();
    config["rule_files"] = rules.into();
    let scrape = config["scrape_configs"]
        .as_sequence_mut()
        .unwrap()
        .iter_mut()
        .find(|job| job["job_name"] == "microfab")
        .expect("prometheus.yml scrapes job microfab");
    scrape["static_configs"][0]["targets"] = vec![Yaml::from(target)].into();
    serde_norway::to_string(&config).unwrap()
}

/// One query's result vector from Prometheus's HTTP API (empty while it has no sample).
async fn query(prometheus: &str, expr: &str) -> Vec<Json> {
    let response: Json = reqwest::Client::new()
        .get(format!("{prometheus}/api/v1/query"))
        .query(&[("query", expr)])
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(response["status"], "success", "query {expr}: {response}");
    response["data"]["result"].as_array().unwrap().clone()
}

/// Wait until `expr` has a sample whose value is above `above`; the samples.
async fn wait_for_sample(prometheus: &str, expr: &str, above: f64) -> Vec<Json> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let result = query(prometheus, expr).await;
        let value = |sample: &Json| {
            sample["value"][1]
                .as_str()
                .and_then(|v| v.parse::<f64>().ok())
        };
        if result.iter().any(|s| value(s).is_some_and(|v| v > above)) {
            return result;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Prometheus never had {expr} above {above}: {result:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn prometheus_scrapes_a_plant_at_work_and_evaluates_the_recording_rules() {
    let db = TestDb::sqlite().await;
    let plant = plant_at_work(&db).await;
    let target = plant.running.address.to_string();

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(&config, prometheus_config_for(&target)).unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let mut prometheus = tokio::process::Command::new(tool("prometheus"))
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address={listen}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("prometheus.log")).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let api = format!("http://{listen}");

    // The target is up: Prometheus reached /metrics over loopback without a token.
    let http = reqwest::Client::new();
    common::wait_until("Prometheus scraping the plant", || async {
        let Ok(response) = http.get(format!("{api}/api/v1/targets")).send().await else {
            return false;
        };
        let targets: Json = response.json().await.unwrap_or(Json::Null);
        targets["data"]["activeTargets"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| t["labels"]["job"] == "microfab" && t["health"] == "up")
    })
    .await;

    // Production arrives: good units at the order's steps, busy machines.
    let units = wait_for_sample(&api, r#"microfab_units_total{result="good"}"#, 0.0).await;
    assert!(
        units
            .iter()
            .all(|s| s["metric"]["product"].is_string() && s["metric"]["step"].is_string()),
        "{units:?}"
    );
    wait_for_sample(&api, "microfab_machine_busy_seconds_total", 0.0).await;
    // The recording rules evaluate on what was scraped: utilisation per machine, throughput.
    let utilisation =
        wait_for_sample(&api, "machine:microfab_machine_busy:ratio_rate1h", 0.0).await;
    assert!(
        utilisation
            .iter()
            .all(|s| s["metric"]["machine"].is_string()),
        "{utilisation:?}"
    );
    wait_for_sample(&api, "microfab:units_good:increase1h", 0.0).await;

    prometheus.kill().await.unwrap();
    plant.shutdown.cancel();
    let log = std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap();
    assert!(
        !log.contains("level=error"),
        "Prometheus logged errors:\n{log}"
    );
}
