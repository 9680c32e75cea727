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

/// The body of an action that takes no fields (approve, pause, confirm, ...): nothing, or
/// `{}`. Anything else is refused, so a request never means more than it does.
pub struct NoFields;

impl<S: Send + Sync> FromRequest<S> for NoFields {
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let bytes = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(|e| ApiError::new(e.status(), "invalid_body", e.body_text()))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(NoFields);
        }
        let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "invalid_body",
                format!("request body, line {} column {}: {e}", e.line(), e.column()),
            )
        })?;
        match value.as_object() {
            Some(fields) if fields.is_empty() => Ok(NoFields),
            Some(fields) => Err(ApiError::invalid(
                fields.keys().next().map_or("", String::as_str),
                "this action takes no fields: send {} or nothing",
            )),
            None => Err(ApiError::invalid(
                "body",
                "this action takes no fields: send {} or nothing",
            )),
        }
    }
}

impl utoipa::ToSchema for NoFields {}

impl utoipa::PartialSchema for NoFields {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Schema, Type};
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .max_properties(Some(0))
            .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)))
            .description(Some(
                "This action takes no fields: `{}`, or no body at all.",
            ))
            .into()
    }
}
