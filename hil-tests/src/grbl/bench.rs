//! GRBL rows of `microfab bench streaming`: character counting and send-and-wait, the driver
//! against the simulator over a real PTY at the emulated baud rate, with motion so fast that
//! only the wire and the acknowledgements limit the rate.

use std::time::Duration;

use anyhow::Context;
use microfab_drivers::grbl::{GrblConfig, GrblDriver, Streaming};
use microfab_drivers::{Condition, Driver, DriverCommand, DriverEvent, JobRun, Program};

use super::{GrblSim, GrblSimArgs};
use crate::streaming::{StreamingBenchOptions, StreamingRow};

/// Both GRBL streaming methods.
pub async fn grbl_rows(options: &StreamingBenchOptions) -> anyhow::Result<Vec<StreamingRow>> {
    let mut rows = Vec::new();
    for streaming in [Streaming::CharacterCounting, Streaming::SendAndWait] {
        rows.push(grbl_row(options, streaming).await?);
    }
    Ok(rows)
}

/// Short, unique moves (`G1X12.5Y10.3`, 12 to 14 bytes with the newline).
pub fn grbl_bench_program(lines: usize) -> Vec<String> {
    let mut program: Vec<String> = (0..lines)
        .map(|i| {
            let x = 10.0 + (i % 400) as f64 * 0.5;
            let y = 10.0 + (i / 400) as f64 * 0.1;
            format!("G1X{x:.1}Y{y:.1}")
        })
        .collect();
    if let Some(first) = program.first_mut() {
        first.push_str("F3000");
    }
    program
}

/// One GRBL streaming method: the driver against the simulator on a fresh PTY.
pub async fn grbl_row(
    options: &StreamingBenchOptions,
    streaming: Streaming,
) -> anyhow::Result<StreamingRow> {
    let method = match streaming {
        Streaming::CharacterCounting => "character counting",
        Streaming::SendAndWait => "send and wait",
    };
    let link = std::env::temp_dir().join(format!(
        "microfab-bench-grbl-{}-{}",
        std::process::id(),
        method.replace(' ', "-")
    ));
    let mut args = GrblSimArgs::new(&link);
    args.baud = options.baud;
    args.time_scale = 1e9;
    args.boot_ms = 0;
    let sim = GrblSim::spawn(args).context("starting the GRBL simulator")?;
    let mut config = GrblConfig::new(link.to_string_lossy());
    config.baud = options.baud;
    config.streaming = streaming;
    let mut driver = GrblDriver::new(config);
    let wire_bytes_per_second = f64::from(options.baud) / 10.0;
    let program = grbl_bench_program(options.lines);
    let payload: usize = program.iter().map(|line| line.len() + 1).sum();
    // Send-and-wait needs about three line times per line; leave ample room.
    let limit = Duration::from_secs_f64(4.0 * payload as f64 / wire_bytes_per_second + 30.0);
    let result = tokio::time::timeout(limit, async {
        while driver.next_event().await != DriverEvent::Condition(Condition::Idle) {}
        let started = tokio::time::Instant::now();
        driver
            .command(DriverCommand::Run(JobRun {
                job_id: 1,
                program: Program::GCode {
                    name: "bench.nc".into(),
                    text: program.join("\n").into(),
                },
                units: 1,
                expected_seconds: 0.0,
            }))
            .await?;
        let total = program.len() as u64;
        let mut streamed = None;
        loop {
            match driver.next_event().await {
                DriverEvent::JobProgress { done, .. } if done == total => {
                    streamed = Some(started.elapsed());
                }
                DriverEvent::JobFinished { .. } => break,
                event @ (DriverEvent::JobInterrupted { .. } | DriverEvent::JobFailed { .. }) => {
                    anyhow::bail!("the bench job did not finish: {event:?}")
                }
                _ => {}
            }
        }
        streamed.context("no progress event for the last line")
    })
    .await;
    let record = sim.record();
    sim.shutdown().await?;
    let seconds = result
        .with_context(|| format!("GRBL {method}: the bench job took longer than {limit:?}"))??
        .as_secs_f64();
    let (lost, doubled) = lost_and_doubled(&program, &record.executed);
    let efficiency = payload as f64 / seconds / wire_bytes_per_second;
    Ok(StreamingRow {
        protocol: "grbl",
        method,
        corruption: 0.0,
        efficiency,
        wire_efficiency: efficiency,
        lost,
        doubled,
        lines: program.len() as u64,
        seconds,
        spread: None,
    })
}

/// Lines of the program missing from the execution log, and lines executed more than once.
fn lost_and_doubled(program: &[String], executed: &[String]) -> (u64, u64) {
    let mut counts: std::collections::HashMap<&str, i64> = std::collections::HashMap::new();
    for line in program {
        *counts.entry(line).or_default() -= 1;
    }
    for line in executed {
        *counts.entry(line).or_default() += 1;
    }
    let lost = counts
        .values()
        .filter(|&&c| c < 0)
        .map(|&c| -c)
        .sum::<i64>();
    let doubled = counts.values().filter(|&&c| c > 0).sum::<i64>();
    (lost as u64, doubled as u64)
}
