//! What a driver can tell about its machine at any moment ([`crate::Driver::status`]): the
//! machine task publishes it, with what it saw in the driver's events, on the machine's status
//! channel.

use serde::Serialize;

use crate::traffic::LinkCounters;

/// A snapshot of what the driver knows beyond its events. Everything is optional: a driver
/// reports what it measures.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DriverStatus {
    /// How far the current run is, where the driver measures it itself (the simulator: machine
    /// time). Line-protocol drivers report progress as `JobProgress` events instead.
    pub progress: Option<Progress>,
    /// The link to the machine, for drivers that have one.
    pub link: Option<LinkStatus>,
    /// The firmware's last temperature report (Marlin).
    pub temperatures: Vec<TemperatureReading>,
}

/// How far a run is: `done` of `total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Progress {
    pub done: u64,
    pub total: u64,
    pub unit: ProgressUnit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ProgressUnit {
    /// Lines of the program the machine acknowledged.
    Lines,
    /// Thousandths of the run's time.
    PerMille,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LinkStatus {
    /// The port is open. Whether the firmware answers is the machine's condition.
    pub up: bool,
    pub counters: LinkCounters,
}

/// One temperature sensor in a report: `T:210.0 /215.0` is hotend `T` at 210 °C, target 215.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TemperatureReading {
    /// `T`, `T0`, `T1`, `B` (bed), `C` (chamber), `P` (probe), `A` (ambient), ...
    pub sensor: String,
    /// Degrees Celsius.
    pub actual: f64,
    /// Degrees Celsius, where the firmware reports a target.
    pub target: Option<f64>,
}
