//! The event log (`/events`): newest first, a page at a time, filtered by kind, order,
//! machine, actor and time; on the first page, new events that match are prepended live
//! (`/events/stream`).

use std::collections::BTreeSet;
use std::convert::Infallible;

use askama::Template;
use axum::Router;
use axum::extract::Query;
use axum::response::Response;
use axum::response::sse::Event as SseEvent;
use axum::routing::get;
use serde::Deserialize;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::BroadcastStream;

use super::fleet::Moment;
use super::i18n::Catalog;
use super::layout::{Chrome, Ctx};
use super::render::{PanelError, html, query_value, sse};
use crate::ops::Operations;
use crate::store::EventRecord;
use crate::store::events::search::EventFilter;

/// Events per page.
const PAGE: i64 = 100;

pub fn routes() -> Router<Operations> {
    Router::new()
        .route("/events", get(page))
        .route("/events/stream", get(stream))
}

/// The filter as the form sends it: empty fields filter nothing.
#[derive(Debug, Default, Deserialize)]
struct LogQuery {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    order: String,
    #[serde(default)]
    machine: String,
    #[serde(default)]
    actor: String,
    /// `YYYY-MM-DDTHH:MM` (UTC), what a `datetime-local` input sends.
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    /// Show events older than this seq (the next page).
    before: Option<i64>,
}

impl LogQuery {
    fn filter(&self) -> Result<EventFilter, PanelError> {
        let text = |v: &str| Some(v.trim().to_string()).filter(|v| !v.is_empty());
        Ok(EventFilter {
            kind: text(&self.kind),
            order_id: text(&self.order),
            machine_id: text(&self.machine),
            actor: text(&self.actor),
            since_ms: instant(&self.since, "events.since")?,
            until_ms: instant(&self.until, "events.until")?,
        })
    }

    /// The filter's part of a URL's query (without `before`).
    fn query(&self) -> String {
        [
            ("kind", &self.kind),
            ("order", &self.order),
            ("machine", &self.machine),
            ("actor", &self.actor),
            ("since", &self.since),
            ("until", &self.until),
        ]
        .iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .map(|(k, v)| format!("{k}={}", query_value(v.trim())))
        .collect::<Vec<_>>()
        .join("&")
    }
}

/// A `datetime-local` value read as UTC, in ms since the epoch; empty is none.
fn instant(text: &str, field: &'static str) -> Result<Option<i64>, PanelError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let format = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]");
    let at = time::PrimitiveDateTime::parse(text, &format).map_err(|_| PanelError::Invalid {
        field,
        message: "errors.not_a_time",
    })?;
    Ok(Some(
        (at.assume_utc().unix_timestamp_nanos() / 1_000_000) as i64,
    ))
}

/// One event, ready to show.
pub struct Row {
    seq: i64,
    at: Moment,
    kind: &'static str,
    actor: String,
    order_id: Option<String>,
    machine_id: Option<String>,
    /// The event's other fields, `name: value`.
    details: String,
}

/// How long one field's value may be on a row: the event log is a list to scan; the API
/// (`/api/v1/events/log`) has every event in full.
const SHOWN_CHARS: usize = 160;

/// A field's value as a row shows it: text as it is, a list of records as its length and the
/// records' fields (a run list of fifty is not fifty rows of JSON), anything cut at
/// [`SHOWN_CHARS`].
fn shown(value: serde_json::Value) -> String {
    use serde_json::Value;
    let text = match value {
        Value::String(text) => text,
        Value::Array(items) if items.iter().all(Value::is_object) && !items.is_empty() => {
            let fields: BTreeSet<&str> = items
                .iter()
                .filter_map(Value::as_object)
                .flat_map(|record| record.keys().map(String::as_str))
                .collect();
            let fields: Vec<&str> = fields.into_iter().collect();
            format!("{} × {{{}}}", items.len(), fields.join(", "))
        }
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    };
    match text.char_indices().nth(SHOWN_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

impl Row {
    fn of(record: &EventRecord) -> Row {
        let mut details = Vec::new();
        if let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(&record.event) {
            for (name, value) in fields {
                let empty = value.is_null() || value.as_array().is_some_and(Vec::is_empty);
                if matches!(name.as_str(), "kind" | "order_id" | "machine_id") || empty {
                    continue;
                }
                details.push(format!("{name}: {}", shown(value)));
            }
        }
        Row {
            seq: record.seq,
            at: Moment::at(record.at_ms),
            kind: record.event.kind(),
            actor: record.actor.clone(),
            order_id: record.event.order_id().map(str::to_string),
            machine_id: record.event.machine_id().map(str::to_string),
            details: details.join(" · "),
        }
    }

    fn kind_key(&self) -> String {
        format!("event_kind.{}", self.kind)
    }
}

#[derive(Template)]
#[template(path = "events_row.html")]
struct RowHtml<'a> {
    t: &'a Catalog,
    row: &'a Row,
}

#[derive(Template)]
#[template(path = "events.html")]
struct LogPage<'a> {
    t: &'a Catalog,
    chrome: Chrome,
    rows: Vec<String>,
    query: LogQuery,
    kinds: Vec<String>,
    machines: Vec<String>,
    /// The URL of the next (older) page, when there may be one.
    older: Option<String>,
    /// The live stream's URL, on the first page only.
    live: Option<String>,
}

async fn page(ctx: Ctx, Query(query): Query<LogQuery>) -> Response {
    ctx.answer(page_html(&ctx, query).await)
}

async fn page_html(ctx: &Ctx, query: LogQuery) -> Result<String, PanelError> {
    let filter = query.filter()?;
    let records = ctx
        .ops
        .search_events(&ctx.caller.actor(), &filter, query.before, PAGE)
        .await?;
    let filters = query.query();
    let join = |base: &str, extra: String| {
        let query: Vec<&str> = [filters.as_str(), extra.as_str()]
            .into_iter()
            .filter(|part| !part.is_empty())
            .collect();
        if query.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", query.join("&"))
        }
    };
    let older = (records.len() as i64 == PAGE)
        .then(|| {
            records
                .last()
                .map(|r| join("/events", format!("before={}", r.seq)))
        })
        .flatten();
    let live = query
        .before
        .is_none()
        .then(|| join("/events/stream", String::new()));
    let rows = records
        .iter()
        .map(|record| {
            html(&RowHtml {
                t: ctx.t,
                row: &Row::of(record),
            })
        })
        .collect::<Result<_, _>>()?;
    html(&LogPage {
        t: ctx.t,
        chrome: ctx.chrome("events.title", "/events"),
        rows,
        kinds: ctx.ops.event_kinds(&ctx.caller.actor()).await?,
        machines: ctx.ops.plant().config.machine_ids(),
        older,
        live,
        query,
    })
}

/// `GET /events/stream`: SSE; each message (`event`) is the row of a new event that matches.
async fn stream(ctx: Ctx, Query(query): Query<LogQuery>) -> Response {
    let filter = match query.filter() {
        Ok(filter) => filter,
        Err(e) => return ctx.answer(Err(e)),
    };
    let t = ctx.t;
    let events = match ctx.ops.follow_events(&ctx.caller.actor()) {
        Ok(events) => events,
        Err(e) => return ctx.answer(Err(e.into())),
    };
    let live = BroadcastStream::new(events).filter_map(move |record| {
        // A reader too slow for the feed misses events; the page's next load shows them.
        let record = record.ok()?;
        filter.matches(&record).then(|| {
            let row = html(&RowHtml {
                t,
                row: &Row::of(&record),
            })
            .unwrap_or_default();
            Ok::<_, Infallible>(SseEvent::default().event("event").data(row))
        })
    });
    sse(live)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_shows_lists_of_records_by_their_count_and_cuts_long_values() {
        let runs: Vec<serde_json::Value> = (1..=50)
            .map(|id| serde_json::json!({ "job_id": id, "units": 8 }))
            .collect();
        assert_eq!(
            shown(serde_json::Value::Array(runs)),
            "50 × {job_id, units}"
        );
        assert_eq!(shown(serde_json::json!(["a", 2])), "a, 2");
        assert_eq!(shown(serde_json::json!([])), "");
        let long = "절".repeat(SHOWN_CHARS + 5);
        let cut = shown(serde_json::Value::String(long));
        assert_eq!(cut.chars().count(), SHOWN_CHARS + 1);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn times_are_read_as_utc_minutes_and_bad_ones_named() {
        assert_eq!(instant("", "events.since").unwrap(), None);
        assert_eq!(
            instant("1970-01-01T00:01", "events.since").unwrap(),
            Some(60_000)
        );
        assert!(matches!(
            instant("yesterday", "events.until"),
            Err(PanelError::Invalid {
                field: "events.until",
                ..
            })
        ));
    }

    #[test]
    fn the_filter_goes_into_page_links_encoded() {
        let query = LogQuery {
            actor: "kim min-ji".into(),
            kind: "job_started".into(),
            ..LogQuery::default()
        };
        assert_eq!(query.query(), "kind=job%5Fstarted&actor=kim%20min%2Dji");
    }
}
