//! The Marlin streaming bench at a reduced size: with 1 % of the lines corrupted on the wire,
//! the default method (one line in flight) loses and doubles nothing.

use microfab_hil::marlin::bench::{METHODS, bench_run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_line_in_flight_loses_and_doubles_nothing_under_corruption() {
    let lines: usize = std::env::var("MARLIN_BENCH_LINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1500);
    let (method, in_flight) = METHODS[0];
    let run = bench_run(method, in_flight, lines, 115_200, 0.01)
        .await
        .unwrap();
    eprintln!("{run:?}");
    assert!(
        run.resends > 0,
        "the noise must have hit some lines: {run:?}"
    );
    assert_eq!(
        (run.row.lost, run.row.doubled, run.foreign),
        (0, 0, 0),
        "{run:?}"
    );
    assert!(
        run.row.efficiency > 0.0 && run.row.efficiency < run.ceiling,
        "{run:?}"
    );
}

/// All four rows, printed (`cargo test --release -p microfab-hil --test marlin_bench -- --ignored`
/// is not used: set MARLIN_BENCH_ALL=1 to print the full table).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_table_when_asked() {
    if std::env::var("MARLIN_BENCH_ALL").is_err() {
        return;
    }
    let lines: usize = std::env::var("MARLIN_BENCH_LINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    for run in microfab_hil::marlin::bench::bench_runs(lines, 115_200)
        .await
        .unwrap()
    {
        eprintln!("{run:?}");
    }
}
