//! How the client opens one stream to the target over each path.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use anyhow::{bail, Context, Result};
use rustls::HandshakeKind;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, Join, ReadBuf};
use tokio::net::TcpStream;
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio_rustls::TlsConnector;

/// A byte stream to the target.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One open stream, with the client-side processes it owns (for CPU accounting).
pub struct Opened {
    pub io: Box<dyn Io>,
    pub pids: Vec<u32>,
    /// Whether the client's TLS handshake resumed a session.
    pub resumed: bool,
}

/// TLS client side of one front door: full-handshake and resuming connectors.
#[derive(Clone)]
pub struct TlsFront {
    pub addr: SocketAddr,
    full: TlsConnector,
    resume: TlsConnector,
    sni: ServerName<'static>,
}

impl TlsFront {
    pub fn new(addr: SocketAddr, ca: &std::path::Path, sni: &str) -> Result<TlsFront> {
        Ok(TlsFront {
            addr,
            full: TlsConnector::from(crate::tls::client(ca, false)?),
            resume: TlsConnector::from(crate::tls::client(ca, true)?),
            sni: ServerName::try_from(sni.to_string())?,
        })
    }

    async fn connect(
        &self,
        resume: bool,
    ) -> Result<(tokio_rustls::client::TlsStream<TcpStream>, bool)> {
        let tcp = TcpStream::connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        let connector = if resume { &self.resume } else { &self.full };
        let tls = connector.connect(self.sni.clone(), tcp).await?;
        let resumed = tls.get_ref().1.handshake_kind() == Some(HandshakeKind::Resumed);
        Ok((tls, resumed))
    }
}

/// `ssh -W` through a loopback sshd.
#[derive(Clone)]
pub struct SshJump {
    pub port: u16,
    pub key: PathBuf,
    pub user: String,
}

/// One path from the client to the target.
#[derive(Clone)]
pub enum Path {
    /// Plain TCP straight to the target: the ceiling.
    Direct,
    /// comgate's front door: TLS, CONNECT with Basic auth, then the tunnel.
    Comgate {
        front: TlsFront,
        authority: String,
        basic: String,
    },
    /// The two-TLS-hop reference relay (TLS to relay1).
    Relay { front: TlsFront },
    /// OpenSSH as a jump host.
    Ssh(SshJump),
    /// rathole's visitor port (plain TCP; rathole's own hop is websocket + TLS).
    Rathole { visitor: SocketAddr },
    /// Plain TCP to a forwarder that leads to the target (the delay relay).
    Forward(SocketAddr),
    /// A generic HTTP CONNECT proxy (tinyproxy, or haproxy in front of it): plain TCP
    /// to `addr`, or TLS to `front` when set; CONNECT with Basic auth.
    Proxy {
        addr: SocketAddr,
        front: Option<TlsFront>,
        authority: String,
        basic: String,
    },
}

impl Path {
    /// Opens a stream to `target` (TCP/TLS set-up, CONNECT, ...); nothing is sent
    /// to the target yet.
    pub async fn open(&self, target: SocketAddr, resume: bool) -> Result<Opened> {
        match self {
            Path::Direct => tcp(target).await,
            Path::Rathole { visitor } => tcp(*visitor).await,
            Path::Relay { front } => {
                let (tls, resumed) = front.connect(resume).await?;
                Ok(Opened {
                    io: Box::new(tls),
                    pids: Vec::new(),
                    resumed,
                })
            }
            Path::Comgate {
                front,
                authority,
                basic,
            } => {
                let (mut tls, resumed) = front.connect(resume).await?;
                connect_head(&mut tls, authority, basic).await?;
                Ok(Opened {
                    io: Box::new(tls),
                    pids: Vec::new(),
                    resumed,
                })
            }
            Path::Forward(addr) => tcp(*addr).await,
            Path::Proxy {
                addr,
                front,
                authority,
                basic,
            } => match front {
                Some(front) => {
                    let (mut tls, resumed) = front.connect(resume).await?;
                    connect_head(&mut tls, authority, basic).await?;
                    Ok(Opened {
                        io: Box::new(tls),
                        pids: Vec::new(),
                        resumed,
                    })
                }
                None => {
                    let mut o = tcp(*addr).await?;
                    connect_head(&mut o.io, authority, basic).await?;
                    Ok(o)
                }
            },
            Path::Ssh(jump) => {
                let mut cmd = tokio::process::Command::new("ssh");
                cmd.args(["-q", "-T", "-F", "/dev/null", "-p"])
                    .arg(jump.port.to_string())
                    .arg("-i")
                    .arg(&jump.key)
                    .args([
                        "-o",
                        "StrictHostKeyChecking=no",
                        "-o",
                        "UserKnownHostsFile=/dev/null",
                        "-o",
                        "BatchMode=yes",
                        "-o",
                        "LogLevel=ERROR",
                        "-W",
                    ])
                    .arg(target.to_string())
                    .arg(format!("{}@127.0.0.1", jump.user))
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::null())
                    .kill_on_drop(true);
                let mut child = cmd.spawn().context("spawning ssh")?;
                let pid = child.id().unwrap_or(0);
                let stdout = child.stdout.take().context("ssh stdout")?;
                let stdin = child.stdin.take().context("ssh stdin")?;
                Ok(Opened {
                    io: Box::new(ChildIo {
                        io: tokio::io::join(stdout, stdin),
                        _child: child,
                    }),
                    pids: vec![pid],
                    resumed: false,
                })
            }
        }
    }
}

/// Sends `CONNECT authority` with Basic auth and reads the response head; any 2xx
/// opens the tunnel.
async fn connect_head<S: AsyncRead + AsyncWrite + Unpin + ?Sized>(
    s: &mut S,
    authority: &str,
    basic: &str,
) -> Result<()> {
    let head = format!(
        "CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\
         Proxy-Authorization: Basic {basic}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await?;
    s.flush().await?;
    let mut buf = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    // Byte by byte: nothing may be read past the head (the target says nothing
    // first, but the parser must not depend on that).
    while !buf.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).await? == 0 {
            bail!(
                "proxy closed the connection: {:?}",
                String::from_utf8_lossy(&buf)
            );
        }
        buf.push(byte[0]);
        if buf.len() > 16 * 1024 {
            bail!("response head too large");
        }
    }
    let status = String::from_utf8_lossy(&buf);
    let line = status.lines().next().unwrap_or("");
    // "HTTP/1.1 200 ..." (comgate) or "HTTP/1.0 200 Connection established" (tinyproxy).
    let code = line.split(' ').nth(1).unwrap_or("");
    if !(line.starts_with("HTTP/1.") && code.starts_with('2') && code.len() == 3) {
        bail!("CONNECT {authority}: {line}");
    }
    Ok(())
}

async fn tcp(addr: SocketAddr) -> Result<Opened> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    Ok(Opened {
        io: Box::new(tcp),
        pids: Vec::new(),
        resumed: false,
    })
}

/// A child process's stdout + stdin as one stream; the child is killed on drop.
struct ChildIo {
    io: Join<ChildStdout, ChildStdin>,
    _child: Child,
}

impl AsyncRead for ChildIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for ChildIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
