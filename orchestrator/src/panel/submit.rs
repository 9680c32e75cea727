//! Submitting a spec (`/submit`, makers and staff): upload the spec file or paste its TOML,
//! with its program files. The spec is checked by the same checker as `POST /api/v1/orders`
//! and submitted by the same operation; on errors nothing is made and the spec is shown with
//! its line numbers and each error under its line; on success the browser goes to the order.

use std::collections::BTreeMap;

use askama::Template;
use axum::Router;
use axum::extract::Multipart;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use microfab_job_specs::{
    Diagnostic, Diagnostics, InMemory, ProgramReadError, ProgramSource, SpecFormat,
};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::at_least;
use super::i18n::Catalog;
use super::layout::{Chrome, Ctx};
use super::render::{PanelError, html};
use crate::api::{MAX_LABEL_CHARS, MAX_SUBMISSION_BYTES};
use crate::auth::Role;
use crate::ops::{OpError, Operations};
use crate::plant::PlantError;

pub fn routes(ops: &Operations) -> Router<Operations> {
    let makers = Router::new().route("/submit", get(page).post(submit));
    at_least(Role::Maker, makers, ops)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_SUBMISSION_BYTES))
}

#[derive(Template)]
#[template(path = "submit.html")]
struct SubmitPage<'a> {
    t: &'a Catalog,
    chrome: Chrome,
    /// A maker's specs must name them; shown as a hint.
    maker: Option<String>,
}

async fn page(ctx: Ctx) -> Response {
    let maker = ctx.caller.actor().maker_scope().map(str::to_string);
    ctx.answer(html(&SubmitPage {
        t: ctx.t,
        chrome: ctx.chrome("submit.title", "/submit"),
        maker,
    }))
}

/// One line of the spec as shown back, with the errors found on it.
pub struct Line {
    pub number: usize,
    pub text: String,
    pub errors: Vec<Diagnostic>,
}

/// The spec with its errors in place, and the errors that sit on no line of it (a program's,
/// or the spec's as a whole).
#[derive(Template)]
#[template(path = "submit_errors.html")]
struct SubmitErrors<'a> {
    t: &'a Catalog,
    source_name: String,
    lines: Vec<Line>,
    elsewhere: Vec<Diagnostic>,
    count: usize,
}

/// What the form sent: the spec (a file wins over pasted text) and the program files.
#[derive(Default)]
struct Submission {
    source_name: Option<String>,
    uploaded_spec: Option<String>,
    pasted_spec: String,
    programs: BTreeMap<String, String>,
}

async fn read_form(mut form: Multipart) -> Result<Submission, PanelError> {
    let unreadable = |_| PanelError::Invalid {
        field: "submit.spec",
        message: "submit.unreadable",
    };
    let mut submission = Submission::default();
    while let Some(field) = form.next_field().await.map_err(unreadable)? {
        let name = field.name().unwrap_or_default().to_string();
        let file_name = field.file_name().map(str::to_string);
        let bytes = field.bytes().await.map_err(unreadable)?;
        let text = String::from_utf8(bytes.to_vec()).map_err(|_| PanelError::Invalid {
            field: "submit.spec",
            message: "submit.not_utf8",
        })?;
        match (name.as_str(), file_name) {
            ("spec_file", Some(file)) if !file.is_empty() && !text.is_empty() => {
                submission.source_name = Some(file);
                submission.uploaded_spec = Some(text);
            }
            ("spec_text", _) => submission.pasted_spec = text,
            ("programs", Some(file)) if !file.is_empty() => {
                submission.programs.insert(file, text);
            }
            _ => {}
        }
    }
    Ok(submission)
}

/// Program files as the browser sends them: by their own name, without the folder the spec
/// names them in. A program the spec names is found by its path, else by its file name if
/// exactly one uploaded file has it.
struct Uploaded(InMemory);

fn file_name(path: &str) -> &str {
    path.rsplit(['/', '\\']).next().unwrap_or(path)
}

impl ProgramSource for Uploaded {
    fn read(&self, relative_path: &str) -> Result<String, ProgramReadError> {
        match self.0.read(relative_path) {
            Err(ProgramReadError::NotFound(missing)) => {
                let mut same_name = self
                    .0
                    .0
                    .keys()
                    .filter(|uploaded| file_name(uploaded) == file_name(relative_path));
                match (same_name.next(), same_name.next()) {
                    (Some(only), None) => self.0.read(only),
                    _ => Err(ProgramReadError::NotFound(missing)),
                }
            }
            other => other,
        }
    }
}

async fn submit(ctx: Ctx, form: Multipart) -> Response {
    let submission = match read_form(form).await {
        Ok(submission) => submission,
        Err(e) => return ctx.answer(Err(e)),
    };
    let source_name = submission
        .source_name
        .clone()
        .unwrap_or_else(|| "spec.toml".into());
    if source_name.chars().count() > MAX_LABEL_CHARS {
        return ctx.answer(Err(PanelError::Invalid {
            field: "submit.spec",
            message: "errors.too_long",
        }));
    }
    let text = submission.uploaded_spec.unwrap_or(submission.pasted_spec);
    if text.trim().is_empty() {
        return ctx.answer(Err(PanelError::Invalid {
            field: "submit.spec",
            message: "submit.empty",
        }));
    }
    let programs = Uploaded(InMemory(submission.programs));
    let checked = microfab_job_specs::check_text(&source_name, &text, SpecFormat::Toml, &programs);
    let problems = match checked {
        Ok(spec) => match ctx.ops.submit(&ctx.caller.actor(), &spec, None).await {
            Ok(submitted) => return to_order(&submitted.order.id),
            // A field the operation refuses (a maker naming another maker) is shown on its
            // line like the checker's findings.
            Err(OpError::Plant(PlantError::Invalid { field, message })) => {
                Diagnostics(vec![Diagnostic {
                    line: line_of_key(&text, &field),
                    ..Diagnostic::in_file(source_name.as_str(), field, message)
                }])
            }
            Err(e) => return ctx.answer(Err(e.into())),
        },
        Err(diagnostics) => diagnostics,
    };
    let errors = shown_in_place(ctx.t, &source_name, &text, problems);
    match html(&errors) {
        Ok(body) => (StatusCode::UNPROCESSABLE_ENTITY, Html(body)).into_response(),
        Err(e) => ctx.answer(Err(e)),
    }
}

/// What a path segment keeps unencoded: an order id is letters, digits and dashes.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.');

/// htmx follows `HX-Redirect` to the new order, whose page greets it.
fn to_order(order_id: &str) -> Response {
    let target = format!(
        "/orders/{}?submitted=1",
        utf8_percent_encode(order_id, SEGMENT)
    );
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Ok(value) = HeaderValue::from_str(&target) {
        response.headers_mut().insert("hx-redirect", value);
    }
    response
}

/// The line of a top-level `key = ...` in TOML text, for a field the operation named.
fn line_of_key(text: &str, field: &str) -> Option<usize> {
    text.lines()
        .position(|line| {
            line.trim_start()
                .strip_prefix(field)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map(|index| index + 1)
}

fn shown_in_place<'a>(
    t: &'a Catalog,
    source_name: &str,
    text: &str,
    problems: Diagnostics,
) -> SubmitErrors<'a> {
    let mut lines: Vec<Line> = text
        .lines()
        .enumerate()
        .map(|(index, line)| Line {
            number: index + 1,
            text: line.to_string(),
            errors: Vec::new(),
        })
        .collect();
    let mut elsewhere = Vec::new();
    let count = problems.0.len();
    for problem in problems.0 {
        let in_spec = problem
            .file
            .as_deref()
            .is_none_or(|file| file == source_name);
        match problem.line {
            Some(line) if in_spec && (1..=lines.len()).contains(&line) => {
                lines[line - 1].errors.push(problem);
            }
            _ => elsewhere.push(problem),
        }
    }
    SubmitErrors {
        t,
        source_name: source_name.to_string(),
        lines,
        elsewhere,
        count,
    }
}

#[cfg(test)]
mod tests {
    use microfab_job_specs::{InMemory, ProgramReadError, ProgramSource};

    use super::{Uploaded, line_of_key};

    #[test]
    fn a_program_is_found_by_its_path_else_by_its_only_file_name() {
        let uploaded = Uploaded(InMemory(
            [
                ("bar.nc".to_string(), "G0 X1".to_string()),
                ("a/twin.nc".to_string(), "G0 X2".to_string()),
                ("b/twin.nc".to_string(), "G0 X3".to_string()),
            ]
            .into(),
        ));
        assert_eq!(uploaded.read("programs/bar.nc").unwrap(), "G0 X1");
        assert_eq!(uploaded.read("a/twin.nc").unwrap(), "G0 X2");
        assert!(matches!(
            uploaded.read("c/twin.nc"),
            Err(ProgramReadError::NotFound(path)) if path == "c/twin.nc"
        ));
        assert!(uploaded.read("programs/none.nc").is_err());
    }

    #[test]
    fn a_field_is_placed_on_the_line_of_its_key() {
        let text = "spec_version = 1\nproduct = \"x\"\n  maker = \"someone\"\nmakers = 1\n";
        assert_eq!(line_of_key(text, "maker"), Some(3));
        assert_eq!(line_of_key(text, "quantity"), None);
    }
}
