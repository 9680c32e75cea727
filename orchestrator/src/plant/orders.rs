//! Order lifecycle: submit (validated, pre-screened) → approve (material reserved, jobs
//! created) | reject → in progress → completed; cancel releases what was not consumed.

use microfab_job_specs::{CheckedSpec, ProgramRef};

use super::records::{NewJobs, order_state_of};
use super::rules;
use super::state::{JobState, OrderState, sql_list};
use super::{Plant, PlantError, Result, invalid};
use crate::amount::Amount;
use crate::store::Event;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StepMaterial(pub String, pub Amount);

/// The order a submission made, or the one an earlier submission with the same key made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submission {
    pub order_id: String,
    pub already_submitted: bool,
}

impl Plant {
    /// Record a validated spec as a `submitted` order. With a `submission_key` already known,
    /// returns the existing order instead (so a restarted demo or a repeated `microfab submit`
    /// never submits twice).
    #[tracing::instrument(skip_all, fields(maker = %spec.spec.maker, order = tracing::field::Empty))]
    pub async fn submit(
        &self,
        spec: &CheckedSpec,
        submission_key: Option<&str>,
        actor: &str,
        at_ms: i64,
    ) -> Result<Submission> {
        let mut w = self.store.writer(actor, at_ms).await?;
        if let Some(key) = submission_key {
            let existing: Option<String> =
                sqlx::query_scalar("SELECT id FROM orders WHERE submission_key = $1")
                    .bind(key)
                    .fetch_optional(&mut *w.tx)
                    .await?;
            if let Some(order_id) = existing {
                tracing::Span::current().record("order", tracing::field::display(&order_id));
                tracing::debug!("submitted again: the order this submission key made");
                return Ok(Submission {
                    order_id,
                    already_submitted: true,
                });
            }
        }
        let s = &spec.spec;
        let flags: Vec<String> = (self.screen_in(&mut w.tx, spec, at_ms).await?.flags())
            .iter()
            .map(ToString::to_string)
            .collect();
        let seq: i64 =
            sqlx::query_scalar("SELECT CAST(COALESCE(MAX(seq), 0) + 1 AS BIGINT) FROM orders")
                .fetch_one(&mut *w.tx)
                .await?;
        let order_id = format!("ord-{seq:06}");
        tracing::Span::current().record("order", tracing::field::display(&order_id));
        let priority = match s.priority {
            microfab_job_specs::Priority::PublicService => "public-service",
            microfab_job_specs::Priority::Standard => "standard",
        };
        sqlx::query(
            "INSERT INTO orders (id, seq, product, maker, quantity, priority, due_ms, state, source_name, \
             spec_json, prescreen_json, submission_key, submitted_ms, updated_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)",
        )
        .bind(&order_id)
        .bind(seq)
        .bind(&s.product)
        .bind(&s.maker)
        .bind(s.quantity as i64)
        .bind(priority)
        .bind(s.due_unix_millis())
        .bind(OrderState::Submitted)
        .bind(&spec.source_name)
        .bind(serde_json::to_string(s).map_err(|e| PlantError::Conflict(e.to_string()))?)
        .bind(serde_json::to_string(&flags).unwrap_or_default())
        .bind(submission_key)
        .bind(at_ms)
        .execute(&mut *w.tx)
        .await?;
        for (index, step) in s.steps.iter().enumerate() {
            let (kind, name, sha, bbox) = match &step.program {
                Some(ProgramRef::GCode(path)) => {
                    let program = &spec.programs[path];
                    sqlx::query("INSERT INTO programs (sha256, name, text) VALUES ($1, $2, $3) ON CONFLICT (sha256) DO NOTHING")
                        .bind(&program.sha256)
                        .bind(path)
                        .bind(&program.text)
                        .execute(&mut *w.tx)
                        .await?;
                    let bbox = program
                        .bounding_box
                        .as_ref()
                        .map(|b| serde_json::to_string(&(b.min, b.max)).unwrap_or_default());
                    (
                        "gcode",
                        Some(path.clone()),
                        Some(program.sha256.clone()),
                        bbox,
                    )
                }
                Some(ProgramRef::OpcUa { opcua }) => ("opcua", Some(opcua.clone()), None, None),
                None => ("none", None, None, None),
            };
            let materials: Vec<StepMaterial> = step
                .materials
                .iter()
                .map(|m| {
                    StepMaterial(
                        m.material.clone(),
                        Amount::from_decimal(m.per_run).unwrap_or_default(),
                    )
                })
                .collect();
            sqlx::query(
                "INSERT INTO steps (order_id, step_index, step_id, capability, program_kind, program_name, \
                 program_sha256, bbox_json, units_per_run, run_seconds, setup_seconds, setup_family, \
                 predecessors_json, materials_json, is_final) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
            )
            .bind(&order_id)
            .bind(index as i64)
            .bind(&step.id)
            .bind(&step.capability)
            .bind(kind)
            .bind(name)
            .bind(sha)
            .bind(bbox)
            .bind(step.units_per_run as i64)
            .bind(step.run_seconds)
            .bind(step.setup_seconds)
            .bind(spec.setup_family(index))
            .bind(serde_json::to_string(&spec.predecessors[index]).unwrap_or_default())
            .bind(serde_json::to_string(&materials).unwrap_or_default())
            .bind(i64::from(index == spec.final_step))
            .execute(&mut *w.tx)
            .await?;
        }
        w.emit(Event::OrderSubmitted {
            order_id: order_id.clone(),
            product: s.product.clone(),
            maker: s.maker.clone(),
            quantity: s.quantity as i64,
            priority: priority.into(),
            flags,
        })
        .await?;
        w.commit().await?;
        Ok(Submission {
            order_id,
            already_submitted: false,
        })
    }

    /// Reserve what the order's runs will draw ([`rules::approval_needs`]) and create its
    /// runs ([`rules::run_sizes`] per step), or refuse with what is short, changing nothing.
    #[tracing::instrument(skip_all, fields(order = %order_id))]
    pub async fn approve(&self, order_id: &str, actor: &str, at_ms: i64) -> Result<()> {
        let mut w = self.store.writer(actor, at_ms).await?;
        let order: ApprovalRow =
            sqlx::query_as("SELECT state, maker, quantity FROM orders WHERE id = $1")
                .bind(order_id)
                .fetch_optional(&mut *w.tx)
                .await?
                .ok_or_else(|| PlantError::NotFound(format!("order '{order_id}'")))?;
        if order.state != OrderState::Submitted {
            return Err(PlantError::Conflict(format!(
                "order {order_id} is {}: only a submitted order can be approved",
                order.state
            )));
        }
        let steps: Vec<StepDraw> = sqlx::query_as(
            "SELECT step_index, units_per_run, materials_json FROM steps WHERE order_id = $1 ORDER BY step_index",
        )
        .bind(order_id)
        .fetch_all(&mut *w.tx)
        .await?;
        let per_run = steps
            .iter()
            .map(|step| super::stock::per_run_needs(&step.materials_json))
            .collect::<Result<Vec<_>>>()?;
        let needs = rules::approval_needs(
            order.quantity,
            steps.iter().map(|s| s.units_per_run).zip(&per_run),
        );
        sqlx::query("UPDATE orders SET state = $1, updated_ms = $2 WHERE id = $3")
            .bind(OrderState::Approved)
            .bind(at_ms)
            .bind(order_id)
            .execute(&mut *w.tx)
            .await?;
        let reserved = super::stock::reserve(&mut w.tx, order_id, &order.maker, &needs).await?;
        w.emit(Event::OrderApproved {
            order_id: order_id.to_string(),
            reserved,
        })
        .await?;
        let mut created = NewJobs::default();
        for step in &steps {
            for units in rules::run_sizes(order.quantity, step.units_per_run) {
                created
                    .push(&mut w, order_id, step.step_index, units, true)
                    .await?;
            }
        }
        created.emit(&mut w, order_id, Vec::new()).await?;
        w.commit().await?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(order = %order_id))]
    pub async fn reject(
        &self,
        order_id: &str,
        reason: &str,
        actor: &str,
        at_ms: i64,
    ) -> Result<()> {
        if reason.trim().is_empty() {
            return Err(invalid(
                "reason",
                "a rejection needs a reason the maker can read",
            ));
        }
        let mut w = self.store.writer(actor, at_ms).await?;
        let state = order_state_of(&mut w.tx, order_id).await?;
        if state != OrderState::Submitted {
            return Err(PlantError::Conflict(format!(
                "order {order_id} is {state}: only a submitted order can be rejected"
            )));
        }
        sqlx::query(
            "UPDATE orders SET state = $1, state_reason = $2, updated_ms = $3 WHERE id = $4",
        )
        .bind(OrderState::Rejected)
        .bind(reason)
        .bind(at_ms)
        .bind(order_id)
        .execute(&mut *w.tx)
        .await?;
        w.emit(Event::OrderRejected {
            order_id: order_id.to_string(),
            reason: reason.to_string(),
        })
        .await?;
        w.commit().await?;
        Ok(())
    }

    /// Cancel an order: planned runs are dropped, reserved material not yet consumed goes back.
    /// Returns the jobs still on machines, which the runtime aborts.
    #[tracing::instrument(skip_all, fields(order = %order_id))]
    pub async fn cancel(
        &self,
        order_id: &str,
        reason: &str,
        actor: &str,
        at_ms: i64,
    ) -> Result<Vec<(i64, String)>> {
        if reason.trim().is_empty() {
            return Err(invalid("reason", "a cancellation needs a reason"));
        }
        let mut w = self.store.writer(actor, at_ms).await?;
        let state = order_state_of(&mut w.tx, order_id).await?;
        if !(state == OrderState::Submitted || state.is_active()) {
            return Err(PlantError::Conflict(format!(
                "order {order_id} is {state}: it cannot be cancelled"
            )));
        }
        let cancelled_jobs: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM jobs WHERE order_id = $1 AND state = $2 ORDER BY id",
        )
        .bind(order_id)
        .bind(JobState::Planned)
        .fetch_all(&mut *w.tx)
        .await?;
        sqlx::query(
            "UPDATE jobs SET state = $1, finished_ms = $2 WHERE order_id = $3 AND state = $4",
        )
        .bind(JobState::Cancelled)
        .bind(at_ms)
        .bind(order_id)
        .bind(JobState::Planned)
        .execute(&mut *w.tx)
        .await?;
        let on_machines: Vec<(i64, String)> = sqlx::query_as(&format!(
            "SELECT id, machine_id FROM jobs WHERE order_id = $1 AND state IN ({}) ORDER BY id",
            sql_list(&JobState::ON_MACHINE)
        ))
        .bind(order_id)
        .fetch_all(&mut *w.tx)
        .await?;
        let released = super::stock::release(&mut w.tx, order_id).await?;
        sqlx::query(
            "UPDATE orders SET state = $1, state_reason = $2, updated_ms = $3 WHERE id = $4",
        )
        .bind(OrderState::Cancelled)
        .bind(reason)
        .bind(at_ms)
        .bind(order_id)
        .execute(&mut *w.tx)
        .await?;
        w.emit(Event::OrderCancelled {
            order_id: order_id.to_string(),
            reason: reason.to_string(),
            released,
            cancelled_jobs,
        })
        .await?;
        self.cancel_awaiting_loads(&mut w, order_id, reason).await?;
        w.commit().await?;
        Ok(on_machines)
    }
}

#[derive(sqlx::FromRow)]
struct ApprovalRow {
    state: OrderState,
    maker: String,
    quantity: i64,
}

#[derive(sqlx::FromRow)]
struct StepDraw {
    step_index: i64,
    units_per_run: i64,
    materials_json: String,
}
