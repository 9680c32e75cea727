//! `/api/v1/orders/{id}/prescreen`: what an operator checks before approving an order.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;

use super::error::{ApiError, ErrorBody};
use super::extract::{ActorHeader, At, actor};
use crate::ops::Operations;
use crate::plant::prescreen::OrderPrescreen;

/// The order's pre-screen now: spec, programs, per step the machines that can do it (envelope
/// fit and by how much not, driver acceptance), material needed vs available, earliest
/// completion vs due date, and the flags these raise. Staff only.
#[utoipa::path(get, path = "/api/v1/orders/{id}/prescreen", params(("id" = String, Path), ActorHeader),
    responses((status = 200, body = OrderPrescreen),
        (status = 403, body = ErrorBody, description = "a maker asking about their own order"),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "the stored spec no longer checks")))]
pub(super) async fn order_prescreen(
    State(ops): State<Operations>,
    headers: HeaderMap,
    At(id): At<String>,
) -> Result<Json<OrderPrescreen>, ApiError> {
    Ok(Json(ops.prescreen(&actor(&headers)?, &id).await?))
}
