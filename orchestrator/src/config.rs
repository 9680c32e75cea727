//! The plant config: one TOML file into typed structs. Unknown keys are rejected as typos, and
//! every semantic problem is reported at once with file, line and field.

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;
use std::path::{Path, PathBuf};

use microfab_drivers::Driver;
use microfab_drivers::registry::{BuildContext, DriverConfig, Resource};
use microfab_job_specs::{Diagnostic, Diagnostics, LineIndex};
use serde::Deserialize;
use toml::Spanned;

use crate::amount::Amount;

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

struct Collector<'a> {
    file: String,
    index: LineIndex<'a>,
    errors: Vec<Diagnostic>,
}

impl Collector<'_> {
    fn at(&mut self, span: Range<usize>, field: String, message: String) {
        let diagnostic = Diagnostic::at_offset(&self.file, &self.index, span.start, field, message);
        self.errors.push(diagnostic);
    }

    /// A problem with a value whose position the TOML reader did not keep.
    fn in_file(&mut self, field: &str, message: String) {
        self.errors
            .push(Diagnostic::in_file(&self.file, field, message));
    }
}

impl PlantConfig {
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

    fn validate(&self, c: &mut Collector<'_>) {
        if self.policy.min_quantity > self.policy.max_quantity {
            c.in_file(
                "policy.min_quantity",
                format!(
                    "min_quantity {} is above max_quantity {}",
                    self.policy.min_quantity, self.policy.max_quantity
                ),
            );
        }
        for (name, value) in [
            (
                "planner.first_plan_seconds",
                self.planner.first_plan_seconds,
            ),
            ("planner.replan_seconds", self.planner.replan_seconds),
        ] {
            if !(value.is_finite() && (0.0..=60.0).contains(&value)) {
                c.in_file(
                    name,
                    format!("{value} is not a budget between 0 and 60 seconds"),
                );
            }
        }
        let mut machine_ids = HashSet::new();
        let mut held: BTreeMap<Resource, String> = BTreeMap::new();
        for (i, machine) in self.machines.iter().enumerate() {
            let span = machine.span();
            let m = machine.get_ref();
            let field = |name: &str| format!("machines[{i}].{name}");
            if !valid_id(&m.id) {
                c.at(
                    span.clone(),
                    field("id"),
                    format!("'{}' is not a valid id (use a-z, 0-9, '-')", m.id),
                );
            }
            if !machine_ids.insert(m.id.clone()) {
                c.at(
                    span.clone(),
                    field("id"),
                    format!("machine id '{}' is used twice", m.id),
                );
            }
            if m.resume_interrupted == Some(true) && !m.driver.can_resume() {
                let resuming: Vec<&str> = DriverConfig::kinds()
                    .into_iter()
                    .filter(|(_, supports)| supports.resume_from_line)
                    .map(|(kind, _)| kind)
                    .collect();
                c.at(
                    span.clone(),
                    field("resume_interrupted"),
                    format!(
                        "the {} driver cannot resume a run from a line; only {} can",
                        m.driver.kind(),
                        resuming.join(", ")
                    ),
                );
            }
            if m.capabilities.is_empty() {
                c.at(
                    span.clone(),
                    field("capabilities"),
                    "a machine needs at least one capability".into(),
                );
            }
            for (k, cap) in m.capabilities.iter().enumerate() {
                if !microfab_job_specs::is_known_capability(cap) {
                    c.at(
                        span.clone(),
                        field(&format!("capabilities[{k}]")),
                        format!("unknown capability '{cap}'"),
                    );
                }
            }
            if m.envelope_mm.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
                c.at(
                    span.clone(),
                    field("envelope_mm"),
                    "every envelope dimension must be a positive number of millimetres".into(),
                );
            }
            if !(m.speed_factor.is_finite() && m.speed_factor > 0.0) {
                c.at(
                    span.clone(),
                    field("speed_factor"),
                    "speed_factor must be positive".into(),
                );
            }
            for resource in m.driver.resources() {
                let (what, key, name) = (resource.what, resource.field, resource.name.clone());
                if let Some(other) = held.insert(resource, m.id.clone()) {
                    c.at(
                        span.clone(),
                        field(&format!("driver.{key}")),
                        format!("{what} '{name}' is already used by machine '{other}'"),
                    );
                }
            }
            for problem in m.driver.validate() {
                let key = match problem.field.as_str() {
                    "" => "driver".to_string(),
                    key => format!("driver.{key}"),
                };
                c.at(span.clone(), field(&key), problem.message);
            }
        }
        let mut material_ids = HashSet::new();
        let mut units: BTreeMap<&str, &str> = BTreeMap::new();
        for (i, material) in self.materials.iter().enumerate() {
            let span = material.span();
            let m = material.get_ref();
            let field = |name: &str| format!("materials[{i}].{name}");
            if m.id.trim().is_empty() || m.id.chars().any(char::is_whitespace) {
                c.at(
                    span.clone(),
                    field("id"),
                    format!("'{}' is not a valid stock account id", m.id),
                );
            }
            if !material_ids.insert(m.id.clone()) {
                c.at(
                    span.clone(),
                    field("id"),
                    format!("stock account '{}' is listed twice", m.id),
                );
            }
            if let Some(previous) = units.insert(&m.material, &m.unit)
                && previous != m.unit
            {
                c.at(
                    span.clone(),
                    field("unit"),
                    format!(
                        "material '{}' is counted in '{previous}' elsewhere, not '{}'",
                        m.material, m.unit
                    ),
                );
            }
            if m.owner.trim().is_empty() {
                c.at(
                    span.clone(),
                    field("owner"),
                    "owner is 'common' or a maker id".into(),
                );
            }
        }
        if self.plant.listen.parse::<std::net::SocketAddr>().is_err() {
            c.in_file(
                "plant.listen",
                format!("'{}' is not an address:port", self.plant.listen),
            );
        }
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-' || ch == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[plant]
name = "test"

[[machines]]
id = "laser-1"
name = "Laser"
capabilities = ["laser"]
envelope_mm = [600, 400, 20]
driver = { kind = "sim", seed = 1 }

[[materials]]
id = "ply@common"
material = "plywood-birch-6mm"
unit = "sheet"
owner = "common"
origin = "local"
on_hand = 10
"#;

    fn errors(text: &str) -> Vec<String> {
        match PlantConfig::parse("plant.toml", text) {
            Ok(_) => vec![],
            Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn a_good_config_loads() {
        assert_eq!(errors(GOOD), Vec::<String>::new());
    }

    #[test]
    fn bad_configs_say_what_and_where() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "name = \"Laser\"",
                "name = \"Laser\"\nnmae = \"x\"",
                "plant.toml:8:1: unknown field `nmae`",
            ),
            (
                "capabilities = [\"laser\"]",
                "capabilities = [\"lazer\"]",
                "plant.toml:5:1: machines[0].capabilities[0]: unknown capability 'lazer'",
            ),
            (
                "envelope_mm = [600, 400, 20]",
                "envelope_mm = [600, -1, 20]",
                "machines[0].envelope_mm: every envelope dimension",
            ),
            (
                "seed = 1 }",
                "seed = 1, scrap_rate = 2.0 }",
                "machines[0].driver.scrap_rate: scrap_rate must be in [0, 1)",
            ),
            (
                "kind = \"sim\"",
                "kind = \"telnet\"",
                "unknown variant `telnet`",
            ),
            (
                "on_hand = 10",
                "on_hand = -3",
                "plant.toml:18:11: -3 is negative",
            ),
            (
                "[plant]\nname = \"test\"",
                "[plant]\nname = \"test\"\nlisten = \"nowhere\"",
                "plant.listen: 'nowhere' is not an address:port",
            ),
        ];
        for (from, to, expected) in cases {
            let text = GOOD.replacen(from, to, 1);
            let got = errors(&text);
            assert!(
                got.iter().any(|e| e.contains(expected)),
                "replacing {from:?} by {to:?}: expected an error containing {expected:?}, got {got:?}"
            );
        }
    }

    /// Each driver kind checks its own table; problems name the machine's line and the field.
    #[test]
    fn driver_tables_are_checked_by_their_kind() {
        let sim = "driver = { kind = \"sim\", seed = 1 }";
        let cases: &[(&str, &str)] = &[
            (
                "driver = { kind = \"sim\", time_scale = 0.0 }",
                "plant.toml:5:1: machines[0].driver.time_scale: time_scale must be positive",
            ),
            (
                "driver = { kind = \"sim\", failure_rate = 1.0 }",
                "plant.toml:5:1: machines[0].driver.failure_rate: failure_rate must be in [0, 1)",
            ),
            (
                "driver = { kind = \"sim\", sed = 1 }",
                "plant.toml:10:10: unknown field `sed`, expected one of `seed`, `time_scale`, `jitter`, `failure_rate`, `scrap_rate`",
            ),
            (
                "driver = { kind = \"manual\", port = \"/dev/ttyUSB0\" }",
                "plant.toml:10:10: unknown field `port`, there are no fields",
            ),
            (
                "driver = { kind = \"manual\" }\nresume_interrupted = true",
                "plant.toml:5:1: machines[0].resume_interrupted: the manual driver cannot resume a run from a line; only marlin can",
            ),
            (
                "driver = { kind = \"grbl\", port = \" \" }",
                "plant.toml:5:1: machines[0].driver: port is empty",
            ),
            (
                "driver = { kind = \"grbl\", port = \"/dev/ttyUSB0\", rx_buffer = 64 }",
                "plant.toml:5:1: machines[0].driver: rx_buffer (64) must hold a full line (line_buffer 80)",
            ),
            (
                "driver = { kind = \"grbl\", port = \"/dev/ttyUSB0\" }\nresume_interrupted = true",
                "plant.toml:5:1: machines[0].resume_interrupted: the grbl driver cannot resume a run from a line; only marlin can",
            ),
            (
                "driver = { kind = \"marlin\", port = \"\" }",
                "plant.toml:5:1: machines[0].driver: port is empty",
            ),
            (
                "driver = { kind = \"marlin\", port = \"/dev/ttyACM0\", in_flight = 0 }",
                "plant.toml:5:1: machines[0].driver: in_flight must be at least 1",
            ),
        ];
        for (driver, expected) in cases {
            let got = errors(&GOOD.replacen(sim, driver, 1));
            assert_eq!(got, vec![expected.to_string()], "{driver}");
        }
    }

    #[test]
    fn two_machines_on_one_port_are_refused() {
        let machines = GOOD.find("[[machines]]").unwrap();
        let materials = GOOD.find("[[materials]]").unwrap();
        let machine = &GOOD[machines..materials];
        let on_port = |id: &str, kind: &str| {
            machine.replace("laser-1", id).replace(
                "driver = { kind = \"sim\", seed = 1 }",
                &format!("driver = {{ kind = \"{kind}\", port = \"/dev/ttyUSB0\" }}"),
            )
        };
        let text = format!(
            "{}{}{}{}",
            &GOOD[..machines],
            on_port("laser-1", "grbl"),
            on_port("printer-1", "marlin"),
            &GOOD[materials..]
        );
        assert_eq!(
            errors(&text),
            vec![
                "plant.toml:12:1: machines[1].driver.port: port '/dev/ttyUSB0' is already used by machine 'laser-1'"
                    .to_string()
            ]
        );
    }

    #[test]
    fn what_each_driver_kind_supports() {
        let machine = |driver: &str, resume: &str| {
            let text = GOOD.replacen(
                "driver = { kind = \"sim\", seed = 1 }",
                &format!("driver = {driver}\n{resume}"),
                1,
            );
            let config = PlantConfig::parse("plant.toml", &text).unwrap();
            config.machine("laser-1").unwrap().clone()
        };
        let grbl = "{ kind = \"grbl\", port = \"/dev/ttyUSB0\", line_buffer = 10 }";
        let marlin = "{ kind = \"marlin\", port = \"/dev/ttyACM0\" }";
        let sim = "{ kind = \"sim\" }";
        let manual = "{ kind = \"manual\" }";
        // (driver, resume_interrupted line, kind, resumes, state survives a restart)
        let cases = [
            (sim, "", "sim", false, false),
            (manual, "", "manual", false, false),
            (grbl, "", "grbl", false, true),
            (marlin, "", "marlin", true, true),
            (marlin, "resume_interrupted = false", "marlin", false, true),
        ];
        for (driver, resume, kind, resumes, survives) in cases {
            let m = machine(driver, resume);
            assert_eq!(m.driver.kind(), kind);
            assert_eq!(m.resumes_interrupted(), resumes, "{driver} {resume}");
            assert_eq!(m.driver.can_resume(), kind == "marlin");
            assert_eq!(m.driver.machine_state_survives_restart(), survives);
        }
        let long_line = "G1 X10 Y10 ; a comment the preflight strips\nG1 X100.000 Y100.000\n";
        assert_eq!(machine(sim, "").driver.preflight(long_line), Ok(()));
        assert_eq!(machine(manual, "").driver.preflight("*"), Ok(()));
        assert!(
            machine(grbl, "")
                .driver
                .preflight(long_line)
                .unwrap_err()
                .contains("line 2"),
        );
        assert_eq!(
            machine(marlin, "").driver.preflight("G1 X1*5"),
            Err("program line 1: contains '*', which Marlin reads as the checksum marker".into())
        );
    }

    #[test]
    fn every_semantic_error_is_reported_at_once() {
        let text = format!("{GOOD}\n{}", &GOOD[GOOD.find("[[machines]]").unwrap()..])
            .replace("envelope_mm = [600, 400, 20]", "envelope_mm = [0, 400, 20]");
        let got = errors(&text);
        assert!(got.iter().any(|e| e.contains("used twice")), "{got:?}");
        assert!(got.iter().any(|e| e.contains("listed twice")), "{got:?}");
        assert_eq!(
            got.iter().filter(|e| e.contains("envelope")).count(),
            2,
            "{got:?}"
        );
    }
}
