//! A TCP connection that can move to another runtime's reactor after its
//! TLS handshake.
//!
//! A tokio socket reports readiness through the reactor of the runtime it
//! was registered with. serve accepts and handshakes on its control runtime,
//! but a site's connection and its partners' tunnels are then served on the
//! site's own thread ([`crate::site_threads`]); left registered where it was
//! accepted, every readiness event of the socket would cross threads again.
//! The TLS stream owns its transport, so the move happens inside it: this
//! wrapper takes the socket out, deregisters it and registers it with the
//! reactor of the runtime the caller runs on.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A [`TcpStream`] whose reactor registration can move ([`Self::rehome`]).
#[derive(Debug)]
pub struct MovableTcp(Option<TcpStream>);

impl MovableTcp {
    pub fn new(tcp: TcpStream) -> Self {
        MovableTcp(Some(tcp))
    }

    /// Registers the socket with the reactor of the runtime this is called
    /// on. Bytes the kernel already holds stay there and are reported by
    /// the new registration. On failure the socket is closed.
    pub fn rehome(&mut self) -> io::Result<()> {
        let tcp = self.0.take().ok_or_else(gone)?;
        let std = tcp.into_std()?;
        self.0 = Some(TcpStream::from_std(std)?);
        Ok(())
    }

    /// Runs one poll on the socket; a socket lost in a failed move is an
    /// error, never a panic.
    fn poll<T>(
        self: Pin<&mut Self>,
        f: impl FnOnce(Pin<&mut TcpStream>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match self.get_mut().0.as_mut() {
            Some(tcp) => f(Pin::new(tcp)),
            None => Poll::Ready(Err(gone())),
        }
    }
}

impl crate::site_socket::HasSocket for MovableTcp {
    fn socket(&self) -> Option<socket2::SockRef<'_>> {
        self.0.as_ref().map(socket2::SockRef::from)
    }
}

fn gone() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "the connection was lost moving to its site's thread",
    )
}

impl AsyncRead for MovableTcp {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.poll(|tcp| tcp.poll_read(cx, buf))
    }
}

impl AsyncWrite for MovableTcp {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll(|tcp| tcp.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll(|tcp| tcp.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll(|tcp| tcp.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll(|tcp| tcp.poll_shutdown(cx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A connection accepted on one runtime, moved to another (a site
    /// thread) with bytes already waiting in the kernel: they are read
    /// there, and both directions keep working while the accepting runtime
    /// is never driven again (without the move, the reads would wait on a
    /// reactor nobody runs, and the timeouts fail the test).
    #[test]
    fn a_moved_socket_reads_what_was_waiting_and_keeps_working() {
        use std::io::{Read, Write};
        let accepting = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let mut server = accepting.block_on(async {
            let listener = TcpListener::from_std({
                listener.set_nonblocking(true).unwrap();
                listener
            })
            .unwrap();
            let (server, _) = listener.accept().await.unwrap();
            MovableTcp::new(server)
        });
        client.write_all(b"sent before the move").unwrap();

        let site_thread = std::thread::spawn(move || {
            let home = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            home.block_on(async move {
                server.rehome().unwrap();
                let wait = std::time::Duration::from_secs(5);
                let mut got = [0u8; 20];
                tokio::time::timeout(wait, server.read_exact(&mut got))
                    .await
                    .expect("bytes waiting before the move are reported here")
                    .unwrap();
                assert_eq!(&got, b"sent before the move");
                let mut more = [0u8; 5];
                tokio::time::timeout(wait, server.read_exact(&mut more))
                    .await
                    .expect("readiness comes from this thread's reactor")
                    .unwrap();
                assert_eq!(&more, b"later");
                server.write_all(b"reply").await.unwrap();
                server.shutdown().await.unwrap();
            });
        });
        std::thread::sleep(std::time::Duration::from_millis(50));
        client.write_all(b"later").unwrap();
        let mut reply = Vec::new();
        client.read_to_end(&mut reply).unwrap();
        assert_eq!(reply, b"reply");
        site_thread.join().unwrap();
        drop(accepting);
    }
}
