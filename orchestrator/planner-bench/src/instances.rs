//! FJSPLIB instance files against best-known bounds: folders expanded, `bounds.csv` found and
//! read, each instance solved (on several threads if asked) and its schedule checked.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use thiserror::Error;

use microfab_planner::Budget;
use microfab_planner::problem::Evaluator;
use microfab_planner::search::tabu_search;

use crate::fjsp::{self, FjspError, FjspInstance, ScheduledOp};

#[derive(Debug, Error)]
pub enum BenchError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse { path: PathBuf, source: FjspError },
    #[error("{path} line {line}: {message}")]
    Bounds {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

fn read(path: &Path) -> Result<String, BenchError> {
    std::fs::read_to_string(path).map_err(|source| BenchError::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FjspResult {
    pub instance: String,
    pub makespan: i64,
    pub upper_bound: Option<u64>,
    pub gap: Option<f64>,
    pub seconds: f64,
    pub feasible: bool,
}

/// Best-known upper bounds by file path (as written in bounds.csv, e.g. `brandimarte/mk01.fjs`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bounds(Vec<(String, u64)>);

impl Bounds {
    /// Reads a CSV with a header naming at least `file` and `upper_bound` columns.
    pub fn parse(text: &str, path: &Path) -> Result<Bounds, BenchError> {
        let error = |line: usize, message: String| BenchError::Bounds {
            path: path.to_path_buf(),
            line,
            message,
        };
        let mut lines = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty());
        let (_, header) = lines.next().ok_or_else(|| error(1, "empty file".into()))?;
        let columns: Vec<&str> = header.split(',').map(str::trim).collect();
        let column = |name: &str| {
            columns
                .iter()
                .position(|c| *c == name)
                .ok_or_else(|| error(1, format!("no `{name}` column")))
        };
        let (file, upper) = (column("file")?, column("upper_bound")?);
        let mut bounds = Vec::new();
        for (i, line) in lines {
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            let (Some(f), Some(u)) = (fields.get(file), fields.get(upper)) else {
                return Err(error(i + 1, "missing fields".into()));
            };
            let u = u
                .parse()
                .map_err(|_| error(i + 1, format!("bad upper bound {u:?}")))?;
            bounds.push((f.to_string(), u));
        }
        Ok(Bounds(bounds))
    }

    /// The bound for an instance whose path ends with a known file name (by path components).
    pub fn lookup(&self, instance: &Path) -> Option<u64> {
        self.0
            .iter()
            .find(|(file, _)| instance.ends_with(file))
            .map(|(_, u)| *u)
    }
}

/// Files as given, folders replaced by every `*.fjs` below them (sorted).
pub fn expand_paths(paths: &[PathBuf]) -> Result<Vec<PathBuf>, BenchError> {
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found = Vec::new();
            collect_fjs(path, &mut found)?;
            found.sort();
            out.extend(found);
        } else {
            out.push(path.clone());
        }
    }
    Ok(out)
}

fn collect_fjs(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), BenchError> {
    let io = |source| BenchError::Io {
        path: dir.to_path_buf(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.is_dir() {
            collect_fjs(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "fjs") {
            out.push(path);
        }
    }
    Ok(())
}

/// The nearest `bounds.csv` in a folder above any of the files.
pub fn find_bounds(files: &[PathBuf]) -> Result<Bounds, BenchError> {
    for file in files {
        for dir in file.ancestors().skip(1) {
            let candidate = dir.join("bounds.csv");
            if candidate.is_file() {
                return Bounds::parse(&read(&candidate)?, &candidate);
            }
        }
    }
    Ok(Bounds::default())
}

/// Solves with `threads` searches and keeps the best (lowest makespan, then lowest seed). One
/// thread is a plain [`fjsp::solve`]. Several cooperate in epochs: in each, every thread
/// searches from the best plan so far with its own seed, then the best result is shared.
/// Deterministic per seed and thread count.
pub fn solve_parallel(
    instance: &FjspInstance,
    budget: Budget,
    threads: usize,
    seed: u64,
) -> (Vec<ScheduledOp>, i64) {
    if threads <= 1 {
        return fjsp::solve(instance, budget, seed);
    }
    let p = instance.to_problem();
    let mut best = fjsp::best_construction(&p, seed);
    let mut best_obj = Evaluator::new(&p)
        .evaluate(&p, &best)
        .expect("constructions are acyclic");
    let epoch_budget = Budget::work(budget.units() / EPOCHS);
    for epoch in 0..EPOCHS {
        let outcomes: Vec<_> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads as u64)
                .map(|i| {
                    let (p, start) = (&p, best.clone());
                    let seed = seed + epoch * threads as u64 + i;
                    scope.spawn(move || tabu_search(p, start, epoch_budget, seed))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("search threads do not panic"))
                .collect()
        });
        for o in outcomes {
            if o.objective < best_obj {
                best_obj = o.objective;
                best = o.solution;
            }
        }
    }
    (instance.schedule(&p, &best), best_obj.makespan)
}

/// Rounds of the cooperative multi-thread search.
const EPOCHS: u64 = 4;

/// Solves every file within `budget` (per thread). Returns each result with its schedule; its
/// `seconds` are what parsing, construction and search took here.
pub fn run_fjsp(
    files: &[PathBuf],
    budget: Budget,
    threads: usize,
    seed: u64,
) -> Result<Vec<(FjspResult, Vec<ScheduledOp>)>, BenchError> {
    let files = expand_paths(files)?;
    let bounds = find_bounds(&files)?;
    let mut out = Vec::with_capacity(files.len());
    for path in &files {
        let started = Instant::now();
        let instance = fjsp::parse(&read(path)?).map_err(|source| BenchError::Parse {
            path: path.clone(),
            source,
        })?;
        let (schedule, makespan) = solve_parallel(&instance, budget, threads, seed);
        let elapsed = started.elapsed().as_secs_f64();
        let feasible = fjsp::check_schedule(&instance, &schedule) == Ok(makespan);
        let upper_bound = bounds.lookup(path);
        out.push((
            FjspResult {
                instance: path.display().to_string(),
                makespan,
                upper_bound,
                gap: upper_bound.map(|u| (makespan as f64 - u as f64) / u as f64),
                seconds: elapsed,
                feasible,
            },
            schedule,
        ));
    }
    Ok(out)
}

/// A human-readable table: one line per instance, then the mean gap per folder.
pub fn format_table(results: &[FjspResult]) -> String {
    let mut out = format!(
        "{:<40} {:>9} {:>6} {:>8} {:>7} {}\n",
        "instance", "makespan", "ub", "gap", "time", "check"
    );
    let mut sets: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for r in results {
        let ub = r.upper_bound.map_or("-".into(), |u| u.to_string());
        let gap = r.gap.map_or("-".into(), |g| format!("{:.2}%", g * 100.0));
        let check = if r.feasible { "ok" } else { "INFEASIBLE" };
        let _ = writeln!(
            out,
            "{:<40} {:>9} {:>6} {:>8} {:>6.2}s {check}",
            r.instance, r.makespan, ub, gap, r.seconds
        );
        if let Some(g) = r.gap {
            let set = Path::new(&r.instance)
                .parent()
                .map_or(String::new(), |p| p.display().to_string());
            sets.entry(set).or_default().push(g);
        }
    }
    for (set, gaps) in sets {
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        let _ = writeln!(
            out,
            "mean gap {set}: {:.2}% over {} instances",
            mean * 100.0,
            gaps.len()
        );
    }
    out
}

/// One JSON object (a line) per instance.
pub fn json_line(r: &FjspResult) -> String {
    serde_json::to_string(r).expect("plain data serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A seeded FJSPLIB text: 8 jobs of 4 operations, 2 of 4 machines each.
    fn generated_instance(seed: u64) -> String {
        let mut rng = microfab_rng::SplitMix64::new(seed);
        let mut text = String::from("8 4 2\n");
        for _ in 0..8 {
            text += "4";
            for _ in 0..4 {
                let first = 1 + rng.below(4);
                let second = 1 + (first + rng.below(3)) % 4;
                text += &format!(
                    "  2 {first} {} {second} {}",
                    1 + rng.below(9),
                    1 + rng.below(9)
                );
            }
            text += "\n";
        }
        text
    }

    #[test]
    fn parallel_search_is_deterministic_per_seed_set() {
        let instance = fjsp::parse(&generated_instance(3)).unwrap();
        let budget = Budget::work(300_000);
        let (schedule, two) = solve_parallel(&instance, budget, 2, 5);
        assert_eq!(
            solve_parallel(&instance, budget, 2, 5),
            (schedule.clone(), two)
        );
        assert_eq!(fjsp::check_schedule(&instance, &schedule), Ok(two));
        let one = fjsp::solve(&instance, budget, 5).1;
        assert!(two <= one + one / 20, "two threads {two}, one {one}");
    }

    #[test]
    fn run_fjsp_reads_folders_and_bounds_and_checks_schedules() {
        let dir =
            std::env::temp_dir().join(format!("microfab-planner-bench-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("set")).unwrap();
        std::fs::write(dir.join("set/a.fjs"), generated_instance(1)).unwrap();
        std::fs::write(dir.join("set/b.fjs"), generated_instance(2)).unwrap();
        std::fs::write(dir.join("bounds.csv"), "file,upper_bound\nset/a.fjs,1\n").unwrap();
        let results = run_fjsp(std::slice::from_ref(&dir), Budget::from_seconds(0.02), 1, 1);
        std::fs::remove_dir_all(&dir).unwrap();
        let results = results.unwrap();
        let summary: Vec<_> = results
            .iter()
            .map(|(r, s)| {
                (
                    r.instance.ends_with("a.fjs"),
                    r.upper_bound,
                    r.feasible,
                    s.len(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![(true, Some(1), true, 32), (false, None, true, 32)]
        );
        let gap = results[0].0.gap.unwrap();
        assert_eq!(gap, (results[0].0.makespan - 1) as f64);
    }

    #[test]
    fn bounds_match_by_path_suffix_only_on_whole_components() {
        let b = Bounds::parse(
            "file,bks_name,upper_bound,status\nbrandimarte/mk01.fjs,mk01,40,closed\nkacem/kacem1.fjs,k1,11,closed\n",
            Path::new("b.csv"),
        )
        .unwrap();
        let cases = [
            ("/x/fjsp/brandimarte/mk01.fjs", Some(40)),
            ("kacem/kacem1.fjs", Some(11)),
            ("/x/notbrandimarte/mk01.fjs", None),
            ("/x/brandimarte/mk02.fjs", None),
        ];
        for (path, expected) in cases {
            assert_eq!(b.lookup(Path::new(path)), expected, "{path}");
        }
    }

    #[test]
    fn bounds_errors_name_the_line() {
        let err = Bounds::parse("file,upper_bound\na.fjs,x\n", Path::new("b.csv")).unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn table_reports_mean_gap_per_folder() {
        let r = |instance: &str, gap| FjspResult {
            instance: instance.into(),
            makespan: 10,
            upper_bound: Some(10),
            gap: Some(gap),
            seconds: 0.1,
            feasible: true,
        };
        let table = format_table(&[r("a/x.fjs", 0.0), r("a/y.fjs", 0.1), r("b/z.fjs", 0.02)]);
        assert!(
            table.contains("mean gap a: 5.00% over 2 instances"),
            "{table}"
        );
        assert!(
            table.contains("mean gap b: 2.00% over 1 instances"),
            "{table}"
        );
        let json = json_line(&r("a/x.fjs", 0.0));
        assert_eq!(
            json,
            r#"{"instance":"a/x.fjs","makespan":10,"upper_bound":10,"gap":0.0,"seconds":0.1,"feasible":true}"#
        );
    }
}
