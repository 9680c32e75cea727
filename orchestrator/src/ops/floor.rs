//! Reads for the panel's floor pages, staff only like the pages: the runs on the machines and
//! a machine's history, the event log searched and followed, and what the runtime holds (the
//! machines' live status channels the fleet board follows, when the plan expects a run to end,
//! what a machine's driver can do).

use std::collections::{BTreeMap, HashMap};

use microfab_drivers::registry::Supports;
use tokio::sync::{broadcast, watch};

use super::{Actor, Operations, Result};
use crate::auth::Role;
use crate::machine_status::MachineStatus;
use crate::plant::PlantError;
use crate::plant::floor_views::{MachineRun, MachineTally, RunOnMachine};
use crate::store::EventRecord;
use crate::store::events::search::{self, EventFilter};

impl Operations {
    /// The run on each machine (or on `machine_id` only), by machine id.
    pub async fn runs_on_machines(
        &self,
        actor: &Actor,
        machine_id: Option<&str>,
    ) -> Result<HashMap<String, RunOnMachine>> {
        actor.require(Role::Operator, "the runs on the machines")?;
        Ok(self.plant().runs_on_machines(machine_id).await?)
    }

    /// The machine's `limit` most recent runs, newest first.
    pub async fn machine_runs(
        &self,
        actor: &Actor,
        machine_id: &str,
        limit: i64,
    ) -> Result<Vec<MachineRun>> {
        actor.require(Role::Operator, "a machine's runs")?;
        Ok(self.plant().machine_runs(machine_id, limit).await?)
    }

    /// What the machine has done: runs by how they ended, units good and scrapped.
    pub async fn machine_tally(&self, actor: &Actor, machine_id: &str) -> Result<MachineTally> {
        actor.require(Role::Operator, "a machine's counters")?;
        Ok(self.plant().machine_tally(machine_id).await?)
    }

    /// The newest `limit` events that match `filter`, before the event `before` if given.
    pub async fn search_events(
        &self,
        actor: &Actor,
        filter: &EventFilter,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<EventRecord>> {
        actor.require(Role::Operator, "the event log")?;
        Ok(
            search::newest(&self.plant().store.pool, filter, before, limit)
                .await
                .map_err(PlantError::from)?,
        )
    }

    /// The kinds of event the log holds, for the event log's filter.
    pub async fn event_kinds(&self, actor: &Actor) -> Result<Vec<String>> {
        actor.require(Role::Operator, "the event log")?;
        Ok(search::kinds(&self.plant().store.pool)
            .await
            .map_err(PlantError::from)?)
    }

    /// Every event from now on, as it commits.
    pub fn follow_events(&self, actor: &Actor) -> Result<broadcast::Receiver<EventRecord>> {
        actor.require(Role::Operator, "the event log")?;
        Ok(self.plant().store.subscribe())
    }

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
