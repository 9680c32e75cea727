//! The machine's address space, shaped as OPC 40501 (Machine Tools) on OPC 40001 (Machinery):
//!
//! ```text
//! Objects/Machinery:Machines/<i>:<Machine>           (i = the simulator's instance namespace)
//!   DI:Identification        DI:Manufacturer, DI:Model, DI:SerialNumber, DI:SoftwareRevision,
//!                            DI:ProductInstanceUri, Machinery:YearOfConstruction
//!   MachineTool:Monitoring   MachineTool:MachineTool  MachineTool:OperationMode, PowerOnDuration
//!                            <i>:Channel1   MachineTool:ChannelState, ChannelMode, FeedOverride
//!                            <i>:Spindle1   MachineTool:IsRotating, Override
//!   MachineTool:Production   MachineTool:ActiveProgram  MachineTool:Name, JobIdentifier,
//!                                                       NumberInList, State/CurrentState
//!                            MachineTool:ProductionPlan <i>:<JobId> per job: MachineTool:
//!                              Identifier, RunsPlanned, RunsCompleted, NumberInList,
//!                              State/CurrentState; <i>:PartsCompleted, <i>:PartsGood
//!                              methods (see `methods`)
//!   MachineTool:Notification MachineTool:Messages  (event notifier: alarms and messages)
//!   <i>:Programs             a FileDirectoryType folder (CreateFile), one FileType object per
//!                            program (Open, Read, Write, Close; Size, OpenCount, ...)
//! ```
//!
//! Where a name is ours rather than the specification's it lives in the instance namespace:
//! channel and spindle instances, the jobs, the per-job part counters (40501 counts parts per
//! run in PartSets; the driver counts units from these two), the job-control methods (40501
//! defines none; 40001-3 job management would) and the program folder. State machines are
//! objects with a `CurrentState` LocalizedText. Enumerations (OperationMode, ChannelState,
//! ChannelMode) are Int32 values, as they travel on the wire. Type definitions are the core
//! ones (BaseObjectType, FolderType, FileType, ...): the companion nodesets are not loaded.

use std::collections::HashMap;

use opcua::nodes::{EventNotifier, ObjectBuilder, ReferenceDirection, VariableBuilder};
use opcua::server::SubscriptionCache;
use opcua::server::address_space::AddressSpace;
use opcua::server::node_manager::memory::SimpleNodeManager;
use opcua::types::{
    DataTypeId, DataValue, LocalizedText, NodeId, ObjectId, ObjectTypeId, QualifiedName,
    ReferenceTypeId, VariableTypeId, Variant,
};

use super::files::{FileHandles, FileMethod};
use super::methods::insert_method;
use super::model::Machine;
use super::namespaces::NamespaceIndexes;

/// Whether the instance nodes get string NodeIds (`ns=5;s=Mill.Monitoring...`) or numeric ones
/// (`ns=5;i=1007`): clients must not care, they resolve browse paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum NodeIdStyle {
    #[default]
    String,
    Numeric,
}

/// NodeIds of the instance nodes, keyed by their path. Numbers are handed out in the order
/// nodes are first built and kept, so a restarted server gives every node the same id.
#[derive(Debug, Clone)]
pub struct NodeIdAllocator {
    style: NodeIdStyle,
    namespace: u16,
    numbers: HashMap<String, u32>,
}

impl NodeIdAllocator {
    pub fn new(style: NodeIdStyle, namespace: u16) -> NodeIdAllocator {
        NodeIdAllocator {
            style,
            namespace,
            numbers: HashMap::new(),
        }
    }

    pub fn id(&mut self, path: &str) -> NodeId {
        match self.style {
            NodeIdStyle::String => NodeId::new(self.namespace, path),
            NodeIdStyle::Numeric => {
                let next = 1000 + self.numbers.len() as u32;
                NodeId::new(
                    self.namespace,
                    *self.numbers.entry(path.to_string()).or_insert(next),
                )
            }
        }
    }
}

/// Identification values (DI nameplate).
#[derive(Debug, Clone)]
pub struct Nameplate {
    pub machine_name: String,
    pub manufacturer: String,
    pub model: String,
    pub serial_number: String,
}

/// OPC 40501 MachineOperationMode: 1 = Automatic.
const OPERATION_MODE_AUTOMATIC: i32 = 1;
/// OPC 40501 ChannelMode: 0 = Automatic.
const CHANNEL_MODE_AUTOMATIC: i32 = 0;
/// The Machinery namespace's Machines folder (`Objects/Machines`) has this numeric id (40001-1;
/// clients may address it directly).
const MACHINES_FOLDER_NUMBER: u32 = 1001;

struct JobNodes {
    identifier: NodeId,
    runs_planned: NodeId,
    runs_completed: NodeId,
    parts_completed: NodeId,
    parts_good: NodeId,
    number_in_list: NodeId,
    state: NodeId,
}

/// The nodes whose values follow the machine, and where new jobs go.
pub struct MachineNodes {
    ns: NamespaceIndexes,
    path: String,
    pub machine: NodeId,
    pub production_plan: NodeId,
    pub messages: NodeId,
    operation_mode: NodeId,
    power_on_duration: NodeId,
    channel_state: NodeId,
    spindle_rotating: NodeId,
    active_program_name: NodeId,
    active_job_identifier: NodeId,
    active_number_in_list: NodeId,
    active_state: NodeId,
    jobs: Vec<JobNodes>,
    /// The FileDirectoryType folder of the program store.
    pub programs: NodeId,
    /// Per program slot.
    program_files: Vec<ProgramNodes>,
    published: HashMap<NodeId, Variant>,
}

struct ProgramNodes {
    name: String,
    file: NodeId,
    size: NodeId,
    open_count: NodeId,
}

/// Inserts nodes below one parent; every helper returns the new node's id.
struct Builder<'a> {
    space: &'a mut AddressSpace,
    ids: &'a mut NodeIdAllocator,
}

impl Builder<'_> {
    fn object(
        &mut self,
        path: &str,
        browse_name: QualifiedName,
        parent: &NodeId,
        type_definition: impl Into<NodeId>,
    ) -> NodeId {
        let id = self.ids.id(path);
        let display = browse_name.name.to_string();
        ObjectBuilder::new(&id, browse_name, display.as_str())
            .component_of(parent.clone())
            .has_type_definition(type_definition)
            .insert(self.space);
        id
    }

    fn variable(
        &mut self,
        path: &str,
        browse_name: QualifiedName,
        parent: &NodeId,
        data_type: DataTypeId,
        value: impl Into<Variant>,
    ) -> NodeId {
        self.value_node(
            Member::Component,
            path,
            browse_name,
            parent,
            data_type,
            value,
        )
    }

    fn property(
        &mut self,
        path: &str,
        browse_name: QualifiedName,
        parent: &NodeId,
        data_type: DataTypeId,
        value: impl Into<Variant>,
    ) -> NodeId {
        self.value_node(
            Member::Property,
            path,
            browse_name,
            parent,
            data_type,
            value,
        )
    }

    fn value_node(
        &mut self,
        member: Member,
        path: &str,
        browse_name: QualifiedName,
        parent: &NodeId,
        data_type: DataTypeId,
        value: impl Into<Variant>,
    ) -> NodeId {
        let id = self.ids.id(path);
        let display = browse_name.name.to_string();
        let builder = VariableBuilder::new(&id, browse_name, display.as_str());
        let builder = match member {
            Member::Component => builder
                .component_of(parent.clone())
                .has_type_definition(VariableTypeId::BaseDataVariableType),
            Member::Property => builder
                .property_of(parent.clone())
                .has_type_definition(VariableTypeId::PropertyType),
        };
        builder.data_type(data_type).value(value).insert(self.space);
        id
    }

    /// A state machine object with its `CurrentState` (core namespace, as FiniteStateMachineType).
    fn state_machine(&mut self, path: &str, browse_name: QualifiedName, parent: &NodeId) -> NodeId {
        let machine = self.object(
            path,
            browse_name,
            parent,
            ObjectTypeId::FiniteStateMachineType,
        );
        self.variable(
            &format!("{path}.CurrentState"),
            QualifiedName::new(0, "CurrentState"),
            &machine,
            DataTypeId::LocalizedText,
            LocalizedText::from(""),
        )
    }
}

impl MachineNodes {
    pub fn build(
        space: &mut AddressSpace,
        ids: &mut NodeIdAllocator,
        ns: NamespaceIndexes,
        nameplate: &Nameplate,
    ) -> MachineNodes {
        let machines_folder = NodeId::new(ns.machinery, MACHINES_FOLDER_NUMBER);
        ObjectBuilder::new(
            &machines_folder,
            QualifiedName::new(ns.machinery, "Machines"),
            "Machines",
        )
        .organized_by(ObjectId::ObjectsFolder)
        .has_type_definition(ObjectTypeId::FolderType)
        .insert(space);

        let name = &nameplate.machine_name;
        let path = name.clone();
        let mut b = Builder { space, ids };
        let machine_id = b.ids.id(&path);
        ObjectBuilder::new(
            &machine_id,
            QualifiedName::new(ns.instance, name.as_str()),
            name.as_str(),
        )
        .organized_by(machines_folder)
        .has_type_definition(ObjectTypeId::BaseObjectType)
        .event_notifier(EventNotifier::SUBSCRIBE_TO_EVENTS)
        .insert(b.space);

        // 40001-1: a machine is recognised by its MachineIdentificationType AddIn, named by the
        // type's DefaultInstanceBrowseName (DI:Identification) and referenced with HasAddIn.
        let ident = b.ids.id(&format!("{path}.Identification"));
        ObjectBuilder::new(
            &ident,
            QualifiedName::new(ns.di, "Identification"),
            "Identification",
        )
        .reference(
            machine_id.clone(),
            ReferenceTypeId::HasAddIn,
            ReferenceDirection::Inverse,
        )
        .has_type_definition(ObjectTypeId::BaseObjectType)
        .insert(b.space);
        let nameplate_values: [(u16, &str, DataTypeId, Variant); 6] = [
            (
                ns.di,
                "Manufacturer",
                DataTypeId::LocalizedText,
                LocalizedText::from(nameplate.manufacturer.as_str()).into(),
            ),
            (
                ns.di,
                "Model",
                DataTypeId::LocalizedText,
                LocalizedText::from(nameplate.model.as_str()).into(),
            ),
            (
                ns.di,
                "SerialNumber",
                DataTypeId::String,
                nameplate.serial_number.clone().into(),
            ),
            (
                ns.di,
                "SoftwareRevision",
                DataTypeId::String,
                env!("CARGO_PKG_VERSION").into(),
            ),
            (
                ns.di,
                "ProductInstanceUri",
                DataTypeId::String,
                format!("urn:microfab:sim:{}", nameplate.serial_number).into(),
            ),
            (
                ns.machinery,
                "YearOfConstruction",
                DataTypeId::UInt16,
                2026u16.into(),
            ),
        ];
        for (namespace, field, data_type, value) in nameplate_values {
            b.property(
                &format!("{path}.Identification.{field}"),
                QualifiedName::new(namespace, field),
                &ident,
                data_type,
                value,
            );
        }

        let mt = |name: &str| QualifiedName::new(ns.machine_tool, name);
        let monitoring = b.object(
            &format!("{path}.Monitoring"),
            mt("Monitoring"),
            &machine_id,
            ObjectTypeId::BaseObjectType,
        );
        let tool = b.object(
            &format!("{path}.Monitoring.MachineTool"),
            mt("MachineTool"),
            &monitoring,
            ObjectTypeId::BaseObjectType,
        );
        let operation_mode = b.variable(
            &format!("{path}.Monitoring.MachineTool.OperationMode"),
            mt("OperationMode"),
            &tool,
            DataTypeId::Int32,
            OPERATION_MODE_AUTOMATIC,
        );
        let power_on_duration = b.variable(
            &format!("{path}.Monitoring.MachineTool.PowerOnDuration"),
            mt("PowerOnDuration"),
            &tool,
            DataTypeId::UInt32,
            0u32,
        );
        let channel = b.object(
            &format!("{path}.Monitoring.Channel1"),
            QualifiedName::new(ns.instance, "Channel1"),
            &monitoring,
            ObjectTypeId::BaseObjectType,
        );
        let channel_state = b.variable(
            &format!("{path}.Monitoring.Channel1.ChannelState"),
            mt("ChannelState"),
            &channel,
            DataTypeId::Int32,
            0i32,
        );
        b.variable(
            &format!("{path}.Monitoring.Channel1.ChannelMode"),
            mt("ChannelMode"),
            &channel,
            DataTypeId::Int32,
            CHANNEL_MODE_AUTOMATIC,
        );
        b.variable(
            &format!("{path}.Monitoring.Channel1.FeedOverride"),
            mt("FeedOverride"),
            &channel,
            DataTypeId::Double,
            100.0f64,
        );
        let spindle = b.object(
            &format!("{path}.Monitoring.Spindle1"),
            QualifiedName::new(ns.instance, "Spindle1"),
            &monitoring,
            ObjectTypeId::BaseObjectType,
        );
        let spindle_rotating = b.variable(
            &format!("{path}.Monitoring.Spindle1.IsRotating"),
            mt("IsRotating"),
            &spindle,
            DataTypeId::Boolean,
            false,
        );
        b.variable(
            &format!("{path}.Monitoring.Spindle1.Override"),
            mt("Override"),
            &spindle,
            DataTypeId::Double,
            100.0f64,
        );

        let production = b.object(
            &format!("{path}.Production"),
            mt("Production"),
            &machine_id,
            ObjectTypeId::BaseObjectType,
        );
        let active = b.object(
            &format!("{path}.Production.ActiveProgram"),
            mt("ActiveProgram"),
            &production,
            ObjectTypeId::BaseObjectType,
        );
        let active_program_name = b.variable(
            &format!("{path}.Production.ActiveProgram.Name"),
            mt("Name"),
            &active,
            DataTypeId::String,
            "",
        );
        let active_job_identifier = b.variable(
            &format!("{path}.Production.ActiveProgram.JobIdentifier"),
            mt("JobIdentifier"),
            &active,
            DataTypeId::String,
            "",
        );
        let active_number_in_list = b.variable(
            &format!("{path}.Production.ActiveProgram.NumberInList"),
            mt("NumberInList"),
            &active,
            DataTypeId::UInt16,
            0u16,
        );
        let active_state = b.state_machine(
            &format!("{path}.Production.ActiveProgram.State"),
            mt("State"),
            &active,
        );
        let production_plan = b.object(
            &format!("{path}.Production.ProductionPlan"),
            mt("ProductionPlan"),
            &production,
            ObjectTypeId::BaseObjectType,
        );

        let notification = b.object(
            &format!("{path}.Notification"),
            mt("Notification"),
            &machine_id,
            ObjectTypeId::BaseObjectType,
        );
        let messages = b.ids.id(&format!("{path}.Notification.Messages"));
        ObjectBuilder::new(&messages, mt("Messages"), "Messages")
            .component_of(notification)
            .has_type_definition(ObjectTypeId::BaseObjectType)
            .event_notifier(EventNotifier::SUBSCRIBE_TO_EVENTS)
            .insert(b.space);
        b.space
            .insert_reference(&machine_id, &messages, ReferenceTypeId::HasEventSource);

        let programs = b.object(
            &format!("{path}.Programs"),
            QualifiedName::new(ns.instance, "Programs"),
            &machine_id,
            ObjectTypeId::FileDirectoryType,
        );
        MachineNodes {
            ns,
            path,
            machine: machine_id,
            production_plan,
            messages,
            operation_mode,
            power_on_duration,
            channel_state,
            spindle_rotating,
            active_program_name,
            active_job_identifier,
            active_number_in_list,
            active_state,
            jobs: Vec::new(),
            programs,
            program_files: Vec::new(),
            published: HashMap::new(),
        }
    }

    pub fn programs_child_path(&self, name: &str) -> String {
        format!("{}.Programs.{name}", self.path)
    }

    /// The path of a FileType method of the program in `slot` (see `files`: slots, not names).
    pub fn file_method_path(&self, slot: usize, method: FileMethod) -> String {
        format!("{}.Programs.file{slot}.{}", self.path, method.name())
    }

    /// The file object of the program in `slot`, once it has nodes.
    pub fn program_file(&self, slot: usize) -> Option<&NodeId> {
        self.program_files.get(slot).map(|nodes| &nodes.file)
    }

    /// The path a method of the production plan gets its NodeId from.
    pub fn plan_child_path(&self, name: &str) -> String {
        format!("{}.Production.ProductionPlan.{name}", self.path)
    }

    /// Bring the address space up to date with the machine: new jobs get their nodes, changed
    /// values are written (and so reach the monitored items watching them).
    pub fn sync(
        &mut self,
        manager: &SimpleNodeManager,
        subscriptions: &SubscriptionCache,
        ids: &mut NodeIdAllocator,
        machine: &Machine,
        files: &FileHandles,
    ) {
        let new_programs: Vec<String> = machine
            .programs()
            .skip(self.program_files.len())
            .map(str::to_string)
            .collect();
        if !new_programs.is_empty() {
            let mut space = manager.address_space().write();
            for name in new_programs {
                let nodes = self.add_program(&mut space, ids, &name);
                self.program_files.push(nodes);
            }
        }
        if machine.jobs().len() > self.jobs.len() {
            let mut space = manager.address_space().write();
            for (index, job) in machine.jobs().iter().enumerate().skip(self.jobs.len()) {
                let nodes = self.add_job(&mut space, ids, index, &job.identifier);
                self.jobs.push(nodes);
            }
        }
        let values = self.values(machine, files);
        let changed: Vec<(NodeId, Variant)> = values
            .into_iter()
            .filter(|(id, value)| self.published.get(id) != Some(value))
            .collect();
        if changed.is_empty() {
            return;
        }
        let updates = changed
            .iter()
            .map(|(id, value)| (id, None, DataValue::new_now(value.clone())));
        if let Err(status) = manager.set_values(subscriptions, updates) {
            tracing::warn!(%status, "OPC UA simulator could not publish values");
            return;
        }
        self.published.extend(changed);
    }

    fn values(&self, machine: &Machine, files: &FileHandles) -> Vec<(NodeId, Variant)> {
        let active = machine.active_job();
        let mut values = vec![
            (
                self.operation_mode.clone(),
                Variant::from(OPERATION_MODE_AUTOMATIC),
            ),
            (
                self.power_on_duration.clone(),
                machine.power_on_hours().into(),
            ),
            (
                self.channel_state.clone(),
                (machine.channel_state() as i32).into(),
            ),
            (
                self.spindle_rotating.clone(),
                machine.spindle_rotating().into(),
            ),
            (
                self.active_program_name.clone(),
                machine.active_program_name().unwrap_or("").into(),
            ),
            (
                self.active_job_identifier.clone(),
                active.map_or("", |job| job.identifier.as_str()).into(),
            ),
            (
                self.active_number_in_list.clone(),
                machine.active_number_in_list().unwrap_or(0).into(),
            ),
            (
                self.active_state.clone(),
                LocalizedText::from(active.map_or("", |job| job.state.name())).into(),
            ),
        ];
        for (index, (job, nodes)) in machine.jobs().iter().zip(&self.jobs).enumerate() {
            values.extend([
                (
                    nodes.identifier.clone(),
                    Variant::from(job.identifier.as_str()),
                ),
                (nodes.runs_planned.clone(), job.runs_planned.into()),
                (nodes.runs_completed.clone(), job.runs_completed.into()),
                (nodes.parts_completed.clone(), job.parts_completed.into()),
                (nodes.parts_good.clone(), job.parts_good.into()),
                (
                    nodes.number_in_list.clone(),
                    u16::try_from(index + 1).unwrap_or(u16::MAX).into(),
                ),
                (
                    nodes.state.clone(),
                    LocalizedText::from(job.state.name()).into(),
                ),
            ]);
        }
        for program in &self.program_files {
            let size = machine.program_text(&program.name).map_or(0, <[u8]>::len) as u64;
            values.push((program.size.clone(), size.into()));
            values.push((
                program.open_count.clone(),
                files.open_count(&program.name).into(),
            ));
        }
        values
    }

    fn add_program(
        &self,
        space: &mut AddressSpace,
        ids: &mut NodeIdAllocator,
        name: &str,
    ) -> ProgramNodes {
        let slot = self.program_files.len();
        let path = self.programs_child_path(name);
        let mut b = Builder { space, ids };
        let file = b.object(
            &path,
            QualifiedName::new(self.ns.instance, name),
            &self.programs,
            ObjectTypeId::FileType,
        );
        let property = |b: &mut Builder<'_>, field: &str, data_type, value: Variant| {
            b.property(
                &format!("{path}.{field}"),
                QualifiedName::new(0, field),
                &file,
                data_type,
                value,
            )
        };
        let size = property(&mut b, "Size", DataTypeId::UInt64, 0u64.into());
        property(&mut b, "Writable", DataTypeId::Boolean, true.into());
        property(&mut b, "UserWritable", DataTypeId::Boolean, true.into());
        let open_count = property(&mut b, "OpenCount", DataTypeId::UInt16, 0u16.into());
        for method in FileMethod::ALL {
            insert_method(
                b.space,
                b.ids,
                &self.file_method_path(slot, method),
                QualifiedName::new(0, method.name()),
                &file,
                method.inputs(),
                method.outputs(),
            );
        }
        ProgramNodes {
            name: name.to_string(),
            file,
            size,
            open_count,
        }
    }

    fn add_job(
        &self,
        space: &mut AddressSpace,
        ids: &mut NodeIdAllocator,
        index: usize,
        identifier: &str,
    ) -> JobNodes {
        let mt = |name: &str| QualifiedName::new(self.ns.machine_tool, name);
        let own = |name: &str| QualifiedName::new(self.ns.instance, name);
        let path = self.plan_child_path(identifier);
        let mut b = Builder { space, ids };
        let job = b.object(
            &path,
            own(identifier),
            &self.production_plan,
            ObjectTypeId::BaseObjectType,
        );
        let number = u16::try_from(index + 1).unwrap_or(u16::MAX);
        JobNodes {
            identifier: b.variable(
                &format!("{path}.Identifier"),
                mt("Identifier"),
                &job,
                DataTypeId::String,
                identifier,
            ),
            runs_planned: b.variable(
                &format!("{path}.RunsPlanned"),
                mt("RunsPlanned"),
                &job,
                DataTypeId::UInt32,
                0u32,
            ),
            runs_completed: b.variable(
                &format!("{path}.RunsCompleted"),
                mt("RunsCompleted"),
                &job,
                DataTypeId::UInt32,
                0u32,
            ),
            parts_completed: b.variable(
                &format!("{path}.PartsCompleted"),
                own("PartsCompleted"),
                &job,
                DataTypeId::UInt32,
                0u32,
            ),
            parts_good: b.variable(
                &format!("{path}.PartsGood"),
                own("PartsGood"),
                &job,
                DataTypeId::UInt32,
                0u32,
            ),
            number_in_list: b.variable(
                &format!("{path}.NumberInList"),
                mt("NumberInList"),
                &job,
                DataTypeId::UInt16,
                number,
            ),
            state: b.state_machine(&format!("{path}.State"), mt("State"), &job),
        }
    }
}

/// How a variable hangs off its parent: a component (`HasComponent`, a data variable) or a
/// property (`HasProperty`).
enum Member {
    Component,
    Property,
}
