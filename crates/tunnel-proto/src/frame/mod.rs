//! Frame codec: the byte layout of everything sent inside binary websocket
//! messages after the handshake.
//!
//! This module exists so that parsing is a pure function over bytes that can
//! be unit-tested, property-tested and fuzzed without sockets. It knows
//! nothing about stream state; [`crate::session`] decides whether a well-formed
//! frame is also a legal one.
//!
//! Every frame starts with a 9-byte header (see the crate docs for the full
//! table). The header carries the body length, so a websocket message holding
//! several frames decodes unambiguously, and a truncated frame is an error
//! rather than "need more bytes": websocket messages are complete units.

use std::fmt;
use std::net::Ipv4Addr;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

/// Bytes in every frame header: length (u24), type (u8), flags (u8), stream (u32).
pub const HEADER_LEN: usize = 9;
/// Largest DATA payload a receiver accepts.
pub const MAX_DATA_LEN: usize = 64 * 1024;
/// Largest DATA payload every peer accepts: earlier versions refused more,
/// so a sender uses more (up to [`MAX_DATA_LEN`], by default
/// [`LARGE_DATA_LEN`]) only towards a peer that announced `large_data` in
/// the handshake (`handshake::feature::LARGE_DATA`).
pub const BASE_DATA_LEN: usize = 16 * 1024;
/// Plaintext bytes in a full TLS record.
const TLS_RECORD_PLAINTEXT: usize = 16 * 1024;
/// Header of a masked websocket message of 126 to 65,535 bytes (the agent's
/// messages: client frames are masked; the gateway's headers are 4 bytes).
const MASKED_WS_HEADER: usize = 8;
/// The DATA payload a sender uses towards a peer that announced
/// `large_data`: the largest whose frame, inside its websocket message,
/// fills four TLS records and no more. A full [`MAX_DATA_LEN`] payload made
/// each message 13-17 bytes longer than four records; rustls sent those as a
/// fifth record of their own, in a second system call, and the peer
/// decrypted a tiny record per 64 KiB (seen with strace during an upload).
pub const LARGE_DATA_LEN: usize = 4 * TLS_RECORD_PLAINTEXT - MASKED_WS_HEADER - HEADER_LEN;
/// Largest REFUSE / GOAWAY reason text in bytes; longer reasons are cut by the
/// session before encoding.
pub const MAX_REASON_LEN: usize = 1024;
/// Largest CONTROL payload: what a u24 length can say.
pub const MAX_CONTROL_LEN: usize = (1 << 24) - 1;
/// Flag bit: a receiver that does not know this frame type skips it instead
/// of closing the session. Known types ignore the bit.
pub const FLAG_IGNORABLE: u8 = 0x80;

const MAX_BODY_LEN: usize = (1 << 24) - 1;

/// Frame type bytes on the wire.
mod kind {
    pub const OPEN: u8 = 0x01;
    pub const ACCEPT: u8 = 0x02;
    pub const REFUSE: u8 = 0x03;
    pub const DATA: u8 = 0x04;
    pub const WINDOW: u8 = 0x05;
    pub const FIN: u8 = 0x06;
    pub const RESET: u8 = 0x07;
    pub const PING: u8 = 0x08;
    pub const PONG: u8 = 0x09;
    pub const CONTROL: u8 = 0x0a;
    pub const GOAWAY: u8 = 0x0b;
    pub const LANE: u8 = 0x0c;
}

/// What the gateway asks the agent to connect a stream to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Target {
    /// One of the site system's own services (SSH, HTTPS, ...), by port.
    System { port: u16 },
    /// A co-located server on the site's LAN, reachable only through a tunnel
    /// the site lists.
    Colocated { ip: Ipv4Addr, port: u16 },
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::System { port } => write!(f, "system port {port}"),
            Target::Colocated { ip, port } => write!(f, "{ip}:{port}"),
        }
    }
}

/// Which of the site's remote-operations levels of access (manual, Part 8)
/// a stream is opened under. The same [`Target`] is allowed or refused
/// differently depending on it: see [`crate::SiteSettings::permits`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// Remote Access (plus Co-located Servers for a co-located target): a
    /// partner's CONNECT tunnel through the front door.
    #[default]
    Remote,
    /// Centralized Management: the admin tools (Web Manager, System Status,
    /// SysMonitor) through the central-management proxy, to port
    /// [`CENTRAL_PORT`] only.
    Central,
}

/// The port of the system's web services that Centralized Management opens
/// (IP Office Web Manager, and the SSA / SysMonitor websockets).
pub const CENTRAL_PORT: u16 = 8443;

/// Bits of OPEN's target-kind byte: bit 0 says co-located (an IPv4 address
/// follows), bit 1 says Centralized Management. Kinds 0 and 1 are the
/// original Remote Access layouts, unchanged.
mod target_kind {
    pub const COLOCATED: u8 = 0b01;
    pub const CENTRAL: u8 = 0b10;
    pub const ALL: u8 = COLOCATED | CENTRAL;
}

/// One protocol frame. See the crate docs for the byte layout of each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Open {
        stream: u32,
        target: Target,
        /// Under which level of access the stream is asked for; old peers
        /// only ever send [`Access::Remote`].
        access: Access,
    },
    Accept {
        stream: u32,
    },
    Refuse {
        stream: u32,
        code: u8,
        reason: String,
    },
    Data {
        stream: u32,
        payload: Bytes,
    },
    /// `stream == 0` updates the connection window.
    Window {
        stream: u32,
        increment: u32,
    },
    Fin {
        stream: u32,
    },
    /// The sender moves this stream's direction to the other connection of
    /// the session (the quick lane, see `session::lanes`): what it sends of
    /// the stream after this frame travels there. Sent only on a session
    /// with a quick lane.
    Lane {
        stream: u32,
    },
    Reset {
        stream: u32,
        code: u32,
    },
    Ping {
        data: u64,
    },
    Pong {
        data: u64,
    },
    /// JSON text; the codec does not parse it, the session does.
    Control {
        json: Bytes,
    },
    GoAway {
        code: u32,
        reason: String,
    },
}

/// Why bytes are not a frame, or a frame cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("truncated frame: {needed} bytes needed, {available} available")]
    Truncated { needed: usize, available: usize },
    #[error("unknown frame type 0x{0:02x} without the ignorable flag")]
    UnknownType(u8),
    #[error("{0} frame needs a non-zero stream id")]
    MissingStreamId(&'static str),
    #[error("{0} frame must have stream id 0")]
    UnexpectedStreamId(&'static str),
    #[error("{kind} frame body of {len} bytes is malformed")]
    BadLength { kind: &'static str, len: usize },
    #[error("{kind} body of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        kind: &'static str,
        len: usize,
        max: usize,
    },
    #[error("unknown target kind {0} in OPEN")]
    BadTarget(u8),
    #[error("{0} reason is not valid UTF-8")]
    InvalidUtf8(&'static str),
}

impl Frame {
    /// The frame's name as used in errors and docs.
    pub fn name(&self) -> &'static str {
        match self {
            Frame::Open { .. } => "OPEN",
            Frame::Accept { .. } => "ACCEPT",
            Frame::Refuse { .. } => "REFUSE",
            Frame::Data { .. } => "DATA",
            Frame::Window { .. } => "WINDOW",
            Frame::Fin { .. } => "FIN",
            Frame::Lane { .. } => "LANE",
            Frame::Reset { .. } => "RESET",
            Frame::Ping { .. } => "PING",
            Frame::Pong { .. } => "PONG",
            Frame::Control { .. } => "CONTROL",
            Frame::GoAway { .. } => "GOAWAY",
        }
    }

    fn kind(&self) -> u8 {
        match self {
            Frame::Open { .. } => kind::OPEN,
            Frame::Accept { .. } => kind::ACCEPT,
            Frame::Refuse { .. } => kind::REFUSE,
            Frame::Data { .. } => kind::DATA,
            Frame::Window { .. } => kind::WINDOW,
            Frame::Fin { .. } => kind::FIN,
            Frame::Lane { .. } => kind::LANE,
            Frame::Reset { .. } => kind::RESET,
            Frame::Ping { .. } => kind::PING,
            Frame::Pong { .. } => kind::PONG,
            Frame::Control { .. } => kind::CONTROL,
            Frame::GoAway { .. } => kind::GOAWAY,
        }
    }

    /// The stream id field of the header (0 for connection-level frames).
    pub fn stream(&self) -> u32 {
        match self {
            Frame::Open { stream, .. }
            | Frame::Accept { stream }
            | Frame::Refuse { stream, .. }
            | Frame::Data { stream, .. }
            | Frame::Window { stream, .. }
            | Frame::Fin { stream }
            | Frame::Lane { stream }
            | Frame::Reset { stream, .. } => *stream,
            Frame::Ping { .. }
            | Frame::Pong { .. }
            | Frame::Control { .. }
            | Frame::GoAway { .. } => 0,
        }
    }

    fn body_len(&self) -> usize {
        match self {
            Frame::Open { target, .. } => match target {
                Target::System { .. } => 3,
                Target::Colocated { .. } => 7,
            },
            Frame::Accept { .. } | Frame::Fin { .. } | Frame::Lane { .. } => 0,
            Frame::Refuse { reason, .. } => 1 + reason.len(),
            Frame::Data { payload, .. } => payload.len(),
            Frame::Window { .. } | Frame::Reset { .. } => 4,
            Frame::Ping { .. } | Frame::Pong { .. } => 8,
            Frame::Control { json } => json.len(),
            Frame::GoAway { reason, .. } => 4 + reason.len(),
        }
    }

    /// Bytes this frame takes on the wire, header included.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.body_len()
    }

    /// Checks the limits and stream-id rules that `decode` enforces, so that
    /// everything `encode` writes also decodes.
    pub fn validate(&self) -> Result<(), FrameError> {
        let name = self.name();
        let (stream_frame, len, max) = match self {
            Frame::Window { .. } => return Ok(()),
            Frame::Data { payload, .. } => (true, payload.len(), MAX_DATA_LEN),
            Frame::Refuse { reason, .. } => (true, reason.len(), MAX_REASON_LEN),
            Frame::GoAway { reason, .. } => (false, reason.len(), MAX_REASON_LEN),
            Frame::Control { json } => (false, json.len(), MAX_CONTROL_LEN),
            Frame::Ping { .. } | Frame::Pong { .. } => (false, 0, 0),
            _ => (true, 0, 0),
        };
        if len > max {
            return Err(FrameError::TooLarge {
                kind: name,
                len,
                max,
            });
        }
        check_stream_id(name, stream_frame, self.stream())
    }
}

fn check_stream_id(name: &'static str, stream_frame: bool, stream: u32) -> Result<(), FrameError> {
    match (stream_frame, stream) {
        (true, 0) => Err(FrameError::MissingStreamId(name)),
        (false, s) if s != 0 => Err(FrameError::UnexpectedStreamId(name)),
        _ => Ok(()),
    }
}

fn put_header(dst: &mut impl BufMut, body_len: usize, kind: u8, stream: u32) {
    // body_len < 2^24 is guaranteed by the callers' limits.
    dst.put_uint(body_len as u64, 3);
    dst.put_u8(kind);
    dst.put_u8(0);
    dst.put_u32(stream);
}

/// Appends `frame` to `dst`. Fails only for frames that break the limits in
/// [`Frame::validate`]; nothing is written then.
pub fn encode(frame: &Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
    frame.validate()?;
    dst.reserve(frame.encoded_len());
    put_header(dst, frame.body_len(), frame.kind(), frame.stream());
    match frame {
        Frame::Open { target, access, .. } => {
            let central = match access {
                Access::Remote => 0,
                Access::Central => target_kind::CENTRAL,
            };
            match *target {
                Target::System { port } => {
                    dst.put_u8(central);
                    dst.put_u16(port);
                }
                Target::Colocated { ip, port } => {
                    dst.put_u8(central | target_kind::COLOCATED);
                    dst.put_slice(&ip.octets());
                    dst.put_u16(port);
                }
            }
        }
        Frame::Accept { .. } | Frame::Fin { .. } | Frame::Lane { .. } => {}
        Frame::Refuse { code, reason, .. } => {
            dst.put_u8(*code);
            dst.put_slice(reason.as_bytes());
        }
        Frame::Data { payload, .. } => dst.put_slice(payload),
        Frame::Window { increment, .. } => dst.put_u32(*increment),
        Frame::Reset { code, .. } => dst.put_u32(*code),
        Frame::Ping { data } | Frame::Pong { data } => dst.put_u64(*data),
        Frame::Control { json } => dst.put_slice(json),
        Frame::GoAway { code, reason } => {
            dst.put_u32(*code);
            dst.put_slice(reason.as_bytes());
        }
    }
    Ok(())
}

/// Encodes a DATA frame whose payload is copied from `payload`: the one copy
/// of the send path, from the application's buffer into the frame.
pub fn encode_data(stream: u32, payload: &[u8], dst: &mut BytesMut) -> Result<(), FrameError> {
    if payload.len() > MAX_DATA_LEN {
        return Err(FrameError::TooLarge {
            kind: "DATA",
            len: payload.len(),
            max: MAX_DATA_LEN,
        });
    }
    check_stream_id("DATA", true, stream)?;
    dst.reserve(HEADER_LEN + payload.len());
    put_header(dst, payload.len(), kind::DATA, stream);
    dst.put_slice(payload);
    Ok(())
}

/// Writes a DATA frame's header into the first [`HEADER_LEN`] bytes of
/// `frame`, whose remaining bytes are the payload: a sender that read the
/// payload into a buffer with room in front builds the frame without copying
/// it. Fails like [`encode_data`]; `frame` is untouched then.
///
/// # Panics
///
/// If `frame` is shorter than [`HEADER_LEN`] (a caller bug, not input).
pub fn put_data_header_in_place(stream: u32, frame: &mut [u8]) -> Result<(), FrameError> {
    let payload_len = frame.len() - HEADER_LEN;
    if payload_len > MAX_DATA_LEN {
        return Err(FrameError::TooLarge {
            kind: "DATA",
            len: payload_len,
            max: MAX_DATA_LEN,
        });
    }
    check_stream_id("DATA", true, stream)?;
    put_header(
        &mut &mut frame[..HEADER_LEN],
        payload_len,
        kind::DATA,
        stream,
    );
    Ok(())
}

/// Takes the next frame off the front of `src`.
///
/// Returns `Ok(None)` when `src` is empty (the message is fully consumed).
/// Frames of unknown type that carry [`FLAG_IGNORABLE`] are skipped. DATA and
/// CONTROL payloads are slices of `src`, not copies. Never panics; on error
/// `src` is left somewhere in the middle and should be dropped.
pub fn decode(src: &mut Bytes) -> Result<Option<Frame>, FrameError> {
    loop {
        if src.is_empty() {
            return Ok(None);
        }
        if src.len() < HEADER_LEN {
            return Err(FrameError::Truncated {
                needed: HEADER_LEN,
                available: src.len(),
            });
        }
        let len = (usize::from(src[0]) << 16) | (usize::from(src[1]) << 8) | usize::from(src[2]);
        if src.len() - HEADER_LEN < len {
            return Err(FrameError::Truncated {
                needed: HEADER_LEN + len,
                available: src.len(),
            });
        }
        let kind = src[3];
        let flags = src[4];
        let stream = u32::from_be_bytes([src[5], src[6], src[7], src[8]]);
        src.advance(HEADER_LEN);
        let body = src.split_to(len);
        match parse_body(kind, stream, body)? {
            Some(frame) => return Ok(Some(frame)),
            None if flags & FLAG_IGNORABLE != 0 => continue,
            None => return Err(FrameError::UnknownType(kind)),
        }
    }
}

/// `Ok(None)` means "unknown type".
fn parse_body(kind: u8, stream: u32, mut body: Bytes) -> Result<Option<Frame>, FrameError> {
    let len = body.len();
    let exact = |name: &'static str, want: usize| {
        if len == want {
            Ok(())
        } else {
            Err(FrameError::BadLength { kind: name, len })
        }
    };
    let frame = match kind {
        kind::OPEN => {
            check_stream_id("OPEN", true, stream)?;
            let kind = match body.first().copied() {
                Some(k) if k & !target_kind::ALL == 0 => k,
                Some(other) => return Err(FrameError::BadTarget(other)),
                None => return Err(FrameError::BadLength { kind: "OPEN", len }),
            };
            let access = if kind & target_kind::CENTRAL != 0 {
                Access::Central
            } else {
                Access::Remote
            };
            let target = if kind & target_kind::COLOCATED == 0 {
                exact("OPEN", 3)?;
                body.advance(1);
                Target::System {
                    port: body.get_u16(),
                }
            } else {
                exact("OPEN", 7)?;
                body.advance(1);
                let ip = Ipv4Addr::from(body.get_u32());
                Target::Colocated {
                    ip,
                    port: body.get_u16(),
                }
            };
            Frame::Open {
                stream,
                target,
                access,
            }
        }
        kind::ACCEPT => {
            check_stream_id("ACCEPT", true, stream)?;
            exact("ACCEPT", 0)?;
            Frame::Accept { stream }
        }
        kind::REFUSE => {
            check_stream_id("REFUSE", true, stream)?;
            if len == 0 {
                return Err(FrameError::BadLength {
                    kind: "REFUSE",
                    len,
                });
            }
            let code = body.get_u8();
            let reason = reason_text("REFUSE", &body)?;
            Frame::Refuse {
                stream,
                code,
                reason,
            }
        }
        kind::DATA => {
            check_stream_id("DATA", true, stream)?;
            if len > MAX_DATA_LEN {
                return Err(FrameError::TooLarge {
                    kind: "DATA",
                    len,
                    max: MAX_DATA_LEN,
                });
            }
            Frame::Data {
                stream,
                payload: body,
            }
        }
        kind::WINDOW => {
            exact("WINDOW", 4)?;
            Frame::Window {
                stream,
                increment: body.get_u32(),
            }
        }
        kind::FIN => {
            check_stream_id("FIN", true, stream)?;
            exact("FIN", 0)?;
            Frame::Fin { stream }
        }
        kind::LANE => {
            check_stream_id("LANE", true, stream)?;
            exact("LANE", 0)?;
            Frame::Lane { stream }
        }
        kind::RESET => {
            check_stream_id("RESET", true, stream)?;
            exact("RESET", 4)?;
            Frame::Reset {
                stream,
                code: body.get_u32(),
            }
        }
        kind::PING | kind::PONG => {
            let name = if kind == kind::PING { "PING" } else { "PONG" };
            check_stream_id(name, false, stream)?;
            exact(name, 8)?;
            let data = body.get_u64();
            if kind == kind::PING {
                Frame::Ping { data }
            } else {
                Frame::Pong { data }
            }
        }
        kind::CONTROL => {
            check_stream_id("CONTROL", false, stream)?;
            Frame::Control { json: body }
        }
        kind::GOAWAY => {
            check_stream_id("GOAWAY", false, stream)?;
            if len < 4 {
                return Err(FrameError::BadLength {
                    kind: "GOAWAY",
                    len,
                });
            }
            let code = body.get_u32();
            let reason = reason_text("GOAWAY", &body)?;
            Frame::GoAway { code, reason }
        }
        _ => return Ok(None),
    };
    debug_assert!(len <= MAX_BODY_LEN);
    Ok(Some(frame))
}

fn reason_text(kind: &'static str, bytes: &[u8]) -> Result<String, FrameError> {
    if bytes.len() > MAX_REASON_LEN {
        return Err(FrameError::TooLarge {
            kind,
            len: bytes.len(),
            max: MAX_REASON_LEN,
        });
    }
    std::str::from_utf8(bytes)
        .map(str::to_owned)
        .map_err(|_| FrameError::InvalidUtf8(kind))
}

/// Cuts `reason` to at most [`MAX_REASON_LEN`] bytes on a char boundary.
pub fn truncate_reason(reason: &str) -> String {
    if reason.len() <= MAX_REASON_LEN {
        return reason.to_owned();
    }
    let mut end = MAX_REASON_LEN;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_owned()
}

/// Fuzz entry point: decodes every frame of `data` as one websocket message
/// and checks that each decoded frame survives encode-then-decode unchanged.
/// Panics only when that round trip breaks, which is the bug a fuzzer looks
/// for; malformed input just ends the loop.
pub fn fuzz_decode(data: &[u8]) {
    let mut src = Bytes::copy_from_slice(data);
    while let Ok(Some(frame)) = decode(&mut src) {
        let mut out = BytesMut::new();
        if let Err(e) = encode(&frame, &mut out) {
            panic!("decoded frame {frame:?} does not encode: {e}");
        }
        assert_eq!(
            out.len(),
            frame.encoded_len(),
            "encoded_len disagrees with encode"
        );
        let mut again = out.freeze();
        match decode(&mut again) {
            Ok(Some(back)) => assert_eq!(back, frame, "round trip changed the frame"),
            other => panic!("re-decoding {frame:?} gave {other:?}"),
        }
        assert!(again.is_empty(), "re-decoding left bytes behind");
    }
}

#[cfg(test)]
mod tests;
