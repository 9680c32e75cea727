//! The microfab batch spec: the file a maker submits to have a product made 50-500 times in a
//! micro-factory. Types, parser (TOML or JSON), validation that reports every error with file,
//! line, column and field path, G-code preflight, and the JSON Schema.
//!
//! ```no_run
//! let checked = microfab_job_specs::check_file(std::path::Path::new("bench-bracket.toml"));
//! match checked {
//!     Ok(spec) => println!("{} x {}", spec.spec.quantity, spec.spec.product),
//!     Err(errors) => eprintln!("{errors}"),
//! }
//! ```
//!
//! Specs are untrusted input: nothing here panics on any input, every size is bounded, and
//! program files are only read inside the spec's folder.

mod diagnostic;
mod document;
mod error;
mod preflight;
mod source;
mod suggest;
mod types;
mod validate;

use std::collections::BTreeMap;
use std::path::Path;

use document::{Finding, Position};

pub use diagnostic::{Diagnostic, Diagnostics, LineIndex};
pub use error::ProgramReadError;
pub use preflight::{
    BoundingBox, DEFAULT_RAPID_MM_PER_MIN, GcodeProgram, LengthUnits, MAX_PROGRAM_BYTES,
    MAX_PROGRAMS_TOTAL_BYTES, preflight_gcode,
};
pub use source::{Directory, InMemory, ProgramSource};
pub use types::{
    BatchSpec, CAPABILITIES, CheckedSpec, Due, DueParseError, MANUAL_PREFIX, MaterialDraw,
    Priority, ProgramRef, QUANTITY_RANGE, SPEC_VERSION, Step, is_known_capability,
    is_manual_capability,
};

/// Largest spec file accepted, in bytes.
pub const MAX_SPEC_BYTES: u64 = 1024 * 1024;

/// The syntax a spec is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecFormat {
    Toml,
    Json,
}

impl SpecFormat {
    /// `.toml` or `.json`, by file name.
    pub fn from_path(path: &Path) -> Option<Self> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "toml" => Some(SpecFormat::Toml),
            "json" => Some(SpecFormat::Json),
            _ => None,
        }
    }
}

/// Reads, validates and preflights a spec file; programs are read from the spec's folder.
pub fn check_file(path: &Path) -> Result<CheckedSpec, Diagnostics> {
    let source_name = path.file_name().map_or_else(
        || path.display().to_string(),
        |name| name.to_string_lossy().into_owned(),
    );
    let file_error =
        |message: String| Diagnostics(vec![Diagnostic::in_file(source_name.clone(), "", message)]);
    let format = SpecFormat::from_path(path).ok_or_else(|| {
        file_error("unknown spec format: the file name must end in .toml or .json".to_owned())
    })?;
    let metadata =
        std::fs::metadata(path).map_err(|error| file_error(format!("cannot read: {error}")))?;
    if metadata.len() > MAX_SPEC_BYTES {
        return Err(file_error(format!(
            "spec is {} bytes; the limit is {MAX_SPEC_BYTES} bytes",
            metadata.len()
        )));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|error| file_error(format!("cannot read: {error}")))?;
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let programs = Directory::new(folder)
        .map_err(|error| file_error(format!("cannot open the spec's folder: {error}")))?;
    check_text(&source_name, &text, format, &programs)
}

/// The errors [`check_file`] gave for `spec_path`, each with its source line, for people: an
/// error names the spec by its file name and a program by its path in the spec's folder.
pub fn render_check_errors(spec_path: &Path, errors: &Diagnostics) -> String {
    let spec_name = spec_path.file_name().map(|name| name.to_string_lossy());
    let folder = spec_path.parent().unwrap_or(Path::new("."));
    errors.render(|file| {
        let path = if spec_name.as_deref() == Some(file) {
            spec_path.to_path_buf()
        } else {
            folder.join(file)
        };
        std::fs::read_to_string(path).ok()
    })
}

/// Validates a spec given as text; `source_name` names it in errors, `programs` supplies the
/// G-code files it refers to.
pub fn check_text(
    source_name: &str,
    text: &str,
    format: SpecFormat,
    programs: &dyn ProgramSource,
) -> Result<CheckedSpec, Diagnostics> {
    let index = LineIndex::new(text);
    let to_errors = |findings: Vec<Finding>| -> Vec<Diagnostic> {
        let mut errors: Vec<Diagnostic> = findings
            .into_iter()
            .map(|finding| {
                let (line, column) = match finding.position {
                    Position::Offset(offset) => index.line_column(offset),
                    Position::LineColumn(line, column) => (line, column),
                };
                Diagnostic {
                    line: Some(line),
                    column: Some(column),
                    ..Diagnostic::in_file(source_name, finding.field, finding.message)
                }
            })
            .collect();
        errors.sort_by_key(|error| (error.line, error.column));
        errors
    };
    if text.len() as u64 > MAX_SPEC_BYTES {
        return Err(Diagnostics(vec![Diagnostic::in_file(
            source_name,
            "",
            format!(
                "spec is {} bytes; the limit is {MAX_SPEC_BYTES} bytes",
                text.len()
            ),
        )]));
    }
    let root = match format {
        SpecFormat::Toml => document::parse_toml(text),
        SpecFormat::Json => document::parse_json(text),
    }
    .map_err(|findings| Diagnostics(to_errors(findings)))?;

    let mut findings = Vec::new();
    let validated = validate::validate(&root, format, &mut findings);

    // Each program is read and preflighted once, however many steps use it.
    let mut loaded: BTreeMap<String, GcodeProgram> = BTreeMap::new();
    let mut program_errors: Vec<Diagnostic> = Vec::new();
    let mut attempted: Vec<&str> = Vec::new();
    let mut total_bytes: u64 = 0;
    for (step, program) in validated.gcode_programs.iter().enumerate() {
        let Some((path, offset)) = program else {
            continue;
        };
        if attempted.contains(&path.as_str()) {
            continue;
        }
        attempted.push(path);
        let field = format!("steps[{step}].program");
        let text = match programs.read(path) {
            Ok(text) => text,
            Err(error) => {
                findings.push(Finding {
                    position: Position::Offset(*offset),
                    field,
                    message: error.to_string(),
                });
                continue;
            }
        };
        total_bytes += text.len() as u64;
        if total_bytes > MAX_PROGRAMS_TOTAL_BYTES {
            // Reading on would hold even more in memory, for a spec that is refused anyway.
            findings.push(Finding {
                position: Position::Offset(*offset),
                field,
                message: format!(
                    "the programs up to this one are {total_bytes} bytes together; the limit is {MAX_PROGRAMS_TOTAL_BYTES} bytes (128 MiB) per spec"
                ),
            });
            break;
        }
        match preflight_gcode(path, &text) {
            Ok(program) => {
                loaded.insert(path.clone(), program);
            }
            Err(errors) => program_errors.extend(errors.into_iter().map(|error| Diagnostic {
                field: field.clone(),
                ..error
            })),
        }
    }

    let mut errors = to_errors(findings);
    errors.extend(program_errors);
    match (validated.spec, validated.final_step) {
        (Some(spec), Some(final_step)) if errors.is_empty() => Ok(CheckedSpec {
            spec,
            source_name: source_name.to_owned(),
            programs: loaded,
            predecessors: validated.predecessors,
            final_step,
        }),
        _ => {
            debug_assert!(!errors.is_empty(), "a spec was rejected without an error");
            Err(Diagnostics(errors))
        }
    }
}

/// The JSON Schema (draft 2020-12) of [`BatchSpec`], as committed in `batch-spec.schema.json`.
/// It describes the shape; some rules (the plan is a DAG with one final step, program files
/// exist, ids are unique) only [`check_text`] can check.
pub fn json_schema() -> serde_json::Value {
    let generator = schemars::generate::SchemaSettings::draft2020_12().into_generator();
    let schema = generator.into_root_schema_for::<BatchSpec>();
    serde_json::to_value(schema).expect("a JSON Schema serialises to JSON")
}
