//! An industrial CNC machine tool behind a real OPC UA server (async-opcua), shaped as OPC 40501
//! Machine Tools on OPC 40001 Machinery, for the OPC UA driver's tests and for
//! `microfab sim opcua`.
//!
//! [`model`] is the machine (jobs, counters in machine time, seeded scrap, alarms, the program
//! store) without OPC UA; [`namespaces`] the companion namespaces in a chosen order; [`nodes`]
//! the address space and how values reach it; [`methods`] job control with strictly typed
//! arguments; [`files`] the program store as OPC UA files; [`events`] alarms as events;
//! [`fault`] the fault catalogue; [`server`] security, the clock, faults and restarts.
//!
//! By hand: `microfab sim opcua --time-scale 60 --scrap-rate 0.05 --user operator:secret
//! --fault alarm:1021@runs:3` prints `opc.tcp://127.0.0.1:PORT/` first, then serves until
//! killed. Browse `Objects/Machines/<name>` with any OPC UA client (UaExpert, opcua-commander).

pub mod events;
pub mod fault;
pub mod files;
pub mod methods;
pub mod model;
pub mod namespaces;
pub mod nodes;
pub mod server;

use std::io::Write;
use std::path::PathBuf;

pub use fault::Fault;
pub use namespaces::NamespaceOrder;
pub use nodes::{Nameplate, NodeIdStyle};
pub use server::{OpcuaSim, SimConfig};

use model::MachineConfig;

/// `microfab sim opcua` options.
#[derive(clap::Args, Debug, Clone)]
pub struct OpcuaSimArgs {
    /// TCP port to listen on; 0 picks a free one (the endpoint line says which).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// The machine's name under Objects/Machines.
    #[arg(long, default_value = "Mill5")]
    pub machine_name: String,
    /// Machine seconds per wall second (60 runs a one-minute cycle in a second).
    #[arg(long, default_value_t = 1.0)]
    pub time_scale: f64,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Share of parts scrapped (0.05 = 5 %), drawn from the seeded generator.
    #[arg(long, default_value_t = 0.0)]
    pub scrap_rate: f64,
    /// A program on the machine and its cycle time in machine seconds, NAME:SECONDS
    /// (repeatable; default BRACKET-5AX:240, HOUSING-5AX:600, PLATE-WJ:90).
    #[arg(long = "program", value_parser = parse_program)]
    pub programs: Vec<(String, f64)>,
    /// Order of the companion namespaces in the NamespaceArray.
    #[arg(long, value_enum, default_value_t)]
    pub namespace_order: NamespaceOrder,
    /// String or numeric NodeIds for the instance nodes.
    #[arg(long, value_enum, default_value_t)]
    pub node_ids: NodeIdStyle,
    /// Where the server keeps its certificate (created on first start), trusted and rejected
    /// client certificates. Default: microfab-opcua-sim-pki in the temporary directory.
    #[arg(long)]
    pub pki_dir: Option<PathBuf>,
    /// Trust every client certificate (tests); without it an unknown client certificate is
    /// refused and lands in PKI_DIR/rejected, to be moved to PKI_DIR/trusted by hand.
    #[arg(long)]
    pub trust_client_certs: bool,
    /// A user name and password accepted on every endpoint, NAME:PASSWORD (repeatable).
    #[arg(long = "user", value_parser = parse_user)]
    pub users: Vec<(String, String)>,
    /// Refuse anonymous sessions.
    #[arg(long)]
    pub no_anonymous: bool,
    /// Fault to inject, KIND@TRIGGER (repeatable): alarm:N, restart:MS, drop-sessions,
    /// bad-status:METHOD, slow:MS; at runs:N or time:MS. Example: --fault alarm:1021@runs:3
    #[arg(long = "fault")]
    pub faults: Vec<Fault>,
}

fn parse_program(text: &str) -> Result<(String, f64), String> {
    let bad = || format!("bad program '{text}': expected NAME:SECONDS, e.g. BRACKET-5AX:240");
    let (name, seconds) = text.split_once(':').ok_or_else(bad)?;
    let seconds: f64 = seconds.parse().map_err(|_| bad())?;
    if name.is_empty() || !seconds.is_finite() || seconds <= 0.0 {
        return Err(bad());
    }
    Ok((name.to_string(), seconds))
}

fn parse_user(text: &str) -> Result<(String, String), String> {
    match text.split_once(':') {
        Some((user, password)) if !user.is_empty() => Ok((user.to_string(), password.to_string())),
        _ => Err(format!("bad user '{text}': expected NAME:PASSWORD")),
    }
}

impl OpcuaSimArgs {
    /// The defaults: anonymous access, one machine, no faults, a free port.
    pub fn new(pki_dir: impl Into<PathBuf>) -> OpcuaSimArgs {
        OpcuaSimArgs {
            port: 0,
            host: "127.0.0.1".to_string(),
            machine_name: "Mill5".to_string(),
            time_scale: 1.0,
            seed: 1,
            scrap_rate: 0.0,
            programs: Vec::new(),
            namespace_order: NamespaceOrder::default(),
            node_ids: NodeIdStyle::default(),
            pki_dir: Some(pki_dir.into()),
            trust_client_certs: false,
            users: Vec::new(),
            no_anonymous: false,
            faults: Vec::new(),
        }
    }

    pub fn config(&self) -> SimConfig {
        let programs = if self.programs.is_empty() {
            [
                ("BRACKET-5AX", 240.0),
                ("HOUSING-5AX", 600.0),
                ("PLATE-WJ", 90.0),
            ]
            .into_iter()
            .map(|(name, seconds)| (name.to_string(), seconds))
            .collect()
        } else {
            self.programs.clone()
        };
        SimConfig {
            host: self.host.clone(),
            port: self.port,
            nameplate: Nameplate {
                machine_name: self.machine_name.clone(),
                manufacturer: "microfab simulated machines".to_string(),
                model: "5-axis machining centre (simulated)".to_string(),
                serial_number: format!("SIM-{}-{}", self.machine_name, self.seed),
            },
            machine: MachineConfig {
                programs,
                scrap_rate: self.scrap_rate,
                seed: self.seed,
            },
            time_scale: self.time_scale,
            namespace_order: self.namespace_order,
            node_ids: self.node_ids,
            pki_dir: self
                .pki_dir
                .clone()
                .unwrap_or_else(|| std::env::temp_dir().join("microfab-opcua-sim-pki")),
            trust_client_certs: self.trust_client_certs,
            anonymous: !self.no_anonymous,
            users: self.users.clone(),
            faults: self.faults.clone(),
        }
    }
}

/// `microfab sim opcua`: print the endpoint on the first line, then serve until killed.
pub async fn run(args: OpcuaSimArgs) -> anyhow::Result<()> {
    let sim = OpcuaSim::start(args.config()).await?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "{}", sim.endpoint())?;
    writeln!(
        stdout,
        "machine {} at Objects/Machines; Ctrl-C to stop",
        args.machine_name
    )?;
    stdout.flush()?;
    tokio::signal::ctrl_c().await?;
    sim.stop().await;
    Ok(())
}
