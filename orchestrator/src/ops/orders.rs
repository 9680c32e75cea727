//! A maker's and an operator's verbs on orders and their units.

use microfab_drivers::DriverCommand;
use microfab_job_specs::CheckedSpec;

use super::{Actor, OpError, Operations, Result, Submitted};
use crate::auth::Role;
use crate::plant::views::OrderView;
use crate::plant::{OrderState, invalid};
use crate::store::now_ms;

impl Operations {
    /// Record a checked spec as a `submitted` order (pre-screened), or find the order its
    /// `submission_key` already made. A maker submits in their own name only.
    #[tracing::instrument(name = "operation", skip_all, fields(verb = "submit", actor = %actor))]
    pub async fn submit(
        &self,
        actor: &Actor,
        spec: &CheckedSpec,
        submission_key: Option<&str>,
    ) -> Result<Submitted> {
        actor.require(Role::Maker, "submitting an order")?;
        if let Some(me) = actor.maker_scope()
            && spec.spec.maker != me
        {
            return Err(invalid(
                "maker",
                format!(
                    "the spec names the maker '{}'; you submit as '{me}' (an operator may submit for another maker)",
                    spec.spec.maker
                ),
            )
            .into());
        }
        let plant = self.plant();
        let submission = plant
            .submit(spec, submission_key, actor.name(), now_ms())
            .await?;
        Ok(Submitted {
            order: plant.order(&submission.order_id).await?,
            already_submitted: submission.already_submitted,
        })
    }

    /// Reserve the order's material and create its runs; the coordinator may start them.
    #[tracing::instrument(name = "operation", skip_all, fields(verb = "approve", actor = %actor, order = %order_id))]
    pub async fn approve(&self, actor: &Actor, order_id: &str) -> Result<OrderView> {
        actor.require(Role::Operator, "approving an order")?;
        self.plant()
            .approve(order_id, actor.name(), now_ms())
            .await?;
        self.runtime.wake();
        Ok(self.plant().order(order_id).await?)
    }

    #[tracing::instrument(name = "operation", skip_all, fields(verb = "reject", actor = %actor, order = %order_id))]
    pub async fn reject(&self, actor: &Actor, order_id: &str, reason: &str) -> Result<OrderView> {
        actor.require(Role::Operator, "rejecting an order")?;
        self.plant()
            .reject(order_id, reason, actor.name(), now_ms())
            .await?;
        Ok(self.plant().order(order_id).await?)
    }

    /// Cancel an order and abort its runs still on machines. An abort that fails is logged:
    /// the order is cancelled either way, and the run's late outcome settles that run only.
    /// A maker withdraws their own order while it is still `submitted`; after approval,
    /// material and machines are committed and an operator decides.
    #[tracing::instrument(name = "operation", skip_all, fields(verb = "cancel", actor = %actor, order = %order_id))]
    pub async fn cancel(&self, actor: &Actor, order_id: &str, reason: &str) -> Result<OrderView> {
        let order = self.order(actor, order_id).await?;
        if actor.maker_scope().is_some() && order.state != OrderState::Submitted {
            return Err(OpError::Forbidden(format!(
                "order {order_id} is {}: a maker withdraws an order only while it is submitted; ask an operator",
                order.state
            )));
        }
        let on_machines = self
            .plant()
            .cancel(order_id, reason, actor.name(), now_ms())
            .await?;
        for (job_id, machine_id) in on_machines {
            if let Err(e) = self
                .runtime
                .command(&machine_id, DriverCommand::Abort)
                .await
            {
                tracing::warn!(job_id, machine_id, error = %e, "abort after cancel failed");
            }
        }
        self.runtime.wake();
        Ok(self.plant().order(order_id).await?)
    }

    /// Mark one good unit scrapped (found bad at inspection); the plant makes a replacement.
    /// Returns the view of the unit's order.
    #[tracing::instrument(name = "operation", skip_all, fields(verb = "scrap_unit", actor = %actor, unit = unit_id))]
    pub async fn scrap_unit(&self, actor: &Actor, unit_id: i64, reason: &str) -> Result<OrderView> {
        actor.require(Role::Operator, "scrapping a unit")?;
        self.plant()
            .scrap_unit(unit_id, reason, actor.name(), now_ms())
            .await?;
        self.runtime.wake();
        let order_id = self.plant().order_of_unit(unit_id).await?;
        Ok(self.plant().order(&order_id).await?)
    }
}
