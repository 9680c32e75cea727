//! Jobs: one run of one step on one machine. Readiness (inputs made, material reserved),
//! dispatch, what machines report back, unit accounting, and replacement work for scrap.

use std::collections::{BTreeMap, HashMap};

use microfab_drivers::{JobRun, Program, ResumePoint};
use microfab_planner::{PlanInput, PlanMachine, PlanOrder, PlanRun, Priority};
use sqlx::{Any, Row, Transaction};

use super::{Plant, PlantError, Result, invalid, job_state, order_state};
use crate::store::events::NewJob;
use crate::store::{Draw, Event, Writer};

type Tx = Transaction<'static, Any>;

/// Jobs inserted in one transaction, announced in one `jobs_created` event.
#[derive(Default)]
pub struct NewJobs(Vec<NewJob>);

impl NewJobs {
    pub async fn push(
        &mut self,
        w: &mut Writer<'_>,
        order_id: &str,
        step_index: i64,
        units: i64,
        material_reserved: bool,
    ) -> Result<i64> {
        let job_id: i64 = sqlx::query_scalar(
            "INSERT INTO jobs (order_id, step_index, units, state, material_reserved, created_ms) \
             VALUES ($1, $2, $3, 'planned', $4, $5) RETURNING id",
        )
        .bind(order_id)
        .bind(step_index)
        .bind(units)
        .bind(i64::from(material_reserved))
        .bind(w.at_ms)
        .fetch_one(&mut *w.tx)
        .await?;
        self.0.push(NewJob {
            job_id,
            step_index,
            units,
            material_reserved,
        });
        Ok(job_id)
    }

    pub async fn emit(self, w: &mut Writer<'_>, order_id: &str, reserved: Vec<Draw>) -> Result<()> {
        if !self.0.is_empty() {
            w.emit(Event::JobsCreated {
                order_id: order_id.to_string(),
                jobs: self.0,
                reserved,
            })
            .await?;
        }
        Ok(())
    }
}

/// A step of an order with its unit counts, as the accounting needs it.
#[derive(Debug, Clone)]
struct StepCounts {
    index: i64,
    units_per_run: i64,
    predecessors: Vec<i64>,
    materials_json: String,
    is_final: bool,
    good: i64,
    scrapped: i64,
    /// Units in runs not yet finished (planned, on a machine, or interrupted).
    open: i64,
    /// Units of runs that took their inputs (dispatched, running, done, failed, interrupted).
    started: i64,
}

async fn step_counts(tx: &mut Tx, order_id: &str) -> Result<Vec<StepCounts>> {
    let rows = sqlx::query(
        "SELECT s.step_index AS step_index, s.units_per_run AS units_per_run, s.predecessors_json AS predecessors_json, \
         s.materials_json AS materials_json, s.is_final AS is_final, s.good AS good, s.scrapped AS scrapped, \
         CAST(COALESCE(SUM(CASE WHEN j.state IN ('planned','dispatched','running','interrupted') THEN j.units ELSE 0 END), 0) AS BIGINT) AS open_units, \
         CAST(COALESCE(SUM(CASE WHEN j.state IN ('dispatched','running','done','failed','interrupted') THEN j.units ELSE 0 END), 0) AS BIGINT) AS started_units \
         FROM steps s LEFT JOIN jobs j ON j.order_id = s.order_id AND j.step_index = s.step_index \
         WHERE s.order_id = $1 GROUP BY s.step_index, s.units_per_run, s.predecessors_json, s.materials_json, s.is_final, s.good, s.scrapped \
         ORDER BY s.step_index",
    )
    .bind(order_id)
    .fetch_all(&mut **tx)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(StepCounts {
                index: r.try_get("step_index")?,
                units_per_run: r.try_get("units_per_run")?,
                predecessors: serde_json::from_str(&r.try_get::<String, _>("predecessors_json")?)
                    .map_err(|e| {
                    PlantError::Conflict(format!("stored step is unreadable: {e}"))
                })?,
                materials_json: r.try_get("materials_json")?,
                is_final: r.try_get::<i64, _>("is_final")? == 1,
                good: r.try_get("good")?,
                scrapped: r.try_get("scrapped")?,
                open: r.try_get("open_units")?,
                started: r.try_get("started_units")?,
            })
        })
        .collect()
}

/// Steps that come after `index`, directly or not.
fn descendants(steps: &[StepCounts], index: i64) -> Vec<i64> {
    let mut found: Vec<i64> = Vec::new();
    let mut frontier = vec![index];
    while let Some(current) = frontier.pop() {
        for s in steps {
            if s.predecessors.contains(&current) && !found.contains(&s.index) {
                found.push(s.index);
                frontier.push(s.index);
            }
        }
    }
    found
}

/// Units step `s` must deliver: the order's quantity, plus one for every piece scrapped
/// downstream (it carried one of this step's units with it).
fn required(steps: &[StepCounts], s: &StepCounts, quantity: i64) -> i64 {
    let downstream: i64 = descendants(steps, s.index)
        .iter()
        .map(|d| {
            steps
                .iter()
                .find(|x| x.index == *d)
                .map_or(0, |x| x.scrapped)
        })
        .sum();
    quantity + downstream
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub job_id: i64,
    pub machine_id: String,
}

impl Plant {
    /// Create replacement runs for every step that now has fewer units coming than it must
    /// deliver. Tops up the last planned partial run first, so a sheet is not cut for one part.
    /// A closed order gets nothing: a late outcome of one of its runs settles that run only.
    async fn top_up(&self, w: &mut Writer<'_>, order_id: &str) -> Result<()> {
        let order = sqlx::query("SELECT state, quantity, maker FROM orders WHERE id = $1")
            .bind(order_id)
            .fetch_one(&mut *w.tx)
            .await?;
        if !order_state::is_active(&order.try_get::<String, _>("state")?) {
            return Ok(());
        }
        let quantity: i64 = order.try_get("quantity")?;
        let maker: String = order.try_get("maker")?;
        let steps = step_counts(&mut w.tx, order_id).await?;
        let mut created = NewJobs::default();
        let mut reserved_all = Vec::new();
        for s in &steps {
            let mut deficit = required(&steps, s, quantity) - s.good - s.open;
            if deficit <= 0 {
                continue;
            }
            let partial = sqlx::query(
                "SELECT id, units FROM jobs WHERE order_id = $1 AND step_index = $2 AND state = 'planned' \
                 AND units < $3 ORDER BY id DESC LIMIT 1",
            )
            .bind(order_id)
            .bind(s.index)
            .bind(s.units_per_run)
            .fetch_optional(&mut *w.tx)
            .await?;
            if let Some(row) = partial {
                let job_id: i64 = row.try_get("id")?;
                let units: i64 = row.try_get("units")?;
                let added = deficit.min(s.units_per_run - units);
                sqlx::query("UPDATE jobs SET units = units + $1 WHERE id = $2")
                    .bind(added)
                    .bind(job_id)
                    .execute(&mut *w.tx)
                    .await?;
                w.emit(Event::JobToppedUp {
                    order_id: order_id.to_string(),
                    job_id,
                    units_added: added,
                })
                .await?;
                deficit -= added;
            }
            let needs = super::stock::per_run_needs(&s.materials_json)?;
            while deficit > 0 {
                let units = deficit.min(s.units_per_run);
                let reserved =
                    match super::stock::reserve(&mut w.tx, order_id, &maker, &needs).await {
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
                deficit -= units;
            }
        }
        created.emit(w, order_id, reserved_all).await
    }

    /// Complete the order when its final step has delivered the quantity and nothing is left
    /// on a machine or waiting for an operator.
    async fn complete_if_done(&self, w: &mut Writer<'_>, order_id: &str) -> Result<()> {
        let row = sqlx::query("SELECT state, quantity, good FROM orders WHERE id = $1")
            .bind(order_id)
            .fetch_one(&mut *w.tx)
            .await?;
        let state: String = row.try_get("state")?;
        let quantity: i64 = row.try_get("quantity")?;
        let good: i64 = row.try_get("good")?;
        if state != order_state::IN_PROGRESS || good < quantity {
            return Ok(());
        }
        let active: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM jobs WHERE order_id = $1 AND state IN ('planned', 'dispatched', 'running', 'interrupted')",
        )
        .bind(order_id)
        .fetch_one(&mut *w.tx)
        .await?;
        if active > 0 {
            return Ok(());
        }
        let released = super::stock::release(&mut w.tx, order_id).await?;
        sqlx::query("UPDATE orders SET state = 'completed', updated_ms = $1 WHERE id = $2")
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

    /// What the planner needs: machines (idle, busy until when, or out of service), open
    /// orders, runs still to dispatch with readiness and run-level predecessors, and the runs
    /// on machines now (frozen).
    pub async fn plan_input(&self, now_ms: i64) -> Result<PlanInput> {
        let mut tx = self.store.pool.begin().await?;
        let machine_rows = sqlx::query(
            "SELECT id, capabilities_json, envelope_json, state, maintenance, current_job, speed_factor, setup_family, \
             (SELECT COUNT(*) FROM jobs j WHERE j.machine_id = machines.id AND j.state = 'interrupted') AS holding \
             FROM machines ORDER BY id",
        )
        .fetch_all(&mut *tx)
        .await?;
        let mut machines = Vec::new();
        let mut envelopes: HashMap<String, [f64; 3]> = HashMap::new();
        for r in &machine_rows {
            let id: String = r.try_get("id")?;
            let state: String = r.try_get("state")?;
            // A machine holding an interrupted run waits for the operator: its bed or fixture
            // still has that run's pieces on it.
            let maintenance =
                r.try_get::<i64, _>("maintenance")? == 1 || r.try_get::<i64, _>("holding")? > 0;
            let current: Option<i64> = r.try_get("current_job")?;
            let working = current.is_some() && matches!(state.as_str(), "idle" | "busy" | "paused");
            envelopes.insert(
                id.clone(),
                serde_json::from_str(&r.try_get::<String, _>("envelope_json")?).unwrap_or_default(),
            );
            machines.push(PlanMachine {
                id,
                capabilities: serde_json::from_str(&r.try_get::<String, _>("capabilities_json")?)
                    .unwrap_or_default(),
                idle: state == "idle" && !maintenance && current.is_none(),
                speed_factor: r.try_get("speed_factor")?,
                current_setup: r.try_get("setup_family")?,
                out_of_service: maintenance || !(state == "idle" || working),
                ..PlanMachine::default()
            });
        }
        let speed: HashMap<String, f64> = machines
            .iter()
            .map(|m| (m.id.clone(), m.speed_factor))
            .collect();
        let orders = sqlx::query(
            "SELECT id, priority, due_ms, seq FROM orders WHERE state IN ('approved', 'in_progress') ORDER BY seq",
        )
        .fetch_all(&mut *tx)
        .await?;
        let mut plan_orders = Vec::new();
        let mut runs = Vec::new();
        let mut frozen = Vec::new();
        for o in &orders {
            let order_id: String = o.try_get("id")?;
            plan_orders.push(PlanOrder {
                id: order_id.clone(),
                priority: if o.try_get::<String, _>("priority")? == "public-service" {
                    Priority::PublicService
                } else {
                    Priority::Standard
                },
                due: o.try_get("due_ms")?,
                sequence: o.try_get("seq")?,
                ..PlanOrder::default()
            });
            let steps = step_counts(&mut tx, &order_id).await?;
            let step_rows = sqlx::query(
                "SELECT step_index, step_id, capability, run_seconds, setup_seconds, setup_family, bbox_json \
                 FROM steps WHERE order_id = $1",
            )
            .bind(&order_id)
            .fetch_all(&mut *tx)
            .await?;
            let mut step_info: HashMap<i64, PlanRun> = HashMap::new();
            for r in &step_rows {
                let capability: String = r.try_get("capability")?;
                let bbox: Option<String> = r.try_get("bbox_json")?;
                let capable: Vec<&PlanMachine> =
                    machines.iter().filter(|m| m.can_do(&capability)).collect();
                let fitting: Vec<String> = capable
                    .iter()
                    .filter(|m| {
                        bbox.as_deref().is_none_or(|b| {
                            let (min, max): ([f64; 3], [f64; 3]) =
                                serde_json::from_str(b).unwrap_or_default();
                            super::orders::envelope_fits(
                                envelopes[&m.id],
                                [max[0] - min[0], max[1] - min[1], max[2] - min[2]],
                            )
                        })
                    })
                    .map(|m| m.id.clone())
                    .collect();
                step_info.insert(
                    r.try_get("step_index")?,
                    PlanRun {
                        order_id: order_id.clone(),
                        step_id: r.try_get("step_id")?,
                        capability,
                        run_seconds: r.try_get("run_seconds")?,
                        setup_seconds: r.try_get("setup_seconds")?,
                        setup_family: r.try_get("setup_family")?,
                        only_on: if fitting.len() == capable.len() {
                            Vec::new()
                        } else {
                            fitting
                        },
                        ..PlanRun::default()
                    },
                );
            }
            let jobs = sqlx::query(
                "SELECT id, step_index, units, state, material_reserved, machine_id, dispatched_ms, started_ms \
                 FROM jobs WHERE order_id = $1 AND state IN ('planned', 'dispatched', 'running') ORDER BY id",
            )
            .bind(&order_id)
            .fetch_all(&mut *tx)
            .await?;
            // Open runs per step in id order, for run-level predecessors.
            let mut open: BTreeMap<i64, Vec<(i64, i64)>> = BTreeMap::new();
            let mut in_flight = std::collections::BTreeSet::new();
            for job in &jobs {
                let step_index: i64 = job.try_get("step_index")?;
                open.entry(step_index)
                    .or_default()
                    .push((job.try_get("id")?, job.try_get("units")?));
                if job.try_get::<String, _>("state")? != job_state::PLANNED {
                    in_flight.insert(step_index);
                }
            }
            // Inputs are counted, not tracked piece by piece: a step may start as many units
            // as every predecessor step has made good.
            let mut started: BTreeMap<i64, i64> =
                steps.iter().map(|s| (s.index, s.started)).collect();
            let mut wanted: BTreeMap<i64, i64> = started.clone();
            for job in &jobs {
                let job_id: i64 = job.try_get("id")?;
                let step_index: i64 = job.try_get("step_index")?;
                let units: i64 = job.try_get("units")?;
                let state: String = job.try_get("state")?;
                let template = step_info.get(&step_index).cloned().unwrap_or_default();
                if state != job_state::PLANNED {
                    let machine_id: Option<String> = job.try_get("machine_id")?;
                    let machine_id = machine_id.unwrap_or_default();
                    let began: Option<i64> = job.try_get("started_ms")?;
                    let dispatched: Option<i64> = job.try_get("dispatched_ms")?;
                    let start = began.or(dispatched).unwrap_or(now_ms);
                    let length = (template.run_seconds
                        * speed.get(&machine_id).copied().unwrap_or(1.0)
                        * 1000.0) as i64;
                    frozen.push(microfab_planner::FrozenRun {
                        run_id: job_id,
                        order_id: order_id.clone(),
                        machine_id,
                        setup_family: template.setup_family,
                        start,
                        end: (start + length).max(now_ms + 1),
                    });
                    continue;
                }
                let step = steps.iter().find(|s| s.index == step_index);
                let inputs = step.map_or(0, |s| {
                    s.predecessors
                        .iter()
                        .map(|p| steps.iter().find(|x| x.index == *p).map_or(0, |x| x.good))
                        .min()
                        .unwrap_or(i64::MAX)
                });
                let already = started.get(&step_index).copied().unwrap_or(0);
                // A partial run waits while other runs of its step are on machines: their scrap
                // can still join it, instead of each replacement drawing a whole sheet or bed.
                let partial_waits = step.is_some_and(|s| units < s.units_per_run)
                    && in_flight.contains(&step_index);
                let ready = job.try_get::<i64, _>("material_reserved")? == 1
                    && already + units <= inputs
                    && !partial_waits;
                if ready {
                    started.insert(step_index, already + units);
                }
                let need = wanted.get(&step_index).copied().unwrap_or(0) + units;
                wanted.insert(step_index, need);
                let mut predecessors = Vec::new();
                for p in step.map(|s| s.predecessors.as_slice()).unwrap_or_default() {
                    let mut covered = steps.iter().find(|x| x.index == *p).map_or(0, |x| x.good);
                    for (id, u) in open.get(p).map(Vec::as_slice).unwrap_or_default() {
                        if covered >= need {
                            break;
                        }
                        predecessors.push(*id);
                        covered += u;
                    }
                }
                runs.push(PlanRun {
                    id: job_id,
                    ready,
                    predecessors,
                    ..template
                });
            }
        }
        tx.commit().await?;
        for machine in &mut machines {
            machine.available_from = frozen
                .iter()
                .filter(|f| f.machine_id == machine.id)
                .map(|f| f.end)
                .max();
        }
        Ok(PlanInput {
            now: now_ms,
            machines,
            orders: plan_orders,
            runs,
            frozen,
            ..PlanInput::default()
        })
    }

    /// Mark a job dispatched to a machine and take its material, durably, before the machine
    /// is told anything. Returns what to send, or `None` if the decision went stale (the job
    /// or machine changed meanwhile) or the machine's envelope is too small for the program.
    pub async fn dispatch(
        &self,
        job_id: i64,
        machine_id: &str,
        at_ms: i64,
    ) -> Result<Option<JobRun>> {
        let mut w = self.store.writer("dispatcher", at_ms).await?;
        let job = sqlx::query(
            "SELECT j.order_id AS order_id, j.state AS state, s.materials_json AS materials_json, \
             s.bbox_json AS bbox_json, s.setup_family AS setup_family \
             FROM jobs j JOIN steps s ON s.order_id = j.order_id AND s.step_index = j.step_index WHERE j.id = $1",
        )
        .bind(job_id)
        .fetch_optional(&mut *w.tx)
        .await?
        .ok_or_else(|| PlantError::NotFound(format!("job {job_id}")))?;
        let (machine_free, envelope_json) = machine_free(&mut w.tx, machine_id).await?;
        if job.try_get::<String, _>("state")? != job_state::PLANNED || !machine_free {
            return Ok(None);
        }
        let bbox: Option<String> = job.try_get("bbox_json")?;
        if let Some(bbox) = bbox {
            let envelope: [f64; 3] = serde_json::from_str(&envelope_json).unwrap_or_default();
            let (min, max): ([f64; 3], [f64; 3]) = serde_json::from_str(&bbox).unwrap_or_default();
            let size = [max[0] - min[0], max[1] - min[1], max[2] - min[2]];
            if !super::orders::envelope_fits(envelope, size) {
                return Ok(None);
            }
        }
        let order_id: String = job.try_get("order_id")?;
        let needs = super::stock::per_run_needs(&job.try_get::<String, _>("materials_json")?)?;
        let consumed = super::stock::consume(&mut w.tx, &order_id, &needs).await?;
        sqlx::query("UPDATE jobs SET state = 'dispatched', machine_id = $1, dispatched_ms = $2 WHERE id = $3")
            .bind(machine_id)
            .bind(at_ms)
            .bind(job_id)
            .execute(&mut *w.tx)
            .await?;
        sqlx::query("UPDATE machines SET current_job = $1, setup_family = $2, updated_ms = $3 WHERE id = $4")
            .bind(job_id)
            .bind(job.try_get::<String, _>("setup_family")?)
            .bind(at_ms)
            .bind(machine_id)
            .execute(&mut *w.tx)
            .await?;
        sqlx::query("UPDATE orders SET state = 'in_progress', updated_ms = $1 WHERE id = $2 AND state = 'approved'")
            .bind(at_ms)
            .bind(&order_id)
            .execute(&mut *w.tx)
            .await?;
        w.emit(Event::JobDispatched {
            order_id,
            job_id,
            machine_id: machine_id.to_string(),
            consumed,
        })
        .await?;
        let run = job_run(&mut w.tx, job_id).await?;
        w.commit().await?;
        Ok(Some(run))
    }

    /// The machine refused the run before starting it: nothing was made, the material goes
    /// back, the job is planned again.
    pub async fn requeue(&self, job_id: i64, reason: &str, at_ms: i64) -> Result<()> {
        let mut w = self.store.writer("dispatcher", at_ms).await?;
        let (order_id, machine_id) = job_on_machine(&mut w.tx, job_id).await?;
        let consumed = dispatched_draws(&mut w.tx, job_id).await?;
        super::stock::unconsume(&mut w.tx, &order_id, &consumed).await?;
        // The order may have closed while the machine was refusing: its run then ends here and
        // its material goes back to stock, since nothing may stay reserved for a closed order.
        let order_now = super::orders::order_state_of(&mut w.tx, &order_id).await?;
        let cancelled = !order_state::is_active(&order_now);
        let released = if cancelled {
            sqlx::query("UPDATE jobs SET state = 'cancelled', machine_id = NULL, dispatched_ms = NULL, finished_ms = $1 WHERE id = $2")
                .bind(at_ms)
                .bind(job_id)
                .execute(&mut *w.tx)
                .await?;
            super::stock::release(&mut w.tx, &order_id).await?
        } else {
            sqlx::query("UPDATE jobs SET state = 'planned', machine_id = NULL, dispatched_ms = NULL WHERE id = $1")
                .bind(job_id)
                .execute(&mut *w.tx)
                .await?;
            Vec::new()
        };
        free_machine(&mut w.tx, &machine_id, at_ms).await?;
        w.emit(Event::JobRequeued {
            order_id,
            job_id,
            machine_id,
            returned: consumed,
            reason: reason.to_string(),
            cancelled,
            released,
        })
        .await?;
        w.commit().await?;
        Ok(())
    }

    pub async fn job_started(&self, job_id: i64, at_ms: i64) -> Result<()> {
        let mut w = self.store.writer("machine", at_ms).await?;
        let (order_id, machine_id) = job_on_machine(&mut w.tx, job_id).await?;
        let changed = sqlx::query("UPDATE jobs SET state = 'running', started_ms = $1 WHERE id = $2 AND state = 'dispatched'")
            .bind(at_ms)
            .bind(job_id)
            .execute(&mut *w.tx)
            .await?
            .rows_affected();
        if changed == 1 {
            w.emit(Event::JobStarted {
                order_id,
                job_id,
                machine_id,
            })
            .await?;
        }
        w.commit().await?;
        Ok(())
    }

    /// A run ended with a known outcome: `scrapped` of its units are bad (all of them for a
    /// failed run). Records the units, replaces the scrap, completes the order when done.
    pub async fn job_finished(
        &self,
        job_id: i64,
        scrapped: i64,
        failed: bool,
        reason: Option<String>,
        at_ms: i64,
    ) -> Result<()> {
        let mut w = self.store.writer("machine", at_ms).await?;
        let (order_id, machine_id) = job_on_machine(&mut w.tx, job_id).await?;
        let state: String = sqlx::query_scalar("SELECT state FROM jobs WHERE id = $1")
            .bind(job_id)
            .fetch_one(&mut *w.tx)
            .await?;
        if state != job_state::DISPATCHED && state != job_state::RUNNING {
            // Already settled (e.g. interrupted, then resolved by an operator): a late report
            // must not count the units a second time.
            return Ok(());
        }
        let new_state = if failed {
            job_state::FAILED
        } else {
            job_state::DONE
        };
        let (good, scrapped, step_index, final_step) = settle_units(
            &mut w,
            job_id,
            &order_id,
            Some(&machine_id),
            scrapped,
            failed,
            reason.as_deref(),
            new_state,
        )
        .await?;
        free_machine(&mut w.tx, &machine_id, at_ms).await?;
        w.emit(Event::JobFinished {
            order_id: order_id.clone(),
            job_id,
            machine_id,
            step_index,
            state: new_state.into(),
            good,
            scrapped,
            reason,
            final_step,
        })
        .await?;
        if scrapped > 0 {
            self.top_up(&mut w, &order_id).await?;
        }
        self.complete_if_done(&mut w, &order_id).await?;
        w.commit().await?;
        Ok(())
    }

    /// The run stopped and nobody knows what came out: an operator decides (resolves it, or
    /// resumes it from `resume` where the driver offers that). Its machine takes no other work
    /// meanwhile.
    pub async fn job_interrupted(
        &self,
        job_id: i64,
        reason: &str,
        resume: Option<ResumePoint>,
        at_ms: i64,
    ) -> Result<()> {
        let mut w = self.store.writer("machine", at_ms).await?;
        let (order_id, machine_id) = job_on_machine(&mut w.tx, job_id).await?;
        let resume_json = resume
            .as_ref()
            .map(|point| serde_json::to_string(point).expect("a resume point serializes"));
        let changed = sqlx::query(
            "UPDATE jobs SET state = 'interrupted', reason = $1, resume_json = $2 WHERE id = $3 AND state IN ('dispatched', 'running')",
        )
        .bind(reason)
        .bind(resume_json)
        .bind(job_id)
        .execute(&mut *w.tx)
        .await?
        .rows_affected();
        if changed == 1 {
            free_machine(&mut w.tx, &machine_id, at_ms).await?;
            w.emit(Event::JobInterrupted {
                order_id,
                job_id,
                machine_id,
                reason: reason.to_string(),
                resume,
            })
            .await?;
        }
        w.commit().await?;
        Ok(())
    }

    /// An operator sends an interrupted run back to the machine that ran it, from `from_line`
    /// of its program (by default the first line not acknowledged). Returns what to send; the
    /// driver has the last word (it refuses if the machine lost its state), see
    /// [`Plant::resume_refused`].
    pub async fn resume(
        &self,
        job_id: i64,
        from_line: Option<u32>,
        reason: &str,
        actor: &str,
        at_ms: i64,
    ) -> Result<(String, JobRun, u32)> {
        if reason.trim().is_empty() {
            return Err(invalid("reason", "say why (what the operator checked)"));
        }
        let mut w = self.store.writer(actor, at_ms).await?;
        let row =
            sqlx::query("SELECT order_id, state, machine_id, resume_json FROM jobs WHERE id = $1")
                .bind(job_id)
                .fetch_optional(&mut *w.tx)
                .await?
                .ok_or_else(|| PlantError::NotFound(format!("job {job_id}")))?;
        let state: String = row.try_get("state")?;
        if state != job_state::INTERRUPTED {
            return Err(PlantError::Conflict(format!(
                "job {job_id} is {state}: only an interrupted job is resumed"
            )));
        }
        let order_id: String = row.try_get("order_id")?;
        let order_now = super::orders::order_state_of(&mut w.tx, &order_id).await?;
        if !order_state::is_active(&order_now) {
            return Err(PlantError::Conflict(format!(
                "order {order_id} is {order_now}: its run is not resumed; resolve it instead"
            )));
        }
        let machine_id: String = row
            .try_get::<Option<String>, _>("machine_id")?
            .ok_or_else(|| PlantError::Conflict(format!("job {job_id} never reached a machine")))?;
        let machine = self.config.machine(&machine_id).ok_or_else(|| {
            PlantError::Conflict(format!("machine '{machine_id}' is no longer configured"))
        })?;
        if !machine.resumes_interrupted() {
            return Err(PlantError::Conflict(format!(
                "machine '{machine_id}' does not resume interrupted runs ({} driver{}): resolve the run instead",
                machine.driver.kind(),
                if machine.driver.can_resume() {
                    ", resume_interrupted = false"
                } else {
                    ""
                },
            )));
        }
        let point: ResumePoint = match row.try_get::<Option<String>, _>("resume_json")? {
            Some(json) => serde_json::from_str(&json).map_err(|e| {
                PlantError::Conflict(format!("job {job_id}: bad resume point: {e}"))
            })?,
            None => {
                return Err(PlantError::Conflict(format!(
                    "job {job_id}: the driver could not tell where it stopped (it reported a \
                     restart, an alarm or an abort): resolve the run instead"
                )));
            }
        };
        let from_line = from_line.unwrap_or(point.next_line);
        let latest = point.latest_start();
        if from_line == 0 || from_line > latest {
            return Err(invalid(
                "from_line",
                format!(
                    "resume from a line between 1 and {latest}: later would skip a command that may never have run"
                ),
            ));
        }
        // Off the machine's hold first: the machine must be free but for this very run.
        sqlx::query("UPDATE jobs SET state = 'dispatched', reason = NULL WHERE id = $1")
            .bind(job_id)
            .execute(&mut *w.tx)
            .await?;
        if !machine_free(&mut w.tx, &machine_id).await?.0 {
            return Err(PlantError::Conflict(format!(
                "machine '{machine_id}' cannot take the run now: it must be connected, idle, out of maintenance and hold no other interrupted run"
            )));
        }
        sqlx::query("UPDATE machines SET current_job = $1, updated_ms = $2 WHERE id = $3")
            .bind(job_id)
            .bind(at_ms)
            .bind(&machine_id)
            .execute(&mut *w.tx)
            .await?;
        w.emit(Event::JobResumed {
            order_id,
            job_id,
            machine_id: machine_id.clone(),
            from_line,
            reason: reason.to_string(),
        })
        .await?;
        let run = job_run(&mut w.tx, job_id).await?;
        w.commit().await?;
        Ok((machine_id, run, from_line))
    }

    /// The driver refused to resume: the run is interrupted again, as it was.
    pub async fn resume_refused(&self, job_id: i64, why: &str, at_ms: i64) -> Result<()> {
        let resume_json: Option<String> =
            sqlx::query_scalar("SELECT resume_json FROM jobs WHERE id = $1")
                .bind(job_id)
                .fetch_one(&self.store.pool)
                .await?;
        let resume = resume_json.and_then(|json| serde_json::from_str(&json).ok());
        self.job_interrupted(job_id, &format!("resume refused: {why}"), resume, at_ms)
            .await
    }

    /// An operator settles an interrupted run: how many of its units are good, the rest scrap.
    pub async fn resolve(
        &self,
        job_id: i64,
        good: i64,
        reason: &str,
        actor: &str,
        at_ms: i64,
    ) -> Result<()> {
        if reason.trim().is_empty() {
            return Err(invalid("reason", "say why (what the operator found)"));
        }
        let mut w = self.store.writer(actor, at_ms).await?;
        let row = sqlx::query("SELECT order_id, state, units, machine_id FROM jobs WHERE id = $1")
            .bind(job_id)
            .fetch_optional(&mut *w.tx)
            .await?
            .ok_or_else(|| PlantError::NotFound(format!("job {job_id}")))?;
        let state: String = row.try_get("state")?;
        let units: i64 = row.try_get("units")?;
        if state != job_state::INTERRUPTED {
            return Err(PlantError::Conflict(format!(
                "job {job_id} is {state}: only an interrupted job is resolved by an operator"
            )));
        }
        if !(0..=units).contains(&good) {
            return Err(invalid(
                "good",
                format!("job {job_id} made at most {units} units, not {good}"),
            ));
        }
        let order_id: String = row.try_get("order_id")?;
        let machine_id: Option<String> = row.try_get("machine_id")?;
        let (good, scrapped, step_index, final_step) = settle_units(
            &mut w,
            job_id,
            &order_id,
            machine_id.as_deref(),
            units - good,
            false,
            Some(reason),
            job_state::DONE,
        )
        .await?;
        w.emit(Event::JobResolved {
            order_id: order_id.clone(),
            job_id,
            step_index,
            outcome: if scrapped == 0 {
                "good"
            } else if good == 0 {
                "scrapped"
            } else {
                "partly good"
            }
            .into(),
            good,
            scrapped,
            final_step,
            reason: reason.to_string(),
        })
        .await?;
        if scrapped > 0 {
            self.top_up(&mut w, &order_id).await?;
        }
        self.complete_if_done(&mut w, &order_id).await?;
        w.commit().await?;
        Ok(())
    }

    /// An operator marks one good unit scrapped (found bad at inspection). A unit already
    /// used by a later step cannot be scrapped alone: scrap the later step's unit.
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
        let unit =
            sqlx::query("SELECT order_id, step_index, job_id, result FROM units WHERE id = $1")
                .bind(unit_id)
                .fetch_optional(&mut *w.tx)
                .await?
                .ok_or_else(|| PlantError::NotFound(format!("unit {unit_id}")))?;
        if unit.try_get::<String, _>("result")? != "good" {
            return Err(PlantError::Conflict(format!(
                "unit {unit_id} is already scrapped"
            )));
        }
        let order_id: String = unit.try_get("order_id")?;
        let step_index: i64 = unit.try_get("step_index")?;
        let job_id: i64 = unit.try_get("job_id")?;
        let state = super::orders::order_state_of(&mut w.tx, &order_id).await?;
        if state == order_state::CANCELLED {
            return Err(PlantError::Conflict(format!(
                "order {order_id} is cancelled"
            )));
        }
        let steps = step_counts(&mut w.tx, &order_id).await?;
        let step = steps
            .iter()
            .find(|s| s.index == step_index)
            .ok_or_else(|| {
                PlantError::NotFound(format!("step {step_index} of order {order_id}"))
            })?;
        let used_downstream = steps
            .iter()
            .filter(|s| s.predecessors.contains(&step_index))
            .map(|s| s.started)
            .max()
            .unwrap_or(0);
        if !step.is_final && step.good - used_downstream < 1 {
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
            .bind(i64::from(step.is_final))
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
            final_step: step.is_final,
        })
        .await?;
        if state == order_state::COMPLETED {
            sqlx::query("UPDATE orders SET state = 'in_progress', updated_ms = $1 WHERE id = $2")
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
        if state != order_state::SUBMITTED {
            self.top_up(&mut w, &order_id).await?;
        }
        w.commit().await?;
        Ok(())
    }

    /// After a restart: runs that were on machines whose state did not survive (in-process
    /// simulators, manual stations) are interrupted — never re-sent on a guess.
    pub async fn interrupt_orphaned_jobs(
        &self,
        machine_ids: &[String],
        at_ms: i64,
    ) -> Result<Vec<i64>> {
        let mut interrupted = Vec::new();
        for machine_id in machine_ids {
            let jobs: Vec<i64> = sqlx::query_scalar(
                "SELECT id FROM jobs WHERE machine_id = $1 AND state IN ('dispatched', 'running') ORDER BY id",
            )
            .bind(machine_id)
            .fetch_all(&self.store.pool)
            .await?;
            for job_id in jobs {
                self.job_interrupted(
                    job_id,
                    "the orchestrator restarted while this job was on the machine; what it made is unknown",
                    None,
                    at_ms,
                )
                .await?;
                interrupted.push(job_id);
            }
        }
        Ok(interrupted)
    }
}

/// Record a run's units (good, then scrap) and add them to the step's and order's counts.
#[allow(clippy::too_many_arguments)]
async fn settle_units(
    w: &mut Writer<'_>,
    job_id: i64,
    order_id: &str,
    machine_id: Option<&str>,
    scrapped: i64,
    failed: bool,
    reason: Option<&str>,
    new_state: &str,
) -> Result<(i64, i64, i64, bool)> {
    let row = sqlx::query(
        "SELECT j.units AS units, j.step_index AS step_index, s.is_final AS is_final FROM jobs j \
         JOIN steps s ON s.order_id = j.order_id AND s.step_index = j.step_index WHERE j.id = $1",
    )
    .bind(job_id)
    .fetch_one(&mut *w.tx)
    .await?;
    let units: i64 = row.try_get("units")?;
    let step_index: i64 = row.try_get("step_index")?;
    let final_step = row.try_get::<i64, _>("is_final")? == 1;
    let scrapped = if failed {
        units
    } else {
        scrapped.clamp(0, units)
    };
    let good = units - scrapped;
    for n in 0..units {
        let result = if n < good { "good" } else { "scrapped" };
        sqlx::query(
            "INSERT INTO units (order_id, step_index, job_id, machine_id, result, reason, at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(order_id)
        .bind(step_index)
        .bind(job_id)
        .bind(machine_id)
        .bind(result)
        .bind(if n < good { None } else { reason })
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
        .bind(step_index)
        .execute(&mut *w.tx)
        .await?;
    sqlx::query("UPDATE orders SET good = good + $1, scrapped = scrapped + $2, updated_ms = $3 WHERE id = $4")
        .bind(if final_step { good } else { 0 })
        .bind(scrapped)
        .bind(w.at_ms)
        .bind(order_id)
        .execute(&mut *w.tx)
        .await?;
    Ok((good, scrapped, step_index, final_step))
}

async fn job_on_machine(tx: &mut Tx, job_id: i64) -> Result<(String, String)> {
    let row = sqlx::query("SELECT order_id, machine_id FROM jobs WHERE id = $1")
        .bind(job_id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| PlantError::NotFound(format!("job {job_id}")))?;
    let machine_id: Option<String> = row.try_get("machine_id")?;
    Ok((
        row.try_get("order_id")?,
        machine_id
            .ok_or_else(|| PlantError::Conflict(format!("job {job_id} is not on a machine")))?,
    ))
}

async fn dispatched_draws(tx: &mut Tx, job_id: i64) -> Result<Vec<Draw>> {
    let data: Option<String> = sqlx::query_scalar(
        "SELECT data FROM events WHERE job_id = $1 AND kind = 'job_dispatched' ORDER BY seq DESC LIMIT 1",
    )
    .bind(job_id)
    .fetch_optional(&mut **tx)
    .await?;
    match data.map(|d| serde_json::from_str::<Event>(&d)) {
        Some(Ok(Event::JobDispatched { consumed, .. })) => Ok(consumed),
        _ => Err(PlantError::Conflict(format!(
            "job {job_id} has no dispatch record"
        ))),
    }
}

/// Whether the machine can take a run now (idle, in service, empty, holding no interrupted
/// run), and its envelope.
async fn machine_free(tx: &mut Tx, machine_id: &str) -> Result<(bool, String)> {
    let machine = sqlx::query(
        "SELECT state, maintenance, current_job, envelope_json, \
         (SELECT COUNT(*) FROM jobs j WHERE j.machine_id = machines.id AND j.state = 'interrupted') AS holding \
         FROM machines WHERE id = $1",
    )
    .bind(machine_id)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| PlantError::NotFound(format!("machine '{machine_id}'")))?;
    let free = machine.try_get::<String, _>("state")? == "idle"
        && machine.try_get::<i64, _>("maintenance")? == 0
        && machine.try_get::<Option<i64>, _>("current_job")?.is_none()
        && machine.try_get::<i64, _>("holding")? == 0;
    Ok((free, machine.try_get("envelope_json")?))
}

/// What the driver is sent for a job: its step's program and run.
async fn job_run(tx: &mut Tx, job_id: i64) -> Result<JobRun> {
    let job = sqlx::query(
        "SELECT j.units AS units, s.program_kind AS program_kind, s.program_name AS program_name, \
         s.run_seconds AS run_seconds, p.text AS program_text \
         FROM jobs j JOIN steps s ON s.order_id = j.order_id AND s.step_index = j.step_index \
         LEFT JOIN programs p ON p.sha256 = s.program_sha256 WHERE j.id = $1",
    )
    .bind(job_id)
    .fetch_one(&mut **tx)
    .await?;
    let name: Option<String> = job.try_get("program_name")?;
    let name = name.unwrap_or_else(|| "manual step".into());
    let text: Option<String> = job.try_get("program_text")?;
    let program = match (job.try_get::<String, _>("program_kind")?.as_str(), text) {
        ("gcode", Some(text)) => Program::GCode {
            name,
            text: text.into(),
        },
        _ => Program::Named { name },
    };
    Ok(JobRun {
        job_id,
        program,
        units: job.try_get::<i64, _>("units")? as u32,
        expected_seconds: job.try_get("run_seconds")?,
    })
}

async fn free_machine(tx: &mut Tx, machine_id: &str, at_ms: i64) -> Result<()> {
    sqlx::query("UPDATE machines SET current_job = NULL, updated_ms = $1 WHERE id = $2")
        .bind(at_ms)
        .bind(machine_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
