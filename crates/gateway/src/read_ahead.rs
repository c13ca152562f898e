//! A read-ahead buffer under TLS, held only while bytes are arriving.
//!
//! rustls reads at most 4 KiB from its transport per call, so a full 16 KiB
//! TLS record costs four or five `recv` calls; on the bulk path that was a
//! large part of the gateway's system time. Reading up to [`READ_AHEAD`]
//! bytes per system call and handing them to rustls from memory costs one
//! extra copy and saves the rest of the calls. It sits under the partners'
//! TLS (the front door); the site connection reads its records itself
//! (`site_tls`), with the same policy for its buffer.
//!
//! Thousands of idle tunnels must stay small, so the buffer is
//! allocated when a read finds nothing buffered and dropped as soon as the
//! socket has nothing more to give (a read returned `Pending` with the
//! buffer drained): an idle connection holds no buffer at all.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes read from the socket per system call on a busy connection: two
/// full TLS records and their headers.
pub const READ_AHEAD: usize = 32 * 1024 + 512;

/// Wraps a transport (a TCP socket) with a read-ahead buffer; writes pass
/// straight through.
#[derive(Debug)]
pub struct ReadAhead<S> {
    inner: S,
    /// Allocated while the connection is busy; empty (no allocation) when idle.
    buf: Vec<u8>,
    pos: usize,
}

impl<S> ReadAhead<S> {
    pub fn new(inner: S) -> Self {
        ReadAhead {
            inner,
            buf: Vec::new(),
            pos: 0,
        }
    }

    /// The transport; bytes already read ahead stay buffered here.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Bytes read ahead and not yet handed out.
    fn buffered(&self) -> &[u8] {
        &self.buf[self.pos..]
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ReadAhead<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        dst: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.buffered().is_empty() {
            // A reader asking for as much as we would read ahead gains
            // nothing from the extra copy.
            if dst.remaining() >= READ_AHEAD {
                this.buf = Vec::new();
                return Pin::new(&mut this.inner).poll_read(cx, dst);
            }
            if this.buf.capacity() < READ_AHEAD {
                this.buf = Vec::with_capacity(READ_AHEAD);
            }
            this.buf.clear();
            this.pos = 0;
            // Read into the spare capacity: no zeroing pass over the buffer.
            let mut fill = ReadBuf::uninit(this.buf.spare_capacity_mut());
            match Pin::new(&mut this.inner).poll_read(cx, &mut fill) {
                Poll::Pending => {
                    // Idle now: give the memory back.
                    this.buf = Vec::new();
                    return Poll::Pending;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {
                    let n = fill.filled().len();
                    // SAFETY: `fill` reports exactly these `n` bytes of the
                    // spare capacity as initialised by the read.
                    unsafe { this.buf.set_len(n) };
                    if n == 0 {
                        this.buf = Vec::new();
                        return Poll::Ready(Ok(()));
                    }
                }
            }
        }
        let avail = this.buffered();
        let n = avail.len().min(dst.remaining());
        dst.put_slice(&avail[..n]);
        this.pos += n;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ReadAhead<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;
    use sha2::{Digest, Sha256};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// Counts the reads that reach the transport.
    struct Counting<S> {
        inner: S,
        reads: usize,
    }

    impl<S: AsyncRead + Unpin> AsyncRead for Counting<S> {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let this = self.get_mut();
            let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
            if poll.is_ready() {
                this.reads += 1;
            }
            poll
        }
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    #[tokio::test]
    async fn small_reads_see_every_byte_with_few_transport_reads() {
        let data = pattern(1 << 20);
        let (mut tx, rx) = tokio::io::duplex(1 << 21);
        tx.write_all(&data).await.unwrap();
        drop(tx);
        let mut ra = ReadAhead::new(Counting {
            inner: rx,
            reads: 0,
        });
        let mut got = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = ra.read(&mut chunk).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&chunk[..n]);
        }
        assert_eq!(Sha256::digest(&got), Sha256::digest(&data));
        // 4 KiB reads, one transport read per READ_AHEAD bytes (+ EOF).
        let expected = data.len().div_ceil(READ_AHEAD) + 1;
        assert!(
            ra.inner.reads <= expected,
            "{} transport reads for {} bytes (expected at most {expected})",
            ra.inner.reads,
            data.len()
        );
        assert_eq!(ra.buf.capacity(), 0, "EOF releases the buffer");
    }

    #[tokio::test]
    async fn an_idle_connection_holds_no_buffer() {
        let (mut tx, rx) = tokio::io::duplex(1 << 16);
        let mut ra = ReadAhead::new(rx);
        assert_eq!(ra.buf.capacity(), 0);
        tx.write_all(b"hello").await.unwrap();
        let mut chunk = [0u8; 3];
        assert_eq!(ra.read(&mut chunk).await.unwrap(), 3);
        assert!(
            ra.buf.capacity() >= READ_AHEAD,
            "busy: bytes are held ahead"
        );
        let mut rest = [0u8; 16];
        assert_eq!(ra.read(&mut rest).await.unwrap(), 2);
        assert_eq!(&rest[..2], b"lo");
        // Nothing more to read: the read waits and the buffer is gone.
        assert!(ra.read(&mut rest).now_or_never().is_none());
        assert_eq!(ra.buf.capacity(), 0);
        // And it comes back when bytes do.
        tx.write_all(b"again").await.unwrap();
        assert_eq!(ra.read(&mut rest).await.unwrap(), 5);
        assert_eq!(&rest[..5], b"again");
    }

    #[tokio::test]
    async fn large_reads_bypass_the_buffer() {
        let data = pattern(100_000);
        let (mut tx, rx) = tokio::io::duplex(1 << 20);
        tx.write_all(&data).await.unwrap();
        drop(tx);
        let mut ra = ReadAhead::new(rx);
        let mut big = vec![0u8; READ_AHEAD * 4];
        let mut got = Vec::new();
        loop {
            let n = ra.read(&mut big).await.unwrap();
            assert_eq!(ra.buf.capacity(), 0, "no copy through the buffer");
            if n == 0 {
                break;
            }
            got.extend_from_slice(&big[..n]);
        }
        assert_eq!(got, data);
    }

    #[tokio::test]
    async fn writes_pass_through() {
        let (a, mut b) = tokio::io::duplex(1 << 16);
        let mut ra = ReadAhead::new(a);
        ra.write_all(b"to the peer").await.unwrap();
        ra.shutdown().await.unwrap();
        let mut got = Vec::new();
        b.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"to the peer");
    }
}
