//! The `microfab` command line: one binary, one vocabulary. Server-side commands take
//! `--database URL`; client commands talk to `--server URL`; `--json` wherever a script reads
//! the output.
//!
//! This file holds the command tree and the commands that work here, on files and databases
//! (`serve`, `spec`, `config`, `verify`). The rooms: `remote.rs` the commands that ask a server,
//! through `client.rs`, printed by `tables.rs` (and `events.rs` for the log); `demo.rs` the demo
//! factory; `bench.rs` the benchmarks.

mod bench;
mod client;
mod demo;
mod events;
mod remote;
mod tables;
mod users;

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::config::PlantConfig;
use crate::logging::LogFormat;

pub use bench::{BenchCommand, fleet_config};
pub use client::ClientArgs;
pub use remote::{ClientCommand, MachineAction, Switch};
pub use users::{DatabaseArgs, UserCommand};

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
    /// How the logs on stderr look: lines for people, or one JSON object per line.
    #[arg(
        long,
        global = true,
        value_enum,
        env = "MICROFAB_LOG_FORMAT",
        default_value_t = LogFormat::Human
    )]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
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
    #[command(flatten)]
    Client(ClientCommand),
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
    /// Accounts and API tokens, on the database itself.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Replay the event log and compare it with the state tables.
    Verify {
        #[arg(long)]
        database: String,
        #[arg(long)]
        json: bool,
    },
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
    /// An OPC UA machine tool (OPC 40501): prints its opc.tcp:// endpoint first.
    Opcua(microfab_hil::opcua::OpcuaSimArgs),
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a plant config; prints every error with file:line.
    Check { file: PathBuf },
}

impl Command {
    /// The log filter when `RUST_LOG` is not set.
    pub fn default_log_filter(&self) -> &'static str {
        match self {
            Command::Bench { .. } => crate::logging::BENCH_FILTER,
            _ => crate::logging::DEFAULT_FILTER,
        }
    }
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
        } => demo::run(config, database, listen, exit_when_done).await,
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
            Err(errors) => {
                eprintln!(
                    "{}",
                    errors.render(|file| std::fs::read_to_string(file).ok())
                );
                Ok(2)
            }
        },
        Command::Client(command) => remote::run(command).await,
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
        Command::Sim {
            kind: SimKind::Opcua(args),
        } => {
            microfab_hil::opcua::run(args).await?;
            Ok(0)
        }
        Command::Bench { command } => bench::run(command).await,
        Command::User { command } => users::run(command).await,
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
                for d in report
                    .differences
                    .iter()
                    .chain(&report.invariants)
                    .chain(&report.access)
                {
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
    let shutdown = CancellationToken::new();
    let running = listen_and_start(config, &database, &listen, &shutdown).await?;
    users::bootstrap_from_env(&running.runtime.plant.store).await?;
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

/// Binds `listen` and starts the plant on `database`; `shutdown` stops it.
async fn listen_and_start(
    config: PlantConfig,
    database: &str,
    listen: &str,
    shutdown: &CancellationToken,
) -> anyhow::Result<crate::server::Running> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    crate::server::start(config, database, listener, shutdown.clone()).await
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
                    eprintln!("{}", microfab_job_specs::render_check_errors(file, &errors));
                }
            }
        }
    }
    Ok(if failed { 2 } else { 0 })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_benchmark_logs_no_access_lines_by_default() {
        let filter = |args: &[&str]| {
            Cli::try_parse_from(args)
                .unwrap()
                .command
                .default_log_filter()
        };
        assert_eq!(
            filter(&["microfab", "bench", "metrics", "--machines", "20"]),
            crate::logging::BENCH_FILTER
        );
        assert_eq!(
            filter(&["microfab", "serve", "--config", "plant.toml"]),
            crate::logging::DEFAULT_FILTER
        );
    }
}
