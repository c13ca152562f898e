//! The quick lane: a session's second connection, for interactive streams.
//!
//! All of a site's streams share its connection, and a bulk stream keeps up
//! to a window of its bytes in that connection's socket buffers (about
//! 1 MiB on loopback, where the receiving process is the bottleneck). A
//! keystroke's echo on another stream arrives behind all of it: 1.2 ms
//! beside a saturated download, where a relay with one connection per
//! tunnel needs 0.14 ms (BENCHMARKS.md). No scheduling above the socket can
//! reach past bytes already in the kernel's queues, so interactive streams
//! get a connection of their own: the quick lane, whose queues only ever
//! hold small writes.
//!
//! Each direction of a stream travels on one lane at a time, chosen by the
//! sender from its writes: a stream starts on the main lane, moves to the
//! quick lane after [`QUICK_AFTER`] writes in a row shorter than
//! [`BULK_WRITE`] (a sender with a backlog writes full frames), and back on
//! its first long write. A move is a LANE frame on the old lane, queued
//! behind the stream's frames there; the receiver holds what arrives for
//! the stream on the new lane until that LANE arrives, so the stream's
//! bytes keep their order whatever the two connections do. Everything
//! else (OPEN, ACCEPT, WINDOW, PING and PONG, RESET, CONTROL, GOAWAY) stays
//! on the main lane: the window probes (`autotune.rs`) must see the main
//! lane's queue, and a RESET ends the stream whichever lane it crosses.
//!
//! The lane is an optional part of a session, in two steps per end: an end
//! first accepts it ([`Session::accept_quick_lane`]: LANE frames and the
//! quick lane's messages are taken from then on), and only once the other
//! end has accepted it too attaches it ([`Session::attach_quick_lane`]) and
//! starts moving its own streams there. Each end accepts before it sends
//! the handshake message that lets the other attach, so no LANE ever
//! reaches an end that would refuse it. Never detached: losing either
//! connection ends the session.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use super::transmit::Transmit;
use super::{ProtocolError, Session};
use crate::frame::{self, Frame, HEADER_LEN};

/// One of a session's two connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Lane {
    /// The connection the session started on: everything but the data of
    /// interactive streams.
    #[default]
    Main,
    /// The second connection: DATA and FIN of streams that write little.
    Quick,
}

impl Lane {
    pub fn other(self) -> Lane {
        match self {
            Lane::Main => Lane::Quick,
            Lane::Quick => Lane::Main,
        }
    }
}

/// A write at least this long sends its stream to the main lane: a sender
/// with a backlog writes full frames (16 or 64 KiB), and the autotuner
/// probes with frames from this size up, so bulk bytes never enter the
/// quick lane's queues in more than small pieces.
pub const BULK_WRITE: usize = 8 * 1024;
/// Short writes in a row that move a stream to the quick lane. More than
/// one, so that a bulk stream whose reader briefly caught up (one short
/// read between full ones) stays where it is.
pub const QUICK_AFTER: u8 = 2;
/// What the receiver holds for a stream beyond its window: LANE frames and
/// frame headers, which the window does not count.
const HELD_SLACK: u32 = 64 * 1024;

/// A stream's lanes, at one end.
#[derive(Debug, Default)]
pub(crate) struct StreamLanes {
    /// Where this end sends the stream's DATA and FIN.
    out: Lane,
    /// Short writes in a row.
    short_writes: u8,
    /// Where the peer sends them now, as far as its LANE frames told.
    inbound: Lane,
    /// Frames that came on the other lane before the LANE that moves the
    /// stream there; boxed, since almost every stream never has any.
    held: Option<Box<Held>>,
}

#[derive(Debug, Default)]
struct Held {
    frames: VecDeque<(Frame, usize)>,
    /// Encoded bytes held.
    bytes: u32,
}

impl Session {
    /// Takes LANE frames and the quick lane's messages
    /// ([`Session::receive_on`]) from now on; what arrives there before its
    /// turn is held. Idempotent.
    pub fn accept_quick_lane(&mut self) {
        self.quick_accepted = true;
    }

    /// Adds the quick lane for sending (and accepts it): from now on this
    /// end moves streams that write little to it. Only once the peer
    /// accepted it; a second call does nothing.
    pub fn attach_quick_lane(&mut self) {
        self.quick_accepted = true;
        if self.quick.is_none() {
            self.quick = Some(Box::default());
        }
    }

    pub fn has_quick_lane(&self) -> bool {
        self.quick.is_some()
    }

    /// The next encoded frame to send on the quick lane.
    pub fn poll_transmit_quick(&mut self) -> Option<Bytes> {
        self.quick.as_mut()?.pop()
    }

    /// Whether `lane` has frames to send.
    pub fn has_transmit(&self, lane: Lane) -> bool {
        match lane {
            Lane::Main => self.transmit.len() > 0,
            Lane::Quick => self.quick.as_ref().is_some_and(|q| q.len() > 0),
        }
    }

    /// The lane a stream's DATA and FIN go out on now.
    pub fn stream_lane(&self, id: u32) -> Lane {
        self.streams.get(&id).map_or(Lane::Main, |s| s.lanes.out)
    }

    /// Handles a message that arrived on `lane` (at `now`, when given: see
    /// [`Session::receive_at`]).
    pub fn receive_on(
        &mut self,
        lane: Lane,
        msg: Bytes,
        now: Option<Instant>,
    ) -> Result<(), ProtocolError> {
        self.clock = now;
        let result = self.receive_lane(msg, lane);
        self.clock = None;
        result
    }

    /// Picks the lane for a write of `len` payload bytes on stream `id`,
    /// queueing LANE on the old lane when the stream moves.
    pub(super) fn lane_for_write(&mut self, id: u32, len: usize) -> Lane {
        let Some(quick) = self.quick.as_deref_mut() else {
            return Lane::Main;
        };
        let Some(s) = self.streams.get_mut(&id) else {
            return Lane::Main;
        };
        let lanes = &mut s.lanes;
        let want = if len >= BULK_WRITE {
            lanes.short_writes = 0;
            Lane::Main
        } else {
            lanes.short_writes = lanes.short_writes.saturating_add(1);
            if lanes.short_writes >= QUICK_AFTER {
                Lane::Quick
            } else {
                lanes.out
            }
        };
        if want != lanes.out {
            let marker = encode(&Frame::Lane { stream: id });
            match lanes.out {
                Lane::Main => self.transmit.push_stream(id, marker),
                Lane::Quick => quick.push_stream(id, marker),
            }
            lanes.out = want;
        }
        want
    }

    /// Queues an encoded DATA or FIN of stream `id` on `lane`.
    pub(super) fn push_on(&mut self, lane: Lane, id: u32, bytes: Bytes) {
        match (lane, self.quick.as_deref_mut()) {
            (Lane::Quick, Some(quick)) => quick.push_stream(id, bytes),
            _ => self.transmit.push_stream(id, bytes),
        }
    }

    /// One frame that arrived on `lane`: a stream's DATA, FIN and LANE are
    /// taken in the order the stream's sender sent them (see the module
    /// docs); everything else as it comes.
    pub(super) fn on_frame_from(
        &mut self,
        frame: Frame,
        msg_len: usize,
        lane: Lane,
    ) -> Result<(), ProtocolError> {
        let id = match &frame {
            Frame::Data { stream, .. } | Frame::Fin { stream } | Frame::Lane { stream } => *stream,
            _ if lane == Lane::Main => return self.on_frame(frame, msg_len),
            _ => {
                return Err(ProtocolError::UnexpectedFrame {
                    frame: frame.name(),
                    stream: frame.stream(),
                })
            }
        };
        if !self.quick_accepted && (lane == Lane::Quick || matches!(frame, Frame::Lane { .. })) {
            return Err(ProtocolError::UnexpectedFrame {
                frame: frame.name(),
                stream: id,
            });
        }
        let Some(s) = self.streams.get_mut(&id) else {
            // Gone (or never opened: `on_frame` tells which).
            return match frame {
                Frame::Lane { .. } => self.check_gone(id),
                frame => self.on_frame(frame, msg_len),
            };
        };
        if s.lanes.inbound != lane {
            let len = frame.encoded_len() as u32;
            let held = s.lanes.held.get_or_insert_with(Box::default);
            let bytes = held.bytes.saturating_add(len);
            if bytes > s.window.remaining.saturating_add(HELD_SLACK) {
                let window = s.window.remaining;
                return Err(ProtocolError::StreamWindowExceeded {
                    stream: id,
                    len: bytes,
                    window,
                });
            }
            held.bytes = bytes;
            held.frames.push_back((frame, msg_len));
            return Ok(());
        }
        match frame {
            Frame::Lane { .. } => {
                // Everything held came on the lane the stream moves to, sent
                // after this LANE: its turn now, in order (a LANE among it
                // moves the stream back, and what follows is held again).
                s.lanes.inbound = lane.other();
                if let Some(held) = s.lanes.held.take() {
                    for (frame, msg_len) in held.frames {
                        self.on_frame_from(frame, msg_len, lane.other())?;
                    }
                }
                Ok(())
            }
            frame => self.on_frame(frame, msg_len),
        }
    }
}

fn encode(frame: &Frame) -> Bytes {
    let mut buf = BytesMut::with_capacity(HEADER_LEN);
    // A LANE frame is a bare header: it cannot break a limit.
    let _ = frame::encode(frame, &mut buf);
    buf.freeze()
}

/// Queued bytes of one stream on both lanes.
pub(super) fn stream_queued(main: &Transmit, quick: Option<&Transmit>, id: u32) -> usize {
    main.stream_len(id) + quick.map_or(0, |q| q.stream_len(id))
}
