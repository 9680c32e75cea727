//! `microfab bench streaming`: effective payload throughput of each streaming method against the
//! emulated wire limit, and lines lost or doubled according to the simulator's execution log.
//! Definitions and measured figures: `docs/benchmarks.md`.

pub use crate::streaming::{StreamingBenchOptions, print_json_lines, print_table};
use crate::streaming::{StreamingRow, median_rows};

/// Every protocol's rows: GRBL (character counting, send-and-wait), then Marlin.
pub async fn run_streaming_bench(
    options: &StreamingBenchOptions,
) -> anyhow::Result<Vec<StreamingRow>> {
    let mut rounds = Vec::new();
    for _ in 0..options.repeat.max(1) {
        let mut rows = crate::grbl::bench::grbl_rows(options).await?;
        rows.extend(crate::marlin::bench::bench_rows(options.lines, options.baud).await?);
        rounds.push(rows);
    }
    if rounds.len() == 1 {
        return Ok(rounds.remove(0));
    }
    Ok(median_rows(rounds))
}
