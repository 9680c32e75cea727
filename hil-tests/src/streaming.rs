//! What every protocol's streaming bench shares: the options, one measured row per method, and
//! how rows print (a table for people, JSON lines for scripts). The protocols' benches
//! ([`crate::grbl::bench`], [`crate::marlin::bench`]) make rows; [`crate::bench`] runs them all.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StreamingRow {
    pub protocol: &'static str,
    pub method: &'static str,
    /// Fraction of lines corrupted on the wire (0.01 = 1 %).
    pub corruption: f64,
    /// Payload bytes per second divided by the wire limit (baud / 10). Payload is each program
    /// line with its newline, without any framing the protocol adds (Marlin's `N<n> ` and
    /// `*<checksum>`), so a framed protocol cannot reach 1 even on a saturated wire.
    pub efficiency: f64,
    /// Bytes of the program's lines as framed for the wire (each accepted line counted once;
    /// resends, probes and rejected copies are not) per second, divided by the wire limit: how
    /// well the method uses the wire. Equal to `efficiency` for an unframed protocol (GRBL).
    pub wire_efficiency: f64,
    pub lost: u64,
    pub doubled: u64,
    pub lines: u64,
    pub seconds: f64,
    /// Over repeated runs ([`median_rows`]): the row is the median run's, `lost` and `doubled`
    /// count every run.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub spread: Option<Spread>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Spread {
    pub runs: usize,
    pub wire_efficiency_min: f64,
    pub wire_efficiency_max: f64,
}

/// One row per method from several rounds of the same rows: the run with the median wire
/// efficiency (the upper one of an even count), with the spread, and every run's lost and
/// doubled lines added up, so that a single bad run shows.
pub fn median_rows(rounds: Vec<Vec<StreamingRow>>) -> Vec<StreamingRow> {
    let Some(first) = rounds.first() else {
        return Vec::new();
    };
    (0..first.len())
        .map(|index| {
            let mut runs: Vec<&StreamingRow> = rounds.iter().map(|round| &round[index]).collect();
            runs.sort_by(|a, b| a.wire_efficiency.total_cmp(&b.wire_efficiency));
            let mut row = runs[runs.len() / 2].clone();
            row.lost = runs.iter().map(|r| r.lost).sum();
            row.doubled = runs.iter().map(|r| r.doubled).sum();
            row.spread = Some(Spread {
                runs: runs.len(),
                wire_efficiency_min: runs[0].wire_efficiency,
                wire_efficiency_max: runs[runs.len() - 1].wire_efficiency,
            });
            row
        })
        .collect()
}

pub fn print_table(rows: &[StreamingRow], out: &mut dyn std::io::Write) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<8} {:<25} {:>10} {:>10} {:>9} {:>6} {:>8} {:>8} {:>9}",
        "protocol",
        "method",
        "corruption",
        "efficiency",
        "wire eff.",
        "lost",
        "doubled",
        "lines",
        "seconds"
    )?;
    for r in rows {
        write!(
            out,
            "{:<8} {:<25} {:>9.1}% {:>10.3} {:>9.3} {:>6} {:>8} {:>8} {:>9.2}",
            r.protocol,
            r.method,
            r.corruption * 100.0,
            r.efficiency,
            r.wire_efficiency,
            r.lost,
            r.doubled,
            r.lines,
            r.seconds
        )?;
        match &r.spread {
            Some(spread) => writeln!(
                out,
                "  median of {}, wire eff. {:.3}-{:.3}",
                spread.runs, spread.wire_efficiency_min, spread.wire_efficiency_max
            )?,
            None => writeln!(out)?,
        }
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

/// What `microfab bench streaming` measures.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamingBenchOptions {
    /// Program length; the documented benchmark is 10,000 short lines.
    pub lines: usize,
    pub baud: u32,
    /// Rounds of every row; more than one reports each row's median ([`median_rows`]).
    pub repeat: usize,
}

impl Default for StreamingBenchOptions {
    fn default() -> Self {
        StreamingBenchOptions {
            lines: 10_000,
            baud: 115_200,
            repeat: 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(method: &'static str, wire_efficiency: f64, doubled: u64) -> StreamingRow {
        StreamingRow {
            protocol: "marlin",
            method,
            corruption: 0.01,
            efficiency: wire_efficiency * 0.66,
            wire_efficiency,
            lost: 0,
            doubled,
            lines: 10_000,
            seconds: 25.0,
            spread: None,
        }
    }

    #[test]
    fn repeated_rows_report_the_median_run_and_every_runs_doubled_lines() {
        let rounds = vec![
            vec![row("a", 0.91, 0), row("b", 0.50, 0)],
            vec![row("a", 0.80, 1), row("b", 0.48, 0)],
            vec![row("a", 0.93, 0), row("b", 0.49, 0)],
        ];
        let rows = median_rows(rounds);
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].method, rows[0].wire_efficiency), ("a", 0.91));
        assert_eq!(rows[0].doubled, 1);
        assert_eq!(
            rows[0].spread,
            Some(Spread {
                runs: 3,
                wire_efficiency_min: 0.80,
                wire_efficiency_max: 0.93
            })
        );
        assert_eq!(rows[1].wire_efficiency, 0.49);
        let mut json = Vec::new();
        print_json_lines(&rows[..1], &mut json).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(value["runs"], 3);
        assert_eq!(value["wire_efficiency_min"], 0.80);
        assert_eq!(value["efficiency"], 0.91 * 0.66);
    }
}
