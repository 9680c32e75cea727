//! What the planner sees of the plant: machines, runs (one run of one step of one order),
//! orders, materials, and the runs already on machines. Times are milliseconds since the Unix
//! epoch, passed in, never read from a clock.
//!
//! Every addition since the first dispatching rule has a `Default`, so callers fill only what
//! they know (`..Default::default()`).

use serde::Serialize;

pub type Millis = i64;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Priority {
    /// Public or community purpose: served before standard work.
    PublicService,
    #[default]
    Standard,
}

/// A stretch of time in which a machine cannot work (maintenance, closed hours).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Window {
    pub from: Millis,
    pub until: Millis,
}

/// Working time with this many operators in the plant (one shift). Outside every window nobody
/// is there: no operator task is done, and a machine not allowed `after_hours` runs nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ShiftWindow {
    pub from: Millis,
    pub until: Millis,
    pub operators: u32,
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
    /// Earliest time new work (including its setup) may begin, e.g. when its current job ends.
    /// `None`: from `PlanInput::now`.
    pub available_from: Option<Millis>,
    /// Planned downtime; no setup or run is planned to overlap it.
    pub down: Vec<Window>,
    /// Failed or withdrawn: the planner puts nothing on it.
    pub out_of_service: bool,
    /// Operator seconds before each run (load the sheet, zero Z) and after it (unload and
    /// inspect); the machine is held meanwhile. 0: nobody is needed.
    pub load_seconds: f64,
    pub unload_seconds: f64,
    /// May a run go on outside the shifts, with nobody in the plant?
    pub after_hours: bool,
    /// Maintenance due: operator seconds, with the machine stopped, before its next run.
    pub maintenance_seconds: f64,
}

impl Default for PlanMachine {
    fn default() -> Self {
        PlanMachine {
            id: String::new(),
            capabilities: Vec::new(),
            idle: false,
            speed_factor: 1.0,
            current_setup: None,
            available_from: None,
            down: Vec::new(),
            out_of_service: false,
            load_seconds: 0.0,
            unload_seconds: 0.0,
            after_hours: true,
            maintenance_seconds: 0.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanOrder {
    pub id: String,
    pub priority: Priority,
    pub due: Millis,
    /// Order of submission: the tie-breaker that keeps plans stable.
    pub sequence: i64,
    /// Weight of this order's tardiness within its priority class (default 1).
    pub weight: u32,
}

impl Default for PlanOrder {
    fn default() -> Self {
        PlanOrder {
            id: String::new(),
            priority: Priority::Standard,
            due: 0,
            sequence: 0,
            weight: 1,
        }
    }
}

/// A quantity of one material a run consumes when it starts.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MaterialNeed {
    pub material: String,
    pub quantity: f64,
}

/// Stock of a material: what is on hand now (not reserved by running work) and what arrives.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PlanMaterial {
    pub id: String,
    pub on_hand: f64,
    pub arrivals: Vec<MaterialArrival>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct MaterialArrival {
    pub at: Millis,
    pub quantity: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
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
    /// Ids that are neither in `PlanInput::runs` nor in `PlanInput::frozen` count as done.
    pub predecessors: Vec<i64>,
    /// Material consumed at start. Materials not listed in `PlanInput::materials` are taken
    /// as already reserved.
    pub material_needs: Vec<MaterialNeed>,
    /// When not empty, only these machines may run it (e.g. those whose work envelope fits the
    /// program); otherwise every machine with the capability.
    pub only_on: Vec<String>,
}

/// Where a frozen run is in its life on the machine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FrozenStage {
    /// Given to the machine, waiting for an operator to load it: it starts after the load.
    AwaitingLoad,
    /// Sent and running (or about to).
    #[default]
    Running,
    /// Finished; its machine is held until an operator unloads and inspects it.
    AwaitingUnload,
}

/// A run already on a machine (running, or committed): the plan keeps it exactly as given.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FrozenRun {
    pub run_id: i64,
    pub order_id: String,
    pub machine_id: String,
    pub setup_family: String,
    pub start: Millis,
    /// Expected end; the machine is busy until then (and until its unload, if it has one).
    pub end: Millis,
    pub stage: FrozenStage,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PlanInput {
    pub now: Millis,
    pub machines: Vec<PlanMachine>,
    pub orders: Vec<PlanOrder>,
    /// Runs still to dispatch. Runs already on a machine are not listed here.
    pub runs: Vec<PlanRun>,
    /// Runs already on machines.
    pub frozen: Vec<FrozenRun>,
    pub materials: Vec<PlanMaterial>,
    /// The shifts from `now` over the planning horizon. Empty: always working, and operators
    /// are not planned (as many as needed).
    pub shifts: Vec<ShiftWindow>,
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

impl PlanRun {
    /// Eligibility: the machine has the capability and, if the run names machines, is one of them.
    pub fn can_run_on(&self, machine: &PlanMachine) -> bool {
        machine.can_do(&self.capability)
            && (self.only_on.is_empty() || self.only_on.contains(&machine.id))
    }
}

/// A run's planned time in milliseconds on a machine of this speed.
pub fn run_millis(run: &PlanRun, machine: &PlanMachine) -> Millis {
    (run.run_seconds * machine.speed_factor * 1000.0).round() as Millis
}

/// The setup a run needs when it follows work of `previous_family` on a machine.
pub fn setup_millis(run: &PlanRun, previous_family: Option<&str>) -> Millis {
    if previous_family == Some(run.setup_family.as_str()) {
        0
    } else {
        (run.setup_seconds * 1000.0).round() as Millis
    }
}
