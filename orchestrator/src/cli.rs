//! The `microfab` command line: one binary, one vocabulary. Server-side commands take
//! `--database URL`; client commands talk to `--server URL`; `--json` wherever a script reads
//! the output.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::api::PlanView;
use crate::config::PlantConfig;
use crate::plant::views::{JobView, MachineView, MaterialView, OrderView};
use crate::plant::{JobState, OrderState};
use crate::store::now_ms;
use microfab_drivers::OperatorAction;

/// `println!` that hands back a write error instead of panicking, so that a closed pipe ends
/// the command quietly.
macro_rules! out {
    ($($arg:tt)*) => {
        emit(&format!("{}\n", format_args!($($arg)*)))
    };
}

#[derive(Debug, Parser)]
#[command(
    name = "microfab",
    version,
    about = "Production orchestrator for city micro-factories"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args, Clone)]
pub struct ClientArgs {
    /// The microfab server to talk to.
    #[arg(
        long,
        env = "MICROFAB_SERVER",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub server: String,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the plant: store, machines, scheduler and API.
    Serve {
        #[arg(long)]
        config: PathBuf,
        /// Overrides the config's database URL (sqlite://FILE or postgres://...).
        #[arg(long)]
        database: Option<String>,
        /// Overrides the config's listen address.
        #[arg(long)]
        listen: Option<String>,
    },
    /// Run the demo factory: simulated machines, the example orders, progress until done.
    Demo {
        #[arg(long, default_value = "deploy/demo.toml")]
        config: PathBuf,
        #[arg(long, default_value = "sqlite://microfab-demo.db")]
        database: String,
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// Exit once every demo order has ended (completed, cancelled or rejected).
        #[arg(long)]
        exit_when_done: bool,
    },
    /// Batch specs.
    Spec {
        #[command(subcommand)]
        command: SpecCommand,
    },
    /// Plant configs.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Submit a batch spec (with its G-code programs) to the server. The same spec and
    /// programs submitted again give back the first order, unless `--key` says otherwise.
    Submit {
        file: PathBuf,
        /// Submission key; by default the SHA-256 of the spec and its programs.
        #[arg(long)]
        key: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List orders, with when the current plan expects each to be done.
    Orders {
        #[arg(long, value_parser = closed_set::<OrderState>)]
        state: Option<OrderState>,
        #[arg(long)]
        maker: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show one order.
    Order {
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Approve a submitted order (reserves its material).
    Approve {
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Reject a submitted order.
    Reject {
        id: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Cancel an order; reserved material not yet used goes back to stock.
    Cancel {
        id: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List jobs (runs), e.g. `--state interrupted` for what waits on an operator.
    Jobs {
        #[arg(long, value_parser = closed_set::<JobState>)]
        state: Option<JobState>,
        #[arg(long)]
        machine: Option<String>,
        #[arg(long)]
        order: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Settle an interrupted run: how many of its units are good (the rest are scrapped).
    Resolve {
        job: i64,
        #[arg(long)]
        good: i64,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Send an interrupted run back to its machine from a line of its program (printers whose
    /// link dropped; see the job's `resume`).
    Resume {
        job: i64,
        /// Line of the program file; by default the first one the machine did not acknowledge.
        #[arg(long)]
        from_line: Option<u32>,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List machines.
    Machines {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List material stock.
    Materials {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Receive material into a stock account (a new lot).
    Restock {
        account: String,
        /// In the account's unit (sheets, metres, pieces, ...).
        amount: f64,
        /// The lot code; one is made up when absent.
        #[arg(long)]
        lot: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Correct the amount on hand after a count (negative for less).
    Adjust {
        account: String,
        #[arg(allow_negative_numbers = true)]
        delta: f64,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Take a machine out for maintenance, or give it back to the scheduler.
    Maintenance {
        machine: String,
        switch: Switch,
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Pause, resume (also a hold the machine reports from its own button or safety door) or
    /// abort what a machine is doing. The answer says what the machine did.
    Machine {
        machine: String,
        action: MachineAction,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// An action only an operator takes at a machine: unlock (clear an alarm), home, reset.
    Operator {
        machine: String,
        #[arg(value_parser = closed_set::<OperatorAction>)]
        action: OperatorAction,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// The plan the dispatcher follows: each order's ETA and each machine's runs.
    Plan {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// The event log; `--follow` keeps printing events as they happen.
    Events {
        /// Only events after this sequence number (with `--follow`: replay from there first).
        #[arg(long)]
        after: Option<i64>,
        #[arg(long)]
        order: Option<String>,
        #[arg(long)]
        follow: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Benchmarks; each prints a table (`--json`: one JSON object per line).
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
    /// Protocol-level machine simulators on a pseudo-terminal (point a plant's machine at --link).
    #[cfg(feature = "sims")]
    Sim {
        #[command(subcommand)]
        kind: SimKind,
    },
    /// Replay the event log and compare it with the state tables.
    Verify {
        #[arg(long)]
        database: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Switch {
    On,
    Off,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum MachineAction {
    Pause,
    Resume,
    Abort,
}

impl MachineAction {
    fn path(self) -> &'static str {
        match self {
            MachineAction::Pause => "pause",
            MachineAction::Resume => "resume",
            MachineAction::Abort => "abort",
        }
    }
}

/// A value from a closed set the API shares (states, operator actions): an unknown one is an
/// error naming every valid one, as the API's own answer does.
fn closed_set<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
    serde_json::from_value(Value::String(text.to_string())).map_err(|e| e.to_string())
}

#[derive(Debug, Subcommand)]
pub enum SpecCommand {
    /// Validate batch specs and preflight their G-code; prints every error with file:line:col.
    Check {
        files: Vec<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Print the JSON Schema of the batch spec format.
    Schema,
}

#[cfg(feature = "sims")]
#[derive(Debug, Subcommand)]
pub enum SimKind {
    /// A GRBL 1.1 controller (CNC router, laser, PCB mill).
    Grbl(microfab_hil::grbl::GrblSimArgs),
    /// A Marlin printer.
    Marlin(microfab_hil::marlin::MarlinSimArgs),
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// G-code streaming over an emulated serial line: payload throughput against the wire limit.
    #[cfg(feature = "sims")]
    Streaming {
        /// Lines in the benchmark program.
        #[arg(long, default_value_t = 10_000)]
        lines: usize,
        #[arg(long, default_value_t = 115_200)]
        baud: u32,
        /// Run every row this many times and report each row's median run, with the spread of
        /// its wire efficiency (lost and doubled lines add up over the runs).
        #[arg(long, default_value_t = 1)]
        repeat: usize,
        #[arg(long)]
        json: bool,
    },
    /// The planner on flexible job-shop instances (FJSPLIB files) against best-known bounds.
    Fjsp(crate::bench_plan::FjspArgs),
    /// The planner at plant scale: first plan, re-plan after a machine failure, vs the rule.
    Plan(crate::bench_plan::PlanBenchArgs),
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a plant config; prints every error with file:line.
    Check { file: PathBuf },
}

pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Serve {
            config,
            database,
            listen,
        } => serve(config, database, listen).await,
        Command::Demo {
            config,
            database,
            listen,
            exit_when_done,
        } => demo(config, database, listen, exit_when_done).await,
        Command::Spec {
            command: SpecCommand::Check { files, json },
        } => spec_check(&files, json),
        Command::Spec {
            command: SpecCommand::Schema,
        } => {
            out!(
                "{}",
                serde_json::to_string_pretty(&microfab_job_specs::json_schema())?
            )?;
            Ok(0)
        }
        Command::Config {
            command: ConfigCommand::Check { file },
        } => match PlantConfig::load(&file) {
            Ok(c) => {
                out!(
                    "{}: ok ({} machines, {} stock accounts)",
                    file.display(),
                    c.machines.len(),
                    c.materials.len()
                )?;
                Ok(0)
            }
            Err(e) => {
                eprintln!("{e}");
                Ok(2)
            }
        },
        Command::Submit { file, key, client } => submit(&file, key, &client).await,
        Command::Orders {
            state,
            maker,
            client,
        } => {
            let query = [
                ("state", state.map(|s| s.as_str().to_string())),
                ("maker", maker),
            ];
            let orders: Vec<OrderView> = client.get(&["orders"], &query).await?;
            client.print(&orders, |orders| render_orders(orders))
        }
        Command::Order { id, client } => {
            let order: OrderView = client.get(&["orders", &id], &[]).await?;
            client.print(&order, render_order)
        }
        Command::Approve { id, client } => {
            let order: OrderView = client.post(&["orders", &id, "approve"], None).await?;
            client.print(&order, render_order_state)
        }
        Command::Reject { id, reason, client } => {
            let body = serde_json::json!({ "reason": reason });
            let order: OrderView = client.post(&["orders", &id, "reject"], Some(body)).await?;
            client.print(&order, render_order_state)
        }
        Command::Cancel { id, reason, client } => {
            let body = serde_json::json!({ "reason": reason });
            let order: OrderView = client.post(&["orders", &id, "cancel"], Some(body)).await?;
            client.print(&order, render_order_state)
        }
        Command::Jobs {
            state,
            machine,
            order,
            client,
        } => {
            let query = [
                ("state", state.map(|s| s.as_str().to_string())),
                ("machine", machine),
                ("order", order),
            ];
            let jobs: Vec<JobView> = client.get(&["jobs"], &query).await?;
            client.print(&jobs, |jobs| render_jobs(jobs))
        }
        Command::Resolve {
            job,
            good,
            reason,
            client,
        } => {
            let body = serde_json::json!({ "good": good, "reason": reason });
            let job: JobView = client
                .post(&["jobs", &job.to_string(), "resolve"], Some(body))
                .await?;
            client.print(&job, |job| render_jobs(std::slice::from_ref(job)))
        }
        Command::Resume {
            job,
            from_line,
            reason,
            client,
        } => {
            let body = serde_json::json!({ "from_line": from_line, "reason": reason });
            let job: JobView = client
                .post(&["jobs", &job.to_string(), "resume"], Some(body))
                .await?;
            client.print(&job, |job| render_jobs(std::slice::from_ref(job)))
        }
        Command::Machines { client } => {
            let machines: Vec<MachineView> = client.get(&["machines"], &[]).await?;
            client.print(&machines, |machines| render_machines(machines))
        }
        Command::Materials { client } => {
            let materials: Vec<MaterialView> = client.get(&["materials"], &[]).await?;
            client.print(&materials, |materials| render_materials(materials))
        }
        Command::Restock {
            account,
            amount,
            lot,
            client,
        } => {
            let body = serde_json::json!({ "amount": amount, "lot": lot });
            let material: MaterialView = client
                .post(&["materials", &account, "restock"], Some(body))
                .await?;
            client.print(&material, |m| render_materials(std::slice::from_ref(m)))
        }
        Command::Adjust {
            account,
            delta,
            reason,
            client,
        } => {
            let body = serde_json::json!({ "delta": delta, "reason": reason });
            let material: MaterialView = client
                .post(&["materials", &account, "adjust"], Some(body))
                .await?;
            client.print(&material, |m| render_materials(std::slice::from_ref(m)))
        }
        Command::Maintenance {
            machine,
            switch,
            reason,
            client,
        } => {
            let body = serde_json::json!({ "on": matches!(switch, Switch::On), "reason": reason });
            let machine: MachineView = client
                .post(&["machines", &machine, "maintenance"], Some(body))
                .await?;
            client.print(&machine, |m| render_machines(std::slice::from_ref(m)))
        }
        Command::Machine {
            machine,
            action,
            client,
        } => {
            let machine: MachineView = client
                .post(&["machines", &machine, action.path()], None)
                .await?;
            client.print(&machine, |m| render_machines(std::slice::from_ref(m)))
        }
        Command::Operator {
            machine,
            action,
            client,
        } => {
            let body = serde_json::json!({ "action": action });
            let machine: MachineView = client
                .post(&["machines", &machine, "operator"], Some(body))
                .await?;
            client.print(&machine, |m| render_machines(std::slice::from_ref(m)))
        }
        Command::Plan { client } => {
            let plan: PlanView = client.get(&["plan"], &[]).await?;
            client.print(&plan, render_plan)
        }
        Command::Events {
            after,
            order,
            follow,
            client,
        } => {
            if follow {
                follow_events(&client, after, order.as_deref()).await
            } else {
                print_event_log(&client, after.unwrap_or(0), order.as_deref()).await
            }
        }
        #[cfg(feature = "sims")]
        Command::Sim {
            kind: SimKind::Grbl(args),
        } => {
            microfab_hil::grbl::run(args).await?;
            Ok(0)
        }
        #[cfg(feature = "sims")]
        Command::Sim {
            kind: SimKind::Marlin(args),
        } => {
            microfab_hil::marlin::run(args).await?;
            Ok(0)
        }
        #[cfg(feature = "sims")]
        Command::Bench {
            command:
                BenchCommand::Streaming {
                    lines,
                    baud,
                    repeat,
                    json,
                },
        } => {
            let options = microfab_hil::bench::StreamingBenchOptions {
                lines,
                baud,
                repeat,
            };
            let rows = microfab_hil::bench::run_streaming_bench(&options).await?;
            let mut out = std::io::stdout();
            if json {
                microfab_hil::bench::print_json_lines(&rows, &mut out)?;
            } else {
                microfab_hil::bench::print_table(&rows, &mut out)?;
            }
            Ok(0)
        }
        Command::Bench {
            command: BenchCommand::Fjsp(args),
        } => {
            tokio::task::spawn_blocking(move || crate::bench_plan::run_fjsp(&args)).await??;
            Ok(0)
        }
        Command::Bench {
            command: BenchCommand::Plan(args),
        } => {
            tokio::task::spawn_blocking(move || crate::bench_plan::run_plan(&args)).await??;
            Ok(0)
        }
        Command::Verify { database, json } => {
            let store =
                crate::store::Store::open(&database, crate::store::Open::ExistingOnly).await?;
            let report = crate::verify::verify(&store).await?;
            if json {
                out!("{}", serde_json::to_string(&report)?)?;
            } else if report.consistent {
                out!(
                    "consistent: {} events replay to the state in the tables, which keep the plant's invariants",
                    report.events
                )?;
            } else {
                out!("INCONSISTENT after {} events:", report.events)?;
                for d in report.differences.iter().chain(&report.invariants) {
                    out!("  {d}")?;
                }
            }
            Ok(if report.consistent { 0 } else { 1 })
        }
    }
}

fn load_config(path: &std::path::Path) -> anyhow::Result<PlantConfig> {
    PlantConfig::load(path).map_err(|e| anyhow::anyhow!("{e}"))
}

async fn serve(
    config: PathBuf,
    database: Option<String>,
    listen: Option<String>,
) -> anyhow::Result<i32> {
    let config = load_config(&config)?;
    let database = database.unwrap_or_else(|| config.plant.database.clone());
    let listen = listen.unwrap_or_else(|| config.plant.listen.clone());
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let shutdown = CancellationToken::new();
    let running = crate::server::start(config, &database, listener, shutdown.clone()).await?;
    println!(
        "microfab serving on http://{} (database {})",
        running.address,
        crate::store::redact_url(&database)
    );
    tokio::signal::ctrl_c().await?;
    shutdown.cancel();
    running.join().await;
    Ok(0)
}

async fn demo(
    config_path: PathBuf,
    database: String,
    listen: String,
    exit_when_done: bool,
) -> anyhow::Result<i32> {
    let config = load_config(&config_path)?;
    let demo = config
        .demo
        .clone()
        .context("the config has no [demo] section")?;
    let time_scale = config.simulation.time_scale;
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let shutdown = CancellationToken::new();
    let running = crate::server::start(config, &database, listener, shutdown.clone()).await?;
    println!(
        "microfab demo on http://{} (database {})",
        running.address,
        crate::store::redact_url(&database)
    );
    println!(
        "simulated machines run {time_scale}x real speed; an eta is the time left at that speed"
    );
    let plant = running.runtime.plant.clone();
    let mut order_ids = Vec::new();
    for path in demo.spec_paths(&config_path) {
        let checked = microfab_job_specs::check_file(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
        let key = format!("demo:{}", checked.source_name);
        let id = plant
            .submit(&checked, Some(&key), "demo", now_ms())
            .await?
            .order_id;
        let order = plant.order(&id).await?;
        if order.state == "submitted" {
            for flag in &order.prescreen {
                println!("  pre-screen {id}: {flag}");
            }
            plant.approve(&id, "demo", now_ms()).await?;
            println!(
                "submitted and approved {id}: {} x {}",
                order.quantity, order.product
            );
        } else {
            println!(
                "resuming {id}: {} x {} ({})",
                order.quantity, order.product, order.state
            );
        }
        order_ids.push(id);
    }
    running.runtime.wake();
    let started = std::time::Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(demo.progress_seconds.max(0.1)));
    let mut summarised = false;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = tokio::signal::ctrl_c() => break,
        }
        resolve_interrupted_as_demo_operator(&running.runtime).await?;
        let orders: Vec<OrderView> =
            futures::future::try_join_all(order_ids.iter().map(|id| plant.order(id))).await?;
        let machines = plant.machines().await?;
        let starved = plant
            .jobs(None, None, Some("planned"))
            .await?
            .iter()
            .filter(|j| j.waiting_for_material)
            .count();
        for line in progress_lines(
            started.elapsed(),
            &machines,
            starved,
            &orders,
            &plant.etas.current(),
            now_ms(),
            time_scale,
        ) {
            println!("{line}");
        }
        if orders.iter().all(|o| ENDED.contains(&o.state.as_str())) {
            if !summarised {
                summarised = true;
                let consumed = plant.consumed_by(&order_ids).await?;
                for line in summary(started.elapsed(), &orders, &consumed) {
                    println!("{line}");
                }
            }
            if exit_when_done {
                break;
            }
        }
    }
    shutdown.cancel();
    running.join().await;
    Ok(0)
}

/// An order in one of these states has ended: nothing more will be made for it.
const ENDED: [&str; 3] = ["completed", "cancelled", "rejected"];

/// Width of the terminal the demo's progress is written for.
const PROGRESS_WIDTH: usize = 80;

/// The demo's progress: the fleet, then each order (its ETA while it is open, in demo time),
/// packed into lines that fit an 80-column terminal.
fn progress_lines(
    elapsed: Duration,
    machines: &[crate::plant::views::MachineView],
    starved_runs: usize,
    orders: &[OrderView],
    etas: &crate::plant::Etas,
    now: i64,
    time_scale: f64,
) -> Vec<String> {
    let busy = machines.iter().filter(|m| m.state == "busy").count();
    let held = machines.iter().filter(|m| !m.holds.is_empty()).count();
    let mut fleet = format!("{busy} busy, {held} held");
    if starved_runs > 0 {
        fleet.push_str(&format!(", {starved_runs} short"));
    }
    let mut segments = vec![fleet];
    segments.extend(orders.iter().map(|o| {
        let number = o.id.trim_start_matches("ord-").trim_start_matches('0');
        let progress = format!("#{number} {}/{}", o.good, o.quantity);
        if ENDED.contains(&o.state.as_str()) {
            format!("{progress} {}", o.state)
        } else {
            // The plan counts real machine time from when it was made; the simulated
            // machines run `time_scale` times faster.
            let eta = etas.by_order.get(&o.id).map(|at| {
                let at_demo_time =
                    etas.planned_at + ((at - etas.planned_at) as f64 / time_scale) as i64;
                duration_text((at_demo_time - now).max(0) / 1000)
            });
            format!("{progress} eta {}", eta.as_deref().unwrap_or("--"))
        }
    }));
    let prefix = format!("[{:>6.1}s] ", elapsed.as_secs_f64());
    let mut lines = vec![prefix.clone()];
    let mut first_on_line = true;
    for segment in segments {
        let line = lines.last_mut().expect("one line at least");
        let separator = if first_on_line { "" } else { " | " };
        if !first_on_line && line.len() + separator.len() + segment.len() > PROGRESS_WIDTH {
            lines.push(format!("{:width$}{segment}", "", width = prefix.len()));
        } else {
            line.push_str(separator);
            line.push_str(&segment);
        }
        first_on_line = false;
    }
    lines
}

/// `m:ss`, or `h:mm:ss` from an hour on.
fn duration_text(seconds: i64) -> String {
    let (h, m, s) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

/// What the demo made, once every order has ended.
fn summary(
    elapsed: Duration,
    orders: &[OrderView],
    consumed: &[(String, String, crate::amount::Amount)],
) -> Vec<String> {
    let by_state: Vec<String> = ENDED
        .iter()
        .map(|state| (state, orders.iter().filter(|o| o.state == *state).count()))
        .filter(|(_, n)| *n > 0)
        .map(|(state, n)| format!("{n} {state}"))
        .collect();
    let mut lines = vec![
        format!(
            "all {} demo orders ended in {:.1}s: {}",
            orders.len(),
            elapsed.as_secs_f64(),
            by_state.join(", ")
        ),
        format!(
            "units: {} good, {} scrapped",
            orders.iter().map(|o| o.good).sum::<i64>(),
            orders.iter().map(|o| o.scrapped).sum::<i64>()
        ),
        "material consumed:".to_string(),
    ];
    lines.extend(consumed.iter().map(|(material, unit, amount)| {
        format!("  {material:<32} {:>10} {unit}", amount.to_string())
    }));
    lines
}

/// The demo has no operator at the panel: a run cut short by a restart is taken as scrap,
/// which the plant then replaces. A real plant leaves this decision to a person.
async fn resolve_interrupted_as_demo_operator(
    runtime: &crate::runtime::Runtime,
) -> anyhow::Result<()> {
    for job in runtime.plant.jobs(None, None, Some("interrupted")).await? {
        runtime
            .plant
            .resolve(
                job.id,
                0,
                "demo operator: pieces of an interrupted run are scrapped",
                "demo-operator",
                now_ms(),
            )
            .await?;
    }
    runtime.wake();
    Ok(())
}

fn spec_check(files: &[PathBuf], json: bool) -> anyhow::Result<i32> {
    if files.is_empty() {
        bail!("give at least one spec file");
    }
    let mut failed = false;
    for file in files {
        match microfab_job_specs::check_file(file) {
            Ok(checked) => {
                if json {
                    out!(
                        "{}",
                        serde_json::json!({ "file": file, "ok": true, "product": checked.spec.product })
                    )?;
                } else {
                    out!(
                        "{}: ok ({} x {}, {} steps)",
                        file.display(),
                        checked.spec.quantity,
                        checked.spec.product,
                        checked.spec.steps.len()
                    )?;
                    for program in checked.programs.values() {
                        let size = program.bounding_box.as_ref().map(|b| b.size());
                        out!(
                            "  {}: {} lines, {:?}, ~{:.0} s{}",
                            program.path,
                            program.lines,
                            program.units,
                            program.estimated_seconds,
                            size.map(|[x, y, z]| format!(
                                ", moves span {x:.1} x {y:.1} x {z:.1} mm"
                            ))
                            .unwrap_or_default()
                        )?;
                    }
                }
            }
            Err(errors) => {
                failed = true;
                if json {
                    out!(
                        "{}",
                        serde_json::json!({ "file": file, "ok": false, "errors": errors.0 })
                    )?;
                } else {
                    eprintln!("{errors}");
                }
            }
        }
    }
    Ok(if failed { 2 } else { 0 })
}

/// The submission key of a spec and its programs: SHA-256 over each part, length-prefixed
/// (the spec's text, then every program's path and text in path order), so the same files
/// always give the same key and no two different sets of files share one.
fn submission_key<'a>(
    spec_text: &str,
    programs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> String {
    use sha2::Digest as _;
    let mut hash = sha2::Sha256::new();
    let mut part = |text: &str| {
        hash.update((text.len() as u64).to_le_bytes());
        hash.update(text.as_bytes());
    };
    part(spec_text);
    for (path, text) in programs {
        part(path);
        part(text);
    }
    format!("sha256:{:x}", hash.finalize())
}

async fn submit(file: &PathBuf, key: Option<String>, client: &ClientArgs) -> anyhow::Result<i32> {
    let checked = match microfab_job_specs::check_file(file) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("{errors}");
            return Ok(2);
        }
    };
    let text = std::fs::read_to_string(file)?;
    let key = key.unwrap_or_else(|| {
        submission_key(
            &text,
            checked
                .programs
                .iter()
                .map(|(path, p)| (path.as_str(), p.text.as_str())),
        )
    });
    let programs: serde_json::Map<String, Value> = checked
        .programs
        .iter()
        .map(|(path, p)| (path.clone(), Value::String(p.text.clone())))
        .collect();
    let spec = if file.extension().is_some_and(|e| e == "json") {
        ("spec", serde_json::from_str::<Value>(&text)?)
    } else {
        ("spec_toml", Value::String(text))
    };
    let body = serde_json::json!({
        spec.0: spec.1,
        "source_name": checked.source_name,
        "programs": programs,
        "submission_key": key,
    });
    let submitted: crate::api::Submitted = client.post(&["orders"], Some(body)).await?;
    client.print(&submitted, |submitted| {
        let order = &submitted.order;
        let mut text = if submitted.already_submitted {
            format!(
                "already submitted as {}: {} x {} ({}); nothing new was made.\n  \
                 To submit these files again as another order, give another --key (this one is {key}).\n",
                order.id, order.quantity, order.product, order.state
            )
        } else {
            format!(
                "submitted {}: {} x {} ({})\n",
                order.id, order.quantity, order.product, order.state
            )
        };
        for flag in &order.prescreen {
            text.push_str(&format!("  pre-screen: {flag}\n"));
        }
        text
    })
}

/// Write to stdout. A reader that went away (`microfab jobs | head -1`) comes back as a
/// `BrokenPipe` error, which `main` ends on quietly ([`is_closed_pipe`]).
fn emit(text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// The command's output went to a pipe whose reader has gone: nothing is wrong, stop quietly.
pub fn is_closed_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

impl ClientArgs {
    /// The API URL for these path segments, each one percent-encoded: an id such as
    /// `x/../y` stays one segment and cannot reach another resource.
    fn endpoint(&self, segments: &[&str]) -> anyhow::Result<reqwest::Url> {
        let mut url = server_base(&self.server)?;
        url.path_segments_mut()
            .map_err(|()| anyhow::anyhow!("--server {}: not a base URL", self.server))?
            .pop_if_empty()
            .extend(["api", "v1"])
            .extend(segments);
        Ok(url)
    }

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        segments: &[&str],
        query: &[(&str, Option<String>)],
    ) -> anyhow::Result<T> {
        let mut url = self.endpoint(segments)?;
        for (key, value) in query {
            if let Some(value) = value {
                url.query_pairs_mut().append_pair(key, value);
            }
        }
        let response = reqwest::Client::new()
            .get(url.clone())
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        Ok(serde_json::from_value(answer(response).await?)?)
    }

    async fn post<T: serde::de::DeserializeOwned>(
        &self,
        segments: &[&str],
        body: Option<Value>,
    ) -> anyhow::Result<T> {
        let url = self.endpoint(segments)?;
        let request = reqwest::Client::new()
            .post(url.clone())
            .header("x-actor", "cli");
        let request = match body {
            Some(body) => request.json(&body),
            None => request,
        };
        let response = request
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        Ok(serde_json::from_value(answer(response).await?)?)
    }

    /// JSON with `--json`, else what `render` makes of it for people.
    fn print<T: serde::Serialize>(
        &self,
        value: &T,
        render: impl FnOnce(&T) -> String,
    ) -> anyhow::Result<i32> {
        if self.json {
            emit(&format!("{}\n", serde_json::to_string_pretty(value)?))?;
        } else {
            emit(&render(value))?;
        }
        Ok(0)
    }
}

const SERVER_FORMS: &str = "write http://HOST:PORT, https://HOST[:PORT][/PREFIX] or HOST:PORT";

/// The server's base URL from `--server`: a bare `HOST:PORT` is http, and a trailing
/// `/api/v1` names the same server.
fn server_base(text: &str) -> anyhow::Result<reqwest::Url> {
    let with_scheme = if text.contains("://") {
        text.to_string()
    } else {
        format!("http://{text}")
    };
    let mut url = reqwest::Url::parse(&with_scheme)
        .map_err(|e| anyhow::anyhow!("--server {text}: {e}; {SERVER_FORMS}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        bail!(
            "--server {text}: microfab speaks http or https, not {}; {SERVER_FORMS}",
            url.scheme()
        );
    }
    if url.query().is_some() || url.fragment().is_some() {
        bail!("--server {text}: no query or fragment; {SERVER_FORMS}");
    }
    let path = url.path().trim_end_matches('/');
    let path = path.strip_suffix("/api/v1").unwrap_or(path).to_string();
    url.set_path(&path);
    Ok(url)
}

async fn answer(response: reqwest::Response) -> anyhow::Result<Value> {
    if response.status().is_success() {
        return Ok(response.json().await.unwrap_or(Value::Null));
    }
    Err(refusal(response).await)
}

/// The server's JSON error, as one message with every detail on its own line.
async fn refusal(response: reqwest::Response) -> anyhow::Error {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let mut message = body["error"]["message"]
        .as_str()
        .unwrap_or("request failed")
        .to_string();
    if let Some(details) = body["error"]["details"].as_array() {
        for d in details {
            message.push_str(&format!(
                "\n  {}",
                d["message"].as_str().unwrap_or_default()
            ));
        }
    }
    anyhow::anyhow!("{status}: {message}")
}

/// Rows under a header, each column as wide as its widest cell.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let padded: Vec<String> = cells
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut text = line(&mut header.iter().copied());
    for row in rows {
        text.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    text
}

/// `2026-12-04T16:01:15Z` as `2026-12-04 16:01`: what a person reads in a table.
fn short_time(rfc3339: &str) -> String {
    rfc3339.replacen('T', " ", 1).chars().take(16).collect()
}

fn or_dash(text: Option<&str>) -> String {
    text.unwrap_or("-").to_string()
}

fn render_orders(orders: &[OrderView]) -> String {
    let rows: Vec<Vec<String>> = orders
        .iter()
        .map(|o| {
            vec![
                o.id.clone(),
                o.state.clone(),
                o.quantity.to_string(),
                o.good.to_string(),
                o.scrapped.to_string(),
                o.remaining.to_string(),
                or_dash(o.eta.as_deref().map(short_time).as_deref()),
                o.product.clone(),
            ]
        })
        .collect();
    table(
        &[
            "id", "state", "qty", "good", "scrap", "left", "eta", "product",
        ],
        &rows,
    )
}

fn render_order(o: &OrderView) -> String {
    let mut text = format!("{}  {} x {}  ({})\n", o.id, o.quantity, o.product, o.state);
    if let Some(reason) = &o.state_reason {
        text.push_str(&format!("  reason:    {reason}\n"));
    }
    text.push_str(&format!(
        "  maker:     {}  priority {}\n  submitted: {}  due {}\n  units:     {} good, {} scrapped, {} left  eta {}\n",
        o.maker,
        o.priority,
        short_time(&o.submitted),
        short_time(&o.due),
        o.good,
        o.scrapped,
        o.remaining,
        or_dash(o.eta.as_deref().map(short_time).as_deref()),
    ));
    for flag in &o.prescreen {
        text.push_str(&format!("  pre-screen: {flag}\n"));
    }
    let rows: Vec<Vec<String>> = o
        .steps
        .iter()
        .map(|s| {
            vec![
                s.id.clone(),
                s.capability.clone(),
                format!("{}/{}", s.good, o.quantity),
                s.scrapped.to_string(),
                s.units_per_run.to_string(),
                if s.after.is_empty() {
                    "-".into()
                } else {
                    s.after.join(",")
                },
            ]
        })
        .collect();
    text.push('\n');
    text.push_str(&table(
        &["step", "capability", "good", "scrap", "per run", "after"],
        &rows,
    ));
    text
}

fn render_order_state(o: &OrderView) -> String {
    let reason = o
        .state_reason
        .as_deref()
        .map(|r| format!(" ({r})"))
        .unwrap_or_default();
    format!(
        "{} is {}{reason}: {} x {}\n",
        o.id, o.state, o.quantity, o.product
    )
}

fn render_jobs(jobs: &[JobView]) -> String {
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .map(|j| {
            let note = if j.waiting_for_material {
                "waiting for material".to_string()
            } else if let Some(resume) = &j.resume {
                format!("can resume from line {}", resume.next_line)
            } else {
                j.reason.clone().unwrap_or_default()
            };
            vec![
                j.id.to_string(),
                j.order_id.clone(),
                j.step.clone(),
                j.units.to_string(),
                j.state.clone(),
                or_dash(j.machine_id.as_deref()),
                j.good.to_string(),
                j.scrapped.to_string(),
                note,
            ]
        })
        .collect();
    table(
        &[
            "id", "order", "step", "units", "state", "machine", "good", "scrap", "note",
        ],
        &rows,
    )
}

fn render_machines(machines: &[MachineView]) -> String {
    let rows: Vec<Vec<String>> = machines
        .iter()
        .map(|m| {
            vec![
                m.id.clone(),
                m.state.clone(),
                or_dash(m.current_job.map(|j| j.to_string()).as_deref()),
                m.capabilities.join(","),
                m.reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(&["id", "state", "job", "capabilities", "reason"], &rows)
}

fn render_materials(materials: &[MaterialView]) -> String {
    let rows: Vec<Vec<String>> = materials
        .iter()
        .map(|m| {
            vec![
                m.id.clone(),
                m.on_hand.to_string(),
                m.reserved.to_string(),
                m.available.to_string(),
                m.unit.clone(),
                if m.below_reorder_level {
                    format!("below reorder level {}", m.reorder_level)
                } else {
                    String::new()
                },
            ]
        })
        .collect();
    table(
        &[
            "account",
            "on hand",
            "reserved",
            "available",
            "unit",
            "note",
        ],
        &rows,
    )
}

fn render_plan(plan: &PlanView) -> String {
    let Some(planned_at) = &plan.planned_at else {
        return "no plan yet: nothing to plan, or the planner has not finished its first plan\n"
            .into();
    };
    let mut text = format!(
        "plan of {}: {} runs ({} plans made, {} refused by the checker)\n",
        short_time(planned_at),
        plan.rows.len(),
        plan.plans_made,
        plan.plans_refused
    );
    if !plan.unplanned.is_empty() {
        let ids: Vec<String> = plan.unplanned.iter().map(i64::to_string).collect();
        text.push_str(&format!("not placed now: runs {}\n", ids.join(", ")));
    }
    let etas: Vec<Vec<String>> = plan
        .orders
        .iter()
        .map(|o| vec![o.order_id.clone(), short_time(&o.eta)])
        .collect();
    text.push('\n');
    text.push_str(&table(&["order", "eta"], &etas));
    let rows: Vec<Vec<String>> = plan
        .rows
        .iter()
        .map(|r| {
            vec![
                r.machine_id.clone(),
                r.run_id.to_string(),
                r.order_id.clone(),
                or_dash(r.step.as_deref()),
                short_time(&r.start),
                short_time(&r.end),
                if r.frozen { "on machine" } else { "" }.to_string(),
            ]
        })
        .collect();
    text.push('\n');
    text.push_str(&table(
        &["machine", "run", "order", "step", "start", "end", ""],
        &rows,
    ));
    text
}

/// One event on one line: sequence number, time, actor, kind, then its fields.
fn render_event(record: &Value) -> String {
    let time = record["at_ms"]
        .as_i64()
        .map(crate::store::format_ms)
        .unwrap_or_default();
    let mut text = format!(
        "{:>6}  {}  {}  {}",
        record["seq"].as_i64().unwrap_or_default(),
        short_time(&time),
        record["actor"].as_str().unwrap_or_default(),
        record["event"]["kind"].as_str().unwrap_or_default()
    );
    if let Some(fields) = record["event"].as_object() {
        for (key, value) in fields.iter().filter(|(key, _)| *key != "kind") {
            let value = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            text.push_str(&format!(" {key}={value}"));
        }
    }
    text.push('\n');
    text
}

fn print_record(client: &ClientArgs, record: &Value) -> anyhow::Result<()> {
    if client.json {
        emit(&format!("{record}\n"))?;
    } else {
        emit(&render_event(record))?;
    }
    Ok(())
}

/// The log from `after`, page by page, until its end.
async fn print_event_log(
    client: &ClientArgs,
    mut after: i64,
    order: Option<&str>,
) -> anyhow::Result<i32> {
    loop {
        let query = [
            ("after", Some(after.to_string())),
            ("limit", Some("1000".to_string())),
            ("order", order.map(str::to_string)),
        ];
        let page: Vec<Value> = client.get(&["events", "log"], &query).await?;
        let Some(last) = page.last().and_then(|r| r["seq"].as_i64()) else {
            return Ok(0);
        };
        for record in &page {
            print_record(client, record)?;
        }
        after = last;
    }
}

/// Follow the SSE stream (from `after`, if given) until the server goes away or Ctrl-C.
async fn follow_events(
    client: &ClientArgs,
    after: Option<i64>,
    order: Option<&str>,
) -> anyhow::Result<i32> {
    use futures::StreamExt as _;
    let mut url = client.endpoint(&["events"])?;
    if let Some(after) = after {
        url.query_pairs_mut()
            .append_pair("after", &after.to_string());
    }
    let response = reqwest::Client::new()
        .get(url.clone())
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    if !response.status().is_success() {
        return Err(refusal(response).await);
    }
    let mut stream = response.bytes_stream();
    let mut pending = String::new();
    while let Some(chunk) = stream.next().await {
        pending.push_str(&String::from_utf8_lossy(
            &chunk.context("reading the event stream")?,
        ));
        // One SSE message ends with a blank line; a keep-alive is a comment without data.
        while let Some(end) = pending.find("\n\n") {
            let message: String = pending.drain(..end + 2).collect();
            let data: String = message
                .lines()
                .filter_map(|line| line.strip_prefix("data:"))
                .map(str::trim_start)
                .collect();
            if data.is_empty() {
                continue;
            }
            let record: Value = serde_json::from_str(&data)
                .with_context(|| format!("an event the server sent: {data}"))?;
            if order.is_none_or(|order| record["event"]["order_id"] == order) {
                print_record(client, &record)?;
            }
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_is_named_in_any_of_the_forms_people_write() {
        for (given, base) in [
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080/"),
            ("127.0.0.1:8080", "http://127.0.0.1:8080/"),
            ("plant.local:8080/", "http://plant.local:8080/"),
            ("http://127.0.0.1:8080/api/v1", "http://127.0.0.1:8080/"),
            ("http://127.0.0.1:8080/api/v1/", "http://127.0.0.1:8080/"),
            (
                "https://plant.example.org/microfab",
                "https://plant.example.org/microfab",
            ),
        ] {
            assert_eq!(server_base(given).unwrap().as_str(), base, "{given}");
        }
        let wrong = server_base("ftp://plant.local").unwrap_err().to_string();
        assert!(wrong.contains("http://HOST:PORT"), "{wrong}");
    }

    #[test]
    fn ids_stay_one_path_segment() {
        let client = ClientArgs {
            server: "http://127.0.0.1:8080".into(),
            json: false,
        };
        let url = client.endpoint(&["orders", "x/../y", "approve"]).unwrap();
        assert_eq!(url.path(), "/api/v1/orders/x%2F..%2Fy/approve");
    }

    #[test]
    fn the_submission_key_changes_with_any_file() {
        let key = |spec, program| submission_key(spec, [("a.nc", program)]);
        assert_eq!(key("spec", "G0"), key("spec", "G0"));
        assert_ne!(key("spec", "G0"), key("spec", "G1"));
        assert_ne!(key("spec", "G0"), key("spec2", "G0"));
        // Length prefixes: moving text from one part to the next is another key.
        assert_ne!(
            submission_key("ab", [("c", "d")]),
            submission_key("a", [("bc", "d")])
        );
    }
}
