//! What the planner sees of the plant: machines, runs (one run of one step of one order),
//! orders. Times are milliseconds since the Unix epoch, passed in, never read from a clock.

use serde::Serialize;

pub type Millis = i64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Priority {
    /// Public or community purpose: served before standard work.
    PublicService,
    Standard,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanMachine {
    pub id: String,
    pub capabilities: Vec<String>,
    /// Idle and able to take work now (not busy, paused, in alarm, maintenance or unavailable).
    pub idle: bool,
    /// Multiplies a run's expected time on this machine (above 1 = slower).
    pub speed_factor: f64,
    /// The setup family the machine is set up for now (material/tool/fixture), if known.
    pub current_setup: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanOrder {
    pub id: String,
    pub priority: Priority,
    pub due: Millis,
    /// Order of submission: the tie-breaker that keeps plans stable.
    pub sequence: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanRun {
    pub id: i64,
    pub order_id: String,
    pub step_id: String,
    pub capability: String,
    /// Expected run time in seconds on a machine with speed factor 1.
    pub run_seconds: f64,
    /// Setup time in seconds when the machine's current setup differs from `setup_family`.
    pub setup_seconds: f64,
    pub setup_family: String,
    /// Its inputs exist (predecessor steps produced enough units) and its material is reserved.
    pub ready: bool,
    /// Runs this one waits on (the runs of predecessor steps that make its input units).
    pub predecessors: Vec<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PlanInput {
    pub now: Millis,
    pub machines: Vec<PlanMachine>,
    pub orders: Vec<PlanOrder>,
    /// Runs still to dispatch. Runs already on a machine are not listed here.
    pub runs: Vec<PlanRun>,
}

/// Start this run on this machine now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dispatch {
    pub run_id: i64,
    pub machine_id: String,
}

impl PlanMachine {
    pub fn can_do(&self, capability: &str) -> bool {
        self.capabilities.iter().any(|c| c == capability)
    }
}
