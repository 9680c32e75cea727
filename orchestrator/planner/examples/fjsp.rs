//! Measurement loop for FJSPLIB instances (release build):
//! `cargo run --release -p microfab-planner --example fjsp -- [--seconds S] [--threads T]
//! [--seed N] [--json] FILES_OR_FOLDERS...`

use std::path::PathBuf;

use microfab_planner::bench;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (mut seconds, mut threads, mut seed, mut json) = (1.0, 1, 1, false);
    let mut files = Vec::new();
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--seconds" => seconds = value()?.parse()?,
            "--threads" => threads = value()?.parse()?,
            "--seed" => seed = value()?.parse()?,
            "--json" => json = true,
            _ => files.push(PathBuf::from(arg)),
        }
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
