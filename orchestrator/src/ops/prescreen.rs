//! The pre-screen of an order, as an operator reads it before approving.

use super::{Actor, Operations, Result};
use crate::auth::Role;
use crate::plant::prescreen::OrderPrescreen;
use crate::store::now_ms;

impl Operations {
    /// What the pre-screen finds for an order now, against today's fleet and stock. Staff
    /// only: refused to every maker alike, so it tells nothing of whose orders exist.
    pub async fn prescreen(&self, actor: &Actor, order_id: &str) -> Result<OrderPrescreen> {
        actor.require(Role::Operator, "reading the pre-screen")?;
        Ok(self.plant().prescreen(order_id, now_ms()).await?)
    }
}
