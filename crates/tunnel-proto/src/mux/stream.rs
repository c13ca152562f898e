//! [`MuxStream`]: one multiplexed stream as `AsyncRead + AsyncWrite`, so a
//! relay can use `tokio::io::copy_bidirectional` on it like on a socket.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::shared::{Inner, Shared, QUEUE_HIGH_WATER, STREAM_QUEUE_HIGH_WATER};
use crate::codes;
use crate::session::{ReadOutcome, StreamEnd, StreamError};

/// One stream of a session.
///
/// - Reads return EOF after the peer's FIN, and fail with `ConnectionReset`
///   after the peer's RESET or once the session is over.
/// - Writes wait while stream or connection credit is exhausted (the peer is
///   not reading) and fail with `BrokenPipe` after a reset, after the session
///   ended, or after `shutdown`.
/// - `poll_shutdown` sends FIN: a half-close, reading goes on.
/// - Dropping the stream before both directions finished sends RESET.
///
/// `poll_read`/`poll_write` are cancel safe in the usual tokio sense: a byte
/// is either handed over or stays where it was.
pub struct MuxStream {
    shared: Arc<Shared>,
    id: u32,
    read_done: bool,
    write_done: bool,
}

impl std::fmt::Debug for MuxStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MuxStream").field("id", &self.id).finish()
    }
}

fn ended_error(kind: io::ErrorKind, inner: &Inner, id: u32) -> io::Error {
    if let Some(reason) = &inner.closed {
        return io::Error::new(kind, format!("tunnel session closed: {reason}"));
    }
    match inner.slots.get(&id).and_then(|s| s.end) {
        Some(StreamEnd::Reset { code }) => {
            io::Error::new(kind, format!("stream reset by the peer (code {code})"))
        }
        Some(StreamEnd::Finished) => io::Error::new(kind, "stream already finished"),
        None => io::Error::new(kind, "stream is gone"),
    }
}

impl MuxStream {
    pub(crate) fn new(shared: Arc<Shared>, id: u32) -> Self {
        MuxStream {
            shared,
            id,
            read_done: false,
            write_done: false,
        }
    }

    /// The stream id (odd, unique within the session).
    pub fn id(&self) -> u32 {
        self.id
    }
}

impl AsyncRead for MuxStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.read_done || buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let shared = &this.shared;
        let mut inner = shared.lock();
        if inner.closed.is_some() {
            return Poll::Ready(Err(ended_error(
                io::ErrorKind::ConnectionReset,
                &inner,
                this.id,
            )));
        }
        let poll = match inner.session.read(this.id, buf.remaining()) {
            Ok(ReadOutcome::Data(chunk)) => {
                buf.put_slice(&chunk);
                Poll::Ready(Ok(()))
            }
            Ok(ReadOutcome::Fin) => {
                this.read_done = true;
                Poll::Ready(Ok(()))
            }
            Ok(ReadOutcome::Blocked) => {
                if let Some(slot) = inner.slots.get_mut(&this.id) {
                    slot.read_waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
            Err(StreamError::Unknown) => match inner.slots.get(&this.id).and_then(|s| s.end) {
                // Both FINs passed and everything was read: plain EOF.
                Some(StreamEnd::Finished) => {
                    this.read_done = true;
                    Poll::Ready(Ok(()))
                }
                _ => Poll::Ready(Err(ended_error(
                    io::ErrorKind::ConnectionReset,
                    &inner,
                    this.id,
                ))),
            },
            Err(e) => Poll::Ready(Err(io::Error::new(io::ErrorKind::ConnectionReset, e))),
        };
        // Reading may have queued a WINDOW update or ended the stream.
        let _ = inner.dispatch(shared);
        let queued = inner.session.transmit_len() > 0;
        drop(inner);
        shared.kick(queued);
        poll
    }
}

impl AsyncWrite for MuxStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if this.write_done {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "write after shutdown",
            )));
        }
        let mut inner = this.shared.lock();
        if inner.closed.is_some() {
            return Poll::Ready(Err(ended_error(io::ErrorKind::BrokenPipe, &inner, this.id)));
        }
        if inner.session.stream_transmit_len(this.id) >= STREAM_QUEUE_HIGH_WATER
            || inner.session.transmit_len() >= QUEUE_HIGH_WATER
        {
            inner.wait_for_queue(this.id, cx.waker());
            return Poll::Pending;
        }
        match inner.session.write(this.id, buf) {
            Ok(0) => {
                if let Some(slot) = inner.slots.get_mut(&this.id) {
                    slot.write_waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
            Ok(n) => {
                drop(inner);
                this.shared.kick(true);
                Poll::Ready(Ok(n))
            }
            Err(_) => Poll::Ready(Err(ended_error(io::ErrorKind::BrokenPipe, &inner, this.id))),
        }
    }

    /// Data is handed to the session on write; the writer task flushes the
    /// websocket on its own as soon as it has nothing more queued.
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.write_done {
            return Poll::Ready(Ok(()));
        }
        let shared = &this.shared;
        let mut inner = shared.lock();
        if inner.closed.is_some() {
            return Poll::Ready(Err(ended_error(io::ErrorKind::BrokenPipe, &inner, this.id)));
        }
        let result = match inner.session.finish(this.id) {
            Ok(()) => {
                this.write_done = true;
                Ok(())
            }
            Err(_) => Err(ended_error(io::ErrorKind::BrokenPipe, &inner, this.id)),
        };
        let _ = inner.dispatch(shared);
        let queued = inner.session.transmit_len() > 0;
        drop(inner);
        shared.kick(queued);
        Poll::Ready(result)
    }
}

impl Drop for MuxStream {
    fn drop(&mut self) {
        let queued = {
            let mut inner = self.shared.lock();
            inner.slots.remove(&self.id);
            if inner.closed.is_none() && inner.session.has_stream(self.id) {
                // Quiet if both FINs already passed (see Session::reset).
                let _ = inner.session.reset(self.id, codes::RESET_CANCEL);
            }
            inner.session.transmit_len() > 0
        };
        self.shared.kick(queued);
    }
}
