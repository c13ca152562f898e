//! The parsed form of a `FindProxyForURL` answer.
//!
//! A PAC answers with a string such as `"PROXY a:3128; DIRECT"`; browsers try
//! the entries in order. Tests and the CLI compare answers, and a parsed list
//! makes "what would the browser do" explicit instead of string matching.

use std::fmt;

/// One entry of a PAC answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Directive {
    /// Connect without a proxy.
    Direct,
    /// `PROXY host:port` (also Firefox's `HTTP`): a plain HTTP proxy.
    Proxy(String),
    /// `HTTPS host:port`: an HTTP proxy reached over TLS (comgate's front door).
    Https(String),
    /// `SOCKS host:port`: a SOCKS (v4) proxy.
    Socks(String),
    /// `SOCKS4 host:port`.
    Socks4(String),
    /// `SOCKS5 host:port`.
    Socks5(String),
    /// Anything a browser would skip: an unknown keyword or a missing address.
    Unrecognised(String),
}

impl fmt::Display for Directive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Directive::Direct => f.write_str("DIRECT"),
            Directive::Proxy(a) => write!(f, "PROXY {a}"),
            Directive::Https(a) => write!(f, "HTTPS {a}"),
            Directive::Socks(a) => write!(f, "SOCKS {a}"),
            Directive::Socks4(a) => write!(f, "SOCKS4 {a}"),
            Directive::Socks5(a) => write!(f, "SOCKS5 {a}"),
            Directive::Unrecognised(s) => write!(f, "(unrecognised: {s})"),
        }
    }
}

/// Splits a PAC answer into its entries, as browsers read it: entries are
/// separated by `;`, keywords are case-insensitive, empty entries are
/// ignored. An empty answer means DIRECT to browsers and gives an empty list
/// here.
pub fn parse_answer(answer: &str) -> Vec<Directive> {
    answer
        .split(';')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(parse_entry)
        .collect()
}

fn parse_entry(entry: &str) -> Directive {
    let mut words = entry.split_whitespace();
    let keyword = words.next().unwrap_or_default().to_ascii_uppercase();
    let address = words.next().map(str::to_owned);
    if words.next().is_some() {
        return Directive::Unrecognised(entry.to_owned());
    }
    match (keyword.as_str(), address) {
        ("DIRECT", None) => Directive::Direct,
        ("PROXY" | "HTTP", Some(a)) => Directive::Proxy(a),
        ("HTTPS", Some(a)) => Directive::Https(a),
        ("SOCKS", Some(a)) => Directive::Socks(a),
        ("SOCKS4", Some(a)) => Directive::Socks4(a),
        ("SOCKS5", Some(a)) => Directive::Socks5(a),
        _ => Directive::Unrecognised(entry.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_with_fallbacks_is_split_in_order() {
        assert_eq!(
            parse_answer(
                "PROXY a.corp:3128;  https maint.example.com:6443 ; SOCKS5 s:1080; DIRECT;"
            ),
            vec![
                Directive::Proxy("a.corp:3128".into()),
                Directive::Https("maint.example.com:6443".into()),
                Directive::Socks5("s:1080".into()),
                Directive::Direct,
            ]
        );
    }

    #[test]
    fn unknown_or_incomplete_entries_are_marked_not_dropped() {
        assert_eq!(
            parse_answer("QUIC q:443; PROXY; DIRECT x"),
            vec![
                Directive::Unrecognised("QUIC q:443".into()),
                Directive::Unrecognised("PROXY".into()),
                Directive::Unrecognised("DIRECT x".into()),
            ]
        );
        assert!(parse_answer("  ").is_empty());
    }
}
