//! Material stock: accounts (one material, one owner), reservations per order, consumption per
//! run. An order draws from its maker's own storage first, then from the common inventory.
//! Stock never goes negative: a reservation that cannot be covered is refused whole.

use std::collections::BTreeMap;

use super::records::{Tx, order_state_of};
use super::rules::{draw_in_order, released};
use super::state::{JobState, OrderState, sql_list};
use super::{Plant, PlantError, Result, invalid};
use crate::amount::Amount;
use crate::config::{MaterialConfig, Origin};
use crate::store::{Draw, Event, Writer};

/// A stock account an order may draw from, with what is left in it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EntitledAccount {
    pub id: String,
    pub owner: String,
    pub available: Amount,
}

/// The accounts an order of `maker` may draw `material` from, the maker's own first, with
/// what is left in each.
pub(crate) async fn entitled_accounts(
    tx: &mut Tx,
    material: &str,
    maker: &str,
) -> Result<Vec<EntitledAccount>> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT id, owner, on_hand - reserved AS available FROM materials \
         WHERE material = $1 AND (owner = 'common' OR owner = $2) \
         ORDER BY CASE WHEN owner = $2 THEN 0 ELSE 1 END, id",
    )
    .bind(material)
    .bind(maker)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, owner, available)| EntitledAccount {
            id,
            owner,
            available: Amount(available),
        })
        .collect())
}

/// Reserve `needs` (material → amount) for `order_id`, or change nothing and say what is short.
/// Only an active order reserves: material held for a closed order would never be released.
pub async fn reserve(
    tx: &mut Tx,
    order_id: &str,
    maker: &str,
    needs: &BTreeMap<String, Amount>,
) -> Result<Vec<Draw>> {
    let state = order_state_of(tx, order_id).await?;
    if !state.is_active() {
        return Err(PlantError::Conflict(format!(
            "order {order_id} is {state}: only an approved or in-progress order reserves material"
        )));
    }
    let mut plan = Vec::new();
    let mut short = Vec::new();
    for (material, needed) in needs {
        let accounts: Vec<(String, Amount)> = entitled_accounts(tx, material, maker)
            .await?
            .into_iter()
            .map(|account| (account.id, account.available))
            .collect();
        let (draws, missing) = draw_in_order(*needed, &accounts);
        if missing > Amount::ZERO {
            let total: Amount = accounts.iter().map(|(_, available)| *available).sum();
            short.push(format!(
                "{material}: needs {needed}, only {total} available to this order (maker's own storage and common inventory, less what other orders reserved)"
            ));
            continue;
        }
        plan.extend(draws);
    }
    if !short.is_empty() {
        return Err(PlantError::MaterialShort(format!(
            "material short for order {order_id}: {}",
            short.join("; ")
        )));
    }
    for draw in &plan {
        sqlx::query("UPDATE materials SET reserved = reserved + $1 WHERE id = $2")
            .bind(draw.amount.0)
            .bind(&draw.account)
            .execute(&mut **tx)
            .await?;
        sqlx::query(
            "INSERT INTO reservations (order_id, account, reserved, consumed) VALUES ($1, $2, $3, 0) \
             ON CONFLICT (order_id, account) DO UPDATE SET reserved = reservations.reserved + $3",
        )
        .bind(order_id)
        .bind(&draw.account)
        .bind(draw.amount.0)
        .execute(&mut **tx)
        .await?;
    }
    Ok(plan)
}

/// Take one run's material out of the order's reservations: it leaves the shelf.
pub async fn consume(
    tx: &mut Tx,
    order_id: &str,
    needs: &BTreeMap<String, Amount>,
) -> Result<Vec<Draw>> {
    let mut draws = Vec::new();
    for (material, needed) in needs {
        let held: Vec<(String, i64)> = sqlx::query_as(
            "SELECT r.account AS account, r.reserved - r.consumed AS left_over FROM reservations r \
             JOIN materials m ON m.id = r.account \
             WHERE r.order_id = $1 AND m.material = $2 AND r.reserved > r.consumed \
             ORDER BY CASE WHEN m.owner = 'common' THEN 1 ELSE 0 END, r.account",
        )
        .bind(order_id)
        .bind(material)
        .fetch_all(&mut **tx)
        .await?;
        let held: Vec<(String, Amount)> = held
            .into_iter()
            .map(|(account, left_over)| (account, Amount(left_over)))
            .collect();
        let (taken, missing) = draw_in_order(*needed, &held);
        if missing > Amount::ZERO {
            return Err(PlantError::Conflict(format!(
                "order {order_id} has no reserved {material} left for this run ({missing} missing)"
            )));
        }
        for Draw { account, amount } in taken {
            sqlx::query(
                "UPDATE reservations SET consumed = consumed + $1 WHERE order_id = $2 AND account = $3",
            )
            .bind(amount.0)
            .bind(order_id)
            .bind(&account)
            .execute(&mut **tx)
            .await?;
            sqlx::query(
                "UPDATE materials SET on_hand = on_hand - $1, reserved = reserved - $1 WHERE id = $2",
            )
            .bind(amount.0)
            .bind(&account)
            .execute(&mut **tx)
            .await?;
            draws.push(Draw { account, amount });
        }
    }
    Ok(draws)
}

/// Put consumed material back (a run the machine refused before it started).
pub async fn unconsume(tx: &mut Tx, order_id: &str, draws: &[Draw]) -> Result<()> {
    for draw in draws {
        sqlx::query(
            "UPDATE reservations SET consumed = consumed - $1 WHERE order_id = $2 AND account = $3",
        )
        .bind(draw.amount.0)
        .bind(order_id)
        .bind(&draw.account)
        .execute(&mut **tx)
        .await?;
        sqlx::query(
            "UPDATE materials SET on_hand = on_hand + $1, reserved = reserved + $1 WHERE id = $2",
        )
        .bind(draw.amount.0)
        .bind(&draw.account)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Release what the order reserved and did not consume ([`released`]).
pub async fn release(tx: &mut Tx, order_id: &str) -> Result<Vec<Draw>> {
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT account, reserved, consumed FROM reservations WHERE order_id = $1 ORDER BY account",
    )
    .bind(order_id)
    .fetch_all(&mut **tx)
    .await?;
    let reservations: Vec<(String, Amount, Amount)> = rows
        .into_iter()
        .map(|(account, reserved, consumed)| (account, Amount(reserved), Amount(consumed)))
        .collect();
    let released = released(&reservations);
    for Draw { account, amount } in &released {
        sqlx::query("UPDATE materials SET reserved = reserved - $1 WHERE id = $2")
            .bind(amount.0)
            .bind(account)
            .execute(&mut **tx)
            .await?;
        sqlx::query(
            "UPDATE reservations SET reserved = consumed WHERE order_id = $1 AND account = $2",
        )
        .bind(order_id)
        .bind(account)
        .execute(&mut **tx)
        .await?;
    }
    Ok(released)
}

/// Material the jobs of a step draw per run, from the step's `materials_json`.
pub fn per_run_needs(materials_json: &str) -> Result<BTreeMap<String, Amount>> {
    let list: Vec<(String, Amount)> = serde_json::from_str(materials_json)
        .map_err(|e| PlantError::Conflict(format!("stored step materials are unreadable: {e}")))?;
    let mut needs = BTreeMap::new();
    for (material, amount) in list {
        let total = needs.entry(material).or_insert(Amount::ZERO);
        *total = *total + amount;
    }
    Ok(needs)
}

impl Plant {
    /// Open the stock accounts the config lists and the store does not know yet.
    pub async fn open_accounts(&self, materials: &[MaterialConfig], at_ms: i64) -> Result<()> {
        let mut w = self.store.writer("system", at_ms).await?;
        for m in materials {
            let exists: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM materials WHERE id = $1")
                .bind(&m.id)
                .fetch_one(&mut *w.tx)
                .await?;
            if exists > 0 {
                continue;
            }
            sqlx::query(
                "INSERT INTO materials (id, material, unit, owner, origin, on_hand, reserved, reorder_level) \
                 VALUES ($1, $2, $3, $4, $5, $6, 0, $7)",
            )
            .bind(&m.id)
            .bind(&m.material)
            .bind(&m.unit)
            .bind(&m.owner)
            .bind(m.origin.as_str())
            .bind(m.on_hand.0)
            .bind(m.reorder_level.0)
            .execute(&mut *w.tx)
            .await?;
            w.emit(Event::MaterialAccountOpened {
                account: m.id.clone(),
                material: m.material.clone(),
                unit: m.unit.clone(),
                owner: m.owner.clone(),
                origin: m.origin.as_str().into(),
                on_hand: m.on_hand,
            })
            .await?;
        }
        w.commit().await?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(account = %account))]
    pub async fn restock(
        &self,
        account: &str,
        amount: Amount,
        lot: Option<String>,
        origin: Option<Origin>,
        actor: &str,
        at_ms: i64,
    ) -> Result<()> {
        if amount <= Amount::ZERO {
            return Err(invalid("amount", "a restock adds a positive amount"));
        }
        let mut w = self.store.writer(actor, at_ms).await?;
        let lot_origin = origin;
        let origin: Option<String> =
            sqlx::query_scalar("SELECT origin FROM materials WHERE id = $1")
                .bind(account)
                .fetch_optional(&mut *w.tx)
                .await?;
        let account_origin =
            origin.ok_or_else(|| PlantError::NotFound(format!("stock account '{account}'")))?;
        // A lot may come from elsewhere than the account's usual source.
        let origin = lot_origin.map_or(account_origin, |o| o.as_str().to_string());
        let seq: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM lots")
            .fetch_one(&mut *w.tx)
            .await?;
        let lot = lot.unwrap_or_else(|| format!("lot-{:06}", seq + 1));
        let taken: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM lots WHERE id = $1")
            .bind(&lot)
            .fetch_one(&mut *w.tx)
            .await?;
        if taken > 0 {
            return Err(PlantError::Conflict(format!(
                "lot '{lot}' is already recorded"
            )));
        }
        sqlx::query("UPDATE materials SET on_hand = on_hand + $1 WHERE id = $2")
            .bind(amount.0)
            .bind(account)
            .execute(&mut *w.tx)
            .await?;
        sqlx::query("INSERT INTO lots (id, account, origin, quantity, received_ms, note) VALUES ($1, $2, $3, $4, $5, NULL)")
            .bind(&lot)
            .bind(account)
            .bind(&origin)
            .bind(amount.0)
            .bind(at_ms)
            .execute(&mut *w.tx)
            .await?;
        w.emit(Event::MaterialRestocked {
            account: account.to_string(),
            amount,
            lot,
            origin,
        })
        .await?;
        self.reserve_for_waiting_jobs(&mut w).await?;
        w.commit().await?;
        Ok(())
    }

    /// Correct an account after a count (breakage, a miscount). Never below what is reserved.
    #[tracing::instrument(skip_all, fields(account = %account))]
    pub async fn adjust(
        &self,
        account: &str,
        delta: i64,
        reason: &str,
        actor: &str,
        at_ms: i64,
    ) -> Result<()> {
        if reason.trim().is_empty() {
            return Err(invalid("reason", "an adjustment needs a reason"));
        }
        if delta == 0 {
            return Err(invalid("delta", "an adjustment of zero changes nothing"));
        }
        let mut w = self.store.writer(actor, at_ms).await?;
        let (on_hand, reserved): (i64, i64) =
            sqlx::query_as("SELECT on_hand, reserved FROM materials WHERE id = $1")
                .bind(account)
                .fetch_optional(&mut *w.tx)
                .await?
                .ok_or_else(|| PlantError::NotFound(format!("stock account '{account}'")))?;
        if on_hand + delta < reserved {
            return Err(PlantError::Conflict(format!(
                "adjusting '{account}' by {} would leave {} on hand, below the {} reserved for approved orders",
                Amount(delta),
                Amount(on_hand + delta),
                Amount(reserved)
            )));
        }
        sqlx::query("UPDATE materials SET on_hand = on_hand + $1 WHERE id = $2")
            .bind(delta)
            .bind(account)
            .execute(&mut *w.tx)
            .await?;
        w.emit(Event::MaterialAdjusted {
            account: account.to_string(),
            delta,
            reason: reason.to_string(),
        })
        .await?;
        if delta > 0 {
            self.reserve_for_waiting_jobs(&mut w).await?;
        }
        w.commit().await?;
        Ok(())
    }

    /// Replacement runs created while material was short get it as soon as stock allows.
    pub(crate) async fn reserve_for_waiting_jobs(&self, w: &mut Writer<'_>) -> Result<()> {
        let waiting: Vec<(i64, String, String, String)> = sqlx::query_as(&format!(
            "SELECT j.id AS id, j.order_id AS order_id, o.maker AS maker, s.materials_json AS materials_json \
             FROM jobs j JOIN orders o ON o.id = j.order_id \
             JOIN steps s ON s.order_id = j.order_id AND s.step_index = j.step_index \
             WHERE j.state = $1 AND j.material_reserved = 0 AND o.state IN ({}) \
             ORDER BY j.id",
            sql_list(&OrderState::ACTIVE)
        ))
        .bind(JobState::Planned)
        .fetch_all(&mut *w.tx)
        .await?;
        for (job_id, order_id, maker, materials_json) in waiting {
            let needs = per_run_needs(&materials_json)?;
            match reserve(&mut w.tx, &order_id, &maker, &needs).await {
                Ok(reserved) => {
                    sqlx::query("UPDATE jobs SET material_reserved = 1 WHERE id = $1")
                        .bind(job_id)
                        .execute(&mut *w.tx)
                        .await?;
                    w.emit(Event::MaterialReservedForJobs {
                        order_id,
                        job_ids: vec![job_id],
                        reserved,
                    })
                    .await?;
                }
                Err(PlantError::MaterialShort(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
