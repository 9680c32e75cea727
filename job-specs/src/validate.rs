//! From a positioned document to a [`BatchSpec`], collecting every error on the way: shape
//! (keys, types, ranges), then the process plan (ids, `after`, cycles, the final step).

use crate::SpecFormat;
use crate::document::{Entry, Finding, Node, Position, Value};
use crate::suggest::closest;
use crate::types::{
    BatchSpec, CAPABILITIES, Due, MANUAL_PREFIX, MaterialDraw, Priority, ProgramRef,
    QUANTITY_RANGE, SPEC_VERSION, Step, is_dashed_id, is_known_capability, is_manual_capability,
    is_step_id,
};

mod plan;

const TOP_KEYS: &[&str] = &[
    "spec_version",
    "product",
    "maker",
    "quantity",
    "priority",
    "due",
    "description",
    "steps",
];
const STEP_KEYS: &[&str] = &[
    "id",
    "name",
    "capability",
    "program",
    "instructions",
    "units_per_run",
    "run_seconds",
    "setup_seconds",
    "setup_family",
    "after",
    "materials",
];
const MATERIAL_KEYS: &[&str] = &["material", "per_run"];
const OPCUA_KEYS: &[&str] = &["opcua"];

const MAX_STEPS: usize = 50;
const MAX_MATERIALS_PER_STEP: usize = 20;
const MAX_ID_CHARS: usize = 64;
const MAX_NAME_CHARS: usize = 200;
const MAX_TEXT_CHARS: usize = 10_000;
const MAX_PROGRAM_PATH_CHARS: usize = 1024;
const MAX_OPCUA_NAME_CHARS: usize = 256;
/// A week: longer runs or setups are certainly a unit mistake (minutes or milliseconds).
const MAX_SECONDS: f64 = 604_800.0;

/// The result of validation: the spec (when nothing was wrong) and where its programs are named,
/// so program errors can point back at the spec.
pub(crate) struct Validated {
    pub spec: Option<BatchSpec>,
    /// Per step: the program path and the offset of the `program` value, for G-code steps.
    pub gcode_programs: Vec<Option<(String, usize)>>,
    pub predecessors: Vec<Vec<usize>>,
    pub final_step: Option<usize>,
}

pub(crate) fn validate(root: &Node, format: SpecFormat, findings: &mut Vec<Finding>) -> Validated {
    let mut checker = Checker {
        format,
        findings,
        suggested: Vec::new(),
    };
    checker.spec(root)
}

/// A step's fields as far as they could be read, with positions for the plan checks.
struct StepDraft {
    header: usize,
    id: Option<(String, usize)>,
    name: Option<String>,
    capability: Option<String>,
    program: Option<(ProgramRef, usize)>,
    instructions: Option<String>,
    units_per_run: Option<u32>,
    run_seconds: Option<f64>,
    setup_seconds: f64,
    setup_family: Option<String>,
    after: After,
    materials: Option<Vec<MaterialDraw>>,
}

/// A step's `after` as written.
enum After {
    /// Absent: the previous step.
    Default,
    /// Step ids with the offsets where they are written.
    Listed(Vec<(String, usize)>),
    /// Present but not readable; already reported.
    Invalid,
}

struct Checker<'f> {
    format: SpecFormat,
    findings: &'f mut Vec<Finding>,
    /// Field paths already suggested for a misspelt key, so they are not also reported missing.
    suggested: Vec<String>,
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

impl Checker<'_> {
    fn report(&mut self, offset: usize, field: impl Into<String>, message: impl Into<String>) {
        self.findings.push(Finding {
            position: Position::Offset(offset),
            field: field.into(),
            message: message.into(),
        });
    }

    fn type_name(&self, value: &Value) -> &'static str {
        match (value, self.format) {
            (Value::String(_), _) => "string",
            (Value::Integer(_), _) => "integer",
            (Value::Float(_), SpecFormat::Toml) => "float",
            (Value::Float(_), SpecFormat::Json) => "number",
            (Value::Boolean(_), _) => "boolean",
            (Value::Datetime(_), _) => "date-time",
            (Value::Array(_), _) => "array",
            (Value::Table(_), SpecFormat::Toml) => "table",
            (Value::Table(_), SpecFormat::Json) => "object",
            (Value::Null, _) => "null",
        }
    }

    fn wrong_type(&mut self, node: &Node, path: &str, expected: &str) {
        let found = self.type_name(&node.value);
        let shown = match &node.value {
            Value::String(text) if text.chars().count() <= 40 => format!(" \"{text}\""),
            Value::Integer(Ok(number)) => format!(" {number}"),
            Value::Float(number) => format!(" {number}"),
            Value::Boolean(flag) => format!(" {flag}"),
            Value::Datetime(text) => format!(" {text}"),
            _ => String::new(),
        };
        self.report(
            node.span.start,
            path,
            format!("expected {expected}, found {found}{shown}"),
        );
    }

    fn table_word(&self) -> &'static str {
        match self.format {
            SpecFormat::Toml => "a table",
            SpecFormat::Json => "an object",
        }
    }

    /// The entries of a table, after reporting keys outside `allowed`.
    fn table<'n>(&mut self, node: &'n Node, path: &str, allowed: &[&str]) -> Option<&'n [Entry]> {
        let Value::Table(entries) = &node.value else {
            let expected = self.table_word();
            self.wrong_type(node, path, expected);
            return None;
        };
        for entry in entries {
            if allowed.contains(&entry.key.as_str()) {
                continue;
            }
            let hint = match closest(&entry.key, allowed.iter().copied()) {
                Some(known) => {
                    self.suggested.push(child(path, known));
                    format!(", did you mean '{known}'?")
                }
                None => format!("; allowed keys are: {}", allowed.join(", ")),
            };
            self.report(
                entry.key_span.start,
                child(path, &entry.key),
                format!("unknown key '{}'{hint}", entry.key),
            );
        }
        Some(entries)
    }

    fn required<'n>(&mut self, table: &'n Node, path: &str, key: &str) -> Option<&'n Node> {
        let found = table.get(key).map(|entry| &entry.value);
        let field = child(path, key);
        // A misspelt key was already reported with this key as the suggestion.
        if found.is_none() && !self.suggested.contains(&field) {
            self.report(
                table.span.start,
                field,
                format!("missing required key '{key}'"),
            );
        }
        found
    }

    fn string(&mut self, node: &Node, path: &str) -> Option<String> {
        match &node.value {
            Value::String(text) => Some(text.clone()),
            _ => {
                self.wrong_type(node, path, "a string");
                None
            }
        }
    }

    /// A string of 1 to `max_chars` characters.
    fn text(&mut self, node: &Node, path: &str, max_chars: usize) -> Option<String> {
        let text = self.string(node, path)?;
        let length = text.chars().count();
        if text.trim().is_empty() {
            self.report(node.span.start, path, "must not be empty");
            None
        } else if length > max_chars {
            self.report(
                node.span.start,
                path,
                format!("is {length} characters long; at most {max_chars} are allowed"),
            );
            None
        } else {
            Some(text)
        }
    }

    fn id(
        &mut self,
        node: &Node,
        path: &str,
        valid: fn(&str) -> bool,
        alphabet: &str,
    ) -> Option<String> {
        let text = self.string(node, path)?;
        if !valid(&text) {
            self.report(
                node.span.start,
                path,
                format!("invalid id '{text}': use {alphabet} only"),
            );
            None
        } else if text.len() > MAX_ID_CHARS {
            self.report(
                node.span.start,
                path,
                format!("id is longer than {MAX_ID_CHARS} characters"),
            );
            None
        } else {
            Some(text)
        }
    }

    fn integer_in(
        &mut self,
        node: &Node,
        path: &str,
        range: std::ops::RangeInclusive<u32>,
    ) -> Option<u32> {
        let Value::Integer(number) = &node.value else {
            self.wrong_type(node, path, "an integer");
            return None;
        };
        let shown = match number {
            Ok(number) => number.to_string(),
            Err(text) => text.clone(),
        };
        match number.as_ref().ok().and_then(|&n| u32::try_from(n).ok()) {
            Some(value) if range.contains(&value) => Some(value),
            _ => {
                let bounds = if *range.end() == u32::MAX {
                    format!("at least {}", range.start())
                } else {
                    format!("between {} and {}", range.start(), range.end())
                };
                self.report(
                    node.span.start,
                    path,
                    format!("{shown} is out of range: must be {bounds}"),
                );
                None
            }
        }
    }

    /// An integer or float that is finite.
    fn number(&mut self, node: &Node, path: &str) -> Option<f64> {
        let value = match &node.value {
            Value::Integer(Ok(number)) => *number as f64,
            Value::Float(number) => *number,
            _ => {
                self.wrong_type(node, path, "a number");
                return None;
            }
        };
        if value.is_finite() {
            Some(value)
        } else {
            self.report(node.span.start, path, "must be a finite number");
            None
        }
    }

    fn seconds(&mut self, node: &Node, path: &str, zero_allowed: bool) -> Option<f64> {
        let value = self.number(node, path)?;
        let too_small = if zero_allowed {
            value < 0.0
        } else {
            value <= 0.0
        };
        if too_small {
            let bound = if zero_allowed { ">= 0" } else { "> 0" };
            self.report(
                node.span.start,
                path,
                format!("{value} seconds is out of range: must be {bound}"),
            );
            None
        } else if value > MAX_SECONDS {
            self.report(
                node.span.start,
                path,
                format!(
                    "{value} seconds is more than a week; give the time in seconds (at most {MAX_SECONDS})"
                ),
            );
            None
        } else {
            Some(value)
        }
    }

    fn array<'n>(&mut self, node: &'n Node, path: &str) -> Option<&'n [Node]> {
        match &node.value {
            Value::Array(items) => Some(items),
            _ => {
                self.wrong_type(node, path, "an array");
                None
            }
        }
    }

    fn spec(&mut self, root: &Node) -> Validated {
        let mut validated = Validated {
            spec: None,
            gcode_programs: Vec::new(),
            predecessors: Vec::new(),
            final_step: None,
        };
        if self.table(root, "", TOP_KEYS).is_none() {
            return validated;
        }
        let findings_before = self.findings.len();

        let spec_version = self.required(root, "", "spec_version").and_then(|node| {
            let version = self.integer_in(node, "spec_version", 0..=u32::MAX)?;
            if version != SPEC_VERSION {
                self.report(
                    node.span.start,
                    "spec_version",
                    format!(
                        "unsupported spec_version {version}: this version of microfab reads spec_version = {SPEC_VERSION}"
                    ),
                );
                return None;
            }
            Some(version)
        });
        let product = self
            .required(root, "", "product")
            .and_then(|node| self.text(node, "product", MAX_NAME_CHARS));
        let maker = self.required(root, "", "maker").and_then(|node| {
            self.id(
                node,
                "maker",
                is_dashed_id,
                "lowercase letters, digits and '-'",
            )
        });
        let quantity = self
            .required(root, "", "quantity")
            .and_then(|node| self.integer_in(node, "quantity", QUANTITY_RANGE));
        let priority = self
            .required(root, "", "priority")
            .and_then(|node| self.priority(node));
        let due = self
            .required(root, "", "due")
            .and_then(|node| self.due(node));
        let description = root
            .get("description")
            .and_then(|entry| self.text(&entry.value, "description", MAX_TEXT_CHARS));
        let steps = self
            .required(root, "", "steps")
            .and_then(|node| self.steps(node))
            .unwrap_or_default();

        validated.gcode_programs = steps
            .iter()
            .map(|step| match &step.program {
                Some((ProgramRef::GCode(path), offset)) => Some((path.clone(), *offset)),
                _ => None,
            })
            .collect();
        if let Some((predecessors, final_step)) = self.plan(&steps) {
            validated.predecessors = predecessors;
            validated.final_step = Some(final_step);
        }

        if self.findings.len() > findings_before {
            return validated;
        }
        let (
            Some(spec_version),
            Some(product),
            Some(maker),
            Some(quantity),
            Some(priority),
            Some(due),
        ) = (spec_version, product, maker, quantity, priority, due)
        else {
            return validated;
        };
        let steps: Option<Vec<Step>> = steps.into_iter().map(StepDraft::into_step).collect();
        validated.spec = steps.map(|steps| BatchSpec {
            spec_version,
            product,
            maker,
            quantity,
            priority,
            due,
            description,
            steps,
        });
        validated
    }

    fn priority(&mut self, node: &Node) -> Option<Priority> {
        let text = self.string(node, "priority")?;
        match text.as_str() {
            "public-service" => Some(Priority::PublicService),
            "standard" => Some(Priority::Standard),
            other => {
                let hint = closest(other, ["public-service", "standard"])
                    .map(|known| format!(", did you mean '{known}'?"))
                    .unwrap_or_default();
                self.report(
                    node.span.start,
                    "priority",
                    format!(
                        "unknown priority '{other}': use \"public-service\" or \"standard\"{hint}"
                    ),
                );
                None
            }
        }
    }

    fn due(&mut self, node: &Node) -> Option<Due> {
        let text = match &node.value {
            Value::String(text) | Value::Datetime(text) => text,
            _ => {
                self.wrong_type(node, "due", "a date or a date-time");
                return None;
            }
        };
        match text.parse::<Due>() {
            Ok(due) => Some(due),
            Err(error) => {
                let lacks_offset = format!("{text}Z").parse::<Due>().is_ok();
                let message = if lacks_offset {
                    format!("{error}; a date-time needs an offset, e.g. Z or +01:00")
                } else {
                    error.to_string()
                };
                self.report(node.span.start, "due", message);
                None
            }
        }
    }

    fn steps(&mut self, node: &Node) -> Option<Vec<StepDraft>> {
        let items = self.array(node, "steps")?;
        if items.is_empty() {
            self.report(node.span.start, "steps", "a spec needs at least one step");
            return None;
        }
        if items.len() > MAX_STEPS {
            self.report(
                node.span.start,
                "steps",
                format!("{} steps; at most {MAX_STEPS} are allowed", items.len()),
            );
            return None;
        }
        // Every step is checked; the plan is only checked when all of them are tables, so step
        // indices stay those of the spec.
        let drafts: Vec<Option<StepDraft>> = items
            .iter()
            .enumerate()
            .map(|(index, item)| self.step(item, &format!("steps[{index}]")))
            .collect();
        drafts.into_iter().collect()
    }

    fn step(&mut self, node: &Node, path: &str) -> Option<StepDraft> {
        self.table(node, path, STEP_KEYS)?;
        let field = |key: &str| child(path, key);
        let optional = |key: &str| node.get(key).map(|entry| &entry.value);

        let id = self.required(node, path, "id").and_then(|value| {
            let id = self.id(
                value,
                &field("id"),
                is_step_id,
                "lowercase letters, digits, '-' and '_'",
            )?;
            Some((id, value.span.start))
        });
        let name =
            optional("name").and_then(|value| self.text(value, &field("name"), MAX_NAME_CHARS));
        let capability = self
            .required(node, path, "capability")
            .and_then(|value| self.capability(value, &field("capability")));
        let program = optional("program")
            .and_then(|value| Some((self.program(value, &field("program"))?, value.span.start)));
        let instructions = optional("instructions")
            .and_then(|value| self.text(value, &field("instructions"), MAX_TEXT_CHARS));
        let units_per_run = self
            .required(node, path, "units_per_run")
            .and_then(|value| self.integer_in(value, &field("units_per_run"), 1..=u32::MAX));
        let run_seconds = self
            .required(node, path, "run_seconds")
            .and_then(|value| self.seconds(value, &field("run_seconds"), false));
        let setup_seconds = optional("setup_seconds")
            .map_or(Some(0.0), |value| {
                self.seconds(value, &field("setup_seconds"), true)
            })
            .unwrap_or(0.0);
        let setup_family = optional("setup_family")
            .and_then(|value| self.text(value, &field("setup_family"), MAX_NAME_CHARS));
        let after = match optional("after") {
            None => After::Default,
            Some(value) => self
                .after(value, &field("after"))
                .map_or(After::Invalid, After::Listed),
        };
        let materials = match optional("materials") {
            None => Some(Vec::new()),
            Some(value) => self.materials(value, &field("materials")),
        };

        if let Some(capability) = &capability {
            let manual = is_manual_capability(capability);
            match (&program, manual) {
                (Some((_, offset)), true) => self.report(
                    *offset,
                    field("program"),
                    format!(
                        "'{capability}' is a manual step and has no program; describe the work in 'instructions' instead"
                    ),
                ),
                (None, false) if optional("program").is_none() => self.report(
                    node.span.start,
                    field("program"),
                    format!(
                        "missing required key 'program': a '{capability}' step needs a G-code file path or {{ opcua = \"<program name>\" }}"
                    ),
                ),
                _ => {}
            }
        }

        Some(StepDraft {
            header: node.span.start,
            id,
            name,
            capability,
            program,
            instructions,
            units_per_run,
            run_seconds,
            setup_seconds,
            setup_family,
            after,
            materials,
        })
    }

    fn capability(&mut self, node: &Node, path: &str) -> Option<String> {
        let text = self.string(node, path)?;
        if is_known_capability(&text) {
            return Some(text);
        }
        let message = if let Some(name) = text.strip_prefix(MANUAL_PREFIX) {
            format!(
                "invalid manual capability '{text}': the name after '{MANUAL_PREFIX}' uses lowercase letters, digits and '-' (e.g. manual:{})",
                if name.is_empty() {
                    "assembly".to_owned()
                } else {
                    name.to_lowercase().replace([' ', '_'], "-")
                }
            )
        } else {
            let starting: Vec<&str> = CAPABILITIES
                .iter()
                .copied()
                .filter(|known| !text.is_empty() && known.starts_with(text.as_str()))
                .collect();
            let hint = match closest(&text, CAPABILITIES.iter().copied()) {
                Some(known) => format!(", did you mean '{known}'?"),
                None if !starting.is_empty() => {
                    format!(", did you mean one of: {}?", starting.join(", "))
                }
                None => format!(
                    "; known capabilities: {}, or manual:<name> for work done by people",
                    CAPABILITIES.join(", ")
                ),
            };
            format!("unknown capability '{text}'{hint}")
        };
        self.report(node.span.start, path, message);
        None
    }

    fn program(&mut self, node: &Node, path: &str) -> Option<ProgramRef> {
        match &node.value {
            Value::String(_) => {
                let text = self.text(node, path, MAX_PROGRAM_PATH_CHARS)?;
                Some(ProgramRef::GCode(text))
            }
            Value::Table(_) => {
                self.table(node, path, OPCUA_KEYS)?;
                let value = self.required(node, path, "opcua")?;
                let name = self.text(value, &child(path, "opcua"), MAX_OPCUA_NAME_CHARS)?;
                if name.chars().any(char::is_control) {
                    self.report(
                        value.span.start,
                        child(path, "opcua"),
                        "OPC UA program name contains control characters",
                    );
                    return None;
                }
                Some(ProgramRef::OpcUa { opcua: name })
            }
            _ => {
                let expected = format!(
                    "a G-code file path or {} {{ opcua = \"<program name>\" }}",
                    self.table_word()
                );
                self.wrong_type(node, path, &expected);
                None
            }
        }
    }

    fn after(&mut self, node: &Node, path: &str) -> Option<Vec<(String, usize)>> {
        let items = self.array(node, path)?;
        let mut ids = Vec::with_capacity(items.len());
        let mut complete = true;
        for (index, item) in items.iter().enumerate() {
            let item_path = format!("{path}[{index}]");
            match self.string(item, &item_path) {
                Some(id) if ids.iter().any(|(seen, _)| *seen == id) => {
                    self.report(
                        item.span.start,
                        item_path,
                        format!("step '{id}' is listed twice"),
                    );
                }
                Some(id) => ids.push((id, item.span.start)),
                None => complete = false,
            }
        }
        complete.then_some(ids)
    }

    fn materials(&mut self, node: &Node, path: &str) -> Option<Vec<MaterialDraw>> {
        let items = self.array(node, path)?;
        if items.len() > MAX_MATERIALS_PER_STEP {
            self.report(
                node.span.start,
                path,
                format!(
                    "{} materials; at most {MAX_MATERIALS_PER_STEP} per step",
                    items.len()
                ),
            );
            return None;
        }
        let mut draws: Vec<MaterialDraw> = Vec::with_capacity(items.len());
        let mut complete = true;
        for (index, item) in items.iter().enumerate() {
            let item_path = format!("{path}[{index}]");
            match self.material(item, &item_path) {
                Some((draw, offset)) => {
                    if draws.iter().any(|seen| seen.material == draw.material) {
                        self.report(
                            offset,
                            child(&item_path, "material"),
                            format!(
                                "material '{}' is listed twice in this step; give its total per_run once",
                                draw.material
                            ),
                        );
                        complete = false;
                    }
                    draws.push(draw);
                }
                None => complete = false,
            }
        }
        complete.then_some(draws)
    }

    fn material(&mut self, node: &Node, path: &str) -> Option<(MaterialDraw, usize)> {
        self.table(node, path, MATERIAL_KEYS)?;
        let material_node = self.required(node, path, "material");
        let material = material_node.and_then(|value| {
            self.id(
                value,
                &child(path, "material"),
                is_step_id,
                "lowercase letters, digits, '-' and '_'",
            )
        });
        let per_run = self.required(node, path, "per_run").and_then(|value| {
            let per_run_path = child(path, "per_run");
            let amount = self.number(value, &per_run_path)?;
            if amount <= 0.0 {
                self.report(
                    value.span.start,
                    per_run_path,
                    format!("{amount} is out of range: must be > 0"),
                );
                return None;
            }
            let thousandths = amount * 1000.0;
            if (thousandths - thousandths.round()).abs() > 1e-6 * thousandths.max(1.0) {
                self.report(
                    value.span.start,
                    per_run_path,
                    format!("{amount} has more than 3 decimals"),
                );
                return None;
            }
            Some(amount)
        });
        Some((
            MaterialDraw {
                material: material?,
                per_run: per_run?,
            },
            material_node.map_or(node.span.start, |value| value.span.start),
        ))
    }
}

impl StepDraft {
    fn into_step(self) -> Option<Step> {
        Some(Step {
            id: self.id?.0,
            name: self.name,
            capability: self.capability?,
            program: self.program.map(|(program, _)| program),
            instructions: self.instructions,
            units_per_run: self.units_per_run?,
            run_seconds: self.run_seconds?,
            setup_seconds: self.setup_seconds,
            setup_family: self.setup_family,
            after: match self.after {
                After::Default => None,
                After::Listed(ids) => Some(ids.into_iter().map(|(id, _)| id).collect()),
                After::Invalid => return None,
            },
            materials: self.materials?,
        })
    }
}
