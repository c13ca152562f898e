//! The systems of a customer (manual chapter 9): Administrators add them
//! (the agent secret is shown once, as `comgate admin system add` prints
//! it), change their kind, profile and version, and issue a new agent
//! secret. Reading them is part of the customer's details.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::customers::visible_customer;
use super::error::{ApiError, ErrorBody};
use super::json::ApiJson;
use super::session::Caller;
use super::state::ApiState;
use crate::permissions::Action;
use crate::store::{AuditEvent, NewSystem, System, SystemChanges, SystemKind};

pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(add_system))
        .routes(routes!(edit_system))
        .routes(routes!(new_secret))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SystemInput {
    /// Its DNS-label form is the system part of maintenance addresses.
    pub name: String,
    /// primary, secondary or expansion (default secondary).
    #[serde(default)]
    pub kind: Option<SystemKind>,
    #[serde(default)]
    pub profile: String,
    #[serde(default)]
    pub version: String,
}

/// A new system, or a new secret, with the agent secret to configure.
#[derive(Serialize, ToSchema)]
pub struct SystemWithSecret {
    #[schema(value_type = Object)]
    pub system: System,
    /// Shown this once; only its hash is stored.
    pub secret: String,
}

fn audit_view(system: &System) -> Option<serde_json::Value> {
    serde_json::to_value(system).ok()
}

/// The system `label` of the visible customer `id`; else 404.
async fn visible_system(
    state: &ApiState,
    caller: &Caller,
    id: &str,
    label: &str,
) -> Result<System, ApiError> {
    let customer = visible_customer(state, caller, id).await?;
    state
        .store
        .system(&customer.customer.id, Some(label))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no system {label} of customer {id}")))
}

/// Add a system to a customer (Administrators).
#[utoipa::path(post, path = "/customers/{id}/systems", tag = "customers", request_body = SystemInput,
    params(("id" = String, Path, description = "Customer id")),
    responses(
        (status = 201, body = SystemWithSecret),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The address label is taken, or a primary exists", body = ErrorBody),
        (status = 422, body = ErrorBody),
    ))]
async fn add_system(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<SystemInput>,
) -> Result<(StatusCode, Json<SystemWithSecret>), ApiError> {
    caller.require(Action::EditCustomers)?;
    let customer = visible_customer(&state, &caller, &id).await?;
    let (system, secret) = state
        .store
        .add_system_with(
            &customer.customer.id,
            NewSystem {
                name: input.name,
                kind: input.kind.unwrap_or(SystemKind::Secondary),
                profile: input.profile,
                version: input.version,
            },
        )
        .await?;
    state
        .audit(
            &caller.actor(),
            AuditEvent {
                action: "system.create",
                target: format!("system:{}", system.id),
                before: None,
                after: audit_view(&system),
                outcome: "ok".into(),
            },
        )
        .await;
    Ok((
        StatusCode::CREATED,
        Json(SystemWithSecret { system, secret }),
    ))
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct SystemPatch {
    pub kind: Option<SystemKind>,
    pub profile: Option<String>,
    pub version: Option<String>,
}

/// Change a system's kind, profile or version (Administrators).
#[utoipa::path(patch, path = "/customers/{id}/systems/{label}", tag = "customers", request_body = SystemPatch,
    params(
        ("id" = String, Path, description = "Customer id"),
        ("label" = String, Path, description = "System address label"),
    ),
    responses(
        (status = 200, body = Object),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The customer already has a primary system", body = ErrorBody),
        (status = 422, body = ErrorBody),
    ))]
async fn edit_system(
    State(state): State<ApiState>,
    caller: Caller,
    Path((id, label)): Path<(String, String)>,
    ApiJson(patch): ApiJson<SystemPatch>,
) -> Result<Json<System>, ApiError> {
    caller.require(Action::EditCustomers)?;
    let before = visible_system(&state, &caller, &id, &label).await?;
    let after = state
        .store
        .update_system(
            before.id,
            SystemChanges {
                kind: patch.kind,
                profile: patch.profile,
                version: patch.version,
            },
        )
        .await?;
    state
        .audit(
            &caller.actor(),
            AuditEvent {
                action: "system.update",
                target: format!("system:{}", before.id),
                before: audit_view(&before),
                after: audit_view(&after),
                outcome: "ok".into(),
            },
        )
        .await;
    Ok(Json(after))
}

/// Issue a new agent secret; the old one stops working at the agent's
/// next connection (Administrators).
#[utoipa::path(post, path = "/customers/{id}/systems/{label}/secret", tag = "customers",
    params(
        ("id" = String, Path, description = "Customer id"),
        ("label" = String, Path, description = "System address label"),
    ),
    responses(
        (status = 200, body = SystemWithSecret),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
async fn new_secret(
    State(state): State<ApiState>,
    caller: Caller,
    Path((id, label)): Path<(String, String)>,
) -> Result<Json<SystemWithSecret>, ApiError> {
    caller.require(Action::EditCustomers)?;
    let system = visible_system(&state, &caller, &id, &label).await?;
    let secret = state
        .store
        .rotate_system_secret(&system.customer_id, &system.label)
        .await?;
    state
        .audit(
            &caller.actor(),
            AuditEvent {
                action: "system.secret",
                target: format!("system:{}", system.id),
                before: None,
                after: None,
                outcome: "ok".into(),
            },
        )
        .await;
    Ok(Json(SystemWithSecret { system, secret }))
}
