//! An HTTP/2 CONNECT client of the front door (the h2 crate over tokio-rustls with ALPN
//! `h2`), shaped like Chromium's use of an HTTPS proxy: one TLS connection, one stream
//! per tunnel. Returns exact statuses and headers, and each tunnel as
//! `AsyncRead + AsyncWrite`.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use anyhow::{bail, Context as _, Result};
use bytes::{Buf, Bytes};
use h2::client::SendRequest;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;

use super::connect::Creds;
use super::{secs, MAINT_HOST};

/// One HTTP/2 connection to the front door.
pub struct H2Conn {
    send: SendRequest<Bytes>,
    /// Drives the connection; ends when the server closes it (GOAWAY) or on error.
    pub driver: JoinHandle<Result<(), h2::Error>>,
}

/// The answer to one CONNECT stream.
pub struct H2Answer {
    pub status: u16,
    pub headers: http::HeaderMap,
    /// The body of a refusal (empty for 200).
    pub body: String,
    /// The tunnel, after a 200.
    pub tunnel: Option<H2Tunnel>,
}

impl H2Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl H2Conn {
    /// TLS (ALPN `h2` only) + HTTP/2 handshake; fails if the server did not pick h2.
    pub async fn connect(addr: SocketAddr, ca: &Path) -> Result<H2Conn> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca)? {
            roots.add(cert?)?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec()];
        let tcp = tokio::time::timeout(secs(10), TcpStream::connect(addr)).await??;
        tcp.set_nodelay(true)?;
        let tls = TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from(MAINT_HOST.to_string())?, tcp)
            .await
            .context("TLS handshake with the front door")?;
        if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
            bail!("the front door did not select ALPN h2");
        }
        let (send, conn) = h2::client::handshake(tls)
            .await
            .context("HTTP/2 handshake")?;
        let driver = tokio::spawn(conn);
        Ok(H2Conn { send, driver })
    }

    /// Sends `CONNECT target` on a new stream and waits for the answer. Waits while
    /// the server's stream limit is reached.
    pub async fn connect_stream(&self, target: &str, creds: Option<&Creds>) -> Result<H2Answer> {
        let mut send = self.send.clone().ready().await.context("h2 ready")?;
        let mut req = http::Request::builder()
            .method("CONNECT")
            .uri(target)
            .header("user-agent", "comgate-e2e-h2");
        if let Some(c) = creds {
            req = req.header("proxy-authorization", c.basic());
        }
        let (response, tx) = send
            .send_request(req.body(())?, false)
            .context("sending CONNECT")?;
        let response = tokio::time::timeout(secs(20), response)
            .await
            .context("no answer to CONNECT within 20 s")?
            .context("CONNECT stream")?;
        let (parts, mut rx) = response.into_parts();
        let status = parts.status.as_u16();
        if status == 200 {
            return Ok(H2Answer {
                status,
                headers: parts.headers,
                body: String::new(),
                tunnel: Some(H2Tunnel::new(rx, tx)),
            });
        }
        let mut body = Vec::new();
        while let Some(chunk) = rx.data().await {
            let chunk = chunk?;
            let _ = rx.flow_control().release_capacity(chunk.len());
            body.extend_from_slice(&chunk);
        }
        Ok(H2Answer {
            status,
            headers: parts.headers,
            body: String::from_utf8_lossy(&body).into_owned(),
            tunnel: None,
        })
    }

    /// A CONNECT that must answer 200.
    pub async fn open(&self, target: &str, creds: &Creds) -> Result<H2Tunnel> {
        let answer = self.connect_stream(target, Some(creds)).await?;
        match answer.tunnel {
            Some(t) => Ok(t),
            None => bail!(
                "CONNECT {target} answered {}: {}",
                answer.status,
                answer.body
            ),
        }
    }
}

/// One tunnel: a CONNECT stream as a byte stream.
pub struct H2Tunnel {
    recv: h2::RecvStream,
    send: h2::SendStream<Bytes>,
    pending: Bytes,
}

impl H2Tunnel {
    fn new(recv: h2::RecvStream, send: h2::SendStream<Bytes>) -> Self {
        H2Tunnel {
            recv,
            send,
            pending: Bytes::new(),
        }
    }
}

fn io_err(e: h2::Error) -> io::Error {
    io::Error::other(e)
}

impl AsyncRead for H2Tunnel {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        while this.pending.is_empty() {
            match ready!(this.recv.poll_data(cx)) {
                None => return Poll::Ready(Ok(())),
                Some(Ok(d)) => this.pending = d,
                Some(Err(e)) => return Poll::Ready(Err(io_err(e))),
            }
        }
        let n = this.pending.len().min(buf.remaining());
        buf.put_slice(&this.pending[..n]);
        this.pending.advance(n);
        let _ = this.recv.flow_control().release_capacity(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for H2Tunnel {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.send.reserve_capacity(buf.len().min(64 * 1024));
        loop {
            let cap = this.send.capacity();
            if cap > 0 {
                let n = cap.min(buf.len());
                this.send
                    .send_data(Bytes::copy_from_slice(&buf[..n]), false)
                    .map_err(io_err)?;
                return Poll::Ready(Ok(n));
            }
            match ready!(this.send.poll_capacity(cx)) {
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Poll::Ready(Err(io_err(e))),
                None => return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// END_STREAM: the half-close of an HTTP/2 tunnel.
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        Poll::Ready(this.send.send_data(Bytes::new(), true).map_err(io_err))
    }
}
