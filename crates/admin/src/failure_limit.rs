//! Failed-login limits per key (a source address, an account): once a key
//! has failed `burst` times faster than `per_minute` refills, it is refused
//! until the quota refills, even with the right password. The front door
//! keys its proxy logins by address and by account; the admin API keys its
//! COM logins by address (the per-name block of the manual is the store's
//! `LoginPolicy`).

use std::hash::Hash;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

/// Failures allowed per key: `burst` at once, refilled at `per_minute`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureQuota {
    pub per_minute: u32,
    pub burst: u32,
}

/// The failure count and blocks of one kind of key.
pub struct FailureLimiter<K: Hash + Eq + Clone> {
    quota: FailureQuota,
    limiter: DefaultKeyedRateLimiter<K>,
    blocked: DashMap<K, Instant>,
}

impl<K: Hash + Eq + Clone> FailureLimiter<K> {
    pub fn new(quota: FailureQuota) -> Self {
        // Failures are counted after the fact (a check per failure), and
        // governor admits `burst` cells before refusing, so the bucket
        // holds one cell less than the number of failures allowed (a burst
        // of 1 is handled in `failed`).
        let per_minute = NonZeroU32::new(quota.per_minute).unwrap_or(NonZeroU32::MIN);
        let cells = NonZeroU32::new(quota.burst.saturating_sub(1)).unwrap_or(NonZeroU32::MIN);
        FailureLimiter {
            quota,
            limiter: DefaultKeyedRateLimiter::keyed(
                Quota::per_minute(per_minute).allow_burst(cells),
            ),
            blocked: DashMap::new(),
        }
    }

    /// How much longer `key` is blocked, if it is.
    pub fn blocked_for(&self, key: &K) -> Option<Duration> {
        let until = self.blocked.get(key).map(|e| *e)?;
        let now = Instant::now();
        if until > now {
            return Some(until - now);
        }
        self.blocked.remove(key);
        None
    }

    /// Counts a failure of `key`; returns how long it is blocked if this
    /// failure exhausted its allowance.
    pub fn failed(&self, key: &K) -> Option<Duration> {
        let wait = if self.quota.burst <= 1 {
            // Every failure blocks for one refill interval.
            Some(Duration::from_secs(60) / self.quota.per_minute.max(1))
        } else {
            self.limiter
                .check_key(key)
                .err()
                .map(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
        }?;
        self.blocked.insert(key.clone(), Instant::now() + wait);
        Some(wait)
    }

    /// Drops expired state so that memory stays bounded under scans.
    pub fn housekeeping(&self) {
        let now = Instant::now();
        self.blocked.retain(|_, until| *until > now);
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_burst_th_failure_blocks_and_others_keys_are_not_affected() {
        let limiter = FailureLimiter::new(FailureQuota {
            per_minute: 1,
            burst: 3,
        });
        assert_eq!(limiter.failed(&"a"), None);
        assert_eq!(limiter.failed(&"a"), None);
        assert_eq!(limiter.blocked_for(&"a"), None);
        let wait = limiter.failed(&"a").expect("third failure blocks");
        assert!(wait > Duration::from_secs(50), "{wait:?}");
        assert!(limiter.blocked_for(&"a").is_some());
        assert_eq!(limiter.blocked_for(&"b"), None);
        assert_eq!(limiter.failed(&"b"), None);
    }

    #[test]
    fn a_burst_of_one_blocks_at_the_first_failure() {
        let limiter = FailureLimiter::new(FailureQuota {
            per_minute: 60,
            burst: 1,
        });
        assert_eq!(limiter.failed(&1), Some(Duration::from_secs(1)));
        assert!(limiter.blocked_for(&1).is_some());
    }
}
