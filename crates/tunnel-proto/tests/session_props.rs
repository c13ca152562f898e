//! Operation-sequence tests of the sans-IO session (quinn-proto style): a
//! gateway and an agent session joined by an in-memory wire, driven by random
//! sequences of application calls and deliveries, checked after every step.
//!
//! Invariants:
//! - no stream buffers more than its window, the connection never buffers
//!   more than its window, and the accounting adds up (`check_invariants`);
//! - credit is never negative (u64 arithmetic would panic in debug builds)
//!   and never exceeds what the receiver granted;
//! - honest peers never see a protocol error, and every byte arrives intact;
//! - every opened stream ends: after finishing and reading everything (or
//!   resets), both sessions hold no streams.
//!
//! A second property feeds random frames to a session and checks that it
//! never panics and keeps its invariants whatever it concludes.

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use tunnel_proto::frame::{self, Access, Frame, Target};
use tunnel_proto::session::{Event, ReadOutcome, Role, Session, SessionConfig};

#[derive(Debug, Clone)]
enum Op {
    Open,
    Answer {
        pick: usize,
        accept: bool,
    },
    Write {
        gateway: bool,
        pick: usize,
        len: usize,
    },
    Read {
        gateway: bool,
        pick: usize,
        max: usize,
    },
    Finish {
        gateway: bool,
        pick: usize,
    },
    Reset {
        gateway: bool,
        pick: usize,
    },
    Deliver {
        to_agent: bool,
        frames: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => Just(Op::Open),
        1 => (any::<usize>(), prop::bool::weighted(0.8)).prop_map(|(pick, accept)| Op::Answer { pick, accept }),
        4 => (any::<bool>(), any::<usize>(), 0..3000usize).prop_map(|(gateway, pick, len)| Op::Write { gateway, pick, len }),
        4 => (any::<bool>(), any::<usize>(), 1..3000usize).prop_map(|(gateway, pick, max)| Op::Read { gateway, pick, max }),
        1 => (any::<bool>(), any::<usize>()).prop_map(|(gateway, pick)| Op::Finish { gateway, pick }),
        1 => (any::<bool>(), any::<usize>()).prop_map(|(gateway, pick)| Op::Reset { gateway, pick }),
        4 => (any::<bool>(), 1..10usize).prop_map(|(to_agent, frames)| Op::Deliver { to_agent, frames }),
    ]
}

/// The byte at `offset` of what `gateway`'s side writes on `stream`.
fn pattern(stream: u32, gateway: bool, offset: u64) -> u8 {
    (offset.wrapping_mul(31) as u32 ^ stream.wrapping_mul(7) ^ u32::from(gateway)) as u8
}

struct Harness {
    gw: Session,
    agent: Session,
    /// Streams the agent has been offered and not yet answered.
    pending: Vec<u32>,
    /// (stream, writer is gateway) -> bytes written / bytes read by the peer.
    written: HashMap<(u32, bool), u64>,
    read: HashMap<(u32, bool), u64>,
    cfg: SessionConfig,
    /// A synthetic clock for `receive_at`, so windows auto-tune as well.
    now: std::time::Instant,
}

impl Harness {
    fn new(cfg: SessionConfig) -> Self {
        Harness {
            gw: Session::new(Role::Gateway, cfg),
            agent: Session::new(Role::Agent, cfg),
            pending: Vec::new(),
            written: HashMap::new(),
            read: HashMap::new(),
            cfg,
            now: std::time::Instant::now(),
        }
    }

    fn side(&mut self, gateway: bool) -> &mut Session {
        if gateway {
            &mut self.gw
        } else {
            &mut self.agent
        }
    }

    fn pick(&self, gateway: bool, pick: usize) -> Option<u32> {
        let s = if gateway { &self.gw } else { &self.agent };
        let mut ids: Vec<u32> = s.stream_ids().collect();
        ids.sort_unstable();
        (!ids.is_empty()).then(|| ids[pick % ids.len()])
    }

    fn drain_events(&mut self) {
        while let Some(e) = self.agent.poll_event() {
            if let Event::Incoming { id, .. } = e {
                self.pending.push(id);
            }
        }
        self.pending.retain(|id| self.agent.has_stream(*id));
        while self.gw.poll_event().is_some() {}
    }

    fn deliver(&mut self, to_agent: bool, frames: usize) -> Result<(), TestCaseError> {
        self.now += std::time::Duration::from_micros(400);
        let now = self.now;
        let (from, to) = if to_agent {
            (&mut self.gw, &mut self.agent)
        } else {
            (&mut self.agent, &mut self.gw)
        };
        let mut msg = BytesMut::new();
        for _ in 0..frames {
            match from.poll_transmit() {
                Some(f) => msg.extend_from_slice(&f),
                None => break,
            }
        }
        if !msg.is_empty() {
            let r = to.receive_at(msg.freeze(), now);
            prop_assert!(r.is_ok(), "honest peer saw a protocol error: {:?}", r);
        }
        Ok(())
    }

    fn read(&mut self, gateway: bool, id: u32, max: usize) -> Result<bool, TestCaseError> {
        match self.side(gateway).read(id, max) {
            Ok(ReadOutcome::Data(b)) => {
                prop_assert!(b.len() <= max && !b.is_empty());
                let offset = self.read.entry((id, !gateway)).or_default();
                for (i, byte) in b.iter().enumerate() {
                    prop_assert_eq!(
                        *byte,
                        pattern(id, !gateway, *offset + i as u64),
                        "stream {} corrupted",
                        id
                    );
                }
                *offset += b.len() as u64;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match *op {
            Op::Open => {
                let _ = self.gw.open(Target::System { port: 22 }, Access::Remote);
            }
            Op::Answer { pick, accept } => {
                if !self.pending.is_empty() {
                    let id = self.pending.remove(pick % self.pending.len());
                    if accept {
                        self.agent.accept(id).unwrap();
                    } else {
                        self.agent.refuse(id, 1, "no").unwrap();
                    }
                }
            }
            Op::Write { gateway, pick, len } => {
                if let Some(id) = self.pick(gateway, pick) {
                    let offset = *self.written.get(&(id, gateway)).unwrap_or(&0);
                    let data: Vec<u8> = (0..len as u64)
                        .map(|i| pattern(id, gateway, offset + i))
                        .collect();
                    let cap = self.side(gateway).send_capacity(id);
                    if let Ok(n) = self.side(gateway).write(id, &data) {
                        prop_assert_eq!(n, cap.min(len));
                        *self.written.entry((id, gateway)).or_default() += n as u64;
                    }
                }
            }
            Op::Read { gateway, pick, max } => {
                if let Some(id) = self.pick(gateway, pick) {
                    self.read(gateway, id, max)?;
                }
            }
            Op::Finish { gateway, pick } => {
                if let Some(id) = self.pick(gateway, pick) {
                    let _ = self.side(gateway).finish(id);
                }
            }
            Op::Reset { gateway, pick } => {
                if let Some(id) = self.pick(gateway, pick) {
                    let _ = self.side(gateway).reset(id, 9);
                }
            }
            Op::Deliver { to_agent, frames } => self.deliver(to_agent, frames)?,
        }
        self.drain_events();
        self.check()
    }

    fn check(&self) -> Result<(), TestCaseError> {
        for s in [&self.gw, &self.agent] {
            if let Err(e) = s.check_invariants() {
                return Err(TestCaseError::fail(e));
            }
            prop_assert!(!s.is_closed());
            let conn = s.connection_stats();
            prop_assert!(conn.send_credit <= u64::from(self.cfg.connection_window.max(1)));
            prop_assert!(conn.buffered <= self.cfg.connection_window);
            for id in s.stream_ids() {
                let st = s.stream_stats(id).unwrap();
                prop_assert!(st.buffered <= self.cfg.max_stream_window);
                prop_assert!(st.send_credit <= u64::from(self.cfg.max_stream_window.max(1)));
            }
        }
        Ok(())
    }

    /// Both applications answer, read everything and finish everything.
    fn wind_down(&mut self) -> Result<(), TestCaseError> {
        for _ in 0..10_000 {
            for id in std::mem::take(&mut self.pending) {
                self.agent.accept(id).unwrap();
            }
            for gateway in [true, false] {
                let ids: Vec<u32> = self.side(gateway).stream_ids().collect();
                for id in ids {
                    while self.read(gateway, id, usize::MAX)? {}
                    let _ = self.side(gateway).finish(id);
                }
            }
            self.deliver(true, usize::MAX)?;
            self.deliver(false, usize::MAX)?;
            self.drain_events();
            self.check()?;
            let quiet = self.gw.transmit_len() == 0 && self.agent.transmit_len() == 0;
            if quiet && self.gw.stream_count() == 0 && self.agent.stream_count() == 0 {
                return Ok(());
            }
        }
        Err(TestCaseError::fail(format!(
            "streams never ended: gateway {:?}, agent {:?}",
            self.gw.stream_ids().collect::<Vec<_>>(),
            self.agent.stream_ids().collect::<Vec<_>>()
        )))
    }
}

fn config() -> impl Strategy<Value = SessionConfig> {
    (1..4000u32, 1..8u32, 1..9000u32, 1..6u32).prop_map(
        |(stream_window, growth, connection_window, max_streams)| SessionConfig {
            stream_window,
            max_stream_window: stream_window * growth,
            connection_window,
            max_streams,
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn honest_peers_keep_every_invariant(cfg in config(), ops in prop::collection::vec(op(), 1..150)) {
        let mut h = Harness::new(cfg);
        // Start with a few accepted streams so most cases move data.
        for _ in 0..cfg.max_streams.min(3) {
            h.apply(&Op::Open)?;
        }
        h.apply(&Op::Deliver { to_agent: true, frames: usize::MAX })?;
        for _ in 0..h.pending.len() {
            h.apply(&Op::Answer { pick: 0, accept: true })?;
        }
        h.apply(&Op::Deliver { to_agent: false, frames: usize::MAX })?;
        for op in &ops {
            h.apply(op)?;
        }
        h.wind_down()?;
        // Every byte written was read, except on reset streams; no stream left.
        prop_assert_eq!(h.gw.connection_stats().buffered, 0);
        prop_assert_eq!(h.agent.connection_stats().buffered, 0);
    }

    #[test]
    fn hostile_frames_never_break_the_accounting(
        cfg in config(),
        frames in prop::collection::vec(hostile_frame(), 1..60),
    ) {
        let mut agent = Session::new(Role::Agent, cfg);
        for f in frames {
            let mut buf = BytesMut::new();
            frame::encode(&f, &mut buf).unwrap();
            let result = agent.receive(buf.freeze());
            while let Some(e) = agent.poll_event() {
                if let Event::Incoming { id, .. } = e {
                    let _ = agent.accept(id);
                }
            }
            if let Err(e) = agent.check_invariants() {
                return Err(TestCaseError::fail(e));
            }
            if result.is_err() {
                prop_assert!(agent.is_closed());
                prop_assert_eq!(agent.stream_count(), 0);
            }
            for id in agent.stream_ids().collect::<Vec<_>>() {
                prop_assert!(agent.stream_stats(id).unwrap().buffered <= cfg.max_stream_window);
                let _ = agent.read(id, 100);
            }
        }
    }
}

/// Frames a misbehaving gateway might send: small ids so they hit streams.
fn hostile_frame() -> impl Strategy<Value = Frame> {
    let id = 1..8u32;
    prop_oneof![
        (id.clone(), any::<bool>()).prop_map(|(stream, central)| Frame::Open {
            stream,
            target: Target::System { port: 8443 },
            access: if central {
                Access::Central
            } else {
                Access::Remote
            },
        }),
        (id.clone(), 0..3000usize).prop_map(|(stream, n)| Frame::Data {
            stream,
            payload: Bytes::from(vec![1; n])
        }),
        (0..8u32, 0..5000u32).prop_map(|(stream, increment)| Frame::Window { stream, increment }),
        id.clone().prop_map(|stream| Frame::Fin { stream }),
        id.clone()
            .prop_map(|stream| Frame::Reset { stream, code: 1 }),
        id.clone().prop_map(|stream| Frame::Accept { stream }),
        any::<u64>().prop_map(|data| Frame::Ping { data }),
    ]
}
