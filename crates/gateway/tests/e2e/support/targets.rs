//! In-process TCP targets on 127.0.0.x: echo, an endless source, a server that speaks
//! first, and a listener that only counts who dialed it. Each counts accepted
//! connections; dropping one stops it and closes its connections.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// A running in-process target.
pub struct Target {
    pub addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    written: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Target {
    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Bytes the target has written so far (all connections).
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::SeqCst)
    }

    pub fn ip(&self) -> String {
        self.addr.ip().to_string()
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every connection.
        self.task.abort();
    }
}

/// A loopback address 127.0.0.`last`.
pub fn lo(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, last)
}

async fn serve<F, Fut>(addr: SocketAddr, handler: F) -> Result<Target>
where
    F: Fn(TcpStream, Arc<AtomicU64>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding in-process target on {addr}"))?;
    let addr = listener.local_addr()?;
    let accepted = Arc::new(AtomicUsize::new(0));
    let written = Arc::new(AtomicU64::new(0));
    let (acc, wr) = (accepted.clone(), written.clone());
    let task = tokio::spawn(async move {
        let mut conns = JoinSet::new();
        loop {
            tokio::select! {
                r = listener.accept() => {
                    let Ok((sock, _)) = r else { continue };
                    acc.fetch_add(1, Ordering::SeqCst);
                    let _ = sock.set_nodelay(true);
                    conns.spawn(handler(sock, wr.clone()));
                }
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        }
    });
    Ok(Target {
        addr,
        accepted,
        written,
        task,
    })
}

/// Echoes every byte back; closes its write side after the client's EOF.
pub async fn echo(ip: Ipv4Addr, port: u16) -> Result<Target> {
    serve(
        SocketAddr::from((ip, port)),
        |mut sock, written| async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match sock.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                if sock.write_all(&buf[..n]).await.is_err() {
                    return;
                }
                written.fetch_add(n as u64, Ordering::SeqCst);
            }
            let _ = sock.shutdown().await;
        },
    )
    .await
}

/// Writes forever (never reads), as fast as the peer takes it.
pub async fn endless(ip: Ipv4Addr, port: u16) -> Result<Target> {
    serve(
        SocketAddr::from((ip, port)),
        |mut sock, written| async move {
            let chunk = vec![0x5au8; 64 * 1024];
            while sock.write_all(&chunk).await.is_ok() {
                written.fetch_add(chunk.len() as u64, Ordering::SeqCst);
            }
        },
    )
    .await
}

/// Sends `greeting` as soon as a client connects, then echoes.
pub async fn greeter(ip: Ipv4Addr, port: u16, greeting: &'static [u8]) -> Result<Target> {
    serve(
        SocketAddr::from((ip, port)),
        move |mut sock, written| async move {
            if sock.write_all(greeting).await.is_err() {
                return;
            }
            written.fetch_add(greeting.len() as u64, Ordering::SeqCst);
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                let n = match sock.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                if sock.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        },
    )
    .await
}

/// Accepts and holds connections, sending nothing: only [`Target::accepted`] matters.
pub async fn counting(ip: Ipv4Addr, port: u16) -> Result<Target> {
    serve(SocketAddr::from((ip, port)), |mut sock, _| async move {
        let mut buf = [0u8; 1024];
        while matches!(sock.read(&mut buf).await, Ok(n) if n > 0) {}
    })
    .await
}
