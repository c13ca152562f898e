//! The time `weekdayRange`, `dateRange` and `timeRange` (and `new Date()`)
//! see, behind a trait, so that tests can fix the moment and the time zone.

use std::time::{SystemTime, UNIX_EPOCH};

/// Wall-clock time for the PAC.
pub trait PacClock: Send + Sync {
    /// Milliseconds since the Unix epoch (UTC).
    fn now_millis(&self) -> i64;
    /// Offset of local time from UTC at `unix_seconds`, in seconds.
    fn local_offset_seconds(&self, unix_seconds: i64) -> i32;
}

/// The system clock, with a local offset fixed when the clock is made.
///
/// The offset is fixed because reading the time zone is only reliable while
/// the process has a single thread (see [`SystemClock::detect`]); a PAC call
/// lasts milliseconds, so a daylight-saving change mid-run does not matter.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    offset_seconds: i32,
}

impl SystemClock {
    /// The system clock with the given local offset.
    pub fn with_offset(offset_seconds: i32) -> Self {
        SystemClock { offset_seconds }
    }

    /// The system clock with the machine's current local offset. Call it
    /// before starting threads: on Unix the offset cannot be read safely once
    /// the process has several, and the clock then falls back to UTC.
    pub fn detect() -> Self {
        let offset = time::UtcOffset::current_local_offset()
            .map(time::UtcOffset::whole_seconds)
            .unwrap_or(0);
        SystemClock::with_offset(offset)
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock::with_offset(0)
    }
}

impl PacClock for SystemClock {
    fn now_millis(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }

    fn local_offset_seconds(&self, _unix_seconds: i64) -> i32 {
        self.offset_seconds
    }
}

/// A clock stopped at one moment, for tests.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock {
    /// Milliseconds since the Unix epoch (UTC).
    pub millis: i64,
    /// Local offset from UTC in seconds.
    pub offset_seconds: i32,
}

impl PacClock for FixedClock {
    fn now_millis(&self) -> i64 {
        self.millis
    }

    fn local_offset_seconds(&self, _unix_seconds: i64) -> i32 {
        self.offset_seconds
    }
}
