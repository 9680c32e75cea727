//! The streaming benchmark's GRBL acceptance: character counting keeps the wire at least 98 %
//! busy on short lines at 115,200 baud, far above send-and-wait, and loses or doubles nothing.

use microfab_drivers::grbl::Streaming;
use microfab_hil::grbl::bench::grbl_row;
use microfab_hil::streaming::{StreamingBenchOptions, print_table};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn character_counting_saturates_the_wire() {
    let options = StreamingBenchOptions {
        lines: 3_000,
        ..StreamingBenchOptions::default()
    };
    // A throughput figure on a shared two-core machine: the best of three runs, so another
    // process hogging the CPU for a moment does not fail the build.
    let mut counting = grbl_row(&options, Streaming::CharacterCounting)
        .await
        .unwrap();
    for _ in 0..2 {
        if counting.efficiency >= 0.98 {
            break;
        }
        let again = grbl_row(&options, Streaming::CharacterCounting)
            .await
            .unwrap();
        assert_eq!((again.lost, again.doubled), (0, 0), "{again:?}");
        if again.efficiency > counting.efficiency {
            counting = again;
        }
    }
    let send_wait = grbl_row(
        &StreamingBenchOptions {
            lines: 1_000,
            ..options
        },
        Streaming::SendAndWait,
    )
    .await
    .unwrap();
    print_table(
        &[counting.clone(), send_wait.clone()],
        &mut std::io::stdout(),
    )
    .unwrap();
    assert!(counting.efficiency >= 0.98, "{counting:?}");
    assert!(
        counting.efficiency <= 1.0,
        "faster than the wire? {counting:?}"
    );
    assert!(send_wait.efficiency < 0.5, "{send_wait:?}");
    for row in [&counting, &send_wait] {
        assert_eq!((row.lost, row.doubled), (0, 0), "{row:?}");
    }
}
