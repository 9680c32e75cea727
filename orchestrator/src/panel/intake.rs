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
use crate::ops::{OpError, Operations};
use crate::plant::prescreen::{Flag, OrderPrescreen, StepCheck};
use crate::plant::views::OrderView;
use crate::plant::{OrderState, PlantError};

pub fn routes(ops: &Operations) -> Router<Operations> {
    let staff = Router::new()
        .route("/intake", get(page))
        .route("/intake/{id}/approve", post(approve))
        .route("/intake/{id}/reject", post(reject));
    at_least(Role::Operator, staff, ops)
}

/// A submitted order, its pre-screen now and what it flags, in the reader's words.
pub struct Submitted {
    pub order: OrderView,
    pub screen: OrderPrescreen,
    pub flags: Vec<String>,
}

/// A flag in the catalog's words.
pub fn worded(t: &Catalog, flag: &Flag) -> String {
    match flag {
        Flag::QuantityOutsidePolicy { quantity, min, max } => t.fill(
            "intake.flag_quantity",
            &[
                ("n", &quantity.to_string()),
                ("min", &min.to_string()),
                ("max", &max.to_string()),
            ],
        ),
        Flag::NoCapableMachine { step, capability } => t.fill(
            "intake.flag_no_machine",
            &[("step", step), ("capability", capability)],
        ),
        Flag::LargerThanEveryEnvelope {
            step,
            capability,
            size_mm,
        } => t.fill(
            "intake.flag_too_large",
            &[
                ("step", step),
                ("capability", capability),
                ("size", &mm(size_mm)),
            ],
        ),
        Flag::NoDriverAccepts {
            step,
            capability,
            refusals,
        } => t.fill(
            "intake.flag_refused",
            &[
                ("step", step),
                ("capability", capability),
                ("why", &refusals.join("; ")),
            ],
        ),
        Flag::MaterialShort {
            material,
            needed,
            available,
        } => t.fill(
            "intake.flag_material",
            &[
                ("material", material),
                ("needed", &needed.to_string()),
                ("available", &available.to_string()),
            ],
        ),
        Flag::DueUnreachable {
            due,
            critical_seconds,
        } => t.fill(
            "intake.flag_due",
            &[
                ("due", &when(due)),
                ("hours", &format!("{:.1}", critical_seconds / 3600.0)),
            ],
        ),
    }
}

impl Submitted {
    pub fn due(&self) -> String {
        when(&self.order.due)
    }

    pub fn earliest(&self) -> String {
        when(&self.screen.report.timing.earliest_completion)
    }

    /// Slack against the due date (negative: late).
    pub fn slack(&self, t: &Catalog) -> String {
        duration(t, self.screen.report.timing.slack_seconds)
    }

    pub fn critical(&self, t: &Catalog) -> String {
        duration(t, self.screen.report.timing.critical_seconds)
    }
}

/// A span of time in hours with one decimal, or in days past two days.
pub fn duration(t: &Catalog, seconds: f64) -> String {
    let hours = seconds / 3600.0;
    if hours.abs() >= 48.0 {
        t.fill("intake.days", &[("d", format!("{:.1}", hours / 24.0))])
    } else {
        t.fill("intake.hours", &[("h", format!("{hours:.1}"))])
    }
}

/// Every machine that can do the step fits its program and its driver accepts it: the report
/// names them on one line instead of a table.
pub fn all_clear(step: &StepCheck) -> bool {
    !step.machines.is_empty()
        && step
            .machines
            .iter()
            .all(|m| m.fits != Some(false) && m.driver_refusal.is_none())
}

pub fn machine_ids(step: &StepCheck) -> String {
    step.machines
        .iter()
        .map(|m| m.machine_id.as_str())
        .collect::<Vec<_>>()
        .join(", ")
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
    /// Orders whose stored spec no longer checks, with why: approve or reject them blind
    /// rather than lose the page.
    unscreened: Vec<(OrderView, String)>,
}

async fn page(ctx: Ctx) -> Response {
    ctx.answer(page_html(&ctx).await)
}

async fn page_html(ctx: &Ctx) -> Result<String, PanelError> {
    let actor = ctx.caller.actor();
    let orders = ctx
        .ops
        .orders(&actor, Some(OrderState::Submitted), None)
        .await?;
    let mut queue = Vec::with_capacity(orders.len());
    let mut unscreened = Vec::new();
    for order in orders {
        let screen = match ctx.ops.prescreen(&actor, &order.id).await {
            Ok(screen) => screen,
            Err(OpError::Plant(PlantError::Conflict(why))) => {
                unscreened.push((order, why));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let flags = screen
            .report
            .flags()
            .iter()
            .map(|flag| worded(ctx.t, flag))
            .collect();
        queue.push(Submitted {
            order,
            screen,
            flags,
        });
    }
    html(&IntakePage {
        t: ctx.t,
        chrome: ctx.chrome("intake.title", "/intake"),
        queue,
        unscreened,
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

#[cfg(test)]
mod tests {
    use super::duration;
    use crate::panel::Lang;

    #[test]
    fn a_duration_is_hours_up_to_two_days_then_days() {
        let t = Lang::En.catalog();
        assert_eq!(duration(t, 6.4 * 3600.0), "6.4 h");
        assert_eq!(duration(t, 47.9 * 3600.0), "47.9 h");
        assert_eq!(duration(t, 72.0 * 3600.0), "3.0 days");
        assert_eq!(duration(t, -96.0 * 3600.0), "-4.0 days");
    }
}
