//! Where a central-management request goes: the pure parse of its request
//! target into a customer, an optional co-located address and the path the
//! system is asked for.
//!
//! `https://admin.<domain>:8443/<customer-id>[/<ipv4>]/<rest>`: the first
//! path segment alone names the customer (the `Host` header is never used
//! for routing), a second segment that is a dotted quad names a co-located
//! system, and `/<rest>` (with the query) is what the system sees.
//!
//! Everything after the prefix is forwarded verbatim, so whatever could be
//! read differently by two parsers is refused outright instead of
//! normalised: dot segments (`.`, `..`), and percent-encoded slashes,
//! backslashes, dots and NULs anywhere in the path (`/12345/..%2f67890/`),
//! raw backslashes, and malformed percent escapes. Browsers never send
//! these for a web app's own links.

use std::net::Ipv4Addr;

use admin::names::MAX_CUSTOMER_ID_LEN;

/// A routable central-management request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The customer id, lowercased for the lookup.
    pub customer: String,
    /// The co-located system, when the second segment is an IPv4 address.
    pub colocated: Option<Ipv4Addr>,
    /// The prefix exactly as the client spelt it (`/12345` or
    /// `/12345/10.0.0.6`): what rewritten paths and cookies start with.
    pub prefix: String,
    /// Path and query for the system (`/WebManagement/x?y`), or `None` when
    /// the request named the prefix alone (`/12345`, `/12345?x`).
    pub upstream: Option<String>,
    /// The query of a prefix-only request (without `?`), for its redirect.
    pub query: Option<String>,
}

/// Why a request target cannot be routed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// An absolute-form target naming a host other than `admin.<domain>`:
    /// this listener is not a forward proxy.
    #[error("request target names another host ({0})")]
    ForeignHost(String),
    /// `*` or authority-form (CONNECT).
    #[error("request target is not a path")]
    NotAPath,
    /// Dot segments, encoded separators, backslashes, bad escapes.
    #[error("request path is not in canonical form ({0})")]
    Uncanonical(&'static str),
    /// The first segment cannot be a customer id (empty, too long, or not
    /// letters and digits).
    #[error("no customer id in the path")]
    NoCustomer,
}

/// Parses a request target as hyper hands it over: `uri` is the target of
/// the request line (origin-form `/x` or absolute-form `https://h/x`).
pub fn parse(uri: &http::Uri, domain: &str) -> Result<Route, RouteError> {
    if let Some(authority) = uri.authority() {
        let admin = format!("admin.{domain}");
        if !authority.host().eq_ignore_ascii_case(&admin) {
            return Err(RouteError::ForeignHost(authority.as_str().to_owned()));
        }
    }
    let path = uri.path();
    if !path.starts_with('/') || uri.path_and_query().is_none() {
        return Err(RouteError::NotAPath);
    }
    check_canonical(path)?;
    let after = &path[1..];
    let (customer, mut rest) = match after.find('/') {
        Some(i) => (&after[..i], &after[i..]),
        None => (after, ""),
    };
    if customer.is_empty()
        || customer.len() > MAX_CUSTOMER_ID_LEN
        || !customer.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err(RouteError::NoCustomer);
    }
    let mut prefix = format!("/{customer}");
    let mut colocated = None;
    if let Some(seg) = rest.strip_prefix('/') {
        let (second, tail) = match seg.find('/') {
            Some(i) => (&seg[..i], &seg[i..]),
            None => (seg, ""),
        };
        if let Ok(ip) = second.parse::<Ipv4Addr>() {
            colocated = Some(ip);
            prefix.push('/');
            prefix.push_str(second);
            rest = tail;
        }
    }
    let query = uri.query();
    let upstream = (!rest.is_empty()).then(|| match query {
        Some(q) => format!("{rest}?{q}"),
        None => rest.to_owned(),
    });
    Ok(Route {
        customer: customer.to_ascii_lowercase(),
        colocated,
        prefix,
        query: if upstream.is_none() {
            query.map(str::to_owned)
        } else {
            None
        },
        upstream,
    })
}

/// Refuses what two parsers could read differently (see the module docs).
fn check_canonical(path: &str) -> Result<(), RouteError> {
    if path.contains('\\') {
        return Err(RouteError::Uncanonical("backslash"));
    }
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or(RouteError::Uncanonical("malformed percent escape"))?;
            match hex {
                b'/' | b'\\' => return Err(RouteError::Uncanonical("encoded slash")),
                b'.' => return Err(RouteError::Uncanonical("encoded dot")),
                0 => return Err(RouteError::Uncanonical("encoded NUL")),
                _ => {}
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    if path.split('/').any(|seg| seg == "." || seg == "..") {
        return Err(RouteError::Uncanonical("dot segment"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOMAIN: &str = "example.test";

    fn route(target: &str) -> Result<Route, RouteError> {
        parse(&target.parse::<http::Uri>().unwrap(), DOMAIN)
    }

    #[test]
    fn the_manual_addresses_route_to_the_primary_or_a_colocated_system() {
        let r = route("/12345/WebManagement/WebManagement.html").unwrap();
        assert_eq!(r.customer, "12345");
        assert_eq!(r.colocated, None);
        assert_eq!(r.prefix, "/12345");
        assert_eq!(
            r.upstream.as_deref(),
            Some("/WebManagement/WebManagement.html")
        );

        let r = route("/12345/192.168.0.20/x/y?a=1&b=%2F").unwrap();
        assert_eq!(r.colocated, Some(Ipv4Addr::new(192, 168, 0, 20)));
        assert_eq!(r.prefix, "/12345/192.168.0.20");
        // The query is passed through as sent, encoded slash and all.
        assert_eq!(r.upstream.as_deref(), Some("/x/y?a=1&b=%2F"));

        let r = route("/AbC9/").unwrap();
        assert_eq!(r.customer, "abc9");
        assert_eq!(r.prefix, "/AbC9");
        assert_eq!(r.upstream.as_deref(), Some("/"));

        let r = route("/12345/10.0.0.6/").unwrap();
        assert_eq!(r.upstream.as_deref(), Some("/"));
    }

    #[test]
    fn the_prefix_alone_has_no_upstream_path() {
        let r = route("/12345").unwrap();
        assert_eq!(r.upstream, None);
        let r = route("/12345/10.0.0.6?x=1").unwrap();
        assert_eq!(r.colocated, Some(Ipv4Addr::new(10, 0, 0, 6)));
        assert_eq!(r.upstream, None);
        assert_eq!(r.query.as_deref(), Some("x=1"));
    }

    #[test]
    fn a_second_segment_that_is_not_a_strict_dotted_quad_is_path() {
        for (target, upstream) in [
            ("/12345/999.1.1.1/x", "/999.1.1.1/x"),
            ("/12345/010.0.0.1/x", "/010.0.0.1/x"),
            ("/12345/10.0.0/x", "/10.0.0/x"),
            ("/12345/WebManagement", "/WebManagement"),
        ] {
            let r = route(target).unwrap();
            assert_eq!(r.colocated, None, "{target}");
            assert_eq!(r.upstream.as_deref(), Some(upstream), "{target}");
        }
    }

    #[test]
    fn traversal_and_encoded_separators_are_refused() {
        for target in [
            "/12345/..%2f67890/",
            "/12345/..%2F67890/x",
            "/12345/%2e%2e/67890/",
            "/12345/../67890/",
            "/../67890/",
            "/12345/./x",
            "/12345/x/..",
            "/12345%2f..%2f67890/",
            "/12345/a%5cb",
            "/12345/a%00b",
            "/12345/a%zz",
            "/12345/a%2",
        ] {
            assert!(
                matches!(route(target), Err(RouteError::Uncanonical(_))),
                "{target}: {:?}",
                route(target)
            );
        }
    }

    #[test]
    fn a_first_segment_that_is_no_customer_id_is_refused() {
        for target in ["/", "//12345/", "/12-345/", "/12345.x/", "/_/"] {
            assert_eq!(route(target), Err(RouteError::NoCustomer), "{target}");
        }
        let long = format!("/{}/", "1".repeat(MAX_CUSTOMER_ID_LEN + 1));
        assert_eq!(route(&long), Err(RouteError::NoCustomer));
    }

    #[test]
    fn absolute_form_is_accepted_only_for_the_admin_host() {
        let r = route("https://ADMIN.example.test:8443/12345/x").unwrap();
        assert_eq!(r.customer, "12345");
        assert_eq!(r.upstream.as_deref(), Some("/x"));
        for target in [
            "https://evil.test/12345/x",
            "http://12345.maint.example.test:8443/12345/x",
            "https://admin.example.test.evil.test/12345/x",
        ] {
            assert!(
                matches!(route(target), Err(RouteError::ForeignHost(_))),
                "{target}"
            );
        }
        assert_eq!(
            parse(&"*".parse().unwrap(), DOMAIN),
            Err(RouteError::NotAPath)
        );
        assert_eq!(
            parse(&"admin.example.test:8443".parse().unwrap(), DOMAIN),
            Err(RouteError::NotAPath)
        );
    }
}
