//! Reaching comgate through the site's own HTTP proxy: many sites reach the
//! internet only that way. The agent sends `CONNECT gateway:port` with Basic
//! credentials and, after `200`, runs TLS to comgate inside that tunnel.

use std::fmt;

use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `http://[user:pass@]host:port`
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyUrl {
    pub host: String,
    pub port: u16,
    pub credentials: Option<(String, String)>,
}

impl fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://")?;
        if let Some((user, _)) = &self.credentials {
            write!(f, "{user}:********@")?;
        }
        write!(f, "{}:{}", self.host, self.port)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProxyUrlError {
    #[error("must look like http://user:pass@host:port")]
    NotHttp,
    #[error("has no host")]
    NoHost,
    #[error("has a bad port")]
    BadPort,
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("cannot connect to the HTTP proxy {0}: {1}")]
    Connect(String, std::io::Error),
    #[error("HTTP proxy connection failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("the HTTP proxy refused the CONNECT: {0}")]
    Refused(String),
    #[error("the HTTP proxy sent a malformed reply")]
    Malformed,
}

/// Percent-decoding for the userinfo part (`%40` in a password is `@`).
fn unpercent(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl ProxyUrl {
    pub fn parse(s: &str) -> Result<Self, ProxyUrlError> {
        let rest = s.strip_prefix("http://").ok_or(ProxyUrlError::NotHttp)?;
        let rest = rest.trim_end_matches('/');
        let (userinfo, hostport) = match rest.rfind('@') {
            Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
            None => (None, rest),
        };
        let credentials = userinfo.map(|u| match u.split_once(':') {
            Some((user, pass)) => (unpercent(user), unpercent(pass)),
            None => (unpercent(u), String::new()),
        });
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or(ProxyUrlError::BadPort)?,
            ),
            None => (hostport, 3128),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(ProxyUrlError::NoHost);
        }
        Ok(ProxyUrl {
            host: host.to_owned(),
            port,
            credentials,
        })
    }

    fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Opens a TCP tunnel to `target` (`host:port`) through the proxy.
pub async fn connect_through(proxy: &ProxyUrl, target: &str) -> Result<TcpStream, ProxyError> {
    let mut tcp = TcpStream::connect(proxy.authority())
        .await
        .map_err(|e| ProxyError::Connect(proxy.authority(), e))?;
    let _ = tcp.set_nodelay(true);
    let mut req = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some((user, pass)) = &proxy.credentials {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        req.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
    }
    req.push_str("\r\n");
    tcp.write_all(req.as_bytes()).await?;
    // Read the reply byte by byte: anything after its head belongs to TLS.
    let mut head = Vec::with_capacity(256);
    loop {
        let b = tcp.read_u8().await?;
        head.push(b);
        if head.ends_with(b"\r\n\r\n") {
            break;
        }
        if head.len() > 16 * 1024 {
            return Err(ProxyError::Malformed);
        }
    }
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(&head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Err(ProxyError::Malformed),
    }
    match resp.code {
        Some(200) => Ok(tcp),
        Some(code) => Err(ProxyError::Refused(format!(
            "{code} {}",
            resp.reason.unwrap_or_default()
        ))),
        None => Err(ProxyError::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_credentials_and_hides_them() {
        let p = ProxyUrl::parse("http://user:p%40ss@127.0.0.1:8888").unwrap();
        assert_eq!(p.host, "127.0.0.1");
        assert_eq!(p.port, 8888);
        assert_eq!(p.credentials, Some(("user".into(), "p@ss".into())));
        assert!(!format!("{p:?}").contains("p@ss"));
        assert_eq!(ProxyUrl::parse("http://proxy").unwrap().port, 3128);
        assert_eq!(ProxyUrl::parse("https://x:1"), Err(ProxyUrlError::NotHttp));
        assert_eq!(ProxyUrl::parse("http://x:0"), Err(ProxyUrlError::BadPort));
        assert_eq!(ProxyUrl::parse("http://u:p@:8"), Err(ProxyUrlError::NoHost));
    }
}
