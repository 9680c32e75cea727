//! What a request carries, read with its limits: JSON bodies whose free text has a length
//! limit, path and query parameters whose rejections are our JSON errors. (Who asks is
//! [`crate::auth::Caller`].)

use axum::Json;
use axum::extract::{FromRequest, FromRequestParts};

use super::error::ApiError;
use super::limits::MAX_AMOUNT_UNITS;
use crate::amount::Amount;

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
