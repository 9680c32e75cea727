//! Reads of what the runtime holds, for the panel's floor pages: the machines' live status
//! channels (the fleet board follows them), when the plan expects a run to end, and what a
//! machine's driver can do.

use std::collections::BTreeMap;

use microfab_drivers::registry::Supports;
use tokio::sync::watch;

use super::Operations;
use crate::machine_status::MachineStatus;

impl Operations {
    /// Each machine's live status channel, by machine id.
    pub fn status_channels(&self) -> &BTreeMap<String, watch::Receiver<MachineStatus>> {
        self.runtime.statuses()
    }

    /// When the current plan expects `run_id` to end (ms since the epoch); `None` before the
    /// first plan or for a run the plan does not place.
    pub fn planned_end(&self, run_id: i64) -> Option<i64> {
        let snapshot = self.runtime.current_plan()?;
        snapshot
            .plan
            .assignments
            .iter()
            .find(|a| a.run_id == run_id)
            .map(|a| a.end)
    }

    /// What the driver of `machine_id` can do; `None` for a machine no longer in the config.
    pub fn driver_supports(&self, machine_id: &str) -> Option<Supports> {
        self.plant()
            .config
            .machines
            .iter()
            .map(|m| m.get_ref())
            .find(|m| m.id == machine_id)
            .map(|m| m.driver.supports())
    }
}
