//! Admin sessions: what the REST API's session cookie stands for.
//!
//! The cookie holds a random token (256 bits); the database keeps only its
//! SHA-256, so neither a copy of the database nor its logs can be replayed
//! as a login. Each session has its own CSRF token, which state-changing
//! requests must send back in a header (see `api::session`). What counts as
//! idle and what a wallboard session may still show is decided by the API
//! from the times kept here.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore as _;

use super::{unstorable, Store, StoreRow, User};
use crate::StoreError;

/// A session just created: the token goes into the cookie, the CSRF token to
/// the client (it is shown again by `GET /com/api/session`).
#[derive(Clone)]
pub struct NewSession {
    pub token: String,
    pub csrf_token: String,
}

impl std::fmt::Debug for NewSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewSession { .. }")
    }
}

/// A stored session with its user.
#[derive(Clone)]
pub struct Session {
    /// SHA-256 of the cookie token, hex; how the session is named in the store.
    pub token_hash: String,
    pub user: User,
    pub csrf_token: String,
    pub source: String,
    pub created_at: i64,
    pub last_active_at: i64,
    /// The last display (GET path and query) the session asked for.
    pub last_view: Option<String>,
    /// Set once a wallboard session's idle time has passed: the only
    /// display it may still refresh.
    pub wallboard_view: Option<String>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("user", &self.user.username)
            .field("source", &self.source)
            .field("created_at", &self.created_at)
            .field("last_active_at", &self.last_active_at)
            .field("wallboard_view", &self.wallboard_view)
            .finish_non_exhaustive()
    }
}

/// The stored name of a cookie token.
pub fn token_hash(token: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

struct SessionRow {
    token_hash: String,
    user_id: i64,
    csrf_token: String,
    source: String,
    created_at: i64,
    last_active_at: i64,
    last_view: Option<String>,
    wallboard_view: Option<String>,
}

fn from_row(row: &impl StoreRow) -> Result<SessionRow, sqlx::Error> {
    Ok(SessionRow {
        token_hash: row.col("token_hash")?,
        user_id: row.col("user_id")?,
        csrf_token: row.col("csrf_token")?,
        source: row.col("source")?,
        created_at: row.col("created_at")?,
        last_active_at: row.col("last_active_at")?,
        last_view: row.col("last_view")?,
        wallboard_view: row.col("wallboard_view")?,
    })
}

impl Store {
    /// Starts a session of user `user_id`, logged in from `source` at `now`.
    pub async fn create_session(
        &self,
        user_id: i64,
        source: &str,
        now: i64,
    ) -> Result<NewSession, StoreError> {
        let new = NewSession {
            token: random_token(),
            csrf_token: random_token(),
        };
        on_pool!(self, |pool| {
            sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, csrf_token, source, created_at, last_active_at) \
             VALUES ($1, $2, $3, $4, $5, $5)"
        )
        .bind(token_hash(&new.token))
        .bind(user_id)
        .bind(&new.csrf_token)
        .bind(source)
        .bind(now)
        .execute(pool)
        .await
        .map_err(|e| if super::is_foreign_key_violation(&e) {
            StoreError::UnknownUserId(user_id)
        } else {
            StoreError::from(e)
        })
        .map(drop)?
        });
        Ok(new)
    }

    /// The session whose cookie token is `token`, with its user as stored
    /// now; `None` for an unknown or ended session.
    pub async fn session(&self, token: &str) -> Result<Option<Session>, StoreError> {
        if unstorable(token) {
            return Ok(None);
        }
        let hash = token_hash(token);
        let row = on_pool!(self, |pool| {
            let row = sqlx::query("SELECT * FROM sessions WHERE token_hash = $1")
                .bind(&hash)
                .fetch_optional(pool)
                .await?;
            row.as_ref().map(from_row).transpose()?
        });
        let Some(row) = row else { return Ok(None) };
        // The user row cascades with the session, so it is there unless the
        // user was deleted in between: then the session is over too.
        let Some(user) = self.user_by_id(row.user_id).await? else {
            return Ok(None);
        };
        Ok(Some(Session {
            token_hash: row.token_hash,
            user,
            csrf_token: row.csrf_token,
            source: row.source,
            created_at: row.created_at,
            last_active_at: row.last_active_at,
            last_view: row.last_view,
            wallboard_view: row.wallboard_view,
        }))
    }

    /// Records activity of a session at `now`; `view` is the display (GET
    /// path and query) it asked for, if the request was one.
    pub async fn touch_session(
        &self,
        token_hash: &str,
        now: i64,
        view: Option<&str>,
    ) -> Result<(), StoreError> {
        on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE sessions SET last_active_at = $2, last_view = COALESCE($3, last_view) \
             WHERE token_hash = $1",
            )
            .bind(token_hash)
            .bind(now)
            .bind(view)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Locks a wallboard session to `view`: from now on it may only refresh it.
    pub async fn lock_wallboard_session(
        &self,
        token_hash: &str,
        view: &str,
    ) -> Result<(), StoreError> {
        on_pool!(self, |pool| {
            sqlx::query("UPDATE sessions SET wallboard_view = $2 WHERE token_hash = $1")
                .bind(token_hash)
                .bind(view)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Ends one session (logout, idle timeout).
    pub async fn delete_session(&self, token_hash: &str) -> Result<(), StoreError> {
        on_pool!(self, |pool| {
            sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
                .bind(token_hash)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Ends every session of a user except `keep` (a token hash): after a
    /// password change, a role change, disabling. Returns how many ended.
    pub async fn delete_sessions_of_user(
        &self,
        user_id: i64,
        keep: Option<&str>,
    ) -> Result<u64, StoreError> {
        let done = on_pool!(self, |pool| sqlx::query(
            "DELETE FROM sessions WHERE user_id = $1 AND token_hash <> COALESCE($2, '')"
        )
        .bind(user_id)
        .bind(keep)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(done)
    }

    /// Forgets sessions idle since before `idle_before`, except those of
    /// wallboard users (they stay logged in until they log out). Returns how
    /// many.
    pub async fn purge_idle_sessions(&self, idle_before: i64) -> Result<u64, StoreError> {
        let done = on_pool!(self, |pool| sqlx::query(
            "DELETE FROM sessions WHERE last_active_at < $1 \
             AND user_id NOT IN (SELECT id FROM users WHERE wallboard)"
        )
        .bind(idle_before)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(done)
    }
}
