//! Alarms as OPC UA events on 40501's `Notification/Messages`. 40501 sends errors (severity
//! 667..=1000) as `AlertType`, an AlarmConditionType with the manufacturer's `ErrorCode`; the
//! simulator sends them as its own `MachineAlarmEventType`, a BaseEventType subtype in the
//! instance namespace carrying `MachineTool:ErrorCode` beside BaseEventType's Severity, Message,
//! SourceName and SourceNode. Condition states (Active, Acked, Acknowledge) are not modelled. A
//! client selecting fields with BaseEventType as the type (as most do) gets `ErrorCode` by its
//! browse name.

use opcua::crypto::random;
use opcua::nodes::{BaseEventType, Event, ObjectTypeBuilder, VariableBuilder};
use opcua::server::SubscriptionCache;
use opcua::server::address_space::AddressSpace;
use opcua::types::{
    DataTypeId, DateTime, NodeId, ObjectId, ObjectTypeId, QualifiedName, UAString, VariableTypeId,
};

use super::model::Notification;
use super::nodes::{MachineNodes, NodeIdAllocator};

#[derive(Event)]
#[opcua(
    identifier = "s=MachineAlarmEventType",
    namespace = "urn:microfab:sim:opcua"
)]
pub struct MachineAlarmEvent {
    base: BaseEventType,
    own_namespace_index: u16,
    error_code: UAString,
}

/// Add the event type (so event filters naming it validate) to the address space.
pub fn add_event_type(
    space: &mut AddressSpace,
    ids: &mut NodeIdAllocator,
    namespace: u16,
    machine_tool_namespace: u16,
) {
    let type_id = MachineAlarmEvent::event_type_id_from_index(namespace);
    ObjectTypeBuilder::new(
        &type_id,
        QualifiedName::new(namespace, "MachineAlarmEventType"),
        "MachineAlarmEventType",
    )
    .is_abstract(false)
    .subtype_of(ObjectTypeId::BaseEventType)
    .insert(space);
    let field = ids.id("MachineAlarmEventType.ErrorCode");
    let name = QualifiedName::new(machine_tool_namespace, "ErrorCode");
    VariableBuilder::new(&field, name, "ErrorCode")
        .property_of(type_id)
        .has_type_definition(VariableTypeId::PropertyType)
        .data_type(DataTypeId::String)
        .insert(space);
}

/// Send `notification` to whoever watches the Messages object, the machine or the Server object.
pub fn raise(
    subscriptions: &SubscriptionCache,
    nodes: &MachineNodes,
    source_name: &str,
    namespace: u16,
    notification: &Notification,
) {
    let event = MachineAlarmEvent {
        base: BaseEventType::new(
            MachineAlarmEvent::event_type_id_from_index(namespace),
            random::byte_string(16),
            notification.message.as_str(),
            DateTime::now(),
        )
        .set_source_node(nodes.machine.clone())
        .set_source_name(UAString::from(source_name))
        .set_severity(notification.severity),
        own_namespace_index: namespace,
        error_code: UAString::from(notification.error_code.as_str()),
    };
    let server = NodeId::from(ObjectId::Server);
    let notifiers = [&nodes.messages, &nodes.machine, &server];
    subscriptions.notify_events(
        notifiers
            .into_iter()
            .map(|notifier| (&event as &dyn Event, notifier)),
    );
}
