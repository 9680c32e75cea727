//! `/api/v1/jobs`: runs, and an operator's resolve, resume and confirm.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::extract::{At, Body, Limited, NoFields, Params, within};
use super::limits::MAX_REASON_CHARS;
use crate::auth::Caller;
use crate::ops::Operations;
use crate::plant::JobState;
use crate::plant::views::JobView;

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
pub(super) async fn list_jobs(
    State(ops): State<Operations>,
    caller: Caller,
    Params(filter): Params<JobFilter>,
) -> Result<Json<Vec<JobView>>, ApiError> {
    Ok(Json(
        ops.jobs(
            &caller.actor(),
            filter.order.as_deref(),
            filter.machine.as_deref(),
            filter.state,
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
    #[serde(deserialize_with = "crate::whole_number::whole_number")]
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

#[utoipa::path(post, path = "/api/v1/jobs/{id}/resolve", params(("id" = i64, Path)), request_body = ResolveRequest,
    responses((status = 200, body = JobView), (status = 409, body = ErrorBody)))]
pub(super) async fn resolve_job(
    State(ops): State<Operations>,
    caller: Caller,
    At(id): At<i64>,
    Body(body): Body<ResolveRequest>,
) -> Result<Json<JobView>, ApiError> {
    Ok(Json(
        ops.resolve(&caller.actor(), id, body.good, &body.reason)
            .await?,
    ))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResumeRequest {
    /// Line of the program file to go on from; by default the job's `resume.next_line`.
    /// Earlier runs acknowledged lines again; later than `resume.latest_start` is refused.
    #[serde(
        default,
        deserialize_with = "crate::whole_number::optional_whole_number"
    )]
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
#[utoipa::path(post, path = "/api/v1/jobs/{id}/resume", params(("id" = i64, Path)), request_body = ResumeRequest,
    responses((status = 200, body = JobView), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn resume_job(
    State(ops): State<Operations>,
    caller: Caller,
    At(id): At<i64>,
    Body(body): Body<ResumeRequest>,
) -> Result<Json<JobView>, ApiError> {
    Ok(Json(
        ops.resume(&caller.actor(), id, body.from_line, &body.reason)
            .await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/jobs/{id}/confirm", params(("id" = i64, Path)), request_body(content = NoFields, description = "`{}`: this action takes no fields"),
    responses((status = 200, body = JobView), (status = 409, body = ErrorBody, description = "the job is not waiting for a person (a manual station's run, a GRBL tool change)")))]
pub(super) async fn confirm_job(
    State(ops): State<Operations>,
    caller: Caller,
    At(id): At<i64>,
    _: NoFields,
) -> Result<Json<JobView>, ApiError> {
    Ok(Json(ops.confirm(&caller.actor(), id).await?))
}
