//! `/api/v1/materials`: stock accounts, restock and adjustment.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};

use super::error::{ApiError, ErrorBody};
use super::extract::{At, Body, Limited, within, within_amount};
use super::limits::{MAX_AMOUNT_UNITS, MAX_LABEL_CHARS, MAX_REASON_CHARS};
use crate::amount::Amount;
use crate::auth::Caller;
use crate::config::Origin;
use crate::ops::Operations;
use crate::plant::views::MaterialView;

#[utoipa::path(get, path = "/api/v1/materials", responses((status = 200, body = Vec<MaterialView>)))]
pub(super) async fn list_materials(
    State(ops): State<Operations>,
    caller: Caller,
) -> Result<Json<Vec<MaterialView>>, ApiError> {
    Ok(Json(ops.materials(&caller.actor()).await?))
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
    /// Where this lot comes from; the account's origin when absent.
    #[serde(default)]
    pub origin: Option<Origin>,
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

#[utoipa::path(post, path = "/api/v1/materials/{id}/restock", params(("id" = String, Path)), request_body = RestockRequest,
    responses((status = 200, body = MaterialView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "the lot is already recorded"), (status = 422, body = ErrorBody)))]
pub(super) async fn restock_material(
    State(ops): State<Operations>,
    caller: Caller,
    At(id): At<String>,
    Body(body): Body<RestockRequest>,
) -> Result<Json<MaterialView>, ApiError> {
    Ok(Json(
        ops.restock(&caller.actor(), &id, body.amount, body.lot, body.origin)
            .await?,
    ))
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

#[utoipa::path(post, path = "/api/v1/materials/{id}/adjust", params(("id" = String, Path)), request_body = AdjustRequest,
    responses((status = 200, body = MaterialView), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn adjust_material(
    State(ops): State<Operations>,
    caller: Caller,
    At(id): At<String>,
    Body(body): Body<AdjustRequest>,
) -> Result<Json<MaterialView>, ApiError> {
    let delta = Amount::from_decimal(body.delta).map_err(|e| ApiError::invalid("delta", e))?;
    Ok(Json(
        ops.adjust(&caller.actor(), &id, delta, &body.reason)
            .await?,
    ))
}
