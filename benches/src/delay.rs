//! The distant-site link: a user-space delay relay (`comgate-bench delay ...`), run
//! as its own process. The kernel here has no netem and the loopback device must not
//! be shaped, so the delay lives in user space.
//!
//! For each accepted TCP connection it dials the upstream and forwards both
//! directions; every chunk it reads is stamped with its arrival time and written out
//! no earlier than that time + `--delay-ms` (a timestamped queue per direction). There
//! is no rate cap. Memory is bounded like a real link's buffer: at most
//! `--buffer-mib` bytes per direction are in flight (read but not yet written); when
//! that is reached the relay stops reading, so the sender's TCP window closes
//! (backpressure). With the default 16 MiB and 10 ms the buffer alone would cap a
//! direction at about 1.7 GB/s, above every path measured here.
//!
//! Both sockets end at the relay, so the kernel's TCP on either side sees a loopback
//! round trip: what the delay exposes is the application's own flow control (stream
//! and connection windows, acknowledgements, window updates), not TCP congestion
//! control or socket-buffer autotuning.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;

/// Largest read per chunk.
const CHUNK: usize = 128 * 1024;

#[derive(clap::Args, Debug)]
pub struct DelayArgs {
    /// Address to accept TCP connections on.
    #[arg(long)]
    pub listen: SocketAddr,
    /// Where to forward each connection.
    #[arg(long)]
    pub upstream: SocketAddr,
    /// Delay added in each direction, in milliseconds.
    #[arg(long, default_value_t = 10)]
    pub delay_ms: u64,
    /// Bytes in flight per direction before the relay stops reading, in MiB.
    #[arg(long, default_value_t = 16)]
    pub buffer_mib: usize,
}

pub async fn run(args: DelayArgs) -> Result<()> {
    let delay = Duration::from_millis(args.delay_ms);
    let cap = args.buffer_mib.max(1) << 20;
    let listener = TcpListener::bind(args.listen).await?;
    loop {
        let (down, _) = listener.accept().await?;
        let upstream = args.upstream;
        tokio::spawn(async move {
            let Ok(up) = TcpStream::connect(upstream).await else {
                return;
            };
            let _ = down.set_nodelay(true);
            let _ = up.set_nodelay(true);
            let (dr, dw) = down.into_split();
            let (ur, uw) = up.into_split();
            direction(dr, uw, delay, cap);
            direction(ur, dw, delay, cap);
        });
    }
}

/// One direction: a reader task stamps chunks, a writer task releases them when due.
/// An empty chunk is the end of the stream (it is delayed like data).
fn direction(mut r: OwnedReadHalf, mut w: OwnedWriteHalf, delay: Duration, cap: usize) {
    let budget = Arc::new(Semaphore::new(cap));
    // Unbounded as a channel, bounded in bytes by `budget`.
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Bytes)>();
    let reader_budget = budget.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; CHUNK];
        loop {
            // Room for a whole chunk first: a full link stops reading.
            let Ok(permit) = reader_budget.acquire_many(CHUNK as u32).await else {
                return;
            };
            permit.forget();
            let n = r.read(&mut buf).await.unwrap_or(0);
            reader_budget.add_permits(CHUNK - n);
            let chunk = Bytes::copy_from_slice(&buf[..n]);
            if tx.send((Instant::now() + delay, chunk)).is_err() || n == 0 {
                return;
            }
        }
    });
    tokio::spawn(async move {
        while let Some((due, chunk)) = rx.recv().await {
            if due > Instant::now() {
                tokio::time::sleep_until(due).await;
            }
            if chunk.is_empty() {
                let _ = w.shutdown().await;
                return;
            }
            if w.write_all(&chunk).await.is_err() {
                // The reader ends at its next read (the peer closes) or send.
                budget.close();
                return;
            }
            budget.add_permits(chunk.len());
        }
        let _ = w.shutdown().await;
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn delays_each_direction_and_forwards_everything() {
        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream = echo.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = echo.accept().await.unwrap();
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = s.read(&mut buf).await.unwrap();
                if n == 0 {
                    return;
                }
                s.write_all(&buf[..n]).await.unwrap();
            }
        });
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let listen = probe.local_addr().unwrap();
        drop(probe);
        tokio::spawn(run(DelayArgs {
            listen,
            upstream,
            delay_ms: 20,
            buffer_mib: 1,
        }));
        let mut c = loop {
            if let Ok(c) = TcpStream::connect(listen).await {
                break c;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let t = std::time::Instant::now();
        c.write_all(b"ping").await.unwrap();
        let mut b = [0u8; 4];
        c.read_exact(&mut b).await.unwrap();
        assert_eq!(&b, b"ping");
        assert!(
            t.elapsed() >= Duration::from_millis(40),
            "{:?}",
            t.elapsed()
        );
        // More than the 1 MiB buffer, in both directions at once.
        let data: Vec<u8> = (0..3 << 20).map(|i| (i % 251) as u8).collect();
        let (mut rd, mut wr) = c.into_split();
        let sent = data.clone();
        let w = tokio::spawn(async move { wr.write_all(&sent).await.unwrap() });
        let mut back = vec![0u8; data.len()];
        rd.read_exact(&mut back).await.unwrap();
        w.await.unwrap();
        assert!(back == data);
    }
}
