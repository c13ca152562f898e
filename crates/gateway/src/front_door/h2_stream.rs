//! One HTTP/2 CONNECT stream as `AsyncRead + AsyncWrite`, so the relay moves
//! its bytes exactly like those of an HTTP/1.1 tunnel.
//!
//! Flow control is h2's: received bytes are released (and the peer's window
//! reopened) as the relay consumes them, and a write waits for send capacity
//! instead of queueing without bound. A half-close is `END_STREAM`; dropping
//! the stream before both directions ended resets it (`CANCEL`).

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use h2::{RecvStream, SendStream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The most a single write asks h2 to make room for: one DATA frame at the
/// default frame size is 16 KiB, a few of them keep the pipe full.
const MAX_WRITE: usize = 64 * 1024;

pub struct H2Stream {
    recv: RecvStream,
    send: SendStream<Bytes>,
    /// Received bytes the reader has not taken yet (already counted against
    /// our window; released as they are taken).
    pending: Bytes,
    read_done: bool,
    write_done: bool,
}

impl H2Stream {
    pub fn new(recv: RecvStream, send: SendStream<Bytes>) -> Self {
        H2Stream {
            recv,
            send,
            pending: Bytes::new(),
            read_done: false,
            write_done: false,
        }
    }
}

fn h2_io_error(e: h2::Error, kind: io::ErrorKind) -> io::Error {
    if e.is_io() {
        return e
            .into_io()
            .unwrap_or_else(|| io::Error::new(kind, "h2 I/O error"));
    }
    io::Error::new(kind, e)
}

impl AsyncRead for H2Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        while this.pending.is_empty() {
            if this.read_done {
                return Poll::Ready(Ok(()));
            }
            match ready!(this.recv.poll_data(cx)) {
                None => {
                    this.read_done = true;
                    return Poll::Ready(Ok(()));
                }
                Some(Ok(data)) => this.pending = data,
                // A reset with NO_ERROR after END_STREAM is a normal end.
                Some(Err(e)) if e.reason() == Some(h2::Reason::NO_ERROR) => {
                    this.read_done = true;
                    return Poll::Ready(Ok(()));
                }
                Some(Err(e)) => {
                    return Poll::Ready(Err(h2_io_error(e, io::ErrorKind::ConnectionReset)))
                }
            }
        }
        let n = this.pending.len().min(buf.remaining());
        buf.put_slice(&this.pending[..n]);
        this.pending.advance(n);
        // Errors here mean the stream is gone; the next poll_data says why.
        let _ = this.recv.flow_control().release_capacity(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for H2Stream {
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
        this.send.reserve_capacity(buf.len().min(MAX_WRITE));
        loop {
            let available = this.send.capacity();
            if available > 0 {
                let n = available.min(buf.len());
                this.send
                    .send_data(Bytes::copy_from_slice(&buf[..n]), false)
                    .map_err(|e| h2_io_error(e, io::ErrorKind::BrokenPipe))?;
                return Poll::Ready(Ok(n));
            }
            match ready!(this.send.poll_capacity(cx)) {
                // poll_capacity may report 0 spuriously: look again.
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Poll::Ready(Err(h2_io_error(e, io::ErrorKind::BrokenPipe))),
                None => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::BrokenPipe,
                        "the HTTP/2 stream was closed",
                    )))
                }
            }
        }
    }

    /// h2 sends queued frames as the connection task runs; there is nothing
    /// to flush per stream.
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.write_done {
            this.write_done = true;
            this.send
                .send_data(Bytes::new(), true)
                .map_err(|e| h2_io_error(e, io::ErrorKind::BrokenPipe))?;
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for H2Stream {
    fn drop(&mut self) {
        if !(self.read_done && self.write_done) {
            self.send.send_reset(h2::Reason::CANCEL);
        }
    }
}
