//! The operators' tasks (`/tasks`): every load, setup, unload, manual run, interrupted run and
//! due maintenance the machines wait for, oldest first, as big cards for a tablet at the
//! machine. Each is done in one tap ("Loaded", "All good", "Done"); an unload with scrap in
//! two ("Scrap…" opens a count and reason chips on the card, then "Confirm"). The list follows
//! the event log (`/tasks/stream`): it is sent again whenever what it shows changed.

use std::convert::Infallible;
use std::time::Duration;

use askama::Template;
use axum::Router;
use axum::extract::{Form, Path};
use axum::response::Response;
use axum::response::sse::Event as SseEvent;
use axum::routing::{get, post};
use serde::Deserialize;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::ReceiverStream;

use super::fleet::Moment;
use super::i18n::Catalog;
use super::layout::{Chrome, Ctx};
use super::render::{PanelError, checked_reason, html, number, sse};
use crate::ops::{Actor, Operations};
use crate::plant::tasks::{Inspection, ScrapEntry, TaskKind, TaskView};
use crate::store::EventRecord;

/// The least time between two lists on one stream: a burst of events becomes one list.
const COALESCE: Duration = Duration::from_millis(250);
/// How often an open list is read again without an event, so held-up times stay true on a
/// page that is left open (the browser also counts them on between lists).
const REFRESH: Duration = Duration::from_secs(60);

/// The reasons offered as chips when an operator scraps pieces at unload (catalog keys), the
/// most common first; anything else is typed.
const SCRAP_REASONS: &[&str] = &[
    "tasks.reason_warped",
    "tasks.reason_scorched",
    "tasks.reason_incomplete",
    "tasks.reason_out_of_tolerance",
    "tasks.reason_damaged",
];

pub fn routes() -> Router<Operations> {
    Router::new()
        .route("/tasks", get(page))
        .route("/tasks/stream", get(stream))
        .route("/tasks/{job}/load", post(load))
        .route("/tasks/{job}/unload", post(unload))
        .route("/tasks/{job}/confirm", post(confirm))
        .route("/tasks/machines/{id}/maintained", post(maintained))
}

/// A time something has held a machine, in whole minutes: the text shown, and the
/// milliseconds the browser counts on from (`data-held-ms`, app.js). Whole minutes so that a
/// card rendered again a few seconds later is the same card.
pub struct HeldFor {
    pub ms: i64,
    pub text: String,
}

impl HeldFor {
    pub fn of(t: &Catalog, ms: i64) -> HeldFor {
        let minutes = ms.max(0) / 60_000;
        let text = if minutes < 60 {
            t.fill("tasks.minutes", &[("n", minutes.to_string())])
        } else {
            t.fill(
                "tasks.hours_minutes",
                &[
                    ("h", (minutes / 60).to_string()),
                    ("m", (minutes % 60).to_string()),
                ],
            )
        };
        HeldFor {
            ms: minutes * 60_000,
            text,
        }
    }
}

/// The catalog key of a task kind's name (`tasks.kind_unload`), from its name on the wire.
pub fn kind_key(kind: &str) -> String {
    format!("tasks.kind_{kind}")
}

/// One task, ready to show.
struct TaskCard {
    task: TaskView,
    /// Its kind as on the wire (`unload`): the card's class and `data-kind`.
    kind: &'static str,
    since: Moment,
    held: HeldFor,
    expected: HeldFor,
}

impl TaskCard {
    fn of(t: &Catalog, task: TaskView) -> TaskCard {
        TaskCard {
            kind: task.kind.as_str(),
            since: Moment::at(task.since_ms),
            held: HeldFor::of(t, task.held_up_ms),
            expected: HeldFor::of(t, (task.minutes * 60_000.0).round() as i64),
            task,
        }
    }

    fn kind_key(&self) -> String {
        kind_key(self.kind)
    }

    fn is_load(&self) -> bool {
        matches!(self.task.kind, TaskKind::Load | TaskKind::Setup)
    }

    fn is_unload(&self) -> bool {
        matches!(self.task.kind, TaskKind::Unload)
    }

    fn is_manual_run(&self) -> bool {
        matches!(self.task.kind, TaskKind::ManualRun)
    }

    fn is_maintenance(&self) -> bool {
        matches!(self.task.kind, TaskKind::Maintenance)
    }

    fn is_interrupted(&self) -> bool {
        matches!(self.task.kind, TaskKind::Interrupted)
    }

    /// Pieces the machine already called scrap (they stay scrap unless the operator says
    /// otherwise).
    fn machine_scrapped(&self) -> i64 {
        self.task.machine_scrapped.unwrap_or(0)
    }

    /// Good pieces if the operator accepts the machine's word.
    fn good_as_reported(&self) -> i64 {
        (self.task.units.unwrap_or(0) - self.machine_scrapped()).max(0)
    }

    /// The count the scrap stepper starts at: what the machine reported, else one piece.
    fn scrap_start(&self) -> i64 {
        self.machine_scrapped().max(1)
    }
}

#[derive(Template)]
#[template(path = "tasks_list.html")]
struct ListHtml<'a> {
    t: &'a Catalog,
    cards: Vec<TaskCard>,
    reasons: Vec<&'a str>,
}

#[derive(Template)]
#[template(path = "tasks.html")]
struct TasksPage<'a> {
    t: &'a Catalog,
    chrome: Chrome,
    list: String,
}

/// The list as the caller sees it now.
async fn list_html(ops: &Operations, actor: &Actor, t: &Catalog) -> Result<String, PanelError> {
    let tasks = ops.tasks(actor).await?;
    html(&ListHtml {
        t,
        cards: tasks
            .into_iter()
            .map(|task| TaskCard::of(t, task))
            .collect(),
        reasons: SCRAP_REASONS.iter().map(|key| t.get(key)).collect(),
    })
}

async fn page(ctx: Ctx) -> Response {
    ctx.answer(page_html(&ctx).await)
}

async fn page_html(ctx: &Ctx) -> Result<String, PanelError> {
    let list = list_html(&ctx.ops, &ctx.caller.actor(), ctx.t).await?;
    html(&TasksPage {
        t: ctx.t,
        chrome: ctx.chrome("tasks.title", "/tasks"),
        list,
    })
}

/// `GET /tasks/stream`: SSE; each message (`tasks`) is the whole list, sent when the stream
/// opens (what changed between the page and the stream is not lost), after events, when the
/// list differs from the last one sent, and every [`REFRESH`].
async fn stream(ctx: Ctx) -> Response {
    let actor = ctx.caller.actor();
    let events = match ctx.ops.follow_events(&actor) {
        Ok(events) => events,
        Err(e) => return ctx.answer(Err(e.into())),
    };
    let (sender, receiver) = mpsc::channel::<String>(16);
    tokio::spawn(follow_tasks(ctx.ops.clone(), actor, events, ctx.t, sender));
    sse(ReceiverStream::new(receiver)
        .map(|list| Ok::<_, Infallible>(SseEvent::default().event("tasks").data(list))))
}

/// Read the list again after events (at most once per [`COALESCE`]) and every [`REFRESH`];
/// send it when it changed.
async fn follow_tasks(
    ops: Operations,
    actor: Actor,
    mut events: broadcast::Receiver<EventRecord>,
    t: &'static Catalog,
    sender: mpsc::Sender<String>,
) {
    let mut sent: Option<String> = None;
    // The first read is at once: the stream's opening list.
    let mut stale = true;
    let mut coalesce = tokio::time::interval(COALESCE);
    coalesce.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut refresh = tokio::time::interval(REFRESH);
    refresh.reset();
    loop {
        tokio::select! {
            event = events.recv() => match event {
                // Any event may have made or ended a task (a run finishing, an order
                // cancelled, a maintenance due): the list is read again, and sent only if
                // it changed.
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => stale = true,
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = coalesce.tick(), if stale => {
                stale = false;
                let Ok(list) = list_html(&ops, &actor, t).await else { continue };
                if sent.as_ref() == Some(&list) {
                    continue;
                }
                sent = Some(list.clone());
                if sender.send(list).await.is_err() {
                    return;
                }
            }
            _ = refresh.tick() => stale = true,
            () = sender.closed() => return,
        }
    }
}

/// `POST /tasks/{job}/load`: the operator loaded (and set up) the machine; the run goes.
async fn load(ctx: Ctx, Path(job): Path<i64>) -> Response {
    match ctx.ops.load(&ctx.caller.actor(), job).await {
        Ok(_) => ctx.done(String::new(), "tasks.load_done", format!("#{job}")),
        Err(e) => ctx.answer(Err(e.into())),
    }
}

/// `POST /tasks/{job}/confirm`: the station's manual work (or what the machine asked for) is
/// done.
async fn confirm(ctx: Ctx, Path(job): Path<i64>) -> Response {
    match ctx.ops.confirm(&ctx.caller.actor(), job).await {
        Ok(_) => ctx.done(String::new(), "tasks.confirm_done", format!("#{job}")),
        Err(e) => ctx.answer(Err(e.into())),
    }
}

#[derive(Deserialize)]
struct MaintainedForm {
    /// The maintenance item, as the machine's config names it.
    task: String,
}

/// `POST /tasks/machines/{id}/maintained`: a due maintenance item is done.
async fn maintained(
    ctx: Ctx,
    Path(id): Path<String>,
    Form(form): Form<MaintainedForm>,
) -> Response {
    match ctx
        .ops
        .maintained(&ctx.caller.actor(), &id, &form.task)
        .await
    {
        Ok(_) => ctx.done(String::new(), "tasks.maintained_done", form.task),
        Err(e) => ctx.answer(Err(e.into())),
    }
}

/// The unload form: empty for "All good" (the default inspection: what the machine called
/// scrap stays scrap, every other piece is good); the scrapped count with a reason chip or a
/// typed reason for "Scrap…".
#[derive(Deserialize, Default)]
struct UnloadForm {
    #[serde(default)]
    scrap: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    other: String,
}

impl UnloadForm {
    fn inspection(&self) -> Result<Inspection, PanelError> {
        if self.scrap.trim().is_empty() {
            return Ok(Inspection::default());
        }
        let count = number::<u32>(&self.scrap, "tasks.scrap_count")?;
        let typed = self.other.trim();
        let reason = checked_reason(if typed.is_empty() {
            self.reason.trim()
        } else {
            typed
        })?;
        Ok(Inspection {
            good: None,
            scrap: vec![ScrapEntry {
                count,
                reason: reason.to_string(),
            }],
        })
    }
}

/// `POST /tasks/{job}/unload`: the operator took the pieces off and inspected them.
async fn unload(ctx: Ctx, Path(job): Path<i64>, Form(form): Form<UnloadForm>) -> Response {
    let result = async {
        let inspection = form.inspection()?;
        ctx.ops
            .unload(&ctx.caller.actor(), job, &inspection)
            .await?;
        Ok::<_, PanelError>(())
    }
    .await;
    match result {
        Ok(()) => ctx.done(String::new(), "tasks.unload_done", format!("#{job}")),
        Err(e) => ctx.answer(Err(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::panel::Lang;

    #[test]
    fn held_time_is_whole_minutes_then_hours_and_minutes() {
        let t = Lang::En.catalog();
        let held = HeldFor::of(t, 59_999);
        assert_eq!((held.ms, held.text.as_str()), (0, "0 min"));
        let held = HeldFor::of(t, 12 * 60_000 + 30_000);
        assert_eq!((held.ms, held.text.as_str()), (720_000, "12 min"));
        assert_eq!(HeldFor::of(t, 125 * 60_000).text, "2 hr 5 min");
        assert_eq!(HeldFor::of(t, -5).text, "0 min");
        assert_eq!(
            HeldFor::of(Lang::Ko.catalog(), 125 * 60_000).text,
            "2시간 5분"
        );
    }

    #[test]
    fn an_empty_unload_form_is_the_default_inspection_and_a_typed_reason_wins_over_a_chip() {
        let all_good = UnloadForm::default().inspection().unwrap();
        assert_eq!(all_good.good, None);
        assert!(all_good.scrap.is_empty());

        let chip = UnloadForm {
            scrap: " 2 ".into(),
            reason: "warped".into(),
            other: "  ".into(),
        };
        let inspection = chip.inspection().unwrap();
        assert_eq!(inspection.scrap.len(), 1);
        assert_eq!(inspection.scrap[0].count, 2);
        assert_eq!(inspection.scrap[0].reason, "warped");

        let typed = UnloadForm {
            other: "delaminated at the corner".into(),
            ..chip
        };
        assert_eq!(
            typed.inspection().unwrap().scrap[0].reason,
            "delaminated at the corner"
        );

        let bad = UnloadForm {
            scrap: "two".into(),
            ..UnloadForm::default()
        };
        assert!(matches!(
            bad.inspection(),
            Err(PanelError::Invalid {
                field: "tasks.scrap_count",
                ..
            })
        ));
    }
}
