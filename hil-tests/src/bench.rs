//! `microfab bench streaming`: effective payload throughput of each streaming method against the
//! emulated wire limit, and lines lost or doubled according to the simulator's execution log.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StreamingRow {
    pub protocol: &'static str,
    pub method: &'static str,
    /// Fraction of lines corrupted on the wire (0.01 = 1 %).
    pub corruption: f64,
    /// Payload bytes per second divided by the wire limit (baud / 10).
    pub efficiency: f64,
    pub lost: u64,
    pub doubled: u64,
    pub lines: u64,
    pub seconds: f64,
}

pub fn print_table(rows: &[StreamingRow], out: &mut dyn std::io::Write) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<8} {:<22} {:>10} {:>10} {:>6} {:>8} {:>8} {:>9}",
        "protocol", "method", "corruption", "efficiency", "lost", "doubled", "lines", "seconds"
    )?;
    for r in rows {
        writeln!(
            out,
            "{:<8} {:<22} {:>9.1}% {:>10.3} {:>6} {:>8} {:>8} {:>9.2}",
            r.protocol,
            r.method,
            r.corruption * 100.0,
            r.efficiency,
            r.lost,
            r.doubled,
            r.lines,
            r.seconds
        )?;
    }
    Ok(())
}

pub fn print_json_lines(
    rows: &[StreamingRow],
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    for r in rows {
        writeln!(
            out,
            "{}",
            serde_json::to_string(r).map_err(std::io::Error::other)?
        )?;
    }
    Ok(())
}
