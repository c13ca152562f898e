//! Who is calling: the session cookie, the user's idle timeout and
//! wallboard mode, CSRF protection and the pending password change, checked
//! once for every authenticated endpoint by the [`Caller`] extractor.
//!
//! The cookie is `HttpOnly` (scripts cannot read it), `Secure` (the admin
//! listener is HTTPS only) and `SameSite=Strict` (other sites' pages do not
//! send it). On top of that every state-changing request must carry the
//! session's CSRF token in the `X-CSRF-Token` header, which a page of
//! another origin cannot read nor set on a cross-site request.
//!
//! Idle time (manual, "Session Timeout"): a session unused for the user's
//! timeout ends, except a wallboard user's, which stays logged in but from
//! then on may only refresh the display it last showed. A request with
//! `X-Background-Refresh: true` (a page polling for updates) is served but
//! does not count as activity, so an open page alone keeps nobody logged in.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method, StatusCode};

use super::error::ApiError;
use super::state::ApiState;
use crate::http::PeerAddr;
use crate::permissions::{self, Action};
use crate::store::{Actor, Session};
use crate::{Role, User};

/// The session cookie's name.
pub const COOKIE: &str = "comgate_session";
/// The header that must echo the session's CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The header that marks an automatic refresh.
pub const BACKGROUND_HEADER: &str = "x-background-refresh";

/// The paths (below `/com/api`) a session may use while its user must
/// first choose a new password.
const PASSWORD_CHANGE_PATHS: &[&str] = &["/session", "/session/password", "/logout"];

/// The `Set-Cookie` value that starts a session.
pub fn session_cookie(token: &str) -> String {
    format!("{COOKIE}={token}; Path=/com; HttpOnly; Secure; SameSite=Strict")
}

/// The `Set-Cookie` value that ends it in the browser.
pub fn cleared_cookie() -> String {
    format!("{COOKIE}=; Path=/com; HttpOnly; Secure; SameSite=Strict; Max-Age=0")
}

/// The client's address as the audit log names it.
pub fn source_of(parts: &Parts) -> String {
    parts
        .extensions
        .get::<PeerAddr>()
        .map(|PeerAddr(addr)| addr.ip().to_string())
        .unwrap_or_else(|| "unknown".to_owned())
}

fn cookie_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
        .filter(|v| !v.is_empty())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The path below `/com/api` and the query, which name a display.
fn view_of(parts: &Parts) -> String {
    let path = parts.uri.path();
    let path = path.strip_prefix("/com/api").unwrap_or(path);
    match parts.uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    }
}

fn api_path(parts: &Parts) -> &str {
    let path = parts.uri.path();
    path.strip_prefix("/com/api").unwrap_or(path)
}

/// Forgets sessions that no user's timeout can keep any more (idle longer
/// than the longest timeout, 30 minutes), except wallboard users'. The
/// extractor ends a timed-out session when it is next used; this is for the
/// sessions nobody comes back to. Returns how many ended.
pub async fn purge_idle_sessions(state: &ApiState) -> Result<u64, crate::StoreError> {
    let longest = *crate::store::SESSION_TIMEOUT_MINUTES.end() * 60;
    // Idle for the whole timeout counts as timed out (as in the extractor).
    state
        .store
        .purge_idle_sessions(state.now() - longest + 1)
        .await
}

/// Runs [`purge_idle_sessions`] every `every` for as long as serve runs.
pub async fn purge_idle_sessions_forever(state: ApiState, every: std::time::Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        state.login_failures.housekeeping();
        state.forget_idle_login_turns();
        match purge_idle_sessions(&state).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(sessions = n, "idle admin sessions purged"),
            Err(e) => tracing::warn!(error = %e, "purging idle admin sessions failed"),
        }
    }
}

/// An authenticated caller.
#[derive(Clone)]
pub struct Caller {
    pub user: User,
    pub session: Session,
    /// The client's address.
    pub source: String,
}

impl Caller {
    pub fn role(&self) -> Role {
        self.user.role
    }

    /// Fails with 403 unless the caller's role may do `action`.
    pub fn require(&self, action: Action) -> Result<(), ApiError> {
        if permissions::allowed(self.user.role, action) {
            Ok(())
        } else {
            Err(ApiError::forbidden(action))
        }
    }

    /// The caller as the audit log names it.
    pub fn actor(&self) -> Actor {
        Actor {
            id: Some(self.user.id),
            name: self.user.username.clone(),
            source: self.source.clone(),
        }
    }
}

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let Some(token) = cookie_token(&parts.headers) else {
            return Err(ApiError::not_authenticated(
                "log in first (POST /com/api/login)",
            ));
        };
        let Some(mut session) = state.store.session(token).await? else {
            return Err(ApiError::not_authenticated(
                "the session has ended; log in again",
            ));
        };
        let now = state.now();
        let user = session.user.clone();

        if user.settings.disabled || user.is_expired_at(now) {
            state.store.delete_session(&session.token_hash).await?;
            return Err(ApiError::not_authenticated(
                "the account is disabled or has expired",
            ));
        }

        let idle_limit = user.settings.session_timeout_minutes.saturating_mul(60);
        if session.wallboard_view.is_none() && now - session.last_active_at >= idle_limit {
            if user.settings.wallboard {
                let view = session
                    .last_view
                    .clone()
                    .unwrap_or_else(|| "/dashboard".into());
                state
                    .store
                    .lock_wallboard_session(&session.token_hash, &view)
                    .await?;
                session.wallboard_view = Some(view);
            } else {
                state.store.delete_session(&session.token_hash).await?;
                return Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "session_expired",
                    "the session timed out; log in again",
                ));
            }
        }

        if changes_state(&parts.method) {
            let sent = parts
                .headers
                .get(CSRF_HEADER)
                .map(|v| v.as_bytes())
                .unwrap_or_default();
            if !constant_time_eq(sent, session.csrf_token.as_bytes()) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "csrf_token_invalid",
                    "state-changing requests must send the session's CSRF token in X-CSRF-Token",
                ));
            }
        }

        let path = api_path(parts);
        if let Some(locked) = &session.wallboard_view {
            let own_session = path == "/session" || path == "/logout";
            let same_display = parts.method == Method::GET && view_of(parts) == *locked;
            if !(own_session || same_display) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "wallboard_locked",
                    format!("this wallboard session may only refresh {locked}"),
                ));
            }
        }

        if user.settings.force_password_change && !PASSWORD_CHANGE_PATHS.contains(&path) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "password_change_required",
                "choose a new password first (PUT /com/api/session/password)",
            ));
        }

        let background = parts
            .headers
            .get(BACKGROUND_HEADER)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
        if !background && session.wallboard_view.is_none() {
            let view = (parts.method == Method::GET && path != "/session").then(|| view_of(parts));
            state
                .store
                .touch_session(&session.token_hash, now, view.as_deref())
                .await?;
            session.last_active_at = now;
            if view.is_some() {
                session.last_view = view;
            }
        }

        Ok(Caller {
            user,
            session,
            source: source_of(parts),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            "a=1; comgate_session=tok; b=2".parse().unwrap(),
        );
        assert_eq!(cookie_token(&headers), Some("tok"));
        let mut empty = HeaderMap::new();
        empty.append(header::COOKIE, "comgate_session=".parse().unwrap());
        assert_eq!(cookie_token(&empty), None);
    }

    #[test]
    fn the_session_cookie_is_httponly_secure_and_strict() {
        let c = session_cookie("t");
        for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/com"] {
            assert!(c.contains(attr), "{c} lacks {attr}");
        }
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"", b"a"));
    }
}
