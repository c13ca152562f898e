//! COM users (manual chapter 13, "Managing the COM Users"; issue 5 item 2):
//! list, add, view, edit and delete users, reset a user's password, and
//! every user's own profile (chapter 14).
//!
//! Who manages whom: Administrators every user; Supervisors the Operators
//! they created, and only with labels of their own ("For those users, you
//! can only assign labels ... which are also assigned to your user
//! account"); nobody else anyone (`CreateComUsers` in the matrix). A user
//! the caller may not see answers 404 exactly as one that does not exist,
//! so that a Supervisor cannot probe for other users. Everybody, read-only
//! roles included, may edit the contact details of its own profile.
//!
//! Disabling a user, changing its role or resetting its password ends its
//! sessions at once: whatever it was allowed before stops with them. Every
//! change is written to the audit log with the user before and after (the
//! JSON of [`User`], which never holds the password hash).
//!
//! Assigning Operators to customers by hand is the customers' endpoints'
//! business (a table of its own); labels, the automatic assignment, are here.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use super::json::{ApiJson, ApiQuery};
use super::page::{Page, PageParams, Paging};
use super::session::Caller;
use super::state::ApiState;
use crate::permissions::{self, Action};
use crate::store::AuditEvent;
use crate::{NewUser, Role, StoreError, User, UserChanges, UserSettings};

pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list_users, create_user))
        .routes(routes!(get_user, update_user, delete_user))
        .routes(routes!(reset_password))
        .routes(routes!(update_profile))
}

// ---------------------------------------------------------------------------
// Who may see and manage whom

/// Whether `caller` may see `target`: Administrators everybody, Supervisors
/// themselves and the Operators they created.
fn may_see(caller: &User, target: &User) -> bool {
    match caller.role {
        Role::Administrator => true,
        Role::Supervisor => target.id == caller.id || created_by(caller, target),
        _ => false,
    }
}

/// Whether `caller` may change or delete `target`: Administrators anybody,
/// Supervisors the Operators they created (not themselves: a Supervisor
/// giving itself labels would widen what it sees).
pub(crate) fn may_manage(caller: &User, target: &User) -> bool {
    match caller.role {
        Role::Administrator => true,
        Role::Supervisor => created_by(caller, target),
        _ => false,
    }
}

fn created_by(caller: &User, target: &User) -> bool {
    target.created_by == Some(caller.id) && target.role == Role::Operator
}

/// The user `id` as the caller may see it (404 otherwise), and, when
/// `manage`, may change it (404 for others, 403 `own_account` for itself).
async fn target(
    state: &ApiState,
    caller: &Caller,
    id: i64,
    manage: bool,
) -> Result<User, ApiError> {
    let unknown = || ApiError::not_found(format!("unknown user id {id}"));
    let user = state.store.user_by_id(id).await?.ok_or_else(unknown)?;
    if !may_see(&caller.user, &user) {
        return Err(unknown());
    }
    if manage && !may_manage(&caller.user, &user) {
        return Err(if user.id == caller.user.id {
            own_account()
        } else {
            unknown()
        });
    }
    Ok(user)
}

fn own_account() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "own_account",
        "change your own account with PATCH /session/profile and PUT /session/password",
    )
}

/// A role the caller may not give a user: 403 `role_not_allowed`.
fn check_role(caller: &User, role: Role) -> Result<(), ApiError> {
    if permissions::may_manage_user(caller.role, role) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "role_not_allowed",
        format!("a {} may not create or manage {role} users", caller.role),
    )
    .with_field("role"))
}

/// Labels assign customers, so they need `AssignComUsers`, and a
/// Supervisor may only hand on labels of its own: 403 `label_not_allowed`
/// naming the first other one.
fn check_labels(caller: &Caller, labels: &[String]) -> Result<(), ApiError> {
    if labels.is_empty() {
        return Ok(());
    }
    caller.require(Action::AssignComUsers)?;
    if caller.role() == Role::Administrator {
        return Ok(());
    }
    let own = &caller.user.settings.labels;
    match labels
        .iter()
        .map(|l| l.trim())
        .find(|l| !own.iter().any(|o| o == l))
    {
        None => Ok(()),
        Some(label) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "label_not_allowed",
            format!("label {label:?} is not one of your own labels"),
        )
        .with_field("labels")),
    }
}

/// A user as the audit log keeps it (no password hash: `User` skips it).
fn view(user: &User) -> Option<serde_json::Value> {
    serde_json::to_value(user).ok()
}

fn event(action: &'static str, id: i64, before: Option<&User>, after: Option<&User>) -> AuditEvent {
    AuditEvent {
        action,
        target: format!("user:{id}"),
        before: before.and_then(view),
        after: after.and_then(view),
        outcome: "ok".into(),
    }
}

fn expired_enable() -> ApiError {
    ApiError::invalid(
        "expires_at",
        "expires_at: the account would be enabled with an expiry date that has passed, and disabled again at once; give a future expires_at (or null for none)",
    )
}

// ---------------------------------------------------------------------------
// GET /users

/// The list's filters, sort and page.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UserListParams {
    /// Case-insensitive substring of any of: login name, first and last
    /// name, phone, mobile, email, a label, the role.
    pub search: Option<String>,
    /// Only users of this role: `administrator`, `supervisor`, `operator`,
    /// `support` or `read-only`.
    pub role: Option<String>,
    /// `username` (default), `role`, `last_name` or `created_at`. Text
    /// columns compare case-insensitively; ties go by creation for
    /// `created_at`, else by login name.
    pub sort: Option<String>,
    /// `asc` (default) or `desc`, which reverses the whole order.
    pub order: Option<String>,
    pub offset: Option<i64>,
    pub limit: Option<i64>,
}

/// A page of users.
#[derive(Serialize, ToSchema)]
pub struct UserPage {
    #[serde(flatten)]
    pub page: Page,
    pub items: Vec<User>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SortColumn {
    Username,
    Role,
    LastName,
    CreatedAt,
}

/// The checked list query.
#[derive(Debug)]
struct ListQuery {
    search: Option<String>,
    role: Option<Role>,
    sort: SortColumn,
    descending: bool,
    paging: Paging,
}

impl UserListParams {
    fn resolve(self) -> Result<ListQuery, ApiError> {
        let role = self
            .role
            .map(|r| r.parse::<Role>())
            .transpose()
            .map_err(|e| ApiError::invalid("role", e.to_string()))?;
        let sort = match self.sort.as_deref().unwrap_or("username") {
            "username" => SortColumn::Username,
            "role" => SortColumn::Role,
            "last_name" => SortColumn::LastName,
            "created_at" => SortColumn::CreatedAt,
            _ => {
                return Err(ApiError::invalid(
                    "sort",
                    "sort: must be username, role, last_name or created_at",
                ))
            }
        };
        let descending = match self.order.as_deref().unwrap_or("asc") {
            "asc" => false,
            "desc" => true,
            _ => return Err(ApiError::invalid("order", "order: must be asc or desc")),
        };
        let paging = PageParams {
            offset: self.offset,
            limit: self.limit,
        }
        .resolve()?;
        let search = self
            .search
            .map(|s| s.trim().to_lowercase())
            .filter(|s| !s.is_empty());
        Ok(ListQuery {
            search,
            role,
            sort,
            descending,
            paging,
        })
    }
}

/// Whether `user` matches the lower-cased `needle` in any listed field.
fn matches(user: &User, needle: &str) -> bool {
    let s = &user.settings;
    [
        user.username.as_str(),
        s.first_name.as_str(),
        s.last_name.as_str(),
        s.phone.as_str(),
        s.mobile.as_str(),
        s.email.as_str(),
        user.role.as_str(),
    ]
    .into_iter()
    .chain(s.labels.iter().map(String::as_str))
    .any(|field| field.to_lowercase().contains(needle))
}

/// Filters, sorts and pages `users` (all users, as the store lists them)
/// for `caller`. Returns the total matching and the page.
fn select(caller: &User, users: Vec<User>, query: &ListQuery) -> (i64, Vec<User>) {
    let mut users: Vec<User> = users
        .into_iter()
        .filter(|u| may_see(caller, u))
        .filter(|u| query.role.is_none_or(|r| u.role == r))
        .filter(|u| query.search.as_deref().is_none_or(|n| matches(u, n)))
        .collect();
    let tie = |a: &User, b: &User| {
        a.username
            .to_lowercase()
            .cmp(&b.username.to_lowercase())
            .then_with(|| a.username.cmp(&b.username))
            .then(a.id.cmp(&b.id))
    };
    users.sort_by(|a, b| {
        let first = match query.sort {
            SortColumn::Username => std::cmp::Ordering::Equal,
            SortColumn::Role => a.role.as_str().cmp(b.role.as_str()),
            SortColumn::LastName => a
                .settings
                .last_name
                .to_lowercase()
                .cmp(&b.settings.last_name.to_lowercase()),
            // Ids are given in order of creation: they break ties of
            // users created within the same second.
            SortColumn::CreatedAt => a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)),
        };
        let order = first.then_with(|| tie(a, b));
        if query.descending {
            order.reverse()
        } else {
            order
        }
    });
    let total = i64::try_from(users.len()).unwrap_or(i64::MAX);
    let offset = usize::try_from(query.paging.offset).unwrap_or(usize::MAX);
    let limit = usize::try_from(query.paging.limit).unwrap_or(usize::MAX);
    let page = users.into_iter().skip(offset).take(limit).collect();
    (total, page)
}

/// The COM users the caller manages: Administrators see all users,
/// Supervisors themselves and the Operators they created.
#[utoipa::path(get, path = "/users", tag = "users", params(UserListParams),
    responses(
        (status = 200, body = UserPage),
        (status = 401, description = "Not logged in, or the session ended", body = ErrorBody),
        (status = 403, description = "The role manages no users", body = ErrorBody),
        (status = 422, description = "A bad parameter (`field` names it)", body = ErrorBody),
    ))]
async fn list_users(
    State(state): State<ApiState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<UserListParams>,
) -> Result<Json<UserPage>, ApiError> {
    caller.require(Action::CreateComUsers)?;
    let query = params.resolve()?;
    // The list is small (people who log in), so it is filtered here, the
    // same way on every database.
    let users = state.store.list_users().await?;
    let (total, items) = select(&caller.user, users, &query);
    Ok(Json(UserPage {
        page: Page {
            total,
            offset: query.paging.offset,
            limit: query.paging.limit,
        },
        items,
    }))
}

// ---------------------------------------------------------------------------
// POST /users

/// A user to add. Settings left out take their defaults (a 10-minute
/// session timeout, everything else empty or off).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// Login name: at most 15 characters, no spaces.
    pub username: String,
    /// 9-31 characters of at least 2 of: uppercase, lowercase, digits, others.
    pub password: String,
    /// Supervisors may only add `operator` users.
    pub role: Role,
    #[serde(default)]
    pub first_name: String,
    #[serde(default)]
    pub last_name: String,
    #[serde(default)]
    pub phone: String,
    #[serde(default)]
    pub mobile: String,
    #[serde(default)]
    pub email: String,
    /// Reseller or provider names (supervisor, operator and read-only
    /// users). A Supervisor may only give labels it has itself.
    #[serde(default)]
    pub labels: Vec<String>,
    /// 5-30, a multiple of 5; 10 when left out.
    pub session_timeout_minutes: Option<i64>,
    /// Support and read-only users only.
    #[serde(default)]
    pub wallboard: bool,
    #[serde(default)]
    pub disabled: bool,
    /// Make the user choose a new password at its first login.
    #[serde(default)]
    pub force_password_change: bool,
    /// Unix seconds from which the account is disabled; in the future.
    pub expires_at: Option<i64>,
}

/// Add a COM user. A Supervisor's new user is an Operator it manages.
#[utoipa::path(post, path = "/users", tag = "users", request_body = CreateUser,
    responses(
        (status = 201, description = "Added", body = User),
        (status = 401, description = "Not logged in, or the session ended", body = ErrorBody),
        (status = 403, description = "The role may not add users (`forbidden`), not of this role (`role_not_allowed`), or not with this label (`label_not_allowed`)", body = ErrorBody),
        (status = 409, description = "The login name is taken (`conflict`)", body = ErrorBody),
        (status = 422, description = "A field breaks a rule (`field` names it, e.g. `password`, `session_timeout_minutes`, `wallboard`)", body = ErrorBody),
    ))]
async fn create_user(
    State(state): State<ApiState>,
    caller: Caller,
    ApiJson(request): ApiJson<CreateUser>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    caller.require(Action::CreateComUsers)?;
    check_role(&caller.user, request.role)?;
    check_labels(&caller, &request.labels)?;
    if !request.disabled && request.expires_at.is_some_and(|at| at <= state.now()) {
        return Err(expired_enable());
    }
    let created_by = (caller.role() == Role::Supervisor).then_some(caller.user.id);
    let new = NewUser {
        username: request.username,
        password: request.password,
        role: request.role,
        settings: UserSettings {
            first_name: request.first_name,
            last_name: request.last_name,
            phone: request.phone,
            mobile: request.mobile,
            email: request.email,
            labels: request.labels,
            session_timeout_minutes: request
                .session_timeout_minutes
                .unwrap_or(UserSettings::default().session_timeout_minutes),
            wallboard: request.wallboard,
            disabled: request.disabled,
            force_password_change: request.force_password_change,
            expires_at: request.expires_at,
        },
    };
    let user = state.store.add_user_with(new, created_by).await?;
    state
        .audit(
            &caller.actor(),
            event("user.create", user.id, None, Some(&user)),
        )
        .await;
    Ok((StatusCode::CREATED, Json(user)))
}

// ---------------------------------------------------------------------------
// GET, PATCH, DELETE /users/{id}

/// A user the caller may see.
#[utoipa::path(get, path = "/users/{id}", tag = "users",
    params(("id" = i64, Path, description = "The user's id")),
    responses(
        (status = 200, body = User),
        (status = 401, description = "Not logged in, or the session ended", body = ErrorBody),
        (status = 403, description = "The role manages no users", body = ErrorBody),
        (status = 404, description = "No such user, or not one the caller manages", body = ErrorBody),
    ))]
async fn get_user(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<User>, ApiError> {
    caller.require(Action::CreateComUsers)?;
    Ok(Json(target(&state, &caller, id, false).await?))
}

/// `null` as `Some(None)`, a value as `Some(Some(v))`; a field left out
/// stays `None` (with `#[serde(default)]`).
fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// What to change; each field given replaces that setting, each left out
/// keeps it. Login name and password are not changed here.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    /// Only to a role the caller may create; not one's own.
    pub role: Option<Role>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<String>,
    pub mobile: Option<String>,
    pub email: Option<String>,
    /// The whole new list. A Supervisor may only give labels it has itself.
    pub labels: Option<Vec<String>>,
    pub session_timeout_minutes: Option<i64>,
    pub wallboard: Option<bool>,
    /// Not one's own account. Enabling an expired account needs a future
    /// `expires_at` (or `null`) in the same request.
    pub disabled: Option<bool>,
    pub force_password_change: Option<bool>,
    /// Unix seconds; `null` removes the expiry.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i64>, nullable)]
    pub expires_at: Option<Option<i64>>,
}

/// Refusals of changes to one's own account that would lock the caller
/// out: its role and its disabling.
fn check_own_account(patch: &UserPatch, before: &User) -> Result<(), ApiError> {
    if patch.role.is_some_and(|r| r != before.role) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "cannot_change_own_role",
            "a user cannot change its own role",
        )
        .with_field("role"));
    }
    if patch.disabled == Some(true) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "cannot_disable_self",
            "a user cannot disable its own account",
        )
        .with_field("disabled"));
    }
    Ok(())
}

/// Edit a user the caller manages. Disabling it or changing its role ends
/// its sessions.
#[utoipa::path(patch, path = "/users/{id}", tag = "users", request_body = UserPatch,
    params(("id" = i64, Path, description = "The user's id")),
    responses(
        (status = 200, description = "The user as changed", body = User),
        (status = 401, description = "Not logged in, or the session ended", body = ErrorBody),
        (status = 403, description = "The role manages no users (`forbidden`), not with this role or label (`role_not_allowed`, `label_not_allowed`), or it is the caller's own account and the caller a Supervisor (`own_account`)", body = ErrorBody),
        (status = 404, description = "No such user, or not one the caller manages", body = ErrorBody),
        (status = 409, description = "Changing one's own role or disabling oneself", body = ErrorBody),
        (status = 422, description = "A field breaks a rule (`field` names it)", body = ErrorBody),
    ))]
async fn update_user(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<i64>,
    ApiJson(patch): ApiJson<UserPatch>,
) -> Result<Json<User>, ApiError> {
    caller.require(Action::CreateComUsers)?;
    let before = target(&state, &caller, id, true).await?;
    if before.id == caller.user.id {
        check_own_account(&patch, &before)?;
    }
    if let Some(role) = patch.role {
        check_role(&caller.user, role)?;
    }
    if let Some(labels) = &patch.labels {
        check_labels(&caller, labels)?;
    }
    let enabled = !patch.disabled.unwrap_or(before.settings.disabled);
    let expires_at = patch.expires_at.unwrap_or(before.settings.expires_at);
    let touches_status = patch.disabled == Some(false) || patch.expires_at.is_some();
    if enabled && touches_status && expires_at.is_some_and(|at| at <= state.now()) {
        return Err(expired_enable());
    }

    let UserPatch {
        role,
        first_name,
        last_name,
        phone,
        mobile,
        email,
        labels,
        session_timeout_minutes,
        wallboard,
        disabled,
        force_password_change,
        expires_at,
    } = patch;
    let changes = UserChanges {
        role,
        first_name,
        last_name,
        phone,
        mobile,
        email,
        labels,
        session_timeout_minutes,
        wallboard,
        disabled,
        force_password_change,
        expires_at,
    };
    let after = state.store.update_user(id, changes).await?;
    let now_disabled = after.settings.disabled && !before.settings.disabled;
    if now_disabled || after.role != before.role {
        state.store.delete_sessions_of_user(id, None).await?;
    }
    state
        .audit(
            &caller.actor(),
            event("user.update", id, Some(&before), Some(&after)),
        )
        .await;
    Ok(Json(after))
}

/// Delete a user the caller manages; never one's own account.
#[utoipa::path(delete, path = "/users/{id}", tag = "users",
    params(("id" = i64, Path, description = "The user's id")),
    responses(
        (status = 204, description = "Deleted, with its sessions"),
        (status = 401, description = "Not logged in, or the session ended", body = ErrorBody),
        (status = 403, description = "The role manages no users", body = ErrorBody),
        (status = 404, description = "No such user, or not one the caller manages", body = ErrorBody),
        (status = 409, description = "The caller's own account (`cannot_delete_self`)", body = ErrorBody),
    ))]
async fn delete_user(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    caller.require(Action::CreateComUsers)?;
    if id == caller.user.id {
        return Err(StoreError::CannotDeleteSelf.into());
    }
    let before = target(&state, &caller, id, true).await?;
    state.store.delete_user(caller.user.id, id).await?;
    state
        .audit(
            &caller.actor(),
            event("user.delete", id, Some(&before), None),
        )
        .await;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------
// PUT /users/{id}/password

/// A new password chosen by an administrator.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordReset {
    /// 9-31 characters of at least 2 of: uppercase, lowercase, digits,
    /// others; none of the user's recent passwords.
    pub password: String,
}

/// Reset a user's password: the user must choose a new one at its next
/// login, and its sessions end now. For one's own password use
/// `PUT /session/password`.
#[utoipa::path(put, path = "/users/{id}/password", tag = "users", request_body = PasswordReset,
    params(("id" = i64, Path, description = "The user's id")),
    responses(
        (status = 204, description = "Set; the user must change it at next login"),
        (status = 401, description = "Not logged in, or the session ended", body = ErrorBody),
        (status = 403, description = "The role manages no users, or it is the caller's own account (`own_account`)", body = ErrorBody),
        (status = 404, description = "No such user, or not one the caller manages", body = ErrorBody),
        (status = 422, description = "The password breaks the policy (`field`: `password`)", body = ErrorBody),
    ))]
async fn reset_password(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<i64>,
    ApiJson(reset): ApiJson<PasswordReset>,
) -> Result<StatusCode, ApiError> {
    caller.require(Action::CreateComUsers)?;
    if id == caller.user.id {
        return Err(own_account());
    }
    let before = target(&state, &caller, id, true).await?;
    state
        .store
        .reset_password(id, &reset.password, state.config.password_history)
        .await?;
    let after = state
        .store
        .user_by_id(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("unknown user id {id}")))?;
    state.store.delete_sessions_of_user(id, None).await?;
    state
        .audit(
            &caller.actor(),
            event("user.password_reset", id, Some(&before), Some(&after)),
        )
        .await;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------
// PATCH /session/profile

/// One's own contact details; each field given replaces that one.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfilePatch {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<String>,
    pub mobile: Option<String>,
    pub email: Option<String>,
}

/// Edit one's own profile (names, phone, mobile, email): every role may,
/// read-only ones included ("read-only mode allows editing one's own
/// profile").
#[utoipa::path(patch, path = "/session/profile", tag = "session", request_body = ProfilePatch,
    responses(
        (status = 200, description = "The caller's user as changed", body = User),
        (status = 401, description = "Not logged in, or the session ended", body = ErrorBody),
        (status = 403, description = "Missing CSRF token, wallboard lock, pending password change", body = ErrorBody),
        (status = 422, description = "A field breaks a rule (`field` names it)", body = ErrorBody),
    ))]
async fn update_profile(
    State(state): State<ApiState>,
    caller: Caller,
    ApiJson(patch): ApiJson<ProfilePatch>,
) -> Result<Json<User>, ApiError> {
    let ProfilePatch {
        first_name,
        last_name,
        phone,
        mobile,
        email,
    } = patch;
    let changes = UserChanges {
        first_name,
        last_name,
        phone,
        mobile,
        email,
        ..Default::default()
    };
    let id = caller.user.id;
    let after = state.store.update_user(id, changes).await?;
    state
        .audit(
            &caller.actor(),
            event("user.update", id, Some(&caller.user), Some(&after)),
        )
        .await;
    Ok(Json(after))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PhcHash;

    fn user(id: i64, username: &str, role: Role, created_by: Option<i64>) -> User {
        User {
            id,
            username: username.into(),
            role,
            password_hash: PhcHash::from_phc("$argon2id$secret".into()),
            settings: UserSettings::default(),
            created_by,
            created_at: 100 - id,
            updated_at: 0,
        }
    }

    #[test]
    fn supervisors_see_themselves_and_manage_only_their_operators() {
        let sup = user(1, "sup", Role::Supervisor, None);
        let own = user(2, "own", Role::Operator, Some(1));
        let other = user(3, "other", Role::Operator, Some(9));
        let admin = user(4, "admin", Role::Administrator, None);
        assert!(may_see(&sup, &sup) && !may_manage(&sup, &sup));
        assert!(may_see(&sup, &own) && may_manage(&sup, &own));
        assert!(!may_see(&sup, &other) && !may_manage(&sup, &other));
        assert!(!may_see(&sup, &admin));
        assert!(may_manage(&admin, &sup) && may_manage(&admin, &admin));
        let op = user(5, "op", Role::Operator, None);
        assert!(!may_see(&op, &op));
    }

    #[test]
    fn the_list_query_names_a_bad_parameter() {
        let params = |sort: &str, order: &str, role: &str| UserListParams {
            search: None,
            role: Some(role.into()),
            sort: Some(sort.into()),
            order: Some(order.into()),
            offset: None,
            limit: None,
        };
        let field = |p: UserListParams| p.resolve().unwrap_err().field.unwrap();
        assert_eq!(field(params("email", "asc", "operator")), "sort");
        assert_eq!(field(params("role", "up", "operator")), "order");
        assert_eq!(field(params("role", "asc", "boss")), "role");
        let ok = params("last_name", "desc", "Read-Only").resolve().unwrap();
        assert_eq!(
            (ok.sort, ok.descending, ok.role),
            (SortColumn::LastName, true, Some(Role::ReadOnly))
        );
    }

    #[test]
    fn select_searches_sorts_and_pages() {
        let admin = user(1, "admin", Role::Administrator, None);
        let mut a = user(2, "Bravo", Role::Operator, None);
        a.settings.labels = vec!["ACME Resale".into()];
        let mut b = user(3, "alpha", Role::Support, None);
        b.settings.email = "x@acme.example".into();
        let c = user(4, "charlie", Role::Operator, None);
        let all = vec![admin.clone(), a, b, c];
        let ids = |q: ListQuery| {
            let (total, page) = select(&admin, all.clone(), &q);
            (total, page.iter().map(|u| u.id).collect::<Vec<_>>())
        };
        let query = |search: Option<&str>, sort, descending, offset, limit| ListQuery {
            search: search.map(str::to_owned),
            role: None,
            sort,
            descending,
            paging: Paging { offset, limit },
        };
        assert_eq!(
            ids(query(None, SortColumn::Username, false, 0, 50)),
            (4, vec![1, 3, 2, 4])
        );
        assert_eq!(
            ids(query(Some("acme"), SortColumn::Username, true, 0, 50)),
            (2, vec![2, 3])
        );
        assert_eq!(
            ids(query(None, SortColumn::CreatedAt, false, 1, 2)),
            (4, vec![3, 2])
        );
        assert_eq!(
            ids(query(Some("operator"), SortColumn::Role, false, 0, 50)),
            (2, vec![2, 4])
        );
    }
}
