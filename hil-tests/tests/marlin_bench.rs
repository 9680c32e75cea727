//! The Marlin rows of the streaming bench, at a reduced size (MARLIN_BENCH_LINES=10000 for the
//! documented one): nothing is lost by any method, the default (one line in flight) doubles
//! nothing under 1 % corruption, a window keeps the wire busier, and against firmware that
//! rejects a cut line's tail (Prusa-Firmware) a window doubles nothing either.
//!
//! `MARLIN_BENCH_LINES=10000 cargo test --release -p microfab-hil --test marlin_bench -- --nocapture`
//! prints the table.

use microfab_hil::bench::print_table;
use microfab_hil::marlin::bench::bench_runs;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_method_loses_a_line_and_the_default_doubles_none() {
    let lines: usize = std::env::var("MARLIN_BENCH_LINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(800);
    let runs = bench_runs(lines, 115_200).await.unwrap();
    let rows: Vec<_> = runs.iter().map(|run| run.row.clone()).collect();
    let mut table = Vec::new();
    print_table(&rows, &mut table).unwrap();
    eprintln!("{}", String::from_utf8_lossy(&table));
    for run in &runs {
        eprintln!(
            "{} at {:.0} %: wire {:.3}, ceiling {:.3}, resends {}, foreign {}",
            run.row.method,
            run.row.corruption * 100.0,
            run.wire_utilisation,
            run.ceiling,
            run.resends,
            run.foreign
        );
    }
    assert_eq!(runs.len(), 8);
    for run in &runs {
        assert_eq!(run.row.lost, 0, "{run:?}");
        assert!(
            run.row.efficiency > 0.0 && run.row.efficiency <= run.ceiling,
            "{run:?}"
        );
        assert_eq!(run.resends > 0, run.row.corruption > 0.0, "{run:?}");
    }
    let (one_clean, one_noisy, window_clean) = (&runs[0], &runs[1], &runs[2]);
    assert_eq!(
        (one_noisy.row.doubled, one_noisy.foreign),
        (0, 0),
        "{one_noisy:?}"
    );
    assert_eq!((one_clean.row.doubled, window_clean.row.doubled), (0, 0));
    assert!(window_clean.wire_utilisation > one_clean.wire_utilisation);
    // Firmware that rejects a cut tail (`*` without `N`) runs nothing twice under any window.
    for run in &runs[4..] {
        assert_eq!((run.row.doubled, run.foreign), (0, 0), "{run:?}");
    }
}
