//! End-to-end tests of the async driver over real websockets on in-memory
//! pipes: throughput and integrity, stalled streams, half-close, refusal,
//! session loss, heartbeats and a peer that breaks flow control.

mod common;

use std::collections::HashMap;
use std::io::ErrorKind;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio_tungstenite::tungstenite::Message;
use tunnel_proto::frame::{self, Frame};
use tunnel_proto::{
    codes, CloseReason, IncomingEvent, MuxConfig, OpenError, Role, SiteSettings, Target,
};

use common::*;

const MIB: usize = 1 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_streams_move_8_mib_each_way_byte_exact() {
    let pair = mux_pair(MuxConfig::default()).await;
    // The agent side reads everything while sending its own 8 MiB back.
    let _agent = serve(pair.agent_incoming, |incoming| async move {
        let Target::System { port } = *incoming.target() else {
            panic!("unexpected target")
        };
        let stream = incoming.accept();
        let (mut rd, mut wr) = tokio::io::split(stream);
        let send = async {
            send_pattern(&mut wr, 1000 + u64::from(port), 8 * MIB)
                .await
                .unwrap();
            wr.shutdown().await.unwrap();
        };
        let (_, received) = tokio::join!(send, drain(&mut rd));
        let (len, sum) = received.unwrap();
        assert_eq!(len, 8 * MIB);
        assert_eq!(
            sum.0,
            expected_checksum(u64::from(port), 8 * MIB).0,
            "agent received corrupt data on {port}"
        );
    });

    let mut tasks = Vec::new();
    for port in 1..=8u16 {
        let gateway = pair.gateway.clone();
        tasks.push(tokio::spawn(async move {
            let stream = gateway.open(Target::System { port }).await.expect("open");
            let (mut rd, mut wr) = tokio::io::split(stream);
            let send = async {
                send_pattern(&mut wr, u64::from(port), 8 * MIB)
                    .await
                    .unwrap();
                wr.shutdown().await.unwrap();
            };
            let (_, received) = tokio::join!(send, drain(&mut rd));
            let (len, sum) = received.unwrap();
            assert_eq!(len, 8 * MIB);
            assert_eq!(sum.0, expected_checksum(1000 + u64::from(port), 8 * MIB).0);
        }));
    }
    within(120, "8 x 8 MiB both ways", async {
        for t in tasks {
            t.await.expect("stream task");
        }
    })
    .await;
    let gateway = pair.gateway.clone();
    eventually("streams removed", || gateway.stream_count() == 0).await;
    assert!(!pair.gateway.is_closed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_stream_does_not_stop_a_parallel_stream() {
    let cfg = MuxConfig::default();
    let pair = mux_pair(cfg).await;
    let (stalled_tx, stalled_rx) = tokio::sync::oneshot::channel();
    let stalled_tx = std::sync::Mutex::new(Some(stalled_tx));
    let _agent = serve(pair.agent_incoming, move |incoming| {
        let stalled = match incoming.target() {
            Target::System { port: 1 } => stalled_tx.lock().unwrap().take(),
            _ => None,
        };
        async move {
            let mut stream = incoming.accept();
            match stalled {
                // Never read: keep the stream open and idle.
                Some(tx) => {
                    let _ = tx.send(stream.id());
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
                None => {
                    let (len, sum) = drain(&mut stream).await.unwrap();
                    stream.write_all(&(len as u64).to_be_bytes()).await.unwrap();
                    stream.write_all(&sum.0.to_be_bytes()).await.unwrap();
                    stream.shutdown().await.unwrap();
                }
            }
        }
    });

    let mut stalled = pair.gateway.open(Target::System { port: 1 }).await.unwrap();
    let stalled_id = within(5, "stalled id", stalled_rx).await.unwrap();
    let writer = tokio::spawn(async move {
        // Blocks for good once the stream window is used up.
        let _ = send_pattern(&mut stalled, 7, 64 * MIB).await;
    });

    let mut busy = pair.gateway.open(Target::System { port: 2 }).await.unwrap();
    within(120, "32 MiB beside a stalled stream", async {
        send_pattern(&mut busy, 2, 32 * MIB).await.unwrap();
        busy.shutdown().await.unwrap();
        let mut reply = [0u8; 16];
        busy.read_exact(&mut reply).await.unwrap();
        assert_eq!(
            u64::from_be_bytes(reply[..8].try_into().unwrap()),
            32 * MIB as u64
        );
        assert_eq!(
            u64::from_be_bytes(reply[8..].try_into().unwrap()),
            expected_checksum(2, 32 * MIB).0
        );
    })
    .await;

    let stats = pair
        .agent
        .stream_stats(stalled_id)
        .expect("stalled stream still open");
    assert!(
        stats.buffered <= cfg.stream_window,
        "stalled stream buffered {} bytes",
        stats.buffered
    );
    assert_eq!(
        stats.buffered, cfg.stream_window,
        "the stalled writer should have filled exactly its window"
    );
    assert!(
        !writer.is_finished(),
        "the stalled writer must be waiting for credit"
    );
    writer.abort();
}

#[tokio::test]
async fn half_close_lets_the_peer_reply_after_eof() {
    let pair = mux_pair(MuxConfig::default()).await;
    let _agent = serve(pair.agent_incoming, |incoming| async move {
        let mut stream = incoming.accept();
        let mut request = Vec::new();
        stream.read_to_end(&mut request).await.unwrap();
        assert_eq!(request, b"request");
        stream.write_all(b"reply to request").await.unwrap();
        stream.shutdown().await.unwrap();
    });
    let mut stream = pair
        .gateway
        .open(Target::System { port: 22 })
        .await
        .unwrap();
    stream.write_all(b"request").await.unwrap();
    stream.shutdown().await.unwrap();
    let mut reply = Vec::new();
    within(10, "reply", stream.read_to_end(&mut reply))
        .await
        .unwrap();
    assert_eq!(reply, b"reply to request");
    assert!(
        stream.write_all(b"late").await.is_err(),
        "writing after shutdown fails"
    );
    drop(stream);
    let (gateway, agent) = (pair.gateway.clone(), pair.agent.clone());
    eventually("both sides forget the stream", || {
        gateway.stream_count() == 0 && agent.stream_count() == 0
    })
    .await;
}

#[tokio::test]
async fn refusal_carries_code_and_reason_to_open() {
    let pair = mux_pair(MuxConfig::default()).await;
    let settings = SiteSettings {
        remote_access: true,
        own_ports: vec![22],
        ..SiteSettings::default()
    };
    let _agent = serve(pair.agent_incoming, move |incoming| {
        let verdict = settings.allows(incoming.target());
        async move {
            match verdict {
                Ok(()) => drop(incoming.accept()),
                Err(refusal) => incoming.refuse(refusal.code, &refusal.reason),
            }
        }
    });
    let err = pair
        .gateway
        .open(Target::Colocated {
            ip: [10, 0, 0, 5].into(),
            port: 3389,
        })
        .await
        .unwrap_err();
    assert_eq!(
        err,
        OpenError::Refused {
            code: codes::REFUSE_POLICY,
            reason: "Co-located Servers is disabled on this site".into()
        }
    );
    assert_eq!(pair.gateway.stream_count(), 0);
    assert!(pair.gateway.open(Target::System { port: 22 }).await.is_ok());
}

#[tokio::test]
async fn central_opens_reach_the_agent_as_central_and_get_its_own_policy() {
    let pair = mux_pair(MuxConfig::default()).await;
    // Remote Access on, Centralized Management off.
    let settings = SiteSettings {
        remote_access: true,
        own_ports: vec![22, 8443],
        ..SiteSettings::default()
    };
    let _agent = serve(pair.agent_incoming, move |incoming| {
        let verdict = settings.permits(incoming.access(), incoming.target());
        async move {
            match verdict {
                Ok(()) => drop(incoming.accept()),
                Err(refusal) => incoming.refuse(refusal.code, &refusal.reason),
            }
        }
    });
    let system = Target::System { port: 8443 };
    let err = pair
        .gateway
        .open_as(system, tunnel_proto::Access::Central)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        OpenError::Refused {
            code: codes::REFUSE_POLICY,
            reason: "Centralized Management is disabled on this site".into()
        }
    );
    // The same target under Remote Access is allowed.
    assert!(pair.gateway.open(system).await.is_ok());
}

#[tokio::test]
async fn losing_the_agent_fails_open_streams_promptly() {
    // gateway <-> relay <-> agent, so that the "network" can be cut.
    let (gw_io, relay_a) = tokio::io::duplex(PIPE);
    let (mut relay_b, agent_io) = tokio::io::duplex(PIPE);
    let relay = tokio::spawn(async move {
        let mut relay_a = relay_a;
        let _ = tokio::io::copy_bidirectional(&mut relay_a, &mut relay_b).await;
    });
    let (server, client) = ws_over(gw_io, agent_io).await;
    let (gateway, _gi) = tunnel_proto::start(server, Role::Gateway, MuxConfig::default());
    let (_agent, agent_incoming) = tunnel_proto::start(client, Role::Agent, MuxConfig::default());
    let _serve = serve(agent_incoming, |incoming| async move {
        let _stream = incoming.accept();
        tokio::time::sleep(Duration::from_secs(3600)).await;
    });
    let mut stream = gateway.open(Target::System { port: 22 }).await.unwrap();
    let reader = tokio::spawn(async move {
        let mut buf = [0u8; 16];
        let result = stream.read(&mut buf).await;
        (result, stream)
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    relay.abort();

    let (result, mut stream) = within(2, "read error after the agent died", reader)
        .await
        .unwrap();
    assert_eq!(result.unwrap_err().kind(), ErrorKind::ConnectionReset);
    assert_eq!(
        stream.write_all(b"x").await.unwrap_err().kind(),
        ErrorKind::BrokenPipe
    );
    let reason = within(2, "closed", gateway.closed()).await;
    assert!(
        matches!(reason, CloseReason::Io(_) | CloseReason::ConnectionLost),
        "{reason:?}"
    );
    assert!(matches!(
        gateway.open(Target::System { port: 22 }).await,
        Err(OpenError::Closed(_))
    ));
}

#[tokio::test]
async fn silence_beyond_the_heartbeat_timeout_closes_the_session() {
    let (server, _silent_client) = ws_pair().await;
    let cfg = MuxConfig {
        ping_interval: Duration::from_millis(50),
        ping_timeout: Duration::from_millis(300),
        ..MuxConfig::default()
    };
    let (gateway, _incoming) = tunnel_proto::start(server, Role::Gateway, cfg);
    let started = tokio::time::Instant::now();
    let reason = within(5, "heartbeat timeout", gateway.closed()).await;
    assert_eq!(reason, CloseReason::HeartbeatTimeout);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(gateway.is_closed());
}

#[tokio::test]
async fn heartbeats_keep_an_idle_session_alive() {
    let cfg = MuxConfig {
        ping_interval: Duration::from_millis(50),
        ping_timeout: Duration::from_millis(1000),
        ..MuxConfig::default()
    };
    let pair = mux_pair(cfg).await;
    // Several timeouts long: only the PINGs keep it alive.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    assert!(!pair.gateway.is_closed());
    assert!(!pair.agent.is_closed());
}

#[tokio::test]
async fn data_beyond_the_window_is_a_protocol_error() {
    // A hand-written gateway that ignores flow control, against a real agent.
    let (mut raw_gateway, client) = raw_gateway_pair().await;
    let cfg = MuxConfig {
        stream_window: 64 * 1024,
        ..MuxConfig::default()
    };
    let (agent, mut incoming) = tunnel_proto::start(client, Role::Agent, cfg);

    let mut msg = BytesMut::new();
    frame::encode(
        &Frame::Window {
            stream: 0,
            increment: 1 << 24,
        },
        &mut msg,
    )
    .unwrap();
    frame::encode(
        &Frame::Open {
            stream: 1,
            target: Target::System { port: 22 },
            access: tunnel_proto::Access::Remote,
        },
        &mut msg,
    )
    .unwrap();
    raw_gateway
        .send(Message::Binary(msg.freeze()))
        .await
        .unwrap();
    let Some(IncomingEvent::Stream(stream)) = within(5, "incoming", incoming.next()).await else {
        panic!("no stream")
    };
    let _stream = stream.accept(); // accepted, and never read

    let mut frames = Vec::new();
    let accepted = within(5, "ACCEPT", async {
        while let Some(Ok(Message::Binary(mut bytes))) = raw_gateway.next().await {
            while let Ok(Some(f)) = frame::decode(&mut bytes) {
                frames.push(f);
            }
            if frames.contains(&Frame::Accept { stream: 1 }) {
                return true;
            }
        }
        false
    })
    .await;
    assert!(accepted);
    for _ in 0..5 {
        let mut msg = BytesMut::new();
        frame::encode_data(1, &[0u8; 16 * 1024], &mut msg).unwrap();
        raw_gateway
            .send(Message::Binary(msg.freeze()))
            .await
            .unwrap();
    }

    let reason = within(5, "agent closes", agent.closed()).await;
    assert!(
        matches!(&reason, CloseReason::ProtocolError(text) if text.contains("window")),
        "{reason:?}"
    );
    let goaway = within(5, "GOAWAY", async {
        while let Some(Ok(msg)) = raw_gateway.next().await {
            if let Message::Binary(mut bytes) = msg {
                while let Ok(Some(f)) = frame::decode(&mut bytes) {
                    if let Frame::GoAway { code, .. } = f {
                        return Some(code);
                    }
                }
            }
        }
        None
    })
    .await;
    assert_eq!(goaway, Some(codes::GOAWAY_FLOW_CONTROL_ERROR));
}

#[tokio::test]
async fn control_messages_reach_the_other_side_both_ways() {
    let mut pair = mux_pair(MuxConfig::default()).await;
    let report = serde_json::json!({"type": "alarm", "text": "disk full"});
    pair.agent.send_control(report.clone()).unwrap();
    match within(5, "control at gateway", pair.gateway_incoming.next()).await {
        Some(IncomingEvent::Control(v)) => assert_eq!(v, report),
        other => panic!("unexpected {other:?}"),
    }
    let settings = serde_json::json!({"type": "settings_request"});
    pair.gateway.send_control(settings.clone()).unwrap();
    match within(5, "control at agent", pair.agent_incoming.next()).await {
        Some(IncomingEvent::Control(v)) => assert_eq!(v, settings),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn close_sends_goaway_and_fails_streams() {
    let pair = mux_pair(MuxConfig::default()).await;
    let _agent = serve(pair.agent_incoming, |incoming| async move {
        let mut stream = incoming.accept();
        let mut buf = [0u8; 8];
        assert_eq!(
            stream.read(&mut buf).await.unwrap_err().kind(),
            ErrorKind::ConnectionReset
        );
    });
    let mut stream = pair
        .gateway
        .open(Target::System { port: 22 })
        .await
        .unwrap();
    pair.gateway
        .close(codes::GOAWAY_NO_ERROR, "gateway maintenance");
    let peer_view = within(5, "agent sees GOAWAY", pair.agent.closed()).await;
    assert_eq!(
        peer_view,
        CloseReason::PeerGoAway {
            code: 0,
            reason: "gateway maintenance".into()
        }
    );
    assert_eq!(
        pair.gateway.closed().await,
        CloseReason::Local {
            code: 0,
            reason: "gateway maintenance".into()
        }
    );
    let mut buf = [0u8; 8];
    assert_eq!(
        stream.read(&mut buf).await.unwrap_err().kind(),
        ErrorKind::ConnectionReset
    );
}

#[tokio::test]
async fn dropping_a_stream_resets_it_for_the_peer() {
    let pair = mux_pair(MuxConfig::default()).await;
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let done_tx = std::sync::Mutex::new(Some(done_tx));
    let _agent = serve(pair.agent_incoming, move |incoming| {
        let done = done_tx.lock().unwrap().take();
        async move {
            let mut stream = incoming.accept();
            let mut buf = [0u8; 8];
            let result = stream.read(&mut buf).await;
            if let Some(done) = done {
                let _ = done.send(result.map_err(|e| e.kind()));
            }
        }
    });
    let stream = pair
        .gateway
        .open(Target::System { port: 22 })
        .await
        .unwrap();
    drop(stream);
    let result = within(5, "peer sees the reset", done_rx).await.unwrap();
    assert_eq!(result, Err(ErrorKind::ConnectionReset));
    let gateway = pair.gateway.clone();
    eventually("stream gone", || gateway.stream_count() == 0).await;
    assert!(
        !pair.gateway.is_closed(),
        "a reset ends the stream, not the session"
    );
}

#[tokio::test]
async fn abandoning_open_resets_the_stream_once_accepted() {
    let pair = mux_pair(MuxConfig::default()).await;
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let go_rx = std::sync::Mutex::new(Some(go_rx));
    let _agent = serve(pair.agent_incoming, move |incoming| {
        let go = go_rx.lock().unwrap().take();
        async move {
            if let Some(go) = go {
                let _ = go.await;
            }
            let mut stream = incoming.accept();
            let mut buf = [0u8; 1];
            let _ = stream.read(&mut buf).await;
        }
    });
    let abandoned = tokio::time::timeout(
        Duration::from_millis(100),
        pair.gateway.open(Target::System { port: 22 }),
    )
    .await;
    assert!(abandoned.is_err(), "the agent had not answered yet");
    go_tx.send(()).unwrap();
    let (gateway, agent) = (pair.gateway.clone(), pair.agent.clone());
    eventually("abandoned stream cleaned up", || {
        gateway.stream_count() == 0 && agent.stream_count() == 0
    })
    .await;
}

/// Streams waiting in `Incoming` when it is dropped are refused, and so is
/// every stream opened after it, while the session itself lives on.
#[tokio::test]
async fn streams_nobody_will_take_are_refused() {
    let pair = mux_pair(MuxConfig::default()).await;
    let gateway = pair.gateway.clone();
    let waiting = tokio::spawn(async move { gateway.open(Target::System { port: 22 }).await });
    within(5, "the open reaches the agent", async {
        while pair.agent.stream_count() == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await;
    drop(pair.agent_incoming);
    let err = within(5, "refusal", waiting).await.unwrap().unwrap_err();
    assert_eq!(
        err,
        OpenError::Refused {
            code: codes::REFUSE_NOT_ACCEPTED,
            reason: "the site agent did not accept the stream".into()
        }
    );
    let err = pair
        .gateway
        .open(Target::System { port: 22 })
        .await
        .unwrap_err();
    assert_eq!(
        err,
        OpenError::Refused {
            code: codes::REFUSE_BUSY,
            reason: "the site takes no more streams".into()
        }
    );
    // The session still carries control messages.
    pair.agent
        .send_control(serde_json::json!({"still": "up"}))
        .unwrap();
    let mut gateway_incoming = pair.gateway_incoming;
    match within(5, "control", gateway_incoming.next()).await {
        Some(IncomingEvent::Control(v)) => assert_eq!(v["still"], "up"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn dropping_every_handle_closes_the_session() {
    let mut pair = mux_pair(MuxConfig::default()).await;
    // One round trip first, so the agent is not still writing its opening
    // frames when the gateway goes (it would then see a broken pipe).
    pair.agent.send_control(serde_json::json!({})).unwrap();
    within(5, "control", pair.gateway_incoming.next()).await;
    let agent = pair.agent.clone();
    drop(pair.gateway);
    drop(pair.gateway_incoming);
    let reason = within(5, "agent sees GOAWAY", agent.closed()).await;
    assert!(
        matches!(reason, CloseReason::PeerGoAway { code: 0, .. }),
        "{reason:?}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn small_writes_are_coalesced_into_few_messages() {
    // A real gateway against a hand-written agent that counts messages.
    let (server, mut raw_agent) = raw_agent_pair().await;
    let (gateway, _incoming) = tunnel_proto::start(server, Role::Gateway, MuxConfig::default());
    let mut grant = BytesMut::new();
    frame::encode(
        &Frame::Window {
            stream: 0,
            increment: 1 << 24,
        },
        &mut grant,
    )
    .unwrap();
    raw_agent
        .send(Message::Binary(grant.freeze()))
        .await
        .unwrap();

    let open = tokio::spawn({
        let gateway = gateway.clone();
        async move { gateway.open(Target::System { port: 22 }).await }
    });
    let id = within(5, "OPEN", async {
        while let Some(Ok(Message::Binary(mut bytes))) = raw_agent.next().await {
            while let Ok(Some(f)) = frame::decode(&mut bytes) {
                if let Frame::Open { stream, .. } = f {
                    return stream;
                }
            }
        }
        panic!("no OPEN")
    })
    .await;
    let mut answer = BytesMut::new();
    frame::encode(&Frame::Accept { stream: id }, &mut answer).unwrap();
    frame::encode(
        &Frame::Window {
            stream: id,
            increment: 1 << 22,
        },
        &mut answer,
    )
    .unwrap();
    raw_agent
        .send(Message::Binary(answer.freeze()))
        .await
        .unwrap();
    let mut stream = open.await.unwrap().unwrap();

    for i in 0..100u8 {
        stream.write_all(&[i; 10]).await.unwrap();
    }
    let (mut data, mut messages) = (Vec::new(), 0);
    within(5, "1000 bytes", async {
        while data.len() < 1000 {
            let Some(Ok(Message::Binary(mut bytes))) = raw_agent.next().await else {
                panic!("stream ended")
            };
            let mut had_data = false;
            while let Ok(Some(f)) = frame::decode(&mut bytes) {
                if let Frame::Data { payload, .. } = f {
                    data.extend_from_slice(&payload);
                    had_data = true;
                }
            }
            messages += usize::from(had_data);
        }
    })
    .await;
    assert_eq!(data, (0..100u8).flat_map(|i| [i; 10]).collect::<Vec<_>>());
    assert!(
        messages <= 2,
        "100 small writes went out in {messages} messages"
    );
}

#[tokio::test]
async fn open_beyond_max_streams_fails_locally() {
    let pair = mux_pair(MuxConfig {
        max_streams: 2,
        ..MuxConfig::default()
    })
    .await;
    let _agent = serve(pair.agent_incoming, |incoming| async move {
        let _stream = incoming.accept();
        tokio::time::sleep(Duration::from_secs(3600)).await;
    });
    let _a = pair.gateway.open(Target::System { port: 1 }).await.unwrap();
    let _b = pair.gateway.open(Target::System { port: 2 }).await.unwrap();
    assert_eq!(
        pair.gateway
            .open(Target::System { port: 3 })
            .await
            .unwrap_err(),
        OpenError::TooManyStreams { limit: 2 }
    );
}

#[test]
fn handles_and_streams_can_move_between_tasks() {
    fn assert_movable<T: Send + Sync + Unpin + 'static>() {}
    fn assert_send<T: Send + Unpin + 'static>() {}
    assert_movable::<tunnel_proto::MuxHandle>();
    assert_send::<tunnel_proto::MuxStream>();
    assert_send::<tunnel_proto::Incoming>();
    assert_send::<tunnel_proto::IncomingStream>();
}

#[tokio::test]
async fn a_websocket_ping_is_answered_while_the_session_runs() {
    let (server, mut raw_agent) = raw_agent_pair().await;
    let (_gateway, _incoming) = tunnel_proto::start(server, Role::Gateway, MuxConfig::default());
    raw_agent
        .send(Message::Ping(bytes::Bytes::from_static(b"still there?")))
        .await
        .unwrap();
    let pong = within(5, "pong", async {
        loop {
            match raw_agent.next().await {
                Some(Ok(Message::Pong(payload))) => return payload,
                Some(Ok(_)) => continue,
                other => panic!("no pong: {other:?}"),
            }
        }
    })
    .await;
    assert_eq!(&pong[..], b"still there?");
}

/// The chunk-level halves a relay uses: payloads read behind header room go
/// out as frames built in place (with a small window, so some are split by
/// credit), chunks come out as received, byte exact both ways; the stream
/// lives while either half does and is reset when both are dropped early.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_halves_move_frames_and_chunks_byte_exact() {
    let cfg = MuxConfig {
        stream_window: 40_000,
        max_stream_window: 40_000,
        ..MuxConfig::default()
    };
    let pair = mux_pair(cfg).await;
    let _agent = serve(pair.agent_incoming, |incoming| async move {
        let (mut rd, mut wr) = incoming.accept().into_split();
        // Echo: every received chunk goes back as a frame built in place.
        while let Some(chunk) = rd.read_chunk(usize::MAX).await.unwrap() {
            let mut buf = BytesMut::zeroed(frame::HEADER_LEN);
            buf.extend_from_slice(&chunk);
            while buf.len() > frame::HEADER_LEN {
                wr.write_frame(&mut buf).await.unwrap();
            }
        }
        wr.shutdown().await.unwrap();
    });
    let stream = pair
        .gateway
        .open(Target::System { port: 22 })
        .await
        .unwrap();
    let (mut rd, mut wr) = stream.into_split();
    const LEN: usize = 3 * MIB;
    let send = async move {
        let mut pattern = Pattern::new(5);
        let mut sent = Checksum::default();
        let mut left = LEN;
        while left > 0 {
            // Payload sizes that do and do not fit the credit left.
            let n = left.min(1 + left % 16_384);
            let mut buf = BytesMut::zeroed(frame::HEADER_LEN + n);
            pattern.fill(&mut buf[frame::HEADER_LEN..]);
            sent.update(&buf[frame::HEADER_LEN..]);
            while buf.len() > frame::HEADER_LEN {
                left -= wr.write_frame(&mut buf).await.unwrap();
            }
            assert!(buf.is_empty() || buf.len() == frame::HEADER_LEN);
        }
        wr.shutdown().await.unwrap();
        (wr, sent)
    };
    // Batches of what has arrived: at most 5000 bytes and 3 chunks each,
    // in order; a pause between batches lets several chunks arrive.
    let receive = async {
        let mut sum = Checksum::default();
        let mut total = 0;
        let mut batch = Vec::new();
        let mut several = 0;
        let mut batches = 0u32;
        while rd.read_chunks(5000, 3, &mut batch).await.unwrap() {
            let bytes: usize = batch.iter().map(|c| c.len()).sum();
            assert!(bytes <= 5000 && !batch.is_empty() && batch.len() <= 3);
            if batch.len() > 1 {
                several += 1;
            }
            for chunk in batch.drain(..) {
                sum.update(&chunk);
                total += chunk.len();
            }
            batches += 1;
            if batches.is_multiple_of(4) {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        }
        assert!(batch.is_empty(), "nothing is appended at EOF");
        (total, sum, several)
    };
    let ((wr, sent), (total, sum, several)) =
        within(60, "3 MiB echoed", async { tokio::join!(send, receive) }).await;
    assert_eq!(total, LEN);
    assert_eq!(sum.0, sent.0);
    assert!(several > 0, "no batch held more than one chunk");
    drop((rd, wr));
    let gateway = pair.gateway.clone();
    eventually("stream gone", || gateway.stream_count() == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_both_halves_resets_but_one_half_does_not() {
    let pair = mux_pair(MuxConfig::default()).await;
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
    let _agent = serve(pair.agent_incoming, move |incoming| {
        let seen = seen_tx.clone();
        async move {
            let mut stream = incoming.accept();
            let mut got = Vec::new();
            let result = stream.read_to_end(&mut got).await;
            let _ = seen.send((got, result.map_err(|e| e.kind())));
        }
    });
    let stream = pair
        .gateway
        .open(Target::System { port: 22 })
        .await
        .unwrap();
    let (rd, mut wr) = stream.into_split();
    drop(rd);
    wr.write_all(b"still open").await.unwrap();
    wr.shutdown().await.unwrap();
    let (got, result) = within(5, "EOF after the data", seen_rx.recv())
        .await
        .unwrap();
    assert_eq!((got.as_slice(), result), (&b"still open"[..], Ok(10)));
    drop(wr);

    let stream = pair
        .gateway
        .open(Target::System { port: 22 })
        .await
        .unwrap();
    let (rd, wr) = stream.into_split();
    drop(wr);
    drop(rd);
    let (_, result) = within(5, "the reset", seen_rx.recv()).await.unwrap();
    assert_eq!(result, Err(ErrorKind::ConnectionReset));
}

/// A reader that waits while its gate is shut: joined with the pipe's write
/// half, it lets a test put bytes in the pipe before the reader sees any.
struct GatedRead {
    io: tokio::io::ReadHalf<tokio::io::DuplexStream>,
    gate: Arc<Gate>,
}

type Gated = tokio::io::Join<GatedRead, tokio::io::WriteHalf<tokio::io::DuplexStream>>;

fn gated(io: tokio::io::DuplexStream, gate: Arc<Gate>) -> Gated {
    let (rd, wr) = tokio::io::split(io);
    tokio::io::join(GatedRead { io: rd, gate }, wr)
}

#[derive(Default)]
struct Gate {
    shut: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Gate {
    fn set(&self, shut: bool) {
        self.shut.store(shut, Ordering::SeqCst);
        if let Some(w) = self.waker.lock().unwrap().take() {
            w.wake();
        }
    }
}

impl AsyncRead for GatedRead {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.gate.shut.load(Ordering::SeqCst) {
            *self.gate.waker.lock().unwrap() = Some(cx.waker().clone());
            return Poll::Pending;
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

/// On one thread (as on a site's thread in serve), a quiet stream's bytes
/// that arrived behind a bulk stream's whole window are handed over after
/// the bulk stream's reader took about one batch, not the whole window:
/// the session's reader runs ahead into per-stream buffers instead of
/// taking turns with the bulk reader 64 KiB at a time.
#[tokio::test(flavor = "current_thread")]
async fn a_quiet_stream_behind_a_bulk_window_is_not_read_last() {
    const BULK: usize = 768 * 1024;
    const BATCH: usize = 64 * 1024;
    let (a, b) = tokio::io::duplex(4 * MIB);
    let gate = Arc::new(Gate::default());
    let server_io = gated(a, gate.clone());
    let client_io = gated(b, Default::default());
    let (server, client) = ws_over(server_io, client_io).await;
    let cfg = MuxConfig {
        stream_window: MIB as u32,
        ..MuxConfig::default()
    };
    let (gateway, _gateway_incoming) = tunnel_proto::start(server, Role::Gateway, cfg);
    let (_agent, agent_incoming) = tunnel_proto::start(client, Role::Agent, cfg);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let _agent_side = serve(agent_incoming, move |incoming| {
        let tx = tx.clone();
        async move {
            let Target::System { port } = *incoming.target() else {
                panic!("unexpected target")
            };
            let _ = tx.send((port, incoming.accept()));
        }
    });
    let mut bulk = gateway.open(Target::System { port: 1 }).await.unwrap();
    let mut quiet = gateway.open(Target::System { port: 2 }).await.unwrap();
    let mut agent_streams = HashMap::new();
    for _ in 0..2 {
        let (port, s) = within(5, "accepted", rx.recv()).await.unwrap();
        agent_streams.insert(port, s);
    }
    // Everything the agent sends waits in the pipe, the bulk window first.
    gate.set(true);
    let mut agent_bulk = agent_streams.remove(&1).unwrap();
    let mut agent_quiet = agent_streams.remove(&2).unwrap();
    within(5, "bulk written", agent_bulk.write_all(&vec![1; BULK]))
        .await
        .unwrap();
    within(5, "quiet written", agent_quiet.write_all(b"ping"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let taken = Arc::new(AtomicUsize::new(0));
    let bulk_reader = {
        let taken = taken.clone();
        tokio::spawn(async move {
            // Like a tunnel's relay: lets other tasks run after each batch.
            let mut buf = vec![0; 16 * 1024];
            let mut since = 0;
            while taken.load(Ordering::SeqCst) < BULK {
                let n = bulk.read(&mut buf).await.unwrap();
                assert!(n > 0);
                taken.fetch_add(n, Ordering::SeqCst);
                since += n;
                if since >= BATCH {
                    since = 0;
                    tokio::task::yield_now().await;
                }
            }
        })
    };
    let quiet_reader = tokio::spawn(async move {
        let mut got = [0u8; 4];
        quiet.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"ping");
        taken.load(Ordering::SeqCst)
    });
    gate.set(false);
    let bulk_taken_first = within(10, "the quiet bytes", quiet_reader).await.unwrap();
    within(10, "the bulk bytes", bulk_reader).await.unwrap();
    assert!(
        bulk_taken_first <= 2 * BATCH,
        "the bulk stream's reader took {bulk_taken_first} of {BULK} bytes first"
    );
}
