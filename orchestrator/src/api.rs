//! The HTTP API: REST under `/api/v1`, an SSE event stream, `/healthz`, and the OpenAPI document
//! at `/api/v1/openapi.json`. Errors are JSON that say what and where; the error type never
//! leaks database internals; a rejected request changes nothing.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use futures::Stream;
use microfab_drivers::{DriverCommand, DriverError};
use microfab_job_specs::{InMemory, SpecFormat};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::{OpenApi, ToSchema};

use crate::amount::Amount;
use crate::machine_status::MachineStatus;
use crate::plant::views::{JobView, MachineView, MaterialView, OrderView, ResumeView, UnitView};
use crate::plant::{JobState, OrderState, PlantError};
use crate::runtime::{CommandError, Runtime};
use crate::store::events::{self, EventRecord};
use crate::store::{format_ms, now_ms};

pub type AppState = Arc<Runtime>;

/// Largest body of `POST /api/v1/orders`: a spec and its programs at their limits, each byte
/// escaped in two as JSON at worst (newline, tab, quote, backslash; a spec or program with
/// other control characters is refused anyway). So every spec `spec check` accepts fits.
pub const MAX_SUBMISSION_BYTES: usize = 2
    * (microfab_job_specs::MAX_SPEC_BYTES + microfab_job_specs::MAX_PROGRAMS_TOTAL_BYTES) as usize;

/// Submissions read and checked at once: each holds up to [`MAX_SUBMISSION_BYTES`] in memory
/// (twice, while it is parsed), so this bounds what uploads can take.
const SUBMISSIONS_AT_ONCE: usize = 2;

/// How much of an oversized submission is read (and dropped) so that its sender gets the 413.
const DRAINED_BYTES: usize = 2 * MAX_SUBMISSION_BYTES;

/// Largest body of every other request: an operator's action with its reason.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// Longest reason (reject, cancel, scrap, adjust, resolve, resume, maintenance), in characters:
/// room for what an operator found, short enough to show in every list that carries it.
pub const MAX_REASON_CHARS: usize = 1000;

/// Largest amount of material one restock or adjustment moves, in the account's unit.
pub const MAX_AMOUNT_UNITS: i64 = 1_000_000_000;

fn within_amount(field: &str, amount: Amount) -> Result<(), ApiError> {
    if amount.0 > MAX_AMOUNT_UNITS * crate::amount::MILLI {
        return Err(ApiError::invalid(
            field,
            format!(
                "{} is over the limit of {MAX_AMOUNT_UNITS}",
                amount.as_decimal()
            ),
        ));
    }
    Ok(())
}

/// Longest short label (lot code, actor, submission key, spec file name), in characters.
pub const MAX_LABEL_CHARS: usize = 200;

/// The answer to a body over its limit, in words the sender can act on.
pub fn body_too_large(size: Option<usize>, limit: usize) -> String {
    let size = size.map_or_else(String::new, |s| format!(" ({s} bytes)"));
    format!(
        "the request body{size} is over the limit of {limit} bytes ({} MiB)",
        limit / (1024 * 1024)
    )
}

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
    pub details: Vec<ErrorItem>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorItem {
    pub file: Option<String>,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub field: String,
    pub message: String,
}

pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
}

impl ApiError {
    fn new(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
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

    fn too_large(size: Option<usize>, limit: usize) -> ApiError {
        let mut message = body_too_large(size, limit);
        if limit == MAX_SUBMISSION_BYTES {
            message.push_str(
                "; a spec's programs may be 64 MiB each and 128 MiB together (job-specs/README.md)",
            );
        }
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message)
    }

    fn invalid(field: &str, message: impl Into<String>) -> ApiError {
        let message = message.into();
        let mut e = ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            format!("{field}: {message}"),
        );
        e.body.error.details.push(ErrorItem {
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
                e.body.error.details = errors
                    .0
                    .into_iter()
                    .map(|s| ErrorItem {
                        file: Some(s.file),
                        line: s.line,
                        column: s.column,
                        field: s.field,
                        message: s.message,
                    })
                    .collect();
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

/// `Json` whose rejections are our JSON errors, and whose free text is within its limits.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Limited> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let Json(value) = Json::<T>::from_request(request, state).await?;
        value.check_limits()?;
        Ok(Body(value))
    }
}

/// A request whose free-text fields have length limits.
pub trait Limited {
    fn check_limits(&self) -> Result<(), ApiError>;
}

/// `value` has at most `max_chars` characters (what JSON Schema's `maxLength` counts).
fn within(field: &str, value: &str, max_chars: usize) -> Result<(), ApiError> {
    let chars = value.chars().count();
    if chars > max_chars {
        return Err(ApiError::invalid(
            field,
            format!("{chars} characters; the limit is {max_chars}"),
        ));
    }
    Ok(())
}

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct At<T>(pub T);

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Params<T>(pub T);

/// Who does this, for the event log: the `X-Actor` header, `operator` when absent.
/// (For the OpenAPI document; [`actor`] reads the header.)
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
pub struct ActorHeader {
    /// Who does this, for the event log; `operator` when absent. Over its limit: 422.
    #[param(rename = "X-Actor", max_length = 200)]
    pub x_actor: Option<String>,
}

pub(crate) fn actor(headers: &HeaderMap) -> Result<String, ApiError> {
    let actor = headers
        .get("x-actor")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.trim().is_empty())
        .unwrap_or("operator");
    within("X-Actor", actor, MAX_LABEL_CHARS)?;
    Ok(actor.to_string())
}

pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/orders", get(list_orders).post(submit_order))
        .route("/api/v1/orders/{id}", get(get_order))
        .route("/api/v1/orders/{id}/approve", post(approve_order))
        .route("/api/v1/orders/{id}/reject", post(reject_order))
        .route("/api/v1/orders/{id}/cancel", post(cancel_order))
        .route("/api/v1/orders/{id}/units", get(order_units))
        .route("/api/v1/machines", get(list_machines))
        .route("/api/v1/machines/{id}", get(get_machine))
        .route("/api/v1/machines/{id}/pause", post(pause_machine))
        .route("/api/v1/machines/{id}/resume", post(resume_machine))
        .route("/api/v1/machines/{id}/abort", post(abort_machine))
        .route(
            "/api/v1/machines/{id}/maintenance",
            post(machine_maintenance),
        )
        .route("/api/v1/machines/{id}/operator", post(machine_operator))
        .route("/api/v1/machines/{id}/console", get(machine_console))
        .route("/api/v1/materials", get(list_materials))
        .route("/api/v1/materials/{id}/restock", post(restock_material))
        .route("/api/v1/materials/{id}/adjust", post(adjust_material))
        .route("/api/v1/jobs", get(list_jobs))
        .route("/api/v1/jobs/{id}/resolve", post(resolve_job))
        .route("/api/v1/jobs/{id}/resume", post(resume_job))
        .route("/api/v1/jobs/{id}/confirm", post(confirm_job))
        .route("/api/v1/units/{id}/scrap", post(scrap_unit))
        .route("/api/v1/plan", get(current_plan))
        .route("/api/v1/events", get(event_stream))
        .route("/api/v1/events/log", get(event_log))
        .route("/api/v1/verify", get(verify))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
        })
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .layer(Extension(Arc::new(Semaphore::new(SUBMISSIONS_AT_ONCE))))
        .with_state(state)
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "microfab",
        description = "Production orchestrator for city micro-factories"
    ),
    paths(
        healthz,
        list_orders,
        submit_order,
        get_order,
        approve_order,
        reject_order,
        cancel_order,
        order_units,
        list_machines,
        get_machine,
        pause_machine,
        resume_machine,
        abort_machine,
        machine_maintenance,
        machine_operator,
        machine_console,
        list_materials,
        restock_material,
        adjust_material,
        list_jobs,
        resolve_job,
        resume_job,
        confirm_job,
        scrap_unit,
        current_plan,
        event_stream,
        event_log,
        verify
    ),
    modifiers(&FrameworkResponses),
    components(schemas(
        ErrorBody,
        OrderState,
        JobState,
        OrderView,
        JobView,
        ResumeView,
        MachineView,
        LiveMachineView,
        MachineStatus,
        MaterialView,
        UnitView,
        EventRecord,
        SubmitRequest,
        Submitted,
        Reason,
        MaintenanceRequest,
        RestockRequest,
        AdjustRequest,
        ResolveRequest,
        ResumeRequest,
        VerifyReport,
        OperatorRequest,
        Console,
        ConsoleLine,
        PlanView,
        GanttRow,
        OrderEta
    ))
)]
pub struct ApiDoc;

/// The answers every route of a shape can give, added to each operation so no route can forget
/// one: a body that is not JSON, too large, of another media type or of the wrong shape; a path
/// or query that does not parse; the store failing. Route-specific answers (404, 409, a 422 of
/// the plant's rules) are in each handler's annotation.
struct FrameworkResponses;

impl utoipa::Modify for FrameworkResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::ParameterIn;
        use utoipa::openapi::{Content, Ref, ResponseBuilder};

        let error = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    Content::new(Some(Ref::from_schema_name("ErrorBody"))),
                )
                .build()
        };
        for item in openapi.paths.paths.values_mut() {
            for operation in [item.get.as_mut(), item.post.as_mut()]
                .into_iter()
                .flatten()
            {
                let mut add = |status: &str, description: &str| {
                    operation
                        .responses
                        .responses
                        .entry(status.to_string())
                        .or_insert_with(|| error(description).into());
                };
                let parameters = operation.parameters.clone().unwrap_or_default();
                if parameters
                    .iter()
                    .any(|p| matches!(p.parameter_in, ParameterIn::Path | ParameterIn::Query))
                {
                    add("400", "a path or query parameter does not parse");
                }
                if parameters
                    .iter()
                    .any(|p| matches!(p.parameter_in, ParameterIn::Path))
                {
                    add("404", "nothing has that id");
                }
                if operation.request_body.is_some() {
                    add("400", "the body is not valid JSON");
                    add("413", "the body is over its limit (the message names it)");
                    add("415", "the body is not of a media type this route takes");
                    add(
                        "422",
                        "a field is missing, of the wrong type, unknown, or out of range",
                    );
                }
                add("500", "the store failed; the change was not made");
            }
        }
    }
}

#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "The process is up and the store answers")))]
async fn healthz(State(rt): State<AppState>) -> Result<&'static str, ApiError> {
    sqlx::query("SELECT 1")
        .execute(&rt.plant.store.pool)
        .await
        .map_err(PlantError::from)?;
    Ok("ok")
}

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderFilter {
    pub state: Option<OrderState>,
    pub maker: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/orders",
    params(("state" = Option<OrderState>, Query, description = "only orders in this state"),
        ("maker" = Option<String>, Query, description = "only this maker's orders")),
    responses((status = 200, body = Vec<OrderView>),
        (status = 400, body = ErrorBody, description = "an unknown filter or state; the message names the valid ones")))]
async fn list_orders(
    State(rt): State<AppState>,
    Params(filter): Params<OrderFilter>,
) -> Result<Json<Vec<OrderView>>, ApiError> {
    Ok(Json(
        rt.plant
            .orders(
                filter.state.map(OrderState::as_str),
                filter.maker.as_deref(),
            )
            .await?,
    ))
}

/// A batch spec with its G-code programs. Give the spec either as TOML text (`spec_toml`) or as
/// JSON (`spec`); `programs` maps each program path the spec names to the file's text.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitRequest {
    pub spec_toml: Option<String>,
    pub spec: Option<serde_json::Value>,
    pub source_name: Option<String>,
    #[serde(default)]
    pub programs: BTreeMap<String, String>,
    pub submission_key: Option<String>,
}

impl ToSchema for SubmitRequest {}

/// Exactly one of `spec_toml` and `spec`; what makes a spec valid (its steps form a DAG, its
/// programs parse, ...) is beyond JSON Schema: `invalid_spec` (422) lists every problem.
impl utoipa::PartialSchema for SubmitRequest {
    fn schema() -> RefOr<Schema> {
        let label = |description: &str| {
            ObjectBuilder::new()
                .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
                    Type::String,
                    Type::Null,
                ]))
                .max_length(Some(MAX_LABEL_CHARS))
                .description(Some(description))
        };
        let branch = |spec_field: &str, spec: ObjectBuilder| {
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .property(spec_field, spec)
                .required(spec_field)
                .property(
                    "source_name",
                    label("the spec's file name, used in error messages"),
                )
                .property(
                    "programs",
                    ObjectBuilder::new()
                        .schema_type(Type::Object)
                        .additional_properties(Some(ObjectBuilder::new().schema_type(Type::String)))
                        .description(Some(
                            "each program's text by the path the spec names it; 64 MiB each, 128 MiB together",
                        )),
                )
                .property(
                    "submission_key",
                    label("submitting twice with the same key returns the first order"),
                )
                .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)))
        };
        OneOfBuilder::new()
            .description(Some(
                "A batch spec, as TOML text (`spec_toml`) or as JSON (`spec`), with its G-code programs.",
            ))
            .item(branch(
                "spec_toml",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some("the spec as TOML text (job-specs/README.md)")),
            ))
            .item(branch(
                "spec",
                ObjectBuilder::new()
                    .schema_type(Type::Object)
                    .description(Some("the spec as JSON")),
            ))
            .examples([serde_json::json!({
                "spec_toml": EXAMPLE_SPEC,
                "source_name": "coaster.toml",
                "programs": { "programs/coaster.nc": EXAMPLE_PROGRAM }
            })])
            .into()
    }
}

const EXAMPLE_SPEC: &str = "spec_version = 1\nproduct = \"Plywood coaster\"\nmaker = \"example-maker\"\nquantity = 60\npriority = \"standard\"\ndue = \"2030-06-30\"\n\n[[steps]]\nid = \"cut\"\ncapability = \"laser\"\nprogram = \"programs/coaster.nc\"\nunits_per_run = 6\nrun_seconds = 120\nmaterials = [{ material = \"plywood-birch-6mm\", per_run = 1 }]\n";

const EXAMPLE_PROGRAM: &str =
    "G21\nG90\nG0 X0 Y0\nM4 S800\nG1 X90 F1200\nG1 Y90\nG1 X0\nG1 Y0\nM5\n";

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Submitted {
    pub order: OrderView,
    /// An order with the same `submission_key` existed: this is it, nothing new was made.
    #[serde(default)]
    pub already_submitted: bool,
}

#[utoipa::path(post, path = "/api/v1/orders", params(ActorHeader),
    request_body(description = "JSON with the spec and its programs; or the spec itself as `application/toml` (a spec without programs)",
        content((SubmitRequest = "application/json"), (String = "application/toml"))),
    responses(
        (status = 201, body = Submitted, description = "a new order"),
        (status = 200, body = Submitted, description = "an order with this submission_key exists already: that order, unchanged"),
        (status = 400, body = ErrorBody, description = "the body is not JSON, or the TOML is not UTF-8"),
        (status = 413, body = ErrorBody, description = "the body is over the limit: the spec and its programs at their limits, escaped as JSON"),
        (status = 415, body = ErrorBody, description = "neither application/json nor application/toml"),
        (status = 422, body = ErrorBody, description = "every problem in the spec, with file, line and field"),
    ))]
async fn submit_order(
    State(rt): State<AppState>,
    Extension(submissions): Extension<Arc<Semaphore>>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<(StatusCode, Json<Submitted>), ApiError> {
    let _reading = submissions
        .acquire()
        .await
        .expect("the submissions semaphore is never closed");
    let body = read_submission(&headers, body).await?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let request = if content_type.starts_with("application/json") {
        serde_json::from_slice::<SubmitRequest>(&body).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                format!("request body, line {} column {}: {e}", e.line(), e.column()),
            )
        })?
    } else if content_type.starts_with("application/toml") || content_type.starts_with("text/") {
        let text = String::from_utf8(body).map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                "the spec is not UTF-8 text",
            )
        })?;
        SubmitRequest {
            spec_toml: Some(text),
            spec: None,
            source_name: None,
            programs: BTreeMap::new(),
            submission_key: None,
        }
    } else {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the spec as application/toml, or as application/json with its programs",
        ));
    };
    for (field, value) in [
        ("source_name", &request.source_name),
        ("submission_key", &request.submission_key),
    ] {
        if let Some(value) = value {
            within(field, value, MAX_LABEL_CHARS)?;
        }
    }
    let programs = InMemory(request.programs);
    let checked = match (request.spec_toml, request.spec) {
        (Some(text), None) => {
            let name = request.source_name.unwrap_or_else(|| "spec.toml".into());
            microfab_job_specs::check_text(&name, &text, SpecFormat::Toml, &programs)
        }
        (None, Some(json)) => {
            let name = request.source_name.unwrap_or_else(|| "spec.json".into());
            let text = serde_json::to_string_pretty(&json).unwrap_or_default();
            microfab_job_specs::check_text(&name, &text, SpecFormat::Json, &programs)
        }
        _ => {
            return Err(ApiError::invalid(
                "spec_toml",
                "give exactly one of spec_toml and spec",
            ));
        }
    }
    .map_err(PlantError::from)?;
    let submission = rt
        .plant
        .submit(
            &checked,
            request.submission_key.as_deref(),
            &actor(&headers)?,
            now_ms(),
        )
        .await?;
    let status = if submission.already_submitted {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        Json(Submitted {
            order: rt.plant.order(&submission.order_id).await?,
            already_submitted: submission.already_submitted,
        }),
    ))
}

/// The submission's body, up to [`MAX_SUBMISSION_BYTES`]. Past that, the rest is read and
/// dropped (up to [`DRAINED_BYTES`]) before the 413: a client still sending when the
/// connection closes sees a broken pipe, not the answer.
async fn read_submission(headers: &HeaderMap, body: axum::body::Body) -> Result<Vec<u8>, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let too_large = ApiError::too_large(declared, MAX_SUBMISSION_BYTES);
    if declared.is_some_and(|size| size > DRAINED_BYTES) {
        return Err(too_large);
    }
    let mut bytes = Vec::new();
    let mut received = 0;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                format!("reading the request body: {e}"),
            )
        })?;
        received += chunk.len();
        if received > DRAINED_BYTES {
            return Err(too_large);
        }
        if received > MAX_SUBMISSION_BYTES {
            bytes = Vec::new();
        } else {
            bytes.extend_from_slice(&chunk);
        }
    }
    if received > MAX_SUBMISSION_BYTES {
        return Err(too_large);
    }
    Ok(bytes)
}

#[utoipa::path(get, path = "/api/v1/orders/{id}", params(("id" = String, Path)), responses((status = 200, body = OrderView), (status = 404, body = ErrorBody)))]
async fn get_order(
    State(rt): State<AppState>,
    At(id): At<String>,
) -> Result<Json<OrderView>, ApiError> {
    Ok(Json(rt.plant.order(&id).await?))
}

#[utoipa::path(post, path = "/api/v1/orders/{id}/approve", params(("id" = String, Path), ActorHeader),
    responses((status = 200, body = OrderView), (status = 409, body = ErrorBody, description = "not submitted, or material short"), (status = 422, body = ErrorBody, description = "X-Actor is over its limit")))]
async fn approve_order(
    State(rt): State<AppState>,
    headers: HeaderMap,
    At(id): At<String>,
) -> Result<Json<OrderView>, ApiError> {
    rt.plant.approve(&id, &actor(&headers)?, now_ms()).await?;
    rt.wake();
    Ok(Json(rt.plant.order(&id).await?))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reason {
    /// Why, for the event log and whoever reads it later.
    #[schema(min_length = 1, max_length = 1000, pattern = r"\S")]
    pub reason: String,
}

impl Limited for Reason {
    fn check_limits(&self) -> Result<(), ApiError> {
        within("reason", &self.reason, MAX_REASON_CHARS)
    }
}

#[utoipa::path(post, path = "/api/v1/orders/{id}/reject", params(("id" = String, Path), ActorHeader), request_body = Reason,
    responses((status = 200, body = OrderView), (status = 409, body = ErrorBody)))]
async fn reject_order(
    State(rt): State<AppState>,
    headers: HeaderMap,
    At(id): At<String>,
    Body(body): Body<Reason>,
) -> Result<Json<OrderView>, ApiError> {
    rt.plant
        .reject(&id, &body.reason, &actor(&headers)?, now_ms())
        .await?;
    Ok(Json(rt.plant.order(&id).await?))
}

#[utoipa::path(post, path = "/api/v1/orders/{id}/cancel", params(("id" = String, Path), ActorHeader), request_body = Reason,
    responses((status = 200, body = OrderView), (status = 409, body = ErrorBody)))]
async fn cancel_order(
    State(rt): State<AppState>,
    headers: HeaderMap,
    At(id): At<String>,
    Body(body): Body<Reason>,
) -> Result<Json<OrderView>, ApiError> {
    rt.cancel_order(&id, &body.reason, &actor(&headers)?)
        .await?;
    Ok(Json(rt.plant.order(&id).await?))
}

#[utoipa::path(get, path = "/api/v1/orders/{id}/units", params(("id" = String, Path)), responses((status = 200, body = Vec<UnitView>)))]
async fn order_units(
    State(rt): State<AppState>,
    At(id): At<String>,
) -> Result<Json<Vec<UnitView>>, ApiError> {
    rt.plant.order(&id).await?;
    Ok(Json(rt.plant.units(&id).await?))
}

/// A machine as the plant records it, with what its driver says now.
#[derive(Debug, Serialize, ToSchema)]
pub struct LiveMachineView {
    #[serde(flatten)]
    pub machine: MachineView,
    /// The machine task's live status; null for a machine no longer in the config.
    pub live: Option<MachineStatus>,
}

impl LiveMachineView {
    fn new(rt: &Runtime, machine: MachineView) -> LiveMachineView {
        let live = rt.status(&machine.id).map(|status| status.borrow().clone());
        LiveMachineView { machine, live }
    }
}

#[utoipa::path(get, path = "/api/v1/machines", responses((status = 200, body = Vec<LiveMachineView>)))]
async fn list_machines(State(rt): State<AppState>) -> Result<Json<Vec<LiveMachineView>>, ApiError> {
    let machines = rt.plant.machines().await?;
    Ok(Json(
        machines
            .into_iter()
            .map(|machine| LiveMachineView::new(&rt, machine))
            .collect(),
    ))
}

#[utoipa::path(get, path = "/api/v1/machines/{id}", params(("id" = String, Path)), responses((status = 200, body = LiveMachineView), (status = 404, body = ErrorBody)))]
async fn get_machine(
    State(rt): State<AppState>,
    At(id): At<String>,
) -> Result<Json<LiveMachineView>, ApiError> {
    let machine = rt.plant.machine(&id).await?;
    Ok(Json(LiveMachineView::new(&rt, machine)))
}

async fn machine_command(
    rt: &Runtime,
    id: &str,
    command: DriverCommand,
) -> Result<Json<MachineView>, ApiError> {
    rt.plant.machine(id).await?;
    rt.command(id, command).await?;
    Ok(Json(rt.plant.machine(id).await?))
}

#[utoipa::path(post, path = "/api/v1/machines/{id}/pause", params(("id" = String, Path)), responses((status = 200, body = MachineView), (status = 409, body = ErrorBody)))]
async fn pause_machine(
    State(rt): State<AppState>,
    At(id): At<String>,
) -> Result<Json<MachineView>, ApiError> {
    machine_command(&rt, &id, DriverCommand::Pause).await
}

#[utoipa::path(post, path = "/api/v1/machines/{id}/resume", params(("id" = String, Path)), responses((status = 200, body = MachineView), (status = 409, body = ErrorBody)))]
async fn resume_machine(
    State(rt): State<AppState>,
    At(id): At<String>,
) -> Result<Json<MachineView>, ApiError> {
    machine_command(&rt, &id, DriverCommand::Resume).await
}

#[utoipa::path(post, path = "/api/v1/machines/{id}/abort", params(("id" = String, Path)), responses((status = 200, body = MachineView), (status = 409, body = ErrorBody)))]
async fn abort_machine(
    State(rt): State<AppState>,
    At(id): At<String>,
) -> Result<Json<MachineView>, ApiError> {
    machine_command(&rt, &id, DriverCommand::Abort).await
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceRequest {
    pub on: bool,
    #[serde(default)]
    pub reason: String,
}

impl ToSchema for MaintenanceRequest {}

/// Taking a machine out needs a reason; bringing it back does not.
impl utoipa::PartialSchema for MaintenanceRequest {
    fn schema() -> RefOr<Schema> {
        let branch = |on: bool| {
            let object = ObjectBuilder::new()
                .schema_type(Type::Object)
                .property(
                    "on",
                    ObjectBuilder::new()
                        .schema_type(Type::Boolean)
                        .enum_values(Some([on])),
                )
                .property("reason", reason_schema(on))
                .required("on")
                .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)));
            if on {
                object.required("reason")
            } else {
                object
            }
        };
        OneOfBuilder::new()
            .description(Some(
                "Take a machine out of service (`on`, with the reason) or bring it back.",
            ))
            .item(branch(true))
            .item(branch(false))
            .into()
    }
}

/// A reason as the plant takes it: some text that is not only spaces, at most
/// [`MAX_REASON_CHARS`] long; `required` false lets it be empty.
fn reason_schema(required: bool) -> ObjectBuilder {
    let text = ObjectBuilder::new()
        .schema_type(Type::String)
        .max_length(Some(MAX_REASON_CHARS));
    if required {
        text.min_length(Some(1)).pattern(Some(r"\S"))
    } else {
        text
    }
}

impl Limited for MaintenanceRequest {
    fn check_limits(&self) -> Result<(), ApiError> {
        within("reason", &self.reason, MAX_REASON_CHARS)
    }
}

#[utoipa::path(post, path = "/api/v1/machines/{id}/maintenance", params(("id" = String, Path), ActorHeader), request_body = MaintenanceRequest,
    responses((status = 200, body = MachineView), (status = 409, body = ErrorBody)))]
async fn machine_maintenance(
    State(rt): State<AppState>,
    headers: HeaderMap,
    At(id): At<String>,
    Body(body): Body<MaintenanceRequest>,
) -> Result<Json<MachineView>, ApiError> {
    rt.plant
        .set_maintenance(&id, body.on, &body.reason, &actor(&headers)?, now_ms())
        .await?;
    rt.wake();
    Ok(Json(rt.plant.machine(&id).await?))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OperatorRequest {
    /// `unlock` (clear an alarm lock), `home`, or `reset`. Never done by the scheduler.
    #[schema(value_type = String, schema_with = operator_action_schema)]
    pub action: microfab_drivers::OperatorAction,
}

fn operator_action_schema() -> Schema {
    use microfab_drivers::OperatorAction::{Home, Reset, Unlock};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(
            [Unlock, Home, Reset].map(|action| serde_json::to_value(action).unwrap_or_default()),
        ))
        .into()
}

impl Limited for OperatorRequest {
    fn check_limits(&self) -> Result<(), ApiError> {
        Ok(())
    }
}

#[utoipa::path(post, path = "/api/v1/machines/{id}/operator", params(("id" = String, Path)), request_body = OperatorRequest,
    responses((status = 200, body = MachineView, description = "the machine did it (an unlock or home: it left the alarm)"),
        (status = 409, body = ErrorBody, description = "the machine refused or did not do it (busy, locked until a reset, no such action); the message says what is needed"),
        (status = 503, body = ErrorBody, description = "the machine cannot be reached")))]
async fn machine_operator(
    State(rt): State<AppState>,
    At(id): At<String>,
    Body(body): Body<OperatorRequest>,
) -> Result<Json<MachineView>, ApiError> {
    rt.plant.machine(&id).await?;
    rt.operator(&id, body.action).await?;
    Ok(Json(rt.plant.machine(&id).await?))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ConsoleLine {
    pub at_ms: u64,
    /// `sent`, `received`, or `note` (a remark of the driver's, not on the wire)
    pub direction: String,
    pub text: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Console {
    pub lines: Vec<ConsoleLine>,
    pub lines_sent: u64,
    pub lines_received: u64,
    pub resends: u64,
    pub errors: u64,
    pub reconnects: u64,
    pub window_fallbacks: u64,
}

/// The machine's recent serial traffic (newest last) and link counters, for support.
#[utoipa::path(get, path = "/api/v1/machines/{id}/console", params(("id" = String, Path)),
    responses((status = 200, body = Console), (status = 404, body = ErrorBody, description = "no such machine, or its driver keeps no console")))]
async fn machine_console(
    State(rt): State<AppState>,
    At(id): At<String>,
) -> Result<Json<Console>, ApiError> {
    rt.plant.machine(&id).await?;
    let log = rt.traffic(&id).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("machine '{id}' has no serial console"),
        )
    })?;
    let c = &log.counters;
    Ok(Json(Console {
        lines: log
            .lines()
            .map(|l| ConsoleLine {
                at_ms: l.at_ms,
                direction: serde_json::to_value(l.direction)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                text: l.text.clone(),
            })
            .collect(),
        lines_sent: c.lines_sent,
        lines_received: c.lines_received,
        resends: c.resends,
        errors: c.errors,
        reconnects: c.reconnects,
        window_fallbacks: c.window_fallbacks,
    }))
}

#[utoipa::path(get, path = "/api/v1/materials", responses((status = 200, body = Vec<MaterialView>)))]
async fn list_materials(State(rt): State<AppState>) -> Result<Json<Vec<MaterialView>>, ApiError> {
    Ok(Json(rt.plant.materials().await?))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestockRequest {
    /// How much arrived, in the account's unit with at most three decimals.
    #[schema(value_type = f64, exclusive_minimum = 0, maximum = 1_000_000_000, multiple_of = 0.001)]
    pub amount: Amount,
    /// The lot code; one is made up when absent. A lot is recorded once.
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub lot: Option<String>,
}

impl Limited for RestockRequest {
    fn check_limits(&self) -> Result<(), ApiError> {
        within_amount("amount", self.amount)?;
        match self.lot.as_deref() {
            Some(lot) if lot.trim().is_empty() => Err(ApiError::invalid(
                "lot",
                "give the lot code, or leave `lot` out to have one made up",
            )),
            Some(lot) => within("lot", lot, MAX_LABEL_CHARS),
            None => Ok(()),
        }
    }
}

async fn material_view(rt: &Runtime, id: &str) -> Result<Json<MaterialView>, ApiError> {
    rt.plant
        .materials()
        .await?
        .into_iter()
        .find(|m| m.id == id)
        .map(Json)
        .ok_or_else(|| PlantError::NotFound(format!("stock account '{id}'")).into())
}

#[utoipa::path(post, path = "/api/v1/materials/{id}/restock", params(("id" = String, Path), ActorHeader), request_body = RestockRequest,
    responses((status = 200, body = MaterialView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "the lot is already recorded"), (status = 422, body = ErrorBody)))]
async fn restock_material(
    State(rt): State<AppState>,
    headers: HeaderMap,
    At(id): At<String>,
    Body(body): Body<RestockRequest>,
) -> Result<Json<MaterialView>, ApiError> {
    rt.plant
        .restock(&id, body.amount, body.lot, &actor(&headers)?, now_ms())
        .await?;
    rt.wake();
    material_view(&rt, &id).await
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjustRequest {
    /// Signed change of the amount on hand, never zero, in the account's unit with at most three
    /// decimals.
    #[schema(schema_with = nonzero_delta_schema)]
    pub delta: f64,
    /// Why, for the event log and whoever reads it later.
    #[schema(min_length = 1, max_length = 1000, pattern = r"\S")]
    pub reason: String,
}

/// A signed amount that is not zero, as JSON Schema says it.
fn nonzero_delta_schema() -> Schema {
    let side = |positive: bool| {
        let bound = MAX_AMOUNT_UNITS as f64;
        let number = ObjectBuilder::new()
            .schema_type(Type::Number)
            .multiple_of(Some(0.001));
        if positive {
            number.exclusive_minimum(Some(0.0)).maximum(Some(bound))
        } else {
            number.exclusive_maximum(Some(0.0)).minimum(Some(-bound))
        }
    };
    OneOfBuilder::new()
        .item(side(true))
        .item(side(false))
        .into()
}

impl Limited for AdjustRequest {
    fn check_limits(&self) -> Result<(), ApiError> {
        let delta = Amount::from_decimal(self.delta).map_err(|e| ApiError::invalid("delta", e))?;
        within_amount("delta", Amount(delta.0.abs()))?;
        within("reason", &self.reason, MAX_REASON_CHARS)
    }
}

#[utoipa::path(post, path = "/api/v1/materials/{id}/adjust", params(("id" = String, Path), ActorHeader), request_body = AdjustRequest,
    responses((status = 200, body = MaterialView), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn adjust_material(
    State(rt): State<AppState>,
    headers: HeaderMap,
    At(id): At<String>,
    Body(body): Body<AdjustRequest>,
) -> Result<Json<MaterialView>, ApiError> {
    let delta = Amount::from_decimal(body.delta).map_err(|e| ApiError::invalid("delta", e))?;
    rt.plant
        .adjust(&id, delta.0, &body.reason, &actor(&headers)?, now_ms())
        .await?;
    rt.wake();
    material_view(&rt, &id).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobFilter {
    pub order: Option<String>,
    pub machine: Option<String>,
    pub state: Option<JobState>,
}

#[utoipa::path(get, path = "/api/v1/jobs", params(("order" = Option<String>, Query), ("machine" = Option<String>, Query), ("state" = Option<JobState>, Query)),
    responses((status = 200, body = Vec<JobView>),
        (status = 400, body = ErrorBody, description = "an unknown filter or state; the message names the valid ones")))]
async fn list_jobs(
    State(rt): State<AppState>,
    Params(filter): Params<JobFilter>,
) -> Result<Json<Vec<JobView>>, ApiError> {
    Ok(Json(
        rt.plant
            .jobs(
                filter.order.as_deref(),
                filter.machine.as_deref(),
                filter.state.map(JobState::as_str),
            )
            .await?,
    ))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveRequest {
    /// How many of the run's units are good (at most the run's units); the rest are scrapped and
    /// replaced.
    #[schema(minimum = 0)]
    #[serde(deserialize_with = "whole_number")]
    pub good: i64,
    /// Why, for the event log and whoever reads it later.
    #[schema(min_length = 1, max_length = 1000, pattern = r"\S")]
    pub reason: String,
}

impl Limited for ResolveRequest {
    fn check_limits(&self) -> Result<(), ApiError> {
        within("reason", &self.reason, MAX_REASON_CHARS)
    }
}

#[utoipa::path(post, path = "/api/v1/jobs/{id}/resolve", params(("id" = i64, Path), ActorHeader), request_body = ResolveRequest,
    responses((status = 200, body = JobView), (status = 409, body = ErrorBody)))]
async fn resolve_job(
    State(rt): State<AppState>,
    headers: HeaderMap,
    At(id): At<i64>,
    Body(body): Body<ResolveRequest>,
) -> Result<Json<JobView>, ApiError> {
    rt.plant
        .resolve(id, body.good, &body.reason, &actor(&headers)?, now_ms())
        .await?;
    rt.wake();
    job_view(&rt, id).await
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResumeRequest {
    /// Line of the program file to go on from; by default the job's `resume.next_line`.
    /// Earlier runs acknowledged lines again; later than `resume.latest_start` is refused.
    #[serde(default, deserialize_with = "optional_whole_number")]
    #[schema(minimum = 1, maximum = 4_294_967_295_u32)]
    pub from_line: Option<u32>,
    /// What the operator checked (the part is still in place, the nozzle is clean, ...).
    #[schema(min_length = 1, max_length = 1000, pattern = r"\S")]
    pub reason: String,
}

impl Limited for ResumeRequest {
    fn check_limits(&self) -> Result<(), ApiError> {
        within("reason", &self.reason, MAX_REASON_CHARS)
    }
}

/// Send an interrupted run back to the machine that ran it, from a line of its program. Only
/// where the machine's config allows it (Marlin printers by default, never CNC unless set) and
/// the driver still trusts the machine's state; otherwise 409 says why and nothing changes.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/resume", params(("id" = i64, Path), ActorHeader), request_body = ResumeRequest,
    responses((status = 200, body = JobView), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn resume_job(
    State(rt): State<AppState>,
    headers: HeaderMap,
    At(id): At<i64>,
    Body(body): Body<ResumeRequest>,
) -> Result<Json<JobView>, ApiError> {
    rt.resume_job(id, body.from_line, &body.reason, &actor(&headers)?)
        .await?;
    job_view(&rt, id).await
}

/// An integer as JSON Schema has it: `3` and `3.0` are the same number.
fn whole_number<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<i64>,
{
    let value = serde_json::Number::deserialize(deserializer)?;
    value
        .as_i64()
        .or_else(|| {
            value
                .as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                .map(|f| f as i64)
        })
        .and_then(|n| T::try_from(n).ok())
        .ok_or_else(|| serde::de::Error::custom(format!("{value} is not a whole number in range")))
}

fn optional_whole_number<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<i64>,
{
    #[derive(Deserialize)]
    struct Whole<T: TryFrom<i64>>(#[serde(deserialize_with = "whole_number")] T);
    Ok(Option::<Whole<T>>::deserialize(deserializer)?.map(|Whole(n)| n))
}

async fn job_view(rt: &Runtime, id: i64) -> Result<Json<JobView>, ApiError> {
    rt.plant
        .jobs(None, None, None)
        .await?
        .into_iter()
        .find(|j| j.id == id)
        .map(Json)
        .ok_or_else(|| PlantError::NotFound(format!("job {id}")).into())
}

#[utoipa::path(post, path = "/api/v1/jobs/{id}/confirm", params(("id" = i64, Path)),
    responses((status = 200, body = JobView), (status = 409, body = ErrorBody, description = "the job is not waiting for a person (a manual station's run, a GRBL tool change)")))]
async fn confirm_job(
    State(rt): State<AppState>,
    At(id): At<i64>,
) -> Result<Json<JobView>, ApiError> {
    let job = job_view(&rt, id).await?.0;
    let machine = job
        .machine_id
        .filter(|_| job.state == "running" || job.state == "dispatched")
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("job {id} is {}, not at a station", job.state),
            )
        })?;
    rt.command(&machine, DriverCommand::ConfirmManual { job_id: id })
        .await?;
    job_view(&rt, id).await
}

#[utoipa::path(post, path = "/api/v1/units/{id}/scrap", params(("id" = i64, Path), ActorHeader), request_body = Reason,
    responses((status = 200, body = OrderView), (status = 409, body = ErrorBody)))]
async fn scrap_unit(
    State(rt): State<AppState>,
    headers: HeaderMap,
    At(id): At<i64>,
    Body(body): Body<Reason>,
) -> Result<Json<OrderView>, ApiError> {
    rt.plant
        .scrap_unit(id, &body.reason, &actor(&headers)?, now_ms())
        .await?;
    rt.wake();
    let order_id: String = sqlx::query_scalar("SELECT order_id FROM units WHERE id = $1")
        .bind(id)
        .fetch_one(&rt.plant.store.pool)
        .await
        .map_err(PlantError::from)?;
    Ok(Json(rt.plant.order(&order_id).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    #[serde(default)]
    pub after: i64,
    pub limit: Option<i64>,
    pub order: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/events/log", params(("after" = Option<i64>, Query), ("limit" = Option<i64>, Query), ("order" = Option<String>, Query)),
    responses((status = 200, body = Vec<EventRecord>)))]
async fn event_log(
    State(rt): State<AppState>,
    Params(q): Params<LogQuery>,
) -> Result<Json<Vec<EventRecord>>, ApiError> {
    let limit = q.limit.unwrap_or(1000).clamp(1, 10_000);
    Ok(Json(
        events::list(&rt.plant.store.pool, q.after, limit, q.order.as_deref())
            .await
            .map_err(PlantError::from)?,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    pub after: Option<i64>,
}

/// Server-sent events: every committed event, in log order. `Last-Event-ID` (what a browser's
/// EventSource sends when it reconnects) or else `after` replays the log from there first, so a
/// client that reconnects misses nothing.
#[utoipa::path(get, path = "/api/v1/events",
    params(
        ("after" = Option<i64>, Query, description = "replay the log after this event seq first"),
        ("Last-Event-ID" = Option<i64>, Header, nullable = false, minimum = 0, description = "the last event seq the client has (what a reconnecting EventSource sends); takes precedence over `after`"),
    ),
    responses(
        (status = 200, content_type = "text/event-stream", description = "one SSE message per event; id = seq"),
        (status = 400, body = ErrorBody, description = "`Last-Event-ID` is not an event seq"),
    ))]
async fn event_stream(
    State(rt): State<AppState>,
    headers: HeaderMap,
    Params(q): Params<StreamQuery>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let after = match last_event_id(&headers)? {
        Some(seq) => Some(seq),
        None => q.after,
    };
    let live = rt.plant.store.subscribe();
    let pool = rt.plant.store.pool.clone();
    let stream = async_stream(after, pool, move || live.resubscribe());
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// The `Last-Event-ID` header as an event seq. A reconnecting client that sent garbage would
/// otherwise silently get a live-only stream and miss what happened while it was away.
fn last_event_id(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(value) = headers.get("last-event-id") else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|seq| *seq >= 0)
        .map(Some)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_header",
                format!(
                    "Last-Event-ID: {:?} is not an event seq (a non-negative integer, the id of an SSE message)",
                    String::from_utf8_lossy(value.as_bytes())
                ),
            )
        })
}

fn async_stream(
    after: Option<i64>,
    pool: sqlx::AnyPool,
    subscribe: impl FnOnce() -> tokio::sync::broadcast::Receiver<EventRecord> + Send + 'static,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    let (tx, rx) = tokio::sync::mpsc::channel::<EventRecord>(256);
    tokio::spawn(async move {
        let mut live = subscribe();
        let mut last = after.unwrap_or(i64::MAX);
        if after.is_some() {
            // Catch up from the log, then follow the live feed, skipping what was already sent.
            loop {
                let Ok(batch) = events::list(&pool, last, 1000, None).await else {
                    return;
                };
                if batch.is_empty() {
                    break;
                }
                for record in batch {
                    last = record.seq;
                    if tx.send(record).await.is_err() {
                        return;
                    }
                }
            }
        }
        loop {
            match live.recv().await {
                Ok(record) if after.is_none() || record.seq > last => {
                    last = record.seq;
                    if tx.send(record).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    // Too slow to follow live: fall back to the log from the last one sent.
                    let Ok(batch) = events::list(&pool, last, 1000, None).await else {
                        return;
                    };
                    for record in batch {
                        last = record.seq;
                        if tx.send(record).await.is_err() {
                            return;
                        }
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx).map(|record| {
        Ok(SseEvent::default()
            .id(record.seq.to_string())
            .event(record.event.kind())
            .json_data(&record)
            .unwrap_or_default())
    })
}

use tokio_stream::StreamExt as _;

/// One bar of the Gantt chart: a run on a machine, with its setup block before it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GanttRow {
    pub machine_id: String,
    pub run_id: i64,
    pub order_id: String,
    pub step: Option<String>,
    /// Already on the machine: the plan keeps it where it is.
    pub frozen: bool,
    pub setup_start: String,
    pub start: String,
    pub end: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OrderEta {
    pub order_id: String,
    pub eta: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PlanView {
    /// The instant the plan was made for.
    pub planned_at: Option<String>,
    pub rows: Vec<GanttRow>,
    pub orders: Vec<OrderEta>,
    /// Runs the planner could not place now (no machine in service, material never covered).
    pub unplanned: Vec<i64>,
    #[schema(value_type = Option<Object>)]
    pub objective: Option<serde_json::Value>,
    /// Plans made since start, and how many the independent schedule checker refused.
    pub plans_made: u64,
    pub plans_refused: u64,
}

/// The plan the dispatcher follows, as Gantt rows per machine.
#[utoipa::path(get, path = "/api/v1/plan", responses((status = 200, body = PlanView)))]
async fn current_plan(State(rt): State<AppState>) -> Json<PlanView> {
    let plans_made = rt.plans_made.load(std::sync::atomic::Ordering::Relaxed);
    let plans_refused = rt.plans_refused.load(std::sync::atomic::Ordering::Relaxed);
    let Some(snapshot) = rt.current_plan() else {
        return Json(PlanView {
            planned_at: None,
            rows: Vec::new(),
            orders: Vec::new(),
            unplanned: Vec::new(),
            objective: None,
            plans_made,
            plans_refused,
        });
    };
    let runs: std::collections::HashMap<i64, (&str, Option<&str>)> = snapshot
        .input
        .runs
        .iter()
        .map(|r| (r.id, (r.order_id.as_str(), Some(r.step_id.as_str()))))
        .chain(
            snapshot
                .input
                .frozen
                .iter()
                .map(|f| (f.run_id, (f.order_id.as_str(), None))),
        )
        .collect();
    let frozen: std::collections::HashSet<i64> =
        snapshot.input.frozen.iter().map(|f| f.run_id).collect();
    Json(PlanView {
        planned_at: Some(format_ms(snapshot.input.now)),
        rows: snapshot
            .plan
            .assignments
            .iter()
            .map(|a| {
                let (order_id, step) = runs.get(&a.run_id).copied().unwrap_or(("", None));
                GanttRow {
                    machine_id: a.machine_id.clone(),
                    run_id: a.run_id,
                    order_id: order_id.to_string(),
                    step: step.map(str::to_string),
                    frozen: frozen.contains(&a.run_id),
                    setup_start: format_ms(a.setup_start),
                    start: format_ms(a.start),
                    end: format_ms(a.end),
                }
            })
            .collect(),
        orders: snapshot
            .plan
            .order_eta
            .iter()
            .map(|(id, at)| OrderEta {
                order_id: id.clone(),
                eta: format_ms(*at),
            })
            .collect(),
        unplanned: snapshot.plan.unplanned.clone(),
        objective: serde_json::to_value(snapshot.plan.objective).ok(),
        plans_made,
        plans_refused,
    })
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VerifyReport {
    /// The event log, replayed, gives exactly the state in the tables, and the tables keep
    /// the plant's business invariants.
    pub consistent: bool,
    pub events: usize,
    /// Where the replayed log and the tables disagree.
    pub differences: Vec<String>,
    /// Business invariants the tables break: work or reservations on a closed order,
    /// reservations that are not what open runs will draw, unit counts that are not the unit
    /// rows, `0 <= reserved <= on_hand`.
    pub invariants: Vec<String>,
}

#[utoipa::path(get, path = "/api/v1/verify", responses((status = 200, body = VerifyReport)))]
async fn verify(State(rt): State<AppState>) -> Result<Json<VerifyReport>, ApiError> {
    Ok(Json(
        crate::verify::verify(&rt.plant.store)
            .await
            .map_err(PlantError::from)?,
    ))
}
