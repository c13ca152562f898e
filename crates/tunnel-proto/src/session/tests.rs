//! Targeted tests of single protocol rules. The random operation sequences
//! live in `tests/session_props.rs`.

use bytes::Bytes;

use super::*;

pub(super) fn cfg(stream_window: u32, connection_window: u32) -> SessionConfig {
    SessionConfig {
        stream_window,
        max_stream_window: stream_window,
        connection_window,
        max_streams: 8,
    }
}

/// Moves everything `from` has queued into `to`.
pub(super) fn pump(from: &mut Session, to: &mut Session) -> Result<(), ProtocolError> {
    while let Some(bytes) = from.poll_transmit() {
        to.receive(bytes)?;
    }
    Ok(())
}

/// Events other than credit notifications.
pub(super) fn events(s: &mut Session) -> Vec<Event> {
    std::iter::from_fn(|| s.poll_event())
        .filter(|e| !matches!(e, Event::ConnectionWritable | Event::Writable { .. }))
        .collect()
}

fn frames(s: &mut Session) -> Vec<Frame> {
    let mut out = Vec::new();
    while let Some(mut bytes) = s.poll_transmit() {
        while let Ok(Some(f)) = frame::decode(&mut bytes) {
            out.push(f);
        }
    }
    out
}

/// A gateway and an agent with one accepted stream between them.
pub(super) fn pair(c: SessionConfig) -> (Session, Session, u32) {
    let mut gw = Session::new(Role::Gateway, c);
    let mut agent = Session::new(Role::Agent, c);
    let id = gw
        .open(Target::System { port: 22 }, Access::Remote)
        .unwrap();
    pump(&mut gw, &mut agent).unwrap();
    assert_eq!(
        events(&mut agent),
        vec![Event::Incoming {
            id,
            target: Target::System { port: 22 },
            access: Access::Remote,
        }]
    );
    agent.accept(id).unwrap();
    pump(&mut agent, &mut gw).unwrap();
    assert!(events(&mut gw).contains(&Event::Accepted { id }));
    (gw, agent, id)
}

pub(super) fn read_all(s: &mut Session, id: u32) -> Vec<u8> {
    let mut out = Vec::new();
    while let Ok(ReadOutcome::Data(b)) = s.read(id, usize::MAX) {
        out.extend_from_slice(&b);
    }
    out
}

#[test]
fn data_flows_and_windows_are_returned_per_quarter_window() {
    let (mut gw, mut agent, id) = pair(cfg(100, 1000));
    assert_eq!(
        gw.write(id, &[1; 150]).unwrap(),
        100,
        "limited by the stream window"
    );
    assert_eq!(gw.write(id, &[1; 10]).unwrap(), 0);
    pump(&mut gw, &mut agent).unwrap();
    assert_eq!(
        agent.read(id, 24).unwrap(),
        ReadOutcome::Data(Bytes::from(vec![1; 24]))
    );
    assert!(
        frames(&mut agent).is_empty(),
        "no update before a quarter of the window is consumed"
    );
    assert_eq!(
        agent.read(id, 1).unwrap(),
        ReadOutcome::Data(Bytes::from(vec![1; 1]))
    );
    assert_eq!(
        frames(&mut agent),
        vec![Frame::Window {
            stream: id,
            increment: 25
        }]
    );
    agent.check_invariants().unwrap();
    gw.check_invariants().unwrap();
}

#[test]
fn data_beyond_the_stream_window_closes_the_session() {
    let (_gw, mut agent, id) = pair(cfg(100, 1000));
    let err = agent
        .handle_frame(Frame::Data {
            stream: id,
            payload: Bytes::from(vec![0; 101]),
        })
        .unwrap_err();
    assert!(matches!(
        err,
        ProtocolError::StreamWindowExceeded {
            len: 101,
            window: 100,
            ..
        }
    ));
    assert!(agent.is_closed());
    assert_eq!(agent.stream_count(), 0);
    let sent = frames(&mut agent);
    assert!(matches!(
        sent.last(),
        Some(Frame::GoAway {
            code: codes::GOAWAY_FLOW_CONTROL_ERROR,
            ..
        })
    ));
}

#[test]
fn data_beyond_the_connection_window_closes_the_session() {
    let c = cfg(100, 150);
    let mut gw = Session::new(Role::Gateway, c);
    let mut agent = Session::new(Role::Agent, c);
    let a = gw
        .open(Target::System { port: 22 }, Access::Remote)
        .unwrap();
    let b = gw
        .open(Target::System { port: 443 }, Access::Remote)
        .unwrap();
    pump(&mut gw, &mut agent).unwrap();
    agent.accept(a).unwrap();
    agent.accept(b).unwrap();
    agent
        .handle_frame(Frame::Data {
            stream: a,
            payload: Bytes::from(vec![0; 100]),
        })
        .unwrap();
    let err = agent
        .handle_frame(Frame::Data {
            stream: b,
            payload: Bytes::from(vec![0; 51]),
        })
        .unwrap_err();
    assert!(matches!(
        err,
        ProtocolError::ConnectionWindowExceeded {
            len: 51,
            window: 50
        }
    ));
}

#[test]
fn data_after_fin_is_a_protocol_error() {
    let (mut gw, mut agent, id) = pair(cfg(100, 1000));
    gw.write(id, b"abc").unwrap();
    gw.finish(id).unwrap();
    pump(&mut gw, &mut agent).unwrap();
    let err = agent
        .handle_frame(Frame::Data {
            stream: id,
            payload: Bytes::from_static(b"x"),
        })
        .unwrap_err();
    assert_eq!(err, ProtocolError::DataAfterFin(id));
}

#[test]
fn data_before_accept_is_a_protocol_error() {
    let mut gw = Session::new(Role::Gateway, cfg(100, 1000));
    let mut agent = Session::new(Role::Agent, cfg(100, 1000));
    let id = gw
        .open(Target::System { port: 22 }, Access::Remote)
        .unwrap();
    pump(&mut gw, &mut agent).unwrap();
    let err = agent
        .handle_frame(Frame::Data {
            stream: id,
            payload: Bytes::from_static(b"x"),
        })
        .unwrap_err();
    assert!(matches!(
        err,
        ProtocolError::UnexpectedFrame { frame: "DATA", .. }
    ));
}

#[test]
fn half_close_both_ways_removes_the_stream() {
    let (mut gw, mut agent, id) = pair(cfg(100, 1000));
    gw.write(id, b"request").unwrap();
    gw.finish(id).unwrap();
    assert_eq!(gw.write(id, b"more"), Err(StreamError::Finished));
    pump(&mut gw, &mut agent).unwrap();
    assert_eq!(read_all(&mut agent, id), b"request");
    assert_eq!(agent.read(id, 10), Ok(ReadOutcome::Fin));
    agent.write(id, b"reply").unwrap();
    agent.finish(id).unwrap();
    assert!(
        !agent.has_stream(id),
        "agent: both FINs passed and all read"
    );
    assert!(events(&mut agent).contains(&Event::Closed {
        id,
        end: StreamEnd::Finished
    }));
    pump(&mut agent, &mut gw).unwrap();
    assert!(gw.has_stream(id), "gateway still has unread bytes");
    assert_eq!(read_all(&mut gw, id), b"reply");
    assert!(!gw.has_stream(id));
    assert_eq!(gw.read(id, 10), Err(StreamError::Unknown));
}

#[test]
fn refusal_carries_code_and_reason() {
    let mut gw = Session::new(Role::Gateway, SessionConfig::default());
    let mut agent = Session::new(Role::Agent, SessionConfig::default());
    let id = gw
        .open(
            Target::Colocated {
                ip: [10, 0, 0, 5].into(),
                port: 3389,
            },
            Access::Remote,
        )
        .unwrap();
    pump(&mut gw, &mut agent).unwrap();
    agent
        .refuse(
            id,
            1,
            "no tunnel for 10.0.0.5:3389 is configured on this site",
        )
        .unwrap();
    pump(&mut agent, &mut gw).unwrap();
    let refused = events(&mut gw)
        .into_iter()
        .find(|e| matches!(e, Event::Refused { .. }));
    assert_eq!(
        refused,
        Some(Event::Refused {
            id,
            code: 1,
            reason: "no tunnel for 10.0.0.5:3389 is configured on this site".into()
        })
    );
    assert_eq!(gw.stream_count(), 0);
    assert_eq!(agent.stream_count(), 0);
}

#[test]
fn reset_discards_unread_bytes_and_returns_connection_window() {
    let (mut gw, mut agent, id) = pair(cfg(100, 100));
    gw.write(id, &[7; 100]).unwrap();
    pump(&mut gw, &mut agent).unwrap();
    assert_eq!(agent.connection_stats().recv_window, 0);
    agent.reset(id, 5).unwrap();
    assert_eq!(agent.connection_stats().buffered, 0);
    assert!(frames(&mut agent).contains(&Frame::Window {
        stream: 0,
        increment: 100
    }));
    gw.handle_frame(Frame::Reset {
        stream: id,
        code: 5,
    })
    .unwrap();
    assert_eq!(
        events(&mut gw).last(),
        Some(&Event::Closed {
            id,
            end: StreamEnd::Reset { code: 5 }
        })
    );
}

#[test]
fn frames_crossing_a_reset_are_tolerated_but_counted() {
    let (mut gw, mut agent, id) = pair(cfg(100, 1000));
    gw.write(id, &[1; 60]).unwrap();
    agent.reset(id, 0).unwrap();
    let before = agent.connection_stats().recv_window;
    pump(&mut gw, &mut agent).unwrap();
    agent
        .handle_frame(Frame::Window {
            stream: id,
            increment: 5,
        })
        .unwrap();
    agent.handle_frame(Frame::Fin { stream: id }).unwrap();
    assert!(!agent.is_closed());
    assert_eq!(agent.connection_stats().recv_window, before - 60);
    agent.check_invariants().unwrap();
}

#[test]
fn frames_for_never_opened_streams_are_errors() {
    let mut agent = Session::new(Role::Agent, SessionConfig::default());
    assert_eq!(
        agent.handle_frame(Frame::Fin { stream: 7 }),
        Err(ProtocolError::UnknownStream(7))
    );
}

#[test]
fn stream_ids_are_odd_increasing_and_checked() {
    let mut gw = Session::new(Role::Gateway, SessionConfig::default());
    let ids: Vec<u32> = (0..3)
        .map(|_| {
            gw.open(Target::System { port: 22 }, Access::Remote)
                .unwrap()
        })
        .collect();
    assert_eq!(ids, vec![1, 3, 5]);
    let mut agent = Session::new(Role::Agent, SessionConfig::default());
    agent
        .handle_frame(Frame::Open {
            stream: 3,
            target: Target::System { port: 22 },
            access: Access::Remote,
        })
        .unwrap();
    assert_eq!(
        agent.handle_frame(Frame::Open {
            stream: 3,
            target: Target::System { port: 22 },
            access: Access::Remote,
        }),
        Err(ProtocolError::BadStreamId(3))
    );
    let mut agent = Session::new(Role::Agent, SessionConfig::default());
    assert_eq!(
        agent.handle_frame(Frame::Open {
            stream: 2,
            target: Target::System { port: 22 },
            access: Access::Remote,
        }),
        Err(ProtocolError::BadStreamId(2))
    );
    assert_eq!(
        agent.open(Target::System { port: 22 }, Access::Remote),
        Err(SessionError::Closed)
    );
    let mut agent = Session::new(Role::Agent, SessionConfig::default());
    assert_eq!(
        agent.open(Target::System { port: 22 }, Access::Remote),
        Err(SessionError::WrongRole)
    );
}

#[test]
fn opens_beyond_max_streams_are_refused_not_fatal() {
    let c = SessionConfig {
        max_streams: 1,
        ..SessionConfig::default()
    };
    let mut agent = Session::new(Role::Agent, c);
    agent
        .handle_frame(Frame::Open {
            stream: 1,
            target: Target::System { port: 22 },
            access: Access::Remote,
        })
        .unwrap();
    agent
        .handle_frame(Frame::Open {
            stream: 3,
            target: Target::System { port: 22 },
            access: Access::Remote,
        })
        .unwrap();
    assert_eq!(agent.stream_count(), 1);
    assert!(frames(&mut agent).iter().any(|f| matches!(
        f,
        Frame::Refuse {
            stream: 3,
            code: codes::REFUSE_TOO_MANY_STREAMS,
            ..
        }
    )));
    let mut gw = Session::new(Role::Gateway, c);
    gw.open(Target::System { port: 22 }, Access::Remote)
        .unwrap();
    assert_eq!(
        gw.open(Target::System { port: 22 }, Access::Remote),
        Err(SessionError::TooManyStreams { limit: 1 })
    );
}

#[test]
fn ping_is_answered_and_control_is_parsed() {
    let mut agent = Session::new(Role::Agent, SessionConfig::default());
    frames(&mut agent);
    agent.handle_frame(Frame::Ping { data: 42 }).unwrap();
    assert_eq!(frames(&mut agent), vec![Frame::Pong { data: 42 }]);
    agent
        .handle_frame(Frame::Control {
            json: Bytes::from_static(br#"{"alarm":"disk"}"#),
        })
        .unwrap();
    assert_eq!(
        events(&mut agent),
        vec![Event::Control(serde_json::json!({"alarm": "disk"}))]
    );
    let err = agent
        .handle_frame(Frame::Control {
            json: Bytes::from_static(b"{nope"),
        })
        .unwrap_err();
    assert!(matches!(err, ProtocolError::BadControl(_)));
}

#[test]
fn goaway_closes_and_is_reported() {
    let (mut gw, mut agent, _id) = pair(SessionConfig::default());
    agent.close(0, "shutting down");
    pump(&mut agent, &mut gw).unwrap();
    assert_eq!(
        events(&mut gw),
        vec![Event::GoAway {
            code: 0,
            reason: "shutting down".into()
        }]
    );
    assert!(gw.is_closed());
    assert_eq!(gw.stream_count(), 0);
}

#[test]
fn zero_and_overflowing_window_updates_are_errors() {
    let mut agent = Session::new(Role::Agent, SessionConfig::default());
    assert_eq!(
        agent.handle_frame(Frame::Window {
            stream: 0,
            increment: 0
        }),
        Err(ProtocolError::ZeroIncrement(0))
    );
    let mut agent = Session::new(Role::Agent, SessionConfig::default());
    agent
        .handle_frame(Frame::Window {
            stream: 0,
            increment: MAX_WINDOW,
        })
        .unwrap();
    assert_eq!(
        agent.handle_frame(Frame::Window {
            stream: 0,
            increment: 1
        }),
        Err(ProtocolError::WindowOverflow(0))
    );
}

#[test]
fn fuzz_session_handles_garbage() {
    fuzz_session(&[]);
    fuzz_session(&[0xff; 40]);
    let mut msg = bytes::BytesMut::new();
    frame::encode(
        &Frame::Open {
            stream: 1,
            target: Target::System { port: 22 },
            access: Access::Remote,
        },
        &mut msg,
    )
    .unwrap();
    frame::encode_data(1, b"abc", &mut msg).unwrap();
    fuzz_session(&msg);
}

#[test]
fn a_quiet_stream_is_not_queued_behind_a_bulk_streams_backlog() {
    const MAX_DATA: usize = frame::BASE_DATA_LEN;
    let c = cfg(1 << 20, 4 << 20);
    let (mut gw, mut agent, bulk) = pair(c);
    let quiet = gw
        .open(Target::System { port: 23 }, Access::Remote)
        .unwrap();
    pump(&mut gw, &mut agent).unwrap();
    agent.accept(quiet).unwrap();
    pump(&mut agent, &mut gw).unwrap();
    let _ = events(&mut gw);
    // The bulk stream queues 8 full frames, then the quiet one writes.
    for _ in 0..8 {
        assert_eq!(gw.write(bulk, &[7; MAX_DATA]).unwrap(), MAX_DATA);
    }
    assert_eq!(
        gw.stream_transmit_len(bulk),
        8 * (MAX_DATA + frame::HEADER_LEN)
    );
    assert_eq!(gw.write(quiet, b"ping").unwrap(), 4);
    gw.ping(9);
    let order: Vec<(&str, u32)> = frames(&mut gw)
        .iter()
        .map(|f| match f {
            Frame::Data { stream, .. } => ("DATA", *stream),
            other => (other.name(), 0),
        })
        .collect();
    // The PING first, then the streams take turns: the quiet stream's bytes
    // leave after one bulk frame, not after eight.
    assert_eq!(&order[..3], &[("PING", 0), ("DATA", bulk), ("DATA", quiet)]);
    assert_eq!(order.len(), 10);
    assert!(order[3..].iter().all(|f| *f == ("DATA", bulk)));
    assert_eq!(gw.transmit_len(), 0);
}

#[test]
fn fin_and_reset_stay_behind_their_streams_data_and_goaway_goes_last() {
    let (mut gw, agent, id) = pair(cfg(1 << 20, 4 << 20));
    gw.write(id, &[1; 100]).unwrap();
    gw.finish(id).unwrap();
    gw.ping(1);
    gw.close(codes::GOAWAY_NO_ERROR, "bye");
    let names: Vec<&str> = frames(&mut gw).iter().map(Frame::name).collect();
    assert_eq!(names, ["PING", "DATA", "FIN", "GOAWAY"]);
    drop(agent);
}

#[test]
fn a_window_bound_stream_gets_a_larger_window_once_its_reader_caught_up() {
    let c = SessionConfig {
        stream_window: 64 * 1024,
        max_stream_window: 1 << 20,
        connection_window: 4 << 20,
        max_streams: 8,
    };
    let (mut gw, mut agent, id) = pair(c);
    let t0 = std::time::Instant::now();
    // The gateway fills the stream's whole window; the agent receives it at
    // t0 and starts a probe with its first DATA.
    let mut sent = 0;
    while sent < 64 * 1024 {
        let n = gw.write(id, &[5; 16 * 1024]).unwrap();
        assert!(n > 0);
        sent += n;
    }
    assert_eq!(gw.write(id, &[5; 10]).unwrap(), 0, "window-bound");
    while let Some(bytes) = gw.poll_transmit() {
        agent.receive_at(bytes, t0).unwrap();
    }
    let probes: Vec<u64> = frames(&mut agent)
        .into_iter()
        .filter_map(|f| match f {
            Frame::Ping { data } => Some(data),
            _ => None,
        })
        .collect();
    assert_eq!(probes.len(), 1, "one probe per round trip");
    gw.receive(encode(&Frame::Ping { data: probes[0] }))
        .unwrap();
    let pong = gw.poll_transmit().unwrap();
    // The PONG comes back 20 ms later (a distant site): 64 KiB per 20 ms
    // filled the window; a first probe has no shortest round trip to
    // compare with, so it doubles the window, and the growth is granted.
    agent
        .receive_at(pong, t0 + std::time::Duration::from_millis(20))
        .unwrap();
    assert_eq!(agent.stream_window(), 128 * 1024);
    // The stream takes the new size once its reader has caught up: the
    // WINDOWs return what was read and grant the growth.
    assert_eq!(frames(&mut agent), vec![]);
    assert_eq!(read_all(&mut agent, id).len(), 64 * 1024);
    let granted: u32 = frames(&mut agent)
        .iter()
        .map(|f| match f {
            Frame::Window { stream, increment } if *stream == id => *increment,
            other => panic!("unexpected {other:?}"),
        })
        .sum();
    // What was read (64 KiB) and the growth (64 KiB).
    assert_eq!(granted, 128 * 1024);
    assert_eq!(agent.stream_stats(id).unwrap().recv_window, 128 * 1024);
    agent.check_invariants().unwrap();
    // New streams start with the tuned window too.
    let second = gw
        .open(Target::System { port: 23 }, Access::Remote)
        .unwrap();
    pump(&mut gw, &mut agent).unwrap();
    agent.accept(second).unwrap();
    assert!(frames(&mut agent).contains(&Frame::Window {
        stream: second,
        increment: 128 * 1024
    }));
}

/// An interactive stream's small frames never start a window probe: its
/// round trips carry only its own bytes, not a PING and a PONG as well.
#[test]
fn small_frames_send_no_window_probe() {
    let (mut gw, mut agent, id) = pair(SessionConfig {
        max_stream_window: 1 << 20,
        ..cfg(256 * 1024, 4 << 20)
    });
    let mut at = std::time::Instant::now();
    for _ in 0..50 {
        gw.write(id, &[7; 64]).unwrap();
        while let Some(bytes) = gw.poll_transmit() {
            agent.receive_at(bytes, at).unwrap();
        }
        assert_eq!(read_all(&mut agent, id), [7; 64]);
        assert_eq!(frames(&mut agent), vec![], "nothing but the data");
        at += std::time::Duration::from_millis(5);
    }
    // A full frame does start one.
    gw.write(id, &[7; 16 * 1024]).unwrap();
    while let Some(bytes) = gw.poll_transmit() {
        agent.receive_at(bytes, at).unwrap();
    }
    assert!(matches!(frames(&mut agent)[..], [Frame::Ping { .. }]));
}

fn encode(f: &Frame) -> Bytes {
    let mut buf = bytes::BytesMut::new();
    frame::encode(f, &mut buf).unwrap();
    buf.freeze()
}

/// A payload read behind header room is queued as it is when credit allows,
/// and split (the rest keeping its room) when it does not.
#[test]
fn write_frame_queues_in_place_or_splits_by_credit() {
    let (mut gw, mut agent, id) = pair(cfg(100, 1000));
    let payload: Vec<u8> = (0..150u8).collect();
    let mut buf = bytes::BytesMut::zeroed(frame::HEADER_LEN);
    buf.extend_from_slice(&payload);
    let at = buf.as_ptr();
    assert_eq!(gw.write_frame(id, &mut buf).unwrap(), 100, "stream window");
    assert_eq!(buf.len(), frame::HEADER_LEN + 50, "the rest, with its room");
    assert_eq!(&buf[frame::HEADER_LEN..], &payload[100..]);
    assert_eq!(gw.write_frame(id, &mut buf).unwrap(), 0, "no credit left");
    pump(&mut gw, &mut agent).unwrap();
    assert_eq!(read_all(&mut agent, id), &payload[..100]);
    pump(&mut agent, &mut gw).unwrap();
    // Credit is back: the rest goes out as the very buffer it was read into.
    let rest_at = buf[frame::HEADER_LEN..].as_ptr();
    assert_eq!(gw.write_frame(id, &mut buf).unwrap(), 50);
    assert!(buf.is_empty(), "the buffer was taken");
    let queued = gw.poll_transmit().unwrap();
    assert_eq!(queued[frame::HEADER_LEN..].as_ptr(), rest_at, "not copied");
    assert!(rest_at > at);
    agent.receive(queued).unwrap();
    assert_eq!(read_all(&mut agent, id), &payload[100..]);

    let mut empty = bytes::BytesMut::zeroed(frame::HEADER_LEN);
    assert_eq!(gw.write_frame(id, &mut empty).unwrap(), 0);
    gw.finish(id).unwrap();
    let mut late = bytes::BytesMut::zeroed(frame::HEADER_LEN + 1);
    assert_eq!(gw.write_frame(id, &mut late), Err(StreamError::Finished));
}

/// A session sends DATA frames of at most 16 KiB (what every peer accepts)
/// until told the peer takes more; then one write or in-place frame carries
/// up to 64 KiB, and the receiver accepts it whole.
#[test]
fn frames_grow_to_64_kib_only_for_a_peer_that_takes_them() {
    let (mut gw, _agent, id) = pair(cfg(1 << 20, 4 << 20));
    assert_eq!(gw.peer_max_data(), frame::BASE_DATA_LEN);
    assert_eq!(gw.write(id, &[1; 40_000]).unwrap(), frame::BASE_DATA_LEN);
    gw.set_peer_max_data(frame::MAX_DATA_LEN);
    assert_eq!(gw.write(id, &[2; 100_000]).unwrap(), frame::MAX_DATA_LEN);
    let mut buf = bytes::BytesMut::zeroed(frame::HEADER_LEN + frame::MAX_DATA_LEN);
    buf[frame::HEADER_LEN..].fill(3);
    assert_eq!(gw.write_frame(id, &mut buf).unwrap(), frame::MAX_DATA_LEN);
    assert!(buf.is_empty(), "the buffer left as the frame itself");
    gw.set_peer_max_data(10 << 20);
    assert_eq!(
        gw.peer_max_data(),
        frame::MAX_DATA_LEN,
        "never above the limit"
    );
    let sizes: Vec<usize> = frames(&mut gw)
        .into_iter()
        .filter_map(|f| match f {
            Frame::Data { payload, .. } => Some(payload.len()),
            _ => None,
        })
        .collect();
    assert_eq!(
        sizes,
        vec![
            frame::BASE_DATA_LEN,
            frame::MAX_DATA_LEN,
            frame::MAX_DATA_LEN
        ]
    );
    // The same bytes again, delivered: the receiver takes 64 KiB frames.
    let (mut gw, mut agent2, id) = pair(cfg(1 << 20, 4 << 20));
    gw.set_peer_max_data(frame::MAX_DATA_LEN);
    assert_eq!(
        gw.write(id, &[4; frame::MAX_DATA_LEN]).unwrap(),
        frame::MAX_DATA_LEN
    );
    pump(&mut gw, &mut agent2).unwrap();
    assert_eq!(read_all(&mut agent2, id), vec![4; frame::MAX_DATA_LEN]);
    agent2.check_invariants().unwrap();
}
