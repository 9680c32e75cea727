//! `microfab bench metrics`: what one scrape of `/metrics` costs on a plant of many simulated
//! machines with orders in flight, over HTTP as Prometheus scrapes it: response time (request
//! sent to body read) and body size.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use microfab_job_specs::{InMemory, SpecFormat};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::fleet::fleet_config;
use crate::config::PlantConfig;
use crate::ops::Actor;
use crate::plant::JobState;

const BRACKET_SPEC: &str =
    include_str!("../../../../job-specs/examples/community-bench-bracket/community-bench-bracket.toml");
const BRACKET_GUSSETS: &str = include_str!(
    "../../../../job-specs/examples/community-bench-bracket/programs/bracket-gussets.nc"
);
const BRACKET_BAR: &str =
    include_str!("../../../../job-specs/examples/community-bench-bracket/programs/bracket-bar.nc");

pub struct MetricsBenchOptions {
    pub machines: usize,
    pub orders: usize,
    pub scrapes: usize,
    /// A database to fill (a fresh one: the plant's machines and orders are added to it);
    /// `None`: a SQLite file in the temporary directory, removed after.
    pub database: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct MetricsBenchResult {
    pub machines: usize,
    pub orders: usize,
    /// Runs in the store, and those on machines, when the scrapes began.
    pub runs: usize,
    pub running: usize,
    pub scrapes: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub bytes: usize,
    /// Samples in the body (lines that are not comments).
    pub series: usize,
}

/// A SQLite file (and its journal files) removed when the benchmark ends.
struct ScratchDatabase(PathBuf);

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut path = self.0.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
}

pub async fn run_metrics_bench(options: &MetricsBenchOptions) -> anyhow::Result<MetricsBenchResult> {
    let config_text = fleet_config("metrics bench", options.machines, 60.0);
    let config = PlantConfig::parse("fleet.toml", &config_text).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (database, _scratch) = match &options.database {
        Some(url) => (url.clone(), None),
        None => {
            let path = std::env::temp_dir().join(format!(
                "microfab-bench-metrics-{}.db",
                std::process::id()
            ));
            let scratch = ScratchDatabase(path.clone());
            (format!("sqlite://{}", path.display()), Some(scratch))
        }
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let shutdown = CancellationToken::new();
    let running = crate::server::start(config, &database, listener, shutdown.clone()).await?;
    let result = measure(&running, options).await;
    shutdown.cancel();
    running.join().await;
    result
}

async fn measure(
    running: &crate::server::Running,
    options: &MetricsBenchOptions,
) -> anyhow::Result<MetricsBenchResult> {
    let ops = running.operations();
    let programs = InMemory(
        [
            ("programs/bracket-gussets.nc", BRACKET_GUSSETS),
            ("programs/bracket-bar.nc", BRACKET_BAR),
        ]
        .into_iter()
        .map(|(path, text)| (path.to_string(), text.to_string()))
        .collect(),
    );
    let spec = microfab_job_specs::check_text(
        "community-bench-bracket.toml",
        BRACKET_SPEC,
        SpecFormat::Toml,
        &programs,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    for _ in 0..options.orders {
        let order = ops.submit(&Actor::Demo, &spec, None).await?.order;
        ops.approve(&Actor::Demo, &order.id).await?;
    }
    // Scrapes are measured with the fleet at work: runs on machines, events coming in.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (runs, on_machines) = loop {
        let jobs = ops.jobs(&Actor::Demo, None, None, None).await?;
        let on_machines = jobs.iter().filter(|j| j.state == JobState::Running).count();
        if on_machines > 0 || Instant::now() > deadline {
            break (jobs.len(), on_machines);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    let client = reqwest::Client::new();
    let url = format!("http://{}/metrics", running.address);
    let scrape = || async {
        let started = Instant::now();
        let response = client.get(&url).send().await?.error_for_status()?;
        let body = response.text().await?;
        anyhow::Ok((started.elapsed(), body))
    };
    // One scrape before measuring: connections and statements warmed as Prometheus finds them.
    scrape().await.context("the first scrape")?;
    let mut times = Vec::with_capacity(options.scrapes);
    let mut last = String::new();
    for _ in 0..options.scrapes {
        let (took, body) = scrape().await?;
        times.push(took.as_secs_f64() * 1000.0);
        last = body;
    }
    times.sort_by(f64::total_cmp);
    let at = |fraction: f64| {
        let rank = ((times.len() as f64 * fraction).ceil() as usize).clamp(1, times.len().max(1));
        times.get(rank - 1).copied().unwrap_or(0.0)
    };
    Ok(MetricsBenchResult {
        machines: options.machines,
        orders: options.orders,
        runs,
        running: on_machines,
        scrapes: times.len(),
        p50_ms: at(0.5),
        p99_ms: at(0.99),
        max_ms: times.last().copied().unwrap_or(0.0),
        bytes: last.len(),
        series: last
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .count(),
    })
}

pub fn format_table(r: &MetricsBenchResult) -> String {
    format!(
        "/metrics on {} simulated machines, {} orders ({} runs, {} on machines), {} scrapes over HTTP\n\
         {:>8} {:>8} {:>8} {:>10} {:>8}\n\
         {:>8.1} {:>8.1} {:>8.1} {:>10} {:>8}\n",
        r.machines,
        r.orders,
        r.runs,
        r.running,
        r.scrapes,
        "p50 ms",
        "p99 ms",
        "max ms",
        "bytes",
        "series",
        r.p50_ms,
        r.p99_ms,
        r.max_ms,
        r.bytes,
        r.series,
    )
}
