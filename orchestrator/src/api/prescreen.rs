//! `/api/v1/orders/{id}/prescreen`: what an operator checks before approving an order.

use axum::Json;
use axum::extract::State;

use super::error::{ApiError, ErrorBody};
use super::extract::At;
use crate::auth::Caller;
use crate::ops::Operations;
use crate::plant::prescreen::OrderPrescreen;

/// The order's pre-screen now: spec, programs, per step the machines that can do it (envelope
/// fit and by how much not, driver acceptance), material needed vs available, earliest
/// completion vs due date, and the flags these raise. Staff only.
#[utoipa::path(get, path = "/api/v1/orders/{id}/prescreen", params(("id" = String, Path)),
    responses((status = 200, body = OrderPrescreen),
        (status = 403, body = ErrorBody, description = "a maker: the pre-screen is for the plant's staff"),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "the stored spec no longer checks")))]
pub(super) async fn order_prescreen(
    State(ops): State<Operations>,
    caller: Caller,
    At(id): At<String>,
) -> Result<Json<OrderPrescreen>, ApiError> {
    Ok(Json(ops.prescreen(&caller.actor(), &id).await?))
}
