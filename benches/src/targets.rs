//! In-process target servers behind every path: one port speaks a tiny protocol so
//! that one tunnel entry serves every measurement.
//!
//! The client sends a 9-byte request: an op byte and a big-endian u64 `n`.
//! - `S` (sink): the server reads `n` bytes, then answers one byte `K`;
//! - `R` (source): the server writes `n` bytes;
//! - `E` (echo): the server echoes everything until EOF (`n` is ignored).

use std::net::SocketAddr;

use anyhow::Result;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub const SINK: u8 = b'S';
pub const SOURCE: u8 = b'R';
pub const ECHO: u8 = b'E';

/// The request header for `op` and `n`.
pub fn request(op: u8, n: u64) -> [u8; 9] {
    let mut h = [0u8; 9];
    h[0] = op;
    h[1..].copy_from_slice(&n.to_be_bytes());
    h
}

/// Starts the target server on `addr` and returns its bound address.
pub async fn start(addr: SocketAddr) -> Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let _ = serve(sock).await;
            });
        }
    });
    Ok(local)
}

async fn serve(mut sock: TcpStream) -> std::io::Result<()> {
    sock.set_nodelay(true)?;
    let mut head = [0u8; 9];
    sock.read_exact(&mut head).await?;
    let n = u64::from_be_bytes(head[1..].try_into().expect("8 bytes"));
    let mut buf = vec![0u8; 256 * 1024];
    match head[0] {
        SINK => {
            let mut left = n;
            while left > 0 {
                let r = sock.read(&mut buf).await?;
                if r == 0 {
                    return Ok(());
                }
                left = left.saturating_sub(r as u64);
            }
            sock.write_all(b"K").await?;
            let _ = sock.read(&mut buf).await;
        }
        SOURCE => {
            buf.fill(0x5a);
            let mut left = n;
            while left > 0 {
                let w = left.min(buf.len() as u64) as usize;
                sock.write_all(&buf[..w]).await?;
                left -= w as u64;
            }
            sock.shutdown().await?;
            let _ = sock.read(&mut buf).await;
        }
        ECHO => loop {
            let r = sock.read(&mut buf).await?;
            if r == 0 {
                return Ok(());
            }
            sock.write_all(&buf[..r]).await?;
        },
        _ => {}
    }
    Ok(())
}
