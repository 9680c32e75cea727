//! TEMPORARY stand-in for `crate::auth::Caller` until the AUTH branch lands: the same shape
//! and the same methods, read from the `X-Actor` header as the API does today (an operator).
//! Delete this file and import `crate::auth::Caller` when merging AUTH.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::auth::Role;
use crate::ops::Actor;

#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    pub role: Role,
    pub csrf: Option<String>,
}

impl Caller {
    pub fn actor(&self) -> Actor {
        Actor::Account {
            name: self.name.clone(),
            role: self.role,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = crate::api::ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Caller, Self::Rejection> {
        let actor = crate::api::actor(&parts.headers)?;
        Ok(Caller {
            name: actor.name().to_string(),
            role: Role::Operator,
            csrf: None,
        })
    }
}
