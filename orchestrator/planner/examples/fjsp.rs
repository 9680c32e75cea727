//! Measurement loop for FJSPLIB instances (release build):
//! `cargo run --release -p microfab-planner --example fjsp -- [--seconds S] [--threads T]
//! [--seed N] [--json] FILES_OR_FOLDERS...`; with `--work N` each file gets a deterministic
//! budget of N work units instead (load-independent, for tuning).

use std::path::PathBuf;

use microfab_planner::{Budget, bench, fjsp};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (mut seconds, mut threads, mut seed, mut json, mut work) = (1.0, 1, 1, false, None);
    let mut files = Vec::new();
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--seconds" => seconds = value()?.parse()?,
            "--threads" => threads = value()?.parse()?,
            "--seed" => seed = value()?.parse()?,
            "--json" => json = true,
            "--work" => work = Some(value()?.parse::<u64>()?),
            _ => files.push(PathBuf::from(arg)),
        }
    }
    if let Some(work) = work {
        for file in bench::expand_paths(&files)? {
            let instance = fjsp::parse(&std::fs::read_to_string(&file)?)?;
            let started = std::time::Instant::now();
            let (_, makespan) = bench::solve_parallel(&instance, Budget::Work(work), threads, seed);
            println!(
                "{} {makespan} {:.2}s",
                file.display(),
                started.elapsed().as_secs_f64()
            );
        }
        return Ok(());
    }
    let results = bench::run_fjsp(&files, seconds, threads, seed)?;
    let results: Vec<_> = results.into_iter().map(|(r, _)| r).collect();
    if json {
        for r in &results {
            println!("{}", bench::json_line(r));
        }
    } else {
        print!("{}", bench::format_table(&results));
    }
    Ok(())
}
