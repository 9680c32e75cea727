//! The monitoring files under `deploy/` checked by what will read them: `promtool` for the
//! Prometheus config, the rules and their unit tests; Grafana's provisioning shape for the
//! dashboards; every PromQL expression of the rules and dashboards parsed, and the metrics it
//! selects found in a live plant's `/metrics`; and a real Prometheus scraping a plant at work,
//! evaluating the rules, and answering every dashboard query on that data.

mod common;
#[path = "monitoring/promql.rs"]
mod promql;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{TestDb, TestPlant, plant_config};
use promql::{Expression, metric_names, names_in_exposition, substitute, unknown_metrics};
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

/// A dashboard's template variable: `label_values(selector, label)`, offering "All" or not.
struct Variable {
    name: String,
    selector: String,
    label: String,
    include_all: bool,
}

/// One dashboard's queries as written: its variables, and its panels' expressions by place.
struct DashboardQueries {
    file: String,
    variables: Vec<Variable>,
    panels: Vec<(String, String)>,
}

fn dashboard_queries() -> Vec<DashboardQueries> {
    dashboard_files()
        .iter()
        .map(|path| {
            let file = path.file_name().unwrap().to_string_lossy().into_owned();
            let dashboard: Json = serde_json::from_str(&std::fs::read_to_string(path).unwrap())
                .unwrap_or_else(|e| panic!("{file}: {e}"));
            let variables = dashboard["templating"]["list"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|variable| {
                    let name = variable["name"].as_str().unwrap().to_string();
                    let query = variable["query"]["query"].as_str().unwrap_or_default();
                    let (selector, label) = query
                        .strip_prefix("label_values(")
                        .and_then(|rest| rest.strip_suffix(')'))
                        .and_then(|arguments| arguments.rsplit_once(','))
                        .unwrap_or_else(|| {
                            panic!("{file}: variable {name}: not label_values(selector, label)")
                        });
                    Variable {
                        name,
                        selector: selector.trim().to_string(),
                        label: label.trim().to_string(),
                        include_all: variable["includeAll"] == true,
                    }
                })
                .collect();
            let mut panels = Vec::new();
            for panel in all_panels(&dashboard) {
                for target in panel["targets"].as_array().into_iter().flatten() {
                    panels.push((
                        format!("{file}: {} ({})", panel["title"], target["refId"]),
                        target["expr"].as_str().unwrap_or_default().to_string(),
                    ));
                }
            }
            DashboardQueries {
                file,
                variables,
                panels,
            }
        })
        .collect()
}

/// `text` with the variables set to `values`, as an expression at `place`. An undeclared
/// variable stays in the text, which then fails to parse there.
fn expression(place: String, text: &str, values: &BTreeMap<&str, &str>) -> Expression {
    match substitute(text, values) {
        Ok(text) => Expression { place, text },
        Err(unknown) => Expression {
            place: format!("{place} (undeclared variable ${unknown})"),
            text: text.to_string(),
        },
    }
}

/// Every expression of the rule files and the dashboards (panel targets and template
/// variables' selectors), the dashboards' variables set to a label value.
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
    for dashboard in dashboard_queries() {
        let values: BTreeMap<&str, &str> = dashboard
            .variables
            .iter()
            .map(|v| (v.name.as_str(), "x"))
            .collect();
        for variable in &dashboard.variables {
            let place = format!("{}: variable {}", dashboard.file, variable.name);
            found.push(expression(place, &variable.selector, &values));
        }
        for (place, text) in &dashboard.panels {
            found.push(expression(place.clone(), text, &values));
        }
    }
    found
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

#[test]
fn the_compose_scrape_config_differs_only_in_where_microfab_is() {
    let host = yaml(&Path::new(PROMETHEUS).join("prometheus.yml"));
    let compose = yaml(&Path::new(PROMETHEUS).join("prometheus-compose.yml"));
    assert_eq!(compose["global"], host["global"], "global");
    assert_eq!(compose["rule_files"], host["rule_files"], "rule_files");
    let job = |config: &Yaml| {
        let mut job = config["scrape_configs"][0].clone();
        let job = job.as_mapping_mut().unwrap();
        // Where microfab is and how Prometheus proves itself there: what may differ.
        job.remove("static_configs");
        job.remove("authorization");
        job.clone()
    };
    assert_eq!(job(&compose), job(&host), "the scrape job");
    assert_eq!(
        compose["scrape_configs"][0]["static_configs"][0]["targets"][0].as_str(),
        Some("microfab:8080")
    );
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

/// `/metrics` as Prometheus on the same host gets it: over loopback, without a token, asking
/// for OpenMetrics first as Prometheus 2.42 does.
async fn scrape(plant: &TestPlant) -> String {
    let response = reqwest::Client::new()
        .get(format!("{}/metrics", plant.client.base))
        .header(
            "accept",
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "GET /metrics over loopback");
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        content_type.starts_with("application/openmetrics-text")
            || content_type.starts_with("text/plain"),
        "/metrics answers in a Prometheus exposition format, not {content_type}"
    );
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

/// `/usr/bin/prometheus` (or the one on PATH) on a free port with the repo's config aimed at one
/// target, its data in a temp dir. Killed when dropped; a failing test shows its log.
struct Prometheus {
    process: tokio::process::Child,
    dir: tempfile::TempDir,
    base: String,
    http: reqwest::Client,
}

impl Prometheus {
    fn start(target: &str) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, prometheus_config_for(target)).unwrap();
        let listen = format!("127.0.0.1:{}", free_port());
        let process = tokio::process::Command::new(tool("prometheus"))
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
        Prometheus {
            process,
            dir,
            base: format!("http://{listen}"),
            http: reqwest::Client::new(),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// The `data` of an HTTP API answer, or what Prometheus (or the connection) said went wrong.
    async fn api(&self, path: &str, parameters: &[(&str, &str)]) -> Result<Json, String> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .query(parameters)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let body: Json = response.json().await.map_err(|e| e.to_string())?;
        match body["status"].as_str() {
            Some("success") => Ok(body["data"].clone()),
            _ => Err(format!("{}: {}", body["errorType"], body["error"])),
        }
    }

    /// An instant query's result vector (empty while it has no sample).
    async fn query(&self, expr: &str) -> Result<Vec<Json>, String> {
        let data = self.api("/api/v1/query", &[("query", expr)]).await?;
        Ok(data["result"].as_array().cloned().unwrap_or_default())
    }

    /// Wait until `expr` has a sample whose value is above `above`; the samples.
    async fn wait_for_sample(&self, expr: &str, above: f64) -> Vec<Json> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let result = self.query(expr).await;
            let value = |sample: &Json| {
                sample["value"][1]
                    .as_str()
                    .and_then(|v| v.parse::<f64>().ok())
            };
            if let Ok(samples) = &result
                && samples.iter().any(|s| value(s).is_some_and(|v| v > above))
            {
                return samples.clone();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "Prometheus never had {expr} above {above}: {result:?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Wait until the microfab target is up: Prometheus reached /metrics over loopback without
    /// a token. A failure names the last scrape's error.
    async fn wait_for_target_up(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let targets = self.api("/api/v1/targets", &[]).await;
            let target = targets.as_ref().ok().and_then(|data| {
                data["activeTargets"]
                    .as_array()?
                    .iter()
                    .find(|t| t["labels"]["job"] == "microfab")
                    .map(|t| (t["health"].clone(), t["lastError"].clone()))
            });
            if target.as_ref().is_some_and(|(health, _)| health == "up") {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "Prometheus never scraped the plant: (health, last error) {target:?}, {targets:?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Once every rule has been evaluated, those whose evaluation failed, with the error.
    async fn failed_rules(&self) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let data = self.api("/api/v1/rules", &[]).await.unwrap();
            let rules: Vec<&Json> = data["groups"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|group| group["rules"].as_array().unwrap())
                .collect();
            if rules.iter().all(|rule| rule["health"] != "unknown") {
                return rules
                    .iter()
                    .filter(|rule| rule["health"] != "ok")
                    .map(|rule| format!("{}: {}", rule["name"], rule["lastError"]))
                    .collect();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "Prometheus never evaluated every rule: {data}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Every dashboard query evaluated here, each variable set as Grafana sets it (All where
    /// offered, else the first value its query finds); the queries refused, with the error.
    async fn refused_dashboard_queries(&self) -> Vec<String> {
        let mut refused = Vec::new();
        for dashboard in dashboard_queries() {
            let mut values: BTreeMap<&str, String> = BTreeMap::new();
            for variable in &dashboard.variables {
                let value = if variable.include_all {
                    ".*".to_string()
                } else {
                    let selector = substitute(&variable.selector, &borrowed(&values)).unwrap();
                    let path = format!("/api/v1/label/{}/values", variable.label);
                    let found = self.api(&path, &[("match[]", &selector)]).await;
                    match found.as_ref().map(|data| data[0].as_str()) {
                        Ok(Some(first)) => first.to_string(),
                        _ => {
                            refused.push(format!(
                                "{}: variable {} has no value: {found:?}",
                                dashboard.file, variable.name
                            ));
                            "none".to_string()
                        }
                    }
                };
                values.insert(&variable.name, value);
            }
            for (place, text) in &dashboard.panels {
                let text = substitute(text, &borrowed(&values)).unwrap();
                if let Err(e) = self.query(&text).await {
                    refused.push(format!("{place}: {e} ({text})"));
                }
            }
        }
        refused
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("Prometheus's log:\n{}", self.log());
        }
    }
}

/// Variable values as `substitute` takes them.
fn borrowed<'a>(values: &'a BTreeMap<&'a str, String>) -> BTreeMap<&'a str, &'a str> {
    values.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[tokio::test]
async fn prometheus_scrapes_a_plant_at_work_and_evaluates_the_rules_and_dashboards() {
    let db = TestDb::sqlite().await;
    let plant = plant_at_work(&db).await;
    let mut prometheus = Prometheus::start(&plant.running.address.to_string());
    prometheus.wait_for_target_up().await;

    // Production arrives: good units at the order's steps, busy machines.
    let units = prometheus
        .wait_for_sample(r#"microfab_units_total{result="good"}"#, 0.0)
        .await;
    assert!(
        units
            .iter()
            .all(|s| s["metric"]["product"].is_string() && s["metric"]["step"].is_string()),
        "{units:?}"
    );
    prometheus
        .wait_for_sample("microfab_machine_busy_seconds_total", 0.0)
        .await;
    // The order is still being made: its own series carry its quantity.
    let orders = prometheus
        .wait_for_sample("microfab_order_quantity_units", 199.0)
        .await;
    assert_eq!(orders.len(), 1, "one active order: {orders:?}");
    // The recording rules evaluate on what was scraped: utilisation per machine, throughput.
    let utilisation = prometheus
        .wait_for_sample("machine:microfab_machine_busy:ratio_rate1h", 0.0)
        .await;
    assert!(
        utilisation
            .iter()
            .all(|s| s["metric"]["machine"].is_string()),
        "{utilisation:?}"
    );
    prometheus
        .wait_for_sample("microfab:units_good:increase1h", 0.0)
        .await;

    // Every rule and every dashboard query evaluates on real data (no many-to-many matches,
    // no type errors the parser alone cannot see).
    let failed = prometheus.failed_rules().await;
    assert!(
        failed.is_empty(),
        "rules that failed:\n{}",
        failed.join("\n")
    );
    let refused = prometheus.refused_dashboard_queries().await;
    assert!(
        refused.is_empty(),
        "dashboard queries Prometheus refused:\n{}",
        refused.join("\n")
    );

    prometheus.process.kill().await.unwrap();
    plant.shutdown.cancel();
    let log = prometheus.log();
    assert!(
        !log.contains("level=error"),
        "Prometheus logged errors:\n{log}"
    );
}
