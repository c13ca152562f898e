//! Property tests of the frame codec: every valid frame round-trips, a
//! message of several frames decodes back to the same sequence, and no input
//! makes the decoder panic.

use std::net::Ipv4Addr;

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use tunnel_proto::frame::{self, Access, Frame, Target, MAX_DATA_LEN, MAX_REASON_LEN};

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        any::<u16>().prop_map(|port| Target::System { port }),
        (any::<u32>(), any::<u16>()).prop_map(|(ip, port)| Target::Colocated {
            ip: Ipv4Addr::from(ip),
            port
        }),
    ]
}

fn access() -> impl Strategy<Value = Access> {
    prop_oneof![Just(Access::Remote), Just(Access::Central)]
}

fn reason() -> impl Strategy<Value = String> {
    ".{0,64}"
        .prop_map(|s: String| frame::truncate_reason(&s))
        .prop_filter("fits", |s| s.len() <= MAX_REASON_LEN)
}

fn stream() -> impl Strategy<Value = u32> {
    1..=u32::MAX
}

fn any_frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        (stream(), target(), access()).prop_map(|(stream, target, access)| Frame::Open {
            stream,
            target,
            access
        }),
        stream().prop_map(|stream| Frame::Accept { stream }),
        (stream(), any::<u8>(), reason()).prop_map(|(stream, code, reason)| Frame::Refuse {
            stream,
            code,
            reason
        }),
        (
            stream(),
            prop::collection::vec(any::<u8>(), 0..=MAX_DATA_LEN)
        )
            .prop_map(|(stream, p)| Frame::Data {
                stream,
                payload: Bytes::from(p)
            }),
        (any::<u32>(), any::<u32>())
            .prop_map(|(stream, increment)| Frame::Window { stream, increment }),
        stream().prop_map(|stream| Frame::Fin { stream }),
        stream().prop_map(|stream| Frame::Lane { stream }),
        (stream(), any::<u32>()).prop_map(|(stream, code)| Frame::Reset { stream, code }),
        any::<u64>().prop_map(|data| Frame::Ping { data }),
        any::<u64>().prop_map(|data| Frame::Pong { data }),
        prop::collection::vec(any::<u8>(), 0..256).prop_map(|j| Frame::Control {
            json: Bytes::from(j)
        }),
        (any::<u32>(), reason()).prop_map(|(code, reason)| Frame::GoAway { code, reason }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_message_of_frames_decodes_back_to_the_same_frames(frames in prop::collection::vec(any_frame(), 1..8)) {
        let mut buf = BytesMut::new();
        for f in &frames {
            frame::encode(f, &mut buf).unwrap();
        }
        prop_assert_eq!(buf.len(), frames.iter().map(Frame::encoded_len).sum::<usize>());
        let mut msg = buf.freeze();
        let mut back = Vec::new();
        while let Some(f) = frame::decode(&mut msg).unwrap() {
            back.push(f);
        }
        prop_assert_eq!(back, frames);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..512)) {
        frame::fuzz_decode(&data);
        tunnel_proto::fuzz_session(&data);
    }

    #[test]
    fn corrupted_valid_messages_never_panic(
        frames in prop::collection::vec(any_frame(), 1..4),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut buf = BytesMut::new();
        for f in &frames {
            frame::encode(f, &mut buf).unwrap();
        }
        for (i, b) in flips {
            let at = i.index(buf.len());
            buf[at] ^= b;
        }
        frame::fuzz_decode(&buf);
        tunnel_proto::fuzz_session(&buf);
    }
}

/// Found by the `tunnel_session` fuzz target: a connection WINDOW beyond
/// 2^31-1 was reported as a protocol error but left applied, so the dead
/// session's accounting was inconsistent.
#[test]
fn oversized_connection_window_is_refused_without_being_applied() {
    let message = [
        0x00, 0x00, 0x04, 0x05, 0x03, 0x00, 0x00, 0x00, 0x00, 0xc7, 0x03, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00,
    ];
    tunnel_proto::fuzz_session(&message);
}

/// Found by `hostile_frames_never_break_the_accounting`: a protocol error
/// while a stream still held unread bytes left them counted against the
/// closed session's connection window.
#[test]
fn closing_on_a_protocol_error_releases_unread_bytes_from_the_accounting() {
    use bytes::BytesMut;
    use tunnel_proto::session::{Event, Role, Session, SessionConfig};
    use tunnel_proto::{encode, Frame, Target};
    let cfg = SessionConfig {
        stream_window: 1062,
        max_stream_window: 1062,
        connection_window: 1062,
        max_streams: 1,
    };
    let mut agent = Session::new(Role::Agent, cfg);
    let frames = [
        Frame::Open {
            stream: 7,
            target: Target::System { port: 22 },
            access: tunnel_proto::Access::Remote,
        },
        Frame::Data {
            stream: 7,
            payload: bytes::Bytes::from_static(&[1u8; 101]),
        },
        // An id below the last one: a protocol error that closes the session.
        Frame::Open {
            stream: 1,
            target: Target::System { port: 22 },
            access: tunnel_proto::Access::Remote,
        },
    ];
    for (i, f) in frames.into_iter().enumerate() {
        let mut buf = BytesMut::new();
        encode(&f, &mut buf).unwrap();
        let result = agent.receive(buf.freeze());
        while let Some(e) = agent.poll_event() {
            if let Event::Incoming { id, .. } = e {
                let _ = agent.accept(id);
            }
        }
        if i == 1 {
            let _ = agent.read(7, 100);
        }
        if i == 2 {
            assert!(result.is_err());
        }
        agent.check_invariants().unwrap();
    }
}
