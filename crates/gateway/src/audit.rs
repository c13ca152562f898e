//! The audit trail: one structured event per tunnel when it ends, and one per
//! refused request, so that an operator can answer "who went where, from
//! where, when, how much, and how did it end" from the log alone.
//!
//! Events go to the `comgate::audit` tracing target; nothing secret is ever a
//! field (the account is its username, never its password).

use std::net::SocketAddr;
use std::time::Duration;

/// A tunnel that carried traffic.
#[derive(Debug)]
pub struct TunnelRecord<'a> {
    pub account: &'a str,
    pub source: SocketAddr,
    pub customer: &'a str,
    pub system: &'a str,
    pub target: &'a str,
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub duration: Duration,
    pub outcome: &'a str,
}

pub fn tunnel_closed(r: &TunnelRecord<'_>) {
    tracing::info!(
        target: "comgate::audit",
        account = r.account,
        source = %r.source,
        customer = r.customer,
        system = r.system,
        target = r.target,
        bytes_up = r.bytes_up,
        bytes_down = r.bytes_down,
        duration_ms = r.duration.as_millis() as u64,
        outcome = r.outcome,
        "tunnel closed"
    );
}

/// A CONNECT that was turned away.
pub fn refused(
    source: SocketAddr,
    account: Option<&str>,
    target: &str,
    status: u16,
    outcome: &str,
) {
    tracing::info!(
        target: "comgate::audit",
        account = account.unwrap_or("-"),
        source = %source,
        target = target,
        status,
        outcome,
        "tunnel refused"
    );
}
