//! Free TCP ports chosen at run time.
//!
//! Ports come from 20000-31999, below Linux's ephemeral range (32768-60999), so that
//! outgoing connections of parallel tests cannot grab a port between our probe and the
//! program's bind (or while comgate restarts on the same ports). Ports handed out once
//! are never handed out again by this process.

use std::collections::HashSet;
use std::net::TcpListener;
use std::sync::{LazyLock, Mutex};

const LOW: u16 = 20000;
const HIGH: u16 = 32000;

static HANDED_OUT: LazyLock<Mutex<HashSet<u16>>> = LazyLock::new(|| Mutex::new(HashSet::new()));

/// A port nothing listens on, on any local address, right now.
pub fn free_port() -> u16 {
    let mut taken = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = rand::random_range(LOW..HIGH);
        if taken.contains(&port) {
            continue;
        }
        // 0.0.0.0 conflicts with a listener on any 127.0.0.x address, so this is the
        // strictest probe; 127.0.0.1 is checked too in case of SO_REUSEADDR leftovers.
        let free = TcpListener::bind(("0.0.0.0", port)).is_ok()
            && TcpListener::bind(("127.0.0.1", port)).is_ok();
        if free {
            taken.insert(port);
            return port;
        }
    }
}
