//! The async driver: runs a [`Session`] over a websocket ([`crate::ws`])
//! and exposes streams as `AsyncRead + AsyncWrite`.
//!
//! This module exists to keep I/O out of the protocol logic: it owns two
//! tasks (a reader that feeds received messages to the session and keeps the
//! heartbeat, and a writer that batches queued frames into websocket
//! messages) and the handles the application uses. All protocol decisions
//! are made by [`crate::session`].
//!
//! Lifetime: the session ends on [`MuxHandle::close`], on the peer's GOAWAY,
//! on a heartbeat timeout, on a websocket error, on a protocol violation, or
//! when every [`MuxHandle`] clone and the [`Incoming`] are dropped. Streams
//! do not keep the session alive; when it ends, their reads fail with
//! `ConnectionReset` and their writes with `BrokenPipe`.

mod driver;
mod shared;
mod stream;

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;

use crate::codes;
use crate::frame::{Access, Target};
use crate::session::{ConnectionStats, Session, SessionConfig, SessionError, StreamStats};
pub use crate::session::{Lane, Role};
use crate::ws::WsConn;
use shared::{Queued, Shared, Slot};
pub use stream::{MuxReadHalf, MuxStream, MuxWriteHalf};

/// New streams and control messages waiting for the application; beyond
/// this, new streams are refused and control messages dropped, so the reader
/// never blocks and never buffers without bound.
pub(crate) const INCOMING_BACKLOG: usize = 256;

/// Tuning of one multiplexed session. Both sides may differ: each announces
/// its own receive windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MuxConfig {
    /// Receive window a stream starts with. Default 256 KiB: enough for a
    /// near site, and little queued in front of other streams.
    pub stream_window: u32,
    /// The receive window a stream may grow to while that raises its rate
    /// (a distant site); also the most a stalled stream can buffer here.
    /// Default 32 MiB: at a 20 ms round trip a stream moves at most one
    /// window per round trip (BENCHMARKS.md, distant site).
    pub max_stream_window: u32,
    /// Receive window of the whole session. Default 64 MiB. Streams whose
    /// reader stalls hold their buffered bytes against it, so keep it a few
    /// stream windows wide.
    pub connection_window: u32,
    /// Streams alive at once. Default 1024.
    pub max_streams: u32,
    /// How often to send PING. Default 15 s.
    pub ping_interval: Duration,
    /// Close the session when nothing at all arrived for this long.
    /// Default 45 s.
    pub ping_timeout: Duration,
    /// Largest DATA payload to send: [`crate::frame::BASE_DATA_LEN`] (16 KiB,
    /// what every peer accepts) unless the handshake showed the peer takes
    /// [`crate::frame::MAX_DATA_LEN`]. Larger frames mean fewer reads, frames
    /// and websocket messages per byte at both ends.
    pub peer_max_data: usize,
}

impl Default for MuxConfig {
    fn default() -> Self {
        MuxConfig {
            stream_window: 256 << 10,
            max_stream_window: 32 << 20,
            connection_window: 64 << 20,
            max_streams: 1024,
            ping_interval: Duration::from_secs(15),
            ping_timeout: Duration::from_secs(45),
            peer_max_data: crate::frame::BASE_DATA_LEN,
        }
    }
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CloseReason {
    #[error("closed locally (code {code}): {reason}")]
    Local { code: u32, reason: String },
    #[error("the peer went away (code {code}): {reason}")]
    PeerGoAway { code: u32, reason: String },
    #[error("nothing received from the peer within the heartbeat timeout")]
    HeartbeatTimeout,
    #[error("protocol error: {0}")]
    ProtocolError(String),
    #[error("websocket error: {0}")]
    Io(String),
    #[error("the websocket closed without GOAWAY")]
    ConnectionLost,
}

/// Why [`MuxHandle::open`] did not give a stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// The agent refused; `reason` is meant for the partner.
    #[error("refused (code {code}): {reason}")]
    Refused { code: u8, reason: String },
    #[error("tunnel session closed: {0}")]
    Closed(CloseReason),
    /// This end's own limit (`MuxConfig::max_streams`) is reached.
    #[error("this end takes at most {limit} streams at once")]
    TooManyStreams { limit: u32 },
}

/// The session is over.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tunnel session closed: {0}")]
pub struct MuxClosed(pub CloseReason);

/// Why [`MuxHandle::attach_quick_lane`] did not attach.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttachError {
    #[error("tunnel session closed: {0}")]
    Closed(CloseReason),
    #[error("the session already has a quick lane")]
    AlreadyAttached,
}

/// What the peer sends that nobody asked for.
#[derive(Debug)]
pub enum IncomingEvent {
    Stream(IncomingStream),
    Control(serde_json::Value),
}

/// Starts the mux over an established websocket (after the handshake).
/// Spawns the reader and writer tasks, so it must run inside a tokio runtime.
pub fn start<S>(ws: WsConn<S>, role: Role, cfg: MuxConfig) -> (MuxHandle, Incoming)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut session = Session::new(
        role,
        SessionConfig {
            stream_window: cfg.stream_window,
            max_stream_window: cfg.max_stream_window,
            connection_window: cfg.connection_window,
            max_streams: cfg.max_streams,
        },
    );
    session.set_peer_max_data(cfg.peer_max_data);
    let shared = Arc::new(Shared::new(session));
    let WsConn { reader, writer } = ws;
    tokio::spawn(driver::write_loop(shared.clone(), writer, Lane::Main));
    tokio::spawn(driver::read_loop(
        shared.clone(),
        reader,
        cfg.ping_interval,
        cfg.ping_timeout,
    ));
    let owner = Arc::new(Owner(shared.clone()));
    let shared_for_incoming = shared.clone();
    let handle = MuxHandle {
        shared,
        role,
        _owner: owner.clone(),
    };
    let incoming = Incoming {
        shared: shared_for_incoming,
        _owner: owner,
    };
    (handle, incoming)
}

/// Closes the session when the last handle and the `Incoming` are gone.
struct Owner(Arc<Shared>);

impl Drop for Owner {
    fn drop(&mut self) {
        let reason = "all handles to the session were dropped";
        self.0.shutdown(
            CloseReason::Local {
                code: codes::GOAWAY_NO_ERROR,
                reason: reason.into(),
            },
            Some((codes::GOAWAY_NO_ERROR, reason)),
        );
    }
}

/// The application's handle on a session. Cheap to clone.
#[derive(Clone)]
pub struct MuxHandle {
    shared: Arc<Shared>,
    role: Role,
    _owner: Arc<Owner>,
}

impl std::fmt::Debug for MuxHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MuxHandle")
            .field("role", &self.role)
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl MuxHandle {
    /// Opens a stream (gateway side): sends OPEN and waits for ACCEPT or
    /// REFUSE, one round trip. Cancel safe: dropping the future resets the
    /// stream if it is accepted later. Only the gateway opens streams: on an
    /// agent's handle this fails with `OpenError::Closed`. There is no
    /// timeout here; wrap the call in `tokio::time::timeout`.
    pub async fn open(&self, target: Target) -> Result<MuxStream, OpenError> {
        self.open_as(target, Access::Remote).await
    }

    /// Like [`open`](Self::open), under a chosen level of access: the agent
    /// checks [`Access::Central`] streams against Centralized Management.
    /// Send those only to an agent that announced
    /// [`crate::handshake::feature::CENTRAL_STREAMS`]; an older one closes
    /// the whole session on such an OPEN.
    pub async fn open_as(&self, target: Target, access: Access) -> Result<MuxStream, OpenError> {
        let (id, rx) = {
            let mut inner = self.shared.lock();
            if let Some(reason) = &inner.closed {
                return Err(OpenError::Closed(reason.clone()));
            }
            let id = match inner.session.open(target, access) {
                Ok(id) => id,
                Err(SessionError::TooManyStreams { limit }) => {
                    return Err(OpenError::TooManyStreams { limit })
                }
                Err(e) => {
                    return Err(OpenError::Closed(CloseReason::Local {
                        code: codes::GOAWAY_NO_ERROR,
                        reason: e.to_string(),
                    }))
                }
            };
            let (tx, rx) = oneshot::channel();
            inner.slots.insert(
                id,
                Slot {
                    opener: Some(tx),
                    ..Slot::default()
                },
            );
            (id, rx)
        };
        self.shared.kick(Queued::MAIN);
        let mut guard = OpenGuard {
            shared: &self.shared,
            id,
            armed: true,
        };
        let answer = rx.await.unwrap_or_else(|_| {
            Err(OpenError::Closed(
                self.shared
                    .close_reason()
                    .unwrap_or(CloseReason::ConnectionLost),
            ))
        });
        answer?;
        guard.armed = false;
        Ok(MuxStream::new(self.shared.clone(), id))
    }

    /// Takes LANE frames and quick-lane messages from now on (see
    /// `session::lanes`). Call it before sending the handshake message that
    /// lets the peer attach the lane.
    pub fn accept_quick_lane(&self) {
        self.shared.lock().session.accept_quick_lane();
    }

    /// Adds the quick lane for sending: streams that write little move to
    /// it, their frames queued until [`MuxHandle::run_quick_lane`] gives
    /// the lane its connection. Only once the peer has accepted the lane.
    pub fn attach_quick_lane(&self) -> Result<(), AttachError> {
        let mut inner = self.shared.lock();
        if let Some(reason) = &inner.closed {
            return Err(AttachError::Closed(reason.clone()));
        }
        if inner.session.has_quick_lane() {
            return Err(AttachError::AlreadyAttached);
        }
        inner.session.attach_quick_lane();
        Ok(())
    }

    /// Runs the quick lane over `ws` (after [`MuxHandle::attach_quick_lane`]
    /// at this end): spawns its reader and writer on the current runtime.
    /// The session ends when this connection ends, as with the main one.
    pub fn run_quick_lane<S>(&self, ws: WsConn<S>)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let WsConn { reader, writer } = ws;
        self.shared
            .quick_attached
            .store(true, std::sync::atomic::Ordering::Relaxed);
        tokio::spawn(driver::write_loop(self.shared.clone(), writer, Lane::Quick));
        tokio::spawn(driver::read_quick_loop(self.shared.clone(), reader));
        // Frames queued before the lane had a writer.
        self.shared.quick_wake.notify_one();
    }

    /// Whether the session has a quick lane (attached at this end).
    pub fn has_quick_lane(&self) -> bool {
        self.shared.lock().session.has_quick_lane()
    }

    /// Sends a CONTROL message (a report: settings, alarms, ...). A value
    /// whose JSON exceeds 16 MiB cannot be framed; it is logged and dropped.
    pub fn send_control(&self, value: serde_json::Value) -> Result<(), MuxClosed> {
        let queued = {
            let mut inner = self.shared.lock();
            if let Some(reason) = &inner.closed {
                return Err(MuxClosed(reason.clone()));
            }
            if let Err(e) = inner.session.send_control(&value) {
                tracing::error!(error = %e, "control message not sent");
            }
            Queued::of(&inner.session)
        };
        self.shared.kick(queued);
        Ok(())
    }

    /// Sends GOAWAY, then closes the websocket; every stream ends with an
    /// error. Does nothing if the session is already over.
    pub fn close(&self, code: u32, reason: &str) {
        self.shared.shutdown(
            CloseReason::Local {
                code,
                reason: reason.to_owned(),
            },
            Some((code, reason)),
        );
    }

    /// Resolves once the session is over, with the reason.
    pub async fn closed(&self) -> CloseReason {
        self.shared.wait_closed().await
    }

    pub fn is_closed(&self) -> bool {
        self.shared.close_reason().is_some()
    }

    /// Streams alive (opening, awaiting accept, or open).
    pub fn stream_count(&self) -> usize {
        self.shared.lock().session.stream_count()
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// Flow-control snapshot of one stream (None once it has ended).
    pub fn stream_stats(&self, id: u32) -> Option<StreamStats> {
        self.shared.lock().session.stream_stats(id)
    }

    pub fn connection_stats(&self) -> ConnectionStats {
        self.shared.lock().session.connection_stats()
    }
}

/// Undoes an `open` whose future was dropped before it completed.
struct OpenGuard<'a> {
    shared: &'a Arc<Shared>,
    id: u32,
    armed: bool,
}

impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let queued = {
            let mut inner = self.shared.lock();
            inner.slots.remove(&self.id);
            if inner.closed.is_none() && inner.session.has_stream(self.id) {
                let _ = inner.session.reset(self.id, codes::RESET_CANCEL);
            }
            Queued::of(&inner.session)
        };
        self.shared.kick(queued);
    }
}

/// Streams the peer opens and control messages it sends, in arrival order.
pub struct Incoming {
    shared: Arc<Shared>,
    _owner: Arc<Owner>,
}

impl Incoming {
    /// The next event; `None` once the session is over and all delivered
    /// events were taken. Cancel safe.
    pub async fn next(&mut self) -> Option<IncomingEvent> {
        std::future::poll_fn(|cx| self.poll_event(cx)).await
    }

    fn poll_event(&self, cx: &mut Context<'_>) -> Poll<Option<IncomingEvent>> {
        let mut inner = self.shared.lock();
        let queue = &mut inner.incoming;
        if let Some(event) = queue.events.pop_front() {
            if queue.events.is_empty() {
                // An idle site holds no queue.
                queue.events = std::collections::VecDeque::new();
            }
            return Poll::Ready(Some(event));
        }
        if queue.closed {
            return Poll::Ready(None);
        }
        if !queue
            .waker
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            queue.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        let unanswered = {
            let mut inner = self.shared.lock();
            inner.incoming.closed = true;
            inner.incoming.waker = None;
            std::mem::take(&mut inner.incoming.events)
        };
        // Outside the lock: an unanswered stream refuses itself on drop,
        // which locks.
        drop(unanswered);
    }
}

impl futures_util::Stream for Incoming {
    type Item = IncomingEvent;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<IncomingEvent>> {
        self.poll_event(cx)
    }
}

/// A stream the peer asks to open. Answer it with [`accept`](Self::accept)
/// or [`refuse`](Self::refuse); dropping it refuses it.
pub struct IncomingStream {
    shared: Arc<Shared>,
    id: u32,
    target: Target,
    access: Access,
    answered: bool,
}

impl std::fmt::Debug for IncomingStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IncomingStream")
            .field("id", &self.id)
            .field("target", &self.target)
            .field("access", &self.access)
            .finish()
    }
}

impl IncomingStream {
    fn new(shared: Arc<Shared>, id: u32, target: Target, access: Access) -> Self {
        IncomingStream {
            shared,
            id,
            target,
            access,
            answered: false,
        }
    }

    /// Drops without answering through the mux (the caller answers itself).
    fn disarm(mut self) {
        self.answered = true;
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The level of access the gateway asks for: what the site's settings
    /// must allow for this target.
    pub fn access(&self) -> Access {
        self.access
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    /// Accepts the stream. If the peer reset it meanwhile, or the session
    /// ended, the returned stream reports that on first use.
    pub fn accept(mut self) -> MuxStream {
        self.answered = true;
        let queued = {
            let mut inner = self.shared.lock();
            let end = match inner.session.accept(self.id) {
                Ok(()) => None,
                Err(_) => Some(crate::session::StreamEnd::Reset {
                    code: codes::RESET_CANCEL,
                }),
            };
            inner.slots.insert(
                self.id,
                Slot {
                    end,
                    ..Slot::default()
                },
            );
            Queued::of(&inner.session)
        };
        self.shared.kick(queued);
        MuxStream::new(self.shared.clone(), self.id)
    }

    /// Refuses the stream; `reason` reaches the partner.
    pub fn refuse(mut self, code: u8, reason: &str) {
        self.answered = true;
        self.send_refusal(code, reason);
    }

    fn send_refusal(&self, code: u8, reason: &str) {
        let queued = {
            let mut inner = self.shared.lock();
            let _ = inner.session.refuse(self.id, code, reason);
            Queued::of(&inner.session)
        };
        self.shared.kick(queued);
    }
}

impl Drop for IncomingStream {
    fn drop(&mut self) {
        if !self.answered {
            self.send_refusal(
                codes::REFUSE_NOT_ACCEPTED,
                "the site agent did not accept the stream",
            );
        }
    }
}
