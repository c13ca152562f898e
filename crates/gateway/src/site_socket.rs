//! Socket options of the one TCP connection that carries a whole site.
//!
//! Every tunnel of a site shares its websocket, so bytes queued in that
//! socket delay every other tunnel's bytes behind them: a bulk download on
//! the same site turned a 64-byte round trip from 0.2 ms into 5 ms. Limiting
//! the *unsent* part of the kernel's send queue (`TCP_NOTSENT_LOWAT`) keeps
//! that queue short while still letting the in-flight part grow with the
//! link's bandwidth-delay product, so distant sites keep their throughput.
//! The multiplexer keeps the rest of the queue in its own, fair, hands.
//!
//! What matters to the tunnels behind the queue is how long it takes to
//! drain, so the limit is a time, not a byte count: about [`QUEUE_TIME`] of
//! the connection's delivery rate as the kernel measures it (`TCP_INFO`),
//! between [`UNSENT_FLOOR`] and [`UNSENT_CEILING`], re-read after every
//! [`RETUNE_EVERY`] bytes written. A fixed 128 KiB (1 ms at 1 Gbit/s, the
//! floor) held on loopback, where it drains in a tenth of that, cost about
//! a quarter of an 8-stream upload: the sending thread woke for every
//! 128 KiB the receiver took. [`SiteSocket`] wraps the transport to do this.
//!
//! On loopback the kernel's delivery-rate samples (1.5-20 GB/s) are far
//! above what the receiving process drains, so the limit sits near the
//! ceiling there and the stream's flow-control window bounds the queue
//! instead. Capping the rate by how fast the socket takes our writes held
//! the limit near 1 ms of real drain but cost download throughput
//! (BENCHMARKS.md, session 14), so it was not kept.

use std::io;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use socket2::SockRef;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// How long the unsent bytes may take to drain at the delivery rate.
pub const QUEUE_TIME: Duration = Duration::from_millis(1);
/// The least unsent bytes the kernel may hold: enough to keep a slow link
/// busy between two wake-ups of the writer.
pub const UNSENT_FLOOR: u32 = 128 * 1024;
/// The most: the kernel's default largest send buffer (`tcp_wmem`).
pub const UNSENT_CEILING: u32 = 4 << 20;
/// Bytes written between two readings of the delivery rate.
pub const RETUNE_EVERY: usize = 1 << 20;
/// Limits move in steps of this much, so that a rate that wavers a little
/// costs no system call.
const STEP: u64 = 64 * 1024;

/// The unsent-byte limit for a delivery rate in bytes per second.
pub fn unsent_limit(rate: u64) -> u32 {
    let bytes = u128::from(rate) * QUEUE_TIME.as_micros() / 1_000_000;
    let stepped = u64::try_from(bytes).unwrap_or(u64::MAX) / STEP * STEP;
    stepped.clamp(u64::from(UNSENT_FLOOR), u64::from(UNSENT_CEILING)) as u32
}

/// A transport whose TCP socket can be reached for its options.
pub trait HasSocket {
    /// The socket, or `None` when it is gone.
    fn socket(&self) -> Option<SockRef<'_>>;
}

impl HasSocket for TcpStream {
    fn socket(&self) -> Option<SockRef<'_>> {
        Some(SockRef::from(self))
    }
}

/// A site connection's transport: sets its options when wrapped and keeps
/// the unsent limit in step with the delivery rate as bytes are written.
#[derive(Debug)]
pub struct SiteSocket<S> {
    inner: S,
    /// The limit last set on the socket (0 when none could be set).
    unsent_limit: u32,
    /// The rate read before the last one: the limit follows the lesser of
    /// two readings, so one inflated sample does not open it wide.
    last_rate: u64,
    written: usize,
}

impl<S: HasSocket> SiteSocket<S> {
    /// Wraps `inner` and applies the options; failures only cost latency,
    /// so they are logged.
    pub fn new(inner: S) -> Self {
        let mut this = SiteSocket {
            inner,
            unsent_limit: 0,
            last_rate: 0,
            written: 0,
        };
        if let Some(sock) = this.inner.socket() {
            let _ = sock.set_tcp_nodelay(true);
            match sock.set_tcp_notsent_lowat(UNSENT_FLOOR) {
                Ok(()) => this.unsent_limit = UNSENT_FLOOR,
                Err(e) => tracing::debug!(error = %e, "TCP_NOTSENT_LOWAT not available"),
            }
        }
        this
    }

    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Counts what a write moved; every [`RETUNE_EVERY`] bytes the limit
    /// follows the rate again.
    fn counted(&mut self, poll: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        if let Poll::Ready(Ok(n)) = poll {
            self.written += n;
            if self.written >= RETUNE_EVERY {
                self.written = 0;
                self.retune();
            }
        }
        poll
    }

    fn retune(&mut self) {
        if self.unsent_limit == 0 {
            return;
        }
        let Some(sock) = self.inner.socket() else {
            return;
        };
        let Ok(rate) = delivery_rate(&sock) else {
            return;
        };
        let limit = unsent_limit(rate.min(self.last_rate));
        self.last_rate = rate;
        if limit != self.unsent_limit && sock.set_tcp_notsent_lowat(limit).is_ok() {
            tracing::trace!(rate, limit, "unsent limit follows the delivery rate");
            self.unsent_limit = limit;
        }
    }
}

/// The kernel's latest delivery-rate sample, in bytes per second.
#[cfg(target_os = "linux")]
fn delivery_rate(sock: &SockRef<'_>) -> io::Result<u64> {
    // SAFETY: `tcp_info` is plain data; getsockopt writes at most `len`
    // bytes into it and the descriptor is open for as long as `sock` is.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    let rc = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(info.tcpi_delivery_rate)
}

#[cfg(not(target_os = "linux"))]
fn delivery_rate(_sock: &SockRef<'_>) -> io::Result<u64> {
    Err(io::ErrorKind::Unsupported.into())
}

impl<S: AsyncRead + Unpin> AsyncRead for SiteSocket<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + HasSocket + Unpin> AsyncWrite for SiteSocket<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.counted(poll)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.counted(poll)
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
    use sha2::{Digest, Sha256};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    #[test]
    fn the_limit_is_a_time_at_the_rate_within_its_bounds() {
        // Up to 1 Gbit/s the floor holds: it drains within the queue time.
        assert_eq!(unsent_limit(0), UNSENT_FLOOR);
        assert_eq!(unsent_limit(125_000_000), UNSENT_FLOOR);
        // 10 Gbit/s: 1.25 MB in 1 ms, stepped down to 64 KiB units.
        assert_eq!(unsent_limit(1_250_000_000), 19 * 64 * 1024);
        // Loopback's samples (tens of Gbit/s) and beyond: the ceiling.
        assert_eq!(unsent_limit(20_000_000_000), UNSENT_CEILING);
        assert_eq!(unsent_limit(u64::MAX), UNSENT_CEILING);
    }

    /// On loopback the kernel reports tens of Gbit/s, so after a few MiB the
    /// limit leaves the floor; every byte still arrives, in order.
    #[tokio::test]
    async fn a_fast_link_raises_the_limit_and_loses_nothing() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let reader = tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.unwrap();
            let mut got = Vec::new();
            tcp.read_to_end(&mut got).await.unwrap();
            Sha256::digest(&got)
        });
        let mut site = SiteSocket::new(TcpStream::connect(addr).await.unwrap());
        assert_eq!(
            SockRef::from(&site.inner).tcp_notsent_lowat().unwrap(),
            UNSENT_FLOOR
        );
        assert!(SockRef::from(&site.inner).tcp_nodelay().unwrap());

        let data: Vec<u8> = (0..16 << 20)
            .map(|i: u32| (i * 7 + i / 251) as u8)
            .collect();
        for chunk in data.chunks(64 * 1024) {
            site.write_all(chunk).await.unwrap();
        }
        let raised = SockRef::from(&site.inner).tcp_notsent_lowat().unwrap();
        site.shutdown().await.unwrap();
        drop(site);
        assert_eq!(reader.await.unwrap(), Sha256::digest(&data));
        assert!(
            raised > UNSENT_FLOOR,
            "limit still {raised} after 16 MiB on loopback"
        );
    }
}
