//! What each actor may read of the plant: one place for the API and the panel. A maker sees
//! their own orders (with their units) and their own stock accounts; another maker's order is
//! "not found" to them, not "forbidden", so its id tells nothing. Runs, machines, the plan,
//! the event log and the store's own check are the operators'.

use super::{Actor, Operations, Result};
use crate::auth::Role;
use crate::plant::lots::LotView;
use crate::plant::views::{JobView, MaterialView, OrderView, UnitView};
use crate::plant::{JobState, OrderState, PlantError};
use crate::store::Store;
use crate::store::events::{self, EventRecord};
use crate::verify::VerifyReport;

impl Operations {
    /// Orders, optionally of one state and one maker; a maker's are only their own (asking
    /// for another maker's gives none).
    pub async fn orders(
        &self,
        actor: &Actor,
        state: Option<OrderState>,
        maker: Option<&str>,
    ) -> Result<Vec<OrderView>> {
        actor.require(Role::Maker, "reading orders")?;
        let maker = match (actor.maker_scope(), maker) {
            (Some(me), Some(asked)) if asked != me => return Ok(Vec::new()),
            (Some(me), _) => Some(me),
            (None, asked) => asked,
        };
        Ok(self
            .plant()
            .orders(state.map(OrderState::as_str), maker)
            .await?)
    }

    /// One order, if this actor may see it.
    pub async fn order(&self, actor: &Actor, order_id: &str) -> Result<OrderView> {
        actor.require(Role::Maker, "reading an order")?;
        let order = self.plant().order(order_id).await?;
        match actor.maker_scope() {
            Some(me) if order.maker != me => {
                Err(PlantError::NotFound(format!("order '{order_id}'")).into())
            }
            _ => Ok(order),
        }
    }

    /// The units of an order this actor may see.
    pub async fn units(&self, actor: &Actor, order_id: &str) -> Result<Vec<UnitView>> {
        self.order(actor, order_id).await?;
        Ok(self.plant().units(order_id).await?)
    }

    /// Stock accounts; a maker's are those they own.
    pub async fn materials(&self, actor: &Actor) -> Result<Vec<MaterialView>> {
        actor.require(Role::Maker, "reading stock")?;
        let mut materials = self.plant().materials().await?;
        if let Some(me) = actor.maker_scope() {
            materials.retain(|m| m.owner == me);
        }
        Ok(materials)
    }

    /// The lots received into the stock accounts this actor may see, newest first.
    pub async fn lots(&self, actor: &Actor) -> Result<Vec<LotView>> {
        let visible: std::collections::HashSet<String> = self
            .materials(actor)
            .await?
            .into_iter()
            .map(|m| m.id)
            .collect();
        let mut lots = self.plant().lots().await?;
        lots.retain(|lot| visible.contains(&lot.account));
        Ok(lots)
    }

    /// Runs, optionally of one order, machine and state.
    pub async fn jobs(
        &self,
        actor: &Actor,
        order_id: Option<&str>,
        machine_id: Option<&str>,
        state: Option<JobState>,
    ) -> Result<Vec<JobView>> {
        actor.require(Role::Operator, "reading runs")?;
        Ok(self
            .plant()
            .jobs(order_id, machine_id, state.map(JobState::as_str))
            .await?)
    }

    /// The event log after `after`, at most `limit` events, optionally of one order.
    pub async fn event_log(
        &self,
        actor: &Actor,
        after: i64,
        limit: i64,
        order_id: Option<&str>,
    ) -> Result<Vec<EventRecord>> {
        actor.require(Role::Operator, "reading the event log")?;
        Ok(
            events::list(&self.plant().store.pool, after, limit, order_id)
                .await
                .map_err(PlantError::from)?,
        )
    }

    /// The store whose log and live feed this actor may follow (the SSE stream).
    pub fn event_feed(&self, actor: &Actor) -> Result<&Store> {
        actor.require(Role::Operator, "following the event stream")?;
        Ok(&self.plant().store)
    }

    /// Replay the log and check the store's invariants (`microfab verify`).
    pub async fn verify(&self, actor: &Actor) -> Result<VerifyReport> {
        actor.require(Role::Operator, "verifying the store")?;
        Ok(crate::verify::verify(&self.plant().store)
            .await
            .map_err(PlantError::from)?)
    }
}
