//! `/api/v1/machines`: the fleet, commands to a machine, maintenance, operator actions and the
//! serial console.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, OneOfBuilder, Schema, Type};

use super::error::{ApiError, ErrorBody};
use super::extract::{At, Body, Limited, NoFields, within};
use super::limits::{MAX_LABEL_CHARS, MAX_REASON_CHARS};
use crate::auth::Caller;
use crate::ops::Operations;
use crate::plant::live_views::{Console, LiveMachineView};
use crate::plant::views::MachineView;

#[utoipa::path(get, path = "/api/v1/machines", responses((status = 200, body = Vec<LiveMachineView>)))]
pub(super) async fn list_machines(
    State(ops): State<Operations>,
    caller: Caller,
) -> Result<Json<Vec<LiveMachineView>>, ApiError> {
    Ok(Json(ops.machines(&caller.actor()).await?))
}

#[utoipa::path(get, path = "/api/v1/machines/{id}", params(("id" = String, Path)), responses((status = 200, body = LiveMachineView), (status = 404, body = ErrorBody)))]
pub(super) async fn get_machine(
    State(ops): State<Operations>,
    caller: Caller,
    At(id): At<String>,
) -> Result<Json<LiveMachineView>, ApiError> {
    Ok(Json(ops.machine(&caller.actor(), &id).await?))
}

#[utoipa::path(post, path = "/api/v1/machines/{id}/pause", params(("id" = String, Path)), request_body(content = NoFields, description = "`{}`: this action takes no fields"), responses((status = 200, body = MachineView), (status = 409, body = ErrorBody)))]
pub(super) async fn pause_machine(
    State(ops): State<Operations>,
    caller: Caller,
    At(id): At<String>,
    _: NoFields,
) -> Result<Json<MachineView>, ApiError> {
    Ok(Json(ops.pause(&caller.actor(), &id).await?))
}

#[utoipa::path(post, path = "/api/v1/machines/{id}/resume", params(("id" = String, Path)), request_body(content = NoFields, description = "`{}`: this action takes no fields"), responses((status = 200, body = MachineView), (status = 409, body = ErrorBody)))]
pub(super) async fn resume_machine(
    State(ops): State<Operations>,
    caller: Caller,
    At(id): At<String>,
    _: NoFields,
) -> Result<Json<MachineView>, ApiError> {
    Ok(Json(ops.resume_machine(&caller.actor(), &id).await?))
}

#[utoipa::path(post, path = "/api/v1/machines/{id}/abort", params(("id" = String, Path)), request_body(content = NoFields, description = "`{}`: this action takes no fields"), responses((status = 200, body = MachineView), (status = 409, body = ErrorBody)))]
pub(super) async fn abort_machine(
    State(ops): State<Operations>,
    caller: Caller,
    At(id): At<String>,
    _: NoFields,
) -> Result<Json<MachineView>, ApiError> {
    Ok(Json(ops.abort(&caller.actor(), &id).await?))
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceRequest {
    pub on: bool,
    #[serde(default)]
    pub reason: String,
}

impl ToSchema for MaintenanceRequest {}

/// Taking a machine out needs a reason; bringing it back does not.
impl utoipa::PartialSchema for MaintenanceRequest {
    fn schema() -> RefOr<Schema> {
        let branch = |on: bool| {
            let object = ObjectBuilder::new()
                .schema_type(Type::Object)
                .property(
                    "on",
                    ObjectBuilder::new()
                        .schema_type(Type::Boolean)
                        .enum_values(Some([on])),
                )
                .property("reason", reason_schema(on))
                .required("on")
                .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)));
            if on {
                object.required("reason")
            } else {
                object
            }
        };
        OneOfBuilder::new()
            .description(Some(
                "Take a machine out of service (`on`, with the reason) or bring it back.",
            ))
            .item(branch(true))
            .item(branch(false))
            .into()
    }
}

/// A reason as the plant takes it: some text that is not only spaces, at most
/// [`MAX_REASON_CHARS`] long; `required` false lets it be empty.
fn reason_schema(required: bool) -> ObjectBuilder {
    let text = ObjectBuilder::new()
        .schema_type(Type::String)
        .max_length(Some(MAX_REASON_CHARS));
    if required {
        text.min_length(Some(1)).pattern(Some(r"\S"))
    } else {
        text
    }
}

impl Limited for MaintenanceRequest {
    fn check_limits(&self) -> Result<(), ApiError> {
        within("reason", &self.reason, MAX_REASON_CHARS)
    }
}

#[utoipa::path(post, path = "/api/v1/machines/{id}/maintenance", params(("id" = String, Path)), request_body = MaintenanceRequest,
    responses((status = 200, body = MachineView), (status = 409, body = ErrorBody)))]
pub(super) async fn machine_maintenance(
    State(ops): State<Operations>,
    caller: Caller,
    At(id): At<String>,
    Body(body): Body<MaintenanceRequest>,
) -> Result<Json<MachineView>, ApiError> {
    Ok(Json(
        ops.maintenance(&caller.actor(), &id, body.on, &body.reason)
            .await?,
    ))
}

/// `{ "task": ... }`: which of the machine's maintenance tasks (its config's names) was done.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MaintainedRequest {
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub task: String,
}

impl Limited for MaintainedRequest {
    fn check_limits(&self) -> Result<(), ApiError> {
        within("task", &self.task, MAX_LABEL_CHARS)
    }
}

#[utoipa::path(post, path = "/api/v1/machines/{id}/maintained", params(("id" = String, Path)), request_body = MaintainedRequest,
    responses((status = 200, body = MachineView), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn machine_maintained(
    State(ops): State<Operations>,
    caller: Caller,
    At(id): At<String>,
    Body(body): Body<MaintainedRequest>,
) -> Result<Json<MachineView>, ApiError> {
    Ok(Json(
        ops.maintained(&caller.actor(), &id, &body.task).await?,
    ))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OperatorRequest {
    /// `unlock` (clear an alarm lock), `home`, or `reset`. Never done by the scheduler.
    #[schema(value_type = String, schema_with = operator_action_schema)]
    pub action: microfab_drivers::OperatorAction,
}

fn operator_action_schema() -> Schema {
    use microfab_drivers::OperatorAction::{Home, Reset, Unlock};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(
            [Unlock, Home, Reset].map(|action| serde_json::to_value(action).unwrap_or_default()),
        ))
        .into()
}

impl Limited for OperatorRequest {
    fn check_limits(&self) -> Result<(), ApiError> {
        Ok(())
    }
}

#[utoipa::path(post, path = "/api/v1/machines/{id}/operator", params(("id" = String, Path)), request_body = OperatorRequest,
    responses((status = 200, body = MachineView, description = "the machine did it (an unlock or home: it left the alarm)"),
        (status = 409, body = ErrorBody, description = "the machine refused or did not do it (busy, locked until a reset, no such action); the message says what is needed"),
        (status = 503, body = ErrorBody, description = "the machine cannot be reached")))]
pub(super) async fn machine_operator(
    State(ops): State<Operations>,
    caller: Caller,
    At(id): At<String>,
    Body(body): Body<OperatorRequest>,
) -> Result<Json<MachineView>, ApiError> {
    Ok(Json(
        ops.operator_action(&caller.actor(), &id, body.action)
            .await?,
    ))
}

/// The machine's recent serial traffic (newest last) and link counters, for support.
#[utoipa::path(get, path = "/api/v1/machines/{id}/console", params(("id" = String, Path)),
    responses((status = 200, body = Console), (status = 404, body = ErrorBody, description = "no such machine, or its driver keeps no console")))]
pub(super) async fn machine_console(
    State(ops): State<Operations>,
    caller: Caller,
    At(id): At<String>,
) -> Result<Json<Console>, ApiError> {
    Ok(Json(ops.console(&caller.actor(), &id).await?))
}
