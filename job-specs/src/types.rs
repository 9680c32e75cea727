//! The batch spec as typed data. Validation lives in `validate`; these types only describe the
//! shape (and, through `schemars`, the JSON Schema).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime, Time};

use crate::preflight::GcodeProgram;

/// The only spec format version this crate understands.
pub const SPEC_VERSION: u32 = 1;

/// Capabilities a machine step may ask for. Manual steps use `manual:<name>` instead.
pub const CAPABILITIES: &[&str] = &[
    "fdm",
    "sla",
    "laser",
    "cnc-3axis",
    "cnc-4axis",
    "cnc-5axis",
    "router",
    "pcb-mill",
    "waterjet",
    "hot-wire",
    "plotter",
];

/// Prefix of capabilities done by people rather than machines.
pub const MANUAL_PREFIX: &str = "manual:";

/// Bounds accepted for `quantity`. Plants pre-screen typical batch sizes (50-500) themselves.
pub const QUANTITY_RANGE: std::ops::RangeInclusive<u32> = 1..=10_000;

pub(crate) const MAKER_ID_PATTERN: &str = "^[a-z0-9-]+$";
pub(crate) const STEP_ID_PATTERN: &str = "^[a-z0-9_-]+$";
pub(crate) const MATERIAL_ID_PATTERN: &str = "^[a-z0-9_-]+$";
pub(crate) const CAPABILITY_PATTERN: &str = "^(fdm|sla|laser|cnc-3axis|cnc-4axis|cnc-5axis|router|pcb-mill|waterjet|hot-wire|plotter|manual:[a-z0-9-]+)$";

/// Whether `capability` is in [`CAPABILITIES`] or is `manual:<name>` with a name of
/// lowercase letters, digits and dashes.
pub fn is_known_capability(capability: &str) -> bool {
    CAPABILITIES.contains(&capability)
        || capability
            .strip_prefix(MANUAL_PREFIX)
            .is_some_and(is_dashed_id)
}

/// Whether a capability is done by people (`manual:...`) and so has instructions, not a program.
pub fn is_manual_capability(capability: &str) -> bool {
    capability.starts_with(MANUAL_PREFIX)
}

/// `[a-z0-9-]+`
pub(crate) fn is_dashed_id(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// `[a-z0-9_-]+`
pub(crate) fn is_step_id(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// A maker's request to make one product `quantity` times (spec_version 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "microfab batch spec")]
pub struct BatchSpec {
    /// Format version; must be 1.
    #[schemars(range(min = 1, max = 1))]
    pub spec_version: u32,
    /// Product name as the plant and the public see it.
    #[schemars(length(min = 1, max = 200))]
    pub product: String,
    /// Maker id: lowercase letters, digits and dashes.
    #[schemars(pattern(MAKER_ID_PATTERN), length(max = 64))]
    pub maker: String,
    /// Finished units wanted.
    #[schemars(range(min = 1, max = 10000))]
    pub quantity: u32,
    pub priority: Priority,
    pub due: Due,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String", length(max = 10000))]
    pub description: Option<String>,
    /// The process plan: steps forming a DAG with exactly one final step.
    #[schemars(length(min = 1, max = 50))]
    pub steps: Vec<Step>,
}

/// Priority class. Public-service orders are planned first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Priority {
    PublicService,
    Standard,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::PublicService => "public-service",
            Priority::Standard => "standard",
        }
    }
}

/// When the batch is due: a calendar date (meaning the end of that day, UTC) or an RFC 3339
/// date-time with an offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    Date(Date),
    DateTime(OffsetDateTime),
}

impl Due {
    /// The deadline as a UTC instant: for a date, the last millisecond of that day.
    pub fn deadline(self) -> OffsetDateTime {
        match self {
            Due::Date(date) => date
                .with_time(Time::from_hms_milli(23, 59, 59, 999).expect("constant time is valid"))
                .assume_utc(),
            Due::DateTime(instant) => instant,
        }
    }
}

/// Why a due value was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid due date '{0}': expected a date like 2027-03-31 or an RFC 3339 date-time like 2027-03-31T17:00:00+01:00"
)]
pub struct DueParseError(pub String);

impl FromStr for Due {
    type Err = DueParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let date_format = time::macros::format_description!("[year]-[month]-[day]");
        if let Ok(date) = Date::parse(text, &date_format) {
            return Ok(Due::Date(date));
        }
        OffsetDateTime::parse(text, &Rfc3339)
            .map(Due::DateTime)
            .map_err(|_| DueParseError(text.to_owned()))
    }
}

impl fmt::Display for Due {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Due::Date(date) => {
                let (year, month, day) = (date.year(), u8::from(date.month()), date.day());
                write!(f, "{year:04}-{month:02}-{day:02}")
            }
            Due::DateTime(instant) => {
                let text = instant.format(&Rfc3339).map_err(|_| fmt::Error)?;
                f.write_str(&text)
            }
        }
    }
}

impl Serialize for Due {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Due {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = Cow::<'de, str>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Due {
    fn schema_name() -> Cow<'static, str> {
        "Due".into()
    }

    fn json_schema(_generator: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A date (YYYY-MM-DD, meaning the end of that day, UTC) or an RFC 3339 date-time with an offset.",
            "type": "string",
            "anyOf": [
                { "format": "date" },
                { "format": "date-time" }
            ]
        })
    }
}

/// One step of the process plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Unique within the spec: lowercase letters, digits, `-` and `_`.
    #[schemars(pattern(STEP_ID_PATTERN), length(max = 64))]
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String", length(max = 200))]
    pub name: Option<String>,
    /// A known machine capability, or `manual:<name>` for work done by people.
    #[schemars(pattern(CAPABILITY_PATTERN))]
    pub capability: String,
    /// Required for machine steps, absent for manual steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "ProgramRef")]
    pub program: Option<ProgramRef>,
    /// Work instructions, mainly for manual steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String", length(max = 10000))]
    pub instructions: Option<String>,
    /// Units made by one run (parts per sheet, bed or fixture).
    #[schemars(range(min = 1))]
    pub units_per_run: u32,
    /// Expected duration of one run, in seconds.
    #[schemars(extend("exclusiveMinimum" = 0), range(max = 604800))]
    pub run_seconds: f64,
    /// Setup before a run when the machine last ran another setup family, in seconds.
    #[serde(default)]
    #[schemars(range(min = 0, max = 604800))]
    pub setup_seconds: f64,
    /// Runs of the same family need no setup between them. Default: the step's first material,
    /// else its program.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String", length(min = 1, max = 200))]
    pub setup_family: Option<String>,
    /// Step ids this step comes after. Absent: the previous step (none for the first step).
    /// Empty: no predecessor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Vec<String>", inner(pattern(STEP_ID_PATTERN)))]
    pub after: Option<Vec<String>>,
    /// Material drawn from stock for every run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub materials: Vec<MaterialDraw>,
}

/// The program a machine step runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ProgramRef {
    /// A G-code file, relative to the spec's folder.
    GCode(#[schemars(length(min = 1, max = 1024))] String),
    /// A program stored on an OPC UA controller, by name.
    #[schemars(extend("additionalProperties" = false))]
    OpcUa {
        #[schemars(length(min = 1, max = 256))]
        opcua: String,
    },
}

/// Material drawn for every run of a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MaterialDraw {
    /// Material id as the plant stocks it.
    #[schemars(pattern(MATERIAL_ID_PATTERN), length(max = 64))]
    pub material: String,
    /// Quantity per run in the material's unit (sheet, g, m, piece, board); > 0, at most 3 decimals.
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub per_run: f64,
}

impl BatchSpec {
    /// The deadline in milliseconds since the Unix epoch (a date means the end of that day, UTC).
    pub fn due_unix_millis(&self) -> i64 {
        let nanos = self.due.deadline().unix_timestamp_nanos();
        i64::try_from(nanos / 1_000_000).unwrap_or(i64::MAX)
    }
}

/// A spec that passed validation, with its programs read and preflighted and its plan resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckedSpec {
    pub spec: BatchSpec,
    /// Name of the spec as given to the checker, e.g. `bench-bracket.toml`.
    pub source_name: String,
    /// Preflighted G-code programs, keyed by the path as written in the spec.
    pub programs: BTreeMap<String, GcodeProgram>,
    /// Per step, the indices of the steps it comes after (defaults resolved).
    pub predecessors: Vec<Vec<usize>>,
    /// The step that makes the finished unit.
    pub final_step: usize,
}

impl CheckedSpec {
    /// The setup family of a step: as written, else its first material, else its program, else
    /// its id (a manual step without material).
    pub fn setup_family(&self, step: usize) -> String {
        let step = &self.spec.steps[step];
        if let Some(family) = &step.setup_family {
            return family.clone();
        }
        if let Some(first) = step.materials.first() {
            return first.material.clone();
        }
        match &step.program {
            Some(ProgramRef::GCode(path)) => path.clone(),
            Some(ProgramRef::OpcUa { opcua }) => format!("opcua:{opcua}"),
            None => step.id.clone(),
        }
    }

    /// How many runs a step needs for the whole quantity: `ceil(quantity / units_per_run)`.
    pub fn runs(&self, step: usize) -> u32 {
        self.spec
            .quantity
            .div_ceil(self.spec.steps[step].units_per_run)
    }

    /// The step indices in an order where every step follows its predecessors (ties broken by
    /// position in the spec).
    pub fn topological_order(&self) -> Vec<usize> {
        let count = self.predecessors.len();
        let mut placed = vec![false; count];
        let mut order = Vec::with_capacity(count);
        while order.len() < count {
            let before = order.len();
            for step in 0..count {
                if !placed[step] && self.predecessors[step].iter().all(|&p| placed[p]) {
                    placed[step] = true;
                    order.push(step);
                }
            }
            // Validation rejects cycles, so every pass places at least one step.
            assert!(order.len() > before, "checked spec has a cycle");
        }
        order
    }

    /// Things an operator should look at before approving, though the spec is valid: a declared
    /// run time below the program's own estimate, and the preflight's warnings.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        for (index, step) in self.spec.steps.iter().enumerate() {
            let Some(program) = self.program(index) else {
                continue;
            };
            if step.run_seconds < program.estimated_seconds {
                warnings.push(format!(
                    "steps[{index}].run_seconds: {} s declared, but {} alone needs about {:.0} s",
                    step.run_seconds, program.path, program.estimated_seconds
                ));
            }
        }
        for program in self.programs.values() {
            warnings.extend(
                program
                    .warnings
                    .iter()
                    .map(|warning| format!("{}: {warning}", program.path)),
            );
        }
        warnings
    }

    /// The preflighted G-code program of a step, if it has one.
    pub fn program(&self, step: usize) -> Option<&GcodeProgram> {
        match &self.spec.steps[step].program {
            Some(ProgramRef::GCode(path)) => self.programs.get(path),
            _ => None,
        }
    }
}
