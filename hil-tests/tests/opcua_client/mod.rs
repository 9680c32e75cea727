//! A real async-opcua client's view of the OPC UA simulator, for `opcua_sim.rs`: connecting
//! with a security policy and identity, namespace indexes from the NamespaceArray, browse-path
//! resolution, typed calls, subscriptions.

use std::sync::Arc;
use std::time::Duration;

use microfab_hil::opcua::namespaces::NamespaceIndexes;
use microfab_hil::opcua::{OpcuaSim, OpcuaSimArgs};
use opcua::client::{ClientBuilder, DataChangeCallback, IdentityToken, Session};
use opcua::crypto::SecurityPolicy;
use opcua::types::{
    AttributeId, BrowsePath, CallMethodRequest, CallMethodResult, ContentFilter, EventFilter,
    MessageSecurityMode, MonitoredItemCreateRequest, NodeId, NumericRange, ObjectId, ObjectTypeId,
    QualifiedName, ReadValueId, ReferenceTypeId, RelativePath, RelativePathElement,
    SimpleAttributeOperand, StatusCode, TimestampsToReturn, UserTokenPolicy, VariableId, Variant,
};
use tempfile::TempDir;
use tokio::sync::mpsc;
use tokio::time::timeout;

pub const MACHINE: &str = "Mill5";
/// Generous bound for anything that should happen within a second or two.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A simulator with one fast program (a run of 1 machine second at 20x: 50 ms of wall time).
pub async fn start_sim(configure: impl FnOnce(&mut OpcuaSimArgs)) -> (OpcuaSim, TempDir) {
    let pki = tempfile::tempdir().unwrap();
    let mut args = OpcuaSimArgs::new(pki.path().join("server"));
    args.programs = vec![("BRACKET-5AX".into(), 1.0), ("HOUSING-5AX".into(), 2.0)];
    args.time_scale = 20.0;
    configure(&mut args);
    let sim = OpcuaSim::start(args.config()).await.unwrap();
    (sim, pki)
}

pub struct Connection {
    pub session: Arc<Session>,
    pub ns: NamespaceIndexes,
}

pub async fn connect_with(
    endpoint: &str,
    client_pki: &std::path::Path,
    security: (SecurityPolicy, MessageSecurityMode),
    identity: IdentityToken,
    retries: i32,
) -> Result<Connection, String> {
    // Retries are how many failed reconnection attempts in a row the client accepts before it
    // ends the session; it always tries once when the connection drops.
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
    Ok(Connection { session, ns })
}

/// Anonymous, no security.
pub async fn connect(sim: &OpcuaSim, pki: &TempDir) -> Connection {
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
pub async fn namespace_indexes(session: &Session) -> NamespaceIndexes {
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

pub async fn read(session: &Session, node: &NodeId) -> Variant {
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
pub async fn resolve(session: &Session, path: &[QualifiedName]) -> Result<NodeId, StatusCode> {
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
pub struct Paths(pub NamespaceIndexes);

impl Paths {
    pub fn machine(&self, rest: &[(u16, &str)]) -> Vec<QualifiedName> {
        let mut path = vec![
            QualifiedName::new(self.0.machinery, "Machines"),
            QualifiedName::new(self.0.instance, MACHINE),
        ];
        path.extend(rest.iter().map(|&(ns, name)| QualifiedName::new(ns, name)));
        path
    }

    pub fn plan(&self) -> Vec<QualifiedName> {
        let mt = self.0.machine_tool;
        self.machine(&[(mt, "Production"), (mt, "ProductionPlan")])
    }

    pub fn job(&self, job: &str, rest: &[(u16, &str)]) -> Vec<QualifiedName> {
        let mut path = self.plan();
        path.push(QualifiedName::new(self.0.instance, job));
        path.extend(rest.iter().map(|&(ns, name)| QualifiedName::new(ns, name)));
        path
    }
}

/// Call a method of the production plan, found by browse name.
pub async fn call(connection: &Connection, method: &str, args: Vec<Variant>) -> CallMethodResult {
    let paths = Paths(connection.ns);
    let plan = resolve(&connection.session, &paths.plan()).await.unwrap();
    let mut method_path = paths.plan();
    method_path.push(QualifiedName::new(connection.ns.instance, method));
    let method_id = resolve(&connection.session, &method_path).await.unwrap();
    call_on(&connection.session, &plan, &method_id, args).await
}

pub async fn call_on(
    session: &Session,
    object: &NodeId,
    method: &NodeId,
    args: Vec<Variant>,
) -> CallMethodResult {
    session
        .call_one(CallMethodRequest {
            object_id: object.clone(),
            method_id: method.clone(),
            input_arguments: Some(args),
        })
        .await
        .unwrap()
}

pub async fn store_and_start(connection: &Connection, program: &str, runs: u32) -> String {
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

/// Poll `node` until its text is `expected`, for at most [`PATIENCE`].
pub async fn wait_for_text(session: &Session, node: &NodeId, expected: &str) {
    let reached = timeout(PATIENCE, async {
        while text(&read(session, node).await) != expected {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(reached.is_ok(), "{node} never read {expected}");
}

pub fn text(value: &Variant) -> String {
    match value {
        Variant::LocalizedText(text) => text.text.as_ref().to_string(),
        Variant::String(text) => text.as_ref().to_string(),
        other => format!("{other:?}"),
    }
}

/// Values of several nodes as they change, in order, by monitored items on one subscription.
pub async fn watch(
    session: &Session,
    nodes: &[NodeId],
) -> mpsc::UnboundedReceiver<(NodeId, Variant)> {
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

/// Event fields selected with BaseEventType as the type, as most clients do.
pub fn event_filter(ns: NamespaceIndexes) -> EventFilter {
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
            field(ns.machine_tool, "ErrorCode"),
        ]),
        where_clause: ContentFilter { elements: None },
    }
}
