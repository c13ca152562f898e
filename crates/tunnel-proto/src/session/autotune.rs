//! Receive-window auto-tuning: how large a stream's window has to be.
//!
//! One stream moves at most one window per round trip, so a fixed window is
//! wrong somewhere: large enough for a site 20 ms away, it lets a bulk
//! stream park megabytes in the site link's socket buffers on a near link,
//! in front of every other stream's bytes (head-of-line latency); small
//! enough for that, it caps a distant site. So streams start small and the
//! receiver grows the window while growing it pays, the way gRPC's BDP
//! estimator does for HTTP/2: it sends a PING when data arrives, counts the
//! bytes that arrive until the PONG, and if those filled most of the window
//! and either the round trip was the link's own (within a quarter of the
//! shortest seen: nothing queued, so the window was the limit) or the rate
//! they make is clearly above the best seen so far, the window becomes four
//! times that sample in the first case (slow start: a distant site reaches
//! its window in a few round trips) and twice it in the second (each stream
//! takes it when its reader has caught up, so a stalled stream keeps its
//! small buffer). When the link or the reader
//! (CPU) is the limit, a larger window only adds queue: the round trip grows
//! with it, the rate does not, and the window stays.
//!
//! The round-trip test is the one a distant link needs: its rate samples
//! are noisy (CPU contention at either end), and a lucky sample once set a
//! best rate that the next honest samples did not beat by the margin,
//! holding a 20 ms site at a 5 MiB window for a second of a transfer. A
//! near link cannot pass it once the window is larger than its tiny
//! bandwidth-delay product: filling the window then takes longer than the
//! shortest round trip.
//!
//! The peer answers PINGs before queued data (control frames go first), so
//! the round trip measured is the link's, plus the queues below the
//! multiplexer.
//!
//! Those queues are what every other stream of the site waits behind: a
//! bulk stream's window, once larger than the link needs, parks the excess
//! in the socket buffers between the two ends, and a neighbour's keystroke
//! queues behind it. So the rate test also has a queue budget: a window
//! grows for a better rate only while its probe waited at most
//! [`QUEUE_BUDGET`] longer than the shortest round trip. On loopback (the
//! reader's CPU is the limit) a window's bytes beyond what the link needs
//! are all queue: 256 KiB adds about 0.25 ms at 1 GB/s. A tighter budget
//! (100 us) held windows lower but cost a fourteenth of one stream's upload
//! without a measurable gain in latency (BENCHMARKS.md, session 9).
//!
//! The first probe has no shortest round trip to compare with, so it can
//! only pass the rate test: it doubles, and the fourfold slow start begins
//! from the second probe.

use std::time::{Duration, Instant};

/// PING payloads with this bit are window probes; heartbeats count up from 0.
pub(crate) const PROBE_TAG: u64 = 1 << 63;
/// Probes are at least this far apart, so a near link is not flooded with
/// PINGs (one per round trip would be thousands per second on loopback).
const MIN_PROBE_GAP: Duration = Duration::from_millis(1);
/// Only a DATA frame at least this long starts a probe. A window-bound
/// sender has a backlog and sends full frames (16 or 64 KiB), so a shorter
/// frame comes from a stream that had no more to send: its probe could not
/// fill the window, and its PING and PONG would only add two messages and
/// wake-ups at both ends to an interactive stream's round trip.
const PROBE_START_LEN: u32 = 8 * 1024;
/// The window grows only if the sample's rate beats the best so far by this
/// factor: rate samples are noisy, and noise must not ratchet it up. 1.25
/// kept windows near 512 KiB on loopback and cost a tenth of the throughput
/// there (bigger batches per wake-up); 1.1 gives that back (BENCHMARKS.md).
const GAIN: f64 = 1.1;
/// A round trip at most this many times the shortest seen had nothing
/// queued in it: the window, not the link or the reader, was the limit.
const UNQUEUED_RTT: f64 = 1.25;
/// The new window, as a multiple of the probe's bytes, when the round trip
/// shows nothing queued: the stream is window-bound, so the window grows
/// like TCP's slow start. Doubling took a 20 ms site eight probes (0.35 s
/// of a 0.75 s transfer) to reach 16 MiB, because a probe only sees the
/// part of the window that is in flight.
const UNQUEUED_GROWTH: u64 = 4;
/// The new window, as a multiple of the probe's bytes, when only the rate
/// test passed (the round trip grew: some queue, so grow with care).
const RATE_GROWTH: u64 = 2;
/// The most a probe may have waited in queues (its round trip above the
/// shortest seen) for the rate test to grow the window: the head-of-line
/// delay one stream's window may add for its neighbours on a near link.
const QUEUE_BUDGET: Duration = Duration::from_micros(250);

#[derive(Debug)]
pub(crate) struct WindowTuner {
    /// The window new streams get, and every stream's current size.
    pub window: u32,
    max: u32,
    probe: Option<Probe>,
    next_probe: Option<Instant>,
    seq: u64,
    best_rate: f64,
    min_rtt: Option<Duration>,
}

#[derive(Debug)]
struct Probe {
    seq: u64,
    sent: Instant,
    bytes: u64,
}

impl WindowTuner {
    pub fn new(initial: u32, max: u32) -> Self {
        WindowTuner {
            window: initial,
            max: max.max(initial),
            probe: None,
            next_probe: None,
            seq: 0,
            best_rate: 0.0,
            min_rtt: None,
        }
    }

    /// Counts `len` received DATA bytes at `now`; returns the payload of a
    /// PING to send when a new probe starts.
    pub fn on_data(&mut self, len: u32, now: Instant) -> Option<u64> {
        if let Some(p) = &mut self.probe {
            p.bytes += u64::from(len);
            return None;
        }
        if len < PROBE_START_LEN
            || self.window >= self.max
            || self.next_probe.is_some_and(|t| now < t)
        {
            return None;
        }
        self.seq = self.seq.wrapping_add(1) & !PROBE_TAG;
        self.probe = Some(Probe {
            seq: self.seq,
            sent: now,
            bytes: u64::from(len),
        });
        Some(PROBE_TAG | self.seq)
    }

    /// A PONG with a probe's payload arrived at `now`. Returns the new window
    /// when it grows.
    pub fn on_pong(&mut self, data: u64, now: Instant) -> Option<u32> {
        if data & PROBE_TAG == 0 {
            return None;
        }
        let probe = self.probe.take_if(|p| p.seq == data & !PROBE_TAG)?;
        let rtt = now.saturating_duration_since(probe.sent);
        self.next_probe = Some(now + rtt.max(MIN_PROBE_GAP));
        let rate = probe.bytes as f64 / rtt.as_secs_f64().max(1e-6);
        let filled = probe.bytes.saturating_mul(3) >= u64::from(self.window) * 2;
        // The first probe is its own shortest round trip: it proves nothing
        // about queues, so only the rate test (trivially passed) applies.
        let first = self.min_rtt.is_none();
        let min_rtt = self.min_rtt.map_or(rtt, |m| m.min(rtt));
        self.min_rtt = Some(min_rtt);
        let unqueued = !first && rtt.as_secs_f64() <= min_rtt.as_secs_f64() * UNQUEUED_RTT;
        let queued_within_budget = rtt.saturating_sub(min_rtt) <= QUEUE_BUDGET;
        let growth = if !filled {
            None
        } else if unqueued {
            Some(UNQUEUED_GROWTH)
        } else if queued_within_budget && rate > self.best_rate * GAIN {
            Some(RATE_GROWTH)
        } else {
            None
        };
        self.best_rate = self.best_rate.max(rate);
        tracing::trace!(
            rtt_us = rtt.as_micros() as u64,
            min_rtt_us = min_rtt.as_micros() as u64,
            bytes = probe.bytes,
            window = self.window,
            growth,
            "window probe"
        );
        let growth = growth?;
        let target = probe.bytes.saturating_mul(growth).min(u64::from(self.max)) as u32;
        if target <= self.window {
            return None;
        }
        self.window = target;
        Some(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: u32 = 1024;

    /// Feeds `bytes` in one probe that takes `rtt`; returns the new window.
    fn round(t: &mut WindowTuner, at: &mut Instant, bytes: u32, rtt: Duration) -> Option<u32> {
        let ping = t.on_data(16 * KIB, *at).expect("a probe starts");
        t.on_data(bytes - 16 * KIB, *at);
        *at += rtt;
        let grown = t.on_pong(ping, *at);
        *at += MIN_PROBE_GAP.max(rtt);
        grown
    }

    #[test]
    fn a_window_bound_stream_grows_fourfold_while_nothing_queues() {
        let mut t = WindowTuner::new(256 * KIB, 16 << 20);
        let mut now = Instant::now();
        let rtt = Duration::from_millis(20);
        // The first probe has nothing to compare its round trip with: it
        // can only double the window.
        assert_eq!(round(&mut t, &mut now, 256 * KIB, rtt), Some(512 * KIB));
        // Then each round trip carries the whole window at the link's own
        // round trip: window-bound (a distant link), so it grows like slow
        // start.
        let mut window = t.window;
        for _ in 0..3 {
            let grown = round(&mut t, &mut now, window, rtt).expect("grows");
            assert_eq!(grown, (window * 4).min(16 << 20));
            window = grown;
        }
        assert_eq!(t.window, 16 << 20);
        assert_eq!(t.on_data(16 * KIB, now), None, "no probes at the maximum");
    }

    #[test]
    fn a_longer_round_trip_with_the_same_rate_does_not_grow_it_again() {
        let mut t = WindowTuner::new(256 * KIB, 16 << 20);
        let mut now = Instant::now();
        // Near link: the first sample sets the shortest round trip and the
        // rate, and grows the window.
        assert_eq!(
            round(&mut t, &mut now, 256 * KIB, Duration::from_micros(800)),
            Some(512 * KIB)
        );
        // The reader is the limit: twice the bytes take twice as long, the
        // rate stays, so the window stays.
        for _ in 0..5 {
            assert_eq!(
                round(&mut t, &mut now, 512 * KIB, Duration::from_micros(1600)),
                None
            );
        }
        assert_eq!(t.window, 512 * KIB);
    }

    #[test]
    fn a_queued_round_trip_grows_only_on_a_clearly_better_rate_and_only_twofold() {
        let mut t = WindowTuner::new(256 * KIB, 16 << 20);
        let mut now = Instant::now();
        assert_eq!(
            round(&mut t, &mut now, 256 * KIB, Duration::from_micros(400)),
            Some(512 * KIB)
        );
        // Half again the round trip (a queue of 200 us, within the budget)
        // and no better than 1.1 times the best rate: stays.
        assert_eq!(
            round(&mut t, &mut now, 352 * KIB, Duration::from_micros(600)),
            None
        );
        // The same queue at 1.25 times the rate: doubles.
        assert_eq!(
            round(&mut t, &mut now, 480 * KIB, Duration::from_micros(600)),
            Some(960 * KIB)
        );
        assert_eq!(t.window, 960 * KIB);
    }

    #[test]
    fn a_better_rate_does_not_grow_a_window_whose_probe_queued_past_the_budget() {
        let mut t = WindowTuner::new(256 * KIB, 16 << 20);
        let mut now = Instant::now();
        assert_eq!(
            round(&mut t, &mut now, 256 * KIB, Duration::from_micros(300)),
            Some(512 * KIB)
        );
        // Each probe makes a clearly better rate, but waited 300 us and more
        // in queues: the bytes the window would add would park in front of
        // every other stream, so it stays.
        for (kib, us) in [(512, 600), (512, 560), (640, 600)] {
            assert_eq!(
                round(&mut t, &mut now, kib * KIB, Duration::from_micros(us)),
                None,
                "{kib} KiB in {us} us"
            );
        }
        assert_eq!(t.window, 512 * KIB);
        // Within the budget the same gain grows it.
        assert_eq!(
            round(&mut t, &mut now, 512 * KIB, Duration::from_micros(400)),
            Some(1024 * KIB)
        );
    }

    #[test]
    fn a_distant_link_grows_past_a_lucky_rate_sample_while_nothing_queues() {
        let mut t = WindowTuner::new(256 * KIB, 32 << 20);
        let mut now = Instant::now();
        let rtt = Duration::from_millis(20);
        // A lucky first sample: twice the window's worth in one round trip
        // (a burst that was queued before the probe), so a high best rate.
        assert_eq!(round(&mut t, &mut now, 512 * KIB, rtt), Some(1024 * KIB));
        // Honest window-bound samples at the link's round trip make less
        // than 1.1 times that rate (per byte of window), yet the window
        // keeps growing: the round trip shows nothing was queued.
        assert_eq!(round(&mut t, &mut now, 1000 * KIB, rtt), Some(4000 * KIB));
        assert_eq!(
            round(&mut t, &mut now, 4000 * KIB, rtt + Duration::from_millis(4)),
            Some(16000 * KIB)
        );
        // A round trip well above the shortest (a queue) at a rate that is
        // no better: the window stays.
        assert_eq!(
            round(&mut t, &mut now, 11000 * KIB, Duration::from_millis(80)),
            None
        );
        assert_eq!(t.window, 16000 * KIB);
    }

    #[test]
    fn a_stream_that_does_not_fill_its_window_does_not_grow_it() {
        let mut t = WindowTuner::new(256 * KIB, 16 << 20);
        let mut now = Instant::now();
        assert_eq!(
            round(&mut t, &mut now, 64 * KIB, Duration::from_millis(20)),
            None
        );
        assert_eq!(t.window, 256 * KIB);
    }

    #[test]
    fn probes_are_spaced_and_only_their_own_pong_counts() {
        let mut t = WindowTuner::new(256 * KIB, 16 << 20);
        let now = Instant::now();
        let ping = t.on_data(16 * KIB, now).unwrap();
        assert_eq!(t.on_data(16 * KIB, now), None, "one probe at a time");
        assert_eq!(t.on_pong(7, now), None, "a heartbeat PONG is not a probe");
        assert_eq!(t.on_pong(ping ^ 1, now), None, "a stale probe");
        let later = now + Duration::from_micros(100);
        assert_eq!(t.on_pong(ping, later), None);
        assert_eq!(
            t.on_data(16 * KIB, later),
            None,
            "too soon after the last probe"
        );
        assert!(t.on_data(16 * KIB, later + MIN_PROBE_GAP).is_some());
    }

    #[test]
    fn only_a_full_sized_frame_starts_a_probe() {
        let mut t = WindowTuner::new(256 * KIB, 16 << 20);
        let now = Instant::now();
        for len in [1, 64, 1400, PROBE_START_LEN - 1] {
            assert_eq!(t.on_data(len, now), None, "a {len}-byte frame");
        }
        let ping = t.on_data(PROBE_START_LEN, now).expect("a probe starts");
        // Once started, every frame counts, whatever its size.
        assert_eq!(t.on_data(100, now), None);
        let probe = t.probe.as_ref().expect("the probe is open");
        assert_eq!(
            (probe.seq, probe.bytes),
            (ping & !PROBE_TAG, 8 * 1024 + 100)
        );
    }
}
