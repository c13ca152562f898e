//! Receive-side bookkeeping shared by streams and the connection: the window
//! a receiver has granted, and the buffer of bytes it has accepted but the
//! application has not read yet.
//!
//! Kept apart from the frame handling so the arithmetic that bounds memory
//! can be read (and checked) on its own.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

/// Payloads shorter than this are copied into a shared tail buffer, so that a
/// flood of tiny DATA frames neither keeps whole websocket messages alive nor
/// costs a queue entry each.
const SMALL_PAYLOAD: usize = 1024;
/// The tail buffer is sealed into a chunk once it holds this much.
const TAIL_SEAL: usize = 16 * 1024;
/// Beyond this much unread data, payloads that share their message with
/// other frames are copied rather than sliced: a slice pins its whole
/// websocket message (up to 16 KiB of other streams' frames and headers
/// besides its own bytes), which is fine for data about to be read but not
/// for the backlog of a stalled stream. A payload that is its message but
/// for its headers (every full-sized DATA frame) is sliced at any backlog:
/// it pins nothing else, and copying it cost the receiving site thread about
/// 1.5 % of its time in a download.
const ZERO_COPY_BACKLOG: usize = 64 * 1024;

/// Read bytes go back to the peer as credit once they reach this fraction
/// of the window: a window-bound sender has on average `1 - 1/(2 *
/// CREDIT_FRACTION)` of the window in flight. Half a window (HTTP/2's usual
/// choice) left a 20 ms site at about half of what the window allows;
/// a quarter costs two more small WINDOW frames per window of data.
const CREDIT_FRACTION: u32 = 4;

/// Receive window accounting. While granted, `remaining + buffered + unacked
/// == size`: the peer may send `remaining` more bytes, `buffered` wait for the
/// application, and `unacked` were read but not yet returned with WINDOW.
#[derive(Debug, Clone)]
pub(crate) struct RecvWindow {
    pub size: u32,
    pub remaining: u32,
    pub buffered: u32,
    pub unacked: u32,
    pub granted: bool,
}

impl RecvWindow {
    /// A window not yet granted to the peer: it may send nothing.
    pub fn ungranted(size: u32) -> Self {
        RecvWindow {
            size,
            remaining: 0,
            buffered: 0,
            unacked: 0,
            granted: false,
        }
    }

    /// Grants the whole window; the caller sends `WINDOW(size)`.
    pub fn grant(&mut self) -> u32 {
        self.granted = true;
        self.remaining = self.size;
        self.size
    }

    /// Accepts `len` bytes from the peer, or refuses if they exceed the window.
    pub fn on_data(&mut self, len: u32) -> Result<(), u32> {
        if len > self.remaining {
            return Err(self.remaining);
        }
        self.remaining -= len;
        self.buffered += len;
        Ok(())
    }

    /// Records that the application took `len` buffered bytes (or that they
    /// were discarded). Returns the increment to announce once the unacked
    /// bytes reach a quarter of the window ([`CREDIT_FRACTION`]), so updates
    /// go out per quarter window, not per read.
    pub fn on_consumed(&mut self, len: u32) -> Option<u32> {
        debug_assert!(len <= self.buffered);
        let len = len.min(self.buffered);
        self.buffered -= len;
        self.unacked += len;
        let threshold = (self.size / CREDIT_FRACTION).max(1);
        if self.unacked >= threshold {
            let inc = self.unacked;
            self.unacked = 0;
            self.remaining += inc;
            Some(inc)
        } else {
            None
        }
    }

    /// Raises the window's size to `size`. Returns the increment to announce
    /// when the window was already granted (the peer may send that much more).
    pub fn grow_to(&mut self, size: u32) -> Option<u32> {
        let increment = size.checked_sub(self.size).filter(|i| *i > 0)?;
        self.size = size;
        if !self.granted {
            return None;
        }
        self.remaining += increment;
        Some(increment)
    }

    pub fn check(&self) -> Result<(), String> {
        if self.granted
            && self.remaining as u64 + self.buffered as u64 + self.unacked as u64
                != self.size as u64
        {
            return Err(format!("window accounting broken: {self:?}"));
        }
        if self.buffered > self.size {
            return Err(format!("buffered beyond the window: {self:?}"));
        }
        Ok(())
    }
}

/// Bytes received on a stream and not yet read.
#[derive(Debug, Default)]
pub(crate) struct RecvBuf {
    chunks: VecDeque<Bytes>,
    tail: BytesMut,
    len: usize,
}

impl RecvBuf {
    pub fn len(&self) -> usize {
        self.len
    }

    /// Queues `payload`, which came in a websocket message of `msg_len` bytes.
    ///
    /// Large payloads that are most of their message are kept as zero-copy
    /// slices while the reader keeps up; otherwise they are copied, so that
    /// the memory a stalled stream holds stays close to its window.
    pub fn push(&mut self, payload: Bytes, msg_len: usize) {
        if payload.is_empty() {
            return;
        }
        let backlog = self.len;
        self.len += payload.len();
        if payload.len() < SMALL_PAYLOAD {
            self.tail.extend_from_slice(&payload);
            if self.tail.len() >= TAIL_SEAL {
                self.chunks.push_back(self.tail.split().freeze());
            }
            return;
        }
        self.seal_tail();
        // What a slice would keep alive besides the payload.
        let others = msg_len.saturating_sub(payload.len());
        let shares_message = others > payload.len() / 8;
        let payload = if payload.len().saturating_mul(2) < msg_len
            || (shares_message && backlog >= ZERO_COPY_BACKLOG)
        {
            Bytes::copy_from_slice(&payload)
        } else {
            payload
        };
        self.chunks.push_back(payload);
    }

    fn seal_tail(&mut self) {
        if !self.tail.is_empty() {
            self.chunks.push_back(self.tail.split().freeze());
        }
    }

    /// Takes up to `max` bytes from the front.
    pub fn pop(&mut self, max: usize) -> Option<Bytes> {
        if max == 0 {
            return None;
        }
        if self.chunks.is_empty() {
            self.seal_tail();
        }
        let front = self.chunks.front_mut()?;
        let out = if front.len() <= max {
            self.chunks.pop_front()?
        } else {
            front.split_to(max)
        };
        self.len -= out.len();
        if self.len == 0 {
            // Give back whatever capacity the tail still holds: an idle
            // stream should cost a few hundred bytes, not a buffer.
            self.tail = BytesMut::new();
            self.chunks = VecDeque::new();
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_updates_are_sent_per_quarter_window() {
        let mut w = RecvWindow::ungranted(100);
        assert_eq!(w.on_data(1), Err(0));
        assert_eq!(w.grant(), 100);
        w.on_data(100).unwrap();
        assert_eq!(w.on_data(1), Err(0));
        assert_eq!(w.on_consumed(24), None);
        assert_eq!(w.on_consumed(1), Some(25));
        assert_eq!(w.remaining, 25);
        w.check().unwrap();
    }

    #[test]
    fn small_payloads_are_coalesced_and_large_ones_sliced() {
        let mut buf = RecvBuf::default();
        for _ in 0..3 {
            buf.push(Bytes::from_static(b"ab"), 100);
        }
        let big = Bytes::from(vec![7u8; 4096]);
        let ptr = big.as_ptr();
        buf.push(big, 4105);
        assert_eq!(buf.len(), 4102);
        assert_eq!(buf.pop(100).as_deref(), Some(&b"ababab"[..]));
        let first = buf.pop(10).unwrap();
        assert_eq!(first.as_ptr(), ptr, "large payload kept as a slice");
        assert_eq!(buf.pop(usize::MAX).unwrap().len(), 4086);
        assert!(buf.pop(1).is_none());
    }

    #[test]
    fn backlog_sharing_its_messages_is_copied_not_sliced() {
        let mut buf = RecvBuf::default();
        let chunk = Bytes::from(vec![3u8; 16 * 1024]);
        // Each payload came with 4 KiB of other frames in its message.
        let msg_len = chunk.len() + 4096;
        for _ in 0..(ZERO_COPY_BACKLOG / chunk.len()) {
            buf.push(chunk.clone(), msg_len);
        }
        buf.push(chunk.clone(), msg_len);
        let mut ptrs = Vec::new();
        while let Some(b) = buf.pop(usize::MAX) {
            ptrs.push(b.as_ptr() == chunk.as_ptr());
        }
        assert_eq!(
            ptrs.iter().filter(|sliced| **sliced).count(),
            ZERO_COPY_BACKLOG / chunk.len()
        );
        assert_eq!(ptrs.last(), Some(&false));
    }

    #[test]
    fn full_sized_frames_are_sliced_at_any_backlog() {
        let mut buf = RecvBuf::default();
        let chunk = Bytes::from(vec![5u8; 65_519]);
        // The message: the frame's 9-byte header and the payload.
        for _ in 0..8 {
            buf.push(chunk.clone(), chunk.len() + 9);
        }
        assert_eq!(buf.len(), 8 * chunk.len());
        let mut sliced = 0;
        while let Some(b) = buf.pop(usize::MAX) {
            assert_eq!(b.as_ptr(), chunk.as_ptr());
            sliced += 1;
        }
        assert_eq!(sliced, 8);
    }

    #[test]
    fn payload_that_is_a_small_part_of_its_message_is_copied() {
        let mut buf = RecvBuf::default();
        let msg = Bytes::from(vec![1u8; 16_000]);
        let part = msg.slice(..2000);
        buf.push(part, msg.len());
        let out = buf.pop(usize::MAX).unwrap();
        assert_ne!(out.as_ptr(), msg.as_ptr());
    }
}
