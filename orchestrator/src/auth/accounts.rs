//! The accounts, their API tokens, in the store: each change with its event (who did it is
//! the writer's actor). Who *may* change accounts is checked above this, in `ops/accounts.rs`
//! (the API and the panel) — or is whoever can open the database (`microfab user`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Role;
use super::secrets::{self, TOKEN_PREFIX};
use crate::plant::{PlantError, Result, invalid};
use crate::store::{Event, Store, Writer};

/// Names the plant itself writes in the event log's `actor` column; no account may take one.
pub const RESERVED_NAMES: &[&str] = &[
    "demo",
    "demo-operator",
    "dispatcher",
    "local",
    "machine",
    "system",
];

/// The account `MICROFAB_BOOTSTRAP_TOKEN` signs in as.
pub const BOOTSTRAP_ACCOUNT: &str = "bootstrap";

/// A label of a token is at most this long.
pub const MAX_TOKEN_LABEL_CHARS: usize = 200;

/// How often a token's `last_used_ms` is written at most: every request would make every
/// read a write.
const LAST_USED_RESOLUTION_MS: i64 = 60_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AccountView {
    pub name: String,
    pub role: Role,
    /// Whether the account can sign in with a password (the bootstrap admin has tokens only).
    pub has_password: bool,
    pub created_ms: i64,
    pub disabled: bool,
    pub tokens: Vec<TokenView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenView {
    pub id: i64,
    pub label: String,
    pub created_ms: i64,
    pub last_used_ms: Option<i64>,
    pub revoked: bool,
}

/// Who signed in: an account's name and role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedIn {
    pub name: String,
    pub role: Role,
}

/// What a login checks: the account's role, password hash and whether it is disabled.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct Credentials {
    pub role: String,
    pub password_hash: Option<String>,
    pub disabled_ms: Option<i64>,
}

/// An account name: 1 to 64 of `a-z 0-9 . _ -`, starting with a letter or digit (it is a
/// maker's name in specs and URLs, and the actor in the event log), not one the plant uses.
pub fn check_name(name: &str) -> Result<()> {
    let well_formed = (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c));
    if !well_formed {
        return Err(invalid(
            "name",
            format!(
                "'{name}' is not an account name: 1 to 64 of a-z, 0-9, '.', '_', '-', starting with a letter or digit"
            ),
        ));
    }
    if RESERVED_NAMES.contains(&name) {
        return Err(invalid(
            "name",
            format!("'{name}' is a name the plant itself uses in the event log"),
        ));
    }
    Ok(())
}

pub(crate) fn parse_role(text: &str) -> Result<Role> {
    text.parse::<Role>().map_err(|e| {
        PlantError::Store(crate::store::StoreError::Database(sqlx::Error::Decode(
            e.into(),
        )))
    })
}

async fn exists(w: &mut Writer<'_>, name: &str) -> Result<bool> {
    Ok(
        sqlx::query_scalar::<_, String>("SELECT name FROM accounts WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *w.tx)
            .await?
            .is_some(),
    )
}

async fn must_exist(w: &mut Writer<'_>, name: &str) -> Result<()> {
    if exists(w, name).await? {
        Ok(())
    } else {
        Err(PlantError::NotFound(format!("account '{name}'")))
    }
}

/// A new account with `role`, signing in with the password whose hash is `password_hash` (or
/// with tokens only, when `None`).
pub async fn add(
    store: &Store,
    actor: &str,
    name: &str,
    role: Role,
    password_hash: Option<String>,
    at_ms: i64,
) -> Result<()> {
    check_name(name)?;
    let mut w = store.writer(actor, at_ms).await?;
    if exists(&mut w, name).await? {
        return Err(PlantError::Conflict(format!(
            "account '{name}' exists already"
        )));
    }
    sqlx::query(
        "INSERT INTO accounts (name, role, password_hash, created_ms, disabled_ms) VALUES ($1, $2, $3, $4, NULL)",
    )
    .bind(name)
    .bind(role.as_str())
    .bind(password_hash)
    .bind(at_ms)
    .execute(&mut *w.tx)
    .await?;
    w.emit(Event::AccountAdded {
        account: name.to_string(),
        role: role.as_str().to_string(),
    })
    .await?;
    w.commit().await?;
    Ok(())
}

pub async fn set_role(
    store: &Store,
    actor: &str,
    name: &str,
    role: Role,
    at_ms: i64,
) -> Result<()> {
    let mut w = store.writer(actor, at_ms).await?;
    must_exist(&mut w, name).await?;
    sqlx::query("UPDATE accounts SET role = $1 WHERE name = $2")
        .bind(role.as_str())
        .bind(name)
        .execute(&mut *w.tx)
        .await?;
    end_sessions(&mut w, name).await?;
    w.emit(Event::AccountRoleChanged {
        account: name.to_string(),
        role: role.as_str().to_string(),
    })
    .await?;
    w.commit().await?;
    Ok(())
}

/// A new password (as its hash); the account's sessions end, its tokens stay.
pub async fn set_password(
    store: &Store,
    actor: &str,
    name: &str,
    password_hash: String,
    at_ms: i64,
) -> Result<()> {
    let mut w = store.writer(actor, at_ms).await?;
    must_exist(&mut w, name).await?;
    sqlx::query("UPDATE accounts SET password_hash = $1 WHERE name = $2")
        .bind(password_hash)
        .bind(name)
        .execute(&mut *w.tx)
        .await?;
    end_sessions(&mut w, name).await?;
    w.emit(Event::AccountPasswordSet {
        account: name.to_string(),
    })
    .await?;
    w.commit().await?;
    Ok(())
}

/// The account may no longer sign in: its sessions end and its tokens stop working.
pub async fn disable(store: &Store, actor: &str, name: &str, at_ms: i64) -> Result<()> {
    let mut w = store.writer(actor, at_ms).await?;
    must_exist(&mut w, name).await?;
    sqlx::query("UPDATE accounts SET disabled_ms = $1 WHERE name = $2 AND disabled_ms IS NULL")
        .bind(at_ms)
        .bind(name)
        .execute(&mut *w.tx)
        .await?;
    end_sessions(&mut w, name).await?;
    w.emit(Event::AccountDisabled {
        account: name.to_string(),
    })
    .await?;
    w.commit().await?;
    Ok(())
}

async fn end_sessions(w: &mut Writer<'_>, name: &str) -> Result<()> {
    sqlx::query("DELETE FROM sessions WHERE account = $1")
        .bind(name)
        .execute(&mut *w.tx)
        .await?;
    Ok(())
}

/// A new API token for `account`, labelled: returns its id and the token (shown once; the
/// store keeps its digest).
pub async fn create_token(
    store: &Store,
    actor: &str,
    account: &str,
    label: &str,
    at_ms: i64,
) -> Result<(i64, String)> {
    let token = secrets::new_api_token();
    let id = insert_token(
        store,
        actor,
        account,
        label,
        &secrets::digest(&token),
        at_ms,
    )
    .await?;
    Ok((id, token))
}

async fn insert_token(
    store: &Store,
    actor: &str,
    account: &str,
    label: &str,
    token_sha256: &str,
    at_ms: i64,
) -> Result<i64> {
    if label.trim().is_empty() || label.chars().count() > MAX_TOKEN_LABEL_CHARS {
        return Err(invalid(
            "label",
            format!("a token's label is 1 to {MAX_TOKEN_LABEL_CHARS} characters, not only spaces"),
        ));
    }
    let mut w = store.writer(actor, at_ms).await?;
    must_exist(&mut w, account).await?;
    let id: i64 =
        sqlx::query_scalar("SELECT CAST(COALESCE(MAX(id), 0) + 1 AS BIGINT) FROM api_tokens")
            .fetch_one(&mut *w.tx)
            .await?;
    sqlx::query(
        "INSERT INTO api_tokens (id, token_sha256, account, label, created_ms, last_used_ms, revoked_ms) \
         VALUES ($1, $2, $3, $4, $5, NULL, NULL)",
    )
    .bind(id)
    .bind(token_sha256)
    .bind(account)
    .bind(label)
    .bind(at_ms)
    .execute(&mut *w.tx)
    .await?;
    w.emit(Event::ApiTokenCreated {
        account: account.to_string(),
        token_id: id,
        label: label.to_string(),
    })
    .await?;
    w.commit().await?;
    Ok(id)
}

/// The token no longer works. Revoking one already revoked changes nothing.
pub async fn revoke_token(store: &Store, actor: &str, token_id: i64, at_ms: i64) -> Result<()> {
    let mut w = store.writer(actor, at_ms).await?;
    let row: Option<(String, Option<i64>)> =
        sqlx::query_as("SELECT account, revoked_ms FROM api_tokens WHERE id = $1")
            .bind(token_id)
            .fetch_optional(&mut *w.tx)
            .await?;
    let Some((account, revoked)) = row else {
        return Err(PlantError::NotFound(format!("API token {token_id}")));
    };
    if revoked.is_some() {
        return Ok(());
    }
    sqlx::query("UPDATE api_tokens SET revoked_ms = $1 WHERE id = $2")
        .bind(at_ms)
        .bind(token_id)
        .execute(&mut *w.tx)
        .await?;
    w.emit(Event::ApiTokenRevoked { account, token_id }).await?;
    w.commit().await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct AccountRow {
    name: String,
    role: String,
    has_password: i64,
    created_ms: i64,
    disabled_ms: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: i64,
    account: String,
    label: String,
    created_ms: i64,
    last_used_ms: Option<i64>,
    revoked_ms: Option<i64>,
}

/// Every account with its tokens, by name.
pub async fn list(store: &Store) -> Result<Vec<AccountView>> {
    let accounts: Vec<AccountRow> = sqlx::query_as(
        "SELECT name, role, CAST(CASE WHEN password_hash IS NULL THEN 0 ELSE 1 END AS BIGINT) AS has_password, \
         created_ms, disabled_ms FROM accounts ORDER BY name",
    )
    .fetch_all(&store.pool)
    .await?;
    let tokens: Vec<TokenRow> = sqlx::query_as(
        "SELECT id, account, label, created_ms, last_used_ms, revoked_ms FROM api_tokens ORDER BY id",
    )
    .fetch_all(&store.pool)
    .await?;
    accounts
        .into_iter()
        .map(|a| {
            Ok(AccountView {
                role: parse_role(&a.role)?,
                has_password: a.has_password != 0,
                created_ms: a.created_ms,
                disabled: a.disabled_ms.is_some(),
                tokens: tokens
                    .iter()
                    .filter(|t| t.account == a.name)
                    .map(|t| TokenView {
                        id: t.id,
                        label: t.label.clone(),
                        created_ms: t.created_ms,
                        last_used_ms: t.last_used_ms,
                        revoked: t.revoked_ms.is_some(),
                    })
                    .collect(),
                name: a.name,
            })
        })
        .collect()
}

/// What a login needs to know of the account `name`, if there is one.
pub(crate) async fn credentials(store: &Store, name: &str) -> Result<Option<Credentials>> {
    Ok(
        sqlx::query_as("SELECT role, password_hash, disabled_ms FROM accounts WHERE name = $1")
            .bind(name)
            .fetch_optional(&store.pool)
            .await?,
    )
}

/// The account an API token signs in as: a token that is ours, not revoked, of an account
/// that is not disabled.
pub async fn by_token(store: &Store, token: &str, now_ms: i64) -> Result<Option<SignedIn>> {
    if !token.starts_with(TOKEN_PREFIX) {
        return Ok(None);
    }
    let digest = secrets::digest(token);
    let row: Option<(i64, String, String, Option<i64>)> = sqlx::query_as(
        "SELECT t.id AS id, a.name AS name, a.role AS role, t.last_used_ms AS last_used_ms \
         FROM api_tokens t JOIN accounts a ON a.name = t.account \
         WHERE t.token_sha256 = $1 AND t.revoked_ms IS NULL AND a.disabled_ms IS NULL",
    )
    .bind(&digest)
    .fetch_optional(&store.pool)
    .await?;
    let Some((id, name, role, last_used)) = row else {
        return Ok(None);
    };
    if last_used.is_none_or(|at| now_ms - at >= LAST_USED_RESOLUTION_MS) {
        let mut w = store.writer(&name, now_ms).await?;
        sqlx::query("UPDATE api_tokens SET last_used_ms = $1 WHERE id = $2")
            .bind(now_ms)
            .bind(id)
            .execute(&mut *w.tx)
            .await?;
        w.commit().await?;
    }
    Ok(Some(SignedIn {
        name,
        role: parse_role(&role)?,
    }))
}

/// `MICROFAB_BOOTSTRAP_TOKEN`: the admin account [`BOOTSTRAP_ACCOUNT`] holds this token.
/// Idempotent across restarts; a token once revoked stays revoked.
pub async fn ensure_bootstrap(store: &Store, token: &str, at_ms: i64) -> Result<()> {
    const MIN_CHARS: usize = 32;
    if token.chars().count() < MIN_CHARS || !token.starts_with(TOKEN_PREFIX) {
        return Err(invalid(
            "MICROFAB_BOOTSTRAP_TOKEN",
            format!(
                "a bootstrap token starts with '{TOKEN_PREFIX}' and has at least {MIN_CHARS} characters (e.g. `mf_` followed by `openssl rand -hex 32`)"
            ),
        ));
    }
    let actor = crate::ops::Actor::Local.to_string();
    let known: Option<String> =
        sqlx::query_scalar("SELECT account FROM api_tokens WHERE token_sha256 = $1")
            .bind(secrets::digest(token))
            .fetch_optional(&store.pool)
            .await?;
    if let Some(account) = known {
        if account != BOOTSTRAP_ACCOUNT {
            return Err(invalid(
                "MICROFAB_BOOTSTRAP_TOKEN",
                format!("this token belongs to the account '{account}', not '{BOOTSTRAP_ACCOUNT}'"),
            ));
        }
        return Ok(());
    }
    if credentials(store, BOOTSTRAP_ACCOUNT).await?.is_none() {
        add(store, &actor, BOOTSTRAP_ACCOUNT, Role::Admin, None, at_ms).await?;
    }
    insert_token(
        store,
        &actor,
        BOOTSTRAP_ACCOUNT,
        "MICROFAB_BOOTSTRAP_TOKEN",
        &secrets::digest(token),
        at_ms,
    )
    .await?;
    Ok(())
}
