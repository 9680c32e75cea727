//! Unit accounting: a run's units recorded good or scrapped and added to its step's and
//! order's counts, one good unit scrapped after inspection, replacement runs for what a step
//! still owes, and completion. The arithmetic is in [`super::rules`]; this is its SQL.

use super::records::{NewJobs, order_state_of, step_counts};
use super::rules::{self, StepCounts};
use super::state::{JobState, OrderState, sql_list};
use super::tasks::Verdict;
use super::{Plant, PlantError, Result, invalid};
use crate::store::{Event, Writer};

/// What a settled run came to.
pub(crate) struct Settled {
    pub good: i64,
    pub scrapped: i64,
    pub step_index: i64,
    pub final_step: bool,
}

#[derive(sqlx::FromRow)]
struct RunOfStep {
    units: i64,
    step_index: i64,
    is_final: i64,
}

/// What came out of a run, piece by piece.
pub(crate) enum Pieces<'a> {
    /// `scrapped` of its units were bad (all of them if it `failed`), for one `reason`: what a
    /// driver reports, or an operator resolving an interrupted run.
    Counted {
        scrapped: i64,
        failed: bool,
        reason: Option<&'a str>,
    },
    /// An operator's inspection at the unload: each scrapped piece with its own reason.
    Inspected(&'a Verdict),
}

/// Record a run's units (good, then scrap, each scrapped piece with its reason) and add them to
/// the step's and order's counts. The job row keeps `reason` (for an inspection, its summary).
pub(crate) async fn settle_units(
    w: &mut Writer<'_>,
    job_id: i64,
    order_id: &str,
    machine_id: Option<&str>,
    pieces: Pieces<'_>,
    reason: Option<&str>,
    new_state: JobState,
) -> Result<Settled> {
    let run: RunOfStep = sqlx::query_as(
        "SELECT j.units AS units, j.step_index AS step_index, s.is_final AS is_final FROM jobs j \
         JOIN steps s ON s.order_id = j.order_id AND s.step_index = j.step_index WHERE j.id = $1",
    )
    .bind(job_id)
    .fetch_one(&mut *w.tx)
    .await?;
    let final_step = run.is_final == 1;
    // One reason per scrapped piece, in order.
    let scrap_reasons: Vec<Option<&str>> = match pieces {
        Pieces::Counted {
            scrapped,
            failed,
            reason,
        } => {
            let (_, scrapped) = rules::settle(run.units, scrapped, failed);
            vec![reason; scrapped as usize]
        }
        Pieces::Inspected(verdict) => verdict
            .scrap
            .iter()
            .flat_map(|(count, reason)| std::iter::repeat_n(Some(reason.as_str()), *count as usize))
            .collect(),
    };
    let scrapped = scrap_reasons.len() as i64;
    if scrapped > run.units {
        return Err(PlantError::Conflict(format!(
            "job {job_id} has {} units, not the {scrapped} scrapped",
            run.units
        )));
    }
    let good = run.units - scrapped;
    for n in 0..run.units {
        let (result, piece_reason) = if n < good {
            ("good", None)
        } else {
            ("scrapped", scrap_reasons[(n - good) as usize])
        };
        sqlx::query(
            "INSERT INTO units (order_id, step_index, job_id, machine_id, result, reason, at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(order_id)
        .bind(run.step_index)
        .bind(job_id)
        .bind(machine_id)
        .bind(result)
        .bind(piece_reason)
        .bind(w.at_ms)
        .execute(&mut *w.tx)
        .await?;
    }
    sqlx::query("UPDATE jobs SET state = $1, good = $2, scrapped = $3, reason = $4, finished_ms = $5 WHERE id = $6")
        .bind(new_state)
        .bind(good)
        .bind(scrapped)
        .bind(reason)
        .bind(w.at_ms)
        .bind(job_id)
        .execute(&mut *w.tx)
        .await?;
    sqlx::query("UPDATE steps SET good = good + $1, scrapped = scrapped + $2 WHERE order_id = $3 AND step_index = $4")
        .bind(good)
        .bind(scrapped)
        .bind(order_id)
        .bind(run.step_index)
        .execute(&mut *w.tx)
        .await?;
    sqlx::query("UPDATE orders SET good = good + $1, scrapped = scrapped + $2, updated_ms = $3 WHERE id = $4")
        .bind(if final_step { good } else { 0 })
        .bind(scrapped)
        .bind(w.at_ms)
        .bind(order_id)
        .execute(&mut *w.tx)
        .await?;
    Ok(Settled {
        good,
        scrapped,
        step_index: run.step_index,
        final_step,
    })
}

#[derive(sqlx::FromRow)]
struct OrderCounts {
    state: OrderState,
    quantity: i64,
    maker: String,
    good: i64,
}

async fn order_counts(w: &mut Writer<'_>, order_id: &str) -> Result<OrderCounts> {
    Ok(
        sqlx::query_as("SELECT state, quantity, maker, good FROM orders WHERE id = $1")
            .bind(order_id)
            .fetch_one(&mut *w.tx)
            .await?,
    )
}

#[derive(sqlx::FromRow)]
struct PartialRun {
    id: i64,
    units: i64,
}

#[derive(sqlx::FromRow)]
struct ScrappableUnit {
    order_id: String,
    step_index: i64,
    job_id: i64,
    result: String,
}

impl Plant {
    /// Create replacement runs for every step that now has fewer units coming than it must
    /// deliver ([`rules::deficit`], covered as [`rules::replacement`] says). A closed order
    /// gets nothing: a late outcome of one of its runs settles that run only.
    pub(crate) async fn top_up(&self, w: &mut Writer<'_>, order_id: &str) -> Result<()> {
        let order = order_counts(w, order_id).await?;
        if !order.state.is_active() {
            return Ok(());
        }
        let steps = step_counts(&mut w.tx, order_id).await?;
        let mut created = NewJobs::default();
        let mut reserved_all = Vec::new();
        for s in &steps {
            let deficit = rules::deficit(&steps, s.index, order.quantity);
            if deficit == 0 {
                continue;
            }
            let partial: Option<PartialRun> = sqlx::query_as(
                "SELECT id, units FROM jobs WHERE order_id = $1 AND step_index = $2 AND state = $3 \
                 AND units < $4 ORDER BY id DESC LIMIT 1",
            )
            .bind(order_id)
            .bind(s.index)
            .bind(JobState::Planned)
            .bind(s.units_per_run)
            .fetch_optional(&mut *w.tx)
            .await?;
            let plan =
                rules::replacement(deficit, s.units_per_run, partial.as_ref().map(|p| p.units));
            if let Some(partial) = partial.filter(|_| plan.topped_up > 0) {
                sqlx::query("UPDATE jobs SET units = units + $1 WHERE id = $2")
                    .bind(plan.topped_up)
                    .bind(partial.id)
                    .execute(&mut *w.tx)
                    .await?;
                w.emit(Event::JobToppedUp {
                    order_id: order_id.to_string(),
                    job_id: partial.id,
                    units_added: plan.topped_up,
                })
                .await?;
            }
            if plan.new_runs.is_empty() {
                continue;
            }
            let needs = super::stock::per_run_needs(&step_materials(w, order_id, s).await?)?;
            for units in plan.new_runs {
                let reserved =
                    match super::stock::reserve(&mut w.tx, order_id, &order.maker, &needs).await {
                        Ok(draws) => Some(draws),
                        Err(PlantError::MaterialShort(_)) => None,
                        Err(e) => return Err(e),
                    };
                let job_id = created
                    .push(w, order_id, s.index, units, reserved.is_some())
                    .await?;
                match reserved {
                    Some(draws) => reserved_all.extend(draws),
                    None => {
                        for (material, needed) in &needs {
                            w.emit(Event::MaterialShort {
                                order_id: order_id.to_string(),
                                job_id,
                                material: material.clone(),
                                needed: *needed,
                            })
                            .await?;
                        }
                    }
                }
            }
        }
        created.emit(w, order_id, reserved_all).await
    }

    /// Complete the order when [`rules::order_complete`] says so, releasing what it reserved
    /// and did not use.
    pub(crate) async fn complete_if_done(&self, w: &mut Writer<'_>, order_id: &str) -> Result<()> {
        let order = order_counts(w, order_id).await?;
        let unfinished: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM jobs WHERE order_id = $1 AND state IN ({})",
            sql_list(&JobState::OPEN)
        ))
        .bind(order_id)
        .fetch_one(&mut *w.tx)
        .await?;
        if !rules::order_complete(order.state, order.quantity, order.good, unfinished) {
            return Ok(());
        }
        let released = super::stock::release(&mut w.tx, order_id).await?;
        sqlx::query("UPDATE orders SET state = $1, updated_ms = $2 WHERE id = $3")
            .bind(OrderState::Completed)
            .bind(w.at_ms)
            .bind(order_id)
            .execute(&mut *w.tx)
            .await?;
        w.emit(Event::OrderCompleted {
            order_id: order_id.to_string(),
            released,
        })
        .await?;
        Ok(())
    }

    /// An operator marks one good unit scrapped (found bad at inspection). A unit already
    /// used by a later step cannot be scrapped alone ([`rules::unit_scrappable`]): scrap the
    /// later step's unit.
    #[tracing::instrument(skip_all, fields(unit = unit_id))]
    pub async fn scrap_unit(
        &self,
        unit_id: i64,
        reason: &str,
        actor: &str,
        at_ms: i64,
    ) -> Result<()> {
        if reason.trim().is_empty() {
            return Err(invalid("reason", "a scrapped unit needs a reason"));
        }
        let mut w = self.store.writer(actor, at_ms).await?;
        let unit: ScrappableUnit =
            sqlx::query_as("SELECT order_id, step_index, job_id, result FROM units WHERE id = $1")
                .bind(unit_id)
                .fetch_optional(&mut *w.tx)
                .await?
                .ok_or_else(|| PlantError::NotFound(format!("unit {unit_id}")))?;
        if unit.result != "good" {
            return Err(PlantError::Conflict(format!(
                "unit {unit_id} is already scrapped"
            )));
        }
        let ScrappableUnit {
            order_id,
            step_index,
            job_id,
            ..
        } = unit;
        let state = order_state_of(&mut w.tx, &order_id).await?;
        if state == OrderState::Cancelled {
            return Err(PlantError::Conflict(format!(
                "order {order_id} is cancelled"
            )));
        }
        let steps = step_counts(&mut w.tx, &order_id).await?;
        let final_step = steps
            .iter()
            .find(|s| s.index == step_index)
            .ok_or_else(|| PlantError::NotFound(format!("step {step_index} of order {order_id}")))?
            .is_final;
        if !rules::unit_scrappable(&steps, step_index) {
            return Err(PlantError::Conflict("every good unit of this step is already in a later step's work: scrap that unit instead".to_string()));
        }
        sqlx::query("UPDATE units SET result = 'scrapped', reason = $1, at_ms = $2 WHERE id = $3")
            .bind(reason)
            .bind(at_ms)
            .bind(unit_id)
            .execute(&mut *w.tx)
            .await?;
        sqlx::query("UPDATE jobs SET good = good - 1, scrapped = scrapped + 1 WHERE id = $1")
            .bind(job_id)
            .execute(&mut *w.tx)
            .await?;
        sqlx::query("UPDATE steps SET good = good - 1, scrapped = scrapped + 1 WHERE order_id = $1 AND step_index = $2")
            .bind(&order_id)
            .bind(step_index)
            .execute(&mut *w.tx)
            .await?;
        sqlx::query("UPDATE orders SET scrapped = scrapped + 1, good = good - $1, updated_ms = $2 WHERE id = $3")
            .bind(i64::from(final_step))
            .bind(at_ms)
            .bind(&order_id)
            .execute(&mut *w.tx)
            .await?;
        w.emit(Event::UnitScrapped {
            order_id: order_id.clone(),
            unit_id,
            job_id,
            step_index,
            reason: reason.to_string(),
            final_step,
        })
        .await?;
        if state == OrderState::Completed {
            sqlx::query("UPDATE orders SET state = $1, updated_ms = $2 WHERE id = $3")
                .bind(OrderState::InProgress)
                .bind(at_ms)
                .bind(&order_id)
                .execute(&mut *w.tx)
                .await?;
            w.emit(Event::OrderReopened {
                order_id: order_id.clone(),
                reason: format!("unit {unit_id} scrapped after completion: {reason}"),
            })
            .await?;
        }
        if state != OrderState::Submitted {
            self.top_up(&mut w, &order_id).await?;
        }
        w.commit().await?;
        Ok(())
    }
}

/// A step's per-run draw as stored (`materials_json`).
async fn step_materials(w: &mut Writer<'_>, order_id: &str, step: &StepCounts) -> Result<String> {
    Ok(sqlx::query_scalar(
        "SELECT materials_json FROM steps WHERE order_id = $1 AND step_index = $2",
    )
    .bind(order_id)
    .bind(step.index)
    .fetch_one(&mut *w.tx)
    .await?)
}
