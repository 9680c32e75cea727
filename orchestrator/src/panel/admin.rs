//! An admin's pages. `/admin/users`: the accounts with their roles and API tokens; add one
//! (name, role, password), change a role, disable, make a token (shown once) or revoke one:
//! the account operations the CLI's `microfab user` uses too. `/admin/config`: the plant
//! config the server runs (machines with driver kinds and envelopes, stock accounts, the
//! pre-screen policy), read only, and whether the file on disk still checks.

use askama::Template;
use axum::Router;
use axum::extract::{Form, Path};
use axum::response::Response;
use axum::routing::{get, post};
use microfab_job_specs::Diagnostic;
use serde::Deserialize;

use super::at_least;
use super::i18n::Catalog;
use super::layout::{Chrome, Ctx};
use super::render::{PanelError, html};
use crate::auth::Role;
use crate::auth::accounts::AccountView;
use crate::config::{MachineConfig, MaterialConfig, PlantConfig};
use crate::ops::Operations;
use crate::store::format_ms;

pub fn routes(ops: &Operations) -> Router<Operations> {
    let admin = Router::new()
        .route("/admin/users", get(users).post(add_user))
        .route("/admin/users/{name}/role", post(set_role))
        .route("/admin/users/{name}/disable", post(disable))
        .route("/admin/users/{name}/tokens", post(create_token))
        .route("/admin/tokens/{id}/revoke", post(revoke_token))
        .route("/admin/config", get(config));
    at_least(Role::Admin, admin, ops)
}

pub fn when_ms(ms: &i64) -> String {
    super::orders::when(&format_ms(*ms))
}

#[derive(Template)]
#[template(path = "admin_users.html")]
struct UsersPage<'a> {
    t: &'a Catalog,
    chrome: Chrome,
    list: UserList<'a>,
}

/// The accounts table, what every action answers with; `token` is a new token to show once.
#[derive(Template)]
#[template(path = "admin_user_list.html")]
struct UserList<'a> {
    t: &'a Catalog,
    accounts: Vec<AccountView>,
    roles: [Role; 3],
    me: String,
    token: Option<(String, String)>,
}

async fn user_list<'a>(
    ctx: &'a Ctx,
    token: Option<(String, String)>,
) -> Result<UserList<'a>, PanelError> {
    Ok(UserList {
        t: ctx.t,
        accounts: ctx.ops.accounts(&ctx.caller.actor()).await?,
        roles: Role::ALL,
        me: ctx.caller.name.clone(),
        token,
    })
}

async fn users(ctx: Ctx) -> Response {
    let result = async {
        html(&UsersPage {
            t: ctx.t,
            chrome: ctx.chrome("admin.users_title", "/admin/users"),
            list: user_list(&ctx, None).await?,
        })
    }
    .await;
    ctx.answer(result)
}

fn role(text: &str) -> Result<Role, PanelError> {
    text.parse().map_err(|_| PanelError::Invalid {
        field: "admin.role",
        message: "admin.unknown_role",
    })
}

/// Answer an account action with the refreshed table and a message naming `who`.
async fn answer(ctx: &Ctx, done: Result<(), PanelError>, message: &str, who: String) -> Response {
    answer_with(ctx, done, message, who, None).await
}

async fn answer_with(
    ctx: &Ctx,
    done: Result<(), PanelError>,
    message: &str,
    who: String,
    token: Option<(String, String)>,
) -> Response {
    let list = match done {
        Ok(()) => user_list(ctx, token).await.and_then(|list| html(&list)),
        Err(e) => Err(e),
    };
    match list {
        Ok(list) => ctx.done(list, message, who),
        Err(e) => ctx.answer(Err(e)),
    }
}

#[derive(Deserialize)]
struct AddForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    password: String,
}

async fn add_user(ctx: Ctx, Form(form): Form<AddForm>) -> Response {
    let done = async {
        let role = role(&form.role)?;
        ctx.ops
            .add_account(&ctx.caller.actor(), form.name.trim(), role, &form.password)
            .await?;
        Ok(())
    }
    .await;
    answer(&ctx, done, "admin.added", form.name).await
}

#[derive(Deserialize)]
struct RoleForm {
    #[serde(default)]
    role: String,
}

async fn set_role(ctx: Ctx, Path(name): Path<String>, Form(form): Form<RoleForm>) -> Response {
    let done = async {
        let role = role(&form.role)?;
        ctx.ops.set_role(&ctx.caller.actor(), &name, role).await?;
        Ok(())
    }
    .await;
    answer(&ctx, done, "admin.role_changed", name).await
}

async fn disable(ctx: Ctx, Path(name): Path<String>) -> Response {
    let done = ctx
        .ops
        .disable_account(&ctx.caller.actor(), &name)
        .await
        .map(|_| ())
        .map_err(PanelError::from);
    answer(&ctx, done, "admin.disabled", name).await
}

#[derive(Deserialize)]
struct TokenForm {
    #[serde(default)]
    label: String,
}

async fn create_token(ctx: Ctx, Path(name): Path<String>, Form(form): Form<TokenForm>) -> Response {
    let made = ctx
        .ops
        .create_token(&ctx.caller.actor(), &name, form.label.trim())
        .await
        .map_err(PanelError::from);
    match made {
        Ok(token) => {
            answer_with(
                &ctx,
                Ok(()),
                "admin.token_made",
                name.clone(),
                Some((name, token)),
            )
            .await
        }
        Err(e) => ctx.answer(Err(e)),
    }
}

async fn revoke_token(ctx: Ctx, Path(id): Path<i64>) -> Response {
    let done = ctx
        .ops
        .revoke_token(&ctx.caller.actor(), id)
        .await
        .map_err(PanelError::from);
    answer(&ctx, done, "admin.token_revoked", format!("#{id}")).await
}

#[derive(Template)]
#[template(path = "admin_config.html")]
struct ConfigPage<'a> {
    t: &'a Catalog,
    chrome: Chrome,
    config: &'a PlantConfig,
    machines: Vec<&'a MachineConfig>,
    materials: Vec<&'a MaterialConfig>,
    /// The file the server was started from, and what checking it again finds (it may have
    /// been edited since); `None` when the config did not come from a file.
    file: Option<String>,
    problems: Vec<Diagnostic>,
}

async fn config(ctx: Ctx) -> Response {
    let config = &ctx.ops.plant().config;
    let file = (!config.path.as_os_str().is_empty()).then(|| config.path.display().to_string());
    let problems = match &file {
        Some(_) => match PlantConfig::load(&config.path) {
            Ok(_) => Vec::new(),
            Err(diagnostics) => diagnostics.0,
        },
        None => Vec::new(),
    };
    ctx.answer(html(&ConfigPage {
        t: ctx.t,
        chrome: ctx.chrome("admin.config_title", "/admin/users"),
        config,
        machines: config.machines.iter().map(|m| m.get_ref()).collect(),
        materials: config.materials.iter().map(|m| m.get_ref()).collect(),
        file,
        problems,
    }))
}
