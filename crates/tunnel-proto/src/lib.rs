//! The comgate gateway ↔ site agent protocol.
//!
//! Each customer site runs an agent that keeps **one** outbound TLS websocket
//! to the gateway. Partner connections (SSH, RDP, HTTPS) become streams
//! multiplexed over it: the gateway opens a stream, the agent accepts or
//! refuses it and dials the target on its LAN.
//!
//! | module | why it exists |
//! | --- | --- |
//! | [`handshake`] | Hello / Welcome / Reject (JSON text messages) and the site policy ([`SiteSettings::allows`]) |
//! | [`frame`] | the binary frame codec, pure and fuzzable |
//! | [`session`] | the multiplexer as a sans-IO state machine: streams, flow control, half-close |
//! | [`ws`] | websocket framing after the upgrade (tokio-tungstenite does the upgrade), without buffers held between messages |
//! | [`mux`] | the async driver over that websocket; streams as `AsyncRead + AsyncWrite` |
//!
//! # Handshake
//!
//! Right after the websocket upgrade, before any binary message:
//!
//! 1. the agent sends a TEXT message, the JSON of [`Hello`]:
//!    `{"version":1,"customer":"12345","system":"ipo1","secret":"…","agent_version":"0.1.0",
//!    "settings":{"remote_access":true,"colocated_servers":true,"centralized_management":false,
//!    "own_ports":[22,443],"tunnels":[{"application":"rdp","server_ip":"10.0.0.5","server_port":3389}]},
//!    "features":["central_streams"]}`;
//! 2. the gateway answers with a TEXT message, either
//!    `{"version":1,"heartbeat_ms":15000}` ([`Welcome`]) — and both sides
//!    call [`mux::start`] — or `{"code":"authentication_failed","reason":"…"}`
//!    ([`Reject`]) and closes the websocket.
//!
//! # Wire format
//!
//! After the handshake every websocket message is **binary** and holds one or
//! more complete frames, back to back (a frame never spans messages; a
//! truncated frame is a protocol error). Integers are big-endian. Each frame
//! has a 9-byte header:
//!
//! ```text
//! +----------------+--------+--------+-------------------+------------------+
//! | length (u24)   | type   | flags  | stream id (u32)   | body (length B)  |
//! +----------------+--------+--------+-------------------+------------------+
//!   bytes 0..3       3        4        5..9                9..
//! ```
//!
//! `length` counts only the body. Flag bit `0x80` (ignorable) only matters
//! for unknown types; other flag bits are sent as zero and ignored. Bodies
//! must have exactly the sizes below (no trailing bytes).
//!
//! | type | name | stream id | body |
//! | --- | --- | --- | --- |
//! | 0x01 | OPEN | new id | target kind u8, then `0` System: port u16 (3 bytes) or `1` Colocated: IPv4 (4 bytes) + port u16 (7 bytes); kinds `2` and `3` are the same two layouts under Centralized Management (see below) |
//! | 0x02 | ACCEPT | id | empty |
//! | 0x03 | REFUSE | id | code u8, reason UTF-8 (≤ 1024 bytes) |
//! | 0x04 | DATA | id | payload, 0..=16384 bytes; up to 65536 to a peer that announced `large_data` (agent: hello `features`; gateway: welcome `features`); senders use 65519 there, so that a frame in its websocket message fills four TLS records |
//! | 0x05 | WINDOW | id, or 0 for the connection | increment u32 (≥ 1) |
//! | 0x06 | FIN | id | empty |
//! | 0x07 | RESET | id | code u32 |
//! | 0x08 | PING | 0 | opaque u64 |
//! | 0x09 | PONG | 0 | the PING's u64 |
//! | 0x0a | CONTROL | 0 | JSON text (delivered as `serde_json::Value`) |
//! | 0x0b | GOAWAY | 0 | code u32, reason UTF-8 (≤ 1024 bytes) |
//! | 0x0c | LANE | id | empty: the stream's direction moves to the session's other connection (quick lane, below) |
//!
//! OPEN's target kind is a bit set: bit 0 = co-located (an IPv4 address
//! precedes the port), bit 1 = Centralized Management ([`Access::Central`]:
//! the admin tools through the central-management proxy, checked against
//! the site's Centralized Management setting instead of Remote Access). Any
//! other bit is an error.
//!
//! Codes are in [`codes`]. Stream ids: only the gateway opens streams; its
//! ids are odd, strictly increasing from 1 and never reused within a session
//! (even ids are reserved should the agent ever open streams). Id 0 is the
//! connection. An OPEN whose id is even or not above every earlier id is a
//! protocol error.
//!
//! # Streams
//!
//! OPEN → ACCEPT or REFUSE(code, reason): one round trip; the reason text is
//! meant for the partner. The gateway sends no DATA before ACCEPT. Each
//! direction ends with its own FIN (half-close); a stream is gone when both
//! FINs passed and the receiver read everything, or after RESET from either
//! side. Frames that arrive for a stream that has already ended are ignored
//! (they may have crossed a RESET in flight), but DATA in them still counts
//! against the connection window. Frames for ids never opened are protocol
//! errors.
//!
//! # Flow control
//!
//! Credit-based, per stream and per connection, like HTTP/2, with one
//! difference: **every window starts at zero** and is granted by its
//! receiver, so each side picks its own window sizes without a settings
//! exchange:
//!
//! - each session's first frame is `WINDOW(0, connection_window)`;
//! - the gateway follows OPEN with `WINDOW(id, stream_window)`; the agent
//!   follows ACCEPT with `WINDOW(id, stream_window)`.
//!
//! A sender may send DATA only while both the stream's and the connection's
//! credit cover it, and subtracts the payload from both. The receiver buffers
//! at most the window: DATA beyond either window, DATA after the sender's
//! FIN, or DATA before the stream is open closes the session with GOAWAY
//! (`FLOW_CONTROL_ERROR` or `PROTOCOL_ERROR`). When the bytes the application
//! has read since the last update reach a quarter of the window, the receiver sends a
//! WINDOW with that amount (never one per read). Bytes of a stream that ends
//! unread are returned to the connection window. Credit above 2^31−1 is a
//! flow-control error. Defaults: streams start at 256 KiB and the receiver
//! grows them up to 32 MiB while that raises their rate (`session::autotune`);
//! 64 MiB per connection ([`MuxConfig`]).
//!
//! So a partner that stops reading stalls only its own stream: the gateway
//! buffers at most one stream window for it, other streams keep their own
//! credit, and the connection window is sized for several stalled streams.
//!
//! # Heartbeats
//!
//! Each side sends PING every `ping_interval` and answers PING with PONG. A
//! side that receives nothing at all (any message counts) for `ping_timeout`
//! sends GOAWAY(`HEARTBEAT_TIMEOUT`) and closes.
//!
//! # Quick lane
//!
//! A session may run over a second websocket, the quick lane
//! (`session::lanes`), so that streams that write little do not queue behind
//! a bulk stream's bytes in the first one's socket buffers. An agent that
//! announces [`handshake::feature::QUICK_LANE`] gets a token in the
//! Welcome's `quick_lane`; it opens another websocket to the gateway and
//! sends a Hello whose `quick_lane` carries that token (good once, while the
//! session lasts). Each end first accepts the lane (takes LANE frames and
//! the lane's messages) and then, once the other has accepted it, attaches
//! it (moves streams there): the agent accepts before its second Hello, the
//! gateway attaches on that Hello and accepts with it; the agent attaches on
//! the Welcome. The quick lane carries only DATA, FIN and LANE of streams
//! their sender moved there (anything else on it is a protocol error); a
//! stream's sender moves it with LANE on the connection the stream leaves,
//! behind the stream's frames there, and the receiver holds what arrives on
//! the other connection until that LANE. Losing either connection ends the
//! session.
//!
//! # Versioning
//!
//! [`PROTOCOL_VERSION`] (currently 1) travels in Hello and is a major
//! version: the gateway rejects a version it does not speak with
//! `unsupported_version`, and the agent refuses a Welcome for another
//! version. Backward-compatible additions need no new version:
//! - new JSON fields in the handshake (unknown fields are ignored);
//! - new CONTROL message shapes (the application decides what it knows);
//! - new frame types sent with the ignorable flag `0x80`, which old
//!   receivers skip.
//!
//! - new OPEN target kinds that the agent announced in its Hello's
//!   `features` (an old agent announces none, so the gateway never sends it
//!   a kind it would reject; its Remote Access kinds are unchanged).
//!   OPEN kinds 2 and 3 ([`Access::Central`]) are such an addition, feature
//!   [`handshake::feature::CENTRAL_STREAMS`]: an agent without it has no
//!   Centralized Management check of its own, so the gateway must not fall
//!   back to a Remote Access open for it.
//! - LANE (0x0c) and the quick lane, feature
//!   [`handshake::feature::QUICK_LANE`]: only after both ends set it up.
//!
//! Anything else — a new frame type without the flag, a changed body layout,
//! changed flow-control rules — needs a new version. An unknown frame type
//! without the ignorable flag is a protocol error.

pub mod frame;
pub mod handshake;
pub mod mux;
pub mod report;
pub mod session;
pub mod ws;

pub use frame::{decode, encode, fuzz_decode, Access, Frame, FrameError, Target, CENTRAL_PORT};
pub use handshake::{
    feature, GatewayReply, HandshakeError, Hello, Refusal, Reject, SiteSettings, TunnelSpec,
    Welcome, PROTOCOL_VERSION,
};
pub use mux::{
    start, CloseReason, Incoming, IncomingEvent, IncomingStream, MuxClosed, MuxConfig, MuxHandle,
    MuxReadHalf, MuxStream, MuxWriteHalf, OpenError, Role,
};
pub use session::fuzz_session;

/// Numeric codes carried by GOAWAY, RESET and REFUSE.
pub mod codes {
    /// GOAWAY: orderly close.
    pub const GOAWAY_NO_ERROR: u32 = 0;
    /// GOAWAY: the peer broke the protocol.
    pub const GOAWAY_PROTOCOL_ERROR: u32 = 1;
    /// GOAWAY: the peer exceeded a window or overflowed a credit.
    pub const GOAWAY_FLOW_CONTROL_ERROR: u32 = 2;
    /// GOAWAY: something failed inside the sender.
    pub const GOAWAY_INTERNAL_ERROR: u32 = 3;
    /// GOAWAY: the sender heard nothing within its heartbeat timeout.
    pub const GOAWAY_HEARTBEAT_TIMEOUT: u32 = 4;

    /// RESET: the stream's owner went away (handle dropped, open abandoned).
    pub const RESET_CANCEL: u32 = 0;
    /// RESET: the connection to the target failed mid-stream.
    pub const RESET_TARGET_ERROR: u32 = 1;

    /// REFUSE: the site's settings do not allow the target.
    pub const REFUSE_POLICY: u8 = 1;
    /// REFUSE: the target did not accept the connection.
    pub const REFUSE_UNREACHABLE: u8 = 2;
    /// REFUSE: the target did not answer in time.
    pub const REFUSE_TIMEOUT: u8 = 3;
    /// REFUSE: the agent has too many streams.
    pub const REFUSE_TOO_MANY_STREAMS: u8 = 4;
    /// REFUSE: the agent application dropped the stream without answering.
    pub const REFUSE_NOT_ACCEPTED: u8 = 5;
    /// REFUSE: the agent cannot take more streams right now.
    pub const REFUSE_BUSY: u8 = 6;
    /// Not sent: what `open` reports when the agent reset a stream instead
    /// of answering it.
    pub const REFUSE_RESET: u8 = 7;
}
