//! `/api/v1/tasks` and an operator's load and unload of a run (`/api/v1/jobs/{id}/load`,
//! `/unload`).

use axum::Json;
use axum::extract::State;

use super::error::{ApiError, ErrorBody};
use super::extract::{At, Body, Limited, NoFields, within};
use super::limits::MAX_REASON_CHARS;
use crate::auth::Caller;
use crate::ops::Operations;
use crate::plant::tasks::{Inspection, TaskView};
use crate::plant::views::JobView;

/// Every task waiting for a person at a machine, oldest first: loads (a `setup` when the
/// run's setup family differs from the machine's last), unloads, manual station runs waiting
/// for their confirm, interrupted runs, due maintenance.
#[utoipa::path(get, path = "/api/v1/tasks", responses((status = 200, body = Vec<TaskView>)))]
pub(super) async fn list_tasks(
    State(ops): State<Operations>,
    caller: Caller,
) -> Result<Json<Vec<TaskView>>, ApiError> {
    Ok(Json(ops.tasks(&caller.actor()).await?))
}

/// The operator loaded the machine for a run waiting for its load: the run is sent now.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/load", params(("id" = i64, Path)), request_body(content = NoFields, description = "`{}`: this action takes no fields"),
    responses((status = 200, body = JobView),
        (status = 409, body = ErrorBody, description = "the run is not waiting for its load; or its machine refused it, and it went back to the plan")))]
pub(super) async fn load_job(
    State(ops): State<Operations>,
    caller: Caller,
    At(id): At<i64>,
    _: NoFields,
) -> Result<Json<JobView>, ApiError> {
    Ok(Json(ops.load(&caller.actor(), id).await?))
}

impl Limited for Inspection {
    /// Its shape, whatever the run's state: a schema-violating inspection is a 422 even for a
    /// run that is not waiting for its unload.
    fn check_limits(&self) -> Result<(), ApiError> {
        self.check_shape()?;
        for (i, entry) in self.scrap.iter().enumerate() {
            within(
                &format!("scrap[{i}].reason"),
                &entry.reason,
                MAX_REASON_CHARS,
            )?;
        }
        Ok(())
    }
}

/// The operator unloaded a finished run and inspected it: its units are recorded (each
/// scrapped piece with its reason, and replaced), and the machine takes work again. `{}`
/// keeps the machine's verdict: its scrap with its reason, every other piece good.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/unload", params(("id" = i64, Path)), request_body = Inspection,
    responses((status = 200, body = JobView),
        (status = 409, body = ErrorBody, description = "the run is not waiting for its unload (someone else unloaded it)"),
        (status = 422, body = ErrorBody, description = "the inspection does not add up: `good` plus the scrap counts must be the run's units, and a failed run has nothing good; the error names the field")))]
pub(super) async fn unload_job(
    State(ops): State<Operations>,
    caller: Caller,
    At(id): At<i64>,
    Body(inspection): Body<Inspection>,
) -> Result<Json<JobView>, ApiError> {
    Ok(Json(ops.unload(&caller.actor(), id, &inspection).await?))
}
