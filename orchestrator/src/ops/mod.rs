//! The operations: every verb a maker, an operator or the demo can do to the plant, in one
//! place. The JSON API and the CLI's in-process paths (the demo) call these, never the plant's
//! write methods or the runtime directly. Each takes who does it ([`Actor`]), does the
//! transaction (or tells the machine), tells the coordinator when the change may let work
//! start, and returns the view of what it changed.
//!
//! Layers: api and cli above this module; the plant (rules, transactions, views) and the
//! runtime (machines, coordinator) below it; the store below them.

mod accounts;
mod floor;
mod jobs;
mod machines;
mod materials;
mod metrics;
mod orders;
mod prescreen;
mod reads;
mod tasks;

pub use accounts::hash_password;

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Role;
use crate::plant::views::OrderView;
use crate::plant::{OrderState, Plant, PlantError};
use crate::runtime::{CommandError, Runtime};

/// Who does an operation, as the event log records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A person with an account, by its name, with the role that says what they may do.
    Account { name: String, role: Role },
    /// The demo, submitting and approving its own orders.
    Demo,
    /// The demo's stand-in for the person who settles runs cut short by a restart.
    DemoOperator,
    /// Whoever can open the database itself: `microfab user ...`, the bootstrap token.
    Local,
    /// A simulated operator (`[simulation.operators]`): confirms loads, unloads, maintenance
    /// and manual runs with an operator's rights.
    SimulatedOperator,
    /// A process on the plant's own host (a loopback peer) without an account: it may read
    /// the metrics while `[metrics] allow_localhost` lets it, and nothing else.
    Loopback,
}

impl Actor {
    /// The name in the event log.
    pub fn name(&self) -> &str {
        match self {
            Actor::Account { name, .. } => name,
            Actor::Demo => "demo",
            Actor::DemoOperator => "demo-operator",
            Actor::Local => "local",
            Actor::SimulatedOperator => "sim-operator",
            Actor::Loopback => "loopback",
        }
    }
}

impl Actor {
    /// Whether this actor may do what `needed` may. The demo's own actors run the plant;
    /// whoever holds the database may do anything.
    pub fn may(&self, needed: Role) -> bool {
        match self {
            Actor::Account { role, .. } => role.includes(needed),
            Actor::Demo | Actor::DemoOperator | Actor::SimulatedOperator => {
                Role::Operator.includes(needed)
            }
            Actor::Local => true,
            Actor::Loopback => false,
        }
    }

    /// `Ok` when this actor may do what `needed` may; else `Forbidden`, saying what `what`
    /// (e.g. "approving an order") needs.
    pub fn require(&self, needed: Role, what: &str) -> Result<()> {
        if self.may(needed) {
            return Ok(());
        }
        let has = match self {
            Actor::Account { role, .. } => format!("the {role} role"),
            _ => "no role".to_string(),
        };
        Err(OpError::Forbidden(format!(
            "{what} needs the {needed} role; {self} has {has}"
        )))
    }

    /// The maker whose orders and material accounts are all this actor may see; `None` for
    /// those who see the whole plant.
    pub fn maker_scope(&self) -> Option<&str> {
        match self {
            Actor::Account {
                name,
                role: Role::Maker,
            } => Some(name),
            _ => None,
        }
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why an operation was refused or failed: a plant rule (or the store), or the machine.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error(transparent)]
    Plant(#[from] PlantError),
    #[error(transparent)]
    Machine(#[from] CommandError),
    #[error("machine '{0}' has no serial console")]
    NoConsole(String),
    /// The actor's role does not allow this. (What a maker may not even see is `NotFound`.)
    #[error("{0}")]
    Forbidden(String),
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Submitted {
    pub order: OrderView,
    /// An order with the same `submission_key` existed: this is it, nothing new was made.
    #[serde(default)]
    pub already_submitted: bool,
}

pub type Result<T, E = OpError> = std::result::Result<T, E>;

/// The operations on one running plant. Cheap to clone: it holds the runtime.
#[derive(Clone)]
pub struct Operations {
    runtime: Arc<Runtime>,
}

impl Operations {
    pub fn new(runtime: Arc<Runtime>) -> Operations {
        Operations { runtime }
    }

    /// The plant, for its read models (`plant/views.rs`).
    pub fn plant(&self) -> &Plant {
        &self.runtime.plant
    }

    /// The plan the dispatcher follows, as Gantt rows per machine.
    pub async fn plan(&self, actor: &Actor) -> Result<crate::plant::live_views::PlanView> {
        use std::sync::atomic::Ordering::Relaxed;
        actor.require(Role::Operator, "the plan")?;
        let snapshot = self.runtime.current_plan();
        let mut closed = std::collections::HashSet::new();
        if snapshot.is_some() {
            for state in [OrderState::Cancelled, OrderState::Rejected] {
                let orders = self.plant().orders(Some(state.as_str()), None).await?;
                closed.extend(orders.into_iter().map(|order| order.id));
            }
        }
        Ok(crate::plant::live_views::plan_view(
            snapshot.as_deref().map(|s| (&s.plan, &s.input)),
            &closed,
            self.runtime.plans_made.load(Relaxed),
            self.runtime.plans_refused.load(Relaxed),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::Actor;
    use crate::auth::Role;

    /// The event log's `actor` column keeps the names it had before there was a type.
    #[test]
    fn actors_keep_their_names_in_the_event_log() {
        for (actor, name) in [
            (
                Actor::Account {
                    name: "alice".into(),
                    role: Role::Operator,
                },
                "alice",
            ),
            (Actor::Demo, "demo"),
            (Actor::DemoOperator, "demo-operator"),
            (Actor::Local, "local"),
            (Actor::SimulatedOperator, "sim-operator"),
            (Actor::Loopback, "loopback"),
        ] {
            assert_eq!(actor.name(), name);
            assert_eq!(actor.to_string(), name);
        }
    }
}
