//! Waiting for listeners without disturbing them.
//!
//! `proxytunnel --standalone` opens a real tunnel for every connection it accepts, so
//! readiness is read from `/proc/net/tcp` (a LISTEN socket owned by the process) rather
//! than probed with a connect.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use super::process::Proc;

const LISTEN_STATE: &str = "0A";

/// Socket inodes of LISTEN sockets on `port` (any address, IPv4 or IPv6).
fn listening_inodes(port: u16) -> Vec<String> {
    let hex_port = format!("{port:04X}");
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() < 10 {
                continue;
            }
            let local_port = cols[1].rsplit(':').next().unwrap_or("");
            if local_port == hex_port && cols[3] == LISTEN_STATE {
                inodes.push(cols[9].to_string());
            }
        }
    }
    inodes
}

/// Whether process `pid` itself holds a socket listening on `port`.
pub fn pid_listens(pid: u32, port: u16) -> bool {
    let inodes = listening_inodes(port);
    if inodes.is_empty() {
        return false;
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path()).is_ok_and(|target| {
            let target = target.to_string_lossy();
            inodes
                .iter()
                .any(|ino| target == format!("socket:[{ino}]").as_str())
        })
    })
}

/// Waits until `proc` listens on `port`; fails early (with the log's tail) if it exits.
pub async fn wait_proc_listens(proc: &mut Proc, port: u16, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if !proc.is_running() {
            bail!(
                "{} exited before listening on port {port}:\n{}",
                proc.name(),
                proc.log_tail(15)
            );
        }
        if pid_listens(proc.pid(), port) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "{} not listening on port {port} after {timeout:?}:\n{}",
                proc.name(),
                proc.log_tail(15)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether a TCP connect to `addr` succeeds now.
pub async fn accepts(addr: SocketAddr) -> bool {
    matches!(
        tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr)).await,
        Ok(Ok(_))
    )
}
