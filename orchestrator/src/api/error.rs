//! The API's JSON errors: what went wrong and where, with a status code; never database
//! internals.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use microfab_drivers::DriverError;
use microfab_job_specs::Diagnostic;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::limits::{MAX_REQUEST_BYTES, MAX_SUBMISSION_BYTES};
use crate::ops::OpError;
use crate::plant::PlantError;
use crate::runtime::CommandError;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable kind: not_found, conflict, invalid, material_short, invalid_spec, internal.
    pub code: String,
    pub message: String,
    /// Every problem found, with file/line/field where known (spec validation).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<Diagnostic>,
}

pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
}

/// The answer to a body over its limit, in words the sender can act on.
pub fn body_too_large(size: Option<usize>, limit: usize) -> String {
    let size = size.map_or_else(String::new, |s| format!(" ({s} bytes)"));
    format!(
        "the request body{size} is over the limit of {limit} bytes ({} MiB)",
        limit / (1024 * 1024)
    )
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// What went wrong, as the JSON body says it (the panel shows the same words).
    pub fn detail(&self) -> &ErrorDetail {
        &self.body.error
    }

    pub(crate) fn new(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: ErrorBody {
                error: ErrorDetail {
                    code: code.into(),
                    message: message.into(),
                    details: Vec::new(),
                },
            },
        }
    }

    pub(super) fn too_large(size: Option<usize>, limit: usize) -> ApiError {
        let mut message = body_too_large(size, limit);
        if limit == MAX_SUBMISSION_BYTES {
            message.push_str(
                "; a spec's programs may be 64 MiB each and 128 MiB together (job-specs/README.md)",
            );
        }
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message)
    }

    pub(super) fn invalid(field: &str, message: impl Into<String>) -> ApiError {
        let message = message.into();
        let mut e = ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            format!("{field}: {message}"),
        );
        e.body.error.details.push(Diagnostic {
            file: None,
            line: None,
            column: None,
            field: field.into(),
            message,
        });
        e
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

impl From<OpError> for ApiError {
    fn from(e: OpError) -> ApiError {
        match e {
            OpError::Plant(e) => e.into(),
            OpError::Machine(e) => e.into(),
            OpError::NoConsole(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string())
            }
            OpError::Forbidden(message) => {
                ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
            }
        }
    }
}

impl From<PlantError> for ApiError {
    fn from(e: PlantError) -> ApiError {
        match e {
            PlantError::NotFound(what) => ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("{what} not found"),
            ),
            PlantError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            PlantError::MaterialShort(m) => {
                ApiError::new(StatusCode::CONFLICT, "material_short", m)
            }
            PlantError::Invalid { field, message } => ApiError::invalid(&field, message),
            PlantError::Spec(errors) => {
                let mut e = ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_spec",
                    format!("the batch spec has {} error(s):\n{errors}", errors.0.len()),
                );
                e.body.error.details = errors.0;
                e
            }
            PlantError::Store(e) => {
                tracing::error!(error = %e, "store failure");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the store failed; the change was not made",
                )
            }
        }
    }
}

impl From<CommandError> for ApiError {
    fn from(e: CommandError) -> ApiError {
        match e {
            CommandError::UnknownMachine(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string())
            }
            CommandError::MachineGone(_) | CommandError::Driver(DriverError::LinkDown(_)) => {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unreachable",
                    e.to_string(),
                )
            }
            CommandError::Driver(_) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> ApiError {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::too_large(None, MAX_REQUEST_BYTES);
        }
        ApiError::new(r.status(), "invalid_body", r.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_path", r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", r.body_text())
    }
}
