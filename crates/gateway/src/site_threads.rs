//! Site threads: the data plane's cores, each a single-threaded runtime that
//! owns whole sites.
//!
//! A tunnel's bytes pass three sockets in serve: the partner's TLS
//! connection, the site's websocket, and the multiplexer between them. On a
//! multi-thread runtime the task reading one socket and the task writing the
//! other were often on different workers, so every chunk cost a cross-thread
//! wake-up (a futex and an epoll park on each side): 17 % of serve's samples
//! in a download's profile, and serve on one worker moved 5-20 % more
//! (BENCHMARKS.md, session 7). Here each connected site lives on one thread,
//! its multiplexer's reader and writer and every tunnel to it: a chunk goes
//! from one socket to the other without leaving that thread, and the
//! threads together still use every core, sites spread over them.
//!
//! The control runtime (accepting, TLS handshakes, CONNECT admission, the
//! database, the admin plane) stays a multi-thread runtime. A site's
//! connection moves to its thread once its hello is accepted, and a
//! partner's tunnel once its CONNECT is admitted: both then re-register
//! their socket with that thread's reactor ([`crate::movable_tcp`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Name prefix of the site threads (`comgate-site-0`, ...), as `top` and
/// `/proc/<pid>/task/*/comm` show them.
pub const THREAD_NAME: &str = "comgate-site";

/// The site threads of one serve.
pub struct SiteThreads {
    threads: Vec<SiteThread>,
    /// Dropping these ends the threads' runtimes (see [`SiteThreads::stop`]).
    stops: Mutex<Vec<oneshot::Sender<()>>>,
}

struct SiteThread {
    handle: Handle,
    /// Sites living on this thread now.
    sites: AtomicUsize,
}

impl SiteThreads {
    /// Starts `count` threads (at least one), each running a current-thread
    /// runtime with I/O and timers until [`SiteThreads::stop`] or drop.
    pub fn start(count: usize) -> std::io::Result<Arc<Self>> {
        Self::start_named(count, THREAD_NAME)
    }

    /// [`SiteThreads::start`] with threads named `<name>-<index>`.
    pub fn start_named(count: usize, name: &str) -> std::io::Result<Arc<Self>> {
        let mut threads = Vec::new();
        let mut stops = Vec::new();
        for index in 0..count.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let handle = runtime.handle().clone();
            let (stop, stopped) = oneshot::channel::<()>();
            std::thread::Builder::new()
                .name(format!("{name}-{index}"))
                .spawn(move || {
                    // Either a stop or the sender dropped ends the thread;
                    // dropping the runtime then drops its tasks.
                    let _ = runtime.block_on(stopped);
                })?;
            threads.push(SiteThread {
                handle,
                sites: AtomicUsize::new(0),
            });
            stops.push(stop);
        }
        Ok(Arc::new(SiteThreads {
            threads,
            stops: Mutex::new(stops),
        }))
    }

    /// The runtime of thread `index` (0-based, below [`SiteThreads::len`]).
    pub fn handle(&self, index: usize) -> &Handle {
        &self.threads[index].handle
    }

    /// The number of site threads.
    pub fn len(&self) -> usize {
        self.threads.len()
    }

    pub fn is_empty(&self) -> bool {
        self.threads.is_empty()
    }

    /// A home for a new site: the thread with the fewest sites now. The
    /// returned lease counts the site there until it is dropped.
    pub fn lease(self: &Arc<Self>) -> SiteHome {
        let index = self
            .threads
            .iter()
            .enumerate()
            .min_by_key(|(_, t)| t.sites.load(Ordering::Relaxed))
            .map_or(0, |(i, _)| i);
        self.threads[index].sites.fetch_add(1, Ordering::Relaxed);
        SiteHome {
            threads: self.clone(),
            index,
        }
    }

    /// Sites living on each thread now, in thread order.
    pub fn sites_per_thread(&self) -> Vec<usize> {
        self.threads
            .iter()
            .map(|t| t.sites.load(Ordering::Relaxed))
            .collect()
    }

    /// Ends every thread's runtime: their tasks (site sessions, tunnels)
    /// are dropped. Threads already stopped are left alone.
    pub fn stop(&self) {
        if let Ok(mut stops) = self.stops.lock() {
            for stop in stops.drain(..) {
                let _ = stop.send(());
            }
        }
    }
}

/// The thread a site lives on; held by the site's hub entry for as long as
/// the site is connected.
pub struct SiteHome {
    threads: Arc<SiteThreads>,
    index: usize,
}

impl SiteHome {
    /// Which site thread (0-based).
    pub fn index(&self) -> usize {
        self.index
    }

    /// The runtime of the site's thread.
    pub fn handle(&self) -> &Handle {
        &self.threads.threads[self.index].handle
    }

    /// The thread for the site's interactive work (its quick lane, and its
    /// tunnels until they turn bulk: [`crate::relay::Placement`]): the next
    /// site thread, so that a keystroke's echo does not wait behind the
    /// site's bulk bytes on a thread that is always busy; `None` when there
    /// is only one site thread.
    pub fn quick_handle(&self) -> Option<&Handle> {
        let count = self.threads.threads.len();
        (count > 1).then(|| &self.threads.threads[(self.index + 1) % count].handle)
    }

    /// Runs `task` on the site's thread.
    pub fn spawn<F>(&self, task: F) -> JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle().spawn(task)
    }
}

impl Drop for SiteHome {
    fn drop(&mut self) {
        self.threads.threads[self.index]
            .sites
            .fetch_sub(1, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for SiteHome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{THREAD_NAME}-{}", self.index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thread_name() -> String {
        std::thread::current().name().unwrap_or("").to_owned()
    }

    #[tokio::test]
    async fn sites_go_to_the_least_loaded_thread_and_leave_it_on_drop() {
        let threads = SiteThreads::start(3).unwrap();
        let a = threads.lease();
        let b = threads.lease();
        let c = threads.lease();
        let mut homes = vec![a.index(), b.index(), c.index()];
        homes.sort();
        assert_eq!(homes, vec![0, 1, 2], "one site per thread first");
        assert_eq!(threads.sites_per_thread(), vec![1, 1, 1]);
        let freed = b.index();
        drop(b);
        let d = threads.lease();
        assert_eq!(d.index(), freed, "the emptied thread is chosen next");
        let e = threads.lease();
        assert_eq!(threads.sites_per_thread().iter().sum::<usize>(), 4);
        assert!(threads.sites_per_thread().iter().all(|&n| n >= 1));
        drop((a, c, d, e));
        assert_eq!(threads.sites_per_thread(), vec![0, 0, 0]);
        threads.stop();
    }

    #[tokio::test]
    async fn a_site_s_tasks_run_on_its_own_named_thread() {
        let threads = SiteThreads::start(2).unwrap();
        let first = threads.lease();
        let second = threads.lease();
        let on_first = first.spawn(async { thread_name() }).await.unwrap();
        let on_second = second.spawn(async { thread_name() }).await.unwrap();
        assert_eq!(on_first, format!("{THREAD_NAME}-{}", first.index()));
        assert_eq!(on_second, format!("{THREAD_NAME}-{}", second.index()));
        assert_ne!(on_first, on_second);
        // Tasks spawned from a site's task stay on its thread.
        let nested = first
            .spawn(async { tokio::spawn(async { thread_name() }).await.unwrap() })
            .await
            .unwrap();
        assert_eq!(nested, on_first);
        threads.stop();
    }

    #[tokio::test]
    async fn stop_ends_the_threads_and_drops_their_tasks() {
        let threads = SiteThreads::start(1).unwrap();
        let home = threads.lease();
        let (tx, rx) = oneshot::channel::<()>();
        // A task that would wait forever; its sender is dropped with it.
        let task = home.spawn(async move {
            let _tx = tx;
            std::future::pending::<()>().await
        });
        threads.stop();
        assert!(rx.await.is_err(), "the task was dropped");
        assert!(task.await.unwrap_err().is_cancelled());
    }
}
