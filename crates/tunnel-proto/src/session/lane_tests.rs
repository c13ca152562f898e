//! The quick lane (`lanes.rs`): which lane a stream's writes take, and that
//! the receiver puts the two connections' frames back in the sender's order
//! however they interleave.

use bytes::Bytes;

use super::tests::{cfg, events, pair, pump, read_all};
use super::*;

/// A pair with one open stream and the quick lane attached at both ends.
fn laned(c: SessionConfig) -> (Session, Session, u32) {
    let (mut gw, mut agent, id) = pair(c);
    gw.attach_quick_lane();
    agent.attach_quick_lane();
    (gw, agent, id)
}

/// Everything `from` queued on `lane`, as messages of one frame each.
fn take(from: &mut Session, lane: Lane) -> Vec<Bytes> {
    std::iter::from_fn(|| match lane {
        Lane::Main => from.poll_transmit(),
        Lane::Quick => from.poll_transmit_quick(),
    })
    .collect()
}

fn names(msgs: &[Bytes]) -> Vec<&'static str> {
    msgs.iter()
        .map(|m| frame::decode(&mut m.clone()).unwrap().unwrap().name())
        .collect()
}

fn deliver(to: &mut Session, lane: Lane, msgs: Vec<Bytes>) -> Result<(), ProtocolError> {
    for m in msgs {
        to.receive_on(lane, m, None)?;
    }
    Ok(())
}

#[test]
fn short_writes_move_a_stream_to_the_quick_lane_and_a_long_one_back() {
    let (mut gw, agent, id) = laned(cfg(1 << 20, 4 << 20));
    let _ = take(&mut gw, Lane::Main);
    gw.write(id, b"first").unwrap();
    assert_eq!(
        gw.stream_lane(id),
        Lane::Main,
        "one short write is not enough"
    );
    gw.write(id, b"second").unwrap();
    assert_eq!(gw.stream_lane(id), Lane::Quick);
    gw.write(id, b"third").unwrap();
    let main = take(&mut gw, Lane::Main);
    let quick = take(&mut gw, Lane::Quick);
    assert_eq!(
        names(&main),
        ["DATA", "LANE"],
        "LANE follows the data sent before it"
    );
    assert_eq!(names(&quick), ["DATA", "DATA"]);

    gw.write(id, &vec![7; BULK_WRITE]).unwrap();
    assert_eq!(gw.stream_lane(id), Lane::Main);
    gw.finish(id).unwrap();
    assert_eq!(names(&take(&mut gw, Lane::Quick)), ["LANE"]);
    assert_eq!(names(&take(&mut gw, Lane::Main)), ["DATA", "FIN"]);

    // Without a quick lane nothing moves.
    let (mut gw, _agent, id) = pair(cfg(1 << 20, 4 << 20));
    for _ in 0..4 {
        gw.write(id, b"x").unwrap();
    }
    assert_eq!(gw.stream_lane(id), Lane::Main);
    assert_eq!(gw.poll_transmit_quick(), None);
    agent.check_invariants().unwrap();
}

#[test]
fn frames_from_the_new_lane_wait_for_the_lane_frame_on_the_old_one() {
    let (mut gw, mut agent, id) = laned(cfg(1 << 20, 4 << 20));
    pump(&mut gw, &mut agent).unwrap();
    let _ = events(&mut agent);
    gw.write(id, b"a").unwrap();
    gw.write(id, b"b").unwrap(); // moves: LANE on main, then quick
    gw.write(id, b"c").unwrap();
    gw.write(id, &vec![b'd'; BULK_WRITE]).unwrap(); // back: LANE on quick
    gw.write(id, b"e").unwrap();
    gw.finish(id).unwrap();
    let main = take(&mut gw, Lane::Main);
    let quick = take(&mut gw, Lane::Quick);
    // The quick lane overtakes the main one entirely.
    deliver(&mut agent, Lane::Quick, quick).unwrap();
    assert!(
        read_all(&mut agent, id).is_empty(),
        "held until the main lane's LANE"
    );
    deliver(&mut agent, Lane::Main, main).unwrap();
    let mut want = b"abc".to_vec();
    want.extend(vec![b'd'; BULK_WRITE]);
    want.extend(b"e");
    assert_eq!(read_all(&mut agent, id), want);
    assert_eq!(agent.read(id, 1).unwrap(), ReadOutcome::Fin);
    agent.check_invariants().unwrap();
}

/// A small deterministic generator, so that a failure names its seed.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

#[test]
fn bytes_keep_their_order_however_the_lanes_interleave() {
    for seed in 0..200u64 {
        let mut rng = Lcg(seed);
        let (mut gw, mut agent, id) = laned(cfg(1 << 20, 4 << 20));
        pump(&mut gw, &mut agent).unwrap();
        let mut sent = Vec::new();
        let mut got = Vec::new();
        let mut in_flight: [std::collections::VecDeque<Bytes>; 2] = Default::default();
        let mut counter = 0u8;
        for _ in 0..60 {
            let len = match rng.next(3) {
                0 => 1 + rng.next(100) as usize,
                1 => 1 + rng.next(BULK_WRITE as u64 - 1) as usize,
                _ => BULK_WRITE + rng.next(8000) as usize,
            };
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    counter = counter.wrapping_add(1);
                    counter
                })
                .collect();
            let n = gw.write(id, &data).unwrap();
            sent.extend_from_slice(&data[..n]);
            in_flight[0].extend(take(&mut gw, Lane::Main));
            in_flight[1].extend(take(&mut gw, Lane::Quick));
            // Each lane delivers some of what it carries, in its own order.
            for (i, lane) in [Lane::Main, Lane::Quick].into_iter().enumerate() {
                for _ in 0..rng.next(4) {
                    if let Some(m) = in_flight[i].pop_front() {
                        agent.receive_on(lane, m, None).unwrap();
                    }
                }
            }
            got.extend(read_all(&mut agent, id));
            pump(&mut agent, &mut gw).unwrap();
            agent.check_invariants().unwrap();
        }
        for (i, lane) in [Lane::Main, Lane::Quick].into_iter().enumerate() {
            deliver(&mut agent, lane, in_flight[i].drain(..).collect()).unwrap();
        }
        got.extend(read_all(&mut agent, id));
        assert_eq!(got, sent, "seed {seed}");
    }
}

#[test]
fn lane_frames_without_a_quick_lane_break_the_protocol() {
    let (mut gw, mut agent, id) = pair(cfg(1 << 20, 4 << 20));
    let _ = take(&mut gw, Lane::Main);
    let mut lane = BytesMut::new();
    frame::encode(&Frame::Lane { stream: id }, &mut lane).unwrap();
    let err = agent.receive(lane.freeze()).unwrap_err();
    assert!(
        matches!(err, ProtocolError::UnexpectedFrame { frame: "LANE", .. }),
        "{err}"
    );

    let (_gw, mut agent, id) = pair(cfg(1 << 20, 4 << 20));
    let mut data = BytesMut::new();
    frame::encode_data(id, b"x", &mut data).unwrap();
    let err = agent
        .receive_on(Lane::Quick, data.freeze(), None)
        .unwrap_err();
    assert!(
        matches!(err, ProtocolError::UnexpectedFrame { frame: "DATA", .. }),
        "{err}"
    );
}

#[test]
fn only_stream_data_may_come_on_the_quick_lane() {
    let (_gw, mut agent, _id) = laned(cfg(1 << 20, 4 << 20));
    let mut ping = BytesMut::new();
    frame::encode(&Frame::Ping { data: 1 }, &mut ping).unwrap();
    let err = agent
        .receive_on(Lane::Quick, ping.freeze(), None)
        .unwrap_err();
    assert!(
        matches!(err, ProtocolError::UnexpectedFrame { frame: "PING", .. }),
        "{err}"
    );
    assert!(agent.is_closed());
}

#[test]
fn what_a_peer_makes_us_hold_is_bounded_by_the_window() {
    let (_gw, mut agent, id) = laned(cfg(64 * 1024, 4 << 20));
    // Stream data on the quick lane without a LANE first: held, up to the
    // window and a little more, then a flow-control error.
    let mut result = Ok(());
    for _ in 0..20 {
        let mut data = BytesMut::new();
        frame::encode_data(id, &[0; 16 * 1024], &mut data).unwrap();
        result = agent.receive_on(Lane::Quick, data.freeze(), None);
        if result.is_err() {
            break;
        }
    }
    let err = result.unwrap_err();
    assert!(
        matches!(err, ProtocolError::StreamWindowExceeded { .. }),
        "{err}"
    );
    assert_eq!(err.goaway_code(), codes::GOAWAY_FLOW_CONTROL_ERROR);
}

#[test]
fn a_reset_ends_a_stream_with_frames_held() {
    let (mut gw, mut agent, id) = laned(cfg(1 << 20, 4 << 20));
    pump(&mut gw, &mut agent).unwrap();
    gw.write(id, b"a").unwrap();
    gw.write(id, b"b").unwrap();
    let main = take(&mut gw, Lane::Main);
    deliver(&mut agent, Lane::Quick, take(&mut gw, Lane::Quick)).unwrap();
    gw.reset(id, codes::RESET_CANCEL).unwrap();
    // RESET overtakes; the old lane's DATA and LANE then find no stream.
    deliver(&mut agent, Lane::Main, take(&mut gw, Lane::Main)).unwrap();
    deliver(&mut agent, Lane::Main, main).unwrap();
    assert!(!agent.has_stream(id));
    assert_eq!(agent.connection_stats().buffered, 0);
    agent.check_invariants().unwrap();
}
