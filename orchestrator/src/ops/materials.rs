//! An operator's verbs on stock accounts.

use super::{Actor, Operations, Result};
use crate::amount::Amount;
use crate::auth::Role;
use crate::config::Origin;
use crate::plant::views::MaterialView;
use crate::store::now_ms;

impl Operations {
    /// Material arrived (a lot, made up when `None`, from `origin`, the account's when
    /// `None`); runs waiting for it may start.
    #[tracing::instrument(name = "operation", skip_all, fields(verb = "restock", actor = %actor, account = %account))]
    pub async fn restock(
        &self,
        actor: &Actor,
        account: &str,
        amount: Amount,
        lot: Option<String>,
        origin: Option<Origin>,
    ) -> Result<MaterialView> {
        actor.require(Role::Operator, "restocking")?;
        self.plant()
            .restock(account, amount, lot, origin, actor.name(), now_ms())
            .await?;
        self.runtime.wake();
        Ok(self.plant().material(account).await?)
    }

    /// Correct an account after a count (breakage, a miscount).
    #[tracing::instrument(name = "operation", skip_all, fields(verb = "adjust", actor = %actor, account = %account))]
    pub async fn adjust(
        &self,
        actor: &Actor,
        account: &str,
        delta: Amount,
        reason: &str,
    ) -> Result<MaterialView> {
        actor.require(Role::Operator, "adjusting stock")?;
        self.plant()
            .adjust(account, delta.0, reason, actor.name(), now_ms())
            .await?;
        self.runtime.wake();
        Ok(self.plant().material(account).await?)
    }
}
