//! An admin's verbs on accounts: list, add, set a role or a password, disable, make and
//! revoke API tokens. (`microfab user` does the same on the database itself, as
//! [`Actor::Local`].)

use super::{Actor, Operations, Result};
use crate::auth::accounts::{self, AccountView};
use crate::auth::{Role, secrets};
use crate::plant::{PlantError, invalid};
use crate::store::now_ms;

impl Operations {
    pub async fn accounts(&self, actor: &Actor) -> Result<Vec<AccountView>> {
        actor.require(Role::Admin, "managing accounts")?;
        Ok(accounts::list(&self.plant().store).await?)
    }

    /// A new account that signs in with `password`.
    #[tracing::instrument(name = "operation", skip_all, fields(verb = "add_account", actor = %actor, account = %name))]
    pub async fn add_account(
        &self,
        actor: &Actor,
        name: &str,
        role: Role,
        password: &str,
    ) -> Result<AccountView> {
        actor.require(Role::Admin, "managing accounts")?;
        accounts::check_name(name)?;
        let hash = hash_password(password).await?;
        let store = &self.plant().store;
        accounts::add(store, actor.name(), name, role, Some(hash), now_ms()).await?;
        self.account(name).await
    }

    #[tracing::instrument(name = "operation", skip_all, fields(verb = "set_role", actor = %actor, account = %name))]
    pub async fn set_role(&self, actor: &Actor, name: &str, role: Role) -> Result<AccountView> {
        actor.require(Role::Admin, "managing accounts")?;
        accounts::set_role(&self.plant().store, actor.name(), name, role, now_ms()).await?;
        self.account(name).await
    }

    /// A new password; the account's sessions end.
    #[tracing::instrument(name = "operation", skip_all, fields(verb = "set_password", actor = %actor, account = %name))]
    pub async fn set_password(
        &self,
        actor: &Actor,
        name: &str,
        password: &str,
    ) -> Result<AccountView> {
        actor.require(Role::Admin, "managing accounts")?;
        let hash = hash_password(password).await?;
        accounts::set_password(&self.plant().store, actor.name(), name, hash, now_ms()).await?;
        self.account(name).await
    }

    #[tracing::instrument(name = "operation", skip_all, fields(verb = "disable_account", actor = %actor, account = %name))]
    pub async fn disable_account(&self, actor: &Actor, name: &str) -> Result<AccountView> {
        actor.require(Role::Admin, "managing accounts")?;
        accounts::disable(&self.plant().store, actor.name(), name, now_ms()).await?;
        self.account(name).await
    }

    /// A new API token for `account`: the token itself, to show once (the store keeps its
    /// digest).
    #[tracing::instrument(name = "operation", skip_all, fields(verb = "create_token", actor = %actor, account = %account))]
    pub async fn create_token(&self, actor: &Actor, account: &str, label: &str) -> Result<String> {
        actor.require(Role::Admin, "managing accounts")?;
        let (_, token) =
            accounts::create_token(&self.plant().store, actor.name(), account, label, now_ms())
                .await?;
        Ok(token)
    }

    #[tracing::instrument(name = "operation", skip_all, fields(verb = "revoke_token", actor = %actor, token = token_id))]
    pub async fn revoke_token(&self, actor: &Actor, token_id: i64) -> Result<()> {
        actor.require(Role::Admin, "managing accounts")?;
        accounts::revoke_token(&self.plant().store, actor.name(), token_id, now_ms()).await?;
        Ok(())
    }

    async fn account(&self, name: &str) -> Result<AccountView> {
        accounts::list(&self.plant().store)
            .await?
            .into_iter()
            .find(|a| a.name == name)
            .ok_or_else(|| PlantError::NotFound(format!("account '{name}'")).into())
    }
}

/// The password's argon2id hash, made off the async threads (it is slow on purpose); a
/// password that is too short or too long is a 422 on `password`.
pub async fn hash_password(password: &str) -> Result<String> {
    secrets::check_password(password).map_err(|e| invalid("password", e.to_string()))?;
    let password = password.to_string();
    tokio::task::spawn_blocking(move || secrets::hash_password(&password))
        .await
        .unwrap_or_else(|panicked| std::panic::resume_unwind(panicked.into_panic()))
        .map_err(|e| invalid("password", e.to_string()).into())
}
