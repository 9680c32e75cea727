//! Orders: the plant's list (`/orders`, filtered by state and maker, with progress, good and
//! scrap, ETA against due date, and the plan as a Gantt chart), a maker's own (`/my/orders`),
//! and one order (`/orders/{id}`: per-step progress, its runs and units, scrap a good unit or
//! cancel the order with a reason, the Gantt with its runs highlighted). A maker reaches only
//! their own orders: another maker's is not found, as in the API.

use std::collections::BTreeMap;

use askama::Template;
use axum::Router;
use axum::extract::{Form, Path, Query};
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;

use super::at_least;
use super::gantt::{GanttWords, gantt_svg, legend, parse_ms};
use super::i18n::Catalog;
use super::layout::{Chrome, Ctx};
use super::render::{Flash, PanelError, checked_reason, html};
use crate::auth::Role;
use crate::ops::Operations;
use crate::plant::OrderState;
use crate::plant::views::{JobView, OrderView, StepView, UnitView};

pub fn routes(ops: &Operations) -> Router<Operations> {
    let staff = Router::new().route("/orders", get(list));
    let makers = Router::new()
        .route("/my/orders", get(my_orders))
        .route("/orders/{id}", get(detail))
        .route("/orders/{id}/cancel", post(cancel))
        .route("/orders/{id}/units/{unit}/scrap", post(scrap));
    Router::new()
        .merge(at_least(Role::Operator, staff, ops))
        .merge(at_least(Role::Maker, makers, ops))
}

/// An order as a row of the list: its view, how far it is, and whether it runs late.
pub struct OrderRow {
    pub order: OrderView,
    /// Good units of the quantity, in percent.
    pub percent: i64,
    /// Expected to end after its due date.
    pub late: bool,
}

impl OrderRow {
    pub fn of(order: OrderView) -> OrderRow {
        let percent = (order.good * 100)
            .checked_div(order.quantity)
            .unwrap_or(0)
            .clamp(0, 100);
        let late = match (
            order.eta.as_deref().and_then(parse_ms),
            parse_ms(&order.due),
        ) {
            (Some(eta), Some(due)) => eta > due,
            _ => false,
        };
        OrderRow {
            order,
            percent,
            late,
        }
    }

    pub fn state_key(&self) -> String {
        format!("order_state.{}", self.order.state)
    }
}

/// A date-time as the panel shows it: `2030-01-01 10:00` (UTC).
pub fn when(rfc3339: &str) -> String {
    rfc3339
        .get(..16)
        .map_or_else(|| rfc3339.to_string(), |s| s.replace('T', " "))
}

#[derive(Deserialize, Default)]
struct ListQuery {
    #[serde(default)]
    state: String,
    #[serde(default)]
    maker: String,
}

#[derive(Template)]
#[template(path = "orders.html")]
struct OrdersPage<'a> {
    t: &'a Catalog,
    chrome: Chrome,
    rows: Vec<OrderRow>,
    states: Vec<&'static str>,
    state: String,
    makers: Vec<String>,
    maker: String,
    /// The plan (staff only).
    gantt: Option<Chart>,
    /// `/orders` shows the whole plant, `/my/orders` a maker's own.
    mine: bool,
}

async fn list(ctx: Ctx, Query(query): Query<ListQuery>) -> Response {
    ctx.answer(list_html(&ctx, query, false).await)
}

async fn my_orders(ctx: Ctx, Query(query): Query<ListQuery>) -> Response {
    ctx.answer(list_html(&ctx, query, true).await)
}

async fn list_html(ctx: &Ctx, query: ListQuery, mine: bool) -> Result<String, PanelError> {
    let state = query.state.parse::<OrderState>().ok();
    let every = ctx.ops.orders(&ctx.caller.actor(), None, None).await?;
    let mut makers: Vec<String> = every.iter().map(|o| o.maker.clone()).collect();
    makers.sort();
    makers.dedup();
    let maker = if mine {
        Some(ctx.caller.name.as_str())
    } else {
        Some(query.maker.as_str()).filter(|m| !m.is_empty())
    };
    let rows: Vec<OrderRow> = every
        .into_iter()
        .filter(|o| state.is_none_or(|s| o.state == s))
        .filter(|o| maker.is_none_or(|m| o.maker == m))
        .rev()
        .map(OrderRow::of)
        .collect();
    let gantt = if ctx.caller.role.includes(Role::Operator) && !mine {
        plan_chart(ctx, &rows, None).await?
    } else {
        None
    };
    let (title, section) = if mine {
        ("orders.my_title", "/my/orders")
    } else {
        ("orders.title", "/orders")
    };
    html(&OrdersPage {
        t: ctx.t,
        chrome: ctx.chrome(title, section),
        rows,
        states: OrderState::ALL.iter().map(|s| s.as_str()).collect(),
        state: state.map(|s| s.as_str().to_string()).unwrap_or_default(),
        makers,
        maker: query.maker,
        gantt,
        mine,
    })
}

/// The plan as a Gantt chart, with the due dates of `orders` and a legend of the orders'
/// colours: over every machine, or with `highlight`, over the machines that order's runs are
/// on (none when the plan holds no run of it).
pub struct Chart {
    pub svg: String,
    pub legend: Vec<(String, &'static str)>,
}

async fn plan_chart(
    ctx: &Ctx,
    orders: &[OrderRow],
    highlight: Option<&str>,
) -> Result<Option<Chart>, PanelError> {
    let plan = ctx.ops.plan(&ctx.caller.actor()).await?;
    if highlight.is_some_and(|order| !plan.rows.iter().any(|r| r.order_id == order)) {
        return Ok(None);
    }
    let machines = ctx.ops.plant().config.machine_ids();
    let due: BTreeMap<String, i64> = orders
        .iter()
        .filter(|row| row.order.state.is_active())
        .filter_map(|row| Some((row.order.id.clone(), parse_ms(&row.order.due)?)))
        .collect();
    let t = ctx.t;
    let svg = gantt_svg(
        &plan,
        &machines,
        &due,
        // The plan lives in plant time.
        ctx.ops.plant().clock.now(),
        highlight,
        &GanttWords {
            title: t.get("gantt.title"),
            now: t.get("gantt.now"),
            due: t.get("gantt.due"),
            setup: t.get("gantt.setup"),
            on_machine: t.get("gantt.on_machine"),
            operator: t.get("gantt.operator"),
            load: t.get("gantt.load"),
            unload: t.get("gantt.unload"),
            maintenance: t.get("gantt.maintenance"),
        },
    );
    Ok(Some(Chart {
        svg,
        legend: if highlight.is_some() {
            Vec::new()
        } else {
            legend(&plan)
        },
    }))
}

/// One step's progress on the order page.
pub struct StepProgress {
    pub step: StepView,
    pub percent: i64,
}

#[derive(Template)]
#[template(path = "order.html")]
struct OrderPage<'a> {
    t: &'a Catalog,
    chrome: Chrome,
    /// The greeting after a submission, in the flash area.
    flash: String,
    body: OrderBody<'a>,
}

#[derive(Deserialize)]
struct DetailQuery {
    /// Set by the submit page when it sends the browser here.
    submitted: Option<String>,
    /// Only the units of this step.
    #[serde(default)]
    step: String,
}

/// The most units the order page lists at once (the newest); a large order's page stays light,
/// and a step filter reaches the rest.
pub const UNITS_SHOWN: usize = 300;

/// What an action on the order re-renders: everything below the title.
#[derive(Template)]
#[template(path = "order_body.html")]
struct OrderBody<'a> {
    t: &'a Catalog,
    row: OrderRow,
    steps: Vec<StepProgress>,
    runs: Vec<JobView>,
    /// The units shown (of `step` if set, the newest [`UNITS_SHOWN`]) and how many there are.
    units: Vec<UnitView>,
    units_total: usize,
    step: String,
    gantt: Option<Chart>,
    staff: bool,
    cancellable: bool,
}

async fn detail(ctx: Ctx, Path(id): Path<String>, Query(query): Query<DetailQuery>) -> Response {
    let result = async {
        let body = order_body(&ctx, &id, &query.step).await?;
        let flash = match query.submitted {
            Some(_) => html(&Flash {
                t: ctx.t,
                tone: "ok",
                headline: ctx.t.get("orders.submitted").to_string(),
                detail: id.clone(),
                oob: false,
            })?,
            None => String::new(),
        };
        html(&OrderPage {
            t: ctx.t,
            chrome: ctx.chrome("orders.order_title", section(&ctx)),
            flash,
            body,
        })
    }
    .await;
    ctx.answer(result)
}

/// The nav entry an order page sits under: the plant's orders, or a maker's own.
fn section(ctx: &Ctx) -> &'static str {
    if ctx.caller.role.includes(Role::Operator) {
        "/orders"
    } else {
        "/my/orders"
    }
}

async fn order_body<'a>(ctx: &'a Ctx, id: &str, step: &str) -> Result<OrderBody<'a>, PanelError> {
    let actor = ctx.caller.actor();
    let order = ctx.ops.order(&actor, id).await?;
    let mut units = ctx.ops.units(&actor, id).await?;
    if !step.is_empty() {
        units.retain(|u| u.step == step);
    }
    let units_total = units.len();
    let units = units.split_off(units_total.saturating_sub(UNITS_SHOWN));
    let staff = ctx.caller.role.includes(Role::Operator);
    let quantity = order.quantity;
    let steps = order
        .steps
        .iter()
        .map(|step| StepProgress {
            percent: (step.good * 100)
                .checked_div(quantity)
                .unwrap_or(0)
                .clamp(0, 100),
            step: step.clone(),
        })
        .collect();
    // A maker withdraws an order only while it is submitted (the operation says so too).
    let cancellable = order.state == OrderState::Submitted || (staff && order.state.is_active());
    let row = OrderRow::of(order);
    let (runs, gantt) = if staff {
        let runs = ctx.ops.jobs(&actor, Some(id), None, None).await?;
        let gantt = plan_chart(ctx, std::slice::from_ref(&row), Some(id)).await?;
        (runs, gantt)
    } else {
        (Vec::new(), None)
    };
    Ok(OrderBody {
        t: ctx.t,
        row,
        steps,
        runs,
        units,
        units_total,
        step: step.to_string(),
        gantt,
        staff,
        cancellable,
    })
}

#[derive(Deserialize)]
struct ReasonForm {
    #[serde(default)]
    reason: String,
}

async fn cancel(ctx: Ctx, Path(id): Path<String>, Form(form): Form<ReasonForm>) -> Response {
    let result = async {
        let reason = checked_reason(&form.reason)?;
        ctx.ops.cancel(&ctx.caller.actor(), &id, reason).await?;
        html(&order_body(&ctx, &id, "").await?)
    }
    .await;
    match result {
        Ok(body) => ctx.done(body, "orders.cancelled", id),
        Err(e) => ctx.answer(Err(e)),
    }
}

async fn scrap(
    ctx: Ctx,
    Path((id, unit)): Path<(String, i64)>,
    Form(form): Form<ReasonForm>,
) -> Response {
    let result = async {
        let reason = checked_reason(&form.reason)?;
        let actor = ctx.caller.actor();
        // The unit must be of the order in the address, which this caller may see.
        let units = ctx.ops.units(&actor, &id).await?;
        if !units.iter().any(|u| u.id == unit) {
            return Err(PanelError::Op(
                crate::plant::PlantError::NotFound(format!("unit {unit} of order '{id}'")).into(),
            ));
        }
        ctx.ops.scrap_unit(&actor, unit, reason).await?;
        html(&order_body(&ctx, &id, "").await?)
    }
    .await;
    match result {
        Ok(body) => ctx.done(body, "orders.scrapped_done", format!("#{unit}")),
        Err(e) => ctx.answer(Err(e)),
    }
}
