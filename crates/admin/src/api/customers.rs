//! Customers (manual chapters 3 and 9): the customer list with live
//! connectivity, a customer's details, adding, editing and deleting
//! customers (Administrators), and assigning COM users to a customer.
//!
//! Every endpoint applies the caller's visibility: a customer the caller
//! does not see answers 404 like one that does not exist. The list is read
//! whole for the caller's visibility and then searched, filtered, sorted
//! and paged in memory (`customer_query`): connectivity is derived from the
//! gateway's live view, which the database cannot filter on.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use super::json::{ApiJson, ApiQuery};
use super::scope::Scope;
use super::session::Caller;
use super::state::ApiState;
use crate::customer_query::ListQuery;
use crate::permissions::Action;
use crate::store::{
    AuditEvent, CustomerChanges, CustomerDetails, CustomerListRow, CustomerSettings, NewCustomer,
    ServicePassword, SiteAction, SiteStatus, System, Visibility,
};
use crate::{Role, User};
use tunnel_proto::report::ActionState;

pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list_customers, add_customer))
        .routes(routes!(customer, edit_customer, delete_customer))
        .routes(routes!(assign_user, unassign_user))
}

/// A page of the customer list.
#[derive(Serialize, ToSchema)]
pub struct CustomerPage {
    /// Customers matching the filters, in all pages.
    pub total: usize,
    pub offset: usize,
    pub limit: usize,
    pub items: Vec<CustomerListItem>,
}

/// One customer of the list.
#[derive(Serialize, ToSchema)]
pub struct CustomerListItem {
    /// The customer with its settings (never the service password), its
    /// systems with their stored status and connectivity, alarm counts,
    /// and the customer's connectivity (its primary system's).
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub row: CustomerListRow,
    pub status: StatusIcons,
}

/// The manual's status icons of a customer ("Status Icons").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct StatusIcons {
    /// Not connected and authorised, or alarms not yet cleared ("does not
    /// necessarily indicate a problem").
    pub needs_attention: bool,
    /// A system runs a version below `[admin] available_version`.
    pub new_version_available: bool,
    /// The customer's action (an upgrade, a backup), as its sites report
    /// it: `in_progress` while one of its systems performs one, else how
    /// the last one that ended went, `completed` or `failed`; absent when
    /// none was reported.
    #[schema(value_type = Option<String>)]
    pub action: Option<ActionState>,
}

/// The icons of `row`, given the newest version on offer.
pub fn status_icons(row: &CustomerListRow, available_version: Option<&str>) -> StatusIcons {
    let new_version_available = available_version.is_some_and(|offered| {
        row.systems.iter().any(|s| {
            !s.version.is_empty() && crate::customer_query::natural_cmp(&s.version, offered).is_lt()
        })
    });
    StatusIcons {
        needs_attention: row.connectivity.colour != crate::connectivity::Colour::Green
            || row.alarms > 0,
        new_version_available,
        action: row.action(),
    }
}

/// The customers the caller sees, as the list shows them.
pub(crate) async fn visible_rows(
    state: &ApiState,
    caller: &Caller,
) -> Result<Vec<CustomerListRow>, ApiError> {
    let live = state.live.clone();
    let connected = move |s: &SiteStatus| live.is_connected(&s.customer_id, &s.label);
    Ok(state
        .store
        .customer_list(&Visibility::of(&caller.user), &connected, state.now())
        .await?)
}

/// The customer list: search (`search`, all text fields of the customer
/// and its systems), filters (`reseller`, `provider`, `tag`, `version`,
/// `state`, `colour`, `action`), one sort column (`sort`, `order=asc|desc`) and
/// server-side pages (`offset`, `limit`).
#[utoipa::path(get, path = "/customers", tag = "customers",
    params(
        ("search" = Option<String>, Query, description = "Case-insensitive text in any field of the customer or its systems"),
        ("reseller" = Option<String>, Query, description = "Exact reseller"),
        ("provider" = Option<String>, Query, description = "Exact provider (distributor)"),
        ("tag" = Option<String>, Query, description = "Customers with this tag"),
        ("version" = Option<String>, Query, description = "Customers with a system of this version"),
        ("state" = Option<String>, Query, description = "Connectivity state, e.g. connected, waiting, auth_failed, offline"),
        ("colour" = Option<String>, Query, description = "Connectivity colour: green, amber or red"),
        ("action" = Option<String>, Query, description = "Action icon: in_progress, completed or failed"),
        ("sort" = Option<String>, Query, description = "Column to sort by (the error for a wrong one lists them)"),
        ("order" = Option<String>, Query, description = "asc (default) or desc"),
        ("offset" = Option<usize>, Query, description = "Items to skip"),
        ("limit" = Option<usize>, Query, description = "Page size, 1-500 (default 50)"),
    ),
    responses(
        (status = 200, body = CustomerPage),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 422, description = "A parameter that cannot be used (named in `field`)", body = ErrorBody),
    ))]
async fn list_customers(
    State(state): State<ApiState>,
    caller: Caller,
    ApiQuery(pairs): ApiQuery<Vec<(String, String)>>,
) -> Result<Json<CustomerPage>, ApiError> {
    caller.require(Action::ViewCustomerList)?;
    let query = ListQuery::from_pairs(pairs).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_query",
            e.to_string(),
        )
        .with_field(e.parameter.clone())
    })?;
    let rows = visible_rows(&state, &caller).await?;
    let page = query.apply(&rows);
    let offered = state.config.available_version.as_deref();
    Ok(Json(CustomerPage {
        total: page.total,
        offset: page.offset,
        limit: page.limit,
        items: page
            .items
            .into_iter()
            .map(|row| CustomerListItem {
                status: status_icons(&row, offered),
                row,
            })
            .collect(),
    }))
}

/// One customer as its detail page shows it.
#[derive(Serialize, ToSchema)]
pub struct CustomerView {
    #[schema(value_type = Object)]
    pub customer: CustomerDetails,
    #[schema(value_type = Vec<Object>)]
    pub systems: Vec<System>,
    /// COM users assigned by hand (the "Assigned Operators").
    pub assigned_users: Vec<AssignedUser>,
    /// The actions its systems reported (the latest runs of each system),
    /// last reported first.
    #[schema(value_type = Vec<Object>)]
    pub actions: Vec<SiteAction>,
}

#[derive(Serialize, ToSchema)]
pub struct AssignedUser {
    pub id: i64,
    pub username: String,
    pub role: Role,
}

/// The customer `id` if the caller sees it; else 404.
pub(crate) async fn visible_customer(
    state: &ApiState,
    caller: &Caller,
    id: &str,
) -> Result<CustomerDetails, ApiError> {
    let scope = Scope::of(&state.store, caller).await?;
    match state.store.customer_details(id).await? {
        Some(c) if scope.sees_customer(&c.customer) => Ok(c),
        _ => Err(ApiError::not_found(format!("no customer {id}"))),
    }
}

async fn view(state: &ApiState, customer: CustomerDetails) -> Result<CustomerView, ApiError> {
    let id = customer.customer.id.clone();
    let systems = state.store.list_systems(&id).await?;
    let mut assigned_users = Vec::new();
    for user_id in state.store.assigned_user_ids(&id).await? {
        if let Some(u) = state.store.user_by_id(user_id).await? {
            assigned_users.push(AssignedUser {
                id: u.id,
                username: u.username,
                role: u.role,
            });
        }
    }
    let actions = state.store.actions_of_customer(&id).await?;
    Ok(CustomerView {
        customer,
        systems,
        assigned_users,
        actions,
    })
}

fn audit_view(customer: &CustomerDetails) -> Option<serde_json::Value> {
    serde_json::to_value(customer).ok()
}

/// A customer's details, systems and assigned users.
#[utoipa::path(get, path = "/customers/{id}", tag = "customers",
    params(("id" = String, Path, description = "Customer id")),
    responses(
        (status = 200, body = CustomerView),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, description = "No such customer, or not one the caller sees", body = ErrorBody),
    ))]
async fn customer(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<CustomerView>, ApiError> {
    caller.require(Action::ViewCustomerDetails)?;
    let customer = visible_customer(&state, &caller, &id).await?;
    Ok(Json(view(&state, customer).await?))
}

/// A new customer (the manual's "Customer Account Settings").
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerInput {
    /// Letters and digits: the first part of maintenance addresses.
    pub id: String,
    pub name: String,
    pub reseller: String,
    #[serde(default)]
    pub provider: Option<String>,
    #[serde(default)]
    pub service_user: String,
    /// Stored encrypted (the gateway presents it); never shown again.
    #[serde(default)]
    pub service_password: Option<String>,
    /// At most 5.
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub phone: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub address: String,
    #[serde(default)]
    pub notes: String,
}

/// Add a customer (Administrators).
#[utoipa::path(post, path = "/customers", tag = "customers", request_body = CustomerInput,
    responses(
        (status = 201, body = CustomerView),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 409, description = "The id is taken", body = ErrorBody),
        (status = 422, description = "A field breaks a rule (named in `field`)", body = ErrorBody),
    ))]
async fn add_customer(
    State(state): State<ApiState>,
    caller: Caller,
    ApiJson(input): ApiJson<CustomerInput>,
) -> Result<(StatusCode, Json<CustomerView>), ApiError> {
    caller.require(Action::AddDeleteCustomers)?;
    let added = state
        .store
        .add_customer(NewCustomer {
            id: input.id,
            name: input.name,
            reseller: input.reseller,
            provider: input.provider,
            settings: CustomerSettings {
                service_user: input.service_user,
                tags: input.tags,
                phone: input.phone,
                email: input.email,
                address: input.address,
                notes: input.notes,
            },
            service_password: input.service_password.map(ServicePassword::new),
        })
        .await?;
    let details = state
        .store
        .customer_details(&added.id)
        .await?
        .ok_or_else(ApiError::internal)?;
    state
        .audit(
            &caller.actor(),
            AuditEvent {
                action: "customer.create",
                target: format!("customer:{}", added.id),
                before: None,
                after: audit_view(&details),
                outcome: "ok".into(),
            },
        )
        .await;
    Ok((StatusCode::CREATED, Json(view(&state, details).await?)))
}

/// Changes to a customer: each field given replaces that setting.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct CustomerPatch {
    pub name: Option<String>,
    pub reseller: Option<String>,
    /// `null` removes the provider.
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub provider: Option<Option<String>>,
    pub service_user: Option<String>,
    /// `null` removes the stored service password.
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub service_password: Option<Option<String>>,
    pub tags: Option<Vec<String>>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub address: Option<String>,
    pub notes: Option<String>,
}

/// Tells a field set to `null` (`Some(None)`) from one left out (`None`).
mod double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        Option::<T>::deserialize(d).map(Some)
    }
}

/// Edit a customer (Administrators).
#[utoipa::path(patch, path = "/customers/{id}", tag = "customers", request_body = CustomerPatch,
    params(("id" = String, Path, description = "Customer id")),
    responses(
        (status = 200, body = CustomerView),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, description = "A field breaks a rule (named in `field`)", body = ErrorBody),
    ))]
async fn edit_customer(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<CustomerPatch>,
) -> Result<Json<CustomerView>, ApiError> {
    caller.require(Action::EditCustomers)?;
    let before = visible_customer(&state, &caller, &id).await?;
    let id = before.customer.id.clone();
    state
        .store
        .update_customer(
            &id,
            CustomerChanges {
                name: patch.name,
                reseller: patch.reseller,
                provider: patch.provider,
                service_user: patch.service_user,
                service_password: patch.service_password.map(|p| p.map(ServicePassword::new)),
                tags: patch.tags,
                phone: patch.phone,
                email: patch.email,
                address: patch.address,
                notes: patch.notes,
            },
        )
        .await?;
    let after = state
        .store
        .customer_details(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no customer {id}")))?;
    state
        .audit(
            &caller.actor(),
            AuditEvent {
                action: "customer.update",
                target: format!("customer:{id}"),
                before: audit_view(&before),
                after: audit_view(&after),
                outcome: "ok".into(),
            },
        )
        .await;
    Ok(Json(view(&state, after).await?))
}

/// Delete a customer with its systems, alarms and assignments
/// (Administrators).
#[utoipa::path(delete, path = "/customers/{id}", tag = "customers",
    params(("id" = String, Path, description = "Customer id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
async fn delete_customer(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Action::AddDeleteCustomers)?;
    let before = visible_customer(&state, &caller, &id).await?;
    state.store.delete_customer(&before.customer.id).await?;
    state
        .audit(
            &caller.actor(),
            AuditEvent {
                action: "customer.delete",
                target: format!("customer:{}", before.customer.id),
                before: audit_view(&before),
                after: None,
                outcome: "ok".into(),
            },
        )
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Checks that the caller may assign `user_id` to customer `id`, and
/// returns both. Administrators assign any user whose role sees assigned
/// customers only; Supervisors only Operators they created, and only to
/// customers assigned to themselves by hand (manual: "assign them to its
/// own customers").
async fn assignment_parties(
    state: &ApiState,
    caller: &Caller,
    id: &str,
    user_id: i64,
) -> Result<(CustomerDetails, User), ApiError> {
    caller.require(Action::AssignComUsers)?;
    let customer = visible_customer(state, caller, id).await?;
    let user = state
        .store
        .user_by_id(user_id)
        .await?
        .filter(|u| super::users::may_manage(&caller.user, u))
        .ok_or_else(|| ApiError::not_found(format!("no user {user_id}")))?;
    if crate::permissions::sees_all_customers(user.role) {
        return Err(ApiError::invalid(
            "user_id",
            format!(
                "{} users see every customer; there is nothing to assign",
                user.role
            ),
        ));
    }
    if caller.role() == Role::Supervisor {
        let own = state.store.assigned_customer_ids(caller.user.id).await?;
        if !own.contains(&customer.customer.id) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "customer_not_assigned",
                "a Supervisor assigns users only to customers assigned to itself",
            ));
        }
    }
    Ok((customer, user))
}

async fn audit_assignment(
    state: &ApiState,
    caller: &Caller,
    action: &'static str,
    customer: &str,
    user: &User,
) {
    state
        .audit(
            &caller.actor(),
            AuditEvent {
                action,
                target: format!("customer:{customer}"),
                before: None,
                after: Some(serde_json::json!({"user_id": user.id, "username": user.username})),
                outcome: "ok".into(),
            },
        )
        .await;
}

/// Assign a COM user to the customer by hand.
#[utoipa::path(put, path = "/customers/{id}/assignments/{user_id}", tag = "customers",
    params(
        ("id" = String, Path, description = "Customer id"),
        ("user_id" = i64, Path, description = "COM user id"),
    ),
    responses(
        (status = 204, description = "Assigned (or already was)"),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, description = "Customer or user unknown or not the caller's", body = ErrorBody),
        (status = 422, description = "The user's role sees every customer", body = ErrorBody),
    ))]
async fn assign_user(
    State(state): State<ApiState>,
    caller: Caller,
    Path((id, user_id)): Path<(String, i64)>,
) -> Result<StatusCode, ApiError> {
    let (customer, user) = assignment_parties(&state, &caller, &id, user_id).await?;
    state
        .store
        .assign_customer(user.id, &customer.customer.id)
        .await?;
    audit_assignment(
        &state,
        &caller,
        "customer.assign",
        &customer.customer.id,
        &user,
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Remove a COM user's manual assignment to the customer.
#[utoipa::path(delete, path = "/customers/{id}/assignments/{user_id}", tag = "customers",
    params(
        ("id" = String, Path, description = "Customer id"),
        ("user_id" = i64, Path, description = "COM user id"),
    ),
    responses(
        (status = 204, description = "Unassigned (or was not assigned)"),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ))]
async fn unassign_user(
    State(state): State<ApiState>,
    caller: Caller,
    Path((id, user_id)): Path<(String, i64)>,
) -> Result<StatusCode, ApiError> {
    let (customer, user) = assignment_parties(&state, &caller, &id, user_id).await?;
    state
        .store
        .unassign_customer(user.id, &customer.customer.id)
        .await?;
    audit_assignment(
        &state,
        &caller,
        "customer.unassign",
        &customer.customer.id,
        &user,
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}
