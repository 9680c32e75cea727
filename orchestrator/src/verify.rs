//! Replays the event log and compares it with the state tables: the check behind
//! `microfab verify` and `GET /api/v1/verify`.

use crate::api::VerifyReport;
use crate::store::events::{self, Replayed};
use crate::store::{Store, StoreError};

pub async fn verify(store: &Store) -> Result<VerifyReport, StoreError> {
    let _quiet = store.quiesce().await;
    let pool = &store.pool;
    let mut records = Vec::new();
    loop {
        let after = records.last().map_or(0, |r: &events::EventRecord| r.seq);
        let batch = events::list(pool, after, 10_000, None).await?;
        if batch.is_empty() {
            break;
        }
        records.extend(batch);
    }
    let replayed = events::replay(&records);
    let current = events::current(pool).await?;
    Ok(VerifyReport {
        consistent: replayed == current,
        events: records.len(),
        differences: differences(&replayed, &current),
    })
}

fn differences(log: &Replayed, tables: &Replayed) -> Vec<String> {
    fn diff<K: Ord + std::fmt::Debug, V: PartialEq + std::fmt::Debug>(
        what: &str,
        log: &std::collections::BTreeMap<K, V>,
        tables: &std::collections::BTreeMap<K, V>,
        out: &mut Vec<String>,
    ) {
        for (k, v) in log {
            match tables.get(k) {
                Some(t) if t == v => {}
                other => out.push(format!(
                    "{what} {k:?}: log says {v:?}, tables say {other:?}"
                )),
            }
        }
        for k in tables.keys().filter(|k| !log.contains_key(*k)) {
            out.push(format!("{what} {k:?}: in the tables, not in the log"));
        }
    }
    let mut out = Vec::new();
    diff("order", &log.orders, &tables.orders, &mut out);
    diff("job", &log.jobs, &tables.jobs, &mut out);
    diff("stock", &log.stock, &tables.stock, &mut out);
    out
}
