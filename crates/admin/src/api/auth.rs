//! Logging in and out, the caller's own session, and changing one's own
//! password: the endpoints every role has.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use super::json::ApiJson;
use super::session::{cleared_cookie, session_cookie, source_of, Caller};
use super::state::ApiState;
use crate::permissions::{self, Action, MATRIX};
use crate::store::{Actor, AuditEvent};
use crate::{LoginOutcome, User};

pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(session))
        .routes(routes!(change_password))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

/// The caller's session, as login and `GET /session` describe it.
#[derive(Serialize, ToSchema)]
pub struct SessionInfo {
    pub user: serde_json::Value,
    /// Send this in `X-CSRF-Token` with every POST, PUT, PATCH and DELETE.
    pub csrf_token: String,
    /// What the caller's role allows.
    pub allowed_actions: Vec<Action>,
    /// Read-only mode (Support and Read-Only): no actions but one's profile.
    pub read_only: bool,
    /// The user must choose a new password before anything else.
    pub must_change_password: bool,
    /// Set when a wallboard session's idle time has passed: the one display
    /// it may still refresh.
    pub wallboard_view: Option<String>,
}

fn describe(user: &User, csrf_token: String, wallboard_view: Option<String>) -> SessionInfo {
    SessionInfo {
        user: serde_json::to_value(user).unwrap_or_default(),
        csrf_token,
        allowed_actions: MATRIX
            .iter()
            .map(|(action, _)| *action)
            .filter(|a| permissions::allowed(user.role, *a))
            .collect(),
        read_only: permissions::is_read_only(user.role),
        must_change_password: user.settings.force_password_change,
        wallboard_view,
    }
}

/// The client's address, for handlers without a session.
pub struct Source(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Source {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Source(source_of(parts)))
    }
}

/// Log in: checks the password under the failed-login rule and starts a
/// session (the `comgate_session` cookie).
#[utoipa::path(post, path = "/login", tag = "session", request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in; the session cookie is set", body = SessionInfo),
        (status = 401, description = "Unknown login name or wrong password", body = ErrorBody),
        (status = 403, description = "The account is disabled or expired", body = ErrorBody),
        (status = 429, description = "Too many failed attempts; see Retry-After", body = ErrorBody),
    ))]
async fn login(
    State(state): State<ApiState>,
    Source(source): Source,
    ApiJson(request): ApiJson<LoginRequest>,
) -> Result<Response, ApiError> {
    let now = state.now();
    if let Some(wait) = state.login_failures.blocked_for(&source) {
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_failures",
            "too many failed logins from this address; try again later",
        );
        e.retry_after = Some(wait.as_secs().max(1));
        return Err(e);
    }
    let _turn = state.login_turn(&request.username).await;
    let outcome = state
        .store
        .check_login(
            &request.username,
            &request.password,
            now,
            state.config.login_policy,
        )
        .await?;
    let (user_id, outcome_name, result) = match outcome {
        LoginOutcome::Accepted { user, .. } => {
            let new = state.store.create_session(user.id, &source, now).await?;
            let info = describe(&user, new.csrf_token, None);
            let response = (
                [(header::SET_COOKIE, session_cookie(&new.token))],
                Json(info),
            )
                .into_response();
            (Some(user.id), "ok", Ok(response))
        }
        LoginOutcome::Blocked { until } => {
            let mut e = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "login_blocked",
                "too many failed login attempts; this login is blocked for now",
            );
            e.retry_after = Some(u64::try_from(until - now).unwrap_or(1).max(1));
            (None, "blocked", Err(e))
        }
        LoginOutcome::Invalid => {
            state.login_failures.failed(&source);
            (
            None,
            "invalid",
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "unknown login name or wrong password",
            )),
        )
        }
        LoginOutcome::Disabled => (
            None,
            "disabled",
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "account_disabled",
                "this account is disabled",
            )),
        ),
        LoginOutcome::Expired => (
            None,
            "expired",
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "account_expired",
                "this account has expired and is now disabled; an administrator can re-enable it with a new expiry date",
            )),
        ),
    };
    let actor = Actor {
        id: user_id,
        name: request.username.clone(),
        source,
    };
    state
        .audit(
            &actor,
            AuditEvent {
                action: "login",
                target: format!("user:{}", request.username),
                before: None,
                after: None,
                outcome: outcome_name.to_owned(),
            },
        )
        .await;
    result
}

/// Log out: ends the session and clears the cookie.
#[utoipa::path(post, path = "/logout", tag = "session",
    responses(
        (status = 204, description = "Logged out"),
        (status = 401, description = "No session", body = ErrorBody),
        (status = 403, description = "Missing or wrong CSRF token", body = ErrorBody),
    ))]
async fn logout(State(state): State<ApiState>, caller: Caller) -> Result<Response, ApiError> {
    state
        .store
        .delete_session(&caller.session.token_hash)
        .await?;
    state
        .audit(
            &caller.actor(),
            AuditEvent {
                action: "logout",
                target: format!("user:{}", caller.user.id),
                before: None,
                after: None,
                outcome: "ok".into(),
            },
        )
        .await;
    Ok((
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, cleared_cookie())],
    )
        .into_response())
}

/// The caller's session: user, CSRF token, what the role allows.
#[utoipa::path(get, path = "/session", tag = "session",
    responses(
        (status = 200, body = SessionInfo),
        (status = 401, description = "No session, or it timed out", body = ErrorBody),
    ))]
async fn session(caller: Caller) -> Json<SessionInfo> {
    Json(describe(
        &caller.user,
        caller.session.csrf_token.clone(),
        caller.session.wallboard_view.clone(),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    pub current_password: String,
    pub new_password: String,
}

/// Change one's own password (9-31 characters, 2 of 4 character classes,
/// none of the recent ones). Other sessions of the user end.
#[utoipa::path(put, path = "/session/password", tag = "session", request_body = PasswordChange,
    responses(
        (status = 204, description = "Changed"),
        (status = 401, description = "No session", body = ErrorBody),
        (status = 403, description = "Wrong current password, or CSRF token", body = ErrorBody),
        (status = 422, description = "The new password breaks the policy", body = ErrorBody),
    ))]
async fn change_password(
    State(state): State<ApiState>,
    caller: Caller,
    ApiJson(change): ApiJson<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    let right = crate::password::verify_password_async(
        caller.user.password_hash.expose(),
        change.current_password,
    )
    .await;
    let event = |outcome: &str| AuditEvent {
        action: "user.password",
        target: format!("user:{}", caller.user.id),
        before: None,
        after: None,
        outcome: outcome.to_owned(),
    };
    if !right {
        state
            .audit(&caller.actor(), event("wrong_current_password"))
            .await;
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "wrong_password",
            "the current password is wrong",
        )
        .with_field("current_password"));
    }
    state
        .store
        .set_password(
            caller.user.id,
            &change.new_password,
            state.config.password_history,
        )
        .await
        .map_err(|e| ApiError::from(e).with_field("new_password"))?;
    state
        .store
        .delete_sessions_of_user(caller.user.id, Some(&caller.session.token_hash))
        .await?;
    state.audit(&caller.actor(), event("ok")).await;
    Ok(StatusCode::NO_CONTENT)
}
