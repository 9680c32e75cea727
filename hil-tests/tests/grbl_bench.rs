//! The streaming benchmark's GRBL acceptance: character counting keeps the wire at least 98 %
//! busy on short lines at 115,200 baud, far above send-and-wait, and loses or doubles nothing.

use microfab_hil::bench::{StreamingBenchOptions, grbl_rows, print_table};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn character_counting_saturates_the_wire() {
    let options = StreamingBenchOptions {
        lines: 3_000,
        baud: 115_200,
    };
    let rows = grbl_rows(&options).await.unwrap();
    print_table(&rows, &mut std::io::stdout()).unwrap();
    let [counting, send_wait] = &rows[..] else {
        panic!("expected two rows: {rows:?}");
    };
    assert_eq!(counting.method, "character counting");
    assert!(counting.efficiency >= 0.98, "{counting:?}");
    assert!(
        counting.efficiency <= 1.0,
        "faster than the wire? {counting:?}"
    );
    assert!(
        send_wait.efficiency < 0.8 * counting.efficiency,
        "{send_wait:?}"
    );
    for row in &rows {
        assert_eq!((row.lost, row.doubled), (0, 0), "{row:?}");
    }
}
