//! The multiplexer as a sans-IO state machine: frames in, frames and events
//! out, no sockets and no clock.
//!
//! This module exists so that the hard part of the protocol (stream states,
//! per-stream and per-connection flow control, half-close, reset) can be
//! driven step by step in tests and checked against invariants, the way
//! quinn-proto is. [`crate::mux`] is a thin async shell around it.
//!
//! How to drive a [`Session`]:
//! - hand it every received websocket binary message with [`Session::receive`];
//! - send everything [`Session::poll_transmit`] returns (already encoded
//!   frames, in order);
//! - react to [`Session::poll_event`] (new streams, readable/writable
//!   streams, control messages, the peer going away);
//! - the application reads with [`Session::read`] (which counts as consuming
//!   the bytes, and so sends WINDOW updates), writes with [`Session::write`]
//!   (which takes as much as stream and connection credit allow), and ends
//!   streams with [`Session::finish`] / [`Session::reset`].
//!
//! A protocol violation by the peer closes the session: `receive` returns the
//! error and queues a GOAWAY carrying it.

mod autotune;
mod inbound;
mod lanes;
mod ops;
mod recv;
mod transmit;

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use crate::codes;
use crate::frame::{self, Access, Frame, FrameError, Target};
use autotune::WindowTuner;
use recv::{RecvBuf, RecvWindow};
use transmit::Transmit;

pub use lanes::{Lane, BULK_WRITE, QUICK_AFTER};

/// Largest window a receiver may grant, and largest credit a sender may hold
/// (as in HTTP/2): beyond it WINDOW is a flow-control error.
pub const MAX_WINDOW: u32 = (1 << 31) - 1;

/// Which end of the websocket this session is. Only the gateway opens streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Gateway,
    Agent,
}

/// Limits the session enforces on what it receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionConfig {
    /// Bytes each stream may have in flight towards us (receive window) at
    /// first. While data arrives with a clock ([`Session::receive_at`]) the
    /// window grows towards `max_stream_window` as long as that raises the
    /// stream's rate (see `autotune.rs`).
    pub stream_window: u32,
    /// The largest receive window a stream may be given.
    pub max_stream_window: u32,
    /// Bytes all streams together may have in flight towards us.
    pub connection_window: u32,
    /// Streams alive at once (opening, pending or open), either direction.
    pub max_streams: u32,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            stream_window: 256 << 10,
            max_stream_window: 32 << 20,
            connection_window: 64 << 20,
            max_streams: 1024,
        }
    }
}

impl SessionConfig {
    /// Windows clamped to `1..=MAX_WINDOW` (the maximum at least the
    /// initial window), at least one stream.
    fn sanitized(self) -> Self {
        let stream_window = self.stream_window.clamp(1, MAX_WINDOW);
        SessionConfig {
            stream_window,
            max_stream_window: self.max_stream_window.clamp(stream_window, MAX_WINDOW),
            connection_window: self.connection_window.clamp(1, MAX_WINDOW),
            max_streams: self.max_streams.max(1),
        }
    }
}

/// Something the application should react to.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The peer (the gateway) asks to open a stream; answer with
    /// [`Session::accept`] or [`Session::refuse`].
    Incoming {
        id: u32,
        target: Target,
        access: Access,
    },
    /// A stream we opened was accepted.
    Accepted { id: u32 },
    /// A stream we opened was refused; it no longer exists.
    Refused { id: u32, code: u8, reason: String },
    /// Data or FIN arrived.
    Readable { id: u32 },
    /// The stream's send credit grew.
    Writable { id: u32 },
    /// The connection's send credit grew: every stream may write again.
    ConnectionWritable,
    /// The stream is gone (both FINs passed and everything was read, or the
    /// peer reset it). Not emitted for local resets.
    Closed { id: u32, end: StreamEnd },
    /// A CONTROL message.
    Control(serde_json::Value),
    /// The peer closed the session; this session is closed now too.
    GoAway { code: u32, reason: String },
}

/// How a stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    Finished,
    Reset { code: u32 },
}

/// Result of [`Session::read`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadOutcome {
    Data(Bytes),
    /// The peer finished its direction and every byte was read.
    Fin,
    /// Nothing to read yet.
    Blocked,
}

/// A stream-level operation could not be done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    #[error("no such stream (it never existed or has ended)")]
    Unknown,
    #[error("the stream is not open (still opening, or awaiting accept)")]
    NotOpen,
    #[error("the stream was already finished for writing")]
    Finished,
    #[error("the session is closed")]
    SessionClosed,
}

/// A session-level operation could not be done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("the session is closed")]
    Closed,
    /// The session carries `limit` streams, as many as its config allows.
    #[error("at most {limit} streams at once")]
    TooManyStreams { limit: u32 },
    #[error("stream ids are exhausted for this session")]
    IdsExhausted,
    #[error("only the gateway opens streams")]
    WrongRole,
    #[error("control message of {0} bytes is too large")]
    ControlTooLarge(usize),
}

/// The peer broke the protocol; the session is closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("malformed frame: {0}")]
    Frame(#[from] FrameError),
    #[error("stream {stream}: peer sent {len} bytes with {window} bytes of stream window left")]
    StreamWindowExceeded { stream: u32, len: u32, window: u32 },
    #[error("peer sent {len} bytes with {window} bytes of connection window left")]
    ConnectionWindowExceeded { len: u32, window: u32 },
    #[error("stream {0}: DATA after the peer's FIN")]
    DataAfterFin(u32),
    #[error("stream {stream}: {frame} is not valid in the stream's state")]
    UnexpectedFrame { frame: &'static str, stream: u32 },
    #[error("stream {0} was never opened")]
    UnknownStream(u32),
    #[error("stream id {0} is not a valid new stream id")]
    BadStreamId(u32),
    #[error("WINDOW with a zero increment on stream {0}")]
    ZeroIncrement(u32),
    #[error("WINDOW overflows the send credit of stream {0} (0 = connection)")]
    WindowOverflow(u32),
    #[error("CONTROL payload is not JSON: {0}")]
    BadControl(String),
}

impl ProtocolError {
    /// The GOAWAY code that reports this error to the peer.
    pub fn goaway_code(&self) -> u32 {
        match self {
            ProtocolError::StreamWindowExceeded { .. }
            | ProtocolError::ConnectionWindowExceeded { .. }
            | ProtocolError::WindowOverflow(_) => codes::GOAWAY_FLOW_CONTROL_ERROR,
            _ => codes::GOAWAY_PROTOCOL_ERROR,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamState {
    /// We sent OPEN and wait for ACCEPT or REFUSE.
    Opening,
    /// The peer sent OPEN; the application has not answered.
    Pending,
    Open,
}

/// A snapshot of one stream's accounting, for metrics and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamStats {
    pub state: StreamState,
    /// Received bytes the application has not read.
    pub buffered: u32,
    /// Bytes the peer may still send on this stream.
    pub recv_window: u32,
    /// Bytes we may still send on this stream (before connection credit).
    pub send_credit: u64,
    pub sent_fin: bool,
    pub recv_fin: bool,
}

/// A snapshot of the connection-level accounting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionStats {
    pub streams: usize,
    pub buffered: u32,
    pub recv_window: u32,
    pub send_credit: u64,
    /// Encoded bytes waiting in the transmit queue.
    pub queued: usize,
}

#[derive(Debug)]
struct Stream {
    state: StreamState,
    send_credit: u64,
    sent_fin: bool,
    recv_fin: bool,
    window: RecvWindow,
    buf: RecvBuf,
    lanes: lanes::StreamLanes,
}

/// One end of the multiplexer. See the module docs for how to drive it.
#[derive(Debug)]
pub struct Session {
    role: Role,
    cfg: SessionConfig,
    streams: HashMap<u32, Stream>,
    /// Highest stream id the gateway has opened so far; ids only grow.
    last_id: u32,
    send_credit: u64,
    window: RecvWindow,
    transmit: Transmit,
    /// The quick lane's queue, once the lane is attached (see `lanes.rs`);
    /// boxed, since an idle site's session never has one.
    quick: Option<Box<Transmit>>,
    /// Frames from the quick lane, and LANE, are taken.
    quick_accepted: bool,
    events: VecDeque<Event>,
    closed: bool,
    tuner: WindowTuner,
    /// The time of the message being received, when the caller gave one.
    clock: Option<Instant>,
    /// Largest DATA payload the peer accepts (see [`Session::set_peer_max_data`]).
    peer_max_data: usize,
}

impl Session {
    /// A new session. It immediately queues `WINDOW(0, connection_window)`:
    /// every window starts at zero on the wire and is granted by its receiver.
    pub fn new(role: Role, cfg: SessionConfig) -> Self {
        let cfg = cfg.sanitized();
        let mut session = Session {
            role,
            cfg,
            streams: HashMap::new(),
            last_id: 0,
            send_credit: 0,
            window: RecvWindow::ungranted(cfg.connection_window),
            transmit: Transmit::default(),
            quick: None,
            quick_accepted: false,
            events: VecDeque::new(),
            closed: false,
            tuner: WindowTuner::new(cfg.stream_window, cfg.max_stream_window),
            clock: None,
            peer_max_data: frame::BASE_DATA_LEN,
        };
        let increment = session.window.grant();
        session.queue(&Frame::Window {
            stream: 0,
            increment,
        });
        session
    }

    /// The largest DATA payload to send: [`frame::BASE_DATA_LEN`] unless
    /// the peer announced larger frames in the handshake, at most
    /// [`frame::MAX_DATA_LEN`].
    pub fn set_peer_max_data(&mut self, len: usize) {
        self.peer_max_data = len.clamp(1, frame::MAX_DATA_LEN);
    }

    /// The largest DATA payload this session sends.
    pub fn peer_max_data(&self) -> usize {
        self.peer_max_data
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn config(&self) -> SessionConfig {
        self.cfg
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Streams alive (opening, pending or open).
    pub fn stream_count(&self) -> usize {
        self.streams.len()
    }

    pub fn stream_ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.streams.keys().copied()
    }

    pub fn has_stream(&self, id: u32) -> bool {
        self.streams.contains_key(&id)
    }

    /// The next encoded frame to send on the main lane (the only one,
    /// unless a quick lane is attached). Connection-steering frames first,
    /// then the streams' frames one stream at a time in turn (each stream's
    /// own frames in order), GOAWAY last; see `transmit.rs`.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.transmit.pop()
    }

    /// Encoded bytes waiting in the transmit queues (both lanes).
    pub fn transmit_len(&self) -> usize {
        self.transmit.len() + self.quick.as_ref().map_or(0, |q| q.len())
    }

    /// Encoded bytes waiting in the transmit queues for one stream.
    pub fn stream_transmit_len(&self, id: u32) -> usize {
        lanes::stream_queued(&self.transmit, self.quick.as_deref(), id)
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    pub fn stream_stats(&self, id: u32) -> Option<StreamStats> {
        self.streams.get(&id).map(|s| StreamStats {
            state: s.state,
            buffered: s.window.buffered,
            recv_window: s.window.remaining,
            send_credit: s.send_credit,
            sent_fin: s.sent_fin,
            recv_fin: s.recv_fin,
        })
    }

    pub fn connection_stats(&self) -> ConnectionStats {
        ConnectionStats {
            streams: self.streams.len(),
            buffered: self.window.buffered,
            recv_window: self.window.remaining,
            send_credit: self.send_credit,
            queued: self.transmit_len(),
        }
    }

    /// Checks the accounting invariants; for tests and fuzzing.
    pub fn check_invariants(&self) -> Result<(), String> {
        self.window.check()?;
        let mut total: u64 = 0;
        for (id, s) in &self.streams {
            s.window.check().map_err(|e| format!("stream {id}: {e}"))?;
            if s.buf.len() != s.window.buffered as usize {
                return Err(format!(
                    "stream {id}: buffer holds {} bytes, accounting says {}",
                    s.buf.len(),
                    s.window.buffered
                ));
            }
            if s.send_credit > u64::from(MAX_WINDOW) {
                return Err(format!(
                    "stream {id}: send credit {} beyond the maximum",
                    s.send_credit
                ));
            }
            total += u64::from(s.window.buffered);
        }
        if total != u64::from(self.window.buffered) {
            return Err(format!(
                "streams buffer {total} bytes, connection accounting says {}",
                self.window.buffered
            ));
        }
        if self.send_credit > u64::from(MAX_WINDOW) {
            return Err(format!(
                "connection send credit {} beyond the maximum",
                self.send_credit
            ));
        }
        if self.streams.len() > self.cfg.max_streams as usize {
            return Err(format!(
                "{} streams alive, limit {}",
                self.streams.len(),
                self.cfg.max_streams
            ));
        }
        if self.closed && !self.streams.is_empty() {
            return Err("closed session still has streams".into());
        }
        Ok(())
    }

    /// The receive window streams have now (see [`SessionConfig`]).
    pub fn stream_window(&self) -> u32 {
        self.tuner.window
    }

    /// Handles one received websocket binary message that arrived at `now`:
    /// like [`Session::receive`], and the clock lets the session tune its
    /// receive windows.
    pub fn receive_at(&mut self, msg: Bytes, now: Instant) -> Result<(), ProtocolError> {
        self.clock = Some(now);
        let result = self.receive(msg);
        self.clock = None;
        result
    }

    /// Handles one received websocket binary message (one or more frames)
    /// from the main lane. Without a clock, windows keep their size.
    pub fn receive(&mut self, msg: Bytes) -> Result<(), ProtocolError> {
        self.receive_lane(msg, Lane::Main)
    }

    fn receive_lane(&mut self, mut msg: Bytes, lane: Lane) -> Result<(), ProtocolError> {
        let msg_len = msg.len();
        loop {
            if self.closed {
                return Ok(());
            }
            match frame::decode(&mut msg) {
                Ok(Some(frame)) => self.handle(frame, msg_len, lane)?,
                Ok(None) => return Ok(()),
                Err(e) => return Err(self.fail(e.into())),
            }
        }
    }

    /// Handles one decoded frame, as if it came alone in a message.
    pub fn handle_frame(&mut self, frame: Frame) -> Result<(), ProtocolError> {
        if self.closed {
            return Ok(());
        }
        self.handle(frame, 0, Lane::Main)
    }

    fn handle(&mut self, frame: Frame, msg_len: usize, lane: Lane) -> Result<(), ProtocolError> {
        self.on_frame_from(frame, msg_len, lane)
            .map_err(|e| self.fail(e))
    }

    fn fail(&mut self, err: ProtocolError) -> ProtocolError {
        self.close(err.goaway_code(), &err.to_string());
        err
    }

    /// Sends GOAWAY after whatever is already queued and closes the session:
    /// every stream is dropped, later frames are ignored. Idempotent.
    pub fn close(&mut self, code: u32, reason: &str) {
        if self.closed {
            return;
        }
        let reason = frame::truncate_reason(reason);
        self.queue(&Frame::GoAway { code, reason });
        self.closed = true;
        self.drop_all_streams();
        self.events.clear();
    }

    /// Closes without sending anything (the transport is gone).
    pub fn abort(&mut self) {
        self.closed = true;
        self.drop_all_streams();
        self.events.clear();
        self.transmit.clear();
        if let Some(quick) = &mut self.quick {
            quick.clear();
        }
    }

    /// Drops every stream with its unread bytes, and those bytes from the
    /// connection's accounting: a closed session holds nothing.
    fn drop_all_streams(&mut self) {
        let unread: u32 = self.streams.values().map(|s| s.window.buffered).sum();
        self.streams.clear();
        // Discarded counts as consumed; no WINDOW goes out from a closed session.
        let _ = self.window.on_consumed(unread.min(self.window.buffered));
    }

    /// Was `id` ever opened in this session (live or not)?
    fn issued(&self, id: u32) -> bool {
        id & 1 == 1 && id <= self.last_id
    }

    fn queue(&mut self, frame: &Frame) {
        let mut buf = BytesMut::with_capacity(frame.encoded_len());
        match frame::encode(frame, &mut buf) {
            Ok(()) => {
                let bytes = buf.freeze();
                match *frame {
                    Frame::Data { stream, .. } | Frame::Fin { stream } => {
                        self.push_on(self.stream_lane(stream), stream, bytes)
                    }
                    Frame::Lane { stream } | Frame::Reset { stream, .. } => {
                        self.transmit.push_stream(stream, bytes)
                    }
                    Frame::GoAway { .. } => self.transmit.push_last(bytes),
                    _ => self.transmit.push_control(bytes),
                }
            }
            // The session only builds frames within the limits; reaching this
            // is a bug here, not bad input, and dropping the frame is safer
            // than panicking in a server.
            Err(e) => {
                debug_assert!(false, "session built an invalid frame {frame:?}: {e}");
                tracing::error!(error = %e, frame = frame.name(), "dropping invalid outgoing frame");
            }
        }
    }

    /// Removes a stream, releasing its unread bytes to the connection window.
    fn remove_stream(&mut self, id: u32) {
        if let Some(s) = self.streams.remove(&id) {
            if s.window.buffered > 0 {
                self.release_connection(s.window.buffered);
            }
        }
    }

    fn release_connection(&mut self, len: u32) {
        if let Some(increment) = self.window.on_consumed(len) {
            self.queue(&Frame::Window {
                stream: 0,
                increment,
            });
        }
    }

    /// Removes the stream once both FINs passed and everything was read.
    fn maybe_finish(&mut self, id: u32) {
        let done = self
            .streams
            .get(&id)
            .is_some_and(|s| s.sent_fin && s.recv_fin && s.buf.len() == 0);
        if done {
            self.remove_stream(id);
            self.events.push_back(Event::Closed {
                id,
                end: StreamEnd::Finished,
            });
        }
    }
}

impl Stream {
    fn new(state: StreamState, window: u32) -> Self {
        Stream {
            state,
            send_credit: 0,
            sent_fin: false,
            recv_fin: false,
            window: RecvWindow::ungranted(window),
            buf: RecvBuf::default(),
            lanes: lanes::StreamLanes::default(),
        }
    }
}

/// Fuzz entry point: feeds `data` to a fresh agent-side session as one
/// message and checks the accounting invariants afterwards.
pub fn fuzz_session(data: &[u8]) {
    let mut session = Session::new(Role::Agent, SessionConfig::default());
    let _ = session.receive(Bytes::copy_from_slice(data));
    while let Some(event) = session.poll_event() {
        if let Event::Incoming { id, .. } = event {
            let _ = session.accept(id);
        }
    }
    if let Err(e) = session.check_invariants() {
        panic!("invariant broken: {e}");
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod lane_tests;
