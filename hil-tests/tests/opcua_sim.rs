//! The OPC UA machine tool simulator against a real async-opcua client over TCP on 127.0.0.1:
//! nodes found by browse path with namespaces resolved by URI, typed job-control calls,
//! counters watched by subscription, alarms as events, security and users, faults.

use std::sync::Arc;
use std::time::Duration;

use microfab_hil::opcua::namespaces::NamespaceIndexes;
use microfab_hil::opcua::{NamespaceOrder, NodeIdStyle, OpcuaSim, OpcuaSimArgs};
use opcua::client::{ClientBuilder, DataChangeCallback, EventCallback, IdentityToken, Session};
use opcua::crypto::SecurityPolicy;
use opcua::types::{
    Argument, AttributeId, BrowsePath, CallMethodRequest, CallMethodResult, ContentFilter,
    DataTypeId, EventFilter, ExtensionObject, Identifier, LocalizedText, MessageSecurityMode,
    MonitoredItemCreateRequest, NodeId, NumericRange, ObjectId, ObjectTypeId, QualifiedName,
    ReadValueId, ReferenceTypeId, RelativePath, RelativePathElement, SimpleAttributeOperand,
    StatusCode, TimestampsToReturn, UserTokenPolicy, VariableId, Variant,
};
use tempfile::TempDir;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::timeout;

const MACHINE: &str = "Mill5";
/// Generous bound for anything that should happen within a second or two.
const PATIENCE: Duration = Duration::from_secs(20);

/// A simulator with one fast program (a run of 1 machine second at 20x: 50 ms of wall time).
async fn start_sim(configure: impl FnOnce(&mut OpcuaSimArgs)) -> (OpcuaSim, TempDir) {
    let pki = tempfile::tempdir().unwrap();
    let mut args = OpcuaSimArgs::new(pki.path().join("server"));
    args.programs = vec![("BRACKET-5AX".into(), 1.0), ("HOUSING-5AX".into(), 2.0)];
    args.time_scale = 20.0;
    configure(&mut args);
    let sim = OpcuaSim::start(args.config()).await.unwrap();
    (sim, pki)
}

struct Connection {
    session: Arc<Session>,
    event_loop: JoinHandle<StatusCode>,
    ns: NamespaceIndexes,
}

async fn connect_with(
    endpoint: &str,
    client_pki: &std::path::Path,
    security: (SecurityPolicy, MessageSecurityMode),
    identity: IdentityToken,
    retries: i32,
) -> Result<Connection, String> {
    let mut client = ClientBuilder::new()
        .application_name("microfab OPC UA simulator test")
        .application_uri("urn:microfab:test:client")
        .product_uri("urn:microfab:test")
        .create_sample_keypair(true)
        .trust_server_certs(true)
        .pki_dir(client_pki)
        .session_retry_limit(retries)
        .client()
        .map_err(|errors| errors.join("; "))?;
    let user_token = match &identity {
        IdentityToken::Anonymous => UserTokenPolicy::anonymous(),
        _ => UserTokenPolicy {
            token_type: opcua::types::UserTokenType::UserName,
            ..Default::default()
        },
    };
    let (session, event_loop) = client
        .connect_to_matching_endpoint(
            (endpoint, security.0.to_str(), security.1, user_token),
            identity,
        )
        .await
        .map_err(|e| e.to_string())?;
    let event_loop = event_loop.spawn();
    let connected = timeout(PATIENCE, session.wait_for_connection()).await;
    if !matches!(connected, Ok(true)) {
        let status = if event_loop.is_finished() {
            format!("{:?}", event_loop.await)
        } else {
            event_loop.abort();
            "timed out".to_string()
        };
        return Err(format!("session not established: {status}"));
    }
    let ns = namespace_indexes(&session).await;
    Ok(Connection {
        session,
        event_loop,
        ns,
    })
}

/// Anonymous, no security.
async fn connect(sim: &OpcuaSim, pki: &TempDir) -> Connection {
    connect_with(
        sim.endpoint(),
        &pki.path().join("client"),
        (SecurityPolicy::None, MessageSecurityMode::None),
        IdentityToken::Anonymous,
        0,
    )
    .await
    .unwrap()
}

/// The namespace indexes as a client must learn them: from the server's NamespaceArray.
async fn namespace_indexes(session: &Session) -> NamespaceIndexes {
    let array = read(session, &VariableId::Server_NamespaceArray.into()).await;
    let Variant::Array(array) = array else {
        panic!("NamespaceArray is {array:?}")
    };
    let uris: Vec<String> = array
        .values
        .iter()
        .map(|v| match v {
            Variant::String(s) => s.as_ref().to_string(),
            other => panic!("namespace {other:?}"),
        })
        .collect();
    NamespaceIndexes::resolve(|uri| uris.iter().position(|u| u == uri).map(|i| i as u16)).unwrap()
}

async fn read(session: &Session, node: &NodeId) -> Variant {
    let values = session
        .read(
            &[ReadValueId::from(node.clone())],
            TimestampsToReturn::Neither,
            0.0,
        )
        .await
        .unwrap();
    let value = &values[0];
    assert!(
        value.status.is_none_or(|s| s.is_good()),
        "read {node}: {value:?}"
    );
    value.value.clone().unwrap_or(Variant::Empty)
}

/// Resolve a browse path from Objects with TranslateBrowsePathsToNodeIds.
async fn resolve(session: &Session, path: &[QualifiedName]) -> Result<NodeId, StatusCode> {
    let elements = path
        .iter()
        .map(|name| RelativePathElement {
            reference_type_id: ReferenceTypeId::HierarchicalReferences.into(),
            is_inverse: false,
            include_subtypes: true,
            target_name: name.clone(),
        })
        .collect();
    let browse_path = BrowsePath {
        starting_node: ObjectId::ObjectsFolder.into(),
        relative_path: RelativePath {
            elements: Some(elements),
        },
    };
    let result = session
        .translate_browse_paths_to_node_ids(&[browse_path])
        .await
        .unwrap()
        .remove(0);
    if !result.status_code.is_good() {
        return Err(result.status_code);
    }
    Ok(result.targets.unwrap()[0].target_id.node_id.clone())
}

/// Browse names of the standard 40501 paths below the machine.
struct Paths(NamespaceIndexes);

impl Paths {
    fn machine(&self, rest: &[(u16, &str)]) -> Vec<QualifiedName> {
        let mut path = vec![
            QualifiedName::new(self.0.machinery, "Machines"),
            QualifiedName::new(self.0.instance, MACHINE),
        ];
        path.extend(rest.iter().map(|&(ns, name)| QualifiedName::new(ns, name)));
        path
    }

    fn plan(&self) -> Vec<QualifiedName> {
        let mt = self.0.machine_tool;
        self.machine(&[(mt, "Production"), (mt, "ProductionPlan")])
    }

    fn job(&self, job: &str, rest: &[(u16, &str)]) -> Vec<QualifiedName> {
        let mut path = self.plan();
        path.push(QualifiedName::new(self.0.instance, job));
        path.extend(rest.iter().map(|&(ns, name)| QualifiedName::new(ns, name)));
        path
    }
}

async fn call(connection: &Connection, method: &str, args: Vec<Variant>) -> CallMethodResult {
    let paths = Paths(connection.ns);
    let plan = resolve(&connection.session, &paths.plan()).await.unwrap();
    let mut method_path = paths.plan();
    method_path.push(QualifiedName::new(connection.ns.instance, method));
    let method_id = resolve(&connection.session, &method_path).await.unwrap();
    connection
        .session
        .call_one(CallMethodRequest {
            object_id: plan,
            method_id,
            input_arguments: Some(args),
        })
        .await
        .unwrap()
}

async fn store_and_start(connection: &Connection, program: &str, runs: u32) -> String {
    let result = call(
        connection,
        "StoreAndStart",
        vec![program.into(), runs.into()],
    )
    .await;
    assert!(result.status_code.is_good(), "StoreAndStart: {result:?}");
    match &result.output_arguments.unwrap()[0] {
        Variant::String(id) => id.as_ref().to_string(),
        other => panic!("JobId {other:?}"),
    }
}

fn text(value: &Variant) -> String {
    match value {
        Variant::LocalizedText(text) => text.text.as_ref().to_string(),
        Variant::String(text) => text.as_ref().to_string(),
        other => format!("{other:?}"),
    }
}

/// Values of several nodes as they change, in order, by monitored items on one subscription.
async fn watch(session: &Session, nodes: &[NodeId]) -> mpsc::UnboundedReceiver<(NodeId, Variant)> {
    let (sender, receiver) = mpsc::unbounded_channel();
    let subscription = session
        .create_subscription(
            Duration::from_millis(20),
            600,
            20,
            0,
            0,
            true,
            DataChangeCallback::new(move |value, item| {
                let node = item.item_to_monitor().node_id.clone();
                let _ = sender.send((node, value.value.unwrap_or(Variant::Empty)));
            }),
        )
        .await
        .unwrap();
    let items: Vec<MonitoredItemCreateRequest> = nodes
        .iter()
        .map(|node| {
            let mut item: MonitoredItemCreateRequest = node.clone().into();
            item.requested_parameters.sampling_interval = 0.0;
            item.requested_parameters.queue_size = 100;
            item
        })
        .collect();
    let created = session
        .create_monitored_items(subscription, TimestampsToReturn::Both, items)
        .await
        .unwrap();
    assert!(
        created.iter().all(|c| c.result.status_code.is_good()),
        "{created:?}"
    );
    receiver
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_40501_tree_resolves_by_namespace_uri_in_either_order_and_node_id_kind() {
    let mut seen_indexes = Vec::new();
    for (order, style) in [
        (NamespaceOrder::Companion, NodeIdStyle::String),
        (NamespaceOrder::Reversed, NodeIdStyle::Numeric),
    ] {
        let (sim, pki) = start_sim(|args| {
            args.namespace_order = order;
            args.node_ids = style;
        })
        .await;
        let connection = connect(&sim, &pki).await;
        let session = &connection.session;
        let ns = connection.ns;
        seen_indexes.push(ns);
        let paths = Paths(ns);
        let (di, mt, machinery) = (ns.di, ns.machine_tool, ns.machinery);

        let manufacturer = resolve(
            session,
            &paths.machine(&[(di, "Identification"), (di, "Manufacturer")]),
        )
        .await
        .unwrap();
        assert_eq!(
            text(&read(session, &manufacturer).await),
            "microfab simulated machines"
        );
        let year = paths.machine(&[(di, "Identification"), (machinery, "YearOfConstruction")]);
        assert_eq!(
            read(session, &resolve(session, &year).await.unwrap()).await,
            Variant::UInt16(2026)
        );
        for path in [
            paths.machine(&[(di, "Identification"), (di, "SerialNumber")]),
            paths.machine(&[
                (mt, "Monitoring"),
                (mt, "MachineTool"),
                (mt, "OperationMode"),
            ]),
            paths.machine(&[
                (mt, "Monitoring"),
                (mt, "MachineTool"),
                (mt, "PowerOnDuration"),
            ]),
            paths.machine(&[
                (mt, "Monitoring"),
                (ns.instance, "Channel1"),
                (mt, "ChannelState"),
            ]),
            paths.machine(&[
                (mt, "Monitoring"),
                (ns.instance, "Channel1"),
                (mt, "FeedOverride"),
            ]),
            paths.machine(&[
                (mt, "Monitoring"),
                (ns.instance, "Spindle1"),
                (mt, "IsRotating"),
            ]),
            paths.machine(&[
                (mt, "Monitoring"),
                (ns.instance, "Spindle1"),
                (mt, "Override"),
            ]),
            paths.machine(&[(mt, "Production"), (mt, "ActiveProgram"), (mt, "Name")]),
            paths.machine(&[
                (mt, "Production"),
                (mt, "ActiveProgram"),
                (mt, "State"),
                (0, "CurrentState"),
            ]),
            paths.machine(&[(mt, "Notification"), (mt, "Messages")]),
            paths.machine(&[(ns.instance, "Programs"), (ns.instance, "BRACKET-5AX")]),
        ] {
            let node = resolve(session, &path)
                .await
                .unwrap_or_else(|status| panic!("{path:?}: {status}"));
            assert_eq!(node.namespace, ns.instance, "{path:?} is an instance node");
            match (style, &node.identifier) {
                (NodeIdStyle::String, Identifier::String(_))
                | (NodeIdStyle::Numeric, Identifier::Numeric(_)) => {}
                (_, other) => panic!("{style:?} NodeIds asked, got {other:?} for {path:?}"),
            }
        }
        // Names are qualified: the right name in the wrong namespace does not resolve.
        let wrong = paths.machine(&[(mt, "Identification"), (di, "Manufacturer")]);
        assert_eq!(resolve(session, &wrong).await, Err(StatusCode::BadNoMatch));
        let missing = paths.machine(&[(ns.instance, "Programs"), (ns.instance, "NO-SUCH-PROGRAM")]);
        assert_eq!(
            resolve(session, &missing).await,
            Err(StatusCode::BadNoMatch)
        );
        sim.stop().await;
    }
    assert_ne!(seen_indexes[0].di, seen_indexes[1].di, "{seen_indexes:?}");
    assert_ne!(seen_indexes[0].instance, seen_indexes[1].instance);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_and_start_takes_only_the_declared_argument_types() {
    let (sim, pki) = start_sim(|_| {}).await;
    let connection = connect(&sim, &pki).await;
    let session = &connection.session;
    let paths = Paths(connection.ns);

    let mut inputs_path = paths.plan();
    inputs_path.push(QualifiedName::new(connection.ns.instance, "StoreAndStart"));
    inputs_path.push(QualifiedName::new(0, "InputArguments"));
    let inputs = read(session, &resolve(session, &inputs_path).await.unwrap()).await;
    let Variant::Array(inputs) = inputs else {
        panic!("{inputs:?}")
    };
    let declared: Vec<(String, NodeId)> = inputs
        .values
        .iter()
        .map(|v| match v {
            Variant::ExtensionObject(o) => {
                let argument = o.inner_as::<Argument>().unwrap();
                (
                    argument.name.as_ref().to_string(),
                    argument.data_type.clone(),
                )
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        declared,
        [
            ("ProgramName".to_string(), DataTypeId::String.into()),
            ("RunsPlanned".to_string(), DataTypeId::UInt32.into())
        ]
    );

    let refused = [
        (
            vec!["BRACKET-5AX".into(), Variant::Int32(3)],
            StatusCode::BadTypeMismatch,
        ),
        (
            vec![Variant::UInt32(3), Variant::UInt32(3)],
            StatusCode::BadTypeMismatch,
        ),
        (vec!["BRACKET-5AX".into()], StatusCode::BadArgumentsMissing),
        (vec![], StatusCode::BadArgumentsMissing),
        (
            vec!["BRACKET-5AX".into(), Variant::UInt32(3), Variant::UInt32(1)],
            StatusCode::BadTooManyArguments,
        ),
        (
            vec!["NO-SUCH".into(), Variant::UInt32(3)],
            StatusCode::BadNotFound,
        ),
    ];
    for (args, status) in refused {
        let result = call(&connection, "StoreAndStart", args.clone()).await;
        assert_eq!(result.status_code, status, "{args:?}");
    }
    assert!(sim.jobs().is_empty(), "a refused call started nothing");

    let job = store_and_start(&connection, "BRACKET-5AX", 3).await;
    assert_eq!(job, "JOB-0001");
    let busy = call(
        &connection,
        "StoreAndStart",
        vec!["BRACKET-5AX".into(), 1u32.into()],
    )
    .await;
    assert_eq!(busy.status_code, StatusCode::BadInvalidState);
    let identifier = resolve(
        session,
        &paths.job(&job, &[(connection.ns.machine_tool, "Identifier")]),
    )
    .await
    .unwrap();
    assert_eq!(text(&read(session, &identifier).await), job);
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribed_counters_reach_the_planned_runs_and_the_job_ends() {
    let (sim, pki) = start_sim(|args| {
        args.scrap_rate = 0.3;
        args.seed = 11;
    })
    .await;
    let connection = connect(&sim, &pki).await;
    let session = &connection.session;
    let (mt, own) = (connection.ns.machine_tool, connection.ns.instance);
    let paths = Paths(connection.ns);

    let job = store_and_start(&connection, "BRACKET-5AX", 12).await;
    let mut nodes = Vec::new();
    for rest in [
        [(mt, "RunsCompleted")].as_slice(),
        &[(own, "PartsCompleted")],
        &[(own, "PartsGood")],
        &[(mt, "State"), (0, "CurrentState")],
    ] {
        nodes.push(resolve(session, &paths.job(&job, rest)).await.unwrap());
    }
    let mut changes = watch(session, &nodes).await;
    let mut runs_seen = Vec::new();
    let mut last = vec![Variant::Empty; nodes.len()];
    timeout(PATIENCE, async {
        while let Some((node, value)) = changes.recv().await {
            let index = nodes.iter().position(|n| *n == node).unwrap();
            if index == 0 {
                runs_seen.push(value.clone());
            }
            last[index] = value;
            if text(&last[3]) == "Ended" && last[0] == Variant::UInt32(12) {
                break;
            }
        }
    })
    .await
    .expect("the job ends with 12 runs");

    assert!(
        runs_seen.len() > 2,
        "RunsCompleted advanced in steps: {runs_seen:?}"
    );
    assert!(runs_seen.windows(2).all(|w| match (&w[0], &w[1]) {
        (Variant::UInt32(a), Variant::UInt32(b)) => a < b,
        _ => false,
    }));
    let completed = read(session, &nodes[1]).await;
    let good = read(session, &nodes[2]).await;
    assert_eq!(completed, Variant::UInt32(12));
    let machine = &sim.jobs()[0];
    assert_eq!(good, Variant::UInt32(machine.parts_good));
    let scrap = machine.parts_completed - machine.parts_good;
    assert!(
        scrap > 0 && machine.parts_good > 0,
        "30 % scrap: {machine:?}"
    );
    assert_eq!(machine.parts_good + scrap, machine.parts_completed);
    sim.stop().await;
}

/// Event fields selected with BaseEventType as the type, as most clients do.
fn event_filter(ns: NamespaceIndexes) -> EventFilter {
    let field = |ns: u16, name: &str| SimpleAttributeOperand {
        type_definition_id: ObjectTypeId::BaseEventType.into(),
        browse_path: Some(vec![QualifiedName::new(ns, name)]),
        attribute_id: AttributeId::Value as u32,
        index_range: NumericRange::None,
    };
    EventFilter {
        select_clauses: Some(vec![
            field(0, "Severity"),
            field(0, "Message"),
            field(0, "SourceName"),
            field(ns.instance, "AlarmId"),
        ]),
        where_clause: ContentFilter { elements: None },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_fault_mid_job_arrives_as_an_event_and_interrupts_the_job() {
    let (sim, pki) =
        start_sim(|args| args.faults = vec!["alarm:1021@runs:2".parse().unwrap()]).await;
    let connection = connect(&sim, &pki).await;
    let session = &connection.session;
    let ns = connection.ns;
    let paths = Paths(ns);
    let messages = resolve(
        session,
        &paths.machine(&[
            (ns.machine_tool, "Notification"),
            (ns.machine_tool, "Messages"),
        ]),
    )
    .await
    .unwrap();

    let (sender, mut events) = mpsc::unbounded_channel();
    let subscription = session
        .create_subscription(
            Duration::from_millis(20),
            600,
            20,
            0,
            0,
            true,
            EventCallback::new(move |fields, _| {
                let _ = sender.send(fields.unwrap_or_default());
            }),
        )
        .await
        .unwrap();
    let mut item: MonitoredItemCreateRequest = messages.into();
    item.item_to_monitor.attribute_id = AttributeId::EventNotifier as u32;
    item.requested_parameters.queue_size = 10;
    item.requested_parameters.filter = ExtensionObject::from_message(event_filter(ns));
    let created = session
        .create_monitored_items(subscription, TimestampsToReturn::Neither, vec![item])
        .await
        .unwrap();
    assert!(created[0].result.status_code.is_good(), "{created:?}");

    let job = store_and_start(&connection, "BRACKET-5AX", 5).await;
    let fields = timeout(PATIENCE, events.recv()).await.unwrap().unwrap();
    assert_eq!(fields[0], Variant::UInt16(800), "severity: {fields:?}");
    assert!(text(&fields[1]).starts_with("Alarm 1021"), "{fields:?}");
    assert_eq!(text(&fields[2]), MACHINE);
    assert_eq!(text(&fields[3]), "ALM-1021");

    let state = resolve(
        session,
        &paths.job(&job, &[(ns.machine_tool, "State"), (0, "CurrentState")]),
    )
    .await
    .unwrap();
    assert_eq!(
        read(session, &state).await,
        Variant::from(LocalizedText::from("Interrupted"))
    );
    let runs = resolve(
        session,
        &paths.job(&job, &[(ns.machine_tool, "RunsCompleted")]),
    )
    .await
    .unwrap();
    let runs_at_alarm = read(session, &runs).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        read(session, &runs).await,
        runs_at_alarm,
        "an interrupted job does not advance"
    );

    assert!(
        call(&connection, "Resume", vec![])
            .await
            .status_code
            .is_good()
    );
    timeout(PATIENCE, async {
        while text(&read(session, &state).await) != "Ended" {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the resumed job ends");
    assert_eq!(read(session, &runs).await, Variant::UInt32(5));
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_sessions_with_a_password_work_and_a_wrong_password_is_refused() {
    let (sim, pki) = start_sim(|args| {
        args.users = vec![("operator".into(), "s3cret".into())];
        args.no_anonymous = true;
        args.trust_client_certs = true;
    })
    .await;
    let client_pki = pki.path().join("client");
    for policy in [
        SecurityPolicy::Basic256Sha256,
        SecurityPolicy::Aes256Sha256RsaPss,
    ] {
        let connection = connect_with(
            sim.endpoint(),
            &client_pki,
            (policy, MessageSecurityMode::SignAndEncrypt),
            IdentityToken::new_user_name("operator", "s3cret"),
            0,
        )
        .await
        .unwrap_or_else(|e| panic!("{policy:?}: {e}"));
        let paths = Paths(connection.ns);
        let model = paths.machine(&[
            (connection.ns.di, "Identification"),
            (connection.ns.di, "Model"),
        ]);
        let model = resolve(&connection.session, &model).await.unwrap();
        assert!(text(&read(&connection.session, &model).await).contains("5-axis"));
        connection.session.disconnect().await.unwrap();
    }
    assert!(
        pki.path().join("server/own/cert.der").exists(),
        "the server made its certificate"
    );

    let wrong = connect_with(
        sim.endpoint(),
        &client_pki,
        (
            SecurityPolicy::Basic256Sha256,
            MessageSecurityMode::SignAndEncrypt,
        ),
        IdentityToken::new_user_name("operator", "guess"),
        0,
    )
    .await;
    assert!(wrong.is_err(), "a wrong password is refused");
    let anonymous = connect_with(
        sim.endpoint(),
        &client_pki,
        (SecurityPolicy::None, MessageSecurityMode::None),
        IdentityToken::Anonymous,
        0,
    )
    .await;
    assert!(anonymous.is_err(), "anonymous sessions are refused");
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_client_certificate_is_refused_unless_trusted() {
    let (sim, pki) = start_sim(|_| {}).await;
    let refused = connect_with(
        sim.endpoint(),
        &pki.path().join("client"),
        (SecurityPolicy::Basic256Sha256, MessageSecurityMode::Sign),
        IdentityToken::Anonymous,
        0,
    )
    .await;
    assert!(
        refused.is_err(),
        "an untrusted client certificate is refused"
    );
    let rejected = std::fs::read_dir(pki.path().join("server/rejected"))
        .unwrap()
        .count();
    assert_eq!(
        rejected, 1,
        "the refused certificate is kept for an operator to trust"
    );
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_ends_the_session_and_a_new_one_sees_the_counters_kept() {
    let (sim, pki) = start_sim(|args| {
        args.faults = vec!["restart:600@runs:3".parse().unwrap()];
        args.time_scale = 10.0;
    })
    .await;
    let connection = connect(&sim, &pki).await;
    let job = store_and_start(&connection, "BRACKET-5AX", 10).await;
    let ended = timeout(PATIENCE, connection.event_loop).await;
    assert!(
        matches!(ended, Ok(Ok(status)) if status.is_bad()),
        "the session ended: {ended:?}"
    );

    let again = timeout(PATIENCE, async {
        loop {
            match connect_with(
                sim.endpoint(),
                &pki.path().join("client"),
                (SecurityPolicy::None, MessageSecurityMode::None),
                IdentityToken::Anonymous,
                0,
            )
            .await
            {
                Ok(connection) => break connection,
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    })
    .await
    .expect("the server listens again on the same port");
    let session = &again.session;
    let paths = Paths(again.ns);
    let runs = resolve(
        session,
        &paths.job(&job, &[(again.ns.machine_tool, "RunsCompleted")]),
    )
    .await
    .unwrap();
    let Variant::UInt32(after_restart) = read(session, &runs).await else {
        panic!()
    };
    assert!(
        after_restart >= 3,
        "counters kept over the restart: {after_restart}"
    );
    let state = resolve(
        session,
        &paths.job(
            &job,
            &[(again.ns.machine_tool, "State"), (0, "CurrentState")],
        ),
    )
    .await
    .unwrap();
    timeout(PATIENCE, async {
        while text(&read(session, &state).await) != "Ended" {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the job ends after the restart");
    assert_eq!(read(session, &runs).await, Variant::UInt32(10));
    assert_eq!(sim.jobs()[0].runs_completed, 10);
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_status_fault_fails_one_call_and_select_then_start_works() {
    let (sim, pki) = start_sim(|args| {
        args.faults = vec!["bad-status:Start@time:0".parse().unwrap()];
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let connection = connect(&sim, &pki).await;
    let select = call(
        &connection,
        "SelectProgram",
        vec![Variant::from("HOUSING-5AX")],
    )
    .await;
    assert!(select.status_code.is_good(), "{select:?}");
    let failed = call(&connection, "Start", vec![]).await;
    assert_eq!(failed.status_code, StatusCode::BadInternalError);
    assert!(sim.jobs().is_empty(), "the failed call did nothing");
    let started = call(&connection, "Start", vec![]).await;
    assert!(started.status_code.is_good(), "{started:?}");
    let mt = connection.ns.machine_tool;
    let name =
        Paths(connection.ns).machine(&[(mt, "Production"), (mt, "ActiveProgram"), (mt, "Name")]);
    let name = resolve(&connection.session, &name).await.unwrap();
    assert_eq!(text(&read(&connection.session, &name).await), "HOUSING-5AX");
    assert_eq!(sim.jobs()[0].runs_planned, 1);
    sim.stop().await;
}
