//! Where the logs go and how they look: one subscriber for the whole process, on stderr (stdout
//! is the commands' output), filtered by `RUST_LOG`.
//!
//! Two formats, chosen by `--log-format` (or `MICROFAB_LOG_FORMAT`): `human`, one line per
//! event with its spans' fields in front (`dispatch{machine=laser-1 job=7 order=…}: …`), ANSI
//! colours only on a terminal; and `json`, one JSON object per line with the event's `fields`,
//! its innermost `span` and every enclosing span in `spans`, for a log shipper.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Without `RUST_LOG`: warnings, and the access log (one line per request). The demo's
/// terminal stays readable; a plant's service sets `RUST_LOG=warn,microfab=info` for the
/// production facts (runs dispatched and finished, machine conditions, orders completed).
pub const DEFAULT_FILTER: &str = "warn,microfab::access=info";
/// Without `RUST_LOG`, for a benchmark: its plant answers the benchmark's own requests, and an
/// access line for each would bury the table it prints.
pub const BENCH_FILTER: &str = "warn";

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Lines for people, with the spans' fields in front.
    #[default]
    Human,
    /// One JSON object per line, with the spans' fields.
    Json,
}

/// Install the process's subscriber, with `default_filter` unless `RUST_LOG` says otherwise.
/// Call once, before anything logs.
pub fn init(format: LogFormat, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .init(),
    }
}

/// A command that failed: `error: ...` for people; for JSON logs one more JSON line, so that a
/// log shipper reading stderr never meets a line that is not JSON.
pub fn report_failure(format: LogFormat, error: &anyhow::Error) {
    match format {
        LogFormat::Human => eprintln!("error: {error:#}"),
        LogFormat::Json => tracing::error!(error = %format!("{error:#}"), "the command failed"),
    }
}
