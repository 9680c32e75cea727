//! The pre-screen of an order, as an operator reads it before approving.

use super::{Actor, OpError, Operations, Result};
use crate::auth::Role;
use crate::plant::PlantError;
use crate::plant::prescreen::OrderPrescreen;
use crate::store::now_ms;

impl Operations {
    /// What the pre-screen finds for an order now, against today's fleet and stock. Staff
    /// only: a maker's own order is forbidden to them, another maker's is not found.
    pub async fn prescreen(&self, actor: &Actor, order_id: &str) -> Result<OrderPrescreen> {
        if let Some(maker) = actor.maker_scope() {
            let order = self.plant().order(order_id).await?;
            if order.maker != maker {
                return Err(PlantError::NotFound(format!("order '{order_id}'")).into());
            }
        }
        if !actor.may(Role::Operator) {
            return Err(OpError::Forbidden(
                "the pre-screen is for the plant's staff".into(),
            ));
        }
        Ok(self.plant().prescreen(order_id, now_ms()).await?)
    }
}
