//! `/api/v1/events`: the event log, and the SSE stream that catches up from it and follows
//! the live feed.

use std::convert::Infallible;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::Stream;
use serde::Deserialize;
use tokio_stream::StreamExt as _;

use super::error::{ApiError, ErrorBody};
use super::extract::Params;
use crate::auth::Caller;
use crate::ops::Operations;
use crate::store::events::{self, EventRecord};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    #[serde(default)]
    pub after: i64,
    pub limit: Option<i64>,
    pub order: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/events/log", params(("after" = Option<i64>, Query), ("limit" = Option<i64>, Query), ("order" = Option<String>, Query)),
    responses((status = 200, body = Vec<EventRecord>)))]
pub(super) async fn event_log(
    State(ops): State<Operations>,
    caller: Caller,
    Params(q): Params<LogQuery>,
) -> Result<Json<Vec<EventRecord>>, ApiError> {
    let limit = q.limit.unwrap_or(1000).clamp(1, 10_000);
    Ok(Json(
        ops.event_log(&caller.actor(), q.after, limit, q.order.as_deref())
            .await?,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    pub after: Option<i64>,
}

/// Server-sent events: every committed event, in log order. `Last-Event-ID` (what a browser's
/// EventSource sends when it reconnects) or else `after` replays the log from there first, so a
/// client that reconnects misses nothing.
#[utoipa::path(get, path = "/api/v1/events",
    params(
        ("after" = Option<i64>, Query, description = "replay the log after this event seq first"),
        ("Last-Event-ID" = Option<i64>, Header, nullable = false, minimum = 0, description = "the last event seq the client has (what a reconnecting EventSource sends); takes precedence over `after`"),
    ),
    responses(
        (status = 200, content_type = "text/event-stream", description = "one SSE message per event; id = seq"),
        (status = 400, body = ErrorBody, description = "`Last-Event-ID` is not an event seq"),
    ))]
pub(super) async fn event_stream(
    State(ops): State<Operations>,
    caller: Caller,
    headers: HeaderMap,
    Params(q): Params<StreamQuery>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let after = match last_event_id(&headers)? {
        Some(seq) => Some(seq),
        None => q.after,
    };
    let store = ops.event_feed(&caller.actor())?;
    let live = store.subscribe();
    let stream = async_stream(after, store.pool.clone(), move || live.resubscribe());
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// The `Last-Event-ID` header as an event seq. A reconnecting client that sent garbage would
/// otherwise silently get a live-only stream and miss what happened while it was away.
fn last_event_id(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(value) = headers.get("last-event-id") else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|seq| *seq >= 0)
        .map(Some)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_header",
                format!(
                    "Last-Event-ID: {:?} is not an event seq (a non-negative integer, the id of an SSE message)",
                    String::from_utf8_lossy(value.as_bytes())
                ),
            )
        })
}

fn async_stream(
    after: Option<i64>,
    pool: sqlx::AnyPool,
    subscribe: impl FnOnce() -> tokio::sync::broadcast::Receiver<EventRecord> + Send + 'static,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    let (tx, rx) = tokio::sync::mpsc::channel::<EventRecord>(256);
    tokio::spawn(async move {
        let mut live = subscribe();
        let mut last = after.unwrap_or(i64::MAX);
        if after.is_some() {
            // Catch up from the log, then follow the live feed, skipping what was already sent.
            loop {
                let Ok(batch) = events::list(&pool, last, 1000, None).await else {
                    return;
                };
                if batch.is_empty() {
                    break;
                }
                for record in batch {
                    last = record.seq;
                    if tx.send(record).await.is_err() {
                        return;
                    }
                }
            }
        }
        loop {
            match live.recv().await {
                Ok(record) if after.is_none() || record.seq > last => {
                    last = record.seq;
                    if tx.send(record).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    // Too slow to follow live: fall back to the log from the last one sent.
                    let Ok(batch) = events::list(&pool, last, 1000, None).await else {
                        return;
                    };
                    for record in batch {
                        last = record.seq;
                        if tx.send(record).await.is_err() {
                            return;
                        }
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx).map(|record| {
        Ok(SseEvent::default()
            .id(record.seq.to_string())
            .event(record.event.kind())
            .json_data(&record)
            .unwrap_or_default())
    })
}
