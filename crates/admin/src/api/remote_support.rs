//! `GET /customers/{id}/systems/{label}/remote-support`: the remote-support
//! addresses of one system (manual chapters 23-27), filled in for this
//! deployment by [`crate::remote_support::addresses`], or the manual's
//! "Remote Access is Disabled" while the site's agent last reported Remote
//! Access off.
//!
//! Only Supervisor, Operator and Read-Only users see them (the manual), and
//! only for customers they see; any other customer answers 404 like one
//! that does not exist.

use axum::extract::{Path, State};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use super::scope::Scope;
use super::session::Caller;
use super::state::ApiState;
use crate::permissions::Action;
use crate::remote_support::{addresses, RemoteSupport, SystemRef};
use crate::store::Customer;

pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new().routes(routes!(remote_support))
}

/// The remote-support addresses of one system.
#[derive(Debug, Serialize, ToSchema)]
pub struct RemoteSupportBody {
    pub customer_id: String,
    /// The system's address label.
    pub system_label: String,
    pub system_name: String,
    /// The reseller or distributor whose proxy account username the
    /// addresses carry; `null` while neither has an account (the username
    /// then stays `<proxy-username>`).
    pub proxy_owner: Option<String>,
    /// `{"state": "disabled", "message": "Remote Access is Disabled"}`, or
    /// `{"state": "enabled", ...}` with every address as a ready string
    /// (`destination`, `linux_ssh`, `windows_ssh`, `linux_putty_host_name`,
    /// `linux_putty_proxy_command`, `rdp_standalone`, `web_control_panel`,
    /// `one_x_portal`, `weblm`, `co_located_https`, `web_manager`, ...).
    #[schema(value_type = Object)]
    pub remote_support: RemoteSupport,
}

/// The customer's owners, the one the caller works for first: a label
/// names it; otherwise the reseller before the distributor.
fn owners_in_preference(scope: &Scope, customer: &Customer) -> Vec<String> {
    let mut owners: Vec<String> = std::iter::once(customer.reseller.clone())
        .chain(customer.provider.clone())
        .collect();
    if let Scope::Only { labels, .. } = scope {
        owners.sort_by_key(|o| !labels.contains(o));
    }
    owners
}

/// The remote-support addresses of a system, for this deployment.
#[utoipa::path(get, path = "/customers/{id}/systems/{label}/remote-support", tag = "remote support",
    params(
        ("id" = String, Path, description = "Customer id (any case)"),
        ("label" = String, Path, description = "System address label (any case)"),
    ),
    responses(
        (status = 200, body = RemoteSupportBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Only Supervisor, Operator and Read-Only users see remote-support addresses", body = ErrorBody),
        (status = 404, description = "No such customer or system among those the caller sees", body = ErrorBody),
        (status = 422, description = "A bad parameter", body = ErrorBody),
    ))]
async fn remote_support(
    State(state): State<ApiState>,
    caller: Caller,
    Path((id, label)): Path<(String, String)>,
) -> Result<Json<RemoteSupportBody>, ApiError> {
    caller.require(Action::ViewRemoteSupportAddresses)?;
    let missing = || ApiError::not_found(format!("no system {label:?} of customer {id:?}"));
    let scope = Scope::of(&state.store, &caller).await?;
    let customer = match state.store.customer(&id).await? {
        Some(c) if scope.sees_customer(&c) => c,
        _ => return Err(missing()),
    };
    let system = state
        .store
        .system(&customer.id, Some(&label))
        .await?
        .ok_or_else(missing)?;
    let remote_access = state
        .store
        .site_status(system.id)
        .await?
        .is_some_and(|s| s.remote_access);

    let mut proxy = None;
    for owner in owners_in_preference(&scope, &customer) {
        if let Some(account) = state.store.proxy_account_of(&owner).await? {
            proxy = Some(account);
            break;
        }
    }
    let remote_support = addresses(
        &state.config.deployment,
        &SystemRef {
            customer_id: &customer.id,
            label: &system.label,
            is_primary: system.is_primary,
            proxy_username: proxy.as_ref().map(|a| a.username.as_str()),
        },
        remote_access,
    );
    Ok(Json(RemoteSupportBody {
        customer_id: customer.id,
        system_label: system.label,
        system_name: system.name,
        proxy_owner: proxy.map(|a| a.owner),
        remote_support,
    }))
}
