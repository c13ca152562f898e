//! How a [`Session`] reacts to each received frame: the protocol rules for
//! the peer's side of the conversation. Any `Err` here closes the session.

use bytes::Bytes;

use super::{Event, ProtocolError, Role, Session, Stream, StreamEnd, StreamState, MAX_WINDOW};
use crate::codes;
use crate::frame::{Access, Frame, Target};

impl Session {
    pub(super) fn on_frame(&mut self, frame: Frame, msg_len: usize) -> Result<(), ProtocolError> {
        match frame {
            Frame::Open {
                stream,
                target,
                access,
            } => self.on_open(stream, target, access),
            Frame::Accept { stream } => self.on_answer(stream, None),
            Frame::Refuse {
                stream,
                code,
                reason,
            } => self.on_answer(stream, Some((code, reason))),
            Frame::Data { stream, payload } => self.on_data(stream, payload, msg_len),
            Frame::Window { stream, increment } => self.on_window(stream, increment),
            Frame::Fin { stream } => self.on_fin(stream),
            // Live streams' LANE frames are taken in `lanes.rs`.
            Frame::Lane { stream } => self.check_gone(stream),
            Frame::Reset { stream, code } => {
                match self.streams.get(&stream) {
                    Some(_) => {
                        self.remove_stream(stream);
                        let end = StreamEnd::Reset { code };
                        self.events.push_back(Event::Closed { id: stream, end });
                    }
                    None => self.check_gone(stream)?,
                }
                Ok(())
            }
            Frame::Ping { data } => {
                self.queue(&Frame::Pong { data });
                Ok(())
            }
            Frame::Pong { data } => {
                if let Some(now) = self.clock {
                    // Streams take the new size as their readers catch up
                    // (`read`), so a stalled stream's buffer does not grow.
                    if let Some(window) = self.tuner.on_pong(data, now) {
                        tracing::debug!(window, "stream receive window grown");
                    }
                }
                Ok(())
            }
            Frame::Control { json } => {
                let value = serde_json::from_slice(&json)
                    .map_err(|e| ProtocolError::BadControl(e.to_string()))?;
                self.events.push_back(Event::Control(value));
                Ok(())
            }
            Frame::GoAway { code, reason } => {
                self.abort();
                self.events.push_back(Event::GoAway { code, reason });
                Ok(())
            }
        }
    }

    /// A frame for a stream that is not alive: fine if the stream existed
    /// (frames cross a RESET in flight), an error if it never did.
    pub(super) fn check_gone(&self, stream: u32) -> Result<(), ProtocolError> {
        if self.issued(stream) {
            Ok(())
        } else {
            Err(ProtocolError::UnknownStream(stream))
        }
    }

    fn on_open(
        &mut self,
        stream: u32,
        target: Target,
        access: Access,
    ) -> Result<(), ProtocolError> {
        if self.role == Role::Gateway {
            return Err(ProtocolError::UnexpectedFrame {
                frame: "OPEN",
                stream,
            });
        }
        if stream & 1 == 0 || stream <= self.last_id {
            return Err(ProtocolError::BadStreamId(stream));
        }
        self.last_id = stream;
        if self.streams.len() >= self.cfg.max_streams as usize {
            self.queue(&Frame::Refuse {
                stream,
                code: codes::REFUSE_TOO_MANY_STREAMS,
                // Only agents accept OPEN (above).
                reason: format!(
                    "the site's agent takes at most {} streams at once",
                    self.cfg.max_streams
                ),
            });
            return Ok(());
        }
        self.streams
            .insert(stream, Stream::new(StreamState::Pending, self.tuner.window));
        self.events.push_back(Event::Incoming {
            id: stream,
            target,
            access,
        });
        Ok(())
    }

    fn on_answer(
        &mut self,
        stream: u32,
        refusal: Option<(u8, String)>,
    ) -> Result<(), ProtocolError> {
        let name = if refusal.is_some() {
            "REFUSE"
        } else {
            "ACCEPT"
        };
        if self.role == Role::Agent {
            return Err(ProtocolError::UnexpectedFrame {
                frame: name,
                stream,
            });
        }
        let Some(s) = self.streams.get_mut(&stream) else {
            return self.check_gone(stream);
        };
        if s.state != StreamState::Opening {
            return Err(ProtocolError::UnexpectedFrame {
                frame: name,
                stream,
            });
        }
        match refusal {
            None => {
                s.state = StreamState::Open;
                self.events.push_back(Event::Accepted { id: stream });
            }
            Some((code, reason)) => {
                self.remove_stream(stream);
                self.events.push_back(Event::Refused {
                    id: stream,
                    code,
                    reason,
                });
            }
        }
        Ok(())
    }

    fn on_data(
        &mut self,
        stream: u32,
        payload: Bytes,
        msg_len: usize,
    ) -> Result<(), ProtocolError> {
        // DATA is at most 16 KiB, so the length fits in u32.
        let len = payload.len() as u32;
        if !self.streams.contains_key(&stream) {
            self.check_gone(stream)?;
            // The stream is gone here but the peer may not know yet: the
            // bytes still count against the connection window, and are
            // released at once.
            self.window
                .on_data(len)
                .map_err(|window| ProtocolError::ConnectionWindowExceeded { len, window })?;
            self.release_connection(len);
            return Ok(());
        }
        let Some(s) = self.streams.get_mut(&stream) else {
            return Ok(());
        };
        if s.state != StreamState::Open {
            return Err(ProtocolError::UnexpectedFrame {
                frame: "DATA",
                stream,
            });
        }
        if s.recv_fin {
            return Err(ProtocolError::DataAfterFin(stream));
        }
        if len > s.window.remaining {
            let window = s.window.remaining;
            return Err(ProtocolError::StreamWindowExceeded {
                stream,
                len,
                window,
            });
        }
        self.window
            .on_data(len)
            .map_err(|window| ProtocolError::ConnectionWindowExceeded { len, window })?;
        // Checked above; cannot fail.
        let _ = s.window.on_data(len);
        s.buf.push(payload, msg_len.max(len as usize));
        self.events.push_back(Event::Readable { id: stream });
        if let Some(now) = self.clock {
            if let Some(data) = self.tuner.on_data(len, now) {
                self.queue(&Frame::Ping { data });
            }
        }
        Ok(())
    }

    fn on_window(&mut self, stream: u32, increment: u32) -> Result<(), ProtocolError> {
        if increment == 0 {
            return Err(ProtocolError::ZeroIncrement(stream));
        }
        // Checked before it is applied: a session that reports a protocol
        // error must still hold consistent accounting.
        if stream == 0 {
            let credit = self.send_credit + u64::from(increment);
            if credit > u64::from(MAX_WINDOW) {
                return Err(ProtocolError::WindowOverflow(0));
            }
            self.send_credit = credit;
            self.events.push_back(Event::ConnectionWritable);
            return Ok(());
        }
        let Some(s) = self.streams.get_mut(&stream) else {
            return self.check_gone(stream);
        };
        let credit = s.send_credit + u64::from(increment);
        if credit > u64::from(MAX_WINDOW) {
            return Err(ProtocolError::WindowOverflow(stream));
        }
        s.send_credit = credit;
        if s.state == StreamState::Open && !s.sent_fin {
            self.events.push_back(Event::Writable { id: stream });
        }
        Ok(())
    }

    fn on_fin(&mut self, stream: u32) -> Result<(), ProtocolError> {
        let Some(s) = self.streams.get_mut(&stream) else {
            return self.check_gone(stream);
        };
        if s.state != StreamState::Open || s.recv_fin {
            return Err(ProtocolError::UnexpectedFrame {
                frame: "FIN",
                stream,
            });
        }
        s.recv_fin = true;
        self.events.push_back(Event::Readable { id: stream });
        self.maybe_finish(stream);
        Ok(())
    }
}
