//! The kernel scheduling policy of serve's and the agent's threads
//! (`scheduling` in either config).
//!
//! Every hop of a tunnel is a loopback or LAN write that wakes the next
//! process: the partner's TLS wakes serve, serve's site write wakes the
//! agent, the agent's write wakes the target. Under the kernel's default
//! policy a woken thread preempts its waker on the waker's CPU, so the
//! waker is switched out in the middle of its `writev` and switched back
//! in later only to return to `epoll_wait`: two extra context switches per
//! hop, each several microseconds on a virtual machine. `SCHED_BATCH`
//! threads do not preempt on wake-up (the kernel still gives them their
//! fair share of CPU at the same nice level); the waker finishes its turn
//! and sleeps, and the woken thread runs next on the same CPU. Measured
//! in pairs against the default policy (BENCHMARKS.md, session 16): the
//! idle round trip 5-25 % shorter and 0-30 % more set-ups per second,
//! depending on the host's state; throughput and the round trip beside a
//! saturated stream no worse.
//!
//! It is also the polite policy for an agent that shares its host with a
//! phone system: its threads never push a running process off its CPU
//! early. `normal` keeps the default policy.
//!
//! The policy is set before any runtime starts, on every thread the
//! process has by then (the allocator's background threads start before
//! `main`); every thread created afterwards inherits it.

use serde::Deserialize;

/// A process's scheduling policy, as the config names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheduling {
    /// `SCHED_BATCH`: no wake-up preemption.
    #[default]
    Batch,
    /// `SCHED_OTHER`: the kernel's default.
    Normal,
}

/// Why the policy could not be set.
#[derive(Debug, thiserror::Error)]
pub enum SchedulingError {
    #[error("cannot set the {policy:?} scheduling policy: {source}")]
    Set {
        policy: Scheduling,
        source: std::io::Error,
    },
    #[error("scheduling policies are only supported on Linux")]
    Unsupported,
}

/// Sets `policy` on every thread of the process (the caller among them);
/// threads they start afterwards inherit it.
#[cfg(target_os = "linux")]
pub fn apply(policy: Scheduling) -> Result<(), SchedulingError> {
    let kernel_policy = match policy {
        Scheduling::Batch => libc::SCHED_BATCH,
        Scheduling::Normal => libc::SCHED_OTHER,
    };
    let failed = |source| SchedulingError::Set { policy, source };
    for task in std::fs::read_dir("/proc/self/task").map_err(failed)? {
        let Some(tid) = task.ok().and_then(|t| t.file_name().to_str()?.parse().ok()) else {
            continue;
        };
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: `param` is a valid, initialised sched_param that outlives
        // the call.
        if unsafe { libc::sched_setscheduler(tid, kernel_policy, &param) } != 0 {
            let e = std::io::Error::last_os_error();
            // ESRCH: a thread that ended since the listing.
            if e.raw_os_error() != Some(libc::ESRCH) {
                return Err(failed(e));
            }
        }
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
pub fn apply(_policy: Scheduling) -> Result<(), SchedulingError> {
    Err(SchedulingError::Unsupported)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The calling thread's policy, as the kernel reports it.
    fn policy_here() -> libc::c_int {
        // SAFETY: pid 0 is the calling thread; no pointers are passed.
        unsafe { libc::sched_getscheduler(0) }
    }

    /// One test for both policies: `apply` changes every thread of the
    /// test process, so two tests would race.
    #[test]
    fn every_thread_takes_the_policy_and_passes_it_on() {
        let (to_other, from_other) = std::sync::mpsc::channel::<()>();
        let (to_test, from_test) = std::sync::mpsc::channel();
        // A thread that exists before `apply`, as the allocator's do.
        let earlier = std::thread::spawn(move || {
            while from_other.recv().is_ok() {
                to_test.send(policy_here()).unwrap();
            }
        });
        for (policy, expected) in [
            (Scheduling::Batch, libc::SCHED_BATCH),
            (Scheduling::Normal, libc::SCHED_OTHER),
        ] {
            apply(policy).unwrap();
            assert_eq!(policy_here(), expected);
            to_other.send(()).unwrap();
            assert_eq!(
                from_test.recv().unwrap(),
                expected,
                "a thread started earlier"
            );
            let later = std::thread::spawn(policy_here);
            assert_eq!(later.join().unwrap(), expected, "a thread started later");
        }
        drop(to_other);
        earlier.join().unwrap();
    }
}
