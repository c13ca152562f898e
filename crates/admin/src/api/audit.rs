//! `GET /audit`: the admin plane's audit log, for Administrators.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use super::json::ApiQuery;
use super::page::{Page, PageParams};
use super::session::Caller;
use super::state::ApiState;
use crate::permissions::Action;
use crate::store::{AuditQuery, AuditRecord};

pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new().routes(routes!(list_audit))
}

/// Filters of the audit log; each given must match exactly.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    /// Login name of whoever acted (or tried to log in).
    pub actor: Option<String>,
    /// e.g. `login`, `user.create`, `customer.update`.
    pub action: Option<String>,
    /// e.g. `user:7`, `customer:12345`.
    pub target: Option<String>,
    /// Unix seconds, inclusive.
    pub since: Option<i64>,
    /// Unix seconds, exclusive.
    pub until: Option<i64>,
    pub offset: Option<i64>,
    pub limit: Option<i64>,
}

/// A page of audit records, newest first.
#[derive(Serialize, ToSchema)]
pub struct AuditPage {
    #[serde(flatten)]
    pub page: Page,
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<AuditRecord>,
}

/// The audit log: every state change and login, newest first.
#[utoipa::path(get, path = "/audit", tag = "audit", params(AuditParams),
    responses(
        (status = 200, body = AuditPage),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Only Administrators see the audit log", body = ErrorBody),
        (status = 422, description = "A bad parameter", body = ErrorBody),
    ))]
async fn list_audit(
    State(state): State<ApiState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<AuditParams>,
) -> Result<Json<AuditPage>, ApiError> {
    caller.require(Action::ViewAuditLog)?;
    let paging = PageParams {
        offset: params.offset,
        limit: params.limit,
    }
    .resolve()?;
    let query = AuditQuery {
        actor: params.actor,
        action: params.action,
        target: params.target,
        since: params.since,
        until: params.until,
        offset: paging.offset,
        limit: paging.limit,
    };
    let (total, items) = state.store.list_audit(&query).await?;
    Ok(Json(AuditPage {
        page: Page {
            total,
            offset: paging.offset,
            limit: paging.limit,
        },
        items,
    }))
}
