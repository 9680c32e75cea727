//! Every driver kind, and what the plant config needs of each: a machine's `driver` table
//! (`driver = { kind = "grbl", port = "..." }`) becomes a [`DriverConfig`], one variant per kind,
//! each holding its kind's own config type. That type implements [`DriverKind`]: it checks its
//! keys, names the resources two machines must not share, preflights programs, says what the
//! kind supports and builds the driver. The orchestrator only ever talks to [`DriverConfig`].
//!
//! A new kind is a module of this crate with a config type implementing [`DriverKind`], and one
//! line in the `driver_kinds!` list below.

use serde::Deserialize;

use crate::Driver;

/// What a driver kind's config table provides to the plant.
pub trait DriverKind {
    /// What every machine of this kind can do, whatever its table says.
    fn supports() -> Supports
    where
        Self: Sized;

    /// Problems with the table's values (unknown keys are already refused when it is read).
    fn validate(&self) -> Vec<FieldProblem> {
        Vec::new()
    }

    /// What this machine holds that no other machine may (a serial port, an endpoint), so
    /// `microfab config check` catches two machines on one.
    fn resources(&self) -> Vec<Resource> {
        Vec::new()
    }

    /// Can this driver run this G-code program at all? The same check the driver makes before
    /// a run, so the pre-screen can flag a program no machine will accept.
    fn preflight(&self, program: &str) -> Result<(), String> {
        let _ = program;
        Ok(())
    }

    /// The driver, not yet connected: drivers open their link inside `next_event`.
    fn build(&self, context: &BuildContext) -> Box<dyn Driver>;
}

/// What a driver kind can do, for the plant's rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Supports {
    /// It can go on with an interrupted run from a line of its program
    /// ([`crate::DriverCommand::ResumeRun`]).
    pub resume_from_line: bool,
    /// An operator may resume its interrupted runs unless the machine's config says not to
    /// (`resume_interrupted`): true for 3D printers, never for CNC, where a resume after a
    /// lost link trusts a position nobody has checked.
    pub resume_by_default: bool,
    /// The machine keeps its state while this process restarts (firmware on its own board,
    /// which the driver asks again); runs on machines that live inside the process do not
    /// survive a restart.
    pub state_survives_restart: bool,
    /// It carries out an operator's explicit actions (unlock, home, reset:
    /// [`crate::Driver::operator`]); the panel offers them only where this is true.
    pub operator_actions: bool,
}

/// One problem in a machine's `driver` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    /// The key inside the driver table (`scrap_rate`), or empty for the table as a whole.
    pub field: String,
    pub message: String,
}

impl FieldProblem {
    pub fn new(field: &str, message: impl Into<String>) -> FieldProblem {
        FieldProblem {
            field: field.to_string(),
            message: message.into(),
        }
    }

    /// A problem of the table as a whole (settings that do not fit together).
    pub fn table(message: impl Into<String>) -> FieldProblem {
        FieldProblem::new("", message)
    }
}

/// Something a machine's driver holds alone, named by a key of its table.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Resource {
    /// What it is, as an error message names it: `port`, `endpoint`.
    pub what: &'static str,
    /// The key of the driver table that names it.
    pub field: &'static str,
    pub name: String,
}

impl Resource {
    /// A serial port, named by the `port` key.
    pub fn serial_port(path: &str) -> Resource {
        Resource {
            what: "port",
            field: "port",
            name: path.to_string(),
        }
    }
}

/// What a driver is built with besides its own table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BuildContext {
    /// The machine's speed relative to what specs expect (above 1 is slower).
    pub speed_factor: f64,
    /// Machine seconds per wall second for simulated machines whose table does not say
    /// (the plant's `[simulation] time_scale`).
    pub default_time_scale: f64,
}

/// The registry: `"kind" => Variant(ConfigType)`, one line per driver kind. Makes
/// [`DriverConfig`] (the `driver` table, tagged by `kind`) and its dispatch to each kind.
macro_rules! driver_kinds {
    ($($(#[doc = $doc:literal])* $kind:literal => $variant:ident($config:ty),)+) => {
        /// A machine's `driver` table: `kind` names the driver, the other keys are its own.
        #[derive(Debug, Clone, PartialEq, Deserialize)]
        #[serde(tag = "kind", deny_unknown_fields)]
        pub enum DriverConfig {
            $($(#[doc = $doc])* #[serde(rename = $kind)] $variant($config),)+
        }

        impl DriverConfig {
            /// Every kind, in the order registered, with what it supports.
            pub fn kinds() -> Vec<(&'static str, Supports)> {
                vec![$(($kind, <$config as DriverKind>::supports()),)+]
            }

            pub fn kind(&self) -> &'static str {
                match self {
                    $(DriverConfig::$variant(_) => $kind,)+
                }
            }

            pub fn supports(&self) -> Supports {
                match self {
                    $(DriverConfig::$variant(_) => <$config as DriverKind>::supports(),)+
                }
            }

            fn kind_config(&self) -> &dyn DriverKind {
                match self {
                    $(DriverConfig::$variant(config) => config,)+
                }
            }
        }
    };
}

driver_kinds! {
    /// The in-process simulated machine.
    "sim" => Sim(crate::sim::SimConfig),
    /// A manual station: runs complete when an operator confirms them.
    "manual" => Manual(crate::manual::ManualConfig),
    /// GRBL 1.1 firmware over a serial port (CNC routers, lasers, PCB mills).
    "grbl" => Grbl(crate::grbl::GrblConfig),
    /// Marlin firmware over a serial port (3D printers).
    "marlin" => Marlin(crate::marlin::MarlinConfig),
}

impl DriverConfig {
    /// See [`DriverKind::validate`].
    pub fn validate(&self) -> Vec<FieldProblem> {
        self.kind_config().validate()
    }

    /// See [`DriverKind::resources`].
    pub fn resources(&self) -> Vec<Resource> {
        self.kind_config().resources()
    }

    /// See [`DriverKind::preflight`].
    pub fn preflight(&self, program: &str) -> Result<(), String> {
        self.kind_config().preflight(program)
    }

    /// See [`DriverKind::build`].
    pub fn build(&self, context: &BuildContext) -> Box<dyn Driver> {
        self.kind_config().build(context)
    }

    /// Whether the driver can go on with an interrupted run from a line of its program.
    pub fn can_resume(&self) -> bool {
        self.supports().resume_from_line
    }

    /// Drivers whose machine lives inside this process lose the machine's state with it.
    pub fn machine_state_survives_restart(&self) -> bool {
        self.supports().state_survives_restart
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(json: &str) -> Result<DriverConfig, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn the_kind_tag_picks_the_config_type_and_unknown_keys_are_refused() {
        let cases = [
            (r#"{"kind": "sim"}"#, "sim"),
            (r#"{"kind": "manual"}"#, "manual"),
            (r#"{"kind": "grbl", "port": "/dev/ttyUSB0"}"#, "grbl"),
            (r#"{"kind": "marlin", "port": "/dev/ttyACM0"}"#, "marlin"),
        ];
        for (json, kind) in cases {
            assert_eq!(table(json).unwrap().kind(), kind);
        }
        let unknown = table(r#"{"kind": "telnet"}"#).unwrap_err();
        assert!(
            unknown.contains(
                "unknown variant `telnet`, expected one of `sim`, `manual`, `grbl`, `marlin`"
            ),
            "{unknown}"
        );
        assert!(table(r#"{"kind": "manual", "port": "/dev/x"}"#).is_err());
        assert!(table(r#"{"kind": "grbl", "port": "/dev/x", "buad": 1}"#).is_err());
    }

    #[test]
    fn serial_drivers_hold_their_port() {
        let grbl = table(r#"{"kind": "grbl", "port": "/dev/ttyUSB0"}"#).unwrap();
        assert_eq!(
            grbl.resources(),
            vec![Resource::serial_port("/dev/ttyUSB0")]
        );
        assert_eq!(table(r#"{"kind": "sim"}"#).unwrap().resources(), vec![]);
    }

    #[test]
    fn every_kind_is_listed_once() {
        let kinds: Vec<_> = DriverConfig::kinds().into_iter().map(|(k, _)| k).collect();
        assert_eq!(kinds, ["sim", "manual", "grbl", "marlin"]);
    }
}
