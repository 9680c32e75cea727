//! The pre-screen: what an operator checks before approving an order. One pure function,
//! [`screen`], computes the whole report from a checked spec, the plant config and the stock
//! an order of its maker may draw; the flags recorded at submission are [`PrescreenReport::flags`]
//! of that same report, so what the intake page shows and what was flagged never disagree.
//!
//! At submission the spec is the one just checked; later it is rebuilt from what the store
//! kept (the spec as JSON and the programs by hash), checked again by the same checker.

use std::collections::BTreeMap;
use std::fmt;

use microfab_job_specs::{CheckedSpec, InMemory, ProgramRef, SpecFormat};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::records::Tx;
use super::rules::{approval_needs, envelope_fits};
use super::stock::{EntitledAccount, entitled_accounts};
use super::{Plant, PlantError, Result, invalid};
use crate::amount::Amount;
use crate::config::PlantConfig;
use crate::store::format_ms;

/// Everything the pre-screen looked at, and what it found.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PrescreenReport {
    /// The spec as the maker wrote it, re-serialised as TOML.
    pub spec_toml: String,
    pub quantity: QuantityCheck,
    pub programs: Vec<ProgramSummary>,
    pub steps: Vec<StepCheck>,
    pub materials: Vec<MaterialCheck>,
    pub timing: TimingCheck,
    /// What the checker noticed though the spec is valid: a declared run time below the
    /// program's own estimate, the G-code preflight's warnings.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QuantityCheck {
    pub quantity: u32,
    pub min: u32,
    pub max: u32,
    pub within_policy: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProgramSummary {
    /// The path the spec names it by.
    pub name: String,
    pub sha256: String,
    pub bytes: usize,
    pub lines: usize,
    /// Extent of its moves along X, Y, Z in mm; null without motion.
    pub size_mm: Option<[f64; 3]>,
    /// The preflight's feed-rate estimate of one run.
    pub estimated_seconds: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StepCheck {
    pub id: String,
    pub capability: String,
    pub program: Option<String>,
    pub runs: u32,
    pub run_seconds: f64,
    pub setup_seconds: f64,
    /// Every machine with the capability, and how the step's program suits it.
    pub machines: Vec<MachineFit>,
    /// Machines that can run it in parallel (capable, envelope large enough).
    pub lanes: usize,
    /// Earliest start and end, in seconds from the screen, along the process plan.
    pub earliest_start_seconds: f64,
    pub earliest_end_seconds: f64,
    /// On the chain of steps that sets the earliest completion.
    pub critical: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MachineFit {
    pub machine_id: String,
    pub driver: String,
    pub envelope_mm: [f64; 3],
    /// Whether the program's moves fit the envelope (parts may be turned a quarter); null
    /// for a step without a G-code program.
    pub fits: Option<bool>,
    /// How far the program sticks out along X, Y, Z in the better orientation; zeros if it fits.
    pub excess_mm: Option<[f64; 3]>,
    /// Why the machine's driver refuses the program; null when it accepts it (or no program).
    pub driver_refusal: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MaterialCheck {
    pub material: String,
    pub needed: Amount,
    /// Available to this order: the maker's own accounts first, then the common inventory,
    /// less what other orders reserved.
    pub available: Amount,
    pub accounts: Vec<AccountAvailable>,
}

impl MaterialCheck {
    pub fn short(&self) -> bool {
        self.available < self.needed
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AccountAvailable {
    pub account: String,
    pub owner: String,
    pub available: Amount,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TimingCheck {
    /// The instant the screen was made for.
    pub screened_at: String,
    /// Step ids along the critical path, first to last.
    pub critical_path: Vec<String>,
    /// Runs over the capable lanes plus setups, along the critical path.
    pub critical_seconds: f64,
    pub earliest_completion: String,
    pub due: String,
    /// Due minus earliest completion; negative when the due date is out of reach.
    pub slack_seconds: f64,
}

impl TimingCheck {
    pub fn meets_due(&self) -> bool {
        self.slack_seconds >= 0.0
    }
}

/// The pre-screen of one stored order, for the intake page and `GET /orders/{id}/prescreen`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OrderPrescreen {
    pub order_id: String,
    /// What the pre-screen flags now (the order's `prescreen` field holds those at submission).
    pub flags: Vec<String>,
    pub report: PrescreenReport,
}

/// One thing the pre-screen flags for an operator to look at. Its `Display` is the sentence
/// the order records and the API sends; the panel words each kind from its catalog.
#[derive(Debug, Clone, PartialEq)]
pub enum Flag {
    QuantityOutsidePolicy {
        quantity: u32,
        min: u32,
        max: u32,
    },
    NoCapableMachine {
        step: String,
        capability: String,
    },
    LargerThanEveryEnvelope {
        step: String,
        capability: String,
        size_mm: [f64; 3],
    },
    NoDriverAccepts {
        step: String,
        capability: String,
        refusals: Vec<String>,
    },
    MaterialShort {
        material: String,
        needed: Amount,
        available: Amount,
    },
    DueUnreachable {
        due: String,
        critical_seconds: f64,
    },
}

impl fmt::Display for Flag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Flag::QuantityOutsidePolicy { quantity, min, max } => {
                write!(
                    f,
                    "quantity {quantity} is outside the plant's range {min}-{max}"
                )
            }
            Flag::NoCapableMachine { step, capability } => {
                write!(
                    f,
                    "step '{step}': no machine in this plant can do '{capability}'"
                )
            }
            Flag::LargerThanEveryEnvelope {
                step,
                capability,
                size_mm: [x, y, z],
            } => write!(
                f,
                "step '{step}': the program's moves span {x:.0} x {y:.0} x {z:.0} mm, larger than every '{capability}' machine's envelope"
            ),
            Flag::NoDriverAccepts {
                step,
                capability,
                refusals,
            } => write!(
                f,
                "step '{step}': no '{capability}' machine's driver accepts the program ({})",
                refusals.join("; ")
            ),
            Flag::MaterialShort {
                material,
                needed,
                available,
            } => write!(
                f,
                "material short: {material} needs {needed}, {available} available to this order"
            ),
            Flag::DueUnreachable {
                due,
                critical_seconds,
            } => write!(
                f,
                "due date {due} is not reachable: the process plan needs at least {:.1} h on this fleet",
                critical_seconds / 3600.0
            ),
        }
    }
}

impl PrescreenReport {
    /// What an operator must look at before approving: quantity outside the plant's range, no
    /// machine that can do a step or whose envelope fits its program, no fitting machine's
    /// driver that accepts it, material short, due date out of reach.
    pub fn flags(&self) -> Vec<Flag> {
        let mut flags = Vec::new();
        let q = &self.quantity;
        if !q.within_policy {
            flags.push(Flag::QuantityOutsidePolicy {
                quantity: q.quantity,
                min: q.min,
                max: q.max,
            });
        }
        for step in &self.steps {
            let named = || (step.id.clone(), step.capability.clone());
            if step.machines.is_empty() {
                let (step, capability) = named();
                flags.push(Flag::NoCapableMachine { step, capability });
                continue;
            }
            let fitting: Vec<&MachineFit> = step
                .machines
                .iter()
                .filter(|m| m.fits != Some(false))
                .collect();
            let program = step
                .program
                .as_ref()
                .and_then(|name| self.programs.iter().find(|p| &p.name == name));
            if fitting.is_empty() {
                if let Some(size_mm) = program.and_then(|p| p.size_mm) {
                    let (step, capability) = named();
                    flags.push(Flag::LargerThanEveryEnvelope {
                        step,
                        capability,
                        size_mm,
                    });
                }
                continue;
            }
            if program.is_some() && fitting.iter().all(|m| m.driver_refusal.is_some()) {
                let (step, capability) = named();
                flags.push(Flag::NoDriverAccepts {
                    step,
                    capability,
                    refusals: fitting
                        .iter()
                        .filter_map(|m| {
                            m.driver_refusal
                                .as_ref()
                                .map(|e| format!("{}: {e}", m.machine_id))
                        })
                        .collect(),
                });
            }
        }
        for m in self.materials.iter().filter(|m| m.short()) {
            flags.push(Flag::MaterialShort {
                material: m.material.clone(),
                needed: m.needed,
                available: m.available,
            });
        }
        let t = &self.timing;
        if !t.meets_due() {
            flags.push(Flag::DueUnreachable {
                due: t.due.clone(),
                critical_seconds: t.critical_seconds,
            });
        }
        flags
    }
}

/// The material the whole order draws, as approval will reserve it ([`approval_needs`]).
pub fn material_needs(spec: &CheckedSpec) -> Result<BTreeMap<String, Amount>> {
    let mut per_step = Vec::new();
    for (i, step) in spec.spec.steps.iter().enumerate() {
        let mut per_run = BTreeMap::new();
        for draw in &step.materials {
            let amount = Amount::from_decimal(draw.per_run)
                .map_err(|e| invalid(&format!("steps[{i}].materials"), e))?;
            let total = per_run.entry(draw.material.clone()).or_insert(Amount::ZERO);
            *total = *total + amount;
        }
        per_step.push((i64::from(step.units_per_run), per_run));
    }
    Ok(approval_needs(
        i64::from(spec.spec.quantity),
        per_step.iter().map(|(units, per_run)| (*units, per_run)),
    ))
}

/// How far a box of `size` sticks out of `envelope` along X, Y, Z, in the orientation (as
/// laid, or turned a quarter on the table) that sticks out least. Zero on every axis exactly
/// when [`envelope_fits`].
pub fn envelope_excess(envelope: [f64; 3], size: [f64; 3]) -> [f64; 3] {
    let over = |s: f64, e: f64| (s - e - 1e-6).max(0.0);
    let laid = [
        over(size[0], envelope[0]),
        over(size[1], envelope[1]),
        over(size[2], envelope[2]),
    ];
    let turned = [
        over(size[1], envelope[0]),
        over(size[0], envelope[1]),
        laid[2],
    ];
    let total = |e: &[f64; 3]| e[0] + e[1];
    if total(&turned) < total(&laid) {
        turned
    } else {
        laid
    }
}

/// The pre-screen of `spec` on this plant at `now_ms`, given what an order of its maker may
/// draw of each material it needs (`stock`, from [`entitled_accounts`]). Pure.
pub fn screen(
    config: &PlantConfig,
    spec: &CheckedSpec,
    needs: &BTreeMap<String, Amount>,
    stock: &BTreeMap<String, Vec<EntitledAccount>>,
    now_ms: i64,
) -> PrescreenReport {
    let s = &spec.spec;
    let policy = &config.policy;
    let mut steps: Vec<StepCheck> = Vec::new();
    for (i, step) in s.steps.iter().enumerate() {
        let program = spec.program(i);
        let size = program.and_then(|p| p.bounding_box).map(|b| b.size());
        let machines: Vec<MachineFit> = config
            .machines
            .iter()
            .map(|m| m.get_ref())
            .filter(|m| m.capabilities.iter().any(|c| c == &step.capability))
            .map(|m| MachineFit {
                machine_id: m.id.clone(),
                driver: m.driver.kind().to_string(),
                envelope_mm: m.envelope_mm,
                fits: size.map(|size| envelope_fits(m.envelope_mm, size)),
                excess_mm: size.map(|size| envelope_excess(m.envelope_mm, size)),
                driver_refusal: program.and_then(|p| m.driver.preflight(&p.text).err()),
            })
            .collect();
        let lanes = machines.iter().filter(|m| m.fits != Some(false)).count();
        let runs = spec.runs(i);
        let own =
            (f64::from(runs) / lanes.max(1) as f64).ceil() * step.run_seconds + step.setup_seconds;
        let start = spec.predecessors[i]
            .iter()
            .map(|&p| steps[p].earliest_end_seconds)
            .fold(0.0, f64::max);
        steps.push(StepCheck {
            id: step.id.clone(),
            capability: step.capability.clone(),
            program: match &step.program {
                Some(ProgramRef::GCode(path)) => Some(path.clone()),
                Some(ProgramRef::OpcUa { opcua }) => Some(format!("opcua:{opcua}")),
                None => None,
            },
            runs,
            run_seconds: step.run_seconds,
            setup_seconds: step.setup_seconds,
            machines,
            lanes,
            earliest_start_seconds: start,
            earliest_end_seconds: start + own,
            critical: false,
        });
    }
    let critical_path = mark_critical_path(&mut steps, &spec.predecessors, spec.final_step);
    let critical_seconds = steps[spec.final_step].earliest_end_seconds;
    let due_ms = s.due_unix_millis();
    let earliest_ms = now_ms + (critical_seconds * 1000.0) as i64;
    PrescreenReport {
        spec_toml: toml::to_string(s)
            .unwrap_or_else(|_| serde_json::to_string_pretty(s).unwrap_or_default()),
        quantity: QuantityCheck {
            quantity: s.quantity,
            min: policy.min_quantity,
            max: policy.max_quantity,
            within_policy: (policy.min_quantity..=policy.max_quantity).contains(&s.quantity),
        },
        programs: spec
            .programs
            .values()
            .map(|p| ProgramSummary {
                name: p.path.clone(),
                sha256: p.sha256.clone(),
                bytes: p.text.len(),
                lines: p.lines,
                size_mm: p.bounding_box.map(|b| b.size()),
                estimated_seconds: p.estimated_seconds,
            })
            .collect(),
        steps,
        materials: needs
            .iter()
            .map(|(material, needed)| {
                let accounts: Vec<AccountAvailable> = stock
                    .get(material)
                    .into_iter()
                    .flatten()
                    .map(|a| AccountAvailable {
                        account: a.id.clone(),
                        owner: a.owner.clone(),
                        available: a.available,
                    })
                    .collect();
                MaterialCheck {
                    material: material.clone(),
                    needed: *needed,
                    available: accounts.iter().map(|a| a.available).sum(),
                    accounts,
                }
            })
            .collect(),
        timing: TimingCheck {
            screened_at: format_ms(now_ms),
            critical_path,
            critical_seconds,
            earliest_completion: format_ms(earliest_ms),
            due: format_ms(due_ms),
            slack_seconds: (due_ms - earliest_ms) as f64 / 1000.0,
        },
        warnings: spec.warnings(),
    }
}

/// Walk back from the final step through the predecessor that ends last; mark those steps
/// and return their ids, first to last.
fn mark_critical_path(
    steps: &mut [StepCheck],
    predecessors: &[Vec<usize>],
    final_step: usize,
) -> Vec<String> {
    let mut path = Vec::new();
    let mut at = Some(final_step);
    while let Some(i) = at {
        steps[i].critical = true;
        path.push(steps[i].id.clone());
        at = predecessors[i].iter().copied().max_by(|&a, &b| {
            steps[a]
                .earliest_end_seconds
                .total_cmp(&steps[b].earliest_end_seconds)
        });
    }
    path.reverse();
    path
}

/// What an order of `maker` may draw of each needed material, per account.
async fn stock_for(
    tx: &mut Tx,
    needs: &BTreeMap<String, Amount>,
    maker: &str,
) -> Result<BTreeMap<String, Vec<EntitledAccount>>> {
    let mut stock = BTreeMap::new();
    for material in needs.keys() {
        stock.insert(
            material.clone(),
            entitled_accounts(tx, material, maker).await?,
        );
    }
    Ok(stock)
}

impl Plant {
    /// The pre-screen of `spec` now, reading stock in `tx` (the submission's transaction).
    pub(super) async fn screen_in(
        &self,
        tx: &mut Tx,
        spec: &CheckedSpec,
        now_ms: i64,
    ) -> Result<PrescreenReport> {
        let needs = material_needs(spec)?;
        let stock = stock_for(tx, &needs, &spec.spec.maker).await?;
        Ok(screen(&self.config, spec, &needs, &stock, now_ms))
    }

    /// The pre-screen of a stored order at `now_ms`: its spec rebuilt from the store and
    /// screened against today's fleet and stock.
    pub async fn prescreen(&self, order_id: &str, now_ms: i64) -> Result<OrderPrescreen> {
        let spec = self.stored_spec(order_id).await?;
        let mut tx = self.store.pool.begin().await?;
        let report = self.screen_in(&mut tx, &spec, now_ms).await?;
        tx.rollback().await?;
        Ok(OrderPrescreen {
            order_id: order_id.to_string(),
            flags: report.flags().iter().map(Flag::to_string).collect(),
            report,
        })
    }

    /// An order's spec as submitted: its JSON and its programs (by the hash each step
    /// recorded), through the same checker as a submission.
    async fn stored_spec(&self, order_id: &str) -> Result<CheckedSpec> {
        let (source_name, spec_json): (String, String) =
            sqlx::query_as("SELECT source_name, spec_json FROM orders WHERE id = $1")
                .bind(order_id)
                .fetch_optional(&self.store.pool)
                .await?
                .ok_or_else(|| PlantError::NotFound(format!("order '{order_id}'")))?;
        let programs: Vec<(String, String)> = sqlx::query_as(
            "SELECT s.program_name AS name, p.text AS text FROM steps s \
             JOIN programs p ON p.sha256 = s.program_sha256 \
             WHERE s.order_id = $1 AND s.program_kind = 'gcode'",
        )
        .bind(order_id)
        .fetch_all(&self.store.pool)
        .await?;
        microfab_job_specs::check_text(
            &source_name,
            &spec_json,
            SpecFormat::Json,
            &InMemory(programs.into_iter().collect()),
        )
        .map_err(|e| {
            PlantError::Conflict(format!(
                "the stored spec of order {order_id} no longer checks: {e}"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{envelope_excess, envelope_fits};

    #[test]
    fn excess_is_zero_exactly_when_the_box_fits() {
        let envelope = [600.0, 400.0, 20.0];
        for (size, excess) in [
            ([500.0, 300.0, 10.0], [0.0, 0.0, 0.0]),
            // Turned a quarter it fits.
            ([300.0, 500.0, 10.0], [0.0, 0.0, 0.0]),
            ([700.0, 300.0, 10.0], [100.0, 0.0, 0.0]),
            // Turned, X and Y stick out 50 mm each: less than the 250 mm of Y laid.
            ([450.0, 650.0, 25.0], [50.0, 50.0, 5.0]),
        ] {
            let got = envelope_excess(envelope, size);
            for axis in 0..3 {
                assert!(
                    (got[axis] - excess[axis]).abs() < 1e-3,
                    "{size:?}: {got:?} != {excess:?}"
                );
            }
            assert_eq!(
                got.iter().all(|e| *e == 0.0),
                envelope_fits(envelope, size),
                "{size:?}"
            );
        }
    }
}
