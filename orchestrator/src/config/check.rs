//! The plant config's semantic checks: every problem at once, each with its line and field.

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;

use microfab_job_specs::{Diagnostic, LineIndex};

use super::{DriverConfig, MachineConfig, OperatorTask, PlantConfig, Resource};
use crate::calendar::Calendar;

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
            self.validate_operator_work(c, span.clone(), &format!("machines[{i}]"), m);
        }
        self.validate_people(c);
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

impl PlantConfig {
    /// A machine's operator work: its tasks, whether it may go without them, its maintenance.
    fn validate_operator_work(
        &self,
        c: &mut Collector<'_>,
        span: Range<usize>,
        at: &str,
        m: &MachineConfig,
    ) {
        let field = |name: &str| format!("{at}.{name}");
        for (name, task) in [("load", &m.load), ("unload", &m.unload)] {
            check_task(c, span.clone(), &field(name), task.as_ref());
        }
        if self
            .operator_work(m)
            .unattended
            .is_some_and(|reason| reason.trim().is_empty())
        {
            c.at(
                span.clone(),
                field("unattended_reason"),
                "an unattended machine says why it needs nobody (unattended_reason)".into(),
            );
        }
        let mut names = HashSet::new();
        for (k, item) in m.maintenance.iter().enumerate() {
            let field = |name: &str| format!("{at}.maintenance[{k}].{name}");
            if item.task.trim().is_empty() {
                c.at(
                    span.clone(),
                    field("task"),
                    "a maintenance task needs a name".into(),
                );
            }
            if !names.insert(item.task.as_str()) {
                c.at(
                    span.clone(),
                    field("task"),
                    format!("maintenance task '{}' is listed twice", item.task),
                );
            }
            if item.every_runs.is_none() && item.every_hours.is_none() {
                c.at(
                    span.clone(),
                    field("every_runs"),
                    "maintenance needs an interval: every_runs, every_hours or both".into(),
                );
            }
            if item.every_runs == Some(0) {
                c.at(
                    span.clone(),
                    field("every_runs"),
                    "every_runs must be at least 1".into(),
                );
            }
            if let Some(hours) = item.every_hours
                && !(hours.is_finite() && hours > 0.0)
            {
                c.at(
                    span.clone(),
                    field("every_hours"),
                    "every_hours must be positive".into(),
                );
            }
            check_minutes(c, span.clone(), &field("minutes"), item.minutes);
        }
    }

    /// The calendar, the capabilities' operator tasks and the simulated operators.
    fn validate_people(&self, c: &mut Collector<'_>) {
        if let Some(calendar) = &self.calendar
            && let Err(problems) = Calendar::from_config(calendar.get_ref())
        {
            for (field, message) in problems {
                c.at(calendar.span(), field, message);
            }
        }
        for (capability, defaults) in &self.operator_tasks {
            let span = defaults.span();
            let d = defaults.get_ref();
            let field = |name: &str| format!("operator_tasks.{capability}.{name}");
            if !self
                .machines
                .iter()
                .any(|m| m.get_ref().capabilities.contains(capability))
            {
                c.at(
                    span.clone(),
                    format!("operator_tasks.{capability}"),
                    format!("no machine has the capability '{capability}'"),
                );
            }
            for (name, task) in [("load", &d.load), ("unload", &d.unload)] {
                check_task(c, span.clone(), &field(name), task.as_ref());
            }
            if d.unattended == Some(true)
                && d.unattended_reason
                    .as_deref()
                    .is_none_or(|r| r.trim().is_empty())
            {
                c.at(
                    span.clone(),
                    field("unattended_reason"),
                    "unattended machines say why they need nobody (unattended_reason)".into(),
                );
            }
        }
        let simulation = &self.simulation;
        if !(simulation.time_scale.is_finite() && simulation.time_scale > 0.0) {
            c.in_file(
                "simulation.time_scale",
                "time_scale must be positive".into(),
            );
        }
        if let Some(start) = &simulation.start
            && crate::clock::parse_start(start).is_none()
        {
            c.in_file(
                "simulation.start",
                format!("'{start}' is not an RFC 3339 instant like \"2026-12-07T06:00:00+01:00\""),
            );
        }
        if let Some(operators) = &simulation.operators {
            if operators.count == 0 {
                c.in_file(
                    "simulation.operators.count",
                    "simulated operators need at least one (leave the table out for none)".into(),
                );
            }
            if !(operators.reaction_seconds.is_finite() && operators.reaction_seconds >= 0.0) {
                c.in_file(
                    "simulation.operators.reaction_seconds",
                    "reaction_seconds must be zero or more".into(),
                );
            }
            if !(0.0..1.0).contains(&operators.scrap_rate) {
                c.in_file(
                    "simulation.operators.scrap_rate",
                    "scrap_rate must be in [0, 1)".into(),
                );
            }
        }
    }
}

fn check_task(c: &mut Collector<'_>, span: Range<usize>, field: &str, task: Option<&OperatorTask>) {
    let Some(task) = task else {
        return;
    };
    if task.text.trim().is_empty() {
        c.at(
            span.clone(),
            format!("{field}.text"),
            "say what the operator does".into(),
        );
    }
    check_minutes(c, span, &format!("{field}.minutes"), task.minutes);
}

fn check_minutes(c: &mut Collector<'_>, span: Range<usize>, field: &str, minutes: f64) {
    if !(minutes.is_finite() && minutes > 0.0) {
        c.at(
            span,
            field.into(),
            format!("{minutes} minutes: an operator task takes some time"),
        );
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-' || ch == '_')
}
