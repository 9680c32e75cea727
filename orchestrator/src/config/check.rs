//! The plant config's semantic checks: every problem at once, each with its line and field.

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;

use microfab_job_specs::{Diagnostic, LineIndex};

use super::{DriverConfig, PlantConfig, Resource};

pub(super) struct Collector<'a> {
    pub(super) file: String,
    pub(super) index: LineIndex<'a>,
    pub(super) errors: Vec<Diagnostic>,
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
    pub(super) fn validate(&self, c: &mut Collector<'_>) {
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
