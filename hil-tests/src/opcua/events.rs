//! Alarms and messages as OPC UA events. 40501's `Notification/Messages` is where a machine tool
//! reports them; the event type here is the simulator's own `MachineAlarmEventType` (a
//! BaseEventType subtype in the instance namespace) adding `AlarmId`, the machine's error
//! number, to BaseEventType's Severity, Message, SourceName and SourceNode. A client selecting
//! fields with BaseEventType as the type (as most do) finds `AlarmId` by browse name.

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
    alarm_id: UAString,
}

/// Add the event type (so event filters naming it validate) to the address space.
pub fn add_event_type(space: &mut AddressSpace, ids: &mut NodeIdAllocator, namespace: u16) {
    let type_id = MachineAlarmEvent::event_type_id_from_index(namespace);
    ObjectTypeBuilder::new(
        &type_id,
        QualifiedName::new(namespace, "MachineAlarmEventType"),
        "MachineAlarmEventType",
    )
    .is_abstract(false)
    .subtype_of(ObjectTypeId::BaseEventType)
    .insert(space);
    let field = ids.id("MachineAlarmEventType.AlarmId");
    VariableBuilder::new(&field, QualifiedName::new(namespace, "AlarmId"), "AlarmId")
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
        alarm_id: UAString::from(notification.identifier.as_str()),
    };
    let server = NodeId::from(ObjectId::Server);
    let notifiers = [&nodes.messages, &nodes.machine, &server];
    subscriptions.notify_events(
        notifiers
            .into_iter()
            .map(|notifier| (&event as &dyn Event, notifier)),
    );
}
