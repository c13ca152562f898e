//! Proxy-account authentication for the front door, with the failed-login
//! rate limits.
//!
//! Passwords are stored as argon2 hashes, which are deliberately slow (tens of
//! milliseconds). A partner's ssh or browser opens many tunnels with the same
//! credentials, so a successful verification is remembered as a salted SHA-256
//! of the password next to the stored hash it was checked against; a
//! changed password in the database (a new hash) invalidates it at once. The
//! account itself is read from the database on every request, so changes made
//! with `comgate admin` apply to the next CONNECT.
//!
//! Failed logins are limited per source address and per account (governor);
//! once a limit trips, that address or account is refused with 429 until the
//! quota refills, even with the right password.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use admin::store::{ProxyAccount, Store};
use dashmap::DashMap;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::connect_head::ProxyAuth;
use crate::refusal::Refusal;

/// Limits for failed logins.
#[derive(Debug, Clone, Copy)]
pub struct FailureLimits {
    pub per_address_per_minute: u32,
    pub per_address_burst: u32,
    pub per_account_per_minute: u32,
    pub per_account_burst: u32,
}

struct Remembered {
    /// The stored hash the password was verified against.
    phc: String,
    digest: [u8; 32],
}

/// Checks `Proxy-Authorization` against the proxy accounts in the store.
pub struct Authenticator {
    store: Store,
    salt: [u8; 32],
    remembered: DashMap<String, Remembered>,
    by_address: DefaultKeyedRateLimiter<IpAddr>,
    by_account: DefaultKeyedRateLimiter<String>,
    blocked_addresses: DashMap<IpAddr, Instant>,
    blocked_accounts: DashMap<String, Instant>,
    limits: FailureLimits,
}

/// Records one failure for `key`; returns how long to block if this one
/// exhausted the allowance.
fn trip<K>(
    limiter: &DefaultKeyedRateLimiter<K>,
    key: &K,
    burst: u32,
    per_minute: u32,
) -> Option<Duration>
where
    K: std::hash::Hash + Eq + Clone,
{
    if burst <= 1 {
        // Every failure blocks for one replenish interval.
        return Some(Duration::from_secs(60) / per_minute.max(1));
    }
    limiter
        .check_key(key)
        .err()
        .map(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
}

/// The quota that trips on the `burst`-th failure. Failures are counted
/// after the fact (`check_key` on each failure), and governor admits `burst`
/// cells before refusing, so the bucket holds one cell less than the number
/// of failures allowed (a burst of 1 is handled by [`trip`]).
fn quota(per_minute: u32, burst: u32) -> Quota {
    let per_minute = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
    let cells = NonZeroU32::new(burst.saturating_sub(1)).unwrap_or(NonZeroU32::MIN);
    Quota::per_minute(per_minute).allow_burst(cells)
}

impl Authenticator {
    pub fn new(store: Store, limits: FailureLimits) -> Arc<Self> {
        let mut salt = [0u8; 32];
        rand::fill(&mut salt);
        Arc::new(Authenticator {
            store,
            salt,
            remembered: DashMap::new(),
            by_address: DefaultKeyedRateLimiter::keyed(quota(
                limits.per_address_per_minute,
                limits.per_address_burst,
            )),
            by_account: DefaultKeyedRateLimiter::keyed(quota(
                limits.per_account_per_minute,
                limits.per_account_burst,
            )),
            blocked_addresses: DashMap::new(),
            blocked_accounts: DashMap::new(),
            limits,
        })
    }

    fn digest(&self, password: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.salt);
        h.update(password.as_bytes());
        h.finalize().into()
    }

    /// The account for these credentials, or why not.
    pub async fn authenticate(
        &self,
        peer: IpAddr,
        auth: Option<&ProxyAuth>,
    ) -> Result<ProxyAccount, Refusal> {
        let now = Instant::now();
        if let Some(until) = self.blocked_addresses.get(&peer).map(|e| *e) {
            if until > now {
                return Err(Refusal::TooManyFailures {
                    retry_after: until - now,
                });
            }
            self.blocked_addresses.remove(&peer);
        }
        let creds = match auth {
            None => return Err(Refusal::AuthRequired),
            Some(ProxyAuth::Basic(c)) => c,
            Some(ProxyAuth::Other) | Some(ProxyAuth::Malformed) => {
                self.failed(peer, None);
                return Err(Refusal::BadCredentials);
            }
        };
        let username = creds.username.as_str();
        if let Some(until) = self.blocked_accounts.get(username).map(|e| *e) {
            if until > now {
                return Err(Refusal::TooManyFailures {
                    retry_after: until - now,
                });
            }
            self.blocked_accounts.remove(username);
        }
        let account = self
            .store
            .find_proxy_account_by_username(username)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "proxy account lookup failed");
                Refusal::Internal
            })?;
        let password = creds.password.expose();
        let Some(account) = account else {
            // Spend the time of a real verification: response times must not
            // tell which usernames exist.
            admin::password::verify_nothing_async(password.to_owned()).await;
            self.failed(peer, Some(username));
            return Err(Refusal::BadCredentials);
        };
        let phc = account.password_hash.expose().to_owned();
        let digest = self.digest(password);
        let known = self
            .remembered
            .get(username)
            .is_some_and(|r| r.phc == phc && bool::from(r.digest.ct_eq(&digest)));
        if known {
            return Ok(account);
        }
        if admin::password::verify_password_async(phc.clone(), password.to_owned()).await {
            self.remembered
                .insert(username.to_owned(), Remembered { phc, digest });
            Ok(account)
        } else {
            self.failed(peer, Some(username));
            Err(Refusal::BadCredentials)
        }
    }

    /// Counts a failure; trips the block when a quota is exhausted.
    fn failed(&self, peer: IpAddr, username: Option<&str>) {
        let l = self.limits;
        if let Some(wait) = trip(
            &self.by_address,
            &peer,
            l.per_address_burst,
            l.per_address_per_minute,
        ) {
            tracing::warn!(%peer, wait_s = wait.as_secs(), "too many failed proxy logins from address");
            self.blocked_addresses.insert(peer, Instant::now() + wait);
        }
        if let Some(user) = username {
            let key = user.to_owned();
            if let Some(wait) = trip(
                &self.by_account,
                &key,
                l.per_account_burst,
                l.per_account_per_minute,
            ) {
                tracing::warn!(
                    account = user,
                    wait_s = wait.as_secs(),
                    "too many failed proxy logins for account"
                );
                self.blocked_accounts.insert(key, Instant::now() + wait);
            }
        }
    }

    /// Drops expired state so that memory stays bounded under scans.
    pub fn housekeeping(&self) {
        let now = Instant::now();
        self.blocked_addresses.retain(|_, until| *until > now);
        self.blocked_accounts.retain(|_, until| *until > now);
        self.by_address.retain_recent();
        self.by_account.retain_recent();
        self.by_address.shrink_to_fit();
        self.by_account.shrink_to_fit();
    }

    /// How long to wait between housekeeping runs.
    pub const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(60);
}
