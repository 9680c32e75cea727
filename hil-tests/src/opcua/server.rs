//! The OPC UA server around the simulated machine, and its life: listening, security, the
//! clock that advances the machine, faults, and restarting on the same port with the machine's
//! state kept.
//!
//! Three parts share [`Shared`]: the supervisor task (builds an async-opcua server on the
//! listener, runs it, stops and rebuilds it on a restart), the ticker task (advances the machine
//! in machine time every few milliseconds, fires due faults, publishes values and events), and the
//! method callbacks (job control, called from the server's sessions). Lock order: the state
//! mutex, then the address space; the server never calls back into us while it holds the
//! address space (no read callbacks are used: values live in the nodes).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use opcua::crypto::SecurityPolicy;
use opcua::server::node_manager::memory::{SimpleNodeManager, simple_node_manager_imports};
use opcua::server::{
    ANONYMOUS_USER_TOKEN_ID, ServerBuilder, ServerHandle, ServerUserToken, SubscriptionCache,
};
use opcua::types::{MessageSecurityMode, NodeId, StatusCode, Variant};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::events;
use super::fault::{Fault, FaultKind, Trigger};
use super::files::{FileHandles, OPEN_FOR_WRITING, refusal_status};
use super::methods::{self, FileCall, JobCommand};
use super::model::{Machine, MachineConfig, Notification, ProductionJob};
use super::namespaces::{NamespaceIndexes, NamespaceOrder, NamespaceRegistration};
use super::nodes::{MachineNodes, Nameplate, NodeIdAllocator, NodeIdStyle};

/// The endpoints' path: clients connect to `opc.tcp://HOST:PORT/`.
const ENDPOINT_PATH: &str = "/";
/// Wall time between two steps of the machine clock.
const TICK: Duration = Duration::from_millis(20);
/// Severity of an injected alarm (OPC UA severities run 1..=1000; 800 is a high alarm).
const ALARM_SEVERITY: u16 = 800;

/// Everything the simulator needs to start; `microfab sim opcua` fills it from its flags.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub host: String,
    pub port: u16,
    pub nameplate: Nameplate,
    pub machine: MachineConfig,
    pub time_scale: f64,
    pub namespace_order: NamespaceOrder,
    pub node_ids: NodeIdStyle,
    pub pki_dir: PathBuf,
    pub trust_client_certs: bool,
    pub anonymous: bool,
    /// (user name, password) pairs accepted on every endpoint.
    pub users: Vec<(String, String)>,
    pub faults: Vec<Fault>,
}

/// The parts of a running server the machine's state is published through.
struct Served {
    manager: Arc<SimpleNodeManager>,
    subscriptions: Arc<SubscriptionCache>,
    nodes: MachineNodes,
    instance_namespace: u16,
}

struct SimState {
    machine: Machine,
    ids: Option<NodeIdAllocator>,
    /// `None` while the server is down (restarting).
    served: Option<Served>,
    /// Method names whose next call answers BadInternalError.
    armed_bad_status: Vec<String>,
    slow_calls: Duration,
    files: FileHandles,
}

struct Shared {
    config: SimConfig,
    state: Mutex<SimState>,
    control: mpsc::UnboundedSender<Control>,
}

enum Control {
    /// Stop the server, wait this long, listen again on the same port.
    Restart(Duration),
    Stop,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, SimState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl SimState {
    /// Write the machine's values and pending events to the server, if one is up.
    fn publish(&mut self, machine_name: &str) {
        let Some(served) = &mut self.served else {
            return;
        };
        let Some(ids) = &mut self.ids else { return };
        served.nodes.sync(
            &served.manager,
            &served.subscriptions,
            ids,
            &self.machine,
            &self.files,
        );
        for notification in self.machine.take_notifications() {
            events::raise(
                &served.subscriptions,
                &served.nodes,
                machine_name,
                served.instance_namespace,
                &notification,
            );
        }
    }
}

/// A running simulator; [`OpcuaSim::stop`] ends it.
pub struct OpcuaSim {
    endpoint: String,
    shared: Arc<Shared>,
    supervisor: JoinHandle<()>,
    ticker: JoinHandle<()>,
}

impl OpcuaSim {
    /// Bind `host:port` (port 0: a free one), build the server and start the machine.
    pub async fn start(config: SimConfig) -> anyhow::Result<OpcuaSim> {
        let listener = TcpListener::bind((config.host.as_str(), config.port)).await?;
        let address = listener.local_addr()?;
        let endpoint = format!(
            "opc.tcp://{}:{}{ENDPOINT_PATH}",
            config.host,
            address.port()
        );
        let (control, commands) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            state: Mutex::new(SimState {
                machine: Machine::new(config.machine.clone()),
                ids: None,
                served: None,
                armed_bad_status: Vec::new(),
                slow_calls: Duration::ZERO,
                files: FileHandles::default(),
            }),
            config,
            control,
        });
        let first = serve(&shared, listener, address.port())?;
        let supervisor = tokio::spawn(supervise(shared.clone(), first, address, commands));
        let ticker = tokio::spawn(tick(shared.clone()));
        Ok(OpcuaSim {
            endpoint,
            shared,
            supervisor,
            ticker,
        })
    }

    /// `opc.tcp://HOST:PORT/`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The production plan as the machine knows it (for tests comparing what a client saw).
    pub fn jobs(&self) -> Vec<ProductionJob> {
        self.shared.lock().machine.jobs().to_vec()
    }

    /// Stop the server and the machine, and wait until the port is closed.
    pub async fn stop(self) {
        let _ = self.shared.control.send(Control::Stop);
        self.ticker.abort();
        let _ = self.supervisor.await;
    }
}

fn alarm(number: u32) -> Notification {
    Notification {
        error_code: format!("ALM-{number}"),
        severity: ALARM_SEVERITY,
        message: format!("Alarm {number}: spindle drive fault, channel 1 stopped"),
    }
}

/// Build an async-opcua server for the machine and start it on `listener`.
fn serve(
    shared: &Arc<Shared>,
    listener: TcpListener,
    port: u16,
) -> anyhow::Result<(ServerHandle, JoinHandle<Result<(), String>>)> {
    let config = &shared.config;
    let (server, handle) = server_builder(config, port)
        .build()
        .map_err(|e| anyhow::anyhow!("OPC UA server configuration: {e}"))?;
    let ns = NamespaceIndexes::resolve(|uri| handle.get_namespace_index(uri))
        .map_err(|e| anyhow::anyhow!(e))?;
    let manager = handle
        .node_managers()
        .get_of_type::<SimpleNodeManager>()
        .ok_or_else(|| anyhow::anyhow!("the simulator's node manager is missing"))?;
    let subscriptions = handle.subscriptions().clone();

    let mut state = shared.lock();
    let mut ids = state
        .ids
        .take()
        .unwrap_or_else(|| NodeIdAllocator::new(config.node_ids, ns.instance));
    let nodes = {
        let mut space = manager.address_space().write();
        events::add_event_type(&mut space, &mut ids, ns.instance, ns.machine_tool);
        let nodes = MachineNodes::build(&mut space, &mut ids, ns, &config.nameplate);
        let weak = Arc::downgrade(shared);
        let handler: methods::CommandHandler =
            Arc::new(move |name, command| match weak.upgrade() {
                Some(shared) => call(&shared, name, command),
                None => Err(StatusCode::BadShutdown),
            });
        methods::add_job_control(&mut space, &manager, &mut ids, &nodes, ns.instance, handler);
        let weak = Arc::downgrade(shared);
        let files: methods::FileHandler = Arc::new(move |call| match weak.upgrade() {
            Some(shared) => file_call(&shared, call),
            None => Err(StatusCode::BadShutdown),
        });
        methods::add_program_store(&mut space, &manager, &mut ids, &nodes, files);
        nodes
    };
    state.ids = Some(ids);
    state.served = Some(Served {
        manager,
        subscriptions,
        nodes,
        instance_namespace: ns.instance,
    });
    state.publish(&config.nameplate.machine_name);
    drop(state);
    let run = tokio::spawn(server.run_with(listener));
    Ok((handle, run))
}

fn server_builder(config: &SimConfig, port: u16) -> ServerBuilder {
    let mut user_token_ids: Vec<String> = Vec::new();
    if config.anonymous {
        user_token_ids.push(ANONYMOUS_USER_TOKEN_ID.to_string());
    }
    let mut builder = ServerBuilder::new()
        .application_name("microfab OPC UA machine tool simulator")
        .application_uri("urn:microfab:sim:opcua:server")
        .product_uri("urn:microfab:sim:opcua")
        .create_sample_keypair(true)
        .certificate_path("own/cert.der")
        .private_key_path("private/private.pem")
        .pki_dir(&config.pki_dir)
        .trust_client_certs(config.trust_client_certs)
        .host(config.host.clone())
        .port(port)
        .discovery_urls(vec![ENDPOINT_PATH.to_string()])
        .with_node_manager(simple_node_manager_imports(
            vec![Box::new(NamespaceRegistration(config.namespace_order))],
            "microfab-sim",
        ));
    for (index, (user, password)) in config.users.iter().enumerate() {
        let id = format!("user{index}");
        builder = builder.add_user_token(
            &id,
            ServerUserToken::user_pass(user.as_str(), password.as_str()),
        );
        user_token_ids.push(id);
    }
    let ids: Vec<&str> = user_token_ids.iter().map(String::as_str).collect();
    let endpoints = [
        ("none", SecurityPolicy::None, MessageSecurityMode::None),
        (
            "basic256sha256_sign",
            SecurityPolicy::Basic256Sha256,
            MessageSecurityMode::Sign,
        ),
        (
            "basic256sha256_sign_encrypt",
            SecurityPolicy::Basic256Sha256,
            MessageSecurityMode::SignAndEncrypt,
        ),
        (
            "aes256sha256rsapss_sign",
            SecurityPolicy::Aes256Sha256RsaPss,
            MessageSecurityMode::Sign,
        ),
        (
            "aes256sha256rsapss_sign_encrypt",
            SecurityPolicy::Aes256Sha256RsaPss,
            MessageSecurityMode::SignAndEncrypt,
        ),
    ];
    for (id, policy, mode) in endpoints {
        builder = builder.add_endpoint(id, (ENDPOINT_PATH, policy, mode, ids.as_slice()));
    }
    builder
}

/// The faults that strike a method call before it is carried out: a bad status, a slow answer.
fn before_call(shared: &Shared, name: &str) -> Result<(), StatusCode> {
    let delay = {
        let mut state = shared.lock();
        if let Some(at) = state.armed_bad_status.iter().position(|m| m == name) {
            state.armed_bad_status.remove(at);
            return Err(StatusCode::BadInternalError);
        }
        state.slow_calls
    };
    if !delay.is_zero() {
        // The callback is synchronous; a slow machine controller blocks its answer.
        std::thread::sleep(delay);
    }
    Ok(())
}

/// Carry out a job-control call that passed the argument check.
fn call(
    shared: &Shared,
    name: &'static str,
    command: JobCommand,
) -> Result<Vec<Variant>, StatusCode> {
    before_call(shared, name)?;
    let mut state = shared.lock();
    let machine = &mut state.machine;
    let result = match command {
        JobCommand::StoreAndStart {
            program,
            runs_planned,
        } => machine
            .store_and_start(&program, runs_planned)
            .map(|job| vec![Variant::from(job)]),
        JobCommand::SelectProgram { program } => machine.select_program(&program).map(|()| vec![]),
        JobCommand::Start => machine.start_selected().map(|job| vec![Variant::from(job)]),
        JobCommand::Pause => machine.pause().map(|()| vec![]),
        JobCommand::Resume => machine.resume().map(|()| vec![]),
        JobCommand::Abort => machine.abort().map(|()| vec![]),
    };
    state.publish(&shared.config.nameplate.machine_name);
    result.map_err(|refusal| {
        tracing::info!(method = name, %refusal, "OPC UA simulator refused a call");
        refusal_status(refusal)
    })
}

/// Carry out a call on the program store that passed the argument check.
fn file_call(shared: &Shared, call: FileCall) -> Result<Vec<Variant>, StatusCode> {
    let name = match &call {
        FileCall::Create { .. } => "CreateFile",
        FileCall::File { method, .. } => method.name(),
    };
    before_call(shared, name)?;
    let mut guard = shared.lock();
    let state = &mut *guard;
    let result = match call {
        FileCall::Create { name, open } => {
            match state.machine.create_program(&name).map_err(refusal_status) {
                Ok(slot) => {
                    // The file object exists once published; its id is the answer.
                    state.publish(&shared.config.nameplate.machine_name);
                    let file = state
                        .served
                        .as_ref()
                        .and_then(|served| served.nodes.program_file(slot))
                        .cloned()
                        .unwrap_or_else(NodeId::null);
                    let handle = if open {
                        state
                            .files
                            .open(&mut state.machine, &name, OPEN_FOR_WRITING)
                    } else {
                        Ok(0)
                    };
                    handle.map(|handle| vec![file.into(), handle.into()])
                }
                Err(status) => Err(status),
            }
        }
        FileCall::File { slot, method, args } => {
            let program = state.machine.programs().nth(slot).map(str::to_string);
            match program {
                Some(program) => state
                    .files
                    .call(&mut state.machine, &program, method, &args),
                None => Err(StatusCode::BadMethodInvalid),
            }
        }
    };
    state.publish(&shared.config.nameplate.machine_name);
    result
}

/// Run the server; on a restart, stop it, wait, and serve the same machine again on the port.
async fn supervise(
    shared: Arc<Shared>,
    first: (ServerHandle, JoinHandle<Result<(), String>>),
    address: SocketAddr,
    mut commands: mpsc::UnboundedReceiver<Control>,
) {
    let (mut handle, mut run) = first;
    loop {
        let command = tokio::select! {
            command = commands.recv() => command.unwrap_or(Control::Stop),
            ended = &mut run => {
                tracing::error!(?ended, "OPC UA simulator server stopped by itself");
                return;
            }
        };
        {
            let mut state = shared.lock();
            state.served = None;
            state.files.forget_all();
        }
        handle.cancel();
        let _ = (&mut run).await;
        let Control::Restart(down) = command else {
            return;
        };
        tokio::time::sleep(down).await;
        let listener = match TcpListener::bind(address).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::error!(%error, %address, "OPC UA simulator cannot listen again");
                return;
            }
        };
        match serve(&shared, listener, address.port()) {
            Ok((new_handle, new_run)) => (handle, run) = (new_handle, new_run),
            Err(error) => {
                tracing::error!(%error, "OPC UA simulator cannot restart");
                return;
            }
        }
    }
}

fn strike(shared: &Shared, state: &mut SimState, fault: Fault) {
    tracing::info!(?fault, "OPC UA simulator injects a fault");
    match fault.kind {
        FaultKind::Alarm(number) => state.machine.raise_alarm(alarm(number)),
        FaultKind::Restart(down) => {
            let _ = shared.control.send(Control::Restart(down));
        }
        FaultKind::DropSessions => {
            let _ = shared.control.send(Control::Restart(Duration::ZERO));
        }
        FaultKind::BadStatus(method) => state.armed_bad_status.push(method),
        FaultKind::Slow(delay) => state.slow_calls = delay,
    }
}

/// Advance the machine in machine time, fire due faults, publish.
async fn tick(shared: Arc<Shared>) {
    let started = Instant::now();
    let mut pending = shared.config.faults.clone();
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = Instant::now();
    loop {
        interval.tick().await;
        let now = Instant::now();
        let mut state = shared.lock();
        let mut seconds = (now - last).as_secs_f64() * shared.config.time_scale;
        last = now;
        // Step to each run-count trigger in turn, so a fault strikes after exactly its run.
        loop {
            let runs = state.machine.total_runs_completed();
            let next_trigger = pending
                .iter()
                .filter_map(|fault| match fault.trigger {
                    Trigger::Runs(n) if n > runs => Some(n),
                    _ => None,
                })
                .min();
            seconds = state.machine.advance_until(seconds, next_trigger);
            let runs = state.machine.total_runs_completed();
            let (due, later): (Vec<Fault>, Vec<Fault>) = pending
                .into_iter()
                .partition(|fault| fault.is_due(runs, now - started));
            pending = later;
            for fault in due {
                strike(&shared, &mut state, fault);
            }
            if seconds <= 0.0 {
                break;
            }
        }
        state.publish(&shared.config.nameplate.machine_name);
    }
}
