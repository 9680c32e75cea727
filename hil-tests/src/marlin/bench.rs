//! Marlin rows of `microfab bench streaming`: the driver streams short G-code lines to the
//! simulator over a real PTY at the given baud rate, with 0 % and 1 % of the host's lines
//! corrupted on the wire (one flipped bit; the firmware's checksum catches it and asks for a
//! resend), for one line in flight and for windows, against Marlin 2.x (which runs the tail of
//! a line cut by its receive-buffer flush), Marlin 1.0 and Prusa-Firmware (which reject it: `*`
//! without `N`; see [`microfab_drivers::marlin::protocol`]), and for the driver's default, the
//! auto window, which the firmware's M115 answer sets (1 on Marlin 2.x, 3 on the others); a
//! configured window of 4 is refused on Marlin 2.x (its row runs one line in flight). The
//! simulated boards write their output blocking, as AVR boards do (a line error's flush comes
//! once its error line is out), except the row with a TX buffer.
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
//! Measured figures, and what changed them: `docs/benchmarks.md`.
//!
//! A window saturates the wire; a line error then costs the wire time until every stale line
//! behind the rejected one has answered or been swallowed by the firmware's flush: the
//! printer's error replies (about 6 ms each at 115,200 baud) are the cost, 12-18 ms per error
//! with 3 in flight. On Marlin 2.x the window's doubled lines are tails of lines cut by the
//! receive-buffer flush, run unchecked (and out of order); no host can prevent that, so the
//! driver keeps one line in flight there, whatever is configured. One line in flight pays a round trip per line
//! (about 2 ms on top of the line's own wire time). The bench's printer has a 1 s command
//! timeout: it answers within milliseconds.

use std::time::Duration;

use anyhow::Context;
use microfab_drivers::DriverEvent;

use super::fault::{Fault, FaultKind};
use super::firmware::{DropOk, FirmwareConfig, UnnumberedChecksum};
use super::harness::{Comparison, Rig};
use crate::streaming::StreamingRow;

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
    /// `Error:` lines from the printer (line errors, each stale line's rejection included).
    pub errors: u64,
    /// 1 if the stream fell back to one line in flight (too many resends for its window).
    pub window_fallbacks: u64,
}

/// One way of streaming to one kind of firmware.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Method {
    pub name: &'static str,
    /// [`microfab_drivers::marlin::MarlinConfig::in_flight`]: `None` is the driver's default,
    /// the window chosen from the firmware's M115 answer.
    pub in_flight: Option<usize>,
    pub firmware: UnnumberedChecksum,
    /// [`FirmwareConfig::tx_buffer`]: the board buffers its output, so a line error empties
    /// its receive buffer at once (more stale lines then answer).
    pub tx_buffer: bool,
    /// [`FirmwareConfig::loop_time`] in milliseconds: 0 answers as bytes arrive.
    pub loop_ms: u64,
    /// [`FirmwareConfig::answer_delay`] in milliseconds.
    pub answer_delay_ms: u64,
}

/// The methods measured.
pub const METHODS: [Method; 9] = [
    Method {
        name: "numbered, 1 in flight",
        in_flight: Some(1),
        firmware: UnnumberedChecksum::Run,
        tx_buffer: false,
        loop_ms: 0,
        answer_delay_ms: 0,
    },
    Method {
        name: "4 in flight refused, 2.x",
        in_flight: Some(4),
        firmware: UnnumberedChecksum::Run,
        tx_buffer: false,
        loop_ms: 0,
        answer_delay_ms: 0,
    },
    Method {
        name: "4 in flight, Prusa fw",
        in_flight: Some(4),
        firmware: UnnumberedChecksum::RejectAndResend,
        tx_buffer: false,
        loop_ms: 0,
        answer_delay_ms: 0,
    },
    Method {
        name: "auto window, Marlin 2.x",
        in_flight: None,
        firmware: UnnumberedChecksum::Run,
        tx_buffer: false,
        loop_ms: 0,
        answer_delay_ms: 0,
    },
    Method {
        name: "auto window, Marlin 1.0",
        in_flight: None,
        firmware: UnnumberedChecksum::Reject,
        tx_buffer: false,
        loop_ms: 0,
        answer_delay_ms: 0,
    },
    Method {
        name: "auto window, Prusa fw",
        in_flight: None,
        firmware: UnnumberedChecksum::RejectAndResend,
        tx_buffer: false,
        loop_ms: 0,
        answer_delay_ms: 0,
    },
    Method {
        name: "auto, Prusa fw, TX buffer",
        in_flight: None,
        firmware: UnnumberedChecksum::RejectAndResend,
        tx_buffer: true,
        loop_ms: 0,
        answer_delay_ms: 0,
    },
    Method {
        name: "late answers, Prusa fw",
        in_flight: None,
        firmware: UnnumberedChecksum::RejectAndResend,
        tx_buffer: true,
        loop_ms: 0,
        answer_delay_ms: LATE_ANSWER_MS,
    },
    Method {
        name: "late answers, Marlin 1.0",
        in_flight: None,
        firmware: UnnumberedChecksum::Reject,
        tx_buffer: true,
        loop_ms: 0,
        answer_delay_ms: LATE_ANSWER_MS,
    },
];

/// The answer delay of the "late answers" rows: an emulation that flushes its receive buffer
/// at once (as with a TX buffer) and whose answers reach the host 20 ms later, as through a
/// USB-serial bridge's latency timer (16 ms by default on FTDI chips).
pub const LATE_ANSWER_MS: u64 = 20;

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
        tx_buffer: method.tx_buffer,
        loop_time: Duration::from_millis(method.loop_ms),
        answer_delay: Duration::from_millis(method.answer_delay_ms),
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
    let counters = microfab_drivers::Driver::traffic(&rig.driver)
        .map(|traffic| traffic.counters.clone())
        .unwrap_or_default();
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
            spread: None,
        },
        wire_utilisation: received as f64 / seconds / wire_bytes_per_second,
        ceiling: payload as f64 / framed as f64,
        resends: counters.resends,
        foreign: comparison.foreign.len() as u64,
        line_window: rig.driver.line_window(),
        errors: counters.errors,
        window_fallbacks: counters.window_fallbacks,
    })
}

/// What a lost `ok` costs: the same program streamed with and without lost `ok`s.
#[derive(Debug, Clone, PartialEq)]
pub struct LostOkRun {
    pub lines: usize,
    pub dropped: u64,
    pub seconds: f64,
    pub clean_seconds: f64,
    pub lost: u64,
    pub doubled: u64,
}

impl LostOkRun {
    pub fn seconds_per_lost_ok(&self) -> f64 {
        (self.seconds - self.clean_seconds) / self.dropped.max(1) as f64
    }
}

/// `lines` moves (`after_m400`: each followed by `M400`, half of the lines) streamed with the
/// driver's defaults (one line in flight on Marlin 2.x, its timeouts), with `share` of the
/// `ok`s of the moves, or of the `M400`s, lost on the way back.
pub async fn lost_ok_run(
    lines: usize,
    share: f64,
    after_m400: bool,
    baud: u32,
) -> anyhow::Result<LostOkRun> {
    let program: Vec<String> = if after_m400 {
        bench_program(lines / 2)
            .into_iter()
            .flat_map(|line| [line, "M400".to_string()])
            .collect()
    } else {
        bench_program(lines)
    };
    let command = if after_m400 { "M400" } else { "G1" };
    let mut seconds = [0.0; 2];
    let mut measured = None;
    for (run, share) in [0.0, share].into_iter().enumerate() {
        let firmware = FirmwareConfig {
            time_scale: 1e9,
            drop_ok: (share > 0.0).then(|| DropOk {
                share,
                command: Some(command.into()),
                seed: 11,
            }),
            ..FirmwareConfig::default()
        };
        let mut rig = Rig::start(baud, firmware, |config| {
            config.poll_interval_ms = 60_000;
        })
        .await?;
        let started = tokio::time::Instant::now();
        rig.run(1, &program.join("\n")).await?;
        let end = rig
            .job_end(1, Duration::from_secs(3_600))
            .await
            .context("the job did not end")?;
        if !matches!(end, DriverEvent::JobFinished { .. }) {
            anyhow::bail!("the job did not finish: {end:?}");
        }
        seconds[run] = started.elapsed().as_secs_f64();
        let moves: Vec<String> = program.iter().filter(|l| *l != "M400").cloned().collect();
        let comparison = Comparison::new(&moves, &rig.sim.execution_log());
        measured = Some((rig.sim.oks_dropped(), comparison.lost, comparison.doubled));
    }
    let (dropped, lost, doubled) = measured.unwrap_or_default();
    Ok(LostOkRun {
        lines: program.len(),
        dropped,
        seconds: seconds[1],
        clean_seconds: seconds[0],
        lost,
        doubled,
    })
}
