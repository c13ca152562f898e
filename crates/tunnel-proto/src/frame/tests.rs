//! Unit tests of the frame layouts and the decoder's error cases.

use super::*;

fn round_trip(frame: Frame) {
    let mut buf = BytesMut::new();
    encode(&frame, &mut buf).expect("valid frame encodes");
    assert_eq!(buf.len(), frame.encoded_len());
    let mut bytes = buf.freeze();
    assert_eq!(decode(&mut bytes), Ok(Some(frame)));
    assert_eq!(decode(&mut bytes), Ok(None));
}

#[test]
fn every_frame_kind_round_trips() {
    let ip = Ipv4Addr::new(10, 0, 0, 5);
    for frame in [
        Frame::Open {
            stream: 1,
            target: Target::System { port: 22 },
            access: Access::Remote,
        },
        Frame::Open {
            stream: 3,
            target: Target::Colocated { ip, port: 3389 },
            access: Access::Remote,
        },
        Frame::Accept { stream: 1 },
        Frame::Refuse {
            stream: 1,
            code: 7,
            reason: "Remote Access is disabled on this site".into(),
        },
        Frame::Data {
            stream: 5,
            payload: Bytes::from_static(b"hello"),
        },
        Frame::Data {
            stream: 5,
            payload: Bytes::from(vec![0xab; MAX_DATA_LEN]),
        },
        Frame::Window {
            stream: 0,
            increment: 1 << 20,
        },
        Frame::Window {
            stream: 9,
            increment: 1,
        },
        Frame::Fin { stream: 1 },
        Frame::Lane { stream: 3 },
        Frame::Reset { stream: 1, code: 2 },
        Frame::Ping { data: u64::MAX },
        Frame::Pong { data: 7 },
        Frame::Control {
            json: Bytes::from_static(br#"{"alarm":"x"}"#),
        },
        Frame::GoAway {
            code: 1,
            reason: "bye ✓".into(),
        },
    ] {
        round_trip(frame);
    }
}

#[test]
fn open_layout_matches_the_docs() {
    let mut buf = BytesMut::new();
    let target = Target::Colocated {
        ip: Ipv4Addr::new(192, 168, 0, 20),
        port: 3389,
    };
    encode(
        &Frame::Open {
            stream: 1,
            target,
            access: Access::Remote,
        },
        &mut buf,
    )
    .unwrap();
    assert_eq!(
        &buf[..],
        &[0, 0, 7, 0x01, 0, 0, 0, 0, 1, 1, 192, 168, 0, 20, 0x0d, 0x3d]
    );
}

/// OPEN bodies as version 1 agents before Centralized Management sent and
/// received them: they must keep decoding as Remote Access opens.
#[test]
fn remote_access_open_bytes_are_unchanged() {
    let mut system = Bytes::from_static(&[0, 0, 3, 0x01, 0, 0, 0, 0, 5, 0, 0, 22]);
    assert_eq!(
        decode(&mut system),
        Ok(Some(Frame::Open {
            stream: 5,
            target: Target::System { port: 22 },
            access: Access::Remote,
        }))
    );
    let mut colocated =
        Bytes::from_static(&[0, 0, 7, 0x01, 0, 0, 0, 0, 1, 1, 192, 168, 0, 20, 0x0d, 0x3d]);
    assert!(matches!(
        decode(&mut colocated),
        Ok(Some(Frame::Open {
            access: Access::Remote,
            target: Target::Colocated { .. },
            ..
        }))
    ));
}

#[test]
fn central_open_layouts_match_the_docs() {
    let ip = Ipv4Addr::new(10, 0, 0, 6);
    for (target, bytes) in [
        (
            Target::System { port: 8443 },
            &[0, 0, 3, 0x01, 0, 0, 0, 0, 3, 2, 0x20, 0xfb][..],
        ),
        (
            Target::Colocated { ip, port: 8443 },
            &[0, 0, 7, 0x01, 0, 0, 0, 0, 3, 3, 10, 0, 0, 6, 0x20, 0xfb][..],
        ),
    ] {
        let frame = Frame::Open {
            stream: 3,
            target,
            access: Access::Central,
        };
        let mut buf = BytesMut::new();
        encode(&frame, &mut buf).unwrap();
        assert_eq!(&buf[..], bytes);
        round_trip(frame);
    }
}

#[test]
fn unknown_open_kinds_and_wrong_lengths_are_rejected() {
    for kind in [4u8, 0x80, 0xff] {
        let mut bytes = Bytes::from(vec![0, 0, 3, 0x01, 0, 0, 0, 0, 1, kind, 0, 22]);
        assert_eq!(decode(&mut bytes), Err(FrameError::BadTarget(kind)));
    }
    // A central co-located kind with a system-sized body.
    let mut short = Bytes::from_static(&[0, 0, 3, 0x01, 0, 0, 0, 0, 1, 3, 0x20, 0xfb]);
    assert!(matches!(
        decode(&mut short),
        Err(FrameError::BadLength { kind: "OPEN", .. })
    ));
}

#[test]
fn several_frames_in_one_message_decode_in_order() {
    let mut buf = BytesMut::new();
    encode(&Frame::Accept { stream: 1 }, &mut buf).unwrap();
    encode_data(1, b"abc", &mut buf).unwrap();
    encode(&Frame::Fin { stream: 1 }, &mut buf).unwrap();
    let mut bytes = buf.freeze();
    assert_eq!(decode(&mut bytes), Ok(Some(Frame::Accept { stream: 1 })));
    assert_eq!(
        decode(&mut bytes),
        Ok(Some(Frame::Data {
            stream: 1,
            payload: Bytes::from_static(b"abc")
        }))
    );
    assert_eq!(decode(&mut bytes), Ok(Some(Frame::Fin { stream: 1 })));
    assert_eq!(decode(&mut bytes), Ok(None));
}

#[test]
fn truncated_input_is_an_error_not_a_panic() {
    let mut buf = BytesMut::new();
    encode(&Frame::Reset { stream: 1, code: 2 }, &mut buf).unwrap();
    for cut in 1..buf.len() {
        let mut bytes = Bytes::copy_from_slice(&buf[..cut]);
        assert!(
            matches!(decode(&mut bytes), Err(FrameError::Truncated { .. })),
            "cut at {cut}"
        );
    }
}

#[test]
fn unknown_types_are_skipped_only_when_ignorable() {
    let unknown = [0, 0, 2, 0x7f, FLAG_IGNORABLE, 0, 0, 0, 0, 0xaa, 0xbb];
    let mut buf = BytesMut::from(&unknown[..]);
    encode(&Frame::Ping { data: 1 }, &mut buf).unwrap();
    let mut bytes = buf.freeze();
    assert_eq!(decode(&mut bytes), Ok(Some(Frame::Ping { data: 1 })));

    let mut strict = Bytes::from_static(&[0, 0, 0, 0x7f, 0, 0, 0, 0, 0]);
    assert_eq!(decode(&mut strict), Err(FrameError::UnknownType(0x7f)));
}

#[test]
fn stream_id_rules_are_enforced_both_ways() {
    let mut buf = BytesMut::new();
    assert_eq!(
        encode(&Frame::Fin { stream: 0 }, &mut buf),
        Err(FrameError::MissingStreamId("FIN"))
    );
    assert!(buf.is_empty());
    let mut bytes = Bytes::from_static(&[0, 0, 8, 0x08, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 1]);
    assert_eq!(
        decode(&mut bytes),
        Err(FrameError::UnexpectedStreamId("PING"))
    );
}

#[test]
fn oversized_data_and_bad_utf8_are_rejected() {
    let mut buf = BytesMut::new();
    assert!(encode_data(1, &vec![0; MAX_DATA_LEN + 1], &mut buf).is_err());
    let len = (MAX_DATA_LEN + 1) as u32;
    let mut header = len.to_be_bytes()[1..].to_vec();
    header.extend([0x04, 0, 0, 0, 0, 1]);
    header.extend(std::iter::repeat_n(0u8, MAX_DATA_LEN + 1));
    let mut at_limit = BytesMut::new();
    encode_data(1, &vec![0; MAX_DATA_LEN], &mut at_limit).unwrap();
    assert!(decode(&mut at_limit.freeze()).is_ok(), "64 KiB decodes");
    let mut bytes = Bytes::from(header);
    assert!(matches!(
        decode(&mut bytes),
        Err(FrameError::TooLarge { .. })
    ));

    let mut bad = Bytes::from_static(&[0, 0, 3, 0x03, 0, 0, 0, 0, 1, 9, 0xff, 0xfe]);
    assert_eq!(decode(&mut bad), Err(FrameError::InvalidUtf8("REFUSE")));
}

#[test]
fn truncate_reason_respects_char_boundaries() {
    let long = "é".repeat(MAX_REASON_LEN);
    let cut = truncate_reason(&long);
    assert!(cut.len() <= MAX_REASON_LEN);
    assert!(cut.chars().all(|c| c == 'é'));
}

#[test]
fn fuzz_decode_survives_garbage() {
    fuzz_decode(&[]);
    fuzz_decode(&[0xff; 64]);
    fuzz_decode(&[0, 0, 0, 0x02, 0, 0, 0, 0, 1, 0, 0, 0]);
}

#[test]
fn data_header_in_place_matches_encode_data() {
    for len in [0usize, 1, 300, MAX_DATA_LEN] {
        let payload: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
        let mut expected = BytesMut::new();
        encode_data(7, &payload, &mut expected).unwrap();
        let mut in_place = vec![0xaa; HEADER_LEN];
        in_place.extend_from_slice(&payload);
        put_data_header_in_place(7, &mut in_place).unwrap();
        assert_eq!(in_place, &expected[..], "payload of {len} bytes");
    }
    let mut too_long = vec![0; HEADER_LEN + MAX_DATA_LEN + 1];
    assert!(put_data_header_in_place(7, &mut too_long).is_err());
    let mut no_stream = vec![0; HEADER_LEN + 1];
    assert_eq!(
        put_data_header_in_place(0, &mut no_stream),
        Err(FrameError::MissingStreamId("DATA"))
    );
    assert!(no_stream.iter().all(|&b| b == 0), "untouched on error");
}
