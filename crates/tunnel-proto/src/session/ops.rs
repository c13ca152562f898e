//! What the application asks of a [`Session`]: open, answer, read, write,
//! finish, reset, ping, control. Each call may queue frames to transmit.

use bytes::{Buf, BytesMut};

use super::{ReadOutcome, Session, SessionError, Stream, StreamError, StreamState};
use crate::frame::{self, Access, Frame, Target, MAX_CONTROL_LEN};

impl Session {
    /// Opens a stream to `target` under `access` (gateway only). Queues OPEN followed by the
    /// WINDOW that grants our receive window; the stream can carry data once
    /// [`super::Event::Accepted`] arrives.
    ///
    /// Ids are odd, strictly increasing and never reused: 1, 3, 5, ...
    pub fn open(&mut self, target: Target, access: Access) -> Result<u32, SessionError> {
        if self.closed {
            return Err(SessionError::Closed);
        }
        if self.role != super::Role::Gateway {
            return Err(SessionError::WrongRole);
        }
        if self.streams.len() >= self.cfg.max_streams as usize {
            return Err(SessionError::TooManyStreams {
                limit: self.cfg.max_streams,
            });
        }
        let id = self
            .last_id
            .checked_add(1)
            .map(|n| n | 1)
            .ok_or(SessionError::IdsExhausted)?;
        self.last_id = id;
        let mut stream = Stream::new(StreamState::Opening, self.tuner.window);
        let increment = stream.window.grant();
        self.streams.insert(id, stream);
        self.queue(&Frame::Open {
            stream: id,
            target,
            access,
        });
        self.queue(&Frame::Window {
            stream: id,
            increment,
        });
        Ok(id)
    }

    fn stream_mut(&mut self, id: u32) -> Result<&mut Stream, StreamError> {
        if self.closed {
            return Err(StreamError::SessionClosed);
        }
        self.streams.get_mut(&id).ok_or(StreamError::Unknown)
    }

    fn open_stream_mut(&mut self, id: u32) -> Result<&mut Stream, StreamError> {
        let s = self.stream_mut(id)?;
        if s.state != StreamState::Open {
            return Err(StreamError::NotOpen);
        }
        Ok(s)
    }

    /// Accepts a stream the peer opened: queues ACCEPT and grants our window.
    pub fn accept(&mut self, id: u32) -> Result<(), StreamError> {
        let s = self.stream_mut(id)?;
        if s.state != StreamState::Pending {
            return Err(StreamError::NotOpen);
        }
        s.state = StreamState::Open;
        let increment = s.window.grant();
        self.queue(&Frame::Accept { stream: id });
        self.queue(&Frame::Window {
            stream: id,
            increment,
        });
        Ok(())
    }

    /// Refuses a stream the peer opened, with a reason the partner will see.
    pub fn refuse(&mut self, id: u32, code: u8, reason: &str) -> Result<(), StreamError> {
        let s = self.stream_mut(id)?;
        if s.state != StreamState::Pending {
            return Err(StreamError::NotOpen);
        }
        self.remove_stream(id);
        let reason = frame::truncate_reason(reason);
        self.queue(&Frame::Refuse {
            stream: id,
            code,
            reason,
        });
        Ok(())
    }

    /// Bytes [`Session::write`] would take now on this stream.
    pub fn send_capacity(&self, id: u32) -> usize {
        match self.streams.get(&id) {
            Some(s) if !self.closed && s.state == StreamState::Open && !s.sent_fin => {
                s.send_credit
                    .min(self.send_credit)
                    .min(self.peer_max_data as u64) as usize
            }
            _ => 0,
        }
    }

    /// Queues as much of `data` as stream and connection credit allow (at
    /// most one DATA frame of the peer's largest size) and returns how much that was. `Ok(0)`
    /// means "no credit, wait for a Writable/ConnectionWritable event".
    pub fn write(&mut self, id: u32, data: &[u8]) -> Result<usize, StreamError> {
        let s = self.open_stream_mut(id)?;
        if s.sent_fin {
            return Err(StreamError::Finished);
        }
        let n = self.send_capacity(id).min(data.len());
        if n == 0 {
            return Ok(0);
        }
        let mut buf = BytesMut::with_capacity(frame::HEADER_LEN + n);
        if frame::encode_data(id, &data[..n], &mut buf).is_err() {
            // Unreachable: n <= MAX_DATA_LEN and id != 0 for a live stream.
            return Ok(0);
        }
        if let Some(s) = self.streams.get_mut(&id) {
            s.send_credit -= n as u64;
        }
        self.send_credit -= n as u64;
        let lane = self.lane_for_write(id, n);
        self.push_on(lane, id, buf.freeze());
        Ok(n)
    }

    /// Like [`Session::write`], for a payload that sits in `buf` behind
    /// [`frame::HEADER_LEN`] bytes of room: when credit allows the whole
    /// payload, the header goes into that room and `buf` itself is queued
    /// (taken, `buf` is left empty), so the payload is never copied. With
    /// less credit the part that fits is copied into a frame of its own and
    /// dropped from the front of `buf`, which keeps the room in front of the
    /// rest. Returns the payload bytes queued; `Ok(0)` means "wait for
    /// credit", as with `write`.
    ///
    /// # Panics
    ///
    /// If `buf` is shorter than the header room (a caller bug).
    pub fn write_frame(&mut self, id: u32, buf: &mut BytesMut) -> Result<usize, StreamError> {
        assert!(
            buf.len() >= frame::HEADER_LEN,
            "no room for the frame header"
        );
        let len = buf.len() - frame::HEADER_LEN;
        if len == 0 {
            return Ok(0);
        }
        if self.send_capacity(id) < len {
            let n = self.write(id, &buf[frame::HEADER_LEN..])?;
            buf.advance(n);
            return Ok(n);
        }
        let s = self.open_stream_mut(id)?;
        if s.sent_fin {
            return Err(StreamError::Finished);
        }
        if frame::put_data_header_in_place(id, buf).is_err() {
            // Unreachable: len <= send_capacity <= MAX_DATA_LEN, id is live.
            return Ok(0);
        }
        if let Some(s) = self.streams.get_mut(&id) {
            s.send_credit -= len as u64;
        }
        self.send_credit -= len as u64;
        let lane = self.lane_for_write(id, len);
        self.push_on(lane, id, std::mem::take(buf).freeze());
        Ok(len)
    }

    /// Takes up to `max` received bytes. Reading is consuming: once the
    /// consumed bytes reach a quarter of the window, a WINDOW update is queued.
    pub fn read(&mut self, id: u32, max: usize) -> Result<ReadOutcome, StreamError> {
        let tuned = self.tuner.window;
        let s = self.open_stream_mut(id)?;
        let Some(chunk) = s.buf.pop(max) else {
            return Ok(if s.recv_fin {
                ReadOutcome::Fin
            } else {
                ReadOutcome::Blocked
            });
        };
        // A chunk never exceeds the buffered bytes, themselves <= the window.
        let n = chunk.len() as u32;
        let mut stream_update = s.window.on_consumed(n);
        let peer_done = s.recv_fin;
        // A reader that has caught up gets the tuned window (see
        // `autotune.rs`); one that lags keeps the window it has.
        if s.buf.len() == 0 && !peer_done {
            if let Some(growth) = s.window.grow_to(tuned) {
                stream_update = Some(stream_update.unwrap_or(0) + growth);
            }
        }
        if let Some(increment) = stream_update.filter(|_| !peer_done) {
            self.queue(&Frame::Window {
                stream: id,
                increment,
            });
        }
        self.release_connection(n);
        self.maybe_finish(id);
        Ok(ReadOutcome::Data(chunk))
    }

    /// Ends our direction of the stream (queues FIN after any queued data).
    /// Finishing twice is allowed and does nothing the second time.
    pub fn finish(&mut self, id: u32) -> Result<(), StreamError> {
        let s = self.open_stream_mut(id)?;
        if s.sent_fin {
            return Ok(());
        }
        s.sent_fin = true;
        self.queue(&Frame::Fin { stream: id });
        self.maybe_finish(id);
        Ok(())
    }

    /// Abandons a stream in both directions. Unread bytes are discarded (and
    /// returned to the connection window). When both FINs already passed, the
    /// stream is dropped quietly: the peer has nothing left to cancel.
    pub fn reset(&mut self, id: u32, code: u32) -> Result<(), StreamError> {
        let s = self.stream_mut(id)?;
        let quiet = s.sent_fin && s.recv_fin;
        self.remove_stream(id);
        if !quiet {
            self.queue(&Frame::Reset { stream: id, code });
        }
        Ok(())
    }

    /// Queues a PING; the peer answers with PONG. Any received frame proves
    /// the peer alive, so the driver only needs the PING to cause traffic.
    pub fn ping(&mut self, data: u64) {
        if !self.closed {
            self.queue(&Frame::Ping { data });
        }
    }

    /// Queues a CONTROL message.
    pub fn send_control(&mut self, value: &serde_json::Value) -> Result<(), SessionError> {
        if self.closed {
            return Err(SessionError::Closed);
        }
        // Serializing a Value cannot fail (its map keys are strings).
        let json = serde_json::to_vec(value).unwrap_or_default();
        if json.len() > MAX_CONTROL_LEN {
            return Err(SessionError::ControlTooLarge(json.len()));
        }
        self.queue(&Frame::Control { json: json.into() });
        Ok(())
    }
}
