//! Socket options of the one TCP connection that carries a whole site.
//!
//! Every tunnel of a site shares its websocket, so bytes queued in that
//! socket delay every other tunnel's bytes behind them: a bulk download on
//! the same site turned a 64-byte round trip from 0.2 ms into 5 ms. Limiting
//! the *unsent* part of the kernel's send queue (`TCP_NOTSENT_LOWAT`) keeps
//! that queue short while still letting the in-flight part grow with the
//! link's bandwidth-delay product, so distant sites keep their throughput.
//! The multiplexer keeps the rest of the queue in its own, fair, hands.

use tokio::net::TcpStream;

/// Unsent bytes the kernel may hold for a site's connection.
pub const NOTSENT_LOWAT: u32 = 128 * 1024;

/// Applies the options; failures only cost latency, so they are logged.
pub fn tune(tcp: &TcpStream) {
    let _ = tcp.set_nodelay(true);
    if let Err(e) = socket2::SockRef::from(tcp).set_tcp_notsent_lowat(NOTSENT_LOWAT) {
        tracing::debug!(error = %e, "TCP_NOTSENT_LOWAT not available");
    }
}
