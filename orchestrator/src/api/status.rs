//! `/healthz` and `/api/v1/verify`: is the process up, and does the store keep its invariants.

use axum::Json;
use axum::extract::State;

use super::error::ApiError;
use crate::auth::Caller;
use crate::ops::Operations;
use crate::plant::PlantError;
use crate::verify::VerifyReport;

#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "The process is up and the store answers")))]
pub(super) async fn healthz(State(ops): State<Operations>) -> Result<&'static str, ApiError> {
    sqlx::query("SELECT 1")
        .execute(&ops.plant().store.pool)
        .await
        .map_err(PlantError::from)?;
    Ok("ok")
}

#[utoipa::path(get, path = "/api/v1/verify", responses((status = 200, body = VerifyReport)))]
pub(super) async fn verify(
    State(ops): State<Operations>,
    caller: Caller,
) -> Result<Json<VerifyReport>, ApiError> {
    Ok(Json(ops.verify(&caller.actor()).await?))
}
