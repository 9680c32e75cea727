//! `microfab bench`: G-code streaming over an emulated serial line (`microfab-hil`), the
//! planner's benchmarks (`microfab-planner-bench`, tested there): argument parsing and printing
//! only; and the scrape cost of `/metrics` on a generated fleet (`metrics.rs`, on
//! `fleet.rs`).

mod fleet;
mod metrics;

pub use fleet::fleet_config;

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;
use microfab_planner::Budget;
use microfab_planner_bench::{day, fjsp, instances, people, plant};

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
    Fjsp(FjspArgs),
    /// The planner at plant scale: first plan, re-plan after a machine failure, vs the rule.
    Plan(PlanBenchArgs),
    /// What a scrape of `/metrics` costs: a plant of simulated machines with orders in flight,
    /// then scrapes over HTTP (response time percentiles, body size).
    Metrics(MetricsBenchArgs),
}

#[derive(Debug, clap::Args)]
pub struct MetricsBenchArgs {
    #[arg(long, default_value_t = 200)]
    machines: usize,
    /// Orders of 200 bench brackets submitted and approved before the scrapes.
    #[arg(long, default_value_t = 20)]
    orders: usize,
    #[arg(long, default_value_t = 100)]
    scrapes: usize,
    /// A fresh database to run the plant on (`postgres://...`); default: a SQLite file in the
    /// temporary directory, removed after.
    #[arg(long)]
    database: Option<String>,
    #[arg(long)]
    json: bool,
}

pub(super) async fn run(command: BenchCommand) -> anyhow::Result<i32> {
    match command {
        #[cfg(feature = "sims")]
        BenchCommand::Streaming {
            lines,
            baud,
            repeat,
            json,
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
        }
        BenchCommand::Fjsp(args) => {
            tokio::task::spawn_blocking(move || run_fjsp(&args)).await??;
        }
        BenchCommand::Plan(args) => {
            tokio::task::spawn_blocking(move || run_plan(&args)).await??;
        }
        BenchCommand::Metrics(args) => {
            let options = metrics::MetricsBenchOptions {
                machines: args.machines,
                orders: args.orders,
                scrapes: args.scrapes.max(1),
                database: args.database,
            };
            let result = metrics::run_metrics_bench(&options).await?;
            if args.json {
                println!("{}", serde_json::to_string(&result)?);
            } else {
                print!("{}", metrics::format_table(&result));
            }
        }
    }
    Ok(0)
}

/// Flexible job-shop benchmark on FJSPLIB files (best-known bounds from the nearest bounds.csv).
#[derive(Debug, clap::Args)]
pub struct FjspArgs {
    /// Seconds of search per instance on the reference machine, turned into work units once
    /// (as the runtime does); the table's time is what parsing, construction and search took here.
    #[arg(long, default_value_t = 1.0)]
    seconds: f64,
    /// Work units of search per instance instead of seconds.
    #[arg(long, conflicts_with = "seconds")]
    work: Option<u64>,
    /// Searches per instance, cooperating in epochs (each from the best so far, own seeds).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// One JSON object per line and instance instead of the table.
    #[arg(long)]
    json: bool,
    /// Write each schedule as CSV `job,op,machine,start,end`: to this file for one instance,
    /// into this folder as `<instance>.csv` for several.
    #[arg(long)]
    schedule_out: Option<PathBuf>,
    /// Instance files or folders (every *.fjs below them).
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

fn run_fjsp(args: &FjspArgs) -> anyhow::Result<()> {
    let budget = args
        .work
        .map_or_else(|| Budget::from_seconds(args.seconds), Budget::work);
    let results = instances::run_fjsp(&args.files, budget, args.threads, args.seed)?;
    if let Some(out) = &args.schedule_out {
        let single = results.len() == 1 && !out.is_dir();
        for (result, schedule) in &results {
            let path = if single {
                out.clone()
            } else {
                std::fs::create_dir_all(out)
                    .with_context(|| format!("creating {}", out.display()))?;
                let stem = PathBuf::from(&result.instance)
                    .file_stem()
                    .map(|s| s.to_owned())
                    .unwrap_or_default();
                out.join(stem).with_extension("csv")
            };
            std::fs::write(&path, fjsp::schedule_csv(schedule))
                .with_context(|| format!("writing {}", path.display()))?;
        }
    }
    let results: Vec<_> = results.into_iter().map(|(r, _)| r).collect();
    if args.json {
        for r in &results {
            println!("{}", instances::json_line(r));
        }
    } else {
        print!("{}", instances::format_table(&results));
    }
    Ok(())
}

/// Plant-scale benchmark: first plan, the dispatching rule alone, a machine failure and the
/// re-plan, on a generated day.
#[derive(Debug, clap::Args)]
pub struct PlanBenchArgs {
    #[arg(long, default_value_t = 200)]
    machines: usize,
    #[arg(long, default_value_t = 2000)]
    runs: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Budget of the first plan, in seconds of search on the reference machine (turned into
    /// work units once, as the runtime does).
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// Budget of the re-plan after the failure, the same way.
    #[arg(long, default_value_t = 0.2)]
    replan_seconds: f64,
    /// Budgets in work units `FIRST,REPLAN` instead of seconds.
    #[arg(long, value_parser = parse_work)]
    work: Option<(u64, u64)>,
    /// The day with people instead: this many operators per shift, nights and weekends off,
    /// loads and unloads; the operator-aware plan, the plan blind to operators and the rule,
    /// each executed through that calendar (the first plan's budget).
    #[arg(long)]
    operators: Option<u32>,
    #[arg(long)]
    json: bool,
}

fn parse_work(s: &str) -> Result<(u64, u64), String> {
    let (a, b) = s.split_once(',').ok_or("expected FIRST,REPLAN")?;
    Ok((
        a.trim().parse().map_err(|e| format!("{e}"))?,
        b.trim().parse().map_err(|e| format!("{e}"))?,
    ))
}

fn run_plan(args: &PlanBenchArgs) -> anyhow::Result<()> {
    let spec = day::PlantSpec {
        machines: args.machines,
        runs: args.runs,
        seed: args.seed,
    };
    let (first, replan) = match args.work {
        Some((first, replan)) => (Budget::work(first), Budget::work(replan)),
        None => (
            Budget::from_seconds(args.seconds),
            Budget::from_seconds(args.replan_seconds),
        ),
    };
    if let Some(operators) = args.operators {
        let result = people::run_people(spec, operators, first);
        if args.json {
            println!("{}", serde_json::to_string(&result)?);
        } else {
            print!("{}", people::format_people(&result));
        }
        anyhow::ensure!(result.feasible, "the plan failed the checker");
        return Ok(());
    }
    let result = plant::run_plant(spec, first, replan);
    if args.json {
        println!("{}", serde_json::to_string(&result)?);
    } else {
        print!("{}", plant::format_plant(&result));
    }
    anyhow::ensure!(result.feasible, "a plan failed the checker");
    Ok(())
}
