//! The machine's program store as OPC UA files (Part 20 / Part 5 FileType and
//! FileDirectoryType): `Programs` has `CreateFile`, every program is a FileType object with
//! `Open`, `Read`, `Write`, `Close` and the Size, Writable, UserWritable and OpenCount
//! properties. GetPosition and SetPosition are not offered: writes go at the position the
//! handle is at (the end, after `Open` with EraseExisting or Append).
//!
//! A program uploaded this way runs with the cycle time its text names in a comment
//! `(cycle-seconds: 120)`, else [`UPLOADED_CYCLE_SECONDS`].
//!
//! Method callbacks cannot be registered while a call is being answered (the node manager holds
//! its callback table then), so every program gets its methods in a numbered slot whose
//! callbacks exist from the start: `Programs.file3.Open` is the Open method of the fourth
//! program, whichever that is. [`MAX_PROGRAMS`] bounds the store.

use std::collections::HashMap;

use opcua::types::{ByteString, DataTypeId, StatusCode, Variant};

use super::model::{Machine, Refusal};

/// Programs the store holds at most (existing and uploaded).
pub const MAX_PROGRAMS: usize = 64;
pub const UPLOADED_CYCLE_SECONDS: f64 = 60.0;

/// FileType Open mode bits (Part 20).
const MODE_READ: u8 = 0x1;
const MODE_WRITE: u8 = 0x2;
const MODE_ERASE_EXISTING: u8 = 0x4;
const MODE_APPEND: u8 = 0x8;
/// The mode `CreateFile` opens a new file in when asked to.
pub const OPEN_FOR_WRITING: u8 = MODE_WRITE;

/// A FileType method, with its arguments as Part 20 declares them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileMethod {
    Open,
    Read,
    Write,
    Close,
}

type Arguments = &'static [(&'static str, DataTypeId)];

impl FileMethod {
    pub const ALL: [FileMethod; 4] = [
        FileMethod::Open,
        FileMethod::Read,
        FileMethod::Write,
        FileMethod::Close,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FileMethod::Open => "Open",
            FileMethod::Read => "Read",
            FileMethod::Write => "Write",
            FileMethod::Close => "Close",
        }
    }

    pub fn inputs(self) -> Arguments {
        match self {
            FileMethod::Open => &[("Mode", DataTypeId::Byte)],
            FileMethod::Read => &[
                ("FileHandle", DataTypeId::UInt32),
                ("Length", DataTypeId::Int32),
            ],
            FileMethod::Write => &[
                ("FileHandle", DataTypeId::UInt32),
                ("Data", DataTypeId::ByteString),
            ],
            FileMethod::Close => &[("FileHandle", DataTypeId::UInt32)],
        }
    }

    pub fn outputs(self) -> Arguments {
        match self {
            FileMethod::Open => &[("FileHandle", DataTypeId::UInt32)],
            FileMethod::Read => &[("Data", DataTypeId::ByteString)],
            FileMethod::Write | FileMethod::Close => &[],
        }
    }
}

/// `CreateFile(FileName: String, RequestFileOpen: Boolean) -> FileNodeId: NodeId, FileHandle: UInt32`.
pub const CREATE_FILE_INPUTS: Arguments = &[
    ("FileName", DataTypeId::String),
    ("RequestFileOpen", DataTypeId::Boolean),
];
pub const CREATE_FILE_OUTPUTS: Arguments = &[
    ("FileNodeId", DataTypeId::NodeId),
    ("FileHandle", DataTypeId::UInt32),
];

#[derive(Debug, Clone)]
struct OpenFile {
    program: String,
    mode: u8,
    position: usize,
}

/// Open file handles. They belong to the sessions of one server run: a restart forgets them.
#[derive(Debug, Default)]
pub struct FileHandles {
    open: HashMap<u32, OpenFile>,
    next: u32,
}

impl FileHandles {
    /// How many handles are open on `program` (the OpenCount property).
    pub fn open_count(&self, program: &str) -> u16 {
        let count = self.open.values().filter(|f| f.program == program).count();
        u16::try_from(count).unwrap_or(u16::MAX)
    }

    pub fn forget_all(&mut self) {
        self.open.clear();
    }

    pub fn open(
        &mut self,
        machine: &mut Machine,
        program: &str,
        mode: u8,
    ) -> Result<u32, StatusCode> {
        let known = mode & !(MODE_READ | MODE_WRITE | MODE_ERASE_EXISTING | MODE_APPEND) == 0;
        let writes = mode & MODE_WRITE != 0;
        if !known
            || mode & (MODE_READ | MODE_WRITE) == 0
            || (!writes && mode & (MODE_ERASE_EXISTING | MODE_APPEND) != 0)
        {
            return Err(StatusCode::BadInvalidArgument);
        }
        let held_for_writing = self
            .open
            .values()
            .any(|f| f.program == program && f.mode & MODE_WRITE != 0);
        if held_for_writing || (writes && self.open_count(program) > 0) {
            return Err(StatusCode::BadNotWritable);
        }
        if mode & MODE_ERASE_EXISTING != 0 {
            machine
                .write_program(program, 0, &[], true)
                .map_err(refusal_status)?;
        }
        let position = if mode & MODE_APPEND != 0 {
            machine.program_text(program).map_or(0, <[u8]>::len)
        } else {
            0
        };
        self.next += 1;
        self.open.insert(
            self.next,
            OpenFile {
                program: program.to_string(),
                mode,
                position,
            },
        );
        Ok(self.next)
    }

    /// Carry out a checked call of `method` on `program`'s file object.
    pub fn call(
        &mut self,
        machine: &mut Machine,
        program: &str,
        method: FileMethod,
        args: &[Variant],
    ) -> Result<Vec<Variant>, StatusCode> {
        if method == FileMethod::Open {
            let Variant::Byte(mode) = args[0] else {
                return Err(StatusCode::BadTypeMismatch);
            };
            return self
                .open(machine, program, mode)
                .map(|handle| vec![handle.into()]);
        }
        let Variant::UInt32(handle) = args[0] else {
            return Err(StatusCode::BadTypeMismatch);
        };
        let file = self
            .open
            .get_mut(&handle)
            .filter(|file| file.program == program)
            .ok_or(StatusCode::BadInvalidArgument)?;
        match (method, &args[1..]) {
            (FileMethod::Close, _) => {
                self.open.remove(&handle);
                Ok(vec![])
            }
            (FileMethod::Read, [Variant::Int32(length)]) => {
                if file.mode & MODE_READ == 0 {
                    return Err(StatusCode::BadInvalidState);
                }
                let text = machine.program_text(program).unwrap_or_default();
                let start = file.position.min(text.len());
                let end = start
                    .saturating_add(usize::try_from(*length).unwrap_or(0))
                    .min(text.len());
                file.position = end;
                Ok(vec![ByteString::from(text[start..end].to_vec()).into()])
            }
            (FileMethod::Write, [Variant::ByteString(data)]) => {
                if file.mode & MODE_WRITE == 0 {
                    return Err(StatusCode::BadInvalidState);
                }
                let bytes = data.value.as_deref().unwrap_or_default();
                machine
                    .write_program(program, file.position, bytes, false)
                    .map_err(refusal_status)?;
                file.position += bytes.len();
                Ok(vec![])
            }
            _ => Err(StatusCode::BadTypeMismatch),
        }
    }
}

pub fn refusal_status(refusal: Refusal) -> StatusCode {
    match refusal {
        Refusal::UnknownProgram(_) => StatusCode::BadNotFound,
        Refusal::ProgramExists(_) => StatusCode::BadBrowseNameDuplicated,
        Refusal::NoRuns | Refusal::BadProgramName(_) => StatusCode::BadOutOfRange,
        Refusal::StoreFull => StatusCode::BadResourceUnavailable,
        Refusal::Busy
        | Refusal::NothingSelected
        | Refusal::WrongState(..)
        | Refusal::NoActiveJob => StatusCode::BadInvalidState,
    }
}

/// The cycle time a program's text names, `(cycle-seconds: N)`.
pub fn cycle_seconds_in(text: &[u8]) -> Option<f64> {
    let text = String::from_utf8_lossy(text);
    let rest = &text[text.find("(cycle-seconds:")? + "(cycle-seconds:".len()..];
    let number = rest.split(')').next()?.trim();
    number.parse().ok().filter(|s: &f64| *s > 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::opcua::model::MachineConfig;

    fn machine() -> Machine {
        Machine::new(MachineConfig {
            programs: vec![("BRACKET".to_string(), 10.0)],
            scrap_rate: 0.0,
            seed: 1,
        })
    }

    #[test]
    fn a_program_is_written_through_a_handle_and_read_back() {
        let mut machine = machine();
        let mut files = FileHandles::default();
        machine.create_program("PART").unwrap();
        let handle = files.open(&mut machine, "PART", MODE_WRITE).unwrap();
        assert_eq!(
            files.open(&mut machine, "PART", MODE_READ),
            Err(StatusCode::BadNotWritable)
        );
        let data = |text: &str| Variant::from(ByteString::from(text.as_bytes().to_vec()));
        for chunk in ["G0 X0\n", "(cycle-seconds: 2.5)\n"] {
            files
                .call(
                    &mut machine,
                    "PART",
                    FileMethod::Write,
                    &[handle.into(), data(chunk)],
                )
                .unwrap();
        }
        assert_eq!(files.open_count("PART"), 1);
        files
            .call(&mut machine, "PART", FileMethod::Close, &[handle.into()])
            .unwrap();
        assert_eq!(files.open_count("PART"), 0);
        assert_eq!(
            machine.program_text("PART").unwrap(),
            b"G0 X0\n(cycle-seconds: 2.5)\n"
        );

        let reader = files.open(&mut machine, "PART", MODE_READ).unwrap();
        let read = files
            .call(
                &mut machine,
                "PART",
                FileMethod::Read,
                &[reader.into(), 5i32.into()],
            )
            .unwrap();
        assert_eq!(read, vec![data("G0 X0")]);
        assert_eq!(
            files.call(
                &mut machine,
                "PART",
                FileMethod::Write,
                &[reader.into(), data("x")]
            ),
            Err(StatusCode::BadInvalidState)
        );
        assert_eq!(
            files.call(&mut machine, "BRACKET", FileMethod::Close, &[reader.into()]),
            Err(StatusCode::BadInvalidArgument),
            "a handle belongs to its file"
        );
        assert_eq!(
            files.open(&mut machine, "PART", MODE_APPEND),
            Err(StatusCode::BadInvalidArgument)
        );
    }

    #[test]
    fn the_cycle_time_comes_from_the_text() {
        assert_eq!(
            cycle_seconds_in(b"G0\n(cycle-seconds: 12)\nM30"),
            Some(12.0)
        );
        assert_eq!(cycle_seconds_in(b"G0\nM30"), None);
        assert_eq!(cycle_seconds_in(b"(cycle-seconds: -1)"), None);
    }
}
