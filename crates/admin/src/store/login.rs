//! Logging in as a COM user: the password, the manual's failed-login block
//! ("3 failed login attempts in a 10 minute period will block any further
//! login attempts for the following 10 minutes"), disabled and expired
//! accounts.
//!
//! Failures are recorded by the login name tried, whether or not a user has
//! it, and an unknown name costs an argon2 verification too, so neither the
//! answer, its timing nor being blocked tells a guesser which names exist.
//! Whether an account is disabled or expired is only told to whoever gave
//! its right password. The clock is a parameter (`now`, unix seconds) so that
//! callers and tests decide the time.
//!
//! Checking the block and recording a failure are separate statements, so
//! attempts racing each other may each get a verification before the block
//! is seen; the block still follows from the recorded failures. The REST
//! API therefore takes one attempt per login name at a time (in one serve
//! process; several processes on one database could still race).

use super::{now as wall_clock, Store, User};
use crate::names::check_login_name;
use crate::password::{verify_nothing_async, verify_password_async};
use crate::StoreError;

/// The failed-login rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginPolicy {
    /// This many failures of one login name within `window_secs` block it.
    pub max_failures: usize,
    pub window_secs: i64,
    /// The block lasts this long after the last of those failures.
    pub block_secs: i64,
}

impl Default for LoginPolicy {
    /// The manual's: 3 failures in 10 minutes block for 10 minutes.
    fn default() -> Self {
        LoginPolicy {
            max_failures: 3,
            window_secs: 600,
            block_secs: 600,
        }
    }
}

impl LoginPolicy {
    /// Until when `failures` (unix seconds, any order) block the name, if
    /// that is after `now`.
    pub fn blocked_until(&self, failures: &[i64], now: i64) -> Option<i64> {
        if self.max_failures == 0 {
            return None;
        }
        let mut at = failures.to_vec();
        at.sort_unstable();
        at.windows(self.max_failures)
            .filter(|run| run[run.len() - 1] - run[0] < self.window_secs)
            .map(|run| run[run.len() - 1] + self.block_secs)
            .max()
            .filter(|&until| now < until)
    }

    /// Failures older than this at `now` can no longer matter.
    fn horizon(&self, now: i64) -> i64 {
        now.saturating_sub(self.window_secs.saturating_add(self.block_secs))
    }
}

/// The answer to a login attempt.
#[derive(Debug, Clone)]
pub enum LoginOutcome {
    /// Right password, account usable. `must_change_password`: "Force New
    /// Password" is set, so the user must choose a new one first.
    Accepted {
        user: Box<User>,
        must_change_password: bool,
    },
    /// Too many recent failures for this login name; nothing was checked
    /// and this attempt is not counted. Try again at `until`.
    Blocked { until: i64 },
    /// Unknown login name or wrong password (not told apart); counted.
    Invalid,
    /// Right password, but the account is disabled.
    Disabled,
    /// Right password, but the account expired: it is now disabled.
    Expired,
}

pub(super) const FAILURES: &str = "SELECT at FROM login_failures WHERE username = $1";
pub(super) const FORGET_OLD: &str = "DELETE FROM login_failures WHERE at < $1";
const RECORD: &str = "INSERT INTO login_failures (username, at) VALUES ($1, $2)";
pub(super) const CLEAR: &str = "DELETE FROM login_failures WHERE username = $1";

impl Store {
    /// Checks a login attempt at `now` (unix seconds) under `policy`.
    pub async fn check_login(
        &self,
        username: &str,
        password: &str,
        now: i64,
        policy: LoginPolicy,
    ) -> Result<LoginOutcome, StoreError> {
        // A name no user can have is never stored (nor blocked): it can
        // only ever be Invalid, which a guesser learns nothing from.
        if check_login_name(username).is_err() {
            verify_nothing_async(password.to_owned()).await;
            return Ok(LoginOutcome::Invalid);
        }
        let failures = self.login_failures(username, policy.horizon(now)).await?;
        if let Some(until) = policy.blocked_until(&failures, now) {
            return Ok(LoginOutcome::Blocked { until });
        }
        let user = self.user_by_username(username).await?;
        let right = match &user {
            Some(user) => verify_password_async(user.password_hash.clone(), password).await,
            None => verify_nothing_async(password.to_owned()).await,
        };
        let user = match user {
            Some(user) if right => user,
            _ => {
                on_pool!(self, |pool| sqlx::query(RECORD)
                    .bind(username)
                    .bind(now)
                    .execute(pool)
                    .await?
                    .rows_affected());
                tracing::info!(%username, "login failed");
                return Ok(LoginOutcome::Invalid);
            }
        };
        if user.settings.disabled {
            return Ok(LoginOutcome::Disabled);
        }
        if user.is_expired_at(now) {
            // The manual: "the Account Status is automatically disabled and
            // must be selected again for the user to be able to login".
            self.mark_disabled(user.id, wall_clock()).await?;
            tracing::info!(%username, "user account expired: disabled");
            return Ok(LoginOutcome::Expired);
        }
        on_pool!(self, |pool| sqlx::query(CLEAR)
            .bind(username)
            .execute(pool)
            .await?
            .rows_affected());
        let must_change_password = user.settings.force_password_change;
        Ok(LoginOutcome::Accepted {
            user: Box::new(user),
            must_change_password,
        })
    }

    /// The failures recorded for `username`, after deleting every failure
    /// (of any name) older than `horizon`.
    async fn login_failures(&self, username: &str, horizon: i64) -> Result<Vec<i64>, StoreError> {
        let failures = on_pool!(self, |pool| {
            sqlx::query(FORGET_OLD).bind(horizon).execute(pool).await?;
            sqlx::query_scalar(FAILURES)
                .bind(username)
                .fetch_all(pool)
                .await?
        });
        Ok(failures)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_failures_within_the_window_block_from_the_last() {
        let policy = LoginPolicy::default();
        assert_eq!(policy.blocked_until(&[0, 100, 599], 600), Some(1199));
        assert_eq!(policy.blocked_until(&[0, 100, 599], 1199), None);
        assert_eq!(policy.blocked_until(&[599, 0, 100], 700), Some(1199));
        // Spread over more than the window: no block.
        assert_eq!(policy.blocked_until(&[0, 300, 600], 601), None);
        assert_eq!(policy.blocked_until(&[0, 300], 301), None);
        // Any three within the window will do.
        assert_eq!(policy.blocked_until(&[0, 700, 800, 900], 901), Some(1500));
    }
}
