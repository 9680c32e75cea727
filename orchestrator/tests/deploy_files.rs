//! The deployment files (`deploy/docker`, `deploy/systemd`) against the repository and each
//! other: every file the compose file mounts exists, its services and dependencies agree, the
//! paths Prometheus and Grafana read are where the compose file puts them, the compose plant
//! config passes `microfab config check`, the Dockerfile copies what exists and every workspace
//! member, the systemd unit keeps its hardening and passes `systemd-analyze verify`, and the
//! scrape-token script makes a token that really signs in as an operator.
//! Images cannot be pulled here (no network): nothing is built or run in a container.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn docker_dir() -> PathBuf {
    repo().join("deploy/docker")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[derive(Debug, Deserialize)]
struct Compose {
    services: BTreeMap<String, Service>,
    #[serde(default)]
    volumes: BTreeMap<String, Option<serde_norway::Value>>,
    #[serde(default)]
    configs: BTreeMap<String, ConfigSource>,
}

#[derive(Debug, Deserialize)]
struct Service {
    image: Option<String>,
    build: Option<Build>,
    #[serde(default)]
    volumes: Vec<String>,
    #[serde(default)]
    configs: Vec<ConfigMount>,
    #[serde(default)]
    depends_on: DependsOn,
    healthcheck: Option<serde_norway::Value>,
    restart: Option<String>,
    #[serde(default)]
    environment: BTreeMap<String, String>,
    #[serde(default)]
    ports: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Build {
    context: String,
    dockerfile: String,
}

#[derive(Debug, Deserialize)]
struct ConfigSource {
    file: String,
}

#[derive(Debug, Deserialize)]
struct ConfigMount {
    source: String,
    target: String,
}

/// `depends_on` as a list of services, or a map to each one's condition.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum DependsOn {
    Names(Vec<String>),
    Conditions(BTreeMap<String, Dependency>),
}

impl Default for DependsOn {
    fn default() -> Self {
        DependsOn::Names(Vec::new())
    }
}

#[derive(Debug, Deserialize)]
struct Dependency {
    condition: String,
}

impl DependsOn {
    fn conditions(&self) -> Vec<(&str, &str)> {
        match self {
            DependsOn::Names(names) => names
                .iter()
                .map(|n| (n.as_str(), "service_started"))
                .collect(),
            DependsOn::Conditions(map) => map
                .iter()
                .map(|(n, d)| (n.as_str(), d.condition.as_str()))
                .collect(),
        }
    }
}

/// A service's mount: a folder or file of the repository (bind), or a named volume.
#[derive(Debug, PartialEq)]
enum Mount {
    Bind { host: PathBuf, target: String },
    Volume { name: String, target: String },
}

impl Service {
    fn mounts(&self) -> Vec<Mount> {
        self.volumes
            .iter()
            .map(|spec| {
                let mut parts = spec.split(':');
                let source = parts.next().unwrap();
                let target = parts
                    .next()
                    .unwrap_or_else(|| panic!("volume '{spec}' has no target"));
                if source.starts_with('.') || source.starts_with('/') {
                    Mount::Bind {
                        host: docker_dir().join(source),
                        target: target.to_string(),
                    }
                } else {
                    Mount::Volume {
                        name: source.to_string(),
                        target: target.to_string(),
                    }
                }
            })
            .collect()
    }

    /// The repository file or folder seen at `path` in the container, through a bind mount or
    /// a `configs` entry.
    fn host_path_of(&self, compose: &Compose, path: &str) -> Option<PathBuf> {
        let bound = self.mounts().into_iter().find_map(|m| match m {
            Mount::Bind { host, target } => path
                .strip_prefix(&target)
                .map(|rest| host.join(rest.trim_start_matches('/'))),
            Mount::Volume { .. } => None,
        });
        bound.or_else(|| {
            self.configs
                .iter()
                .find(|c| c.target == path)
                .map(|c| docker_dir().join(&compose.configs[&c.source].file))
        })
    }

    /// The named volume mounted over `path` in the container, and `path` inside it.
    fn volume_at(&self, path: &str) -> Option<(String, String)> {
        self.mounts().into_iter().find_map(|m| match m {
            Mount::Volume { name, target } => path
                .strip_prefix(&format!("{target}/"))
                .map(|rest| (name, rest.to_string())),
            Mount::Bind { .. } => None,
        })
    }
}

fn compose() -> Compose {
    let path = docker_dir().join("compose.yaml");
    serde_norway::from_str(&read(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The services built from this repository's Dockerfile, or running the image it makes.
fn microfab_image_services(compose: &Compose) -> BTreeSet<&str> {
    let built: BTreeSet<&str> = compose
        .services
        .values()
        .filter(|s| s.build.is_some())
        .filter_map(|s| s.image.as_deref())
        .collect();
    compose
        .services
        .iter()
        .filter(|(_, s)| s.build.is_some() || s.image.as_deref().is_some_and(|i| built.contains(i)))
        .map(|(name, _)| name.as_str())
        .collect()
}

#[test]
fn every_file_the_compose_file_mounts_exists() {
    let compose = compose();
    for (name, config) in &compose.configs {
        let path = docker_dir().join(&config.file);
        assert!(
            path.is_file(),
            "config '{name}': {} is missing",
            path.display()
        );
    }
    for (name, service) in &compose.services {
        for mount in service.mounts() {
            match mount {
                Mount::Bind { host, .. } => {
                    assert!(
                        host.exists(),
                        "{name} mounts {}, which is missing",
                        host.display()
                    )
                }
                Mount::Volume { name: volume, .. } => assert!(
                    compose.volumes.contains_key(&volume),
                    "{name} mounts the volume '{volume}', which the file does not declare"
                ),
            }
        }
        for config in &service.configs {
            assert!(
                compose.configs.contains_key(&config.source),
                "{name} uses the config '{}', which the file does not declare",
                config.source
            );
        }
        if let Some(build) = &service.build {
            let context = docker_dir().join(&build.context);
            assert!(
                context.join("Cargo.toml").is_file(),
                "{name}: the build context is the repository"
            );
            assert!(
                context.join(&build.dockerfile).is_file(),
                "{name}: {} is missing",
                build.dockerfile
            );
        }
    }
    let used: BTreeSet<String> = compose
        .services
        .values()
        .flat_map(|s| s.mounts())
        .filter_map(|m| match m {
            Mount::Volume { name, .. } => Some(name),
            Mount::Bind { .. } => None,
        })
        .collect();
    let declared: BTreeSet<String> = compose.volumes.keys().cloned().collect();
    assert_eq!(used, declared, "every declared volume is used");
}

#[test]
fn the_compose_services_depend_on_services_that_can_satisfy_them() {
    let compose = compose();
    let with_image_healthcheck = microfab_image_services(&compose);
    assert!(
        read(&repo().join("deploy/docker/Dockerfile")).contains("\nHEALTHCHECK "),
        "the microfab image has a health check"
    );
    for (name, service) in &compose.services {
        for (dependency, condition) in service.depends_on.conditions() {
            let target = compose
                .services
                .get(dependency)
                .unwrap_or_else(|| panic!("{name} depends on '{dependency}', which is no service"));
            match condition {
                "service_started" => {}
                "service_healthy" => assert!(
                    target.healthcheck.is_some() || with_image_healthcheck.contains(dependency),
                    "{name} waits for {dependency} to be healthy, which has no health check"
                ),
                "service_completed_successfully" => assert_eq!(
                    target.restart.as_deref(),
                    Some("no"),
                    "{name} waits for {dependency} to finish: a one-shot service"
                ),
                other => panic!("{name}: unknown depends_on condition '{other}'"),
            }
        }
    }
    // No cycle: each service starts after all it depends on.
    let mut started: Vec<&str> = Vec::new();
    while started.len() < compose.services.len() {
        let ready = compose.services.iter().find(|(name, s)| {
            !started.contains(&name.as_str())
                && s.depends_on
                    .conditions()
                    .iter()
                    .all(|(d, _)| started.contains(d))
        });
        let (name, _) = ready.unwrap_or_else(|| panic!("depends_on has a cycle after {started:?}"));
        started.push(name);
    }
    assert!(
        started.iter().position(|s| *s == "postgres")
            < started.iter().position(|s| *s == "microfab")
    );
}

/// What Prometheus reads (its config, rules, token) and Grafana reads (provisioning,
/// dashboards) is where the compose file puts it, and the token is where the init service
/// writes it.
#[test]
fn prometheus_and_grafana_find_their_files_and_the_scrape_token() {
    let compose = compose();
    let prometheus = &compose.services["prometheus"];
    let config_path = prometheus
        .host_path_of(&compose, "/etc/prometheus/prometheus.yml")
        .expect("Prometheus gets its config at /etc/prometheus/prometheus.yml");
    let config: serde_norway::Value = serde_norway::from_str(&read(&config_path)).unwrap();
    for rule_file in config["rule_files"].as_sequence().expect("rule_files") {
        let in_container = format!("/etc/prometheus/{}", rule_file.as_str().unwrap());
        let host = prometheus
            .host_path_of(&compose, &in_container)
            .unwrap_or_else(|| panic!("{in_container} is not mounted"));
        assert!(
            host.is_file(),
            "{in_container} is {}, missing",
            host.display()
        );
    }
    let scrape = &config["scrape_configs"][0];
    assert_eq!(scrape["metrics_path"].as_str(), Some("/metrics"));
    let target = scrape["static_configs"][0]["targets"][0].as_str().unwrap();
    let (host, port) = target.split_once(':').unwrap();
    assert!(
        compose.services.contains_key(host),
        "Prometheus scrapes '{host}', no service"
    );
    assert!(
        compose.services[host]
            .ports
            .iter()
            .any(|p| p.ends_with(&format!(":{port}")))
    );

    let credentials = scrape["authorization"]["credentials_file"]
        .as_str()
        .expect("a token");
    let (volume, file) = prometheus
        .volume_at(credentials)
        .unwrap_or_else(|| panic!("{credentials} is in no volume of the prometheus service"));
    let writer = &compose.services["scrape-token"];
    let written = &writer.environment["SCRAPE_TOKEN_FILE"];
    assert_eq!(
        writer.volume_at(written),
        Some((volume.clone(), file)),
        "scrape-token writes {written}; Prometheus reads {credentials} (volume '{volume}')"
    );
    assert!(
        prometheus
            .depends_on
            .conditions()
            .contains(&("scrape-token", "service_completed_successfully")),
        "Prometheus starts once the token is there"
    );

    let grafana = &compose.services["grafana"];
    let providers = grafana
        .host_path_of(
            &compose,
            "/etc/grafana/provisioning/dashboards/microfab.yml",
        )
        .expect("Grafana's dashboard provisioning is mounted");
    let providers: serde_norway::Value = serde_norway::from_str(&read(&providers)).unwrap();
    let dashboards_at = providers["providers"][0]["options"]["path"]
        .as_str()
        .unwrap();
    let dashboards = grafana
        .host_path_of(&compose, dashboards_at)
        .unwrap_or_else(|| panic!("{dashboards_at} is not mounted in grafana"));
    let json_files = std::fs::read_dir(&dashboards)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "json")
        })
        .count();
    assert!(json_files > 0, "no dashboards in {}", dashboards.display());
    let datasources = grafana
        .host_path_of(
            &compose,
            "/etc/grafana/provisioning/datasources/prometheus.yml",
        )
        .expect("Grafana's datasource provisioning is mounted");
    let datasources: serde_norway::Value = serde_norway::from_str(&read(&datasources)).unwrap();
    let url = datasources["datasources"][0]["url"].as_str().unwrap();
    assert_eq!(
        url, "http://prometheus:9090",
        "Grafana reaches the prometheus service"
    );
}

/// The compose plant config checks, listens where the image's health check and Prometheus
/// look, and names the compose PostgreSQL without a password (that is PGPASSWORD's).
#[test]
fn the_compose_plant_config_checks_and_matches_the_services() {
    let plant = docker_dir().join("plant.toml");
    let output = Command::new(env!("CARGO_BIN_EXE_microfab"))
        .args(["config", "check"])
        .arg(&plant)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let config = microfab::config::PlantConfig::load(&plant).unwrap();
    assert_eq!(config.plant.listen, "0.0.0.0:8080");
    let compose = compose();
    let postgres = &compose.services["postgres"].environment;
    assert_eq!(
        config.plant.database,
        format!(
            "postgres://{}@postgres:5432/{}",
            postgres["POSTGRES_USER"], postgres["POSTGRES_DB"]
        )
    );
    for name in microfab_image_services(&compose) {
        let environment = &compose.services[name].environment;
        assert_eq!(
            environment.get("PGPASSWORD"),
            postgres.get("POSTGRES_PASSWORD"),
            "{name} has the database's password"
        );
    }
}

/// `COPY` and `FROM` lines of a Dockerfile, continuation lines joined.
fn dockerfile_instructions(text: &str) -> Vec<String> {
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(part) => current.push_str(part),
            None => {
                current.push_str(line);
                if !current.trim().is_empty() {
                    instructions.push(current.trim().to_string());
                }
                current.clear();
            }
        }
    }
    instructions
}

#[test]
fn the_dockerfile_copies_what_exists_and_every_workspace_member() {
    let text = read(&docker_dir().join("Dockerfile"));
    let instructions = dockerfile_instructions(&text);
    let mut stages = Vec::new();
    let mut copied = Vec::new();
    for instruction in &instructions {
        let words: Vec<&str> = instruction.split_whitespace().collect();
        match words[0] {
            "FROM" => {
                stages.push(words.get(3).map(|s| s.to_string()));
                if stages.len() == 1 {
                    assert_eq!(words[1], "rust:1.95-bookworm", "the builder");
                    assert!(instruction.contains("AS builder"));
                }
            }
            "COPY" => {
                let (flags, paths): (Vec<&str>, Vec<&str>) =
                    words[1..].iter().partition(|w| w.starts_with("--"));
                if let Some(from) = flags.iter().find_map(|f| f.strip_prefix("--from=")) {
                    assert!(
                        stages.iter().any(|s| s.as_deref() == Some(from)),
                        "COPY --from={from}: no such stage before it"
                    );
                    continue;
                }
                for source in &paths[..paths.len() - 1] {
                    let path = repo().join(source);
                    assert!(
                        path.exists(),
                        "COPY {source}: {} is missing",
                        path.display()
                    );
                    copied.push(source.trim_end_matches('/').to_string());
                }
            }
            "RUN" if instruction.contains("cargo build") => {
                assert!(instruction.contains("cargo build --release --locked -p microfab"));
            }
            _ => {}
        }
    }
    assert_eq!(stages.len(), 2, "a builder and a runtime stage");
    let runtime = &instructions[instructions
        .iter()
        .rposition(|i| i.starts_with("FROM"))
        .unwrap()..];
    let has = |prefix: &str| runtime.iter().any(|i| i.starts_with(prefix));
    assert!(runtime[0].starts_with("FROM debian:bookworm-slim"));
    assert!(has("USER microfab"), "the runtime runs as its own user");
    assert!(runtime.iter().any(|i| i.contains("--groups dialout")));
    assert!(has("VOLUME /var/lib/microfab") && has("EXPOSE 8080"));
    assert!(
        runtime
            .iter()
            .any(|i| i.starts_with("HEALTHCHECK") && i.contains("/healthz"))
    );

    let manifest: toml::Value = toml::from_str(&read(&repo().join("Cargo.toml"))).unwrap();
    assert_eq!(
        manifest["workspace"]["package"]["rust-version"].as_str(),
        Some("1.95")
    );
    for member in manifest["workspace"]["members"].as_array().unwrap() {
        let member = member.as_str().unwrap();
        assert!(
            copied
                .iter()
                .any(|c| member == c || member.starts_with(&format!("{c}/"))),
            "the builder does not COPY the workspace member {member}"
        );
    }
    let ignored = read(&repo().join(".dockerignore"));
    for pattern in ["target/", ".git/"] {
        assert!(
            ignored.lines().any(|l| l.trim() == pattern),
            ".dockerignore leaves out {pattern}"
        );
    }
}

/// The unit's `Key=value` lines (a key may repeat).
fn unit_settings(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut settings: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if let Some((key, value)) = line.split_once('=')
            && !line.starts_with('#')
        {
            settings
                .entry(key.to_string())
                .or_default()
                .push(value.to_string());
        }
    }
    settings
}

#[test]
fn the_systemd_unit_is_hardened_and_verifies() {
    let path = repo().join("deploy/systemd/microfab.service");
    let text = read(&path);
    let settings = unit_settings(&text);
    let one = |key: &str| -> &str {
        match settings.get(key).map(Vec::as_slice) {
            Some([value]) => value,
            other => panic!("{key}: {other:?}, expected one value"),
        }
    };
    for (key, value) in [
        ("User", "microfab"),
        ("SupplementaryGroups", "dialout"),
        ("StateDirectory", "microfab"),
        ("ConfigurationDirectory", "microfab"),
        ("Restart", "on-failure"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectKernelLogs", "yes"),
        ("ProtectControlGroups", "yes"),
        ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"),
        ("DevicePolicy", "closed"),
        ("LockPersonality", "yes"),
        ("KillSignal", "SIGINT"),
    ] {
        assert_eq!(one(key), value, "{key}");
    }
    assert!(
        !settings.contains_key("DynamicUser"),
        "a fixed user owns the serial group"
    );
    assert!(one("RestartSec").ends_with('s'));
    assert!(one("ExecStart").ends_with("serve --config /etc/microfab/plant.toml"));
    let devices = &settings["DeviceAllow"];
    for device in ["char-ttyUSB rw", "char-ttyACM rw"] {
        assert!(devices.iter().any(|d| d == device), "DeviceAllow={device}");
    }
    assert!(
        settings["SystemCallFilter"]
            .iter()
            .any(|f| f == "@system-service")
    );
    let sysusers = read(&repo().join("deploy/systemd/microfab.sysusers"));
    assert!(
        sysusers
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["m", "microfab", "dialout"])
    );

    // systemd's own checker, on the unit with ExecStart pointing at the binary just built.
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("microfab.service");
    std::fs::write(
        &unit,
        text.replace("/usr/local/bin/microfab", env!("CARGO_BIN_EXE_microfab")),
    )
    .unwrap();
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .expect("systemd-analyze (Debian's systemd package) is installed");
    let said = String::from_utf8_lossy(&verify.stderr);
    assert!(verify.status.success() && said.trim().is_empty(), "{said}");
    let security = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(&unit)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&security.stdout);
    let exposure: f64 = report
        .lines()
        .find_map(|l| l.split_once("Overall exposure level for microfab.service: "))
        .and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{report}"));
    assert!(
        exposure <= 2.0,
        "exposure {exposure} (0 best, 10 worst):\n{report}"
    );
}

/// Runs the compose file's scrape-token script against a SQLite plant: it makes the account
/// and a token, does nothing while the token file is there, makes a new token for the same
/// account when the file is gone; each token scrapes `/metrics` of a plant that, like the
/// compose file's seen from the Prometheus container, lets no one in without one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scrape_token_script_makes_an_operator_token() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("plant.db").display());
    let config = common::write_config(
        dir.path(),
        &(common::plant_config(1.0, 0.0).replace(
            "[plant]\n",
            &format!("[plant]\ndatabase = \"{database}\"\n"),
        ) + "\n[metrics]\nallow_localhost = false\n"),
    );
    let token_file = dir.path().join("microfab.token");
    let binary_dir = Path::new(env!("CARGO_BIN_EXE_microfab")).parent().unwrap();
    let owner = |flag: &str| {
        let out = Command::new("id").arg(flag).output().unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let run_script = || {
        let output = Command::new("sh")
            .arg(docker_dir().join("scrape-token.sh"))
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    binary_dir.display(),
                    std::env::var("PATH").unwrap()
                ),
            )
            .env("MICROFAB_CONFIG", &config)
            .env("SCRAPE_TOKEN_FILE", &token_file)
            .env(
                "SCRAPE_TOKEN_READER",
                format!("{}:{}", owner("-u"), owner("-g")),
            )
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&output.stdout).to_string()
            + &String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{said}");
        assert!(
            !said.contains("password"),
            "the password is never shown: {said}"
        );
        said
    };
    run_script();
    let first = read(&token_file);
    assert!(run_script().contains("there already"));
    assert_eq!(read(&token_file), first, "an existing token is kept");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "only its reader may read the token");
    std::fs::remove_file(&token_file).unwrap();
    run_script();
    let second = read(&token_file);
    assert_ne!(first, second);

    let (_server, client) = common::spawn_server(&config, &database).await;
    let scrape = |token: Option<&str>| {
        let request = client
            .with_token(token)
            .request(reqwest::Method::GET, "/metrics");
        async move { request.send().await.unwrap() }
    };
    assert_eq!(scrape(None).await.status(), 401, "no token, no metrics");
    for token in [first.trim(), second.trim()] {
        let response = scrape(Some(token)).await;
        assert_eq!(response.status(), 200);
        let metrics = response.text().await.unwrap();
        assert!(metrics.contains("\nmicrofab_"), "{metrics}");
    }
}
