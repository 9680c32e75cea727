//! The fleet board (`/fleet`): every machine as a card, filtered by capability and state, with
//! the operator's commands; and its live stream (`/fleet/stream`), which pushes a re-rendered
//! card for each machine that changed, at most one per machine per [`COALESCE`].

use std::collections::{BTreeSet, HashMap};
use std::convert::Infallible;
use std::time::Duration;

use askama::Template;
use axum::Router;
use axum::extract::Query;
use axum::response::Response;
use axum::response::sse::Event as SseEvent;
use axum::routing::get;
use serde::Deserialize;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::StreamExt as _;
use tokio_stream::StreamMap;
use tokio_stream::wrappers::{ReceiverStream, WatchStream};

use super::i18n::Catalog;
use super::layout::{Chrome, Ctx};
use super::render::{PanelError, html, sse};
use super::tasks::{HeldFor, kind_key};
use crate::machine_status::MachineStatus;
use crate::ops::{Actor, Operations};
use crate::plant::floor_views::RunOnMachine;
use crate::plant::views::MachineView;
use crate::store::{EventRecord, now_ms};

/// The least time between two cards for the same machine on one stream: a burst of changes
/// (progress, link counters, a run ending and the next starting) becomes one card.
pub const COALESCE: Duration = Duration::from_millis(200);

/// The states a machine view can be in, in the board's order (its summary and filter).
pub(super) const STATES: &[&str] = &[
    "alarm",
    "held",
    "paused",
    "busy",
    "idle",
    "maintenance",
    "offline",
    "unavailable",
];

pub fn routes() -> Router<Operations> {
    Router::new()
        .route("/fleet", get(board))
        .route("/fleet/stream", get(stream))
}

/// One machine's card: what an operator sees at a glance.
pub struct Card {
    pub id: String,
    pub name: String,
    pub state: String,
    pub capabilities: String,
    pub setup_family: Option<String>,
    pub run: Option<RunOnMachine>,
    /// How far the run is, in percent, where the driver knows.
    pub percent: Option<u64>,
    pub eta: Option<Moment>,
    pub link: Option<LinkHealth>,
    /// What holds the machine: the catalog key of its kind, and why.
    pub holds: Vec<(String, String)>,
    pub in_maintenance: bool,
    /// The interrupted run the machine holds, waiting on an operator's decision.
    pub held_run: Option<i64>,
    /// The operator task the machine waits on (a load, an unload, a due maintenance), if any.
    pub task: Option<CardTask>,
}

/// The operator task a machine waits on, as its card shows it.
pub struct CardTask {
    /// The task's kind as on the wire (`unload`): the card's `data-task`.
    pub kind: &'static str,
    /// The run it is for (a load or an unload).
    pub job_id: Option<i64>,
    /// How long it has held the machine so far.
    pub held: HeldFor,
}

impl CardTask {
    pub fn kind_key(&self) -> String {
        kind_key(self.kind)
    }

    /// Its card on the tasks page (the page itself for a task without a run).
    pub fn href(&self) -> String {
        match self.job_id {
            Some(job) => format!("/tasks#task-{}-{job}", self.kind),
            None => "/tasks".into(),
        }
    }
}

/// The task kind a hold is (`awaiting_unload` is an unload), for the holds that are operator
/// tasks; `None` for the others (an alarm, a pause).
fn task_of_hold(hold_kind: &str) -> Option<&'static str> {
    match hold_kind {
        "awaiting_load" => Some("load"),
        "awaiting_unload" => Some("unload"),
        "maintenance_due" => Some("maintenance"),
        _ => None,
    }
}

/// An RFC 3339 instant (a hold's `since`) in ms since the epoch.
pub fn rfc3339_ms(text: &str) -> Option<i64> {
    let at =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    Some((at.unix_timestamp_nanos() / 1_000_000) as i64)
}

impl Card {
    pub fn state_key(&self) -> String {
        format!("state.{}", self.state)
    }

    pub fn can_pause(&self) -> bool {
        self.state == "busy"
    }

    pub fn can_resume(&self) -> bool {
        self.state == "paused"
    }

    /// Maintenance starts only on a machine without a run, nor one waiting for its load or
    /// unload (the plant refuses otherwise).
    pub fn can_start_maintenance(&self) -> bool {
        !self.in_maintenance
            && self.run.is_none()
            && self.task.as_ref().is_none_or(|task| task.job_id.is_none())
    }

    pub fn can_abort(&self) -> bool {
        self.run.is_some() && matches!(self.state.as_str(), "busy" | "paused" | "alarm")
    }
}

pub struct LinkHealth {
    pub up: bool,
    pub resends: u64,
    pub errors: u64,
}

/// An instant for a `<time>` element: the browser shows it in its own time zone (app.js);
/// until then, UTC.
pub struct Moment {
    pub iso: String,
    pub utc: String,
}

impl Moment {
    pub fn at(ms: i64) -> Moment {
        let iso = crate::store::format_ms(ms);
        let utc = iso
            .get(11..16)
            .map_or_else(|| iso.clone(), |hm| format!("{hm} UTC"));
        Moment { iso, utc }
    }
}

/// A machine's card from what the plant recorded, the run on it, and its live status.
pub fn card(
    ops: &Operations,
    t: &Catalog,
    machine: &MachineView,
    run: Option<&RunOnMachine>,
    live: Option<&MachineStatus>,
) -> Card {
    let percent = live
        .and_then(|l| l.progress)
        .filter(|p| p.total > 0)
        .map(|p| (p.done.min(p.total) * 100) / p.total);
    Card {
        id: machine.id.clone(),
        name: machine.name.clone(),
        state: machine.state.clone(),
        capabilities: machine.capabilities.join(", "),
        setup_family: machine.setup_family.clone(),
        eta: run.and_then(|r| ops.planned_end(r.job_id)).map(Moment::at),
        run: run.cloned(),
        percent,
        link: live.and_then(|l| l.link.as_ref()).map(|link| LinkHealth {
            up: link.up,
            resends: link.counters.resends,
            errors: link.counters.errors,
        }),
        holds: machine
            .holds
            .iter()
            .filter(|h| task_of_hold(&h.kind).is_none())
            .map(|h| {
                let why = match (h.kind.as_str(), h.job_id, &h.reason) {
                    ("interrupted_run", Some(job), Some(reason)) => format!("#{job} {reason}"),
                    (_, _, Some(reason)) => reason.clone(),
                    (_, Some(job), None) => format!("#{job}"),
                    _ => String::new(),
                };
                (format!("hold.{}", h.kind), why)
            })
            .collect(),
        in_maintenance: machine.holds.iter().any(|h| h.kind == "maintenance"),
        held_run: machine
            .holds
            .iter()
            .find(|h| h.kind == "interrupted_run")
            .and_then(|h| h.job_id),
        task: machine.holds.iter().find_map(|h| {
            let kind = task_of_hold(&h.kind)?;
            let since = h.since.as_deref().and_then(rfc3339_ms);
            Some(CardTask {
                kind,
                job_id: h.job_id,
                held: HeldFor::of(t, since.map_or(0, |since| now_ms() - since)),
            })
        }),
    }
}

#[derive(Template)]
#[template(path = "fleet_card.html")]
pub struct CardHtml<'a> {
    pub t: &'a Catalog,
    pub c: &'a Card,
}

/// Every machine's card (or `only` that machine's), in the plant's order.
pub async fn cards(
    ops: &Operations,
    t: &Catalog,
    actor: &Actor,
    only: Option<&str>,
) -> Result<Vec<Card>, PanelError> {
    let machines: Vec<MachineView> = match only {
        Some(id) => vec![ops.machine(actor, id).await?.machine],
        None => ops
            .machines(actor)
            .await?
            .into_iter()
            .map(|live| live.machine)
            .collect(),
    };
    let runs = ops.runs_on_machines(actor, only).await?;
    let statuses = ops.status_channels();
    Ok(machines
        .iter()
        .map(|m| {
            let live = statuses.get(&m.id).map(|s| s.borrow().clone());
            card(ops, t, m, runs.get(&m.id), live.as_ref())
        })
        .collect())
}

#[derive(Deserialize, Default)]
struct BoardFilter {
    #[serde(default)]
    capability: String,
    #[serde(default)]
    state: String,
}

#[derive(Template)]
#[template(path = "fleet.html")]
struct BoardPage<'a> {
    t: &'a Catalog,
    chrome: Chrome,
    /// Each shown machine's id and card.
    cards: Vec<(String, String)>,
    /// Machines per state, for the summary (every state, in the board's order).
    summary: Vec<(&'static str, usize)>,
    capabilities: BTreeSet<String>,
    states: &'static [&'static str],
    capability: String,
    state: String,
    total: usize,
}

async fn board(ctx: Ctx, Query(filter): Query<BoardFilter>) -> Response {
    ctx.answer(board_html(&ctx, filter).await)
}

async fn board_html(ctx: &Ctx, filter: BoardFilter) -> Result<String, PanelError> {
    let all = cards(&ctx.ops, ctx.t, &ctx.caller.actor(), None).await?;
    let capabilities: BTreeSet<String> = ctx
        .ops
        .plant()
        .config
        .machines
        .iter()
        .flat_map(|m| m.get_ref().capabilities.clone())
        .collect();
    let summary = STATES
        .iter()
        .map(|s| (*s, all.iter().filter(|c| c.state == *s).count()))
        .collect();
    let shown: Vec<&Card> = all
        .iter()
        .filter(|c| filter.state.is_empty() || c.state == filter.state)
        .filter(|c| {
            filter.capability.is_empty()
                || c.capabilities
                    .split(", ")
                    .any(|cap| cap == filter.capability)
        })
        .collect();
    let cards = shown
        .iter()
        .map(|c| Ok((c.id.clone(), html(&CardHtml { t: ctx.t, c })?)))
        .collect::<Result<_, PanelError>>()?;
    html(&BoardPage {
        t: ctx.t,
        chrome: ctx.chrome("fleet.title", "/fleet"),
        cards,
        summary,
        capabilities,
        states: STATES,
        capability: filter.capability,
        state: filter.state,
        total: all.len(),
    })
}

#[derive(Deserialize)]
struct StreamFilter {
    /// Only this machine's card (the machine page).
    machine: Option<String>,
}

/// `GET /fleet/stream`: SSE; each message is named `machine-{id}` and carries that machine's
/// card, sent when its record or its live status changed.
async fn stream(ctx: Ctx, Query(filter): Query<StreamFilter>) -> Response {
    let actor = ctx.caller.actor();
    let events = match ctx.ops.follow_events(&actor) {
        Ok(events) => events,
        Err(e) => return ctx.answer(Err(e.into())),
    };
    // Both feeds are taken here, before the answer starts: a change made right after the
    // stream opened is on them, not lost while the task starts.
    let statuses: StreamMap<String, WatchStream<MachineStatus>> = ctx
        .ops
        .status_channels()
        .iter()
        .filter(|(id, _)| {
            filter
                .machine
                .as_deref()
                .is_none_or(|only| only == id.as_str())
        })
        .map(|(id, rx)| {
            // What changed before this stream began is in the page already.
            let mut rx = rx.clone();
            rx.mark_unchanged();
            (id.clone(), WatchStream::from_changes(rx))
        })
        .collect();
    let (sender, receiver) = mpsc::channel::<(String, String)>(256);
    tokio::spawn(follow_machines(
        ctx.ops.clone(),
        actor,
        events,
        statuses,
        ctx.t,
        filter.machine,
        sender,
    ));
    let events = ReceiverStream::new(receiver).map(|(id, card)| {
        Ok::<_, Infallible>(
            SseEvent::default()
                .event(format!("machine-{id}"))
                .data(card),
        )
    });
    sse(events)
}

/// Watch the machines' status channels and the event log; every [`COALESCE`], send the card
/// of each machine that changed. What the store recorded is read again only for machines an
/// event named; a status change alone re-renders from what was read before.
async fn follow_machines(
    ops: Operations,
    actor: Actor,
    mut events: broadcast::Receiver<EventRecord>,
    mut statuses: StreamMap<String, WatchStream<MachineStatus>>,
    t: &'static Catalog,
    only: Option<String>,
    sender: mpsc::Sender<(String, String)>,
) {
    let wanted = |id: &str| only.as_deref().is_none_or(|o| o == id);
    let mut recorded: HashMap<String, (MachineView, Option<RunOnMachine>)> = HashMap::new();
    let mut stale: BTreeSet<String> = BTreeSet::new();
    let mut sent: HashMap<String, String> = HashMap::new();
    let mut changed: BTreeSet<String> = BTreeSet::new();
    let mut tick = tokio::time::interval(COALESCE);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(record) => {
                    if let Some(id) = record.event.machine_id().filter(|id| wanted(id)) {
                        stale.insert(id.to_string());
                        changed.insert(id.to_string());
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    // Too many to follow one by one: every machine may have changed.
                    recorded.clear();
                    changed.extend(ops.status_channels().keys().filter(|id| wanted(id)).cloned());
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            Some((id, _)) = statuses.next() => {
                changed.insert(id);
            }
            _ = tick.tick(), if !changed.is_empty() => {
                for id in std::mem::take(&mut changed) {
                    if stale.remove(&id) {
                        recorded.remove(&id);
                    }
                    let Some(html) = render_card(&ops, &actor, t, &id, &mut recorded).await else {
                        continue;
                    };
                    // A change the card does not show (a temperature, a counter it leaves
                    // out) sends nothing.
                    if sent.get(&id) == Some(&html) {
                        continue;
                    }
                    sent.insert(id.clone(), html.clone());
                    if sender.send((id, html)).await.is_err() {
                        return;
                    }
                }
            }
            () = sender.closed() => return,
        }
    }
}

async fn render_card(
    ops: &Operations,
    actor: &Actor,
    t: &'static Catalog,
    id: &str,
    recorded: &mut HashMap<String, (MachineView, Option<RunOnMachine>)>,
) -> Option<String> {
    if !recorded.contains_key(id) {
        let machine = ops.machine(actor, id).await.ok()?.machine;
        let run = ops.runs_on_machines(actor, Some(id)).await.ok()?.remove(id);
        recorded.insert(id.to_string(), (machine, run));
    }
    let (machine, run) = recorded.get(id)?;
    let live = ops.status_channels().get(id).map(|s| s.borrow().clone());
    let card = card(ops, t, machine, run.as_ref(), live.as_ref());
    html(&CardHtml { t, c: &card }).ok()
}
