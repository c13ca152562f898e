//! What every handler of the API shares: the store, the gateway's live view
//! of connected sites, the settings, and the clock.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::failure_limit::{FailureLimiter, FailureQuota};
use crate::remote_support::Deployment;
use crate::store::{Actor, AuditEvent};
use crate::{LoginPolicy, Store};

/// What the running gateway knows and the database does not: which systems
/// have an agent connected right now. The admin crate cannot see the
/// gateway's hub, so the gateway hands it in through this.
pub trait LiveStatus: Send + Sync {
    /// Whether an agent of `customer`'s system with address label
    /// `system_label` is connected now.
    fn is_connected(&self, customer: &str, system_label: &str) -> bool;
}

/// No gateway in this process (tests of the API alone): nothing is connected.
pub struct NothingConnected;

impl LiveStatus for NothingConnected {
    fn is_connected(&self, _: &str, _: &str) -> bool {
        false
    }
}

/// Unix seconds, as the API sees them. Tests set it; serve uses the system clock.
pub trait Clock: Send + Sync {
    fn now(&self) -> i64;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// A clock that stands still until moved (tests of timeouts and blocks).
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(now: i64) -> Self {
        ManualClock(AtomicI64::new(now))
    }

    pub fn advance(&self, secs: i64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Settings of the API.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// The failed-login rule (manual: 3 in 10 minutes block for 10).
    pub login_policy: LoginPolicy,
    /// Failed logins allowed per client address, whatever the login name
    /// (a guesser trying many names).
    pub address_quota: FailureQuota,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// How many previous passwords a new one must differ from.
    pub password_history: usize,
    /// This deployment's remote-support address parts.
    pub deployment: Deployment,
    /// The newest system software version on offer; systems below it show
    /// "New Version Available". `None`: no icon.
    pub available_version: Option<String>,
}

impl ApiConfig {
    pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;
    pub const DEFAULT_PASSWORD_HISTORY: usize = 5;

    pub fn new(deployment: Deployment) -> Self {
        ApiConfig {
            login_policy: LoginPolicy::default(),
            address_quota: FailureQuota {
                per_minute: 30,
                burst: 10,
            },
            max_body_bytes: Self::DEFAULT_MAX_BODY_BYTES,
            password_history: Self::DEFAULT_PASSWORD_HISTORY,
            deployment,
            available_version: None,
        }
    }
}

/// The shared state; cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    pub store: Store,
    pub live: Arc<dyn LiveStatus>,
    pub clock: Arc<dyn Clock>,
    pub config: Arc<ApiConfig>,
    /// Failed logins per client address.
    pub login_failures: Arc<FailureLimiter<String>>,
    /// One login attempt at a time per login name, so that simultaneous
    /// guesses cannot all pass the failed-login check before any failure
    /// is counted (the check and the count are separate statements).
    pub login_turns: Arc<dashmap::DashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl ApiState {
    pub fn new(store: Store, live: Arc<dyn LiveStatus>, config: ApiConfig) -> Self {
        ApiState {
            store,
            live,
            clock: Arc::new(SystemClock),
            login_failures: Arc::new(FailureLimiter::new(config.address_quota)),
            login_turns: Arc::default(),
            config: Arc::new(config),
        }
    }

    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Waits for the turn of login name `username`.
    pub async fn login_turn(&self, username: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let turn = self
            .login_turns
            .entry(username.to_owned())
            .or_default()
            .clone();
        turn.lock_owned().await
    }

    /// Forgets the turns nobody holds or waits for (housekeeping).
    pub fn forget_idle_login_turns(&self) {
        self.login_turns
            .retain(|_, turn| Arc::strong_count(turn) > 1);
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// Writes an audit record. A failure to write it is logged, not turned
    /// into a failure of the request: the change it describes is already made.
    pub async fn audit(&self, actor: &Actor, event: AuditEvent) {
        if let Err(e) = self.store.record_audit(actor, &event, self.now()).await {
            tracing::error!(error = %e, action = event.action, target = %event.target, "audit record not written");
        }
    }
}
