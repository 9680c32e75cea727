//! Errors: what a maker sees when a spec is rejected, and what a [`crate::ProgramSource`] reports.

use std::fmt;

use serde::Serialize;

/// One problem found in a batch spec or in one of its G-code programs.
///
/// `file` is the spec's name, or the program's path as written in the spec for errors inside a
/// program. Lines and columns are 1-based; columns count characters, not bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpecError {
    pub file: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// Path of the field the error is about, e.g. `steps[2].after[0]`; empty for errors that
    /// belong to no field (a TOML syntax error, a G-code parse error).
    pub field: String,
    pub message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.file)?;
        if let Some(line) = self.line {
            write!(f, "{line}:")?;
            if let Some(column) = self.column {
                write!(f, "{column}:")?;
            }
        }
        if !self.field.is_empty() {
            write!(f, " {}:", self.field)?;
        }
        write!(f, " {}", self.message)
    }
}

/// Every error found in a spec, in source order. Displays one error per line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct SpecErrors(pub Vec<SpecError>);

impl fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, error) in self.0.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SpecErrors {}

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
