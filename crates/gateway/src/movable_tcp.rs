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
//!
//! Once moved (or created on a single-threaded runtime with
//! [`MovableTcp::registered_here`]), it follows its user: a poll from
//! another thread moves the registration there first. A tunnel's relay
//! moves between site threads that way ([`crate::relay::Placement`]): its
//! sockets sit inside split TLS halves that only the relay reaches. Each
//! runtime that polls it must run on one thread of its own (the site
//! threads, the agent's), never a multi-thread runtime's workers.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::thread::ThreadId;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A [`TcpStream`] whose reactor registration can move ([`Self::rehome`]).
#[derive(Debug)]
pub struct MovableTcp {
    tcp: Option<TcpStream>,
    /// The thread whose runtime it is registered with, once it follows its
    /// user (see the module docs).
    home: Option<ThreadId>,
}

thread_local! {
    static THREAD: ThreadId = std::thread::current().id();
}

fn this_thread() -> ThreadId {
    THREAD.with(|id| *id)
}

impl MovableTcp {
    pub fn new(tcp: TcpStream) -> Self {
        MovableTcp {
            tcp: Some(tcp),
            home: None,
        }
    }

    /// A socket created on this thread's single-threaded runtime, from now
    /// on following its user to other threads.
    pub fn registered_here(tcp: TcpStream) -> Self {
        MovableTcp {
            tcp: Some(tcp),
            home: Some(this_thread()),
        }
    }

    /// Registers the socket with the reactor of the runtime this is called
    /// on, and from now on follows its user. Bytes the kernel already holds
    /// stay there and are reported by the new registration. On failure the
    /// socket is closed.
    pub fn rehome(&mut self) -> io::Result<()> {
        let tcp = self.tcp.take().ok_or_else(gone)?;
        let std = tcp.into_std()?;
        self.tcp = Some(TcpStream::from_std(std)?);
        self.home = Some(this_thread());
        Ok(())
    }

    /// Runs one poll on the socket, after moving it to this thread if it
    /// follows its user; a socket lost in a failed move is an error, never
    /// a panic.
    fn poll<T>(
        self: Pin<&mut Self>,
        f: impl FnOnce(Pin<&mut TcpStream>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        let this = self.get_mut();
        if this.home.is_some_and(|home| home != this_thread()) {
            if let Err(e) = this.rehome() {
                return Poll::Ready(Err(e));
            }
        }
        match this.tcp.as_mut() {
            Some(tcp) => f(Pin::new(tcp)),
            None => Poll::Ready(Err(gone())),
        }
    }
}

impl crate::site_socket::HasSocket for MovableTcp {
    fn socket(&self) -> Option<socket2::SockRef<'_>> {
        self.tcp.as_ref().map(socket2::SockRef::from)
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

    /// A socket registered on one thread's runtime and then polled from
    /// another's follows its user: the other thread reads and writes it
    /// while the first runtime is never driven again (a tunnel moving to
    /// its bulk thread inside its TLS halves, which nobody can rehome).
    #[test]
    fn a_socket_polled_from_another_thread_moves_there_by_itself() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let first = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut socket = first.block_on(async {
            MovableTcp::registered_here(TcpStream::connect(addr).await.unwrap())
        });
        let (mut peer, _) = listener.accept().unwrap();
        peer.write_all(b"before").unwrap();
        let other = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let wait = std::time::Duration::from_secs(5);
                let mut got = [0u8; 6];
                tokio::time::timeout(wait, socket.read_exact(&mut got))
                    .await
                    .expect("bytes are reported by this thread's reactor")
                    .unwrap();
                assert_eq!(&got, b"before");
                let mut more = [0u8; 5];
                tokio::time::timeout(wait, socket.read_exact(&mut more))
                    .await
                    .expect("later readiness too")
                    .unwrap();
                assert_eq!(&more, b"later");
                socket.write_all(b"reply").await.unwrap();
                socket.shutdown().await.unwrap();
            });
        });
        std::thread::sleep(std::time::Duration::from_millis(50));
        peer.write_all(b"later").unwrap();
        let mut reply = Vec::new();
        peer.read_to_end(&mut reply).unwrap();
        assert_eq!(reply, b"reply");
        other.join().unwrap();
        drop(first);
    }
}
