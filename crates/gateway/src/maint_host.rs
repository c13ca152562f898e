//! The maintenance-address grammar: which customer, system and co-located
//! server a CONNECT request target names.
//!
//! Partners reach a system by asking the front door to
//! `CONNECT <customer-id>[-<system-name>][-<co-located-ipv4>].maint.<domain>[:port]`
//! (see DESIGN.md, "Maintenance addresses"). This module turns that request
//! target into a [`MaintTarget`] and refuses everything else, so comgate can
//! never be used as an open proxy: a name outside `.maint.<domain>`, an IP
//! literal, userinfo, percent-encoding or any character a DNS name cannot
//! hold is an error, never a best-effort guess.
//!
//! It is a pure function over a string (no I/O, no allocation except the
//! returned names) so it is unit-tested, property-tested and fuzzed
//! (`fuzz/fuzz_targets/maint_host.rs`).
//!
//! Grammar, after stripping the `.maint.<domain>` suffix (compared ASCII
//! case-insensitively, one trailing dot allowed):
//!
//! - the co-located IPv4, if any, is everything after the last `-` that
//!   precedes the first `.`; it must be a strict dotted quad;
//! - the rest contains no dot; its first `-` separates the customer-id
//!   (letters and digits) from the optional system name (a DNS label, which
//!   may itself contain hyphens).
//!
//! DNS limits apply to the whole name: at most 253 characters, and customer,
//! system and the first octet share one label of at most 63 characters.
//!
//! So `12345-ipo-main-10.0.0.5` is customer `12345`, system `ipo-main`,
//! co-located `10.0.0.5`; `12345-10.0.0.5` is the primary system with a
//! co-located address. Every valid (customer, system, address) triple has
//! exactly one spelling, and [`MaintTarget::to_authority`] writes it.

use std::fmt;
use std::net::Ipv4Addr;

/// Port used when the request target has none. The manual's PuTTY recipe
/// sends `CONNECT 12345-sys.maint.<domain> HTTP/1.1` without a port (see
/// CLIENTS.md, gotcha 4); SSH is what those partners want.
pub const DEFAULT_PORT: u16 = 22;

/// Longest host name DNS can carry (without the trailing dot).
pub const MAX_HOST_LEN: usize = 253;

/// Longest DNS label.
pub const MAX_LABEL_LEN: usize = 63;

/// The fixed part between the partner-chosen labels and the configured domain.
const MAINT_INFIX: &str = ".maint.";

/// What a maintenance host name designates, without the port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MaintHost {
    /// The customer-id, lowercase ASCII letters and digits.
    pub customer: String,
    /// The system name (lowercase DNS label); `None` means the customer's
    /// primary system.
    pub system: Option<String>,
    /// A server co-located with the system; `None` means the system itself.
    pub colocated: Option<Ipv4Addr>,
}

/// A parsed CONNECT request target: where a partner wants to go.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MaintTarget {
    /// The customer-id, lowercase ASCII letters and digits.
    pub customer: String,
    /// The system name (lowercase DNS label); `None` means the customer's
    /// primary system.
    pub system: Option<String>,
    /// A server co-located with the system; `None` means the system itself.
    pub colocated: Option<Ipv4Addr>,
    /// Destination port, 1..=65535; [`DEFAULT_PORT`] when the target had none.
    pub port: u16,
}

impl MaintTarget {
    /// The canonical request target for this destination under `domain`:
    /// `<customer>[-<system>][-<ip>].maint.<domain>:<port>`. Parsing it with
    /// [`parse_maint_authority`] gives `self` back.
    pub fn to_authority(&self, domain: &str) -> String {
        let domain = domain.strip_suffix('.').unwrap_or(domain);
        let mut out = self.customer.clone();
        if let Some(system) = &self.system {
            out.push('-');
            out.push_str(system);
        }
        if let Some(ip) = self.colocated {
            out.push('-');
            out.push_str(&ip.to_string());
        }
        out.push_str(MAINT_INFIX);
        out.push_str(&domain.to_ascii_lowercase());
        out.push(':');
        out.push_str(&self.port.to_string());
        out
    }
}

/// Why a request target is not a maintenance address.
///
/// Messages name the offending part; they only ever quote characters that
/// passed the character check (or a single `{:?}`-escaped char), so they are
/// safe to log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MaintHostError {
    /// Nothing before the port (or nothing at all).
    #[error("empty host name: expected <customer-id>[-<system>][-<ipv4>].maint.<domain>[:port]")]
    Empty,
    /// Host name longer than DNS allows.
    #[error("host name is {len} characters long; at most {MAX_HOST_LEN} are allowed")]
    TooLong { len: usize },
    /// One dot-separated label is longer than DNS allows.
    #[error("a label of the host name is {len} characters long; at most {MAX_LABEL_LEN} are allowed between dots")]
    LabelTooLong { len: usize },
    /// Two dots in a row, a leading dot, or more than one trailing dot.
    #[error("empty label in host name (two dots in a row, a leading dot, or more than one trailing dot)")]
    EmptyLabel,
    /// `[...]` or several `:` — an IPv6 literal, never a maint address.
    #[error("IPv6 literals ('[', ']' or more than one ':') are not maintenance addresses; use <customer-id>[-<system>][-<ipv4>].maint.<domain>")]
    Ipv6Literal,
    /// `user@host`: userinfo has no place in a CONNECT target.
    #[error("'@' (userinfo) is not allowed in the request target; send credentials in Proxy-Authorization")]
    UserInfo,
    /// `%xx`: percent-encoding is not decoded, so it is refused.
    #[error("'%' (percent-encoding) is not allowed in the request target")]
    PercentEncoded,
    /// A character outside `[A-Za-z0-9.-]` in the host name.
    #[error("character {ch:?} is not allowed in a host name (only letters, digits, '.' and '-')")]
    InvalidChar { ch: char },
    /// The host is not under `.maint.<domain>` (including `maint.<domain>`
    /// itself and look-alikes such as `xmaint.<domain>`).
    #[error(
        "host name is not under .maint.<domain>; comgate only connects to maintenance addresses"
    )]
    NotMaintDomain,
    /// Nothing (or only `-<system>`) before `.maint.<domain>`.
    #[error(
        "missing customer-id before .maint.<domain> (expected <customer-id>[-<system>][-<ipv4>])"
    )]
    MissingCustomer,
    /// Customer-id with characters other than letters and digits.
    #[error("customer-id {found:?} must be 1-63 ASCII letters and digits")]
    BadCustomerId { found: String },
    /// System name that is not a DNS label.
    #[error("system name {found:?} must be 1-63 letters, digits and '-', not starting or ending with '-'")]
    BadSystemName { found: String },
    /// A dotted part that is not a strict dotted quad.
    #[error("{found:?} is not an IPv4 address: the co-located address must be four decimal octets 0-255 without leading zeros, after a '-' at the end of the name")]
    BadIpv4 { found: String },
    /// Port empty, not decimal, zero, too large, or with leading zeros.
    #[error("port {found:?} must be a decimal number 1-65535 without leading zeros")]
    BadPort { found: String },
}

/// Parses a CONNECT request target (`host[:port]`) as a maintenance address
/// under `domain` (compared case-insensitively; a trailing dot on `domain` is
/// ignored). A missing port means [`DEFAULT_PORT`].
pub fn parse_maint_authority(authority: &str, domain: &str) -> Result<MaintTarget, MaintHostError> {
    // Refuse characters with a meaning elsewhere in URIs first, so the error
    // says what the client tried rather than "not a maint domain".
    for ch in authority.chars() {
        match ch {
            '@' => return Err(MaintHostError::UserInfo),
            '%' => return Err(MaintHostError::PercentEncoded),
            '[' | ']' => return Err(MaintHostError::Ipv6Literal),
            _ => {}
        }
    }
    let (host, port) = match authority.split_once(':') {
        None => (authority, None),
        Some((_, rest)) if rest.contains(':') => return Err(MaintHostError::Ipv6Literal),
        Some((host, port)) => (host, Some(port)),
    };
    // The host first: when both are wrong, the name is the more useful complaint.
    let MaintHost {
        customer,
        system,
        colocated,
    } = parse_maint_host(host, domain)?;
    let port = match port {
        None => DEFAULT_PORT,
        Some(port) => parse_port(port)?,
    };
    Ok(MaintTarget {
        customer,
        system,
        colocated,
        port,
    })
}

/// Parses a host name (no port) as a maintenance address under `domain`.
/// This is the single implementation of the grammar; [`parse_maint_authority`]
/// only adds the port.
pub fn parse_maint_host(host: &str, domain: &str) -> Result<MaintHost, MaintHostError> {
    if let Some(ch) = host
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '.' || *c == '-'))
    {
        return Err(match ch {
            '@' => MaintHostError::UserInfo,
            '%' => MaintHostError::PercentEncoded,
            '[' | ']' => MaintHostError::Ipv6Literal,
            ch => MaintHostError::InvalidChar { ch },
        });
    }
    // From here on `host` is ASCII, so byte offsets are char boundaries.
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() {
        return Err(MaintHostError::Empty);
    }
    if host.ends_with('.') {
        return Err(MaintHostError::EmptyLabel);
    }
    if host.len() > MAX_HOST_LEN {
        return Err(MaintHostError::TooLong { len: host.len() });
    }
    let prefix = strip_maint_suffix(host, domain).ok_or(MaintHostError::NotMaintDomain)?;
    if prefix.is_empty() {
        return Err(MaintHostError::MissingCustomer);
    }
    for label in prefix.split('.') {
        if label.is_empty() {
            return Err(MaintHostError::EmptyLabel);
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(MaintHostError::LabelTooLong { len: label.len() });
        }
    }

    // Split off the co-located address: it starts after the last '-' that
    // precedes the first '.', because neither customer nor system may hold a dot.
    let (names, colocated) = match prefix.find('.') {
        None => (prefix, None),
        Some(first_dot) => {
            let before_dot = prefix.get(..first_dot).unwrap_or_default();
            let (names, ip) = match before_dot.rfind('-') {
                Some(dash) => (
                    prefix.get(..dash).unwrap_or_default(),
                    prefix.get(dash + 1..).unwrap_or_default(),
                ),
                None => ("", prefix),
            };
            let ip = parse_strict_ipv4(ip).ok_or_else(|| MaintHostError::BadIpv4 {
                found: ip.to_ascii_lowercase(),
            })?;
            (names, Some(ip))
        }
    };

    let (customer, system) = match names.split_once('-') {
        None => (names, None),
        Some((customer, system)) => (customer, Some(system)),
    };
    if customer.is_empty() {
        return Err(MaintHostError::MissingCustomer);
    }
    if customer.len() > MAX_LABEL_LEN || !customer.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(MaintHostError::BadCustomerId {
            found: customer.to_ascii_lowercase(),
        });
    }
    if let Some(system) = system {
        if !is_dns_label(system) {
            return Err(MaintHostError::BadSystemName {
                found: system.to_ascii_lowercase(),
            });
        }
    }
    Ok(MaintHost {
        customer: customer.to_ascii_lowercase(),
        system: system.map(str::to_ascii_lowercase),
        colocated,
    })
}

/// Whether a request target names something under `.maint.<domain>` at all,
/// however malformed the rest. The front door answers a malformed maint
/// address with 400 and anything else (other domains, IP literals, IPv6)
/// with 403: comgate only serves its own maint names.
pub fn is_under_maint_domain(authority: &str, domain: &str) -> bool {
    if authority.contains('[') || authority.contains(']') {
        return false;
    }
    let host = match authority.rsplit_once(':') {
        Some((host, _port)) => host,
        None => authority,
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    host.is_ascii() && strip_maint_suffix(host, domain).is_some()
}

/// Returns what precedes `.maint.<domain>` in `host` (possibly empty), or
/// `None` if `host` does not end with exactly that suffix. `host` is ASCII.
fn strip_maint_suffix<'h>(host: &'h str, domain: &str) -> Option<&'h str> {
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    if domain.is_empty() {
        return None;
    }
    let suffix_len = MAINT_INFIX.len() + domain.len();
    let prefix_len = host.len().checked_sub(suffix_len)?;
    let (prefix, suffix) = host.as_bytes().split_at(prefix_len);
    let (infix, tail) = suffix.split_at(MAINT_INFIX.len());
    if infix.eq_ignore_ascii_case(MAINT_INFIX.as_bytes())
        && tail.eq_ignore_ascii_case(domain.as_bytes())
    {
        std::str::from_utf8(prefix).ok()
    } else {
        None
    }
}

/// `[A-Za-z0-9-]{1,63}`, not starting or ending with '-'.
fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_LABEL_LEN
        && !s.starts_with('-')
        && !s.ends_with('-')
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Four dot-separated decimal octets 0-255, no leading zeros, nothing else.
/// (`Ipv4Addr::from_str` happens to be this strict too, but the grammar is
/// written out here so it does not depend on std's documentation.)
fn parse_strict_ipv4(s: &str) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut parts = s.split('.');
    for octet in &mut octets {
        let part = parts.next()?;
        if part.is_empty() || part.len() > 3 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        if part.len() > 1 && part.starts_with('0') {
            return None;
        }
        *octet = part.parse().ok()?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(Ipv4Addr::from(octets))
}

/// Decimal 1..=65535, no sign, no leading zeros (no client sends them, and
/// one spelling per port keeps audit logs unambiguous).
fn parse_port(s: &str) -> Result<u16, MaintHostError> {
    let bad = || MaintHostError::BadPort {
        found: s.chars().take(16).collect(),
    };
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) || s.starts_with('0') {
        return Err(bad());
    }
    match s.parse::<u16>() {
        Ok(port) if port != 0 => Ok(port),
        _ => Err(bad()),
    }
}

impl fmt::Display for MaintHost {
    /// The partner-chosen part of the name: `<customer>[-<system>][-<ip>]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.customer)?;
        if let Some(system) = &self.system {
            write!(f, "-{system}")?;
        }
        if let Some(ip) = self.colocated {
            write!(f, "-{ip}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod under_domain_tests {
    use super::is_under_maint_domain;

    #[test]
    fn only_names_under_the_maint_domain_count() {
        let d = "example.com";
        for yes in [
            "12345.maint.example.com:22",
            "-x.maint.example.com:22",
            "a%41.maint.example.com",
            "12345.MAINT.example.com.:22",
        ] {
            assert!(is_under_maint_domain(yes, d), "{yes}");
        }
        for no in [
            "[::1]:22",
            "127.0.0.1:22",
            "evil.test:443",
            "maint.example.com:22",
            "x.maint.example.com.evil:22",
            "évil.maint.example.com",
        ] {
            assert!(!is_under_maint_domain(no, d), "{no}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const D: &str = "example.com";

    fn ok(authority: &str) -> MaintTarget {
        match parse_maint_authority(authority, D) {
            Ok(t) => t,
            Err(e) => panic!("{authority:?} should parse, got {e}"),
        }
    }

    fn err(authority: &str) -> MaintHostError {
        match parse_maint_authority(authority, D) {
            Ok(t) => panic!("{authority:?} should be refused, got {t:?}"),
            Err(e) => e,
        }
    }

    fn target(customer: &str, system: Option<&str>, ip: Option<[u8; 4]>, port: u16) -> MaintTarget {
        MaintTarget {
            customer: customer.into(),
            system: system.map(Into::into),
            colocated: ip.map(Ipv4Addr::from),
            port,
        }
    }

    // --- The examples from DESIGN.md ---

    #[test]
    fn design_primary_system() {
        assert_eq!(
            ok("12345.maint.example.com:22"),
            target("12345", None, None, 22)
        );
    }

    #[test]
    fn design_secondary_system() {
        assert_eq!(
            ok("12345-sec1.maint.example.com:22"),
            target("12345", Some("sec1"), None, 22)
        );
    }

    #[test]
    fn design_colocated_server_through_secondary() {
        assert_eq!(
            ok("12345-sec1-192.168.0.20.maint.example.com:3389"),
            target("12345", Some("sec1"), Some([192, 168, 0, 20]), 3389)
        );
    }

    #[test]
    fn design_system_name_with_hyphen_and_colocated_server() {
        assert_eq!(
            ok("12345-ipo-main-10.0.0.5.maint.example.com:443"),
            target("12345", Some("ipo-main"), Some([10, 0, 0, 5]), 443)
        );
    }

    #[test]
    fn portless_target_from_putty_recipe_defaults_to_ssh() {
        assert_eq!(
            ok("12345-sys.maint.example.com"),
            target("12345", Some("sys"), None, 22)
        );
        assert_eq!(
            ok("12345.maint.example.com"),
            target("12345", None, None, DEFAULT_PORT)
        );
    }

    #[test]
    fn primary_system_with_colocated_server() {
        assert_eq!(
            ok("12345-10.0.0.5.maint.example.com:22"),
            target("12345", None, Some([10, 0, 0, 5]), 22)
        );
    }

    #[test]
    fn system_name_ending_in_digits_is_not_an_address() {
        assert_eq!(
            ok("12345-sys-10.maint.example.com:22"),
            target("12345", Some("sys-10"), None, 22)
        );
    }

    #[test]
    fn parse_maint_host_without_port() {
        assert_eq!(
            parse_maint_host("12345-sec1-192.168.0.20.maint.example.com", D),
            Ok(MaintHost {
                customer: "12345".into(),
                system: Some("sec1".into()),
                colocated: Some(Ipv4Addr::new(192, 168, 0, 20)),
            })
        );
        assert_eq!(
            parse_maint_host("12345.maint.example.com:22", D),
            Err(MaintHostError::InvalidChar { ch: ':' })
        );
    }

    // --- Case and trailing dots ---

    #[test]
    fn uppercase_is_accepted_and_lowercased() {
        assert_eq!(
            ok("CUST1-Sys-A.MAINT.Example.COM:22"),
            target("cust1", Some("sys-a"), None, 22)
        );
        assert_eq!(
            parse_maint_authority("cust1.maint.example.com:22", "EXAMPLE.com"),
            Ok(target("cust1", None, None, 22))
        );
    }

    #[test]
    fn one_trailing_dot_is_allowed() {
        assert_eq!(
            ok("12345-sec1.maint.example.com.:22"),
            target("12345", Some("sec1"), None, 22)
        );
        assert_eq!(
            ok("12345.maint.example.com."),
            target("12345", None, None, 22)
        );
        assert_eq!(
            parse_maint_authority("12345.maint.example.com:22", "example.com."),
            Ok(target("12345", None, None, 22))
        );
    }

    #[test]
    fn two_trailing_dots_are_refused() {
        assert_eq!(
            err("12345.maint.example.com..:22"),
            MaintHostError::EmptyLabel
        );
        assert_eq!(err("12345.maint.example.com.."), MaintHostError::EmptyLabel);
    }

    // --- Not under .maint.<domain> ---

    #[test]
    fn other_domains_are_refused() {
        let not_maint = MaintHostError::NotMaintDomain;
        for a in [
            "accounts.google.com:443",
            "update.googleapis.com:443",
            "12345.maint.example.org:22",
            "12345.maint.other-example.com:22",
            "12345.admin.example.com:22",
            "example.com:22",
            "localhost:22",
            "127.0.0.1:22",
        ] {
            assert_eq!(err(a), not_maint, "{a}");
        }
    }

    #[test]
    fn suffix_tricks_are_refused() {
        let not_maint = MaintHostError::NotMaintDomain;
        assert_eq!(err("x.maint.example.com.evil.com:22"), not_maint);
        assert_eq!(err("xmaint.example.com:22"), not_maint);
        assert_eq!(err("12345-xmaint.example.com:22"), not_maint);
        assert_eq!(err("maint.example.com:22"), not_maint);
        assert_eq!(err("maint.example.com"), not_maint);
        assert_eq!(err("12345.maint.example.com.example.com"), not_maint);
        assert_eq!(err("12345.maintexample.com"), not_maint);
        assert_eq!(err("12345.maint.xexample.com"), not_maint);
        assert_eq!(
            err("evil.com/.maint.example.com:22"),
            MaintHostError::InvalidChar { ch: '/' }
        );
        assert_eq!(
            err("evil.com\\.maint.example.com:22"),
            MaintHostError::InvalidChar { ch: '\\' }
        );
    }

    #[test]
    fn empty_domain_matches_nothing() {
        assert!(parse_maint_authority("12345.maint.:22", "").is_err());
        assert!(parse_maint_authority("12345.maint.", "").is_err());
        assert!(parse_maint_authority("12345.maint", ".").is_err());
    }

    // --- Customer and system ---

    #[test]
    fn missing_customer_is_refused() {
        assert_eq!(
            err("-sec1.maint.example.com:22"),
            MaintHostError::MissingCustomer
        );
        assert_eq!(
            err(".maint.example.com:22"),
            MaintHostError::MissingCustomer
        );
        assert_eq!(
            err("-10.0.0.5.maint.example.com:22"),
            MaintHostError::MissingCustomer
        );
        assert_eq!(
            err("10.0.0.5.maint.example.com:22"),
            MaintHostError::MissingCustomer
        );
    }

    #[test]
    fn bad_system_names_are_refused() {
        assert_eq!(
            err("12345-.maint.example.com"),
            MaintHostError::BadSystemName { found: "".into() }
        );
        assert_eq!(
            err("12345-sys-.maint.example.com"),
            MaintHostError::BadSystemName {
                found: "sys-".into()
            }
        );
        assert_eq!(
            err("12345--sys.maint.example.com"),
            MaintHostError::BadSystemName {
                found: "-sys".into()
            }
        );
        assert_eq!(
            err("12345--10.0.0.5.maint.example.com"),
            MaintHostError::BadSystemName { found: "".into() }
        );
    }

    #[test]
    fn dotted_names_that_are_not_addresses_are_refused() {
        assert_eq!(
            err("a.b.maint.example.com:22"),
            MaintHostError::BadIpv4 {
                found: "a.b".into()
            }
        );
        assert_eq!(
            err("12345-sys.lab.maint.example.com:22"),
            MaintHostError::BadIpv4 {
                found: "sys.lab".into()
            }
        );
    }

    // --- Co-located addresses ---

    #[test]
    fn bad_ipv4_addresses_are_refused() {
        for (a, found) in [
            ("12345-1.2.3.256.maint.example.com", "1.2.3.256"),
            ("12345-1.2.3.maint.example.com", "1.2.3"),
            ("12345-01.2.3.4.maint.example.com", "01.2.3.4"),
            ("12345-1.2.3.010.maint.example.com", "1.2.3.010"),
            ("12345-1.2.3.4.5.maint.example.com", "1.2.3.4.5"),
            ("12345-sys-1.2.3.0004.maint.example.com", "1.2.3.0004"),
            ("12345-sys-1.2.3.4a.maint.example.com", "1.2.3.4a"),
            ("12345-sys-1.2-3.4.5.maint.example.com", "1.2-3.4.5"),
        ] {
            assert_eq!(
                err(a),
                MaintHostError::BadIpv4 {
                    found: found.into()
                },
                "{a}"
            );
        }
    }

    #[test]
    fn empty_octets_are_refused() {
        assert_eq!(
            err("12345-1..3.4.maint.example.com"),
            MaintHostError::EmptyLabel
        );
        assert_eq!(
            err("12345-1.2.3..maint.example.com"),
            MaintHostError::EmptyLabel
        );
        assert_eq!(err("12345..maint.example.com"), MaintHostError::EmptyLabel);
    }

    #[test]
    fn zero_octets_and_broadcast_are_well_formed() {
        assert_eq!(
            ok("c-0.0.0.0.maint.example.com:1").colocated,
            Some(Ipv4Addr::UNSPECIFIED)
        );
        assert_eq!(
            ok("c-255.255.255.255.maint.example.com:1").colocated,
            Some(Ipv4Addr::BROADCAST)
        );
    }

    // --- Lengths ---

    #[test]
    fn overlong_labels_are_refused() {
        let c63 = "c".repeat(63);
        let c64 = "c".repeat(64);
        assert_eq!(ok(&format!("{c63}.maint.example.com")).customer, c63);
        assert_eq!(
            err(&format!("{c64}.maint.example.com")),
            MaintHostError::LabelTooLong { len: 64 }
        );
        // Customer, system and the first octet share one DNS label of at most 63.
        let s61 = "s".repeat(61);
        assert_eq!(
            ok(&format!("1-{s61}.maint.example.com")).system,
            Some(s61.clone())
        );
        assert_eq!(
            err(&format!("1-{s61}s.maint.example.com")),
            MaintHostError::LabelTooLong { len: 64 }
        );
        assert_eq!(
            err(&format!("1-{s61}-1.2.3.4.maint.example.com")),
            MaintHostError::LabelTooLong { len: 65 }
        );
    }

    #[test]
    fn overlong_host_names_are_refused() {
        // 253 characters is the DNS limit; longer is refused before any other check.
        let long = format!("{}.maint.example.com", "a.".repeat(120));
        assert!(long.len() > MAX_HOST_LEN);
        assert_eq!(err(&long), MaintHostError::TooLong { len: long.len() });
        assert_eq!(
            err(&"x".repeat(10_000)),
            MaintHostError::TooLong { len: 10_000 }
        );
    }

    // --- URI syntax that is not a host name ---

    #[test]
    fn ipv6_literals_are_refused() {
        assert_eq!(err("[::1]:22"), MaintHostError::Ipv6Literal);
        assert_eq!(err("[2001:db8::1]"), MaintHostError::Ipv6Literal);
        assert_eq!(err("::1"), MaintHostError::Ipv6Literal);
        assert_eq!(
            err("12345.maint.example.com:22:22"),
            MaintHostError::Ipv6Literal
        );
    }

    #[test]
    fn percent_encoding_is_refused() {
        assert_eq!(
            err("12345%2Dsec1.maint.example.com:22"),
            MaintHostError::PercentEncoded
        );
        assert_eq!(
            err("12345.maint.example.com%3A22"),
            MaintHostError::PercentEncoded
        );
    }

    #[test]
    fn userinfo_is_refused() {
        assert_eq!(
            err("user:pw@12345.maint.example.com:22"),
            MaintHostError::UserInfo
        );
        assert_eq!(
            err("user@12345.maint.example.com"),
            MaintHostError::UserInfo
        );
    }

    #[test]
    fn whitespace_and_other_characters_are_refused() {
        for (a, ch) in [
            (" 12345.maint.example.com:22", ' '),
            ("12345.maint.example.com :22", ' '),
            ("12345\t.maint.example.com", '\t'),
            ("12345\n.maint.example.com", '\n'),
            ("12345_x.maint.example.com", '_'),
            ("12345é.maint.example.com", 'é'),
            ("12345\0.maint.example.com", '\0'),
        ] {
            assert_eq!(err(a), MaintHostError::InvalidChar { ch }, "{a:?}");
        }
        // Absolute-form URLs (Chromium's background POSTs) are not authorities.
        assert!(parse_maint_authority("http://12345.maint.example.com/", D).is_err());
    }

    #[test]
    fn empty_inputs_are_refused() {
        assert_eq!(err(""), MaintHostError::Empty);
        assert_eq!(err(":22"), MaintHostError::Empty);
        assert_eq!(err("."), MaintHostError::Empty);
    }

    // --- Ports ---

    #[test]
    fn bad_ports_are_refused() {
        for (a, found) in [
            ("12345.maint.example.com:0", "0"),
            ("12345.maint.example.com:65536", "65536"),
            ("12345.maint.example.com:22a", "22a"),
            ("12345.maint.example.com:", ""),
            ("12345.maint.example.com:-22", "-22"),
            ("12345.maint.example.com:+22", "+22"),
            ("12345.maint.example.com:022", "022"),
            (
                "12345.maint.example.com:99999999999999999999",
                "9999999999999999",
            ),
            ("12345.maint.example.com: 22", " 22"),
        ] {
            assert_eq!(
                err(a),
                MaintHostError::BadPort {
                    found: found.into()
                },
                "{a:?}"
            );
        }
    }

    #[test]
    fn port_bounds_are_accepted() {
        assert_eq!(ok("12345.maint.example.com:1").port, 1);
        assert_eq!(ok("12345.maint.example.com:65535").port, 65535);
    }

    #[test]
    fn errors_read_like_instructions() {
        let msg = err("www.google.com:443").to_string();
        assert!(msg.contains(".maint."), "{msg}");
        let msg = err("12345.maint.example.com:0").to_string();
        assert!(msg.contains("1-65535"), "{msg}");
    }

    // --- Properties ---

    fn arb_target() -> impl Strategy<Value = MaintTarget> {
        let system = "[a-zA-Z0-9]([a-zA-Z0-9-]{0,34}[a-zA-Z0-9])?";
        (
            "[a-zA-Z0-9]{1,30}",
            proptest::option::of(system),
            proptest::option::of(any::<[u8; 4]>()),
            1u16..=65535,
        )
            .prop_map(|(customer, system, ip, port)| MaintTarget {
                customer,
                system,
                colocated: ip.map(Ipv4Addr::from),
                port,
            })
            // Customer, system and the first octet share one DNS label.
            .prop_filter("first label longer than 63", |t| {
                let authority = t.to_authority(D);
                authority
                    .split('.')
                    .next()
                    .is_some_and(|l| l.len() <= MAX_LABEL_LEN)
            })
    }

    proptest! {
        #[test]
        fn never_panics_on_any_string(s in ".*", d in prop_oneof![Just(D.to_string()), ".*"]) {
            let _ = parse_maint_authority(&s, &d);
        }

        #[test]
        fn never_panics_on_name_like_strings(s in "[a-zA-Z0-9.:\\-\\[\\]@%]{0,80}") {
            let _ = parse_maint_authority(&s, D);
            let _ = parse_maint_authority(&format!("{s}.maint.example.com"), D);
        }

        #[test]
        fn valid_targets_round_trip(t in arb_target(), upper_domain in any::<bool>()) {
            let domain = if upper_domain { "Example.COM." } else { D };
            let authority = t.to_authority(D);
            let mut expected = t.clone();
            expected.customer.make_ascii_lowercase();
            if let Some(s) = &mut expected.system {
                s.make_ascii_lowercase();
            }
            // to_authority keeps the case it was given; parsing lowercases.
            prop_assert_eq!(parse_maint_authority(&authority, domain), Ok(expected.clone()));
            prop_assert_eq!(parse_maint_authority(&authority.to_ascii_uppercase(), domain), Ok(expected));
        }

        #[test]
        fn accepted_output_is_lowercase_and_port_nonzero(s in "[a-zA-Z0-9.-]{1,40}(:[0-9]{1,5})?") {
            if let Ok(t) = parse_maint_authority(&s, D) {
                prop_assert!(t.port != 0);
                prop_assert_eq!(t.customer.to_ascii_lowercase(), t.customer);
            }
            let with_suffix = match s.split_once(':') {
                Some((h, p)) => format!("{h}.maint.example.com:{p}"),
                None => format!("{s}.maint.example.com"),
            };
            if let Ok(t) = parse_maint_authority(&with_suffix, D) {
                prop_assert!(t.port != 0);
                prop_assert_eq!(t.customer.to_ascii_lowercase(), t.customer.clone());
                prop_assert!(t.system.as_deref().is_none_or(|s| s == s.to_ascii_lowercase()));
                // Canonical form parses back to the same target.
                prop_assert_eq!(parse_maint_authority(&t.to_authority(D), D), Ok(t));
            }
        }
    }
}
