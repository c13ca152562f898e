//! Header surgery of the central-management proxy, pure functions over
//! `http` types: what is removed and added on the way to the system, and
//! how the system's redirects and cookies are moved under the customer's
//! prefix so that the web app keeps working at
//! `https://admin.<domain>:8443/<customer-id>/...`. Bodies are never
//! rewritten.
//!
//! - Hop-by-hop headers (RFC 9110 §7.6.1, plus any named in `Connection`)
//!   are dropped both ways; a websocket upgrade keeps `Upgrade` and
//!   `Connection: upgrade`.
//! - The client's own `Forwarded` / `X-Forwarded-*` are replaced with ours:
//!   this is the edge, so what the client claims is not passed on.
//! - `Location` and `Content-Location`: `/x` becomes `<prefix>/x`; an
//!   absolute URL naming the system itself (the host it was sent, or the
//!   co-located address) becomes `https://<public host><prefix>/x`; anything
//!   else (relative `x`, other sites) is left alone.
//! - `Set-Cookie`: `Path=/x` becomes `Path=<prefix>/x`, and `Domain` is
//!   dropped, so that a cookie is host-only for `admin.<domain>` and scoped
//!   to its customer's prefix, never sent to another customer's system.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Hop-by-hop headers of RFC 9110 §7.6.1 and the proxy ones that must not
/// travel past us.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// What the client sends about itself that only we may say.
const FORWARDING: &[&str] = &[
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-real-ip",
];

/// Whether the headers ask for a protocol upgrade (`Connection: upgrade`
/// and an `Upgrade` header): websockets.
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE) && connection_tokens(headers).any(|t| t == "upgrade")
}

fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = String> + '_ {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
}

/// Drops hop-by-hop headers, including those `Connection` names. With
/// `upgrade`, the `Upgrade` header survives and `Connection: upgrade` is
/// set again, as a websocket handshake needs on the next hop.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    let upgrade_value = upgrade
        .then(|| headers.get(header::UPGRADE).cloned())
        .flatten();
    let named: Vec<HeaderName> = connection_tokens(headers)
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
    if let Some(value) = upgrade_value {
        headers.insert(header::UPGRADE, value);
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// Replaces the client's forwarding headers with ours: the client's
/// address, `https`, and the host it asked for.
pub fn set_forwarded(headers: &mut HeaderMap, client_ip: std::net::IpAddr, public_host: &str) {
    for name in FORWARDING {
        headers.remove(*name);
    }
    if let Ok(v) = HeaderValue::from_str(&client_ip.to_string()) {
        headers.insert("x-forwarded-for", v);
    }
    headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
    if let Ok(v) = HeaderValue::from_str(public_host) {
        headers.insert("x-forwarded-host", v);
    }
}

/// What response rewriting needs to know about one request.
#[derive(Debug, Clone)]
pub struct Rewrite {
    /// `/12345` or `/12345/10.0.0.6`, as the client spelt it.
    pub prefix: String,
    /// `admin.<domain>:8443`: the host the client asked for.
    pub public_host: String,
    /// Authorities (`host[:port]`, lowercase) that mean the system itself
    /// in an absolute URL: the `Host` it was sent, and for a co-located
    /// system its address with port 8443.
    pub system_authorities: Vec<String>,
}

impl Rewrite {
    /// Rewrites `Location`, `Content-Location` and `Set-Cookie` in place.
    pub fn response_headers(&self, headers: &mut HeaderMap) {
        for name in [header::LOCATION, header::CONTENT_LOCATION] {
            let rewritten = headers
                .get(&name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| self.location(v))
                .and_then(|v| HeaderValue::from_str(&v).ok());
            if let Some(v) = rewritten {
                headers.insert(name, v);
            }
        }
        let cookies: Vec<HeaderValue> = headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| match v.to_str() {
                Ok(text) => HeaderValue::from_str(&self.set_cookie(text)).unwrap_or(v.clone()),
                Err(_) => v.clone(),
            })
            .collect();
        if !cookies.is_empty() {
            headers.remove(header::SET_COOKIE);
            for c in cookies {
                headers.append(header::SET_COOKIE, c);
            }
        }
    }

    /// The rewritten `Location` value, or `None` to leave it as it is.
    pub fn location(&self, value: &str) -> Option<String> {
        let value = value.trim();
        if value.starts_with('/') && !value.starts_with("//") {
            return Some(format!("{}{value}", self.prefix));
        }
        // Absolute (`scheme://authority/...`) or scheme-relative (`//authority/...`).
        let after_scheme = if let Some(rest) = value.strip_prefix("//") {
            rest
        } else {
            let (scheme, rest) = value.split_once("://")?;
            if !scheme.eq_ignore_ascii_case("https") && !scheme.eq_ignore_ascii_case("http") {
                return None;
            }
            rest
        };
        let end = after_scheme
            .find(['/', '?', '#'])
            .unwrap_or(after_scheme.len());
        let (authority, tail) = after_scheme.split_at(end);
        if !self.names_system(authority) {
            return None;
        }
        let tail = if tail.starts_with('/') {
            tail.to_owned()
        } else {
            format!("/{tail}")
        };
        Some(format!("https://{}{}{tail}", self.public_host, self.prefix))
    }

    fn names_system(&self, authority: &str) -> bool {
        let authority = authority.to_ascii_lowercase();
        // `user@` in a redirect is never the system's own address form.
        if authority.contains('@') {
            return false;
        }
        let bare = authority
            .strip_suffix(":443")
            .or_else(|| authority.strip_suffix(":80"))
            .unwrap_or(&authority);
        self.system_authorities.iter().any(|a| {
            let a_bare = a
                .strip_suffix(":443")
                .or_else(|| a.strip_suffix(":80"))
                .unwrap_or(a);
            *a == authority || a_bare == bare
        })
    }

    /// The rewritten `Set-Cookie` value: `Path` under the prefix, no `Domain`.
    pub fn set_cookie(&self, value: &str) -> String {
        let mut parts = value.split(';');
        let mut out = parts.next().unwrap_or("").trim().to_owned();
        for attr in parts {
            let attr = attr.trim();
            if attr.is_empty() {
                continue;
            }
            let (name, val) = match attr.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim())),
                None => (attr, None),
            };
            if name.eq_ignore_ascii_case("domain") {
                continue;
            }
            out.push_str("; ");
            match val {
                Some(v) if name.eq_ignore_ascii_case("path") && v.starts_with('/') => {
                    out.push_str(&format!("Path={}{v}", self.prefix));
                }
                Some(v) => out.push_str(&format!("{name}={v}")),
                None => out.push_str(name),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rw(prefix: &str) -> Rewrite {
        Rewrite {
            prefix: prefix.into(),
            public_host: "admin.example.test:8443".into(),
            system_authorities: vec!["admin.example.test:8443".into(), "10.0.0.6:8443".into()],
        }
    }

    #[test]
    fn relative_locations_move_under_the_prefix() {
        let r = rw("/12345");
        assert_eq!(r.location("/login").as_deref(), Some("/12345/login"));
        assert_eq!(r.location("/").as_deref(), Some("/12345/"));
        assert_eq!(r.location("/a?b=/c#d").as_deref(), Some("/12345/a?b=/c#d"));
        // Relative to the current URL: already under the prefix.
        assert_eq!(r.location("login"), None);
        assert_eq!(r.location("?x=1"), None);
        let co = rw("/12345/10.0.0.6");
        assert_eq!(co.location("/x").as_deref(), Some("/12345/10.0.0.6/x"));
    }

    #[test]
    fn absolute_locations_naming_the_system_are_rewritten_others_are_not() {
        let r = rw("/12345");
        for (from, to) in [
            (
                "https://admin.example.test:8443/WebManagement/x.html",
                "https://admin.example.test:8443/12345/WebManagement/x.html",
            ),
            (
                "https://ADMIN.example.test:8443",
                "https://admin.example.test:8443/12345/",
            ),
            (
                "http://10.0.0.6:8443/a?b",
                "https://admin.example.test:8443/12345/a?b",
            ),
            (
                "//10.0.0.6:8443/a",
                "https://admin.example.test:8443/12345/a",
            ),
        ] {
            assert_eq!(r.location(from).as_deref(), Some(to), "{from}");
        }
        for other in [
            "https://www.example.com/",
            "https://10.0.0.6:9443/x",
            "https://admin.example.test:8443@evil.test/",
            "mailto:x@example.com",
            "javascript:alert(1)",
        ] {
            assert_eq!(r.location(other), None, "{other}");
        }
    }

    #[test]
    fn default_ports_match_either_way() {
        let r = Rewrite {
            prefix: "/1".into(),
            public_host: "admin.example.test".into(),
            system_authorities: vec!["admin.example.test".into()],
        };
        assert_eq!(
            r.location("https://admin.example.test:443/x").as_deref(),
            Some("https://admin.example.test/1/x")
        );
    }

    #[test]
    fn cookies_get_the_prefix_path_and_lose_their_domain() {
        let r = rw("/12345");
        assert_eq!(
            r.set_cookie("SESSION=abc; Path=/; Secure; HttpOnly"),
            "SESSION=abc; Path=/12345/; Secure; HttpOnly"
        );
        assert_eq!(
            r.set_cookie("a=b;path=/WebManagement;Domain=10.0.0.6;SameSite=Strict"),
            "a=b; Path=/12345/WebManagement; SameSite=Strict"
        );
        assert_eq!(r.set_cookie("a=b"), "a=b");
        assert_eq!(
            r.set_cookie("a=b; Expires=Wed, 21 Oct 2037 07:28:00 GMT"),
            "a=b; Expires=Wed, 21 Oct 2037 07:28:00 GMT"
        );
    }

    #[test]
    fn response_headers_rewrites_every_cookie_and_both_locations() {
        let r = rw("/12345");
        let mut h = HeaderMap::new();
        h.insert(header::LOCATION, HeaderValue::from_static("/in"));
        h.insert(header::CONTENT_LOCATION, HeaderValue::from_static("/c"));
        h.append(header::SET_COOKIE, HeaderValue::from_static("a=1; Path=/"));
        h.append(header::SET_COOKIE, HeaderValue::from_static("b=2; Path=/x"));
        r.response_headers(&mut h);
        assert_eq!(h[header::LOCATION], "/12345/in");
        assert_eq!(h[header::CONTENT_LOCATION], "/12345/c");
        let cookies: Vec<_> = h.get_all(header::SET_COOKIE).iter().collect();
        assert_eq!(cookies, ["a=1; Path=/12345/", "b=2; Path=/12345/x"]);
    }

    #[test]
    fn hop_by_hop_headers_go_but_a_websocket_upgrade_survives() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, X-Secret, Upgrade"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert("proxy-authorization", HeaderValue::from_static("Basic x"));
        h.insert("sec-websocket-key", HeaderValue::from_static("k"));
        assert!(is_upgrade(&h));
        let mut plain = h.clone();
        strip_hop_by_hop(&mut plain, false);
        assert_eq!(
            plain.keys().map(|k| k.as_str()).collect::<Vec<_>>(),
            ["sec-websocket-key"]
        );
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h[header::UPGRADE], "websocket");
        assert_eq!(h[header::CONNECTION], "upgrade");
        assert!(!h.contains_key("x-secret"));
        assert!(!h.contains_key("proxy-authorization"));
    }

    #[test]
    fn forwarding_headers_are_ours_not_the_clients() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("1.2.3.4"));
        h.insert("forwarded", HeaderValue::from_static("for=1.2.3.4"));
        h.insert("x-forwarded-host", HeaderValue::from_static("evil.test"));
        set_forwarded(
            &mut h,
            "127.0.0.1".parse().unwrap(),
            "admin.example.test:8443",
        );
        assert_eq!(h["x-forwarded-for"], "127.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "admin.example.test:8443");
        assert!(!h.contains_key("forwarded"));
    }
}
