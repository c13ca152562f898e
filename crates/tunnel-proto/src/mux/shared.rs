//! State shared by the driver tasks, the handles and the streams: the
//! [`Session`] behind one mutex, plus the wakers of whoever waits on it.
//!
//! Locks are held only for a few session calls, never across an await, and
//! nothing that locks on drop (a stream handle) is ever dropped while the
//! lock is held. The one shutdown path is [`Shared::shutdown`].

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;

use bytes::Bytes;
use tokio::sync::{oneshot, Notify};

use super::{CloseReason, IncomingEvent, IncomingStream, OpenError, INCOMING_BACKLOG};
use crate::codes;
use crate::session::{Event, Lane, Session, StreamEnd};

/// Which lanes have frames to send; the writers to wake after a lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Queued {
    main: bool,
    quick: bool,
}

impl Queued {
    /// Something was queued on the main lane (OPEN, say).
    pub const MAIN: Queued = Queued {
        main: true,
        quick: false,
    };

    pub fn of(session: &Session) -> Queued {
        Queued {
            main: session.has_transmit(Lane::Main),
            quick: session.has_transmit(Lane::Quick),
        }
    }
}

/// A stream's writer waits once this many of its encoded bytes are queued
/// for the writer task: the queue between the application and the websocket
/// stays small even when the socket is slow. Per stream, because streams
/// take turns in the queue: a bulk stream's backlog must not keep a quiet
/// stream's next write out of it.
pub(crate) const STREAM_QUEUE_HIGH_WATER: usize = 64 * 1024;
/// ...and is woken once the writer task brought it below this (not on
/// every frame taken: with many busy streams that woke them all per batch).
const STREAM_QUEUE_LOW_WATER: usize = 32 * 1024;
/// Every writer waits once the whole queue holds this much.
pub(crate) const QUEUE_HIGH_WATER: usize = 256 * 1024;

pub(crate) struct Shared {
    inner: Mutex<Inner>,
    /// Wakes the writer task: frames were queued, or the session closed.
    pub writer_wake: Notify,
    /// Wakes the quick lane's writer, once there is one (`lanes.rs`).
    pub quick_wake: Notify,
    /// The quick lane is attached: the main lane's reader may yield often
    /// (see `driver::READ_YIELD_EVERY`).
    pub quick_attached: AtomicBool,
    /// Wakes whoever waits for the end ([`Shared::wait_closed`]). A `Notify`
    /// beside the reason in `Inner` rather than a watch channel: the channel
    /// is an allocation of about 360 bytes per site, kept for the site's
    /// whole life, for a signal sent once.
    closed_wake: Notify,
    /// Set with `Inner::closed`: checks for the end without the lock.
    closed_flag: AtomicBool,
}

pub(crate) struct Inner {
    pub session: Session,
    /// Per-stream wakers and outcome, for streams that have a handle (or an
    /// `open` waiting for its answer). Removed when the handle drops.
    pub slots: HashMap<u32, Slot>,
    pub closed: Option<CloseReason>,
    /// What [`super::Incoming`] has not taken yet.
    pub incoming: IncomingQueue,
    /// Writers waiting for the transmit queue to drain, by stream.
    queue_waiters: Vec<(u32, Waker)>,
    /// The payload of the last websocket ping, until the writer answers it.
    ws_pong: Option<Bytes>,
}

/// Streams the peer opened and control messages it sent, until
/// [`super::Incoming`] takes them. A queue under the session's lock rather
/// than a tokio channel: the channel allocated about 770 bytes up front (its
/// cache-padded state and a first block of slots), kept for the whole life
/// of every connected site, which almost never receives anything.
#[derive(Default)]
pub(crate) struct IncomingQueue {
    pub events: VecDeque<IncomingEvent>,
    /// The task waiting in [`super::Incoming::next`].
    pub waker: Option<Waker>,
    /// No more events: the session ended or `Incoming` was dropped.
    pub closed: bool,
}

impl IncomingQueue {
    /// Queues `event` and wakes the receiver; gives it back when the queue is
    /// closed or holds [`INCOMING_BACKLOG`] events.
    fn push(&mut self, event: IncomingEvent) -> Result<(), IncomingEvent> {
        if self.closed || self.events.len() >= INCOMING_BACKLOG {
            return Err(event);
        }
        self.events.push_back(event);
        if let Some(w) = self.waker.take() {
            w.wake();
        }
        Ok(())
    }
}

#[derive(Default)]
pub(crate) struct Slot {
    pub read_waker: Option<Waker>,
    pub write_waker: Option<Waker>,
    /// Set when the session dropped the stream.
    pub end: Option<StreamEnd>,
    /// The `open` call waiting for ACCEPT or REFUSE.
    pub opener: Option<oneshot::Sender<Result<(), OpenError>>>,
}

impl Shared {
    pub fn new(session: Session) -> Self {
        Shared {
            inner: Mutex::new(Inner {
                session,
                slots: HashMap::new(),
                closed: None,
                incoming: IncomingQueue::default(),
                queue_waiters: Vec::new(),
                ws_pong: None,
            }),
            writer_wake: Notify::new(),
            quick_wake: Notify::new(),
            quick_attached: AtomicBool::new(false),
            closed_wake: Notify::new(),
            closed_flag: AtomicBool::new(false),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind; carrying
        // on is better than poisoning every stream of the site.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn close_reason(&self) -> Option<CloseReason> {
        if !self.closed_flag.load(Ordering::Acquire) {
            return None;
        }
        self.lock().closed.clone()
    }

    /// Resolves once the session is over, with the reason.
    pub async fn wait_closed(&self) -> CloseReason {
        loop {
            let woken = self.closed_wake.notified();
            tokio::pin!(woken);
            // Registered before the check, so a shutdown between the two
            // still wakes this waiter.
            woken.as_mut().enable();
            if let Some(reason) = self.close_reason() {
                return reason;
            }
            woken.await;
        }
    }

    /// Wakes the writers of the lanes with frames queued; call after
    /// releasing the lock.
    pub fn kick(&self, queued: Queued) {
        if queued.main {
            self.writer_wake.notify_one();
        }
        if queued.quick {
            self.quick_wake.notify_one();
        }
    }

    /// The writer task of `lane` waits here.
    pub fn wake_of(&self, lane: Lane) -> &Notify {
        match lane {
            Lane::Main => &self.writer_wake,
            Lane::Quick => &self.quick_wake,
        }
    }

    /// Ends the session (first reason wins): queues GOAWAY if asked, fails
    /// every stream and pending open, wakes everyone, and lets the tasks
    /// finish.
    pub fn shutdown(&self, reason: CloseReason, goaway: Option<(u32, &str)>) {
        let (wakers, openers) = {
            let mut inner = self.lock();
            if inner.closed.is_some() {
                return;
            }
            match goaway {
                Some((code, text)) => inner.session.close(code, text),
                // A session that already closed itself (protocol error, peer
                // GOAWAY) keeps its queued GOAWAY.
                None if !inner.session.is_closed() => inner.session.abort(),
                None => {}
            }
            inner.closed = Some(reason.clone());
            self.closed_flag.store(true, Ordering::Release);
            let mut wakers: Vec<Waker> = std::mem::take(&mut inner.queue_waiters)
                .into_iter()
                .map(|(_, w)| w)
                .collect();
            let mut openers = Vec::new();
            for slot in inner.slots.values_mut() {
                wakers.extend(slot.read_waker.take());
                wakers.extend(slot.write_waker.take());
                openers.extend(slot.opener.take());
            }
            // What was queued can still be taken; nothing more comes.
            inner.incoming.closed = true;
            wakers.extend(inner.incoming.waker.take());
            (wakers, openers)
        };
        tracing::debug!(%reason, "tunnel session closed");
        wakers.into_iter().for_each(Waker::wake);
        for opener in openers {
            let _ = opener.send(Err(OpenError::Closed(reason.clone())));
        }
        self.closed_wake.notify_waiters();
        self.writer_wake.notify_one();
        self.quick_wake.notify_one();
    }

    /// Feeds one binary message received on `lane` to the session.
    pub fn receive(self: &Arc<Self>, lane: Lane, msg: Bytes) {
        let now = std::time::Instant::now();
        let (result, goaway, queued) = {
            let mut inner = self.lock();
            if inner.closed.is_some() {
                return;
            }
            let result = inner.session.receive_on(lane, msg, Some(now));
            let goaway = inner.dispatch(self);
            (result, goaway, Queued::of(&inner.session))
        };
        self.kick(queued);
        if let Err(e) = result {
            tracing::warn!(error = %e, "tunnel peer broke the protocol");
            self.shutdown(CloseReason::ProtocolError(e.to_string()), None);
        } else if let Some(reason) = goaway {
            self.shutdown(reason, None);
        }
    }

    /// A websocket-level ping arrived: the writer answers it (only the
    /// latest one, as RFC 6455 allows).
    pub fn ws_ping(&self, payload: Bytes) {
        self.lock().ws_pong = Some(payload);
        self.writer_wake.notify_one();
    }

    pub fn ping(&self, data: u64) {
        self.lock().session.ping(data);
        self.writer_wake.notify_one();
    }

    /// Moves up to about `max` bytes of `lane`'s frames to `out`; returns
    /// whether the session is closed (the writer finishes once it has sent
    /// everything) and, on the main lane, a websocket pong to send first if
    /// a ping is unanswered.
    pub fn take_transmit(
        &self,
        lane: Lane,
        out: &mut VecDeque<Bytes>,
        max: usize,
    ) -> (bool, Option<Bytes>) {
        let (waiters, closed, pong) = {
            let mut inner = self.lock();
            let pong = match lane {
                Lane::Main => inner.ws_pong.take(),
                Lane::Quick => None,
            };
            let mut taken = 0;
            while taken < max {
                let next = match lane {
                    Lane::Main => inner.session.poll_transmit(),
                    Lane::Quick => inner.session.poll_transmit_quick(),
                };
                let Some(frame) = next else {
                    break;
                };
                taken += frame.len();
                out.push_back(frame);
            }
            let waiters = if taken > 0 {
                inner.drained_waiters()
            } else {
                Vec::new()
            };
            (waiters, inner.closed.is_some(), pong)
        };
        waiters.into_iter().for_each(Waker::wake);
        (closed, pong)
    }
}

impl Inner {
    /// Registers the writer of stream `id` waiting for the transmit queue to
    /// drain.
    pub fn wait_for_queue(&mut self, id: u32, waker: &Waker) {
        match self.queue_waiters.iter_mut().find(|(s, _)| *s == id) {
            Some((_, w)) => w.clone_from(waker),
            None => self.queue_waiters.push((id, waker.clone())),
        }
    }

    /// Takes the waiters whose stream queue and the total are low enough
    /// for them to write again.
    fn drained_waiters(&mut self) -> Vec<Waker> {
        if self.queue_waiters.is_empty() || self.session.transmit_len() >= QUEUE_HIGH_WATER {
            return Vec::new();
        }
        let session = &self.session;
        let mut ready = Vec::new();
        self.queue_waiters.retain(|(id, w)| {
            let drained = session.stream_transmit_len(*id) < STREAM_QUEUE_LOW_WATER;
            if drained {
                ready.push(w.clone());
            }
            !drained
        });
        ready
    }

    /// Acts on the session's events: wakes streams, answers opens, hands new
    /// streams and control messages to `Incoming`. Returns the close reason
    /// if the peer sent GOAWAY; the caller shuts down after unlocking.
    pub fn dispatch(&mut self, shared: &Arc<Shared>) -> Option<CloseReason> {
        let mut close = None;
        while let Some(event) = self.session.poll_event() {
            match event {
                Event::Incoming { id, target, access } => {
                    self.deliver_stream(shared, id, target, access)
                }
                Event::Control(value) => {
                    if self.incoming.push(IncomingEvent::Control(value)).is_err() {
                        tracing::warn!(
                            "dropping a CONTROL message: nobody is taking incoming events"
                        );
                    }
                }
                Event::Accepted { id } => {
                    if let Some(opener) = self.slots.get_mut(&id).and_then(|s| s.opener.take()) {
                        // If the open was abandoned, its guard resets the stream.
                        let _ = opener.send(Ok(()));
                    }
                }
                Event::Refused { id, code, reason } => {
                    if let Some(opener) = self.slots.remove(&id).and_then(|s| s.opener) {
                        let _ = opener.send(Err(OpenError::Refused { code, reason }));
                    }
                }
                Event::Readable { id } => {
                    if let Some(w) = self.slots.get_mut(&id).and_then(|s| s.read_waker.take()) {
                        w.wake();
                    }
                }
                Event::Writable { id } => {
                    if let Some(w) = self.slots.get_mut(&id).and_then(|s| s.write_waker.take()) {
                        w.wake();
                    }
                }
                Event::ConnectionWritable => {
                    for slot in self.slots.values_mut() {
                        if let Some(w) = slot.write_waker.take() {
                            w.wake();
                        }
                    }
                }
                Event::Closed { id, end } => {
                    let Some(slot) = self.slots.get_mut(&id) else {
                        continue;
                    };
                    slot.end = Some(end);
                    slot.read_waker
                        .take()
                        .into_iter()
                        .chain(slot.write_waker.take())
                        .for_each(Waker::wake);
                    if let Some(opener) = slot.opener.take() {
                        self.slots.remove(&id);
                        let reason = match end {
                            StreamEnd::Reset { code } => format!(
                                "the agent reset the stream (code {code}) instead of answering"
                            ),
                            StreamEnd::Finished => {
                                "the stream ended before it was accepted".to_owned()
                            }
                        };
                        let _ = opener.send(Err(OpenError::Refused {
                            code: codes::REFUSE_RESET,
                            reason,
                        }));
                    }
                }
                Event::GoAway { code, reason } => {
                    close = Some(CloseReason::PeerGoAway { code, reason })
                }
            }
        }
        close
    }

    fn deliver_stream(
        &mut self,
        shared: &Arc<Shared>,
        id: u32,
        target: crate::frame::Target,
        access: crate::frame::Access,
    ) {
        let stream = IncomingStream::new(shared.clone(), id, target, access);
        let reason = if self.incoming.closed {
            "the site takes no more streams"
        } else {
            "too many streams waiting to be accepted"
        };
        if let Err(event) = self.incoming.push(IncomingEvent::Stream(stream)) {
            // Dropping the stream here must not lock again: disarm it and
            // refuse directly.
            if let IncomingEvent::Stream(stream) = event {
                stream.disarm();
            }
            let _ = self.session.refuse(id, codes::REFUSE_BUSY, reason);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{Role, SessionConfig};

    fn shared() -> Arc<Shared> {
        let session = Session::new(Role::Gateway, SessionConfig::default());
        Arc::new(Shared::new(session))
    }

    #[tokio::test]
    async fn waiters_before_and_after_the_end_get_its_reason() {
        let s = shared();
        assert_eq!(s.close_reason(), None);
        let early = tokio::spawn({
            let s = s.clone();
            async move { s.wait_closed().await }
        });
        // The waiter is parked before the end comes.
        tokio::task::yield_now().await;
        assert!(!early.is_finished());
        s.shutdown(CloseReason::HeartbeatTimeout, None);
        // A second end changes nothing: the first reason wins.
        s.shutdown(CloseReason::ConnectionLost, None);
        assert_eq!(early.await.unwrap(), CloseReason::HeartbeatTimeout);
        assert_eq!(s.wait_closed().await, CloseReason::HeartbeatTimeout);
        assert_eq!(s.close_reason(), Some(CloseReason::HeartbeatTimeout));
    }
}
