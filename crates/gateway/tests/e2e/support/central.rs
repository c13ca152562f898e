//! Clients of the central-management proxy (`https://admin.example.test:<central port>/`)
//! and the usual site behind it: customer 12345's primary system ipo1 with
//! Centralized Management on and `[ports] 8443` mapped to a [`SystemWeb`].
//!
//! - [`CentralCurl`]: real curl, `--cacert data_dir/ca.pem --resolve
//!   admin.example.test:PORT:127.0.0.1`;
//! - [`raw_request`]: exact bytes in, exact answer out (paths curl would
//!   normalise, absolute-form targets, oversized heads);
//! - [`websocket`]: a tokio-tungstenite client through the proxy.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::WebSocketStream;

use super::comgate::{Agent, AgentConfig, Gateway, GatewayOptions};
use super::connect::Response;
use super::harness::Harness;
use super::process::{self, Ran};
use super::site::Tenant;
use super::system_web::SystemWeb;
use super::targets::lo;
use super::{secs, tools, DOMAIN};

/// `admin.<domain>`: the host the admin tools are pointed at.
pub fn admin_host() -> String {
    format!("admin.{DOMAIN}")
}

/// A tenant (customer 12345, primary ipo1) whose agent has Centralized Management on
/// and maps port 8443 to a system web service on 127.0.0.1.
pub struct CentralSite {
    pub tenant: Tenant,
    pub web: SystemWeb,
    /// Keeps ipo1's agent running for the site's lifetime.
    pub _agent: Agent,
}

impl CentralSite {
    pub async fn start(h: &Harness) -> Result<CentralSite> {
        Self::start_with(h, &GatewayOptions::default(), |c| c).await
    }

    /// With serve options, and a chance to change the agent config (8443 is mapped and
    /// Centralized Management on already).
    pub async fn start_with(
        h: &Harness,
        opts: &GatewayOptions,
        configure: impl FnOnce(AgentConfig) -> AgentConfig,
    ) -> Result<CentralSite> {
        let web = SystemWeb::start(SocketAddr::from((lo(1), 0)), "ipo1").await?;
        let tenant = Tenant::start_with(h, opts).await?;
        let cfg = configure(
            tenant
                .agent_config()
                .centralized_management(true)
                .port(8443, web.addr),
        );
        let agent = Agent::start(&tenant.gw, &cfg).await?;
        Ok(CentralSite {
            tenant,
            web,
            _agent: agent,
        })
    }

    pub fn gw(&self) -> &Gateway {
        &self.tenant.gw
    }
}

/// One curl run against the central proxy.
#[derive(Debug)]
pub struct CurlAnswer {
    pub status: u16,
    /// `%{url_effective}`: where curl ended up (after `-L`).
    pub url: String,
    /// Response headers as curl dumped them (every response with `-L`).
    pub headers: String,
    pub body: String,
    pub ran: Ran,
}

impl CurlAnswer {
    /// The values of a response header (case-insensitive), over every dumped response.
    pub fn header_values(&self, name: &str) -> Vec<String> {
        self.headers
            .lines()
            .filter_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_string())
            })
            .collect()
    }
}

/// curl pointed straight at the central listener (no proxy, as the admin tools).
pub struct CentralCurl {
    port: u16,
    ca: PathBuf,
    dir: PathBuf,
}

impl CentralCurl {
    pub fn new(h: &Harness, gw: &Gateway) -> Result<CentralCurl> {
        Ok(CentralCurl {
            port: gw.central_port,
            ca: gw.ca(),
            dir: h.subdir("central-curl")?,
        })
    }

    /// `https://admin.example.test:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("https://{}:{}{path}", admin_host(), self.port)
    }

    /// GET `path` with extra curl arguments (`-L`, `-c jar`, ...).
    pub async fn get(&self, path: &str, extra: &[&str]) -> Result<CurlAnswer> {
        let body_file = self.dir.join("body");
        let head_file = self.dir.join("headers");
        let _ = std::fs::remove_file(&body_file);
        let _ = std::fs::remove_file(&head_file);
        let mut cmd = std::process::Command::new(tools::path_of("curl")?);
        cmd.args(["-sS", "--max-time", "30"])
            .arg("--cacert")
            .arg(&self.ca)
            .arg("--resolve")
            .arg(format!("{}:{}:127.0.0.1", admin_host(), self.port))
            .arg("-o")
            .arg(&body_file)
            .arg("-D")
            .arg(&head_file)
            .arg("-w")
            .arg("%{http_code} %{url_effective}")
            .args(extra)
            .arg(self.url(path));
        process::without_proxy_env(&mut cmd);
        let ran = process::run(cmd, Duration::from_secs(45)).await?;
        if !ran.success() {
            bail!("curl failed:\n{}", ran.describe());
        }
        let out = ran.stdout_text();
        let (code, url) = out.trim().split_once(' ').unwrap_or((out.trim(), ""));
        Ok(CurlAnswer {
            status: code
                .parse()
                .with_context(|| format!("curl printed no status: {out}"))?,
            url: url.to_string(),
            headers: std::fs::read_to_string(&head_file).unwrap_or_default(),
            body: std::fs::read_to_string(&body_file).unwrap_or_default(),
            ran,
        })
    }

    /// Path of a cookie jar file in curl's directory.
    pub fn jar(&self) -> PathBuf {
        self.dir.join("cookies.txt")
    }
}

fn connector(ca: &Path) -> Result<TlsConnector> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca)? {
        roots.add(cert?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsConnector::from(Arc::new(config)))
}

/// A TLS connection to the central listener, trusting `data_dir/ca.pem`, SNI
/// `admin.example.test`.
pub async fn tls_connect(gw: &Gateway) -> Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(gw.central_addr()).await?;
    let name = ServerName::try_from(admin_host())?;
    Ok(connector(&gw.ca())?.connect(name, tcp).await?)
}

/// Sends `request` (a whole request, normally with `Connection: close`) and reads the
/// answer to the end of the connection.
pub async fn raw_request(gw: &Gateway, request: &str) -> Result<Response> {
    let mut tls = tls_connect(gw).await?;
    tls.write_all(request.as_bytes()).await?;
    let mut buf = Vec::new();
    match tokio::time::timeout(secs(20), tls.read_to_end(&mut buf)).await {
        Ok(Ok(_)) => {}
        // A close without TLS close_notify still delivered the answer.
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
        Ok(Err(e)) => return Err(e.into()),
        Err(_) => bail!("no complete answer within 20 s"),
    }
    parse_response(&buf)
}

/// `GET <target> HTTP/1.1` with `Host: admin.example.test:<port>` and `Connection: close`.
pub async fn raw_get(gw: &Gateway, target: &str) -> Result<Response> {
    raw_request(
        gw,
        &format!(
            "GET {target} HTTP/1.1\r\nHost: {}:{}\r\nConnection: close\r\n\r\n",
            admin_host(),
            gw.central_port
        ),
    )
    .await
}

/// Parses one HTTP/1.1 response (body by length, chunks, or to the end).
pub fn parse_response(buf: &[u8]) -> Result<Response> {
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no complete response head")?;
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("").to_string();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let rest = &buf[end + 4..];
    let chunked = headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    let body = if chunked {
        dechunk(rest)?
    } else {
        rest.to_vec()
    };
    Ok(Response {
        status,
        status_line,
        headers,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("truncated chunk size")?;
        let size_text = String::from_utf8_lossy(&data[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .with_context(|| format!("bad chunk size {size_text:?}"))?;
        data = &data[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(data.get(..size).context("truncated chunk")?);
        data = data.get(size + 2..).context("truncated chunk end")?;
    }
}

/// A websocket through the proxy to `path` (e.g. `/12345/ws`).
pub async fn websocket(gw: &Gateway, path: &str) -> Result<WebSocketStream<TlsStream<TcpStream>>> {
    let tls = tls_connect(gw).await?;
    let url = format!("wss://{}:{}{path}", admin_host(), gw.central_port);
    let (ws, resp) = tokio::time::timeout(secs(20), tokio_tungstenite::client_async(url, tls))
        .await
        .context("websocket handshake timed out")??;
    if resp.status() != 101 {
        bail!("websocket handshake answered {}", resp.status());
    }
    Ok(ws)
}
