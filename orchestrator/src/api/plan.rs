//! `/api/v1/plan`: the plan the dispatcher follows, as Gantt rows per machine.

use axum::Json;
use axum::extract::State;

use super::error::ApiError;
use crate::auth::Caller;
use crate::ops::Operations;
use crate::plant::live_views::PlanView;

/// The plan the dispatcher follows, as Gantt rows per machine.
#[utoipa::path(get, path = "/api/v1/plan", responses((status = 200, body = PlanView)))]
pub(super) async fn current_plan(
    State(ops): State<Operations>,
    caller: Caller,
) -> Result<Json<PlanView>, ApiError> {
    Ok(Json(ops.plan(&caller.actor()).await?))
}
