//! The harness: one module per job. Tests import from here.

pub mod audit;
pub mod central;
pub mod certs;
pub mod chromium;
pub mod comgate;
pub mod connect;
pub mod curl;
pub mod fake_gateway;
pub mod files;
pub mod h2front;
pub mod harness;
pub mod https_target;
pub mod net;
pub mod ports;
pub mod process;
pub mod proxytunnel;
pub mod raw_agent;
pub mod reading;
pub mod site;
pub mod ssh;
pub mod sshd;
pub mod system_web;
pub mod targets;
pub mod tinyproxy;
pub mod tools;

pub use harness::{run, Harness};

use std::time::Duration;

/// The domain every test gateway is configured with.
pub const DOMAIN: &str = "example.test";

/// The proxy host name users type (`maint.<domain>`); the generated certificate names it.
pub const MAINT_HOST: &str = "maint.example.test";

/// Shorthand for `Duration::from_secs`.
pub const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Shorthand for `Duration::from_millis`.
pub const fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// A maintenance address: `<customer>[-<system>][-<ip>].maint.<domain>` (no port).
pub fn maint_name(customer: &str, system: Option<&str>, ip: Option<&str>) -> String {
    let mut name = customer.to_string();
    if let Some(s) = system {
        name.push('-');
        name.push_str(s);
    }
    if let Some(ip) = ip {
        name.push('-');
        name.push_str(ip);
    }
    format!("{name}.{MAINT_HOST}")
}
