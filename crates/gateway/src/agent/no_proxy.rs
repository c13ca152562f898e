//! `NO_PROXY`: which hosts the agent reaches without the site's proxy.
//!
//! Sites that set `HTTPS_PROXY` for everything often list internal or
//! directly reachable hosts in `NO_PROXY`, and expect every tool to honour
//! it the way curl does. The rules here are curl's: comma-separated
//! entries, `*` for every host, a domain matches itself and its subdomains
//! (a leading `.` or `*.` changes nothing), an IP address matches itself, a
//! CIDR block matches the addresses in it; a `:port` suffix is ignored.

use std::net::IpAddr;

/// Whether `list` (the value of `NO_PROXY`) says to reach `host` directly.
pub fn bypasses(list: &str, host: &str) -> bool {
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let host_ip = host.parse::<IpAddr>().ok();
    list.split(',')
        .map(|e| e.trim().to_ascii_lowercase())
        .filter(|e| !e.is_empty())
        .any(|entry| match host_ip {
            _ if entry == "*" => true,
            Some(ip) => ip_matches(&entry, ip),
            None => domain_matches(&entry, &host),
        })
}

fn ip_matches(entry: &str, ip: IpAddr) -> bool {
    let entry = entry.trim_start_matches('[');
    let (addr, prefix) = match entry.split_once('/') {
        Some((addr, prefix)) => match prefix.parse::<u8>() {
            Ok(p) => (addr, Some(p)),
            Err(_) => return false,
        },
        None => (entry.split(']').next().unwrap_or(entry), None),
    };
    let addr = match addr.parse::<IpAddr>() {
        Ok(a) => a,
        // `10.0.0.1:8080`: the port is ignored.
        Err(_) => match addr.rsplit_once(':').map(|(a, _)| a.parse::<IpAddr>()) {
            Some(Ok(a)) => a,
            _ => return false,
        },
    };
    match (addr, ip, prefix) {
        (_, _, None) => addr == ip,
        (IpAddr::V4(net), IpAddr::V4(ip), Some(p)) if p <= 32 => {
            let mask = u32::MAX.checked_shl(32 - u32::from(p)).unwrap_or(0);
            u32::from(net) & mask == u32::from(ip) & mask
        }
        (IpAddr::V6(net), IpAddr::V6(ip), Some(p)) if p <= 128 => {
            let mask = u128::MAX.checked_shl(128 - u32::from(p)).unwrap_or(0);
            u128::from(net) & mask == u128::from(ip) & mask
        }
        _ => false,
    }
}

fn domain_matches(entry: &str, host: &str) -> bool {
    let entry = entry.split(':').next().unwrap_or(entry);
    let entry = entry
        .trim_start_matches("*.")
        .trim_start_matches('.')
        .trim_end_matches('.');
    !entry.is_empty()
        && (host == entry
            || host
                .strip_suffix(entry)
                .is_some_and(|rest| rest.ends_with('.')))
}

#[cfg(test)]
mod tests {
    use super::bypasses;

    #[test]
    fn domains_match_themselves_and_their_subdomains_only() {
        let list = "localhost, .corp.example,*.lan ,Example.COM:443";
        for host in [
            "localhost",
            "corp.example",
            "gw.corp.example",
            "a.b.corp.example",
            "site.lan",
            "lan",
            "example.com",
            "comgate.example.com.",
        ] {
            assert!(bypasses(list, host), "{host} should bypass");
        }
        for host in [
            "notcorp.example",
            "example.com.evil",
            "myexample.com",
            "lan.example",
            "10.0.0.1",
        ] {
            assert!(!bypasses(list, host), "{host} should use the proxy");
        }
    }

    #[test]
    fn addresses_and_cidr_blocks_match() {
        let list = "10.0.0.0/8, 192.168.1.7, 192.168.2.9:8443, fd00::/8, [::1]";
        for host in ["10.1.2.3", "192.168.1.7", "192.168.2.9", "fd12::1", "[::1]"] {
            assert!(bypasses(list, host), "{host} should bypass");
        }
        for host in ["11.0.0.1", "192.168.1.8", "fe80::1", "gw.example"] {
            assert!(!bypasses(list, host), "{host} should use the proxy");
        }
        assert!(bypasses("0.0.0.0/0", "203.0.113.5"));
        assert!(!bypasses("10.0.0.0/99, 10.0.0.0/x", "10.0.0.1"));
    }

    #[test]
    fn star_matches_everything_and_empty_matches_nothing() {
        assert!(bypasses("*", "comgate.example.com"));
        assert!(bypasses("foo, *", "198.51.100.1"));
        assert!(!bypasses("", "comgate.example.com"));
        assert!(!bypasses(" , ,", "comgate.example.com"));
    }
}
