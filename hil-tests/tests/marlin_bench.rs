//! The Marlin rows of the streaming bench, at a reduced size (MARLIN_BENCH_LINES=10000 for the
//! documented one): nothing is lost by any method, one line in flight doubles nothing under 1 %
//! corruption, a window keeps the wire busier, against firmware that rejects a cut line's tail
//! (Prusa-Firmware, Marlin 1.0) a window doubles nothing either, and the driver's default picks
//! a window of 3 for those families and 1 for Marlin 2.x; on those, answers that reach the host
//! 20 ms late do not make the window's resends cascade.
//!
//! `MARLIN_BENCH_LINES=10000 cargo test --release -p microfab-hil --test marlin_bench -- --nocapture`
//! prints the table.

use microfab_drivers::marlin::protocol::TAIL_REJECTING_WINDOW;
use microfab_hil::marlin::bench::{METHODS, bench_runs, lost_ok_run};
use microfab_hil::marlin::firmware::UnnumberedChecksum;
use microfab_hil::streaming::print_table;

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
            "{} at {:.0} %: wire utilisation {:.3}, ceiling {:.3}, resends {}, line errors {}, \
             foreign {}, fallbacks {}",
            run.row.method,
            run.row.corruption * 100.0,
            run.wire_utilisation,
            run.ceiling,
            run.resends,
            run.errors,
            run.foreign,
            run.window_fallbacks
        );
    }
    let methods = METHODS.iter().flat_map(|method| [method, method]);
    assert_eq!(runs.len(), 2 * METHODS.len());
    for (method, run) in methods.zip(&runs) {
        assert_eq!(run.row.method, method.name);
        assert_eq!(run.row.lost, 0, "{run:?}");
        assert!(
            run.row.efficiency > 0.0 && run.row.efficiency <= run.ceiling,
            "{run:?}"
        );
        assert_eq!(run.resends > 0, run.row.corruption > 0.0, "{run:?}");
        // Only Marlin 1.1/2.x runs the tail of a cut line, and only a window cuts lines.
        let runs_cut_tails = method.firmware == UnnumberedChecksum::Run;
        if !runs_cut_tails || run.line_window == 1 {
            assert_eq!((run.row.doubled, run.foreign), (0, 0), "{run:?}");
        }
        if method.answer_delay_ms > 0 && run.row.corruption > 0.0 {
            // A stale line's rejection that comes after the resend is not a fresh request:
            // taken for one, each window went out twice and the copies' rejections emptied the
            // receive buffer under the next (hundreds of resends for a few corrupted lines).
            let corrupted = lines as f64 * run.row.corruption;
            assert!(run.resends as f64 <= 3.0 * corrupted + 5.0, "{run:?}");
            assert_eq!(run.window_fallbacks, 0, "{run:?}");
        }
        if method.in_flight.is_none() {
            // The default: a window only where cut tails are rejected.
            assert_eq!(
                run.line_window,
                if runs_cut_tails {
                    1
                } else {
                    TAIL_REJECTING_WINDOW
                },
                "{run:?}"
            );
        }
    }
    // Marlin 2.x refuses the window (its row runs one line in flight); Prusa-Firmware keeps it.
    let (one_clean, window_clean) = (&runs[0], &runs[4]);
    assert_eq!(runs[2].line_window, 1);
    assert_eq!(window_clean.line_window, 4);
    assert_eq!(window_clean.row.doubled, 0);
    assert!(window_clean.wire_utilisation > one_clean.wire_utilisation);
}

/// What a lost `ok` costs with the driver's defaults, after a move and after `M400`
/// (`MARLIN_LOST_OK_LINES=4000` for the documented figures; 1 % of the `ok`s lost).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_ok_costs_seconds_and_nothing_runs_twice() {
    let lines: usize = std::env::var("MARLIN_LOST_OK_LINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    for after_m400 in [false, true] {
        let run = lost_ok_run(lines, 0.01, after_m400, 115_200).await.unwrap();
        eprintln!(
            "lost ok after {}: {} lines, {} lost oks, {:.1} s against {:.1} s: {:.2} s each",
            if after_m400 { "M400" } else { "a move" },
            run.lines,
            run.dropped,
            run.seconds,
            run.clean_seconds,
            run.seconds_per_lost_ok()
        );
        assert_eq!((run.lost, run.doubled), (0, 0), "{run:?}");
    }
}
