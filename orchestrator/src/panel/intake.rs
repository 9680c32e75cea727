//! The intake queue (`/intake`): every submitted order with its pre-screen report folded out
//! (the spec, its programs, per step the machines that can do it with envelope fit and driver
//! acceptance, material needed against available, earliest completion against the due date).
//! An operator approves it, or rejects it with a reason: the same operations as the API.

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
use crate::auth::Role;
use crate::ops::Operations;
use crate::plant::OrderState;
use crate::plant::prescreen::OrderPrescreen;
use crate::plant::views::OrderView;

pub fn routes(ops: &Operations) -> Router<Operations> {
    let staff = Router::new()
        .route("/intake", get(page))
        .route("/intake/{id}/approve", post(approve))
        .route("/intake/{id}/reject", post(reject));
    at_least(Role::Operator, staff, ops)
}

/// A submitted order and its pre-screen now.
pub struct Submitted {
    pub order: OrderView,
    pub screen: OrderPrescreen,
}

impl Submitted {
    pub fn due(&self) -> String {
        when(&self.order.due)
    }

    pub fn earliest(&self) -> String {
        when(&self.screen.report.timing.earliest_completion)
    }

    /// Slack against the due date, in hours (negative: late), one decimal.
    pub fn slack_hours(&self) -> String {
        format!("{:.1}", self.screen.report.timing.slack_seconds / 3600.0)
    }

    pub fn critical_hours(&self) -> String {
        format!("{:.1}", self.screen.report.timing.critical_seconds / 3600.0)
    }
}

/// Millimetres as the report shows them: whole numbers, the axes joined by `×`.
pub fn mm(size: &[f64; 3]) -> String {
    format!("{:.0} × {:.0} × {:.0}", size[0], size[1], size[2])
}

/// Seconds as minutes, for run and setup times.
pub fn minutes(seconds: &f64) -> String {
    format!("{:.1}", seconds / 60.0)
}

#[derive(Template)]
#[template(path = "intake.html")]
struct IntakePage<'a> {
    t: &'a Catalog,
    chrome: Chrome,
    queue: Vec<Submitted>,
}

async fn page(ctx: Ctx) -> Response {
    ctx.answer(page_html(&ctx).await)
}

async fn page_html(ctx: &Ctx) -> Result<String, PanelError> {
    let actor = ctx.caller.actor();
    let orders = ctx
        .ops
        .plant()
        .orders(Some(OrderState::Submitted.as_str()), None)
        .await?;
    let mut queue = Vec::with_capacity(orders.len());
    for order in orders {
        let screen = ctx.ops.prescreen(&actor, &order.id).await?;
        queue.push(Submitted { order, screen });
    }
    html(&IntakePage {
        t: ctx.t,
        chrome: ctx.chrome("intake.title", "/intake"),
        queue,
    })
}

async fn approve(ctx: Ctx, Path(id): Path<String>) -> Response {
    match ctx.ops.approve(&ctx.caller.actor(), &id).await {
        Ok(order) => ctx.done(String::new(), "intake.approved", order.id),
        Err(e) => ctx.answer(Err(e.into())),
    }
}

#[derive(Deserialize)]
struct RejectForm {
    #[serde(default)]
    reason: String,
}

async fn reject(ctx: Ctx, Path(id): Path<String>, Form(form): Form<RejectForm>) -> Response {
    let result = async {
        let reason = checked_reason(&form.reason)?;
        Ok::<_, PanelError>(ctx.ops.reject(&ctx.caller.actor(), &id, reason).await?)
    }
    .await;
    match result {
        Ok(order) => ctx.done(String::new(), "intake.rejected", order.id),
        Err(e) => ctx.answer(Err(e)),
    }
}
