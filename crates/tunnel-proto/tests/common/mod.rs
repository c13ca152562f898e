//! Helpers for the websocket tests: real websockets (tokio-tungstenite's
//! upgrade, then `tunnel_proto::ws`) over in-memory duplex pipes,
//! deterministic data and checksums.

#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::task::JoinHandle;
use tunnel_proto::ws::{self, WsConn};
use tunnel_proto::{Incoming, IncomingEvent, IncomingStream, MuxConfig, MuxHandle, Role};

pub const PIPE: usize = 64 * 1024;

/// A connected (gateway = server, agent = client) websocket pair.
pub async fn ws_over<S>(server_io: S, client_io: S) -> (WsConn<S>, WsConn<S>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let server =
        tokio::spawn(async move { ws::accept(server_io).await.expect("server handshake") });
    let client = ws::connect("ws://gateway.test/agent", client_io)
        .await
        .expect("client handshake");
    (server.await.expect("server task"), client)
}

pub async fn ws_pair() -> (WsConn<DuplexStream>, WsConn<DuplexStream>) {
    let (a, b) = tokio::io::duplex(PIPE);
    ws_over(a, b).await
}

pub struct Pair {
    pub gateway: MuxHandle,
    pub gateway_incoming: Incoming,
    pub agent: MuxHandle,
    pub agent_incoming: Incoming,
}

pub async fn mux_pair(cfg: MuxConfig) -> Pair {
    let (server, client) = ws_pair().await;
    let (gateway, gateway_incoming) = tunnel_proto::start(server, Role::Gateway, cfg);
    let (agent, agent_incoming) = tunnel_proto::start(client, Role::Agent, cfg);
    Pair {
        gateway,
        gateway_incoming,
        agent,
        agent_incoming,
    }
}

/// Runs `handler` on every stream the peer opens.
pub fn serve<F, Fut>(mut incoming: Incoming, handler: F) -> JoinHandle<()>
where
    F: Fn(IncomingStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        while let Some(event) = incoming.next().await {
            if let IncomingEvent::Stream(stream) = event {
                tokio::spawn(handler(stream));
            }
        }
    })
}

/// Deterministic pseudo-random bytes (xorshift64).
pub struct Pattern(u64);

impl Pattern {
    pub fn new(seed: u64) -> Self {
        Pattern(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            chunk.copy_from_slice(&self.0.to_le_bytes()[..chunk.len()]);
        }
    }
}

/// FNV-1a, 64 bit.
#[derive(Clone, Copy)]
pub struct Checksum(pub u64);

impl Default for Checksum {
    fn default() -> Self {
        Checksum(0xcbf2_9ce4_8422_2325)
    }
}

impl Checksum {
    pub fn update(&mut self, data: &[u8]) {
        for b in data {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x100_0000_01b3);
        }
    }
}

pub fn expected_checksum(seed: u64, len: usize) -> Checksum {
    let mut pattern = Pattern::new(seed);
    let mut sum = Checksum::default();
    let mut buf = vec![0u8; 64 * 1024];
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len());
        pattern.fill(&mut buf[..n]);
        sum.update(&buf[..n]);
        left -= n;
    }
    sum
}

/// Writes `len` pattern bytes seeded with `seed`.
pub async fn send_pattern<W: AsyncWrite + Unpin>(
    w: &mut W,
    seed: u64,
    len: usize,
) -> std::io::Result<()> {
    let mut pattern = Pattern::new(seed);
    let mut buf = vec![0u8; 64 * 1024];
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len());
        pattern.fill(&mut buf[..n]);
        w.write_all(&buf[..n]).await?;
        left -= n;
    }
    Ok(())
}

/// Reads to EOF; returns (bytes, checksum).
pub async fn drain<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<(usize, Checksum)> {
    let mut buf = vec![0u8; 32 * 1024];
    let mut sum = Checksum::default();
    let mut total = 0;
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            return Ok((total, sum));
        }
        sum.update(&buf[..n]);
        total += n;
    }
}

/// Fails the test instead of hanging it.
pub async fn within<T>(secs: u64, what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(secs), fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: did not finish within {secs} s"),
    }
}

/// Polls `cond` until it holds.
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    within(10, what, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}

/// A hand-driven tungstenite websocket on the gateway side (for tests that
/// play a misbehaving or counting gateway) and ours on the agent side.
pub async fn raw_gateway_pair() -> (
    tokio_tungstenite::WebSocketStream<DuplexStream>,
    WsConn<DuplexStream>,
) {
    let (a, b) = tokio::io::duplex(PIPE);
    let server = tokio::spawn(async move { tokio_tungstenite::accept_async(a).await.unwrap() });
    let client = ws::connect("ws://gateway.test/agent", b).await.unwrap();
    (server.await.unwrap(), client)
}

/// Ours on the gateway side, a hand-driven tungstenite agent.
pub async fn raw_agent_pair() -> (
    WsConn<DuplexStream>,
    tokio_tungstenite::WebSocketStream<DuplexStream>,
) {
    let (a, b) = tokio::io::duplex(PIPE);
    let server = tokio::spawn(async move { ws::accept(a).await.unwrap() });
    let (client, _) = tokio_tungstenite::client_async("ws://gateway.test/agent", b)
        .await
        .unwrap();
    (server.await.unwrap(), client)
}
