//! `/metrics`: the plant's production state for Prometheus (docs/metrics.md).

use super::{Actor, Operations, Result};
use crate::auth::Role;
use crate::store::now_ms;
use crate::telemetry::{self, Format, Snapshot};

impl Operations {
    /// The scrape's body in `format`. Operators and admins may read it; so may a process on
    /// this host without an account ([`Actor::Loopback`]) unless `[metrics] allow_localhost`
    /// is off.
    pub async fn metrics(&self, actor: &Actor, format: Format) -> Result<String> {
        let plant = self.plant();
        if !(*actor == Actor::Loopback && plant.config.metrics.allow_localhost) {
            actor.require(Role::Operator, "reading the metrics")?;
        }
        let snapshot = Snapshot {
            version: env!("CARGO_PKG_VERSION").to_string(),
            plant_name: plant.config.plant.name.clone(),
            plant: plant.metrics_view(now_ms()).await?,
            live: self
                .runtime
                .statuses()
                .iter()
                .map(|(id, status)| (id.clone(), status.borrow().clone()))
                .collect(),
        };
        Ok(telemetry::render(snapshot, &self.runtime.metrics, format))
    }
}
