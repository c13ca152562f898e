//! `comgate pac`: try a PAC on URLs, print comgate's PAC, or merge comgate's
//! rule into a PAC the partner already has.
//!
//! The PAC logic lives in the `pac` crate; this module only finds the inputs
//! (a file, or an `http(s)://` URL fetched with a small HTTP/1.1 client over
//! the workspace's rustls), and prints. Every error names the file or URL it
//! is about.

use std::io::Write as _;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use gateway::config::ServeConfig;

/// Time for one DNS lookup a PAC asks for (`dnsResolve`, `isInNet` on a name).
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(1);
/// Time to connect to a PAC URL and to receive the whole file.
const FETCH_TIMEOUT: Duration = Duration::from_secs(15);
/// Redirects followed when fetching a PAC URL.
const MAX_REDIRECTS: usize = 3;
/// Largest response head accepted from a PAC server.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// `comgate pac test`: one line `URL -> answer` per URL. Fails (after
/// printing every line) when any URL could not be evaluated.
pub async fn test(
    pac_location: &str,
    ca: Option<&Path>,
    my_ip: Option<Ipv4Addr>,
    urls: Vec<String>,
    clock: pac::SystemClock,
) -> anyhow::Result<()> {
    let source = read_pac(pac_location, ca).await?;
    let location = pac_location.to_owned();
    // The evaluator blocks (its own thread, lookups through getaddrinfo).
    let lines = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<(String, bool)>> {
        let resolver = pac::SystemResolver::new(LOOKUP_TIMEOUT);
        let resolver: Arc<dyn pac::Resolver> = match my_ip {
            Some(ip) => Arc::new(FixedMyIp {
                inner: resolver,
                ip,
            }),
            None => Arc::new(resolver),
        };
        let options = pac::Options {
            resolver,
            clock: Arc::new(clock),
            ..pac::Options::default()
        };
        let mut engine =
            pac::Pac::load(&source, options).with_context(|| format!("PAC {location}"))?;
        for alert in engine.load_alerts() {
            eprintln!("PAC alert: {alert}");
        }
        let mut lines = Vec::new();
        for url in urls {
            let result =
                pac::browser_arguments(&url).and_then(|(u, host)| engine.find_proxy(&u, &host));
            lines.push(match result {
                Ok(answer) => {
                    for alert in &answer.alerts {
                        eprintln!("PAC alert ({url}): {alert}");
                    }
                    (format!("{url} -> {}", answer.raw), true)
                }
                Err(e) => (format!("{url} -> error: {e}"), false),
            });
        }
        Ok(lines)
    })
    .await
    .context("the PAC evaluation task failed")??;
    let mut out = std::io::stdout().lock();
    let mut failed = 0;
    for (line, ok) in &lines {
        writeln!(out, "{line}")?;
        failed += usize::from(!ok);
    }
    if failed > 0 {
        bail!(
            "{failed} of {} URLs could not be evaluated with PAC {pac_location}",
            lines.len()
        );
    }
    Ok(())
}

/// `comgate pac generate`: comgate's own PAC for a serve config.
pub fn generate(config: &Path) -> anyhow::Result<()> {
    let rule = rule_from_config(config)?;
    print!("{}", pac::generate(&rule));
    Ok(())
}

/// `comgate pac merge`: the existing PAC plus comgate's rule, on stdout.
pub async fn merge(config: &Path, existing: &str, ca: Option<&Path>) -> anyhow::Result<()> {
    let rule = rule_from_config(config)?;
    let source = read_pac(existing, ca).await?;
    let existing = existing.to_owned();
    let merged = tokio::task::spawn_blocking(move || {
        // No resolver: merging never needs the network, and its check only
        // evaluates a maintenance name, which our rule answers first.
        pac::merge(&source, &rule, pac::Options::default())
            .with_context(|| format!("existing PAC {existing}"))
    })
    .await
    .context("the PAC merge task failed")??;
    print!("{merged}");
    Ok(())
}

fn rule_from_config(config: &Path) -> anyhow::Result<pac::MaintRule> {
    let cfg = ServeConfig::load(config)?;
    pac::MaintRule::new(&cfg.domain, &cfg.public_address())
        .with_context(|| format!("config file {}", config.display()))
}

/// `myIpAddress()` from `--my-ip`, lookups from the system.
struct FixedMyIp {
    inner: pac::SystemResolver,
    ip: Ipv4Addr,
}

impl pac::Resolver for FixedMyIp {
    fn resolve(&self, host: &str) -> Option<Ipv4Addr> {
        self.inner.resolve(host)
    }
    fn my_ip_address(&self) -> Ipv4Addr {
        self.ip
    }
}

// ------------------------------------------------------------ reading a PAC

/// The PAC text from a file or an `http://` / `https://` URL.
async fn read_pac(location: &str, ca: Option<&Path>) -> anyhow::Result<String> {
    let limit = pac::Limits::default().max_source_bytes;
    let bytes = if location.starts_with("https://") || location.starts_with("http://") {
        fetch(location, ca, limit)
            .await
            .with_context(|| format!("cannot fetch PAC {location}"))?
    } else {
        let path = location.strip_prefix("file://").unwrap_or(location);
        let meta =
            std::fs::metadata(path).with_context(|| format!("cannot read PAC file {path}"))?;
        if meta.len() > limit as u64 {
            bail!(
                "PAC file {path} is {} bytes; the limit is {limit} bytes",
                meta.len()
            );
        }
        std::fs::read(path).with_context(|| format!("cannot read PAC file {path}"))?
    };
    String::from_utf8(bytes).map_err(|_| anyhow!("PAC {location} is not UTF-8 text"))
}

/// An `http(s)://host[:port]/path` URL, split.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    tls: bool,
    host: String,
    port: u16,
    path: String,
}

fn parse_target(url: &str) -> anyhow::Result<Target> {
    let (tls, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else {
        bail!("only http:// and https:// URLs can be fetched");
    };
    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let path = path.split('#').next().unwrap_or("/");
    let path = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    if authority.contains('@') {
        bail!("credentials in the URL are not supported");
    }
    let default_port = if tls { 443 } else { 80 };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| anyhow!("unclosed `[` in the host"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().context("bad port")?,
            None if after.is_empty() => default_port,
            None => bail!("unexpected text after the host"),
        };
        (host.to_owned(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), p.parse().context("bad port")?),
            None => (authority.to_owned(), default_port),
        }
    };
    if host.is_empty() {
        bail!("the URL has no host");
    }
    Ok(Target {
        tls,
        host,
        port,
        path,
    })
}

/// GET `url`, following a few redirects; the body of the 200 response.
async fn fetch(url: &str, ca: Option<&Path>, limit: usize) -> anyhow::Result<Vec<u8>> {
    let roots = trust_roots(ca)?;
    let mut url = url.to_owned();
    for _ in 0..=MAX_REDIRECTS {
        let target = parse_target(&url)?;
        let response = tokio::time::timeout(FETCH_TIMEOUT, get(&target, &roots, limit))
            .await
            .map_err(|_| anyhow!("no complete answer within {FETCH_TIMEOUT:?}"))??;
        match response {
            Response::Body(body) => return Ok(body),
            Response::Redirect(location) => {
                url = if location.starts_with("http://") || location.starts_with("https://") {
                    location
                } else if location.starts_with('/') {
                    let scheme = if target.tls { "https" } else { "http" };
                    let host = if target.host.contains(':') {
                        format!("[{}]", target.host)
                    } else {
                        target.host.clone()
                    };
                    format!("{scheme}://{host}:{}{location}", target.port)
                } else {
                    bail!("redirect to an unsupported location `{location}`");
                };
            }
        }
    }
    bail!("more than {MAX_REDIRECTS} redirects")
}

/// The system's trust anchors (the Mozilla set, plus the OS bundle when
/// there is one) and the `--ca` file.
fn trust_roots(ca: Option<&Path>) -> anyhow::Result<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let os_bundle = Path::new("/etc/ssl/certs/ca-certificates.crt");
    if os_bundle.exists() {
        if let Ok(os) = gateway::tls::load_roots(os_bundle) {
            roots.roots.extend(os.roots);
        }
    }
    if let Some(ca) = ca {
        let extra =
            gateway::tls::load_roots(ca).with_context(|| format!("--ca {}", ca.display()))?;
        roots.roots.extend(extra.roots);
    }
    Ok(roots)
}

enum Response {
    Body(Vec<u8>),
    Redirect(String),
}

async fn get(
    target: &Target,
    roots: &rustls::RootCertStore,
    limit: usize,
) -> anyhow::Result<Response> {
    let tcp = TcpStream::connect((target.host.as_str(), target.port))
        .await
        .with_context(|| format!("cannot connect to {}:{}", target.host, target.port))?;
    if !target.tls {
        return exchange(tcp, target, limit).await;
    }
    let config = gateway::tls::client_config(roots.clone())?;
    let name = rustls::pki_types::ServerName::try_from(target.host.clone())
        .map_err(|_| anyhow!("`{}` is not a valid TLS server name", target.host))?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .context("TLS handshake failed")?;
    exchange(tls, target, limit).await
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    target: &Target,
    limit: usize,
) -> anyhow::Result<Response> {
    let default_port = if target.tls { 443 } else { 80 };
    let host = if target.host.contains(':') {
        format!("[{}]", target.host)
    } else {
        target.host.clone()
    };
    let host_header = if target.port == default_port {
        host
    } else {
        format!("{host}:{}", target.port)
    };
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: comgate-pac\r\n\
         Accept: application/x-ns-proxy-autoconfig, */*\r\nConnection: close\r\n\r\n",
        target.path
    );
    stream.write_all(request.as_bytes()).await?;
    stream.flush().await?;
    let mut raw = Vec::new();
    let cap = (limit + MAX_HEAD_BYTES) as u64;
    // A server that closes without TLS close_notify is still a complete
    // answer when the body length checks out below.
    match (&mut stream).take(cap + 1).read_to_end(&mut raw).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(e) => return Err(e).context("reading the answer"),
    }
    if raw.len() as u64 > cap {
        bail!("the answer is larger than the {limit}-byte PAC limit");
    }
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> anyhow::Result<Response> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut head = httparse::Response::new(&mut headers);
    let head_len = match head.parse(raw).context("malformed HTTP answer")? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => bail!("the answer ended inside its head"),
    };
    let status = head.code.unwrap_or(0);
    let header = |name: &str| {
        head.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_owned())
    };
    if matches!(status, 301 | 302 | 303 | 307 | 308) {
        let location =
            header("location").ok_or_else(|| anyhow!("HTTP {status} without Location"))?;
        return Ok(Response::Redirect(location));
    }
    if status != 200 {
        bail!("HTTP {status} {}", head.reason.unwrap_or_default());
    }
    let body = &raw[head_len..];
    let chunked =
        header("transfer-encoding").is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
    if chunked {
        return Ok(Response::Body(dechunk(body)?));
    }
    match header("content-length") {
        Some(len) => {
            let len: usize = len.parse().context("bad Content-Length")?;
            if body.len() < len {
                bail!("the answer ended after {} of {len} bytes", body.len());
            }
            Ok(Response::Body(body[..len].to_vec()))
        }
        None => Ok(Response::Body(body.to_vec())),
    }
}

fn dechunk(mut body: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| anyhow!("truncated chunked body"))?;
        let size_text = std::str::from_utf8(&body[..line_end]).context("bad chunk size")?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).context("bad chunk size")?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if body.len() < size + 2 {
            bail!("truncated chunked body");
        }
        out.extend_from_slice(&body[..size]);
        body = &body[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_split_into_host_port_and_path() {
        assert_eq!(
            parse_target("https://admin.example.com/com/remoteproxy/proxy.pac").unwrap(),
            Target {
                tls: true,
                host: "admin.example.com".into(),
                port: 443,
                path: "/com/remoteproxy/proxy.pac".into()
            }
        );
        let t = parse_target("http://[::1]:8080?x#y").unwrap();
        assert_eq!(
            (t.tls, t.host.as_str(), t.port, t.path.as_str()),
            (false, "::1", 8080, "/?x")
        );
        assert!(parse_target("ftp://x/").is_err());
        assert!(parse_target("https://u:p@x/").is_err());
    }

    #[test]
    fn bodies_by_length_by_chunks_and_redirects() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcdef").unwrap();
        assert!(matches!(r, Response::Body(b) if b == b"abc"));
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert!(matches!(r, Response::Body(b) if b == b"abcde"));
        let r = parse_response(b"HTTP/1.1 302 Found\r\nLocation: /new.pac\r\n\r\n").unwrap();
        assert!(matches!(r, Response::Redirect(l) if l == "/new.pac"));
        let err = parse_response(b"HTTP/1.1 404 Not Found\r\n\r\n")
            .err()
            .unwrap();
        assert!(err.to_string().contains("404"), "{err}");
    }
}
