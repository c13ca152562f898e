//! Reconnect delays: exponential, capped, with jitter.
//!
//! After a gateway restart every site reconnects at once unless the delays
//! are spread: each delay is drawn uniformly from [base/2, base] where base
//! doubles per failure up to the cap ("equal jitter"). A session that stayed
//! up resets the base.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max,
            current: initial,
        }
    }

    /// The delay before the next attempt; grows the base for the one after.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.current;
        self.current = (self.current * 2).min(self.max);
        let half = base / 2;
        let jitter_ms = rand::random_range(0..=half.as_millis().max(1) as u64);
        half + Duration::from_millis(jitter_ms)
    }

    /// Jumps to the cap: the next delays are the longest.
    pub fn saturate(&mut self) {
        self.current = self.max;
    }

    pub fn reset(&mut self) {
        self.current = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_is_capped_and_jittered() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(8));
        let delays: Vec<Duration> = (0..10).map(|_| b.next_delay()).collect();
        for d in &delays {
            assert!(
                *d >= Duration::from_millis(250) && *d <= Duration::from_millis(8001),
                "{d:?}"
            );
        }
        assert!(
            delays[9] >= Duration::from_secs(4),
            "reaches the cap: {delays:?}"
        );
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(501));
        // Jitter: a thousand agents do not all pick the same delay.
        let mut set = std::collections::HashSet::new();
        for _ in 0..100 {
            set.insert(Backoff::new(Duration::from_secs(8), Duration::from_secs(8)).next_delay());
        }
        assert!(set.len() > 50);
    }
}
