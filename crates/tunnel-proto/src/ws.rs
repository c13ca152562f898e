//! Websocket framing (RFC 6455) for the site connection once it is
//! upgraded: what the multiplexer and the hello handshake send and receive.
//!
//! tokio-tungstenite does the HTTP upgrade ([`connect`], [`accept`]); this
//! module takes over the raw stream after it, because on the data path
//! tungstenite cost both memory and copies: it keeps a read buffer per
//! connection for as long as the connection lives (4 KiB per idle site, and
//! that size is also its largest read, so a 16 KiB frame took five reads)
//! and copies every outgoing frame into its own write buffer, moving the
//! rest of that buffer after each partial write. Here a received message is
//! read straight into a buffer of its own size, nothing is held between
//! messages, and an outgoing message is handed to the transport as a
//! header and the payload in one vectored write.
//!
//! The upgrade leaves nothing buffered in tungstenite: the agent sends its
//! hello only after the `101` response, and the gateway sends nothing after
//! the `101` until it has read the hello.
//!
//! What is supported is what the two ends of a comgate site connection
//! need: text and binary messages (fragmented or not), ping (answered by the
//! multiplexer), pong (ignored) and close. Extensions are not negotiated, so
//! reserved bits are a protocol error. Frames from the client (the agent)
//! are masked, frames from the gateway are not, as the RFC requires.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf, ReadHalf, WriteHalf};
use tokio_tungstenite::tungstenite;

/// Largest message accepted (CONTROL messages are the large ones).
pub const MAX_MESSAGE: usize = 4 << 20;
/// A payload buffer starts at most this large and grows as bytes arrive, so
/// a header that only claims a large message costs no memory.
const FIRST_PAYLOAD_CAPACITY: usize = 64 * 1024;

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// Which end of the websocket: the client masks what it sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The agent (it dialled).
    Client,
    /// The gateway.
    Server,
}

/// One received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsMessage {
    Text(String),
    Binary(Bytes),
    /// Answer with a pong carrying the same payload.
    Ping(Bytes),
    Close,
}

#[derive(Debug, thiserror::Error)]
pub enum WsError {
    #[error("websocket I/O: {0}")]
    Io(#[from] io::Error),
    #[error("websocket protocol error: {0}")]
    Protocol(&'static str),
    #[error("websocket message of {0} bytes exceeds the {MAX_MESSAGE}-byte limit")]
    TooLarge(u64),
    #[error("websocket text message is not UTF-8")]
    NotUtf8,
    #[error("websocket upgrade failed: {0}")]
    Upgrade(#[from] tungstenite::Error),
}

/// Upgrades `stream` as the client (the agent) and takes the raw stream
/// back for [`WsConn`].
pub async fn connect<S>(url: &str, stream: S) -> Result<WsConn<S>, WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (ws, _response) = tokio_tungstenite::client_async(url, stream).await?;
    Ok(WsConn::new(ws.into_inner(), Side::Client))
}

/// Accepts the upgrade as the server (the gateway).
pub async fn accept<S>(stream: S) -> Result<WsConn<S>, WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let ws = tokio_tungstenite::accept_async(stream).await?;
    Ok(WsConn::new(ws.into_inner(), Side::Server))
}

/// An upgraded websocket: a reader and a writer over the two halves of the
/// stream, so that the multiplexer can read and write from separate tasks.
pub struct WsConn<S> {
    pub reader: WsReader<ReadHalf<S>>,
    pub writer: WsWriter<WriteHalf<S>>,
}

impl<S: AsyncRead + AsyncWrite> WsConn<S> {
    pub fn new(stream: S, side: Side) -> Self {
        let (r, w) = tokio::io::split(stream);
        WsConn {
            reader: WsReader::new(r, side),
            writer: WsWriter::new(w, side),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsConn<S> {
    /// The stream back, to be wrapped again with [`WsConn::new`] (serve
    /// moves a site's connection to another thread this way). Only between
    /// messages: with part of a message read, the connection is returned
    /// unchanged.
    pub fn into_stream(self) -> Result<S, Box<Self>> {
        if !self.reader.between_messages() {
            return Err(Box::new(self));
        }
        let WsConn { reader, writer } = self;
        Ok(reader.io.unsplit(writer.io))
    }

    /// The next text or binary message (pings are answered here, pongs
    /// skipped); `None` when the peer closed.
    pub async fn next_data(&mut self) -> Result<Option<WsMessage>, WsError> {
        loop {
            match self.reader.next().await? {
                Some(WsMessage::Ping(payload)) => {
                    self.writer.send(OP_PONG, payload).await?;
                    self.writer.flush().await?;
                }
                Some(WsMessage::Close) | None => return Ok(None),
                Some(other) => return Ok(Some(other)),
            }
        }
    }

    pub async fn send_text(&mut self, text: String) -> Result<(), WsError> {
        self.writer.send_text(text).await?;
        Ok(self.writer.flush().await?)
    }

    /// Sends a close frame and shuts the stream down.
    pub async fn close(&mut self) -> Result<(), WsError> {
        self.writer.close().await
    }
}

// ---------------------------------------------------------------- reading

/// Reads messages. Cancel safe: a partly read frame stays in the reader.
pub struct WsReader<R> {
    io: R,
    side: Side,
    head: [u8; 14],
    head_have: usize,
    /// Bytes of header needed: 2 until the second byte says more.
    head_need: usize,
    /// The frame being read: opcode, fin, mask, payload so far, its length.
    frame: Option<FrameIn>,
    /// A fragmented message being assembled: its opcode and bytes so far.
    partial: Option<(u8, BytesMut)>,
}

struct FrameIn {
    opcode: u8,
    fin: bool,
    mask: Option<[u8; 4]>,
    payload: BytesMut,
    len: usize,
}

impl<R: AsyncRead + Unpin> WsReader<R> {
    pub fn new(io: R, side: Side) -> Self {
        WsReader {
            io,
            side,
            head: [0; 14],
            head_have: 0,
            head_need: 2,
            frame: None,
            partial: None,
        }
    }

    /// Nothing of a message has been read yet.
    fn between_messages(&self) -> bool {
        self.head_have == 0 && self.frame.is_none() && self.partial.is_none()
    }

    /// The next message; `None` at a clean end of stream between messages.
    pub async fn next(&mut self) -> Result<Option<WsMessage>, WsError> {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }

    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<WsMessage>, WsError>> {
        loop {
            if self.frame.is_none() {
                while self.head_have < self.head_need {
                    let mut buf = ReadBuf::new(&mut self.head[self.head_have..self.head_need]);
                    std::task::ready!(Pin::new(&mut self.io).poll_read(cx, &mut buf))?;
                    let n = buf.filled().len();
                    if n == 0 {
                        if self.head_have == 0 && self.partial.is_none() {
                            return Poll::Ready(Ok(None));
                        }
                        return Poll::Ready(Err(WsError::Io(io::ErrorKind::UnexpectedEof.into())));
                    }
                    self.head_have += n;
                    if self.head_have == 2 {
                        self.head_need =
                            2 + extended_len_bytes(self.head[1]) + mask_bytes(self.head[1]);
                    }
                }
                let frame = self.parse_head()?;
                self.head_have = 0;
                self.head_need = 2;
                self.frame = Some(frame);
            }
            let frame = self.frame.as_mut().expect("frame set above");
            while frame.payload.len() < frame.len {
                let want = frame.len - frame.payload.len();
                if frame.payload.capacity() == frame.payload.len() {
                    // Doubling: a large message is read in a few steps.
                    frame.payload.reserve(want.min(frame.payload.len()));
                }
                let room = want.min(frame.payload.capacity() - frame.payload.len());
                let spare = &mut frame.payload.spare_capacity_mut()[..room];
                let mut buf = ReadBuf::uninit(spare);
                std::task::ready!(Pin::new(&mut self.io).poll_read(cx, &mut buf))?;
                let n = buf.filled().len();
                if n == 0 {
                    return Poll::Ready(Err(WsError::Io(io::ErrorKind::UnexpectedEof.into())));
                }
                // SAFETY: the read initialised these `n` bytes of the spare capacity.
                unsafe { frame.payload.set_len(frame.payload.len() + n) };
            }
            let FrameIn {
                opcode,
                fin,
                mask,
                mut payload,
                ..
            } = self.frame.take().expect("frame set above");
            if let Some(key) = mask {
                apply_mask(&mut payload, key);
            }
            if let Some(message) = self.complete(opcode, fin, payload)? {
                return Poll::Ready(Ok(Some(message)));
            }
        }
    }

    fn parse_head(&self) -> Result<FrameIn, WsError> {
        let (b0, b1) = (self.head[0], self.head[1]);
        if b0 & 0x70 != 0 {
            return Err(WsError::Protocol(
                "reserved bits set (no extension was negotiated)",
            ));
        }
        let fin = b0 & 0x80 != 0;
        let opcode = b0 & 0x0F;
        let masked = b1 & 0x80 != 0;
        let ext = extended_len_bytes(b1);
        let len: u64 = match ext {
            0 => u64::from(b1 & 0x7F),
            2 => u64::from(u16::from_be_bytes([self.head[2], self.head[3]])),
            _ => u64::from_be_bytes(self.head[2..10].try_into().expect("8 bytes")),
        };
        match (self.side, masked) {
            (Side::Server, false) => {
                return Err(WsError::Protocol("unmasked frame from the client"))
            }
            (Side::Client, true) => return Err(WsError::Protocol("masked frame from the server")),
            _ => {}
        }
        let mask = masked.then(|| {
            let at = 2 + ext;
            [
                self.head[at],
                self.head[at + 1],
                self.head[at + 2],
                self.head[at + 3],
            ]
        });
        if opcode >= 0x8 {
            if !fin {
                return Err(WsError::Protocol("fragmented control frame"));
            }
            if len > 125 {
                return Err(WsError::Protocol("control frame longer than 125 bytes"));
            }
        }
        let so_far = self.partial.as_ref().map_or(0, |(_, b)| b.len() as u64);
        if len + so_far > MAX_MESSAGE as u64 {
            return Err(WsError::TooLarge(len + so_far));
        }
        let len = len as usize;
        Ok(FrameIn {
            opcode,
            fin,
            mask,
            payload: BytesMut::with_capacity(len.min(FIRST_PAYLOAD_CAPACITY)),
            len,
        })
    }

    /// A whole frame arrived: a message if it completes one.
    fn complete(
        &mut self,
        opcode: u8,
        fin: bool,
        payload: BytesMut,
    ) -> Result<Option<WsMessage>, WsError> {
        let (opcode, payload) = match opcode {
            OP_TEXT | OP_BINARY => {
                if self.partial.is_some() {
                    return Err(WsError::Protocol("new message inside a fragmented one"));
                }
                if !fin {
                    self.partial = Some((opcode, payload));
                    return Ok(None);
                }
                (opcode, payload)
            }
            OP_CONTINUATION => {
                let Some((_, so_far)) = self.partial.as_mut() else {
                    return Err(WsError::Protocol("continuation without a message"));
                };
                so_far.extend_from_slice(&payload);
                if !fin {
                    return Ok(None);
                }
                self.partial.take().expect("checked above")
            }
            OP_CLOSE => return Ok(Some(WsMessage::Close)),
            OP_PING => return Ok(Some(WsMessage::Ping(payload.freeze()))),
            OP_PONG => return Ok(None),
            _ => return Err(WsError::Protocol("unknown opcode")),
        };
        Ok(Some(if opcode == OP_TEXT {
            WsMessage::Text(String::from_utf8(payload.to_vec()).map_err(|_| WsError::NotUtf8)?)
        } else {
            WsMessage::Binary(payload.freeze())
        }))
    }
}

fn extended_len_bytes(b1: u8) -> usize {
    match b1 & 0x7F {
        126 => 2,
        127 => 8,
        _ => 0,
    }
}

fn mask_bytes(b1: u8) -> usize {
    if b1 & 0x80 != 0 {
        4
    } else {
        0
    }
}

/// XORs `data` with the mask key (RFC 6455 section 5.3), in place.
///
/// Every byte the agent sends is masked once there and unmasked once in the
/// gateway, on the bulk path of a download. The release build targets
/// baseline x86-64, where the loop below runs 16 bytes per instruction; on
/// a CPU with AVX2 the same loop compiled for it runs 32 (chosen at run
/// time, the check is a cached load): 0.59 against 0.89 us per 64 KiB
/// message in the `websocket/mask` micro-benchmark.
pub fn apply_mask(data: &mut [u8], key: [u8; 4]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, the only requirement of the call.
        unsafe { apply_mask_avx2(data, key) };
        return;
    }
    apply_mask_words(data, key);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn apply_mask_avx2(data: &mut [u8], key: [u8; 4]) {
    apply_mask_words(data, key);
}

/// Eight bytes at a time; the compiler vectorises the loop for the target.
#[inline(always)]
fn apply_mask_words(data: &mut [u8], key: [u8; 4]) {
    let wide = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let v = u64::from_ne_bytes(chunk.try_into().expect("8 bytes")) ^ wide;
        chunk.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
}

// ---------------------------------------------------------------- writing

/// Writes messages; [`WsWriter::flush`] pushes them out.
pub struct WsWriter<W> {
    io: W,
    side: Side,
}

impl<W: AsyncWrite + Unpin> WsWriter<W> {
    pub fn new(io: W, side: Side) -> Self {
        WsWriter { io, side }
    }

    pub async fn send_binary(&mut self, payload: Bytes) -> io::Result<()> {
        self.send(OP_BINARY, payload).await
    }

    /// Sends each payload as a binary message, all in one vectored write
    /// (as far as the transport takes them), and empties `payloads`.
    pub async fn send_binaries(&mut self, payloads: &mut Vec<Bytes>) -> io::Result<()> {
        if payloads.is_empty() {
            return Ok(());
        }
        let mut heads = Vec::with_capacity(payloads.len());
        let mut bodies = Vec::with_capacity(payloads.len());
        for payload in payloads.drain(..) {
            let (head, len, body) = self.frame(OP_BINARY, payload);
            heads.push((head, len));
            bodies.push(body);
        }
        let mut slices: Vec<IoSlice<'_>> = heads
            .iter()
            .zip(&bodies)
            .flat_map(|((head, len), body)| [IoSlice::new(&head[..*len]), IoSlice::new(body)])
            .collect();
        write_all_vectored(&mut self.io, &mut slices).await
    }

    pub async fn send_text(&mut self, text: String) -> io::Result<()> {
        self.send(OP_TEXT, Bytes::from(text)).await
    }

    pub async fn send_pong(&mut self, payload: Bytes) -> io::Result<()> {
        self.send(OP_PONG, payload).await
    }

    pub async fn flush(&mut self) -> io::Result<()> {
        tokio::io::AsyncWriteExt::flush(&mut self.io).await
    }

    /// Sends a close frame, flushes and shuts the transport down.
    pub async fn close(&mut self) -> Result<(), WsError> {
        self.send(OP_CLOSE, Bytes::new()).await?;
        self.flush().await?;
        tokio::io::AsyncWriteExt::shutdown(&mut self.io).await?;
        Ok(())
    }

    /// One unfragmented frame: header and payload in one vectored write.
    async fn send(&mut self, opcode: u8, payload: Bytes) -> io::Result<()> {
        let (head, len, payload) = self.frame(opcode, payload);
        let mut slices = [IoSlice::new(&head[..len]), IoSlice::new(&payload)];
        write_all_vectored(&mut self.io, &mut slices).await
    }

    /// The header (and its length) and the payload of one unfragmented
    /// frame. The client masks the payload, in place when it is the only
    /// owner of the bytes (the multiplexer's frames are), else in a copy.
    fn frame(&self, opcode: u8, payload: Bytes) -> ([u8; 14], usize, Bytes) {
        let mut head = [0u8; 14];
        head[0] = 0x80 | opcode;
        let len = payload.len();
        let mut at = if len < 126 {
            head[1] = len as u8;
            2
        } else if len <= usize::from(u16::MAX) {
            head[1] = 126;
            head[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            4
        } else {
            head[1] = 127;
            head[2..10].copy_from_slice(&(len as u64).to_be_bytes());
            10
        };
        let payload = match self.side {
            Side::Server => payload,
            Side::Client => {
                let key: [u8; 4] = rand::random();
                head[1] |= 0x80;
                head[at..at + 4].copy_from_slice(&key);
                at += 4;
                let mut owned = payload
                    .try_into_mut()
                    .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
                apply_mask(&mut owned, key);
                owned.freeze()
            }
        };
        (head, at, payload)
    }
}

/// Writes every slice, in order, with vectored writes until all are out.
async fn write_all_vectored<W: AsyncWrite + Unpin>(
    io: &mut W,
    slices: &mut [IoSlice<'_>],
) -> io::Result<()> {
    let mut rest = slices;
    while !rest.is_empty() {
        let n = std::future::poll_fn(|cx| Pin::new(&mut *io).poll_write_vectored(cx, rest)).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut rest, n);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
