//! The operator's task queue, read from the store: every run waiting on a person at its
//! machine (a load, a setup change, an unload with its inspection, a manual station's run, an
//! interrupted run), oldest first, with how long each has held its machine. And the shape of an
//! inspection, which the unload records (`operator_work.rs`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::state::{JobState, MachineState, sql_list};
use super::{Plant, Result, invalid};
use crate::amount::Amount;
use crate::config::OperatorTask;

/// What a person has to do at a machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// Load the machine for its next run.
    Load,
    /// A load whose setup family differs from the machine's last run: change the setup too.
    Setup,
    /// Unload the finished run and inspect its pieces.
    Unload,
    /// A manual station's run (or a machine's prompt, e.g. a tool change) waits for its
    /// confirm (`POST /api/v1/jobs/{id}/confirm`).
    ManualRun,
    /// A run cut short: resolve or resume it.
    Interrupted,
    /// A due maintenance item.
    Maintenance,
}

impl TaskKind {
    pub const ALL: [TaskKind; 6] = [
        TaskKind::Load,
        TaskKind::Setup,
        TaskKind::Unload,
        TaskKind::ManualRun,
        TaskKind::Interrupted,
        TaskKind::Maintenance,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskKind::Load => "load",
            TaskKind::Setup => "setup",
            TaskKind::Unload => "unload",
            TaskKind::ManualRun => "manual_run",
            TaskKind::Interrupted => "interrupted",
            TaskKind::Maintenance => "maintenance",
        }
    }
}

/// One thing a person has to do at a machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TaskView {
    /// `load-57`, `unload-57`, `manual_run-57`, `interrupted-57`, `maintenance-laser-1-0`.
    pub id: String,
    pub kind: TaskKind,
    pub machine_id: String,
    pub order_id: Option<String>,
    pub job_id: Option<i64>,
    pub step_id: Option<String>,
    /// What to do: the config's text, with the run's materials and setup family.
    pub what: String,
    /// Pieces on the run (to inspect at an unload).
    pub units: Option<i64>,
    /// At an unload: the pieces the machine itself said were bad (every piece of a run it
    /// failed).
    pub machine_scrapped: Option<i64>,
    /// When the task appeared (wall ms).
    pub since_ms: i64,
    /// How long the machine has been held by it so far (ms).
    pub held_up_ms: i64,
    /// Expected operator time.
    pub minutes: f64,
}

/// What an operator found unloading a run: `good` pieces, and the scrapped ones by reason.
/// By default the machine's scrap stays scrap with its reason and every other piece is good;
/// `good` plus the scrap counts must be the run's units, and a failed run has nothing good.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Inspection {
    /// Good pieces; by default every piece not in `scrap`.
    #[serde(
        default,
        deserialize_with = "crate::whole_number::optional_whole_number",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(minimum = 0, maximum = 4_294_967_295_u32)]
    pub good: Option<u32>,
    /// Scrapped pieces by reason; by default what the machine reported.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scrap: Vec<ScrapEntry>,
}

/// `count` pieces scrapped for one reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScrapEntry {
    #[serde(deserialize_with = "crate::whole_number::whole_number")]
    #[schema(minimum = 1, maximum = 4_294_967_295_u32)]
    pub count: u32,
    /// What was wrong with them (warped, delaminated, ...).
    #[schema(min_length = 1, max_length = 1000, pattern = r"\S")]
    pub reason: String,
}

/// What the machine said of a run waiting for its unload.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MachineOutcome {
    pub scrapped: i64,
    pub reason: Option<String>,
    pub failed: bool,
}

/// An inspection made whole: how many pieces are good, and each scrapped piece's reason.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Verdict {
    pub good: i64,
    /// (count, reason), in the order given.
    pub scrap: Vec<(i64, String)>,
}

impl Verdict {
    /// "1 warped, 2 delaminated", for the job's row and its event; `None` when all is good.
    pub fn summary(&self) -> Option<String> {
        (!self.scrap.is_empty()).then(|| {
            self.scrap
                .iter()
                .map(|(count, reason)| format!("{count} {reason}"))
                .collect::<Vec<_>>()
                .join(", ")
        })
    }
}

impl Inspection {
    /// The inspection of a run of `units` pieces of which the machine said `machine`, with
    /// its defaults filled in; or the field that is wrong.
    /// The field that breaks the inspection's own shape (a scrap entry of no pieces, or
    /// without a reason), whatever run it is for: checked before anything else.
    pub fn check_shape(&self) -> Result<()> {
        for (i, entry) in self.scrap.iter().enumerate() {
            if entry.count == 0 {
                return Err(invalid(&format!("scrap[{i}].count"), "at least 1 piece"));
            }
            if entry.reason.trim().is_empty() {
                return Err(invalid(
                    &format!("scrap[{i}].reason"),
                    "every scrapped piece needs a reason",
                ));
            }
        }
        Ok(())
    }

    pub(crate) fn verdict(&self, units: i64, machine: &MachineOutcome) -> Result<Verdict> {
        self.check_shape()?;
        let scrap: Vec<(i64, String)> = if self.scrap.is_empty() {
            machine_scrap(units, machine)
        } else {
            self.scrap
                .iter()
                .map(|e| (i64::from(e.count), e.reason.clone()))
                .collect()
        };
        let scrapped: i64 = scrap.iter().map(|(count, _)| count).sum();
        if scrapped > units {
            return Err(invalid(
                "scrap",
                format!("{scrapped} pieces scrapped; the run has {units}"),
            ));
        }
        let good = self.good.map_or(units - scrapped, i64::from);
        if machine.failed && good > 0 {
            return Err(invalid(
                "good",
                format!(
                    "the run failed ({}): nothing of it is good",
                    failure(machine)
                ),
            ));
        }
        if good + scrapped != units {
            return Err(invalid(
                "good",
                format!(
                    "{good} good and {scrapped} scrapped make {}; the run has {units} pieces: \
                     give every scrapped piece with its reason",
                    good + scrapped
                ),
            ));
        }
        Ok(Verdict { good, scrap })
    }
}

/// The machine's own verdict as scrap entries: all pieces of a failed run, else what it
/// reported scrapped, each with its reason.
fn machine_scrap(units: i64, machine: &MachineOutcome) -> Vec<(i64, String)> {
    let count = if machine.failed {
        units
    } else {
        machine.scrapped.clamp(0, units)
    };
    if count == 0 {
        return Vec::new();
    }
    let reason = if machine.failed {
        failure(machine).to_string()
    } else {
        machine
            .reason
            .clone()
            .unwrap_or_else(|| "reported scrapped by the machine".into())
    };
    vec![(count, reason)]
}

fn failure(machine: &MachineOutcome) -> &str {
    machine.reason.as_deref().unwrap_or("no reason given")
}

#[derive(sqlx::FromRow)]
struct WaitingRun {
    job_id: i64,
    order_id: String,
    step_id: String,
    state: JobState,
    units: i64,
    machine_id: String,
    materials_json: String,
    step_family: String,
    setup_seconds: f64,
    run_seconds: f64,
    machine_family: Option<String>,
    driver_kind: String,
    machine_state: MachineState,
    machine_reason: Option<String>,
    machine_scrapped: Option<i64>,
    machine_failed: Option<i64>,
    awaiting_since_ms: Option<i64>,
    dispatched_ms: Option<i64>,
    started_ms: Option<i64>,
    interrupted_ms: Option<i64>,
}

impl Plant {
    /// Every task waiting for a person, oldest first.
    pub async fn tasks(&self, now_ms: i64) -> Result<Vec<TaskView>> {
        let waiting: Vec<WaitingRun> = sqlx::query_as(&format!(
            "SELECT j.id AS job_id, j.order_id AS order_id, s.step_id AS step_id, j.state AS state, \
             j.units AS units, j.machine_id AS machine_id, s.materials_json AS materials_json, \
             s.setup_family AS step_family, s.setup_seconds AS setup_seconds, \
             s.run_seconds AS run_seconds, m.setup_family AS machine_family, \
             m.driver_kind AS driver_kind, m.state AS machine_state, m.state_reason AS machine_reason, \
             j.machine_scrapped AS machine_scrapped, j.machine_failed AS machine_failed, \
             j.awaiting_since_ms AS awaiting_since_ms, \
             j.dispatched_ms AS dispatched_ms, j.started_ms AS started_ms, \
             (SELECT MAX(e.at_ms) FROM events e WHERE e.job_id = j.id AND e.kind = 'job_interrupted') AS interrupted_ms \
             FROM jobs j JOIN steps s ON s.order_id = j.order_id AND s.step_index = j.step_index \
             JOIN machines m ON m.id = j.machine_id \
             WHERE j.state IN ({}, {}, '{}') ORDER BY j.id",
            sql_list(&JobState::AWAITING_OPERATOR),
            sql_list(&JobState::ON_MACHINE),
            JobState::Interrupted,
        ))
        .fetch_all(&self.store.pool)
        .await?;
        let mut tasks = Vec::new();
        for run in waiting {
            if let Some(task) = self.run_task(run, now_ms)? {
                tasks.push(task);
            }
        }
        tasks.extend(self.maintenance_tasks(now_ms).await?);
        tasks.sort_by(|a, b| (a.since_ms, &a.id).cmp(&(b.since_ms, &b.id)));
        Ok(tasks)
    }

    /// Due maintenance as tasks (`maintenance-<machine>-<index of the interval>`).
    async fn maintenance_tasks(&self, now_ms: i64) -> Result<Vec<TaskView>> {
        Ok(self
            .maintenance_due()
            .await?
            .into_iter()
            .map(|due| TaskView {
                id: format!("maintenance-{}-{}", due.machine_id, due.index),
                kind: TaskKind::Maintenance,
                what: due.task,
                machine_id: due.machine_id,
                order_id: None,
                job_id: None,
                step_id: None,
                units: None,
                machine_scrapped: None,
                since_ms: due.since_ms,
                held_up_ms: (now_ms - due.since_ms).max(0),
                minutes: due.minutes,
            })
            .collect())
    }

    /// The task a run on a machine is waiting on a person for, if any.
    fn run_task(&self, run: WaitingRun, now_ms: i64) -> Result<Option<TaskView>> {
        let work = self
            .config
            .machine(&run.machine_id)
            .map(|m| self.config.operator_work(m));
        let task_of = |pick: fn(&crate::config::OperatorWork) -> Option<&OperatorTask>| {
            work.as_ref().and_then(pick).cloned()
        };
        let materials = materials_text(&run.materials_json)?;
        let (kind, task, since) = match run.state {
            JobState::AwaitingLoad => {
                let setup = run
                    .machine_family
                    .as_deref()
                    .is_some_and(|family| family != run.step_family);
                let kind = if setup {
                    TaskKind::Setup
                } else {
                    TaskKind::Load
                };
                let mut task = task_of(|w| w.load.as_ref()).unwrap_or_else(|| OperatorTask {
                    text: "Load the machine".into(),
                    minutes: 0.0,
                });
                if setup {
                    task.minutes += run.setup_seconds / 60.0;
                }
                (kind, task, run.awaiting_since_ms)
            }
            JobState::AwaitingUnload => {
                let task = task_of(|w| w.unload.as_ref()).unwrap_or_else(|| OperatorTask {
                    text: "Unload and inspect the run".into(),
                    minutes: 0.0,
                });
                (TaskKind::Unload, task, run.awaiting_since_ms)
            }
            JobState::Interrupted => {
                let task = OperatorTask {
                    text: "Resolve or resume the interrupted run".into(),
                    minutes: task_of(|w| w.unload.as_ref()).map_or(0.0, |t| t.minutes),
                };
                (TaskKind::Interrupted, task, run.interrupted_ms)
            }
            JobState::Dispatched | JobState::Running => {
                let manual = run.driver_kind == "manual";
                let prompted =
                    run.machine_state == MachineState::Paused && run.machine_reason.is_some();
                if !(manual || prompted) {
                    return Ok(None);
                }
                let text = match run.machine_reason.filter(|_| prompted) {
                    Some(reason) => format!("The machine waits: {reason}; confirm when done"),
                    None => "Do the station's work, then confirm".into(),
                };
                let task = OperatorTask {
                    text,
                    minutes: run.run_seconds / 60.0,
                };
                (
                    TaskKind::ManualRun,
                    task,
                    run.started_ms.or(run.dispatched_ms),
                )
            }
            _ => return Ok(None),
        };
        let since_ms = since.unwrap_or(now_ms);
        Ok(Some(TaskView {
            id: format!("{}-{}", kind_prefix(kind), run.job_id),
            kind,
            machine_id: run.machine_id,
            order_id: Some(run.order_id),
            job_id: Some(run.job_id),
            step_id: Some(run.step_id),
            what: format!("{} ({materials}setup {})", task.text, run.step_family),
            units: Some(run.units),
            // A failed run is all scrap by the machine's word (what the default inspection
            // records), whatever count it reported.
            machine_scrapped: if run.machine_failed == Some(1) {
                Some(run.units)
            } else {
                run.machine_scrapped
            }
            .filter(|_| kind == TaskKind::Unload),
            since_ms,
            held_up_ms: (now_ms - since_ms).max(0),
            minutes: task.minutes,
        }))
    }
}

/// A setup change is still a load: its id is `load-N`, so a task keeps its id whatever the
/// machine did before.
fn kind_prefix(kind: TaskKind) -> &'static str {
    match kind {
        TaskKind::Setup => TaskKind::Load.as_str(),
        other => other.as_str(),
    }
}

/// "2 sheet-birch-6mm, 0.5 kg-pla; " or nothing for a run that draws no material.
fn materials_text(materials_json: &str) -> Result<String> {
    let needs = super::stock::per_run_needs(materials_json)?;
    Ok(needs
        .iter()
        .map(|(material, amount): (&String, &Amount)| {
            format!("{} {material}, ", amount.as_decimal())
        })
        .collect::<String>()
        .trim_end_matches(", ")
        .to_string()
        + if needs.is_empty() { "" } else { "; " })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plant::PlantError;

    fn machine(scrapped: i64, reason: Option<&str>, failed: bool) -> MachineOutcome {
        MachineOutcome {
            scrapped,
            reason: reason.map(str::to_string),
            failed,
        }
    }

    fn scrap(entries: &[(u32, &str)]) -> Vec<ScrapEntry> {
        entries
            .iter()
            .map(|(count, reason)| ScrapEntry {
                count: *count,
                reason: reason.to_string(),
            })
            .collect()
    }

    fn verdict(good: i64, scrap: &[(i64, &str)]) -> Verdict {
        Verdict {
            good,
            scrap: scrap.iter().map(|(c, r)| (*c, r.to_string())).collect(),
        }
    }

    #[test]
    fn an_empty_inspection_keeps_the_machines_verdict() {
        let empty = Inspection::default();
        assert_eq!(
            empty.verdict(6, &machine(0, None, false)).unwrap(),
            verdict(6, &[])
        );
        assert_eq!(
            empty
                .verdict(6, &machine(2, Some("burnt edge"), false))
                .unwrap(),
            verdict(4, &[(2, "burnt edge")])
        );
        assert_eq!(
            empty.verdict(6, &machine(1, None, false)).unwrap(),
            verdict(5, &[(1, "reported scrapped by the machine")])
        );
        assert_eq!(
            empty
                .verdict(6, &machine(0, Some("tool broke"), true))
                .unwrap(),
            verdict(0, &[(6, "tool broke")])
        );
    }

    #[test]
    fn the_operators_scrap_replaces_the_machines_and_the_rest_is_good() {
        let found = Inspection {
            good: None,
            scrap: scrap(&[(1, "warped"), (2, "delaminated")]),
        };
        assert_eq!(
            found
                .verdict(12, &machine(5, Some("sensor"), false))
                .unwrap(),
            verdict(9, &[(1, "warped"), (2, "delaminated")])
        );
        let counted = Inspection {
            good: Some(11),
            scrap: scrap(&[(1, "warped")]),
        };
        assert_eq!(
            counted.verdict(12, &machine(0, None, false)).unwrap(),
            verdict(11, &[(1, "warped")])
        );
        assert_eq!(
            verdict(11, &[(1, "warped"), (2, "x")]).summary().as_deref(),
            Some("1 warped, 2 x")
        );
        assert_eq!(verdict(12, &[]).summary(), None);
    }

    #[test]
    fn an_inspection_that_does_not_add_up_names_its_field() {
        let field = |inspection: Inspection, outcome: MachineOutcome| match inspection
            .verdict(6, &outcome)
        {
            Err(PlantError::Invalid { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        let ok = machine(0, None, false);
        let good = |good| Inspection {
            good: Some(good),
            scrap: Vec::new(),
        };
        let scrapped = |entries: &[(u32, &str)]| Inspection {
            good: None,
            scrap: scrap(entries),
        };
        assert_eq!(field(good(7), ok.clone()), "good");
        assert_eq!(field(good(5), ok.clone()), "good");
        assert_eq!(field(scrapped(&[(7, "warped")]), ok.clone()), "scrap");
        assert_eq!(
            field(scrapped(&[(0, "warped")]), ok.clone()),
            "scrap[0].count"
        );
        assert_eq!(
            field(scrapped(&[(1, "warped"), (1, " ")]), ok.clone()),
            "scrap[1].reason"
        );
        // A failed run has nothing good, whatever the operator says.
        assert_eq!(field(good(6), machine(0, Some("jam"), true)), "good");
        assert_eq!(
            field(scrapped(&[(2, "warped")]), machine(0, Some("jam"), true)),
            "good"
        );
    }
}
