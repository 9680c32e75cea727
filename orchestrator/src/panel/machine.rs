//! A machine's page (`/machines/{id}`): its card (live), holds, counters, recent runs and its
//! serial console; and the operator's actions on a machine, which the fleet board's cards use
//! too. Every action answers with the machine's card and a message in the flash area.

use askama::Template;
use axum::Router;
use axum::extract::{Form, Path};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use microfab_drivers::OperatorAction;
use percent_encoding::percent_decode_str;
use serde::Deserialize;

use super::fleet::{CardHtml, Moment, cards, rfc3339_ms};
use super::i18n::Catalog;
use super::layout::{Chrome, Ctx};
use super::render::{PanelError, checked_reason, html};
use super::tasks::{HeldFor, kind_key};
use crate::machine_status::MachineStatus;
use crate::ops::{OpError, Operations};
use crate::plant::floor_views::{MachineRun, MachineTally};
use crate::plant::live_views::Console;
use crate::plant::views::MachineView;

/// Runs shown in a machine's history.
const HISTORY: i64 = 25;
/// Console lines shown (the newest).
const CONSOLE_LINES: usize = 200;

pub fn routes() -> Router<Operations> {
    Router::new()
        .route("/machines/{id}", get(page))
        .route("/machines/{id}/console", get(console))
        .route("/machines/{id}/pause", post(pause))
        .route("/machines/{id}/resume", post(resume))
        .route("/machines/{id}/abort", post(abort))
        .route("/machines/{id}/maintenance", post(maintenance))
        .route("/machines/{id}/operator", post(operator))
}

#[derive(Template)]
#[template(path = "machine.html")]
struct MachinePage<'a> {
    t: &'a Catalog,
    chrome: Chrome,
    machine: MachineView,
    card: String,
    live: Option<MachineStatus>,
    holds: Vec<Hold>,
    /// The operator tasks the machine waits on.
    tasks: Vec<MachineTask>,
    /// How long operator work has held it, in all.
    held_up: HeldFor,
    tally: MachineTally,
    runs: Vec<RunRow>,
    operator_actions: bool,
    has_console: bool,
}

struct Hold {
    kind_key: String,
    since: Option<Moment>,
    reason: String,
    job_id: Option<i64>,
    /// Where the run it holds is decided on: the interrupted runs or the tasks page.
    link: Option<String>,
}

/// The page where a hold on run `job` is acted on, for the holds that name a run.
fn hold_link(kind: &str, job: i64) -> Option<String> {
    match kind {
        "interrupted_run" => Some(format!("/interrupted#run-{job}")),
        "awaiting_load" => Some(format!("/tasks#task-load-{job}")),
        "awaiting_unload" => Some(format!("/tasks#task-unload-{job}")),
        _ => None,
    }
}

/// An operator task the machine waits on: its line on the page, linked to its card on
/// `/tasks`.
struct MachineTask {
    id: String,
    kind_key: String,
    job_id: Option<i64>,
    held: HeldFor,
}

/// A run of the machine's history, ready to show.
struct RunRow {
    run: MachineRun,
    state_key: String,
    started: Option<Moment>,
    ended: Option<Moment>,
}

async fn page(ctx: Ctx, Path(id): Path<String>) -> Response {
    ctx.answer(page_html(&ctx, &id).await)
}

async fn page_html(ctx: &Ctx, id: &str) -> Result<String, PanelError> {
    let live_machine = ctx.ops.machine(&ctx.caller.actor(), id).await?;
    let actor = ctx.caller.actor();
    let card = cards(&ctx.ops, ctx.t, &actor, Some(id)).await?.remove(0);
    let runs = ctx
        .ops
        .machine_runs(&actor, id, HISTORY)
        .await?
        .into_iter()
        .map(|run| RunRow {
            state_key: format!("job_state.{}", run.state),
            started: run.started_ms.map(Moment::at),
            ended: run.ended_ms.map(Moment::at),
            run,
        })
        .collect();
    let machine = live_machine.machine;
    let holds = machine
        .holds
        .iter()
        .map(|h| Hold {
            kind_key: format!("hold.{}", h.kind),
            since: h.since.as_deref().and_then(rfc3339_ms).map(Moment::at),
            reason: h.reason.clone().unwrap_or_default(),
            job_id: h.job_id,
            link: h.job_id.and_then(|job| hold_link(&h.kind, job)),
        })
        .collect();
    let tasks = ctx
        .ops
        .tasks(&actor)
        .await?
        .into_iter()
        .filter(|task| task.machine_id == id)
        .map(|task| MachineTask {
            kind_key: kind_key(task.kind.as_str()),
            held: HeldFor::of(ctx.t, task.held_up_ms),
            job_id: task.job_id,
            id: task.id,
        })
        .collect();
    let has_console = ctx.ops.console(&ctx.caller.actor(), id).await.is_ok();
    html(&MachinePage {
        t: ctx.t,
        chrome: ctx.chrome("machine.title", "/fleet"),
        card: html(&CardHtml { t: ctx.t, c: &card })?,
        holds,
        tasks,
        held_up: HeldFor::of(ctx.t, machine.held_up_ms),
        tally: ctx.ops.machine_tally(&actor, id).await?,
        runs,
        operator_actions: ctx
            .ops
            .driver_supports(id)
            .is_some_and(|s| s.operator_actions),
        has_console,
        live: live_machine.live,
        machine,
    })
}

#[derive(Template)]
#[template(path = "machine_console.html")]
struct ConsoleHtml<'a> {
    t: &'a Catalog,
    console: Console,
    /// Where the shown lines start in the driver's ring (older ones are left out).
    skipped: usize,
    temperatures: Vec<String>,
}

/// `GET /machines/{id}/console`: the console fragment (the page polls it while open).
async fn console(ctx: Ctx, Path(id): Path<String>) -> Response {
    ctx.answer(console_html(&ctx, &id).await)
}

async fn console_html(ctx: &Ctx, id: &str) -> Result<String, PanelError> {
    let mut console = ctx.ops.console(&ctx.caller.actor(), id).await?;
    let skipped = console.lines.len().saturating_sub(CONSOLE_LINES);
    console.lines.drain(..skipped);
    let temperatures = ctx
        .ops
        .status_channels()
        .get(id)
        .map(|s| {
            s.borrow()
                .temperatures
                .iter()
                .map(|r| {
                    let actual = format!("{:.1}", r.actual);
                    match r.target {
                        Some(target) => ctx.t.fill(
                            "console.reading_target",
                            &[
                                ("sensor", r.sensor.as_str()),
                                ("actual", &actual),
                                ("target", &format!("{target:.0}")),
                            ],
                        ),
                        None => ctx.t.fill(
                            "console.reading",
                            &[("sensor", r.sensor.as_str()), ("actual", &actual)],
                        ),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    html(&ConsoleHtml {
        t: ctx.t,
        console,
        skipped,
        temperatures,
    })
}

/// The machine's card after an action, with the action's message.
async fn after_action(
    ctx: &Ctx,
    id: &str,
    done: Result<MachineView, OpError>,
    message_key: &str,
) -> Response {
    let result = async {
        done?;
        let card = cards(&ctx.ops, ctx.t, &ctx.caller.actor(), Some(id))
            .await?
            .remove(0);
        html(&CardHtml { t: ctx.t, c: &card })
    }
    .await;
    match result {
        Ok(card) => ctx.done(card, message_key, String::new()),
        Err(e) => ctx.answer(Err(e)),
    }
}

async fn pause(ctx: Ctx, Path(id): Path<String>) -> Response {
    let done = ctx.ops.pause(&ctx.caller.actor(), &id).await;
    after_action(&ctx, &id, done, "machine.paused").await
}

async fn resume(ctx: Ctx, Path(id): Path<String>) -> Response {
    let done = ctx.ops.resume_machine(&ctx.caller.actor(), &id).await;
    after_action(&ctx, &id, done, "machine.resumed").await
}

async fn abort(ctx: Ctx, Path(id): Path<String>) -> Response {
    let done = ctx.ops.abort(&ctx.caller.actor(), &id).await;
    after_action(&ctx, &id, done, "machine.aborted").await
}

#[derive(Deserialize)]
struct MaintenanceForm {
    on: bool,
    #[serde(default)]
    reason: String,
}

/// Maintenance on (with the reason from the form, or from htmx's prompt) or off.
async fn maintenance(
    ctx: Ctx,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<MaintenanceForm>,
) -> Response {
    let reason = if form.reason.trim().is_empty() {
        prompt(&headers).unwrap_or_default()
    } else {
        form.reason
    };
    if let Err(e) = checked_reason(&reason) {
        return ctx.answer(Err(e));
    }
    let done = ctx
        .ops
        .maintenance(&ctx.caller.actor(), &id, form.on, &reason)
        .await;
    let message = if form.on {
        "machine.maintenance_on"
    } else {
        "machine.maintenance_off"
    };
    after_action(&ctx, &id, done, message).await
}

/// What the person typed into htmx's `hx-prompt` (percent-encoded by htmx when it is not
/// Latin-1, which a header cannot carry).
fn prompt(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("hx-prompt")?.to_str().ok()?;
    if headers
        .get("hx-prompt-uri-autoencoded")
        .is_some_and(|v| v == "true")
    {
        Some(percent_decode_str(value).decode_utf8_lossy().into_owned())
    } else {
        Some(value.to_string())
    }
}

#[derive(Deserialize)]
struct OperatorForm {
    action: OperatorAction,
}

async fn operator(ctx: Ctx, Path(id): Path<String>, Form(form): Form<OperatorForm>) -> Response {
    let done = ctx
        .ops
        .operator_action(&ctx.caller.actor(), &id, form.action)
        .await;
    after_action(&ctx, &id, done, "machine.operator_done").await
}
