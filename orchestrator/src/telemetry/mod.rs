//! The one telemetry module: every metric `/metrics` serves is named here (the catalog is
//! `docs/metrics.md`). Production state is not counted as it happens but read at each scrape
//! ([`Snapshot`]: the store's aggregates in `plant/metrics_view.rs` and each machine's live
//! status channel) and encoded through a per-scrape registry, so a metric shows exactly what
//! the API does and survives a restart. Only what happens inside this process and is no state
//! of the plant is kept across scrapes ([`ProcessMetrics`]: dispatch latency).
//!
//! Two text formats: OpenMetrics for a client that asks for it (Prometheus does), else the
//! classic Prometheus text format (0.0.4), which is what `promtool check metrics` reads: it
//! takes an OpenMetrics counter's `_total` sample for an untyped metric without help.

mod catalog;
#[cfg(test)]
mod tests;

use std::time::Duration;

use prometheus_client::encoding::{prometheus_text, text};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::machine_status::MachineStatus;
use crate::plant::metrics_view::PlantMetrics;

/// What one scrape reads: the plant's state from the store and each machine's live status.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub version: String,
    pub plant_name: String,
    pub plant: PlantMetrics,
    /// Each machine's live status channel, by machine id.
    pub live: Vec<(String, MachineStatus)>,
}

/// The text format of a scrape's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    OpenMetrics,
    /// The classic Prometheus text format, version 0.0.4.
    Prometheus,
}

impl Format {
    /// OpenMetrics when the `Accept` header names it (Prometheus asks for it first), else the
    /// classic text format, which every client and `promtool` read.
    pub fn from_accept(accept: Option<&str>) -> Format {
        match accept {
            Some(accept) if accept.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Prometheus,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Prometheus => prometheus_text::CONTENT_TYPE,
        }
    }
}

/// What is measured inside this process over its lifetime (it starts again at zero after a
/// restart, which `rate()` handles).
#[derive(Debug)]
pub struct ProcessMetrics {
    registry: Registry,
    dispatch_latency: Histogram,
}

impl Default for ProcessMetrics {
    fn default() -> Self {
        // 1 ms to 8 s: a round re-reads the plant, so its cost grows with the fleet.
        let dispatch_latency = Histogram::new(exponential_buckets(0.001, 2.0, 14));
        let mut registry = Registry::default();
        registry.register_with_unit(
            "microfab_dispatch_latency",
            "From the coordinator taking in what started a dispatch round (a machine's event, an operation's wake, the tick) to a run handed to its machine",
            Unit::Seconds,
            dispatch_latency.clone(),
        );
        ProcessMetrics {
            registry,
            dispatch_latency,
        }
    }
}

impl ProcessMetrics {
    /// A run reached its machine `latency` after the coordinator took in its round's trigger.
    pub fn run_dispatched(&self, latency: Duration) {
        self.dispatch_latency.observe(latency.as_secs_f64());
    }
}

/// The body of a scrape: the snapshot's metrics, then the process's.
pub fn render(snapshot: Snapshot, process: &ProcessMetrics, format: Format) -> String {
    let mut scrape = Registry::default();
    scrape.register_collector(Box::new(catalog::PlantCollector(snapshot)));
    let mut body = String::new();
    // Writing to a String cannot fail; an encoder error would be a bug in a metric's labels.
    let encoded = match format {
        Format::OpenMetrics => text::encode_registry(&mut body, &scrape)
            .and_then(|()| text::encode_registry(&mut body, &process.registry))
            .and_then(|()| text::encode_eof(&mut body)),
        Format::Prometheus => prometheus_text::encode(&mut body, &scrape)
            .and_then(|()| prometheus_text::encode(&mut body, &process.registry)),
    };
    if let Err(e) = encoded {
        tracing::error!(error = %e, "encoding the metrics failed");
    }
    body
}
