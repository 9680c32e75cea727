//! `microfab events`: the event log page by page, or followed live over SSE.

use anyhow::Context;
use serde_json::Value;

use super::client::{ClientArgs, refusal};
use super::emit;
use super::tables::short_time;

/// One event on one line: sequence number, time, actor, kind, then its fields.
fn render_event(record: &Value) -> String {
    let time = record["at_ms"]
        .as_i64()
        .map(crate::store::format_ms)
        .unwrap_or_default();
    let mut text = format!(
        "{:>6}  {}  {}  {}",
        record["seq"].as_i64().unwrap_or_default(),
        short_time(&time),
        record["actor"].as_str().unwrap_or_default(),
        record["event"]["kind"].as_str().unwrap_or_default()
    );
    if let Some(fields) = record["event"].as_object() {
        for (key, value) in fields.iter().filter(|(key, _)| *key != "kind") {
            let value = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            text.push_str(&format!(" {key}={value}"));
        }
    }
    text.push('\n');
    text
}

fn print_record(client: &ClientArgs, record: &Value) -> anyhow::Result<()> {
    if client.json {
        emit(&format!("{record}\n"))?;
    } else {
        emit(&render_event(record))?;
    }
    Ok(())
}

/// The log from `after`, page by page, until its end.
pub(super) async fn print_event_log(
    client: &ClientArgs,
    mut after: i64,
    order: Option<&str>,
) -> anyhow::Result<i32> {
    loop {
        let query = [
            ("after", Some(after.to_string())),
            ("limit", Some("1000".to_string())),
            ("order", order.map(str::to_string)),
        ];
        let page: Vec<Value> = client.get(&["events", "log"], &query).await?;
        let Some(last) = page.last().and_then(|r| r["seq"].as_i64()) else {
            return Ok(0);
        };
        for record in &page {
            print_record(client, record)?;
        }
        after = last;
    }
}

/// Follow the SSE stream (from `after`, if given) until the server goes away or Ctrl-C.
pub(super) async fn follow_events(
    client: &ClientArgs,
    after: Option<i64>,
    order: Option<&str>,
) -> anyhow::Result<i32> {
    use futures::StreamExt as _;
    let mut url = client.endpoint(&["events"])?;
    if let Some(after) = after {
        url.query_pairs_mut()
            .append_pair("after", &after.to_string());
    }
    let response = client
        .request(reqwest::Method::GET, url.clone())
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    if !response.status().is_success() {
        return Err(refusal(response).await);
    }
    let mut stream = response.bytes_stream();
    let mut pending = String::new();
    while let Some(chunk) = stream.next().await {
        pending.push_str(&String::from_utf8_lossy(
            &chunk.context("reading the event stream")?,
        ));
        // One SSE message ends with a blank line; a keep-alive is a comment without data.
        while let Some(end) = pending.find("\n\n") {
            let message: String = pending.drain(..end + 2).collect();
            let data: String = message
                .lines()
                .filter_map(|line| line.strip_prefix("data:"))
                .map(str::trim_start)
                .collect();
            if data.is_empty() {
                continue;
            }
            let record: Value = serde_json::from_str(&data)
                .with_context(|| format!("an event the server sent: {data}"))?;
            if order.is_none_or(|order| record["event"]["order_id"] == order) {
                print_record(client, &record)?;
            }
        }
    }
    Ok(0)
}
