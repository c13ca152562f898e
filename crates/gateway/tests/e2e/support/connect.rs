//! A raw TLS CONNECT client (tokio-rustls, trusting `data_dir/ca.pem`) that returns the
//! front door's exact answer: status line, headers and body, and the tunnel stream
//! after a `200`. Used where real clients hide the details (bodies of refusals, limits,
//! stalled readers).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::{secs, MAINT_HOST};

/// A TLS stream to the front door.
pub type FrontStream = TlsStream<TcpStream>;

/// How long to wait for the front door's answer to a request head.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(20);
/// The largest response head accepted.
const MAX_HEAD: usize = 64 * 1024;

/// Basic proxy credentials.
#[derive(Clone, Debug)]
pub struct Creds {
    pub user: String,
    pub pass: String,
}

impl Creds {
    pub fn new(user: &str, pass: &str) -> Self {
        Creds {
            user: user.to_string(),
            pass: pass.to_string(),
        }
    }

    /// `user:pass` as curl and proxytunnel take it.
    pub fn joined(&self) -> String {
        format!("{}:{}", self.user, self.pass)
    }

    /// The `Proxy-Authorization` header value.
    pub fn basic(&self) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(self.joined())
        )
    }
}

/// The front door's answer to one request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub status_line: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Status line and body, for messages.
    pub fn summary(&self) -> String {
        format!("{} | {}", self.status_line, self.body_text().trim())
    }
}

/// An answered request: the response plus the connection (the tunnel after a `200`).
pub struct Reply {
    pub response: Response,
    pub stream: FrontStream,
    /// Tunnel bytes that arrived right behind the `200` head.
    pub early: Vec<u8>,
}

/// The `CONNECT` head for `target` (`host[:port]`), as curl would send it.
pub fn connect_head(target: &str, creds: Option<&Creds>) -> String {
    let mut head =
        format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nUser-Agent: comgate-e2e\r\n");
    if let Some(c) = creds {
        head.push_str(&format!("Proxy-Authorization: {}\r\n", c.basic()));
    }
    head.push_str("\r\n");
    head
}

/// Client side of the front door: address, trust and SNI.
#[derive(Clone)]
pub struct Front {
    addr: SocketAddr,
    connector: TlsConnector,
    sni: ServerName<'static>,
}

impl Front {
    /// Trusts `ca` (a PEM file) and sends SNI `maint.<domain>`.
    pub fn new(addr: SocketAddr, ca: &Path) -> Result<Front> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca)
            .with_context(|| format!("reading {}", ca.display()))?
        {
            roots.add(cert.with_context(|| format!("parsing {}", ca.display()))?)?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Front {
            addr,
            connector: TlsConnector::from(Arc::new(config)),
            sni: ServerName::try_from(MAINT_HOST.to_string())?,
        })
    }

    /// A fresh TLS connection (handshake done, nothing sent).
    pub async fn tls(&self) -> Result<FrontStream> {
        let tcp = tokio::time::timeout(secs(10), TcpStream::connect(self.addr))
            .await
            .context("TCP connect to the front door timed out")??;
        tcp.set_nodelay(true)?;
        let tls = tokio::time::timeout(secs(10), self.connector.connect(self.sni.clone(), tcp))
            .await
            .context("TLS handshake with the front door timed out")?
            .context("TLS handshake with the front door")?;
        Ok(tls)
    }

    /// Sends `head` on a new connection and reads the answer; `None` when the front door
    /// closed the connection without answering.
    pub async fn try_request(&self, head: &[u8]) -> Result<Option<Reply>> {
        let mut stream = self.tls().await?;
        stream.write_all(head).await?;
        stream.flush().await?;
        read_answer(stream).await
    }

    /// Like [`Front::try_request`], but silence is an error.
    pub async fn request(&self, head: &[u8]) -> Result<Reply> {
        match self.try_request(head).await? {
            Some(reply) => Ok(reply),
            None => bail!("the front door closed the connection without an answer"),
        }
    }

    /// `CONNECT target` with optional credentials; any status.
    pub async fn connect(&self, target: &str, creds: Option<&Creds>) -> Result<Reply> {
        self.request(connect_head(target, creds).as_bytes())
            .await
            .with_context(|| format!("CONNECT {target}"))
    }

    /// `CONNECT target` that must answer 200; returns the tunnel.
    pub async fn open(&self, target: &str, creds: &Creds) -> Result<Reply> {
        let reply = self.connect(target, Some(creds)).await?;
        if reply.response.status != 200 {
            bail!("CONNECT {target} answered {}", reply.response.summary());
        }
        Ok(reply)
    }

    /// Just the response of `CONNECT target` (the connection is dropped).
    pub async fn status_of(&self, target: &str, creds: Option<&Creds>) -> Result<Response> {
        Ok(self.connect(target, creds).await?.response)
    }
}

/// Reads a response head (and for anything but 200 its body) from `stream`.
pub async fn read_answer(mut stream: FrontStream) -> Result<Option<Reply>> {
    let mut buf = Vec::new();
    let head_end = tokio::time::timeout(ANSWER_TIMEOUT, async {
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(pos) = find(&buf, b"\r\n\r\n") {
                return Ok::<_, anyhow::Error>(Some(pos + 4));
            }
            if buf.len() > MAX_HEAD {
                bail!("response head larger than {MAX_HEAD} bytes");
            }
            let n = match stream.read(&mut chunk).await {
                Ok(n) => n,
                // A reset or a TLS close without close_notify before any byte: no answer.
                Err(_) if buf.is_empty() => 0,
                Err(e) => return Err(e.into()),
            };
            if n == 0 {
                if buf.is_empty() {
                    return Ok(None);
                }
                bail!(
                    "connection closed inside the response head: {:?}",
                    String::from_utf8_lossy(&buf)
                );
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .context("no answer from the front door in time")??;
    let Some(head_end) = head_end else {
        return Ok(None);
    };
    let head = String::from_utf8_lossy(&buf[..head_end - 4]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("").to_string();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .with_context(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut rest = buf[head_end..].to_vec();
    let mut response = Response {
        status,
        status_line,
        headers,
        body: Vec::new(),
    };
    if status == 200 {
        return Ok(Some(Reply {
            response,
            stream,
            early: rest,
        }));
    }
    // A refusal: the body is Content-Length long, or runs to the end of the connection.
    let length = response
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok());
    let _ = tokio::time::timeout(secs(3), async {
        let mut chunk = [0u8; 4096];
        loop {
            if length.is_some_and(|l| rest.len() >= l) {
                break;
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => rest.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    if let Some(l) = length {
        rest.truncate(l);
    }
    response.body = rest;
    Ok(Some(Reply {
        response,
        stream,
        early: Vec::new(),
    }))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
