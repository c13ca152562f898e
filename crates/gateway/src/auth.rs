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
use std::sync::Arc;
use std::time::Duration;

use admin::failure_limit::{FailureLimiter, FailureQuota};
use admin::store::{ProxyAccount, Store};
use dashmap::DashMap;
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
    by_address: FailureLimiter<IpAddr>,
    by_account: FailureLimiter<String>,
}

impl Authenticator {
    pub fn new(store: Store, limits: FailureLimits) -> Arc<Self> {
        let mut salt = [0u8; 32];
        rand::fill(&mut salt);
        Arc::new(Authenticator {
            store,
            salt,
            remembered: DashMap::new(),
            by_address: FailureLimiter::new(FailureQuota {
                per_minute: limits.per_address_per_minute,
                burst: limits.per_address_burst,
            }),
            by_account: FailureLimiter::new(FailureQuota {
                per_minute: limits.per_account_per_minute,
                burst: limits.per_account_burst,
            }),
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
        if let Some(retry_after) = self.by_address.blocked_for(&peer) {
            return Err(Refusal::TooManyFailures { retry_after });
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
        if let Some(retry_after) = self.by_account.blocked_for(&username.to_owned()) {
            return Err(Refusal::TooManyFailures { retry_after });
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
        if let Some(wait) = self.by_address.failed(&peer) {
            tracing::warn!(%peer, wait_s = wait.as_secs(), "too many failed proxy logins from address");
        }
        if let Some(user) = username {
            if let Some(wait) = self.by_account.failed(&user.to_owned()) {
                tracing::warn!(
                    account = user,
                    wait_s = wait.as_secs(),
                    "too many failed proxy logins for account"
                );
            }
        }
    }

    /// Drops expired state so that memory stays bounded under scans.
    pub fn housekeeping(&self) {
        self.by_address.housekeeping();
        self.by_account.housekeeping();
    }

    /// How long to wait between housekeeping runs.
    pub const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(60);
}
