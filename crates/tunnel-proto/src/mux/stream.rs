//! [`MuxStream`]: one multiplexed stream as `AsyncRead + AsyncWrite`, so a
//! relay can use `tokio::io::copy_bidirectional` on it like on a socket; and
//! its halves ([`MuxStream::into_split`]), whose chunk-level calls let a relay
//! move bytes without copying them: received payloads come out as the
//! [`Bytes`] they arrived in, and a payload read behind header room goes out
//! as the very buffer it was read into.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::shared::{Inner, Queued, Shared, QUEUE_HIGH_WATER, STREAM_QUEUE_HIGH_WATER};
use crate::codes;
use crate::session::{ReadOutcome, Session, StreamEnd, StreamError};

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
    core: Core,
    read_done: bool,
    write_done: bool,
}

/// The reading half of a [`MuxStream`] (see [`MuxStream::into_split`]).
pub struct MuxReadHalf {
    core: Arc<Core>,
    done: bool,
}

/// The writing half of a [`MuxStream`] (see [`MuxStream::into_split`]).
pub struct MuxWriteHalf {
    core: Arc<Core>,
    done: bool,
}

/// The stream's place in its session. Dropping it (the stream, or the last
/// of its halves) resets a stream that has not finished both ways.
struct Core {
    shared: Arc<Shared>,
    id: u32,
}

impl std::fmt::Debug for MuxStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MuxStream")
            .field("id", &self.core.id)
            .finish()
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

impl Core {
    /// Up to `max` received bytes, as they arrived; `None` at EOF.
    fn poll_read_chunk(
        &self,
        cx: &mut Context<'_>,
        max: usize,
        done: &mut bool,
    ) -> Poll<io::Result<Option<Bytes>>> {
        let mut got = None;
        self.poll_read_each(cx, max, done, |chunk| {
            got = Some(chunk);
            false
        })
        .map_ok(|_| got)
    }

    /// Received chunks as they arrived, up to `max` bytes in all: waits for
    /// the first, then hands `take` each chunk already received while it
    /// returns true (wants more), under one lock. Ready(true) when at least
    /// one chunk was taken, Ready(false) at EOF.
    fn poll_read_each(
        &self,
        cx: &mut Context<'_>,
        max: usize,
        done: &mut bool,
        mut take: impl FnMut(Bytes) -> bool,
    ) -> Poll<io::Result<bool>> {
        if *done {
            return Poll::Ready(Ok(false));
        }
        let shared = &self.shared;
        let mut inner = shared.lock();
        if inner.closed.is_some() {
            return Poll::Ready(Err(ended_error(
                io::ErrorKind::ConnectionReset,
                &inner,
                self.id,
            )));
        }
        let mut taken = 0;
        let poll = loop {
            let outcome = inner.session.read(self.id, max - taken);
            if taken > 0 && !matches!(outcome, Ok(ReadOutcome::Data(_))) {
                // What ends the batch (nothing more yet, EOF, an error) is
                // seen again by the next call.
                break Poll::Ready(Ok(true));
            }
            match outcome {
                Ok(ReadOutcome::Data(chunk)) => {
                    taken += chunk.len();
                    if !take(chunk) || taken >= max {
                        break Poll::Ready(Ok(true));
                    }
                }
                Ok(ReadOutcome::Fin) => {
                    *done = true;
                    break Poll::Ready(Ok(false));
                }
                Ok(ReadOutcome::Blocked) => {
                    if let Some(slot) = inner.slots.get_mut(&self.id) {
                        slot.read_waker = Some(cx.waker().clone());
                    }
                    break Poll::Pending;
                }
                Err(StreamError::Unknown) => {
                    break match inner.slots.get(&self.id).and_then(|s| s.end) {
                        // Both FINs passed and everything was read: plain EOF.
                        Some(StreamEnd::Finished) => {
                            *done = true;
                            Poll::Ready(Ok(false))
                        }
                        _ => Poll::Ready(Err(ended_error(
                            io::ErrorKind::ConnectionReset,
                            &inner,
                            self.id,
                        ))),
                    };
                }
                Err(e) => {
                    break Poll::Ready(Err(io::Error::new(io::ErrorKind::ConnectionReset, e)))
                }
            }
        };
        // Reading may have queued a WINDOW update or ended the stream.
        let _ = inner.dispatch(shared);
        let queued = Queued::of(&inner.session);
        drop(inner);
        shared.kick(queued);
        poll
    }

    /// [`AsyncRead::poll_read`]: a received chunk copied into `buf`.
    fn poll_read_into(
        &self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
        done: &mut bool,
    ) -> Poll<io::Result<()>> {
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        self.poll_read_chunk(cx, buf.remaining(), done)
            .map_ok(|chunk| {
                if let Some(chunk) = chunk {
                    buf.put_slice(&chunk);
                }
            })
    }

    /// Hands bytes to the session through `write` (which returns how many it
    /// took, 0 for "no credit"), waiting while the queues are full.
    fn poll_send(
        &self,
        cx: &mut Context<'_>,
        done: bool,
        write: impl FnOnce(&mut Session, u32) -> Result<usize, StreamError>,
    ) -> Poll<io::Result<usize>> {
        if done {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "write after shutdown",
            )));
        }
        let mut inner = self.shared.lock();
        if inner.closed.is_some() {
            return Poll::Ready(Err(ended_error(io::ErrorKind::BrokenPipe, &inner, self.id)));
        }
        if inner.session.stream_transmit_len(self.id) >= STREAM_QUEUE_HIGH_WATER
            || inner.session.transmit_len() >= QUEUE_HIGH_WATER
        {
            inner.wait_for_queue(self.id, cx.waker());
            return Poll::Pending;
        }
        match write(&mut inner.session, self.id) {
            Ok(0) => {
                if let Some(slot) = inner.slots.get_mut(&self.id) {
                    slot.write_waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
            Ok(n) => {
                let queued = Queued::of(&inner.session);
                drop(inner);
                self.shared.kick(queued);
                Poll::Ready(Ok(n))
            }
            Err(_) => Poll::Ready(Err(ended_error(io::ErrorKind::BrokenPipe, &inner, self.id))),
        }
    }

    fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8], done: bool) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        self.poll_send(cx, done, |session, id| session.write(id, buf))
    }

    fn shutdown(&self, done: &mut bool) -> io::Result<()> {
        if *done {
            return Ok(());
        }
        let shared = &self.shared;
        let mut inner = shared.lock();
        if inner.closed.is_some() {
            return Err(ended_error(io::ErrorKind::BrokenPipe, &inner, self.id));
        }
        let result = match inner.session.finish(self.id) {
            Ok(()) => {
                *done = true;
                Ok(())
            }
            Err(_) => Err(ended_error(io::ErrorKind::BrokenPipe, &inner, self.id)),
        };
        let _ = inner.dispatch(shared);
        let queued = Queued::of(&inner.session);
        drop(inner);
        shared.kick(queued);
        result
    }
}

impl Drop for Core {
    fn drop(&mut self) {
        let queued = {
            let mut inner = self.shared.lock();
            inner.slots.remove(&self.id);
            if inner.closed.is_none() && inner.session.has_stream(self.id) {
                // Quiet if both FINs already passed (see Session::reset).
                let _ = inner.session.reset(self.id, codes::RESET_CANCEL);
            }
            Queued::of(&inner.session)
        };
        self.shared.kick(queued);
    }
}

impl MuxStream {
    pub(crate) fn new(shared: Arc<Shared>, id: u32) -> Self {
        MuxStream {
            core: Core { shared, id },
            read_done: false,
            write_done: false,
        }
    }

    /// The stream id (odd, unique within the session).
    pub fn id(&self) -> u32 {
        self.core.id
    }

    /// Splits the stream into halves that can be driven by different tasks
    /// or futures. The stream is reset when both halves are dropped before
    /// it finished both ways, as when the stream itself is dropped.
    pub fn into_split(self) -> (MuxReadHalf, MuxWriteHalf) {
        let MuxStream {
            core,
            read_done,
            write_done,
        } = self;
        let core = Arc::new(core);
        (
            MuxReadHalf {
                core: core.clone(),
                done: read_done,
            },
            MuxWriteHalf {
                core,
                done: write_done,
            },
        )
    }
}

impl MuxReadHalf {
    /// Waits for received bytes and returns up to `max` of them as they
    /// arrived (no copy); `None` at EOF. Cancel safe.
    pub async fn read_chunk(&mut self, max: usize) -> io::Result<Option<Bytes>> {
        poll_fn(|cx| self.core.poll_read_chunk(cx, max, &mut self.done)).await
    }

    /// Waits for received bytes, then appends to `out` every chunk already
    /// received, as they arrived (no copy), up to `max` bytes and
    /// `max_chunks` chunks: a writer can hand them on in one vectored write.
    /// Returns false at EOF (nothing appended). Cancel safe.
    pub async fn read_chunks(
        &mut self,
        max: usize,
        max_chunks: usize,
        out: &mut Vec<Bytes>,
    ) -> io::Result<bool> {
        poll_fn(|cx| {
            self.core.poll_read_each(cx, max, &mut self.done, |chunk| {
                out.push(chunk);
                out.len() < max_chunks
            })
        })
        .await
    }
}

impl MuxWriteHalf {
    /// The largest payload one DATA frame carries on this session: a writer
    /// that reads this much per frame sends the fewest frames.
    pub fn max_payload(&self) -> usize {
        self.core.shared.lock().session.peer_max_data()
    }

    /// Sends the payload behind the first [`crate::frame::HEADER_LEN`] bytes
    /// of `buf`, waiting for credit. A payload that credit allows at once
    /// leaves as `buf` itself, header written into the room in front, and
    /// `buf` is left empty; otherwise what fits is copied and dropped from
    /// the front of `buf` (see [`Session::write_frame`]). Returns the payload
    /// bytes sent. Cancel safe.
    pub async fn write_frame(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        if buf.len() <= crate::frame::HEADER_LEN {
            return Ok(0);
        }
        poll_fn(|cx| {
            self.core
                .poll_send(cx, self.done, |session, id| session.write_frame(id, buf))
        })
        .await
    }
}

impl AsyncRead for MuxStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.core.poll_read_into(cx, buf, &mut this.read_done)
    }
}

impl AsyncRead for MuxReadHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.core.poll_read_into(cx, buf, &mut this.done)
    }
}

impl AsyncWrite for MuxStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.core.poll_write(cx, buf, this.write_done)
    }

    /// Data is handed to the session on write; the writer task flushes the
    /// websocket on its own as soon as it has nothing more queued.
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        Poll::Ready(this.core.shutdown(&mut this.write_done))
    }
}

impl AsyncWrite for MuxWriteHalf {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.core.poll_write(cx, buf, this.done)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        Poll::Ready(this.core.shutdown(&mut this.done))
    }
}
