//! What a [`crate::ProgramSource`] reports when it cannot read a program.

/// Why a program named in a spec could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProgramReadError {
    #[error("program path is empty")]
    EmptyPath,
    #[error(
        "program path '{0}' is absolute; write it relative to the spec's folder, e.g. programs/part.nc"
    )]
    Absolute(String),
    #[error("program path '{0}' leaves the spec's folder: '..' is not allowed")]
    ParentDirectory(String),
    #[error("program path '{0}' resolves outside the spec's folder (through a symbolic link)")]
    EscapesFolder(String),
    #[error("program file '{0}' not found next to the spec")]
    NotFound(String),
    #[error("program path '{0}' is not a regular file")]
    NotAFile(String),
    #[error("program '{path}' is {size} bytes; the limit is {limit} bytes")]
    TooLarge { path: String, size: u64, limit: u64 },
    #[error("program '{0}' is not UTF-8 text")]
    NotUtf8(String),
    #[error("cannot read program '{path}': {reason}")]
    Io { path: String, reason: String },
}
