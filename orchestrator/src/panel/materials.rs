//! Stock (`/materials`): every account with on hand, reserved, available, reorder level,
//! owner, origin and its lots, low stock highlighted; an operator restocks (amount, lot) or
//! adjusts (a signed amount with a reason). A maker sees their own accounts, read only
//! (`/my/materials`).

use askama::Template;
use axum::Router;
use axum::extract::{Form, Path};
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;

use super::at_least;
use super::i18n::Catalog;
use super::layout::{Chrome, Ctx};
use super::orders::when;
use super::render::{PanelError, checked_reason, html};
use crate::amount::Amount;
use crate::auth::Role;
use crate::config::Origin;
use crate::ops::Operations;
use crate::plant::lots::LotView;
use crate::plant::views::MaterialView;

pub fn routes(ops: &Operations) -> Router<Operations> {
    let staff = Router::new()
        .route("/materials", get(page))
        .route("/materials/{id}/restock", post(restock))
        .route("/materials/{id}/adjust", post(adjust));
    let makers = Router::new().route("/my/materials", get(my_page));
    Router::new()
        .merge(at_least(Role::Operator, staff, ops))
        .merge(at_least(Role::Maker, makers, ops))
}

/// The origins a lot may have, as the API spells them.
pub const ORIGINS: [&str; 3] = ["virgin", "recycled", "local"];

/// One account with its lots.
pub struct Account {
    pub m: MaterialView,
    pub lots: Vec<LotView>,
}

impl Account {
    /// Available of on hand, in percent, for the stock bar.
    pub fn percent_available(&self) -> i64 {
        (self.m.available.0 * 100)
            .checked_div(self.m.on_hand.0)
            .unwrap_or(0)
            .clamp(0, 100)
    }

    pub fn origin_key(&self) -> String {
        format!("origin.{}", self.m.origin)
    }

    pub fn received(lot: &LotView) -> String {
        when(&lot.received)
    }
}

#[derive(Template)]
#[template(path = "materials.html")]
struct MaterialsPage<'a> {
    t: &'a Catalog,
    chrome: Chrome,
    accounts: Vec<Account>,
    low: usize,
    /// Restock and adjust forms (operators); a maker's page is read only.
    editable: bool,
}

/// One account's row, what restock and adjust answer with.
#[derive(Template)]
#[template(path = "material_row.html")]
struct MaterialRow<'a> {
    t: &'a Catalog,
    a: Account,
    editable: bool,
}

async fn page(ctx: Ctx) -> Response {
    ctx.answer(page_html(&ctx, true).await)
}

async fn my_page(ctx: Ctx) -> Response {
    ctx.answer(page_html(&ctx, false).await)
}

async fn accounts(ctx: &Ctx) -> Result<Vec<Account>, PanelError> {
    let materials = ctx.ops.materials(&ctx.caller.actor()).await?;
    let lots = ctx.ops.lots(&ctx.caller.actor()).await?;
    Ok(materials
        .into_iter()
        .map(|m| Account {
            lots: lots
                .iter()
                .filter(|lot| lot.account == m.id)
                .cloned()
                .collect(),
            m,
        })
        .collect())
}

async fn page_html(ctx: &Ctx, staff_page: bool) -> Result<String, PanelError> {
    let accounts = accounts(ctx).await?;
    let (title, section) = if staff_page {
        ("materials.title", "/materials")
    } else {
        ("materials.my_title", "/my/materials")
    };
    html(&MaterialsPage {
        t: ctx.t,
        chrome: ctx.chrome(title, section),
        low: accounts.iter().filter(|a| a.m.below_reorder_level).count(),
        accounts,
        editable: staff_page,
    })
}

/// An amount typed into a form: a decimal with at most three places, signed if `signed`.
fn amount(text: &str, signed: bool) -> Result<Amount, PanelError> {
    let invalid = |message| PanelError::Invalid {
        field: "materials.amount",
        message,
    };
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| invalid("materials.not_an_amount"))?;
    if !signed && value <= 0.0 {
        return Err(invalid("materials.must_be_positive"));
    }
    Amount::from_decimal(value).map_err(|_| invalid("materials.bad_amount"))
}

async fn row(ctx: &Ctx, id: &str) -> Result<String, PanelError> {
    let account = accounts(ctx)
        .await?
        .into_iter()
        .find(|a| a.m.id == id)
        .ok_or_else(|| {
            PanelError::Op(
                crate::plant::PlantError::NotFound(format!("stock account '{id}'")).into(),
            )
        })?;
    html(&MaterialRow {
        t: ctx.t,
        a: account,
        editable: true,
    })
}

#[derive(Deserialize)]
struct RestockForm {
    #[serde(default)]
    amount: String,
    #[serde(default)]
    lot: String,
    /// Empty: the account's own origin.
    #[serde(default)]
    origin: String,
}

/// The origin chosen in the form; empty is the account's.
fn origin(text: &str) -> Result<Option<Origin>, PanelError> {
    match text {
        "" => Ok(None),
        text => serde_json::from_value(serde_json::Value::String(text.to_string()))
            .map(Some)
            .map_err(|_| PanelError::Invalid {
                field: "materials.origin",
                message: "materials.unknown_origin",
            }),
    }
}

async fn restock(ctx: Ctx, Path(id): Path<String>, Form(form): Form<RestockForm>) -> Response {
    let result = async {
        let amount = amount(&form.amount, false)?;
        let lot = Some(form.lot.trim().to_string()).filter(|lot| !lot.is_empty());
        let origin = origin(&form.origin)?;
        ctx.ops
            .restock(&ctx.caller.actor(), &id, amount, lot, origin)
            .await?;
        row(&ctx, &id).await
    }
    .await;
    match result {
        Ok(row) => ctx.done(row, "materials.restocked", id),
        Err(e) => ctx.answer(Err(e)),
    }
}

#[derive(Deserialize)]
struct AdjustForm {
    #[serde(default)]
    delta: String,
    #[serde(default)]
    reason: String,
}

async fn adjust(ctx: Ctx, Path(id): Path<String>, Form(form): Form<AdjustForm>) -> Response {
    let result = async {
        let delta = amount(&form.delta, true)?;
        let reason = checked_reason(&form.reason)?;
        ctx.ops
            .adjust(&ctx.caller.actor(), &id, delta, reason)
            .await?;
        row(&ctx, &id).await
    }
    .await;
    match result {
        Ok(row) => ctx.done(row, "materials.adjusted", id),
        Err(e) => ctx.answer(Err(e)),
    }
}
