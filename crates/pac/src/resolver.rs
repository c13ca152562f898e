//! Name resolution for `dnsResolve`, `isResolvable`, `isInNet` and
//! `myIpAddress`, behind a trait.
//!
//! The evaluator itself never touches the network: every lookup goes to the
//! caller's [`Resolver`]. Tests use [`StaticResolver`] and get the same answer
//! every run; the CLI uses [`SystemResolver`], which asks the operating system
//! with a time limit, so that a PAC that resolves a dead name still ends.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, ToSocketAddrs};
use std::sync::mpsc;
use std::time::Duration;

/// Answers the PAC's name lookups. Like browsers, PAC functions see IPv4
/// only (`dnsResolve` returns a dotted quad).
pub trait Resolver: Send + Sync {
    /// The first IPv4 address of `host`, or `None` when it does not resolve.
    /// IP literals never reach this: the evaluator answers them itself.
    fn resolve(&self, host: &str) -> Option<Ipv4Addr>;

    /// The address `myIpAddress()` returns.
    fn my_ip_address(&self) -> Ipv4Addr {
        Ipv4Addr::LOCALHOST
    }
}

/// Resolves nothing; `myIpAddress()` is 127.0.0.1. The default.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoResolver;

impl Resolver for NoResolver {
    fn resolve(&self, _host: &str) -> Option<Ipv4Addr> {
        None
    }
}

/// A fixed table of names (case-insensitive) and a fixed `myIpAddress()`.
#[derive(Debug, Clone)]
pub struct StaticResolver {
    names: HashMap<String, Ipv4Addr>,
    my_ip: Ipv4Addr,
}

impl StaticResolver {
    pub fn new(my_ip: Ipv4Addr) -> Self {
        StaticResolver {
            names: HashMap::new(),
            my_ip,
        }
    }

    /// Adds `name` → `ip`.
    pub fn with(mut self, name: &str, ip: Ipv4Addr) -> Self {
        self.names.insert(name.to_ascii_lowercase(), ip);
        self
    }
}

impl Resolver for StaticResolver {
    fn resolve(&self, host: &str) -> Option<Ipv4Addr> {
        self.names.get(&host.to_ascii_lowercase()).copied()
    }

    fn my_ip_address(&self) -> Ipv4Addr {
        self.my_ip
    }
}

/// The operating system's resolver (`getaddrinfo`), each lookup bounded by
/// `timeout`. A lookup still running at its time-out is left to finish on
/// its own thread and counts as "does not resolve".
#[derive(Debug, Clone)]
pub struct SystemResolver {
    timeout: Duration,
    my_ip: Ipv4Addr,
}

impl SystemResolver {
    /// `myIpAddress()` is the first non-loopback IPv4 address of this
    /// machine's host name, else 127.0.0.1 (Firefox does the same).
    pub fn new(timeout: Duration) -> Self {
        let mut r = SystemResolver {
            timeout,
            my_ip: Ipv4Addr::LOCALHOST,
        };
        if let Some(name) = host_name() {
            if let Some(ip) = lookup(&name, timeout, true) {
                r.my_ip = ip;
            }
        }
        r
    }
}

impl Resolver for SystemResolver {
    fn resolve(&self, host: &str) -> Option<Ipv4Addr> {
        lookup(host, self.timeout, false)
    }

    fn my_ip_address(&self) -> Ipv4Addr {
        self.my_ip
    }
}

fn host_name() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_owned())
}

fn lookup(host: &str, timeout: Duration, skip_loopback: bool) -> Option<Ipv4Addr> {
    if host.is_empty() || host.len() > 253 {
        return None;
    }
    let (tx, rx) = mpsc::channel();
    let name = host.to_owned();
    std::thread::Builder::new()
        .name("pac-dns".into())
        .spawn(move || {
            let found = (name.as_str(), 0u16)
                .to_socket_addrs()
                .ok()
                .and_then(|addrs| {
                    addrs
                        .filter_map(|a| match a.ip() {
                            IpAddr::V4(v4) if !(skip_loopback && v4.is_loopback()) => Some(v4),
                            _ => None,
                        })
                        .next()
                });
            let _ = tx.send(found);
        })
        .ok()?;
    rx.recv_timeout(timeout).ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_resolver_ignores_case() {
        let r = StaticResolver::new(Ipv4Addr::new(10, 1, 2, 3))
            .with("Intranet.Corp.Example", Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(
            r.resolve("intranet.corp.example"),
            Some(Ipv4Addr::new(10, 0, 0, 1))
        );
        assert_eq!(r.resolve("other"), None);
        assert_eq!(r.my_ip_address(), Ipv4Addr::new(10, 1, 2, 3));
    }

    #[test]
    fn system_resolver_answers_localhost_without_the_network() {
        let r = SystemResolver::new(Duration::from_secs(2));
        assert_eq!(r.resolve("localhost"), Some(Ipv4Addr::LOCALHOST));
        assert_eq!(r.resolve(""), None);
    }
}
