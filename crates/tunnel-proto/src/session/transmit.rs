//! The order in which a [`super::Session`]'s encoded frames leave.
//!
//! One FIFO for everything put a ping of an interactive stream behind
//! whatever a bulk stream had queued (up to the writers' high-water mark),
//! which is head-of-line blocking the multiplexer itself caused. Here each
//! stream has its own queue and the streams take turns one frame at a time,
//! so a small write waits for at most one frame of every other busy stream.
//! Frames that steer the connection (WINDOW, PING/PONG, OPEN/ACCEPT/REFUSE,
//! CONTROL) go first: a credit update or a heartbeat must not wait behind
//! data either. GOAWAY goes last, after everything queued before it.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;

/// The transmit queues of one session.
#[derive(Debug, Default)]
pub(crate) struct Transmit {
    /// Connection-steering frames, in the order they were queued.
    control: VecDeque<Bytes>,
    /// Per-stream frames (DATA, FIN, RESET), each queue in order.
    streams: HashMap<u32, StreamQueue>,
    /// Streams with queued frames, in turn order.
    turns: VecDeque<u32>,
    /// GOAWAY: sent once everything else is out.
    last: Option<Bytes>,
    len: usize,
}

#[derive(Debug, Default)]
struct StreamQueue {
    frames: VecDeque<Bytes>,
    len: usize,
}

impl Transmit {
    /// Encoded bytes queued in total.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Encoded bytes queued for one stream.
    pub fn stream_len(&self, id: u32) -> usize {
        self.streams.get(&id).map_or(0, |q| q.len)
    }

    pub fn push_control(&mut self, frame: Bytes) {
        self.len += frame.len();
        self.control.push_back(frame);
    }

    pub fn push_stream(&mut self, id: u32, frame: Bytes) {
        self.len += frame.len();
        let queue = self.streams.entry(id).or_default();
        if queue.frames.is_empty() {
            self.turns.push_back(id);
        }
        queue.len += frame.len();
        queue.frames.push_back(frame);
    }

    pub fn push_last(&mut self, frame: Bytes) {
        self.len += frame.len();
        if let Some(old) = self.last.replace(frame) {
            self.len -= old.len();
        }
    }

    /// The next frame to send: control first, then one frame of the stream
    /// whose turn it is, then GOAWAY.
    pub fn pop(&mut self) -> Option<Bytes> {
        let frame = match self.control.pop_front() {
            Some(frame) => frame,
            None => match self.pop_stream() {
                Some(frame) => frame,
                None => self.last.take()?,
            },
        };
        self.len -= frame.len();
        Some(frame)
    }

    fn pop_stream(&mut self) -> Option<Bytes> {
        let id = self.turns.pop_front()?;
        let queue = self.streams.get_mut(&id)?;
        let frame = queue.frames.pop_front()?;
        queue.len -= frame.len();
        if queue.frames.is_empty() {
            self.streams.remove(&id);
        } else {
            self.turns.push_back(id);
        }
        Some(frame)
    }

    pub fn clear(&mut self) {
        *self = Transmit::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    fn drain(t: &mut Transmit) -> Vec<Bytes> {
        std::iter::from_fn(|| t.pop()).collect()
    }

    #[test]
    fn streams_take_turns_and_control_goes_first() {
        let mut t = Transmit::default();
        for f in ["a1", "a2", "a3"] {
            t.push_stream(1, b(f));
        }
        t.push_stream(3, b("b1"));
        t.push_control(b("w"));
        t.push_last(b("goaway"));
        t.push_stream(3, b("b2"));
        assert_eq!(t.len(), 2 * 5 + 1 + 6);
        assert_eq!(t.stream_len(1), 6);
        let order = drain(&mut t);
        let order: Vec<&[u8]> = order.iter().map(|f| &f[..]).collect();
        assert_eq!(
            order,
            [&b"w"[..], b"a1", b"b1", b"a2", b"b2", b"a3", b"goaway"]
        );
        assert_eq!(t.len(), 0);
        assert_eq!(t.stream_len(1), 0);
    }

    #[test]
    fn a_stream_that_empties_rejoins_at_the_back() {
        let mut t = Transmit::default();
        t.push_stream(1, b("a1"));
        t.push_stream(3, b("b1"));
        t.push_stream(3, b("b2"));
        assert_eq!(t.pop().as_deref(), Some(&b"a1"[..]));
        t.push_stream(1, b("a2"));
        let rest = drain(&mut t);
        let rest: Vec<&[u8]> = rest.iter().map(|f| &f[..]).collect();
        assert_eq!(rest, [&b"b1"[..], b"a2", b"b2"]);
    }
}
