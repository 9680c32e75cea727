//! The OpenAPI document (`/api/v1/openapi.json`), the contract every route keeps.

use axum::Json;
use utoipa::OpenApi;

use super::error::ErrorBody;
use super::events::*;
use super::extract::NoFields;
use super::jobs::*;
use super::machines::*;
use super::materials::*;
use super::metrics::*;
use super::orders::*;
use super::plan::*;
use super::prescreen::*;
use super::status::*;
use super::tasks::*;
use crate::machine_status::MachineStatus;
use crate::ops::Submitted;
use crate::plant::live_views::{
    Console, ConsoleLine, GanttRow, LiveMachineView, OrderEta, PlanView,
};
use crate::plant::prescreen::{
    AccountAvailable, MachineFit, MaterialCheck, OrderPrescreen, PrescreenReport, ProgramSummary,
    QuantityCheck, StepCheck, TimingCheck,
};
use crate::plant::tasks::{Inspection, ScrapEntry, TaskKind, TaskView};
use crate::plant::views::{JobView, MachineView, MaterialView, OrderView, ResumeView, UnitView};
use crate::plant::{JobState, OrderState};
use crate::store::events::EventRecord;
use crate::verify::VerifyReport;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "microfab",
        description = "Production orchestrator for city micro-factories"
    ),
    paths(
        healthz,
        metrics,
        list_orders,
        submit_order,
        get_order,
        approve_order,
        reject_order,
        cancel_order,
        order_units,
        order_prescreen,
        list_machines,
        get_machine,
        pause_machine,
        resume_machine,
        abort_machine,
        machine_maintenance,
        machine_maintained,
        machine_operator,
        machine_console,
        list_materials,
        restock_material,
        adjust_material,
        list_jobs,
        resolve_job,
        resume_job,
        confirm_job,
        load_job,
        unload_job,
        list_tasks,
        scrap_unit,
        current_plan,
        event_stream,
        event_log,
        verify
    ),
    modifiers(&Security, &FrameworkResponses),
    components(schemas(
        ErrorBody,
        NoFields,
        OrderState,
        JobState,
        OrderView,
        JobView,
        ResumeView,
        MachineView,
        LiveMachineView,
        MachineStatus,
        MaterialView,
        UnitView,
        OrderPrescreen,
        PrescreenReport,
        QuantityCheck,
        ProgramSummary,
        StepCheck,
        MachineFit,
        MaterialCheck,
        AccountAvailable,
        TimingCheck,
        EventRecord,
        SubmitRequest,
        Submitted,
        Reason,
        MaintenanceRequest,
        MaintainedRequest,
        RestockRequest,
        AdjustRequest,
        ResolveRequest,
        ResumeRequest,
        VerifyReport,
        OperatorRequest,
        Console,
        ConsoleLine,
        PlanView,
        GanttRow,
        OrderEta,
        TaskKind,
        TaskView,
        Inspection,
        ScrapEntry
    ))
)]
pub struct ApiDoc;

pub(super) async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// Who may call: every route takes an API token (`Authorization: Bearer mf_...`) or the
/// session cookie of a login (which also needs `X-CSRF-Token` on a change); `/healthz` is
/// open.
struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("mf_ followed by 64 hex digits")
                    .description(Some("An API token (`microfab user token NAME`)"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::auth::SESSION_COOKIE,
                "The session of a login (`POST /login`); a change also sends `X-CSRF-Token`",
            ))),
        );
        openapi.security = Some(vec![
            SecurityRequirement::new("token", Vec::<String>::new()),
            SecurityRequirement::new("session", Vec::<String>::new()),
        ]);
        if let Some(health) = openapi
            .paths
            .paths
            .get_mut("/healthz")
            .and_then(|item| item.get.as_mut())
        {
            // An empty requirement: no credentials needed.
            health.security = Some(vec![SecurityRequirement::default()]);
        }
        if let Some(metrics) = openapi
            .paths
            .paths
            .get_mut("/metrics")
            .and_then(|item| item.get.as_mut())
        {
            // None from this host (unless `[metrics] allow_localhost = false`); a token or a
            // session from elsewhere.
            metrics.security = Some(vec![
                SecurityRequirement::default(),
                SecurityRequirement::new("token", Vec::<String>::new()),
                SecurityRequirement::new("session", Vec::<String>::new()),
            ]);
        }
    }
}

/// The answers every route of a shape can give, added to each operation so no route can forget
/// one: a body that is not JSON, too large, of another media type or of the wrong shape; a path
/// or query that does not parse; the store failing. Route-specific answers (404, 409, a 422 of
/// the plant's rules) are in each handler's annotation.
struct FrameworkResponses;

impl utoipa::Modify for FrameworkResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::ParameterIn;
        use utoipa::openapi::{Content, Ref, ResponseBuilder};

        let error = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    Content::new(Some(Ref::from_schema_name("ErrorBody"))),
                )
                .build()
        };
        for item in openapi.paths.paths.values_mut() {
            for (operation, is_post) in [(item.get.as_mut(), false), (item.post.as_mut(), true)]
                .into_iter()
                .filter_map(|(operation, is_post)| operation.map(|o| (o, is_post)))
            {
                let mut add = |status: &str, description: &str| {
                    operation
                        .responses
                        .responses
                        .entry(status.to_string())
                        .or_insert_with(|| error(description).into());
                };
                let parameters = operation.parameters.clone().unwrap_or_default();
                if parameters
                    .iter()
                    .any(|p| matches!(p.parameter_in, ParameterIn::Path | ParameterIn::Query))
                {
                    add("400", "a path or query parameter does not parse");
                }
                if parameters
                    .iter()
                    .any(|p| matches!(p.parameter_in, ParameterIn::Path))
                {
                    add("404", "nothing has that id");
                }
                if is_post {
                    add(
                        "415",
                        "not `Content-Type: application/json`: every change is, with a body or without",
                    );
                }
                if operation.request_body.is_some() {
                    add("400", "the body is not valid JSON");
                    add("413", "the body is over its limit (the message names it)");
                    add(
                        "422",
                        "a field is missing, of the wrong type, unknown, or out of range",
                    );
                }
                if operation.security.is_none() {
                    add(
                        "401",
                        "no account: send `Authorization: Bearer <API token>` or a session cookie",
                    );
                    add(
                        "403",
                        "the account's role does not allow this; or, for a session cookie, the X-CSRF-Token header is missing, or the request comes from another site",
                    );
                }
                add("500", "the store failed; the change was not made");
            }
        }
    }
}
