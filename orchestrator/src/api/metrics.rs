//! `/metrics`: the plant's production state for Prometheus (docs/metrics.md), outside
//! `/api/v1` like `/healthz`. Who may is `auth::guard`'s rule for this host's peers and
//! `Operations::metrics`'s for accounts.

use axum::extract::{Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use crate::auth::{Caller, peer_is_loopback};
use crate::ops::{Actor, Operations};
use crate::telemetry::Format;

#[utoipa::path(get, path = "/metrics",
    responses(
        (status = 200, description = "The metrics: OpenMetrics when `Accept` names `application/openmetrics-text`, else the Prometheus text format 0.0.4",
            content((String = "text/plain"), (String = "application/openmetrics-text"))),
        (status = 401, body = super::ErrorBody, description = "no account, from another host (or from this one with `[metrics] allow_localhost = false`)"),
        (status = 403, body = super::ErrorBody, description = "the account is a maker's"),
    ))]
pub(super) async fn metrics(
    State(ops): State<Operations>,
    request: Request,
) -> Result<Response, ApiError> {
    // The guard lets a request through without an account only from this host.
    let actor = match request.extensions().get::<Caller>() {
        Some(caller) => caller.actor(),
        None if peer_is_loopback(request.extensions()) => Actor::Loopback,
        None => return Err(crate::auth::unauthorized()),
    };
    let format = Format::from_accept(
        request
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok()),
    );
    let body = ops.metrics(&actor, format).await?;
    Ok(([(header::CONTENT_TYPE, format.content_type())], body).into_response())
}
