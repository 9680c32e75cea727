//! `microfab bench fjsp` and `microfab bench plan`: argument parsing and printing only; the
//! benchmarks themselves live in `microfab_planner::bench` (tested there).

use std::path::PathBuf;

use anyhow::Context as _;
use microfab_planner::bench::{self, plant};

/// Flexible job-shop benchmark on FJSPLIB files (best-known bounds from the nearest bounds.csv).
#[derive(Debug, clap::Args)]
pub struct FjspArgs {
    /// Wall-clock seconds per instance (parsing and construction included).
    #[arg(long, default_value_t = 1.0)]
    seconds: f64,
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

pub fn run_fjsp(args: &FjspArgs) -> anyhow::Result<()> {
    let results = bench::run_fjsp(&args.files, args.seconds, args.threads, args.seed)?;
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
            std::fs::write(&path, microfab_planner::fjsp::schedule_csv(schedule))
                .with_context(|| format!("writing {}", path.display()))?;
        }
    }
    let results: Vec<_> = results.into_iter().map(|(r, _)| r).collect();
    if args.json {
        for r in &results {
            println!("{}", bench::json_line(r));
        }
    } else {
        print!("{}", bench::format_table(&results));
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
    /// Wall-clock budget of the first plan.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// Wall-clock budget of the re-plan after the failure.
    #[arg(long, default_value_t = 0.2)]
    replan_seconds: f64,
    /// Deterministic budgets in work units `FIRST,REPLAN` instead of seconds.
    #[arg(long, value_parser = parse_work)]
    work: Option<(u64, u64)>,
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

pub fn run_plan(args: &PlanBenchArgs) -> anyhow::Result<()> {
    let spec = plant::PlantSpec {
        machines: args.machines,
        runs: args.runs,
        seed: args.seed,
    };
    let budget = match args.work {
        Some((first, replan)) => plant::BenchBudget::Work { first, replan },
        None => plant::BenchBudget::Seconds {
            first: args.seconds,
            replan: args.replan_seconds,
        },
    };
    let result = plant::run_plant(spec, budget);
    if args.json {
        println!("{}", serde_json::to_string(&result)?);
    } else {
        print!("{}", plant::format_plant(&result));
    }
    anyhow::ensure!(result.feasible, "a plan failed the checker");
    Ok(())
}
