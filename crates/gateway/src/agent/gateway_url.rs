//! The `gateway = "wss://HOST:PORT[/path]"` key of the agent's config.

use std::fmt;

/// Where the agent dials comgate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayUrl {
    pub host: String,
    pub port: u16,
    pub path: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GatewayUrlError {
    #[error("must start with wss:// (the agent only speaks TLS)")]
    NotWss,
    #[error("has no host")]
    NoHost,
    #[error("port `{0}` is not a number 1-65535")]
    BadPort(String),
}

/// The path comgate serves agents on when the URL names none.
pub const DEFAULT_PATH: &str = "/agent/v1";

impl GatewayUrl {
    pub fn parse(s: &str) -> Result<Self, GatewayUrlError> {
        let rest = s.strip_prefix("wss://").ok_or(GatewayUrlError::NotWss)?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let end = v6.find(']').ok_or(GatewayUrlError::NoHost)?;
            let host = &v6[..end];
            let port = v6[end + 1..].strip_prefix(':');
            (host, port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(GatewayUrlError::NoHost);
        }
        let port = match port {
            None => 443,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| GatewayUrlError::BadPort(p.to_owned()))?,
        };
        let path = if path.is_empty() || path == "/" {
            DEFAULT_PATH.to_owned()
        } else {
            path.to_owned()
        };
        Ok(GatewayUrl {
            host: host.to_owned(),
            port,
            path,
        })
    }

    /// `host:port` as used in a CONNECT line and for TCP (IPv6 bracketed).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for GatewayUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "wss://{}{}", self.authority(), self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_of_the_contract() {
        let u = GatewayUrl::parse("wss://127.0.0.1:6444").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("127.0.0.1", 6444, DEFAULT_PATH)
        );
        let u = GatewayUrl::parse("wss://comgate.example.com/custom").unwrap();
        assert_eq!((u.port, u.path.as_str()), (443, "/custom"));
        let u = GatewayUrl::parse("wss://[::1]:7000/").unwrap();
        assert_eq!(u.authority(), "[::1]:7000");
        assert_eq!(GatewayUrl::parse("ws://x:1"), Err(GatewayUrlError::NotWss));
        assert_eq!(GatewayUrl::parse("wss://:1"), Err(GatewayUrlError::NoHost));
        assert!(matches!(
            GatewayUrl::parse("wss://x:0"),
            Err(GatewayUrlError::BadPort(_))
        ));
    }
}
