//! The event log searched, newest first: what the panel's event log page pages through, and
//! the same filter applied to events as they are committed (its live feed).

use super::{EventRecord, EventRow};
use crate::store::StoreError;

/// Which events to show; an empty filter shows them all.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct EventFilter {
    pub kind: Option<String>,
    pub order_id: Option<String>,
    pub machine_id: Option<String>,
    pub actor: Option<String>,
    /// At or after this instant (ms since the epoch).
    pub since_ms: Option<i64>,
    /// Before this instant.
    pub until_ms: Option<i64>,
}

impl EventFilter {
    pub fn matches(&self, record: &EventRecord) -> bool {
        let is = |wanted: &Option<String>, value: Option<&str>| {
            wanted.as_deref().is_none_or(|w| value == Some(w))
        };
        is(&self.kind, Some(record.event.kind()))
            && is(&self.order_id, record.event.order_id())
            && is(&self.machine_id, record.event.machine_id())
            && is(&self.actor, Some(&record.actor))
            && self.since_ms.is_none_or(|since| record.at_ms >= since)
            && self.until_ms.is_none_or(|until| record.at_ms < until)
    }
}

/// Up to `limit` events that match, newest first, older than the event `before` (a seq) when
/// given: the next page starts before the last one shown.
pub async fn newest(
    pool: &sqlx::AnyPool,
    filter: &EventFilter,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<EventRecord>, StoreError> {
    let text = |value: &Option<String>| value.clone().unwrap_or_default();
    let rows: Vec<EventRow> = sqlx::query_as(
        "SELECT seq, at_ms, actor, data FROM events \
         WHERE seq < $1 AND ($2 = '' OR kind = $2) AND ($3 = '' OR order_id = $3) \
         AND ($4 = '' OR machine_id = $4) AND ($5 = '' OR actor = $5) \
         AND at_ms >= $6 AND at_ms < $7 \
         ORDER BY seq DESC LIMIT $8",
    )
    .bind(before.unwrap_or(i64::MAX))
    .bind(text(&filter.kind))
    .bind(text(&filter.order_id))
    .bind(text(&filter.machine_id))
    .bind(text(&filter.actor))
    .bind(filter.since_ms.unwrap_or(i64::MIN))
    .bind(filter.until_ms.unwrap_or(i64::MAX))
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(EventRecord::try_from)
        .collect::<Result<_, _>>()?)
}

/// Every kind of event the log holds, by name.
pub async fn kinds(pool: &sqlx::AnyPool) -> Result<Vec<String>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT DISTINCT kind FROM events ORDER BY kind")
            .fetch_all(pool)
            .await?,
    )
}
