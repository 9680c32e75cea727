//! What a request carries, read with its limits: JSON bodies whose free text has a length
//! limit, path and query parameters whose rejections are our JSON errors, and who asks.

use axum::Json;
use axum::extract::{FromRequest, FromRequestParts};
use axum::http::HeaderMap;

use super::error::ApiError;
use super::limits::{MAX_AMOUNT_UNITS, MAX_LABEL_CHARS};
use crate::amount::Amount;
use crate::ops::Actor;

pub(super) fn within_amount(field: &str, amount: Amount) -> Result<(), ApiError> {
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

/// `value` has at most `max_chars` characters (what JSON Schema's `maxLength` counts).
pub(super) fn within(field: &str, value: &str, max_chars: usize) -> Result<(), ApiError> {
    let chars = value.chars().count();
    if chars > max_chars {
        return Err(ApiError::invalid(
            field,
            format!("{chars} characters; the limit is {max_chars}"),
        ));
    }
    Ok(())
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

/// Who asks, until there are accounts: the person the `X-Actor` header names.
pub(crate) fn actor(headers: &HeaderMap) -> Result<Actor, ApiError> {
    let name = headers
        .get("x-actor")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.trim().is_empty())
        .unwrap_or("operator");
    within("X-Actor", name, MAX_LABEL_CHARS)?;
    Ok(Actor::Account {
        name: name.to_string(),
        role: crate::auth::Role::Operator,
    })
}
