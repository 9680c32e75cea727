//! `/api/v1/orders` (submit, list, approve, reject, cancel, units) and `/api/v1/units`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::{Extension, Json};
use microfab_job_specs::{InMemory, SpecFormat};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio_stream::StreamExt as _;
use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, OneOfBuilder, Schema, Type};

use super::error::{ApiError, ErrorBody};
use super::extract::{At, Body, Limited, NoFields, Params, within};
use super::limits::{MAX_LABEL_CHARS, MAX_REASON_CHARS, MAX_SUBMISSION_BYTES};
use crate::auth::Caller;
use crate::ops::{Operations, Submitted};
use crate::plant::views::{OrderView, UnitView};
use crate::plant::{OrderState, PlantError};

/// How much of an oversized submission is read (and dropped) so that its sender gets the 413.
const DRAINED_BYTES: usize = 2 * MAX_SUBMISSION_BYTES;

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
pub(super) async fn list_orders(
    State(ops): State<Operations>,
    caller: Caller,
    Params(filter): Params<OrderFilter>,
) -> Result<Json<Vec<OrderView>>, ApiError> {
    Ok(Json(
        ops.orders(&caller.actor(), filter.state, filter.maker.as_deref())
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

#[utoipa::path(post, path = "/api/v1/orders",
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
pub(super) async fn submit_order(
    State(ops): State<Operations>,
    Extension(submissions): Extension<Arc<Semaphore>>,
    caller: Caller,
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
    } else if content_type.starts_with("application/toml") {
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
    let submitted = ops
        .submit(&caller.actor(), &checked, request.submission_key.as_deref())
        .await?;
    let status = if submitted.already_submitted {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(submitted)))
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
pub(super) async fn get_order(
    State(ops): State<Operations>,
    caller: Caller,
    At(id): At<String>,
) -> Result<Json<OrderView>, ApiError> {
    Ok(Json(ops.order(&caller.actor(), &id).await?))
}

#[utoipa::path(post, path = "/api/v1/orders/{id}/approve", params(("id" = String, Path)), request_body(content = NoFields, description = "`{}`: this action takes no fields"),
    responses((status = 200, body = OrderView), (status = 409, body = ErrorBody, description = "not submitted, or material short"), (status = 422, body = ErrorBody, description = "X-Actor is over its limit")))]
pub(super) async fn approve_order(
    State(ops): State<Operations>,
    caller: Caller,
    At(id): At<String>,
    _: NoFields,
) -> Result<Json<OrderView>, ApiError> {
    Ok(Json(ops.approve(&caller.actor(), &id).await?))
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

#[utoipa::path(post, path = "/api/v1/orders/{id}/reject", params(("id" = String, Path)), request_body = Reason,
    responses((status = 200, body = OrderView), (status = 409, body = ErrorBody)))]
pub(super) async fn reject_order(
    State(ops): State<Operations>,
    caller: Caller,
    At(id): At<String>,
    Body(body): Body<Reason>,
) -> Result<Json<OrderView>, ApiError> {
    Ok(Json(ops.reject(&caller.actor(), &id, &body.reason).await?))
}

#[utoipa::path(post, path = "/api/v1/orders/{id}/cancel", params(("id" = String, Path)), request_body = Reason,
    responses((status = 200, body = OrderView), (status = 409, body = ErrorBody)))]
pub(super) async fn cancel_order(
    State(ops): State<Operations>,
    caller: Caller,
    At(id): At<String>,
    Body(body): Body<Reason>,
) -> Result<Json<OrderView>, ApiError> {
    Ok(Json(ops.cancel(&caller.actor(), &id, &body.reason).await?))
}

#[utoipa::path(get, path = "/api/v1/orders/{id}/units", params(("id" = String, Path)), responses((status = 200, body = Vec<UnitView>)))]
pub(super) async fn order_units(
    State(ops): State<Operations>,
    caller: Caller,
    At(id): At<String>,
) -> Result<Json<Vec<UnitView>>, ApiError> {
    Ok(Json(ops.units(&caller.actor(), &id).await?))
}

#[utoipa::path(post, path = "/api/v1/units/{id}/scrap", params(("id" = i64, Path)), request_body = Reason,
    responses((status = 200, body = OrderView), (status = 409, body = ErrorBody)))]
pub(super) async fn scrap_unit(
    State(ops): State<Operations>,
    caller: Caller,
    At(id): At<i64>,
    Body(body): Body<Reason>,
) -> Result<Json<OrderView>, ApiError> {
    Ok(Json(
        ops.scrap_unit(&caller.actor(), id, &body.reason).await?,
    ))
}
