//! Marlin rows of `microfab bench streaming`: the driver streams short G-code lines to the
//! simulator over a real PTY at the given baud rate, with 0 % and 1 % of the host's lines
//! corrupted on the wire (one flipped bit; the firmware's checksum catches it and asks for a
//! resend), for one line in flight and for windows, against Marlin 2.x (which runs the tail of
//! a line cut by its receive-buffer flush), Marlin 1.0 and Prusa-Firmware (which reject it: `*`
//! without `N`; see [`microfab_drivers::marlin::protocol`]), and for the driver's default, the
//! auto window, which the firmware's M115 answer sets (1 on Marlin 2.x, 2 on the others).
//!
//! Definitions:
//! - **payload** = the program's stripped lines, each with its newline: the bytes a host would
//!   send without line numbers and checksums. Marlin's framing (`N1234 ` and `*85`) is overhead,
//!   so even a saturated wire cannot reach efficiency 1: with these lines the ceiling is
//!   payload / framed bytes (reported as `ceiling`, 0.66 here).
//! - **efficiency** = payload bytes per second ÷ (baud / 10), timed from the run command to
//!   the driver's `JobFinished` (which waits for `M400` and the final probe).
//! - **wire efficiency** = the program's lines *as framed* (`N<n> <line>*<checksum>` and the
//!   newline, each line counted once) per second ÷ (baud / 10): how well the method uses the
//!   wire, whatever the framing costs.
//! - **wire utilisation** = all bytes the firmware received (framing, probes and resends
//!   included) per second ÷ (baud / 10).
//! - **lost / doubled** from the simulator's execution log against the program (every line is
//!   unique, so each must run exactly once).
//!
//! Measured (10,000 lines `G1 X12.50 Y34.30`, 115,200 baud, this 2-core machine, 108-112
//! resends at 1 %, `MARLIN_BENCH_LINES=10000 cargo test --release -p microfab-hil --test
//! marlin_bench -- --nocapture`). Figures move by about 0.05 from run to run here, most for the
//! small windows, whose round trips compete with the simulator for the two cores:
//!
//! | method                | firmware   | corruption | efficiency | wire eff. | lost | doubled |
//! |-----------------------|------------|-----------:|-----------:|----------:|-----:|--------:|
//! | 1 in flight           | Marlin 2.x |        0 % |      0.322 |     0.486 |    0 |       0 |
//! | 1 in flight           | Marlin 2.x |        1 % |      0.309 |     0.466 |    0 |       0 |
//! | 4 in flight           | Marlin 2.x |        0 % |      0.629 |     0.948 |    0 |       0 |
//! | 4 in flight           | Marlin 2.x |        1 % |      0.573 |     0.863 |    0 |      25 |
//! | 4 in flight           | Prusa      |        0 % |      0.658 |     0.991 |    0 |       0 |
//! | 4 in flight           | Prusa      |        1 % |      0.553 |     0.833 |    0 |       0 |
//! | 2 in flight           | Prusa      |        0 % |      0.632 |     0.953 |    0 |       0 |
//! | 2 in flight           | Prusa      |        1 % |      0.567 |     0.855 |    0 |       0 |
//! | auto (default): 1     | Marlin 2.x |        0 % |      0.333 |     0.501 |    0 |       0 |
//! | auto (default): 1     | Marlin 2.x |        1 % |      0.312 |     0.471 |    0 |       0 |
//! | auto (default): 3     | Marlin 1.0 |        0 % |      0.646 |     0.973 |    0 |       0 |
//! | auto (default): 3     | Marlin 1.0 |        1 % |      0.574 |     0.865 |    0 |       0 |
//! | auto (default): 3     | Prusa      |        0 % |      0.644 |     0.971 |    0 |       0 |
//! | auto (default): 3     | Prusa      |        1 % |      0.567 |     0.853 |    0 |       0 |
//!
//! Two more runs of 3 in flight on Prusa at 1 % gave 0.901 and 0.899 of the wire (2: 0.851 and
//! 0.788; 4: 0.840 and 0.841), hence [`microfab_drivers::marlin::protocol::TAIL_REJECTING_WINDOW`].
//!
//! A window saturates the wire; a line error then costs the wire time until the stale lines
//! behind the rejected one have answered (each one cut by the firmware's flush and rejected in
//! turn, about 20 ms in all for 3 in flight), so the window that uses the wire best under noise
//! is small. On Marlin 2.x the window's doubled lines are tails of lines cut by the
//! receive-buffer flush, run unchecked (and out of order); no host can prevent that, so the auto
//! window stays at one line in flight there. One line in flight pays a round trip per line
//! (about 2 ms on top of the line's own wire time).
//!
//! Windows under noise used to stall (a stale resend request dropped a probe the firmware had
//! accepted, and every later window waited out the command timeout); plain `ok`s behind a probe
//! now prove it answered (see `Protocol::answered_probe`), and no run stalls. The bench's
//! printer has a 1 s command timeout: it answers within milliseconds.

use std::time::Duration;

use anyhow::Context;
use microfab_drivers::DriverEvent;

use super::fault::{Fault, FaultKind};
use super::firmware::{FirmwareConfig, UnnumberedChecksum};
use super::harness::{Comparison, Rig};
use crate::bench::StreamingRow;

/// One measured run, with what does not fit a [`StreamingRow`].
#[derive(Debug, Clone, PartialEq)]
pub struct BenchRun {
    pub row: StreamingRow,
    pub wire_utilisation: f64,
    /// Best efficiency the framing allows: payload bytes ÷ framed bytes.
    pub ceiling: f64,
    pub resends: u64,
    /// Commands executed that were not in the program (tails of lines cut by Marlin's
    /// receive-buffer flush).
    pub foreign: u64,
    /// The lines the driver kept in flight ([`microfab_drivers::marlin::MarlinDriver::line_window`]).
    pub line_window: usize,
}

/// One way of streaming to one kind of firmware.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Method {
    pub name: &'static str,
    /// [`microfab_drivers::marlin::MarlinConfig::in_flight`]: `None` is the driver's default,
    /// the window chosen from the firmware's M115 answer.
    pub in_flight: Option<usize>,
    pub firmware: UnnumberedChecksum,
}

/// The methods measured.
pub const METHODS: [Method; 7] = [
    Method {
        name: "numbered, 1 in flight",
        in_flight: Some(1),
        firmware: UnnumberedChecksum::Run,
    },
    Method {
        name: "numbered, 4 in flight",
        in_flight: Some(4),
        firmware: UnnumberedChecksum::Run,
    },
    Method {
        name: "4 in flight, Prusa fw",
        in_flight: Some(4),
        firmware: UnnumberedChecksum::RejectAndResend,
    },
    Method {
        name: "2 in flight, Prusa fw",
        in_flight: Some(2),
        firmware: UnnumberedChecksum::RejectAndResend,
    },
    Method {
        name: "auto window, Marlin 2.x",
        in_flight: None,
        firmware: UnnumberedChecksum::Run,
    },
    Method {
        name: "auto window, Marlin 1.0",
        in_flight: None,
        firmware: UnnumberedChecksum::Reject,
    },
    Method {
        name: "auto window, Prusa fw",
        in_flight: None,
        firmware: UnnumberedChecksum::RejectAndResend,
    },
];

/// 10,000 lines at 115,200 baud is the documented benchmark.
pub async fn bench_rows(lines: usize, baud: u32) -> anyhow::Result<Vec<StreamingRow>> {
    let mut rows = Vec::new();
    for run in bench_runs(lines, baud).await? {
        rows.push(run.row);
    }
    Ok(rows)
}

pub async fn bench_runs(lines: usize, baud: u32) -> anyhow::Result<Vec<BenchRun>> {
    let mut runs = Vec::new();
    for method in METHODS {
        for corruption in [0.0, 0.01] {
            runs.push(bench_run(method, lines, baud, corruption).await?);
        }
    }
    Ok(runs)
}

/// Short, unique moves: `G1 X12.50 Y34.30`.
pub fn bench_program(lines: usize) -> Vec<String> {
    (0..lines)
        .map(|i| {
            let x = 10.0 + (i % 400) as f64 * 0.5;
            let y = 10.0 + (i / 400) as f64 * 0.1;
            format!("G1 X{x:.2} Y{y:.2}")
        })
        .collect()
}

pub async fn bench_run(
    method: Method,
    lines: usize,
    baud: u32,
    corruption: f64,
) -> anyhow::Result<BenchRun> {
    let program = bench_program(lines);
    let firmware = FirmwareConfig {
        // Moves take no time: the wire is the bottleneck being measured.
        time_scale: 1e9,
        // From the job's first line on: the handshake is unnumbered, so noise there could turn
        // it into another command (as on a real printer), which is not what is measured here.
        faults: vec![Fault::at_line(
            FaultKind::Noise {
                probability: corruption,
            },
            1,
        )],
        unnumbered_checksum: method.firmware,
        ..FirmwareConfig::default()
    };
    let mut rig = Rig::start(baud, firmware, |config| {
        config.in_flight = method.in_flight;
        config.poll_interval_ms = 60_000;
        // The simulated printer answers within milliseconds (moves take no time), so a second
        // of silence is already a lost answer; a real printer's 10 s would only stretch the
        // wait that recovers from it.
        config.command_timeout_ms = 1_000;
    })
    .await?;
    let bytes_before = rig.sim.bytes_received();
    let started = tokio::time::Instant::now();
    rig.run(1, &program.join("\n")).await?;
    let wire_bytes_per_second = f64::from(baud) / 10.0;
    let limit = Duration::from_secs_f64(lines as f64 * 60.0 / wire_bytes_per_second + 60.0);
    let end = rig
        .job_end(1, limit)
        .await
        .context("the bench job did not end")?;
    let seconds = started.elapsed().as_secs_f64();
    if !matches!(end, DriverEvent::JobFinished { .. }) {
        anyhow::bail!("the bench job did not finish: {end:?}");
    }
    let payload: usize = program.iter().map(|line| line.len() + 1).sum();
    let framed: usize = program
        .iter()
        .enumerate()
        .map(|(i, line)| microfab_drivers::marlin::protocol::frame(i as u64 + 1, line).len() + 1)
        .sum();
    let received = rig.sim.bytes_received() - bytes_before;
    let comparison = Comparison::new(&program, &rig.sim.execution_log());
    let resends = microfab_drivers::Driver::traffic(&rig.driver)
        .map_or(0, |traffic| traffic.counters.resends);
    Ok(BenchRun {
        row: StreamingRow {
            protocol: "marlin",
            method: method.name,
            corruption,
            efficiency: payload as f64 / seconds / wire_bytes_per_second,
            wire_efficiency: framed as f64 / seconds / wire_bytes_per_second,
            lost: comparison.lost,
            doubled: comparison.doubled,
            lines: lines as u64,
            seconds,
        },
        wire_utilisation: received as f64 / seconds / wire_bytes_per_second,
        ceiling: payload as f64 / framed as f64,
        resends,
        foreign: comparison.foreign.len() as u64,
        line_window: rig.driver.line_window(),
    })
}
