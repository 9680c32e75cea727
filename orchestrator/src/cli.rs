//! The `microfab` command line: one binary, one vocabulary. Server-side commands take
//! `--database URL`; client commands talk to `--server URL`; `--json` wherever a script reads
//! the output.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::config::PlantConfig;
use crate::plant::views::OrderView;
use crate::store::now_ms;

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

/// What `microfab machine ID ACTION` does.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum MachineAction {
    Pause,
    Resume,
    Abort,
    Unlock,
    Home,
    Reset,
}

impl MachineAction {
    fn name(self) -> &'static str {
        match self {
            MachineAction::Pause => "pause",
            MachineAction::Resume => "resume",
            MachineAction::Abort => "abort",
            MachineAction::Unlock => "unlock",
            MachineAction::Home => "home",
            MachineAction::Reset => "reset",
        }
    }
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
        /// Exit once every demo order is complete.
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
    /// Submit a batch spec (with its G-code programs) to the server.
    Submit {
        file: PathBuf,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List orders.
    Orders {
        #[arg(long)]
        state: Option<String>,
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
        #[arg(long)]
        state: Option<String>,
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
    /// Act on a machine as its operator: pause, resume (also a hold the machine reports from its
    /// own button or safety door), abort; unlock, home or reset a controller. The answer says
    /// what the machine did.
    Machine {
        id: String,
        action: MachineAction,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List material stock.
    Materials {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Benchmarks; each prints a table (`--json`: one JSON object per line).
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
    /// Protocol-level machine simulators on a pseudo-terminal (point a plant's machine at --link).
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
            println!(
                "{}",
                serde_json::to_string_pretty(&microfab_job_specs::json_schema())?
            );
            Ok(0)
        }
        Command::Config {
            command: ConfigCommand::Check { file },
        } => match PlantConfig::load(&file) {
            Ok(c) => {
                println!(
                    "{}: ok ({} machines, {} stock accounts)",
                    file.display(),
                    c.machines.len(),
                    c.materials.len()
                );
                Ok(0)
            }
            Err(e) => {
                eprintln!("{e}");
                Ok(2)
            }
        },
        Command::Submit { file, client } => submit(&file, &client).await,
        Command::Orders { state, client } => {
            let path = match state {
                Some(s) => format!("/api/v1/orders?state={s}"),
                None => "/api/v1/orders".into(),
            };
            let orders: Vec<OrderView> = serde_json::from_value(get(&client, &path).await?)?;
            if client.json {
                println!("{}", serde_json::to_string_pretty(&orders)?);
            } else {
                print_orders(&orders);
            }
            Ok(0)
        }
        Command::Order { id, client } => show(&client, &format!("/api/v1/orders/{id}")).await,
        Command::Approve { id, client } => {
            post_show(
                &client,
                &format!("/api/v1/orders/{id}/approve"),
                Value::Null,
            )
            .await
        }
        Command::Reject { id, reason, client } => {
            post_show(
                &client,
                &format!("/api/v1/orders/{id}/reject"),
                serde_json::json!({ "reason": reason }),
            )
            .await
        }
        Command::Cancel { id, reason, client } => {
            post_show(
                &client,
                &format!("/api/v1/orders/{id}/cancel"),
                serde_json::json!({ "reason": reason }),
            )
            .await
        }
        Command::Jobs {
            state,
            machine,
            order,
            client,
        } => {
            let filters: Vec<String> = [("state", state), ("machine", machine), ("order", order)]
                .into_iter()
                .filter_map(|(key, value)| Some(format!("{key}={}", value?)))
                .collect();
            show(&client, &format!("/api/v1/jobs?{}", filters.join("&"))).await
        }
        Command::Resolve {
            job,
            good,
            reason,
            client,
        } => {
            post_show(
                &client,
                &format!("/api/v1/jobs/{job}/resolve"),
                serde_json::json!({ "good": good, "reason": reason }),
            )
            .await
        }
        Command::Resume {
            job,
            from_line,
            reason,
            client,
        } => {
            post_show(
                &client,
                &format!("/api/v1/jobs/{job}/resume"),
                serde_json::json!({ "from_line": from_line, "reason": reason }),
            )
            .await
        }
        Command::Machines { client } => show(&client, "/api/v1/machines").await,
        Command::Machine { id, action, client } => {
            let (path, body) = match action {
                MachineAction::Pause | MachineAction::Resume | MachineAction::Abort => {
                    (action.name(), Value::Null)
                }
                MachineAction::Unlock | MachineAction::Home | MachineAction::Reset => {
                    ("operator", serde_json::json!({ "action": action.name() }))
                }
            };
            post_show(&client, &format!("/api/v1/machines/{id}/{path}"), body).await
        }
        Command::Materials { client } => show(&client, "/api/v1/materials").await,
        Command::Sim {
            kind: SimKind::Grbl(args),
        } => {
            microfab_hil::grbl::run(args).await?;
            Ok(0)
        }
        Command::Sim {
            kind: SimKind::Marlin(args),
        } => {
            microfab_hil::marlin::run(args).await?;
            Ok(0)
        }
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
            let store = crate::store::Store::connect(&database).await?;
            let report = crate::verify::verify(&store).await?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else if report.consistent {
                println!(
                    "consistent: {} events replay to the state in the tables",
                    report.events
                );
            } else {
                println!("INCONSISTENT after {} events:", report.events);
                for d in &report.differences {
                    println!("  {d}");
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
        "microfab serving on http://{} (database {database})",
        running.address
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
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let shutdown = CancellationToken::new();
    let running = crate::server::start(config, &database, listener, shutdown.clone()).await?;
    println!(
        "microfab demo on http://{} (database {database})",
        running.address
    );
    let plant = running.runtime.plant.clone();
    let mut order_ids = Vec::new();
    for path in demo.spec_paths(&config_path) {
        let checked = microfab_job_specs::check_file(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
        let key = format!("demo:{}", checked.source_name);
        let id = plant.submit(&checked, Some(&key), "demo", now_ms()).await?;
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
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = tokio::signal::ctrl_c() => break,
        }
        resolve_interrupted_as_demo_operator(&running.runtime).await?;
        let orders: Vec<OrderView> =
            futures::future::try_join_all(order_ids.iter().map(|id| plant.order(id))).await?;
        let line: Vec<String> = orders
            .iter()
            .map(|o| format!("{} {}/{} ({} scrap)", o.id, o.good, o.quantity, o.scrapped))
            .collect();
        let busy = plant
            .machines()
            .await?
            .iter()
            .filter(|m| m.state == "busy")
            .count();
        let starved = plant
            .jobs(None, None, Some("planned"))
            .await?
            .iter()
            .filter(|j| j.waiting_for_material)
            .count();
        let starved = if starved > 0 {
            format!(" | {starved} runs waiting for material")
        } else {
            String::new()
        };
        println!(
            "[{:>5.1}s] {busy:>2} busy | {}{starved}",
            started.elapsed().as_secs_f64(),
            line.join(" | ")
        );
        if orders.iter().all(|o| o.state == "completed") {
            println!(
                "all {} demo orders complete in {:.1}s",
                orders.len(),
                started.elapsed().as_secs_f64()
            );
            if exit_when_done {
                break;
            }
        }
    }
    shutdown.cancel();
    running.join().await;
    Ok(0)
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
                    println!(
                        "{}",
                        serde_json::json!({ "file": file, "ok": true, "product": checked.spec.product })
                    );
                } else {
                    println!(
                        "{}: ok ({} x {}, {} steps)",
                        file.display(),
                        checked.spec.quantity,
                        checked.spec.product,
                        checked.spec.steps.len()
                    );
                    for program in checked.programs.values() {
                        let size = program.bounding_box.as_ref().map(|b| b.size());
                        println!(
                            "  {}: {} lines, {:?}, ~{:.0} s{}",
                            program.path,
                            program.lines,
                            program.units,
                            program.estimated_seconds,
                            size.map(|[x, y, z]| format!(
                                ", moves span {x:.1} x {y:.1} x {z:.1} mm"
                            ))
                            .unwrap_or_default()
                        );
                    }
                }
            }
            Err(errors) => {
                failed = true;
                if json {
                    println!(
                        "{}",
                        serde_json::json!({ "file": file, "ok": false, "errors": errors.0 })
                    );
                } else {
                    eprintln!("{errors}");
                }
            }
        }
    }
    Ok(if failed { 2 } else { 0 })
}

async fn submit(file: &PathBuf, client: &ClientArgs) -> anyhow::Result<i32> {
    let checked = match microfab_job_specs::check_file(file) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("{errors}");
            return Ok(2);
        }
    };
    let text = std::fs::read_to_string(file)?;
    let programs: serde_json::Map<String, Value> = checked
        .programs
        .iter()
        .map(|(path, p)| (path.clone(), Value::String(p.text.clone())))
        .collect();
    let is_json = file.extension().is_some_and(|e| e == "json");
    let body = if is_json {
        serde_json::json!({ "spec": serde_json::from_str::<Value>(&text)?, "source_name": checked.source_name, "programs": programs })
    } else {
        serde_json::json!({ "spec_toml": text, "source_name": checked.source_name, "programs": programs })
    };
    let created = post(client, "/api/v1/orders", body).await?;
    if client.json {
        println!("{}", serde_json::to_string_pretty(&created)?);
    } else {
        let order: OrderView = serde_json::from_value(created["order"].clone())?;
        println!(
            "submitted {}: {} x {} ({})",
            order.id, order.quantity, order.product, order.state
        );
        for flag in &order.prescreen {
            println!("  pre-screen: {flag}");
        }
    }
    Ok(0)
}

fn print_orders(orders: &[OrderView]) {
    println!(
        "{:<11} {:<12} {:<15} {:>5} {:>5} {:>5} {:>5}  product",
        "id", "state", "priority", "qty", "good", "scrap", "left"
    );
    for o in orders {
        println!(
            "{:<11} {:<12} {:<15} {:>5} {:>5} {:>5} {:>5}  {}",
            o.id, o.state, o.priority, o.quantity, o.good, o.scrapped, o.remaining, o.product
        );
    }
}

async fn answer(response: reqwest::Response) -> anyhow::Result<Value> {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if status.is_success() {
        return Ok(body);
    }
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
    bail!("{status}: {message}")
}

async fn get(client: &ClientArgs, path: &str) -> anyhow::Result<Value> {
    let url = format!("{}{path}", client.server.trim_end_matches('/'));
    answer(
        reqwest::get(&url)
            .await
            .with_context(|| format!("GET {url}"))?,
    )
    .await
}

async fn post(client: &ClientArgs, path: &str, body: Value) -> anyhow::Result<Value> {
    let url = format!("{}{path}", client.server.trim_end_matches('/'));
    let request = reqwest::Client::new().post(&url).header("x-actor", "cli");
    let request = if body.is_null() {
        request
    } else {
        request.json(&body)
    };
    answer(
        request
            .send()
            .await
            .with_context(|| format!("POST {url}"))?,
    )
    .await
}

async fn show(client: &ClientArgs, path: &str) -> anyhow::Result<i32> {
    println!(
        "{}",
        serde_json::to_string_pretty(&get(client, path).await?)?
    );
    Ok(0)
}

async fn post_show(client: &ClientArgs, path: &str, body: Value) -> anyhow::Result<i32> {
    println!(
        "{}",
        serde_json::to_string_pretty(&post(client, path, body).await?)?
    );
    Ok(0)
}
