//! The quick lane over real websockets: interactive streams' bytes travel on
//! the second connection while a bulk stream's stay on the first, every
//! stream's bytes arrive whole and in order however writes move them
//! between the lanes, and losing the lane ends the session.

mod common;

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf};
use tunnel_proto::{CloseReason, MuxConfig, Role, Target};

use common::*;

const MIB: usize = 1 << 20;

/// A pipe end that counts the bytes written into it.
struct Counted {
    io: DuplexStream,
    written: Arc<AtomicUsize>,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &poll {
            self.written.fetch_add(*n, Ordering::Relaxed);
        }
        poll
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Bytes written into each lane, both directions together.
struct LaneBytes {
    main: Arc<AtomicUsize>,
    quick: Arc<AtomicUsize>,
}

/// A mux pair whose session has a quick lane, attached in the order the
/// gateway and agent use (the agent accepts before the gateway attaches).
/// Returns the quick lane's two pipe ends' shutdown handles too.
async fn laned_pair(cfg: MuxConfig) -> (Pair, LaneBytes) {
    let counted = |io, written: &Arc<AtomicUsize>| Counted {
        io,
        written: written.clone(),
    };
    let main = Arc::new(AtomicUsize::new(0));
    let quick = Arc::new(AtomicUsize::new(0));
    let (a, b) = tokio::io::duplex(PIPE);
    let (server, client) = ws_over(counted(a, &main), counted(b, &main)).await;
    let (gateway, gateway_incoming) = tunnel_proto::start(server, Role::Gateway, cfg);
    let (agent, agent_incoming) = tunnel_proto::start(client, Role::Agent, cfg);
    let (a, b) = tokio::io::duplex(PIPE);
    let (server, client) = ws_over(counted(a, &quick), counted(b, &quick)).await;
    agent.accept_quick_lane();
    gateway.attach_quick_lane().unwrap();
    gateway.run_quick_lane(server);
    agent.attach_quick_lane().unwrap();
    agent.run_quick_lane(client);
    assert!(gateway.has_quick_lane() && agent.has_quick_lane());
    let pair = Pair {
        gateway,
        gateway_incoming,
        agent,
        agent_incoming,
    };
    (pair, LaneBytes { main, quick })
}

/// The agent side: port 1 echoes, port 2 sends 16 MiB and drains.
fn serve_echo_and_bulk(pair: Pair) -> (tunnel_proto::MuxHandle, tunnel_proto::MuxHandle) {
    serve(pair.agent_incoming, |incoming| async move {
        let port = match *incoming.target() {
            Target::System { port } => port,
            other => panic!("unexpected target {other}"),
        };
        let stream = incoming.accept();
        let (mut rd, mut wr) = tokio::io::split(stream);
        if port == 1 {
            let mut buf = [0u8; 64];
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if wr.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = wr.shutdown().await;
        } else {
            let send = async {
                send_pattern(&mut wr, 7, 16 * MIB).await.unwrap();
                wr.shutdown().await.unwrap();
            };
            let (_, got) = tokio::join!(send, drain(&mut rd));
            assert_eq!(got.unwrap().0, 0);
        }
    });
    (pair.gateway, pair.agent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trips_take_the_quick_lane_beside_a_bulk_stream() {
    let (pair, lanes) = laned_pair(MuxConfig::default()).await;
    let (gateway, _agent) = serve_echo_and_bulk(pair);
    let bulk = {
        let gateway = gateway.clone();
        tokio::spawn(async move {
            let mut s = gateway.open(Target::System { port: 2 }).await.unwrap();
            s.shutdown().await.unwrap();
            drain(&mut s).await.unwrap()
        })
    };
    let mut echo = gateway.open(Target::System { port: 1 }).await.unwrap();
    const ROUNDS: usize = 300;
    within(60, "round trips beside the bulk stream", async {
        for i in 0..ROUNDS {
            let msg = [(i % 251) as u8; 64];
            echo.write_all(&msg).await.unwrap();
            let mut back = [0u8; 64];
            echo.read_exact(&mut back).await.unwrap();
            assert_eq!(back, msg, "round trip {i}");
        }
    })
    .await;
    let (len, sum) = within(60, "the bulk stream", bulk).await.unwrap();
    assert_eq!(len, 16 * MIB);
    assert_eq!(sum.0, expected_checksum(7, 16 * MIB).0);
    let quick = lanes.quick.load(Ordering::Relaxed);
    let main = lanes.main.load(Ordering::Relaxed);
    // All but the first two round trips' messages each way, plus framing
    // (9-byte frame and 6-byte websocket headers at most, per message).
    assert!(
        quick >= 2 * (ROUNDS - 2) * 64,
        "the quick lane carried {quick} bytes"
    );
    assert!(
        quick <= 2 * ROUNDS * (64 + 9 + 14) + 1024,
        "the quick lane carried {quick} bytes: more than the round trips"
    );
    assert!(main >= 16 * MIB, "the main lane carried {main} bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_whose_writes_change_size_arrive_whole() {
    let (pair, _lanes) = laned_pair(MuxConfig::default()).await;
    // Each stream's agent side echoes everything back.
    let _agent = serve(pair.agent_incoming, |incoming| async move {
        let stream = incoming.accept();
        let (mut rd, mut wr) = tokio::io::split(stream);
        tokio::io::copy(&mut rd, &mut wr).await.unwrap();
        wr.shutdown().await.unwrap();
    });
    let mut tasks = Vec::new();
    for port in 1..=4u16 {
        let gateway = pair.gateway.clone();
        tasks.push(tokio::spawn(async move {
            let stream = gateway.open(Target::System { port }).await.unwrap();
            let (mut rd, mut wr) = tokio::io::split(stream);
            // Writes of 1 byte to 40 KiB in a fixed pseudo-random mix, so
            // that the stream moves between the lanes many times.
            let mut data = vec![0u8; 4 * MIB];
            Pattern::new(u64::from(port)).fill(&mut data);
            let sent = data.clone();
            let send = async move {
                let mut seed = u64::from(port);
                let mut at = 0;
                while at < data.len() {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                    let len = match (seed >> 60) % 3 {
                        0 => 1 + (seed >> 20) as usize % 64,
                        1 => 1 + (seed >> 20) as usize % 8000,
                        _ => 8192 + (seed >> 20) as usize % 32000,
                    };
                    let end = (at + len).min(data.len());
                    wr.write_all(&data[at..end]).await.unwrap();
                    wr.flush().await.unwrap();
                    at = end;
                }
                wr.shutdown().await.unwrap();
            };
            let receive = async {
                let mut got = Vec::new();
                rd.read_to_end(&mut got).await.unwrap();
                got
            };
            let ((), got) = tokio::join!(send, receive);
            assert!(got == sent, "stream {port}: the echo differs");
        }));
    }
    within(120, "four echoed streams", async {
        for t in tasks {
            t.await.unwrap();
        }
    })
    .await;
    assert!(!pair.gateway.is_closed());
}

#[tokio::test]
async fn a_second_quick_lane_is_refused() {
    let (pair, _lanes) = laned_pair(MuxConfig::default()).await;
    assert_eq!(
        pair.gateway.attach_quick_lane(),
        Err(tunnel_proto::mux::AttachError::AlreadyAttached)
    );
    assert_eq!(
        pair.agent.attach_quick_lane(),
        Err(tunnel_proto::mux::AttachError::AlreadyAttached)
    );
}

#[tokio::test]
async fn losing_the_quick_lane_ends_the_session_at_both_ends() {
    let pair = mux_pair(MuxConfig::default()).await;
    let (server, client) = ws_pair().await;
    pair.agent.accept_quick_lane();
    pair.gateway.attach_quick_lane().unwrap();
    pair.gateway.run_quick_lane(server);
    // The agent's end of the lane goes away before it ever ran.
    drop(client);
    let reason = within(10, "the gateway notices", pair.gateway.closed()).await;
    assert_eq!(reason, CloseReason::ConnectionLost);
    let reason = within(10, "the agent hears of it", pair.agent.closed()).await;
    assert!(
        matches!(
            reason,
            CloseReason::PeerGoAway { .. } | CloseReason::ConnectionLost
        ),
        "{reason:?}"
    );
}

#[tokio::test]
async fn a_goaway_s_reason_wins_over_the_quick_lane_closing_with_it() {
    for _ in 0..20 {
        let (pair, _lanes) = laned_pair(MuxConfig::default()).await;
        pair.gateway.close(0x100, "replaced by a newer connection");
        let reason = within(10, "the agent hears of it", pair.agent.closed()).await;
        assert_eq!(
            reason,
            CloseReason::PeerGoAway {
                code: 0x100,
                reason: "replaced by a newer connection".into()
            }
        );
    }
}

/// A text message after the handshake ends the session, on either lane,
/// and the reason names the lane it came on.
#[tokio::test]
async fn a_text_message_ends_the_session_naming_its_lane() {
    // On the main connection: the agent's end is a bare websocket.
    let (server, mut client) = ws_pair().await;
    let (gateway, _incoming) = tunnel_proto::start(server, Role::Gateway, MuxConfig::default());
    client.send_text("hello?".into()).await.unwrap();
    let reason = within(10, "the gateway refuses it", gateway.closed()).await;
    assert_eq!(
        reason,
        CloseReason::ProtocolError("text message after the handshake".into())
    );

    // On the quick lane: the session's main connection is a real pair.
    let pair = mux_pair(MuxConfig::default()).await;
    let (server, mut client) = ws_pair().await;
    pair.agent.accept_quick_lane();
    pair.gateway.attach_quick_lane().unwrap();
    pair.gateway.run_quick_lane(server);
    client.send_text("hello?".into()).await.unwrap();
    let reason = within(10, "the gateway refuses it", pair.gateway.closed()).await;
    assert_eq!(
        reason,
        CloseReason::ProtocolError("quick lane: text message after the handshake".into())
    );
    let reason = within(10, "the agent hears of it", pair.agent.closed()).await;
    assert!(
        matches!(reason, CloseReason::PeerGoAway { .. }),
        "{reason:?}"
    );
}
