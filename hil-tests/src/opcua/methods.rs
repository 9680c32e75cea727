//! The job-control methods on `Production/ProductionPlan` and the program store's methods
//! (see [`super::files`]), with strictly typed arguments. Each
//! method node has its `InputArguments`/`OutputArguments` properties (name and DataType per
//! argument, as OPC UA Part 3 describes), and a call is checked against them before the machine
//! sees it: too few arguments answer `BadArgumentsMissing`, too many `BadTooManyArguments`, an
//! argument of another type (an Int32 where a UInt32 is declared, a number for a String)
//! `BadTypeMismatch`. No conversion is attempted: a client must send what the node declares.
//!
//! | method          | inputs                                   | outputs        |
//! |-----------------|------------------------------------------|----------------|
//! | `StoreAndStart` | ProgramName: String, RunsPlanned: UInt32 | JobId: String  |
//! | `SelectProgram` | ProgramName: String                      |                |
//! | `Start`         |                                          | JobId: String  |
//! | `Pause`, `Resume`, `Abort` |                               |                |

use std::sync::Arc;

use opcua::nodes::MethodBuilder;
use opcua::server::address_space::AddressSpace;
use opcua::server::node_manager::memory::SimpleNodeManager;
use opcua::types::{Argument, DataTypeId, NodeId, QualifiedName, StatusCode, Variant};

use super::files::{CREATE_FILE_INPUTS, CREATE_FILE_OUTPUTS, FileMethod, MAX_PROGRAMS};
use super::nodes::{MachineNodes, NodeIdAllocator};

/// A call that passed the argument check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobCommand {
    StoreAndStart { program: String, runs_planned: u32 },
    SelectProgram { program: String },
    Start,
    Pause,
    Resume,
    Abort,
}

struct Signature {
    name: &'static str,
    inputs: &'static [(&'static str, DataTypeId)],
    outputs: &'static [(&'static str, DataTypeId)],
}

const METHODS: [Signature; 6] = [
    Signature {
        name: "StoreAndStart",
        inputs: &[
            ("ProgramName", DataTypeId::String),
            ("RunsPlanned", DataTypeId::UInt32),
        ],
        outputs: &[("JobId", DataTypeId::String)],
    },
    Signature {
        name: "SelectProgram",
        inputs: &[("ProgramName", DataTypeId::String)],
        outputs: &[],
    },
    Signature {
        name: "Start",
        inputs: &[],
        outputs: &[("JobId", DataTypeId::String)],
    },
    Signature {
        name: "Pause",
        inputs: &[],
        outputs: &[],
    },
    Signature {
        name: "Resume",
        inputs: &[],
        outputs: &[],
    },
    Signature {
        name: "Abort",
        inputs: &[],
        outputs: &[],
    },
];

/// What carries out a checked call: the method's name (for faults) and the command.
pub type CommandHandler =
    Arc<dyn Fn(&'static str, JobCommand) -> Result<Vec<Variant>, StatusCode> + Send + Sync>;

/// A checked call on the program store.
#[derive(Debug, Clone, PartialEq)]
pub enum FileCall {
    Create {
        name: String,
        open: bool,
    },
    /// A FileType method of the program in `slot`.
    File {
        slot: usize,
        method: FileMethod,
        args: Vec<Variant>,
    },
}

pub type FileHandler = Arc<dyn Fn(FileCall) -> Result<Vec<Variant>, StatusCode> + Send + Sync>;

/// Insert a method node below `parent` with its InputArguments and OutputArguments properties.
pub fn insert_method(
    space: &mut AddressSpace,
    ids: &mut NodeIdAllocator,
    path: &str,
    browse_name: QualifiedName,
    parent: &NodeId,
    inputs: &[(&str, DataTypeId)],
    outputs: &[(&str, DataTypeId)],
) -> NodeId {
    let method_id = ids.id(path);
    let display = browse_name.name.to_string();
    let mut builder = MethodBuilder::new(&method_id, browse_name, display.as_str())
        .component_of(parent.clone())
        .executable(true)
        .user_executable(true);
    if !inputs.is_empty() {
        let id = ids.id(&format!("{path}.InputArguments"));
        builder = builder.input_args(space, &id, &arguments(inputs));
    }
    if !outputs.is_empty() {
        let id = ids.id(&format!("{path}.OutputArguments"));
        builder = builder.output_args(space, &id, &arguments(outputs));
    }
    builder.insert(space);
    method_id
}

/// Add the method nodes below the production plan and route their calls to `handler`.
pub fn add_job_control(
    space: &mut AddressSpace,
    manager: &SimpleNodeManager,
    ids: &mut NodeIdAllocator,
    nodes: &MachineNodes,
    instance_namespace: u16,
    handler: CommandHandler,
) {
    for signature in &METHODS {
        let method_id = insert_method(
            space,
            ids,
            &nodes.plan_child_path(signature.name),
            QualifiedName::new(instance_namespace, signature.name),
            &nodes.production_plan,
            signature.inputs,
            signature.outputs,
        );
        let name = signature.name;
        let inputs = signature.inputs;
        let handler = handler.clone();
        manager.inner().add_method_callback(method_id, move |args| {
            check_arguments(args, inputs)?;
            handler(name, command(name, args))
        });
    }
}

/// Add `Programs/CreateFile`, and the callbacks of every program slot's FileType methods (their
/// nodes come with the program, see [`MachineNodes::sync`]).
pub fn add_program_store(
    space: &mut AddressSpace,
    manager: &SimpleNodeManager,
    ids: &mut NodeIdAllocator,
    nodes: &MachineNodes,
    handler: FileHandler,
) {
    let create = insert_method(
        space,
        ids,
        &nodes.programs_child_path("CreateFile"),
        QualifiedName::new(0, "CreateFile"),
        &nodes.programs,
        CREATE_FILE_INPUTS,
        CREATE_FILE_OUTPUTS,
    );
    let create_handler = handler.clone();
    manager.inner().add_method_callback(create, move |args| {
        check_arguments(args, CREATE_FILE_INPUTS)?;
        let name = match &args[0] {
            Variant::String(name) => name.as_ref().to_string(),
            _ => String::new(),
        };
        create_handler(FileCall::Create {
            name,
            open: matches!(args[1], Variant::Boolean(true)),
        })
    });
    for slot in 0..MAX_PROGRAMS {
        for method in FileMethod::ALL {
            let id = ids.id(&nodes.file_method_path(slot, method));
            let handler = handler.clone();
            manager.inner().add_method_callback(id, move |args| {
                check_arguments(args, method.inputs())?;
                handler(FileCall::File {
                    slot,
                    method,
                    args: args.to_vec(),
                })
            });
        }
    }
}

fn arguments(list: &[(&str, DataTypeId)]) -> Vec<Argument> {
    list.iter()
        .map(|&(name, data_type)| (name, data_type).into())
        .collect()
}

fn check_arguments(args: &[Variant], declared: &[(&str, DataTypeId)]) -> Result<(), StatusCode> {
    if args.len() < declared.len() {
        return Err(StatusCode::BadArgumentsMissing);
    }
    if args.len() > declared.len() {
        return Err(StatusCode::BadTooManyArguments);
    }
    let mismatch = args
        .iter()
        .zip(declared)
        .any(|(arg, &(_, data_type))| !has_type(arg, data_type));
    if mismatch {
        return Err(StatusCode::BadTypeMismatch);
    }
    Ok(())
}

fn has_type(value: &Variant, data_type: DataTypeId) -> bool {
    matches!(
        (value, data_type),
        (Variant::String(_), DataTypeId::String)
            | (Variant::UInt32(_), DataTypeId::UInt32)
            | (Variant::Int32(_), DataTypeId::Int32)
            | (Variant::Byte(_), DataTypeId::Byte)
            | (Variant::Boolean(_), DataTypeId::Boolean)
            | (Variant::ByteString(_), DataTypeId::ByteString)
    )
}

/// The command for arguments that passed [`check_arguments`].
fn command(name: &str, args: &[Variant]) -> JobCommand {
    let text = |index: usize| match &args[index] {
        Variant::String(s) => s.as_ref().to_string(),
        _ => String::new(),
    };
    match name {
        "StoreAndStart" => JobCommand::StoreAndStart {
            program: text(0),
            runs_planned: match args[1] {
                Variant::UInt32(n) => n,
                _ => 0,
            },
        },
        "SelectProgram" => JobCommand::SelectProgram { program: text(0) },
        "Start" => JobCommand::Start,
        "Pause" => JobCommand::Pause,
        "Resume" => JobCommand::Resume,
        _ => JobCommand::Abort,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_checked_strictly() {
        let declared = METHODS[0].inputs;
        let cases: [(Vec<Variant>, Result<(), StatusCode>); 5] = [
            (vec!["P".into(), 3u32.into()], Ok(())),
            (vec!["P".into()], Err(StatusCode::BadArgumentsMissing)),
            (
                vec!["P".into(), 3u32.into(), 1u32.into()],
                Err(StatusCode::BadTooManyArguments),
            ),
            (
                vec!["P".into(), 3i32.into()],
                Err(StatusCode::BadTypeMismatch),
            ),
            (
                vec![7u32.into(), 3u32.into()],
                Err(StatusCode::BadTypeMismatch),
            ),
        ];
        for (args, expected) in cases {
            assert_eq!(check_arguments(&args, declared), expected, "{args:?}");
        }
        assert_eq!(
            command("StoreAndStart", &["P".into(), 3u32.into()]),
            JobCommand::StoreAndStart {
                program: "P".into(),
                runs_planned: 3
            }
        );
    }
}
