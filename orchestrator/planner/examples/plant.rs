//! Plant-scale measurement (release build):
//! `cargo run --release -p microfab-planner --example plant -- [--seconds 2] [--replan-seconds 0.2]
//! [--work FIRST,REPLAN] [--machines 200] [--runs 2000] [--seed 1] [--json]`

use microfab_planner::bench::plant::{BenchBudget, PlantSpec, format_plant, run_plant};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut spec = PlantSpec::default();
    let (mut first, mut replan, mut work, mut json) = (2.0, 0.2, None, false);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--seconds" => first = value()?.parse()?,
            "--replan-seconds" => replan = value()?.parse()?,
            "--work" => {
                let v = value()?;
                let (a, b) = v.split_once(',').ok_or("--work FIRST,REPLAN")?;
                work = Some(BenchBudget::Work {
                    first: a.parse()?,
                    replan: b.parse()?,
                });
            }
            "--machines" => spec.machines = value()?.parse()?,
            "--runs" => spec.runs = value()?.parse()?,
            "--seed" => spec.seed = value()?.parse()?,
            "--json" => json = true,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let budget = work.unwrap_or(BenchBudget::Seconds { first, replan });
    let result = run_plant(spec, budget);
    if json {
        println!("{}", serde_json::to_string(&result)?);
    } else {
        print!("{}", format_plant(&result));
    }
    Ok(())
}
