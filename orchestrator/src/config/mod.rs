//! The plant config: one TOML file into typed structs. Unknown keys are rejected as typos, and
//! every semantic problem is reported at once with file, line and field.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use microfab_drivers::Driver;
use microfab_drivers::registry::{BuildContext, DriverConfig, Resource};
use microfab_job_specs::{Diagnostic, Diagnostics, LineIndex};
use serde::Deserialize;
use toml::Spanned;

use self::check::Collector;
use crate::amount::Amount;

mod check;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlantConfig {
    pub plant: PlantSection,
    #[serde(default)]
    pub policy: Policy,
    #[serde(default)]
    pub simulation: SimulationDefaults,
    #[serde(default)]
    pub planner: PlannerSettings,
    #[serde(default)]
    pub machines: Vec<Spanned<MachineConfig>>,
    #[serde(default)]
    pub materials: Vec<Spanned<MaterialConfig>>,
    /// Working hours, holidays and operators per shift. Absent: always working, and nobody's
    /// time is planned (operators unlimited).
    pub calendar: Option<Spanned<CalendarConfig>>,
    /// What an operator does before and after a run, by capability; a machine's own `load`,
    /// `unload` and `unattended` keys win over these.
    #[serde(default)]
    pub operator_tasks: BTreeMap<String, Spanned<OperatorTaskDefaults>>,
    pub demo: Option<DemoSection>,
    /// Who may scrape `/metrics` without an account.
    #[serde(default)]
    pub metrics: MetricsSettings,
    #[serde(skip)]
    pub path: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlantSection {
    pub name: String,
    /// `sqlite://FILE` (created if absent) or `postgres://...`. Relative SQLite paths are taken
    /// relative to the working directory.
    #[serde(default = "default_database")]
    pub database: String,
    #[serde(default = "default_listen")]
    pub listen: String,
}

fn default_database() -> String {
    "sqlite://microfab.db".into()
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}

/// What the pre-screen flags for an operator to look at.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    #[serde(default = "default_min_quantity")]
    pub min_quantity: u32,
    #[serde(default = "default_max_quantity")]
    pub max_quantity: u32,
}

fn default_min_quantity() -> u32 {
    50
}

fn default_max_quantity() -> u32 {
    500
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            min_quantity: default_min_quantity(),
            max_quantity: default_max_quantity(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulationDefaults {
    /// Machine seconds per wall second for every simulated machine without its own.
    #[serde(default = "default_time_scale")]
    pub time_scale: f64,
    /// Where the plant clock starts on a new database (RFC 3339, e.g.
    /// `2026-12-07T06:00:00+01:00`); absent: now. The plant clock runs at `time_scale`.
    pub start: Option<String>,
    /// Simulated operators who confirm operator tasks; absent: people do them (API, CLI, panel).
    pub operators: Option<SimulatedOperators>,
}

/// The simulated people of a demo or a test: they work the calendar's shifts (as many as the
/// shift has, at most `count`), react after `reaction_seconds` of plant time, take each task's
/// minutes, and find `scrap_rate` of the pieces they inspect bad.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatedOperators {
    pub count: u32,
    #[serde(default = "default_reaction_seconds")]
    pub reaction_seconds: f64,
    #[serde(default)]
    pub scrap_rate: f64,
    #[serde(default = "default_operator_seed")]
    pub seed: u64,
}

fn default_reaction_seconds() -> f64 {
    60.0
}

fn default_operator_seed() -> u64 {
    7
}

fn default_time_scale() -> f64 {
    1.0
}

impl Default for SimulationDefaults {
    fn default() -> Self {
        SimulationDefaults {
            time_scale: default_time_scale(),
            start: None,
            operators: None,
        }
    }
}

/// How much thinking the planner gets. Budgets are seconds of the reference machine, turned into
/// deterministic work units, so the same state gives the same plan on any machine.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlannerSettings {
    #[serde(default = "default_first_plan_seconds")]
    pub first_plan_seconds: f64,
    #[serde(default = "default_replan_seconds")]
    pub replan_seconds: f64,
    #[serde(default = "default_planner_seed")]
    pub seed: u64,
    /// Plan the operators (shifts, loads, unloads, after-hours). Off: the planner sees an
    /// always-working plant where nobody is waited for (to compare ETAs against).
    #[serde(default = "default_plan_operators")]
    pub plan_operators: bool,
}

fn default_plan_operators() -> bool {
    true
}

fn default_first_plan_seconds() -> f64 {
    1.0
}

fn default_replan_seconds() -> f64 {
    0.1
}

fn default_planner_seed() -> u64 {
    1
}

impl Default for PlannerSettings {
    fn default() -> Self {
        PlannerSettings {
            first_plan_seconds: default_first_plan_seconds(),
            replan_seconds: default_replan_seconds(),
            seed: default_planner_seed(),
            plan_operators: default_plan_operators(),
        }
    }
}

/// `[metrics]`: the access rule of `/metrics` (docs/metrics.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    /// A peer on this host (a loopback address) scrapes without an account. Turn it off when a
    /// reverse proxy on this host forwards outside requests: they would all come from loopback.
    #[serde(default = "default_allow_localhost")]
    pub allow_localhost: bool,
}

fn default_allow_localhost() -> bool {
    true
}

impl Default for MetricsSettings {
    fn default() -> Self {
        MetricsSettings {
            allow_localhost: default_allow_localhost(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineConfig {
    pub id: String,
    pub name: String,
    pub capabilities: Vec<String>,
    /// Work envelope X, Y, Z in millimetres.
    pub envelope_mm: [f64; 3],
    #[serde(default = "default_speed_factor")]
    pub speed_factor: f64,
    /// The driver's own table, checked and built by its kind (`microfab_drivers::registry`).
    pub driver: DriverConfig,
    /// May an operator resume an interrupted run from a line on this machine? Default: what
    /// the driver kind says (yes on 3D printers, no elsewhere: on a CNC machine a resume after
    /// a lost link trusts a position nobody has checked).
    #[serde(default)]
    pub resume_interrupted: Option<bool>,
    /// What an operator does before each run here; absent: the capability's default.
    pub load: Option<OperatorTask>,
    /// What an operator does after each run here (remove and inspect); absent: the
    /// capability's default.
    pub unload: Option<OperatorTask>,
    /// Needs nobody between runs (a printer with an ejection script, a bar-fed lathe): no load,
    /// no unload. Needs `unattended_reason`.
    pub unattended: Option<bool>,
    pub unattended_reason: Option<String>,
    /// May a run go on outside working hours with nobody in the plant? Default: no.
    #[serde(default)]
    pub after_hours: bool,
    /// Maintenance intervals: each becomes an operator task when due.
    #[serde(default)]
    pub maintenance: Vec<MaintenanceInterval>,
}

/// One operator task of a kind (load, unload): what to do, and how long it takes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorTask {
    /// What to do, e.g. "Load a 6 mm birch sheet and zero Z". The run's material and setup
    /// family are shown beside it.
    pub text: String,
    pub minutes: f64,
}

/// A capability's operator tasks, for machines without their own.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorTaskDefaults {
    pub load: Option<OperatorTask>,
    pub unload: Option<OperatorTask>,
    pub unattended: Option<bool>,
    pub unattended_reason: Option<String>,
}

/// Maintenance due every so many runs or run hours (at least one of them), taking `minutes` of
/// an operator's time with the machine stopped.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceInterval {
    /// A name, unique on the machine, e.g. "clean lens and mirrors".
    pub task: String,
    pub every_runs: Option<u32>,
    pub every_hours: Option<f64>,
    pub minutes: f64,
}

/// The plant's week: shifts (working hours and operators), holidays, the local time zone as
/// an offset from UTC.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarConfig {
    /// e.g. "+01:00"; default UTC.
    #[serde(default = "default_utc_offset")]
    pub utc_offset: String,
    /// Dates ("2026-12-25") on which no shift works.
    #[serde(default)]
    pub holidays: Vec<String>,
    pub shifts: Vec<ShiftConfig>,
}

fn default_utc_offset() -> String {
    "+00:00".into()
}

/// One shift: on these weekdays ("mon".."sun"), from `start` to `end` ("HH:MM", local; an end
/// before the start runs past midnight), with this many operators.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShiftConfig {
    pub days: Vec<String>,
    pub start: String,
    pub end: String,
    pub operators: u32,
}

impl MachineConfig {
    pub fn resumes_interrupted(&self) -> bool {
        self.resume_interrupted
            .unwrap_or(self.driver.supports().resume_by_default)
    }

    /// The machine's driver, not yet connected.
    pub fn build_driver(&self, simulation: &SimulationDefaults) -> Box<dyn Driver> {
        self.driver.build(&BuildContext {
            speed_factor: self.speed_factor,
            default_time_scale: simulation.time_scale,
        })
    }
}

fn default_speed_factor() -> f64 {
    1.0
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaterialConfig {
    /// The stock account's id, e.g. `pla-recycled@common`.
    pub id: String,
    /// The material it holds, as batch specs name it (e.g. `pla-recycled`).
    pub material: String,
    /// Unit of measure: g, m, sheet, piece, board, ...
    pub unit: String,
    /// `common` (the plant's shared inventory) or a maker's id (their own rented storage).
    pub owner: String,
    pub origin: Origin,
    /// Stock when the account is first created. Afterwards the database is the truth.
    pub on_hand: Amount,
    #[serde(default)]
    pub reorder_level: Amount,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    Virgin,
    Recycled,
    Local,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Virgin => "virgin",
            Origin::Recycled => "recycled",
            Origin::Local => "local",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoSection {
    /// Batch specs the demo submits and approves, relative to this config file.
    pub specs: Vec<PathBuf>,
    /// Seconds between progress lines.
    #[serde(default = "default_progress_seconds")]
    pub progress_seconds: f64,
}

fn default_progress_seconds() -> f64 {
    2.0
}

impl DemoSection {
    pub fn spec_paths(&self, config_path: &Path) -> Vec<PathBuf> {
        let base = config_path.parent().unwrap_or(Path::new("."));
        self.specs.iter().map(|p| base.join(p)).collect()
    }
}

/// What an operator does at a machine around each run, the machine's keys over its
/// capabilities' defaults (the first capability with a default wins).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OperatorWork {
    pub load: Option<OperatorTask>,
    pub unload: Option<OperatorTask>,
    /// `Some(reason)` when the machine needs nobody between runs.
    pub unattended: Option<String>,
}

impl PlantConfig {
    /// The operator work around each run on this machine. An unattended machine has neither
    /// load nor unload.
    pub fn operator_work(&self, machine: &MachineConfig) -> OperatorWork {
        let defaults: Vec<&OperatorTaskDefaults> = machine
            .capabilities
            .iter()
            .filter_map(|c| self.operator_tasks.get(c).map(|d| d.get_ref()))
            .collect();
        let unattended = machine
            .unattended
            .or_else(|| defaults.iter().find_map(|d| d.unattended))
            .unwrap_or(false);
        if unattended {
            let reason = machine
                .unattended_reason
                .clone()
                .or_else(|| defaults.iter().find_map(|d| d.unattended_reason.clone()))
                .unwrap_or_default();
            return OperatorWork {
                unattended: Some(reason),
                ..OperatorWork::default()
            };
        }
        OperatorWork {
            load: machine
                .load
                .clone()
                .or_else(|| defaults.iter().find_map(|d| d.load.clone())),
            unload: machine
                .unload
                .clone()
                .or_else(|| defaults.iter().find_map(|d| d.unload.clone())),
            unattended: None,
        }
    }

    /// Every machine's id, in the config's order.
    pub fn machine_ids(&self) -> Vec<String> {
        self.machines
            .iter()
            .map(|m| m.get_ref().id.clone())
            .collect()
    }

    pub fn machine(&self, id: &str) -> Option<&MachineConfig> {
        self.machines
            .iter()
            .map(|m| m.get_ref())
            .find(|m| m.id == id)
    }

    pub fn load(path: &Path) -> Result<PlantConfig, Diagnostics> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Diagnostics(vec![Diagnostic::in_file(
                path.display().to_string(),
                "",
                format!("cannot read the config: {e}"),
            )])
        })?;
        let mut config = PlantConfig::parse(&path.display().to_string(), &text)?;
        config.path = path.to_path_buf();
        Ok(config)
    }

    pub fn parse(file: &str, text: &str) -> Result<PlantConfig, Diagnostics> {
        let index = LineIndex::new(text);
        let config: PlantConfig = toml::from_str(text).map_err(|e| {
            let message = e.message().to_string();
            Diagnostics(vec![match e.span() {
                Some(span) => Diagnostic::at_offset(file, &index, span.start, "", message),
                None => Diagnostic::in_file(file, "", message),
            }])
        })?;
        let mut c = Collector {
            file: file.to_string(),
            index,
            errors: Vec::new(),
        };
        config.validate(&mut c);
        if c.errors.is_empty() {
            Ok(config)
        } else {
            Err(Diagnostics(c.errors))
        }
    }
}

#[cfg(test)]
mod tests;
