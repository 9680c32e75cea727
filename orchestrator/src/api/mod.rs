//! The HTTP API: REST under `/api/v1`, an SSE event stream, `/healthz`, `/metrics`, and the OpenAPI document
//! at `/api/v1/openapi.json`. Errors are JSON that say what and where; the error type never
//! leaks database internals; a rejected request changes nothing.
//!
//! One file per resource. Handlers read a request (`extract.rs`), call one operation
//! ([`crate::ops`]) or read a view, and answer; they never write to the plant or wake the
//! coordinator themselves.

mod doc;
mod error;
mod events;
mod extract;
mod jobs;
mod limits;
mod machines;
mod materials;
mod metrics;
mod orders;
mod plan;
mod prescreen;
mod status;
mod tasks;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request};
use axum::handler::Handler;
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use axum::{Extension, Router};
use tokio::sync::Semaphore;

pub use self::doc::ApiDoc;
pub use self::error::{ApiError, ErrorBody, ErrorDetail, body_too_large};
pub use self::events::{LogQuery, StreamQuery};
pub use self::extract::{At, Body, Limited, Params};
pub use self::jobs::{JobFilter, ResolveRequest, ResumeRequest};
pub use self::limits::{
    MAX_AMOUNT_UNITS, MAX_LABEL_CHARS, MAX_REASON_CHARS, MAX_REQUEST_BYTES, MAX_SUBMISSION_BYTES,
};
pub use self::machines::{MaintainedRequest, MaintenanceRequest, OperatorRequest};
pub use self::materials::{AdjustRequest, RestockRequest};
pub use self::orders::{OrderFilter, Reason, SubmitRequest};
pub use crate::ops::Submitted;
pub use crate::plant::live_views::{Console, ConsoleLine, GanttRow, OrderEta, PlanView};
pub use crate::plant::tasks::{Inspection, ScrapEntry, TaskKind, TaskView};
pub use crate::plant::{JobState, OrderState};
pub use crate::verify::VerifyReport;
pub use microfab_drivers::OperatorAction;

use crate::ops::Operations;

pub type AppState = Operations;

pub fn app(state: AppState) -> Router {
    use self::doc::openapi;
    use self::events::{event_log, event_stream};
    use self::jobs::{confirm_job, list_jobs, resolve_job, resume_job};
    use self::machines::{
        abort_machine, get_machine, list_machines, machine_console, machine_maintained,
        machine_maintenance, machine_operator, pause_machine, resume_machine,
    };
    use self::materials::{adjust_material, list_materials, restock_material};
    use self::metrics::metrics;
    use self::orders::{
        approve_order, cancel_order, get_order, list_orders, order_units, reject_order, scrap_unit,
        submit_order,
    };
    use self::plan::current_plan;
    use self::prescreen::order_prescreen;
    use self::status::{healthz, verify};
    use self::tasks::{list_tasks, load_job, unload_job};

    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/orders", change(submit_order).get(list_orders))
        .route("/api/v1/orders/{id}", get(get_order))
        .route("/api/v1/orders/{id}/approve", change(approve_order))
        .route("/api/v1/orders/{id}/reject", change(reject_order))
        .route("/api/v1/orders/{id}/cancel", change(cancel_order))
        .route("/api/v1/orders/{id}/units", get(order_units))
        .route("/api/v1/orders/{id}/prescreen", get(order_prescreen))
        .route("/api/v1/machines", get(list_machines))
        .route("/api/v1/machines/{id}", get(get_machine))
        .route("/api/v1/machines/{id}/pause", change(pause_machine))
        .route("/api/v1/machines/{id}/resume", change(resume_machine))
        .route("/api/v1/machines/{id}/abort", change(abort_machine))
        .route(
            "/api/v1/machines/{id}/maintenance",
            change(machine_maintenance),
        )
        .route(
            "/api/v1/machines/{id}/maintained",
            change(machine_maintained),
        )
        .route("/api/v1/machines/{id}/operator", change(machine_operator))
        .route("/api/v1/machines/{id}/console", get(machine_console))
        .route("/api/v1/materials", get(list_materials))
        .route("/api/v1/materials/{id}/restock", change(restock_material))
        .route("/api/v1/materials/{id}/adjust", change(adjust_material))
        .route("/api/v1/jobs", get(list_jobs))
        .route("/api/v1/jobs/{id}/resolve", change(resolve_job))
        .route("/api/v1/jobs/{id}/resume", change(resume_job))
        .route("/api/v1/jobs/{id}/confirm", change(confirm_job))
        .route("/api/v1/jobs/{id}/load", change(load_job))
        .route("/api/v1/jobs/{id}/unload", change(unload_job))
        .route("/api/v1/tasks", get(list_tasks))
        .route("/api/v1/units/{id}/scrap", change(scrap_unit))
        .route("/api/v1/plan", get(current_plan))
        .route("/api/v1/events", get(event_stream))
        .route("/api/v1/events/log", get(event_log))
        .route("/api/v1/verify", get(verify))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
        })
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .layer(Extension(Arc::new(Semaphore::new(
            limits::SUBMISSIONS_AT_ONCE,
        ))))
        .with_state(state)
}

/// A change: `POST` to `handler`, which takes JSON only ([`json_only`]; only on the POST
/// itself, so that another method is still a 405).
fn change<H, T>(handler: H) -> MethodRouter<AppState>
where
    H: Handler<T, AppState>,
    T: 'static,
{
    post(handler).route_layer(axum::middleware::from_fn(json_only))
}

/// A change to the API (`POST /api/v1/...`) comes as `application/json`, with a body or
/// without: what a cross-site form can send (`text/plain`, form encodings) never reaches a
/// handler. The one exception is a spec sent as itself to `POST /api/v1/orders`
/// (`application/toml`), which no form can send either.
async fn json_only(request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if request.method() == Method::POST && path.starts_with("/api/v1/") {
        let media_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase());
        let submission = path == "/api/v1/orders";
        let accepted = match media_type.as_deref() {
            Some("application/json") => true,
            Some("application/toml") => submission,
            _ => false,
        };
        if !accepted {
            let message = if submission {
                "send the spec as application/toml, or as application/json with its programs"
            } else {
                "send `Content-Type: application/json` (with a body or without)"
            };
            return ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                message,
            )
            .into_response();
        }
    }
    next.run(request).await
}
