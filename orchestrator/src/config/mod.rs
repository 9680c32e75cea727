//! The plant config: one TOML file into typed structs. Unknown keys are rejected as typos, and
//! every semantic problem is reported at once with file, line and field.

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
    pub demo: Option<DemoSection>,
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
}

fn default_time_scale() -> f64 {
    1.0
}

impl Default for SimulationDefaults {
    fn default() -> Self {
        SimulationDefaults {
            time_scale: default_time_scale(),
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

impl PlantConfig {
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
