//! [`OwnTls`]: a connection's TLS once the handshake is over, an
//! `AsyncRead + AsyncWrite` over the transport that reads records into one
//! buffer, decrypts them there and hands the plaintext out from it.
//!
//! Memory follows traffic: the read buffer exists while bytes arrive and
//! is dropped when the transport has nothing more (an idle site or tunnel
//! holds no buffer), and sealed records are held only until the transport
//! takes them. Reads take up to four records per system call (rustls alone
//! reads 4 KiB, so a full record cost four or five `recv`s), into the
//! buffer's spare capacity, never zeroed.
//!
//! The read and write sides never poll the transport for the other
//! direction: under `tokio::io::split` they run in different tasks, and a
//! read that polled for writing would take the writer's wake-up. So a key
//! update the peer asks for is queued by the read side and leaves before
//! the next record the write side seals, as RFC 8446 section 4.6.3 asks.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use rustls::client::ClientConnectionData;
use rustls::kernel::KernelConnection;
use rustls::server::ServerConnectionData;
use rustls::{ContentType, ExtractedSecrets};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::records::{
    body_len, next_handshake_message, Opener, PostHandshake, RecordError, Sealer, Suite,
    CLOSE_NOTIFY, HEADER_LEN, KEY_UPDATE_NOT_REQUESTED, MAX_CIPHERTEXT, MAX_HANDSHAKE_MESSAGE,
    MAX_PLAINTEXT,
};

/// Bytes read from the transport per system call: four full records.
const READ_SIZE: usize = 4 * (HEADER_LEN + MAX_CIPHERTEXT);
/// Plaintext sealed per write call: one full 64 KiB message. Sealed
/// records wait above the transport only while it is full, and then no
/// more is sealed until they are gone: with `site_socket`'s limit on unsent
/// bytes in the kernel, that bounds what queues in front of another
/// tunnel's bytes on a slow site link (rustls's own limit was 64 KiB too).
const WRITE_BATCH: usize = 64 * 1024;
/// Records handed to one vectored write.
const MAX_IOVECS: usize = 64;
/// Key updates accepted in a row without application data between them
/// (BoringSSL's limit): more is a peer making us derive keys for nothing.
const MAX_KEY_UPDATES_IN_A_ROW: u32 = 32;
const CLOSE_NOTIFY_DESCRIPTION: u8 = 0;
const ALERT_WARNING: u8 = 1;
const USER_CANCELED: u8 = 90;

/// rustls's side of the connection after the handshake: new traffic
/// secrets on key updates, and the client's ticket store.
pub enum Kernel {
    Client(KernelConnection<ClientConnectionData>),
    Server(KernelConnection<ServerConnectionData>),
}

impl Kernel {
    fn suite(&self) -> Result<Suite, RecordError> {
        match self {
            Kernel::Client(k) => Suite::new(k.negotiated_cipher_suite(), k.protocol_version()),
            Kernel::Server(k) => Suite::new(k.negotiated_cipher_suite(), k.protocol_version()),
        }
    }

    fn next_tx(&mut self) -> Result<(u64, rustls::ConnectionTrafficSecrets), rustls::Error> {
        match self {
            Kernel::Client(k) => k.update_tx_secret(),
            Kernel::Server(k) => k.update_tx_secret(),
        }
    }

    fn next_rx(&mut self) -> Result<(u64, rustls::ConnectionTrafficSecrets), rustls::Error> {
        match self {
            Kernel::Client(k) => k.update_rx_secret(),
            Kernel::Server(k) => k.update_rx_secret(),
        }
    }

    fn ticket(&mut self, body: &[u8]) -> Result<(), RecordError> {
        match self {
            Kernel::Client(k) => k
                .handle_new_session_ticket(body)
                .map_err(RecordError::Ticket),
            // Only servers send tickets.
            Kernel::Server(_) => Err(RecordError::Malformed("session ticket sent to the server")),
        }
    }
}

/// TLS over `S` with records of our own (TLS 1.3, and TLS 1.2 for the
/// front door's older clients); see the module docs.
pub struct OwnTls<S> {
    io: S,
    kernel: Kernel,
    suite: Suite,
    opener: Opener,
    pub(super) sealer: Sealer,
    /// Received bytes, `rbuf[rpos..]` not yet opened. No allocation when
    /// idle; read into its spare capacity, so never zeroed.
    rbuf: Vec<u8>,
    rpos: usize,
    /// The opened record's plaintext not yet handed out, in `rbuf`.
    plain: std::ops::Range<usize>,
    /// Plaintext that came with the handshake.
    early: Vec<u8>,
    /// A post-handshake message that spans records, so far.
    handshake: Vec<u8>,
    /// close_notify received: reads return end of file.
    read_closed: bool,
    /// The peer asked for new keys: ours go out with the next write.
    key_update_asked: bool,
    /// A read error that ends the connection, repeated to later reads.
    read_failed: Option<(io::ErrorKind, String)>,
    /// Sealed records, the first one written up to `out_pos`.
    out: VecDeque<Vec<u8>>,
    out_pos: usize,
    out_bytes: usize,
    write_closed: bool,
    /// Key updates sent and received, for tests and logs.
    key_updates: (u32, u32),
    /// Key updates received since the last application data.
    updates_in_a_row: u32,
}

impl<S> OwnTls<S> {
    /// Takes over after rustls's handshake: `leftover` are received bytes
    /// rustls did not process (the start of a record), `early` plaintext
    /// it already decrypted.
    pub fn new(
        io: S,
        kernel: Kernel,
        secrets: ExtractedSecrets,
        leftover: Vec<u8>,
        early: Vec<u8>,
    ) -> Result<Self, RecordError> {
        let suite = kernel.suite()?;
        let (tx_seq, tx) = secrets.tx;
        let (rx_seq, rx) = secrets.rx;
        let rbuf = if leftover.is_empty() {
            Vec::new()
        } else {
            let mut rbuf = Vec::with_capacity(READ_SIZE.max(leftover.len()));
            rbuf.extend_from_slice(&leftover);
            rbuf
        };
        Ok(OwnTls {
            io,
            kernel,
            suite,
            opener: Opener::new(suite, rx_seq, rx)?,
            sealer: Sealer::new(suite, tx_seq, tx)?,
            rbuf,
            rpos: 0,
            plain: 0..0,
            early,
            handshake: Vec::new(),
            read_closed: false,
            key_update_asked: false,
            read_failed: None,
            out: VecDeque::new(),
            out_pos: 0,
            out_bytes: 0,
            write_closed: false,
            key_updates: (0, 0),
            updates_in_a_row: 0,
        })
    }

    pub fn get_ref(&self) -> &S {
        &self.io
    }

    pub fn get_mut(&mut self) -> &mut S {
        &mut self.io
    }

    /// Sealed bytes the transport has not taken yet.
    pub fn unsent(&self) -> usize {
        self.out_bytes
    }

    /// Key updates (sent, received) so far.
    pub fn key_updates(&self) -> (u32, u32) {
        self.key_updates
    }

    /// Bytes of buffer the connection holds now (read and write sides).
    pub fn buffered_capacity(&self) -> usize {
        self.rbuf.capacity()
            + self.early.capacity()
            + self.handshake.capacity()
            + self.out.iter().map(Vec::capacity).sum::<usize>()
    }

    fn fail_read(&mut self, e: RecordError) -> io::Error {
        let kind = match e {
            RecordError::Alert(_) => io::ErrorKind::ConnectionAborted,
            _ => io::ErrorKind::InvalidData,
        };
        let text = e.to_string();
        self.read_failed = Some((kind, text.clone()));
        io::Error::new(kind, text)
    }

    /// Opens the next complete record in the read buffer, if there is one.
    /// Returns whether one was opened.
    fn open_next(&mut self) -> Result<bool, RecordError> {
        if self.rbuf.len() - self.rpos < HEADER_LEN {
            return Ok(false);
        }
        let header: [u8; HEADER_LEN] = self.rbuf[self.rpos..self.rpos + HEADER_LEN]
            .try_into()
            .expect("header length");
        let len = body_len(&header, self.suite)?;
        let end = self.rpos + HEADER_LEN + len;
        if end > self.rbuf.len() {
            return Ok(false);
        }
        let start = self.rpos;
        self.rpos = end;
        let (typ, range) = self.opener.open(&mut self.rbuf[start..end])?;
        let range = start + range.start..start + range.end;
        match typ {
            ContentType::ApplicationData => {
                if !self.handshake.is_empty() {
                    return Err(RecordError::Malformed("data inside a handshake message"));
                }
                self.updates_in_a_row = 0;
                self.plain = range;
            }
            ContentType::Alert => match self.rbuf[range] {
                [_, CLOSE_NOTIFY_DESCRIPTION] => self.read_closed = true,
                // A warning that a close_notify follows (RFC 8446 6.1).
                [_, USER_CANCELED] => {}
                // TLS 1.2 lets a connection go on after a warning.
                [ALERT_WARNING, _] if !self.suite.is_tls13() => {}
                [_, description] => return Err(RecordError::Alert(description)),
                _ => return Err(RecordError::Malformed("alert")),
            },
            // In TLS 1.2 a handshake message now starts a renegotiation.
            ContentType::Handshake if !self.suite.is_tls13() => {
                return Err(RecordError::Renegotiation)
            }
            ContentType::Handshake => {
                if self.handshake.len() + range.len() > MAX_HANDSHAKE_MESSAGE {
                    return Err(RecordError::Malformed("oversized post-handshake message"));
                }
                self.handshake.extend_from_slice(&self.rbuf[range]);
                self.post_handshake()?;
            }
            other => return Err(RecordError::InnerType(other)),
        }
        Ok(true)
    }

    fn post_handshake(&mut self) -> Result<(), RecordError> {
        let mut used = 0;
        while let Some((message, len)) = next_handshake_message(&self.handshake[used..])? {
            match message {
                PostHandshake::KeyUpdate { update_requested } => {
                    // A key change must end its record (RFC 8446 5.1).
                    if used + len != self.handshake.len() {
                        return Err(RecordError::Malformed("data after a key update"));
                    }
                    self.updates_in_a_row += 1;
                    if self.updates_in_a_row > MAX_KEY_UPDATES_IN_A_ROW {
                        return Err(RecordError::Malformed("too many key updates in a row"));
                    }
                    let (seq, secrets) = self.kernel.next_rx().map_err(RecordError::KeyUpdate)?;
                    self.opener = Opener::new(self.suite, seq, secrets)?;
                    self.key_updates.1 += 1;
                    self.key_update_asked |= update_requested;
                }
                PostHandshake::NewSessionTicket(body) => {
                    let body = body.to_vec();
                    self.kernel.ticket(&body)?;
                }
            }
            used += len;
        }
        self.handshake.drain(..used);
        if self.handshake.is_empty() {
            self.handshake = Vec::new();
        }
        Ok(())
    }

    /// Seals a key update and switches to the next sending keys.
    pub(super) fn seal_key_update(&mut self) -> Result<(), RecordError> {
        if !self.suite.is_tls13() {
            // About 2^24 records under one key: 256 GiB through one tunnel.
            return Err(RecordError::KeysUsedUp);
        }
        let record = self
            .sealer
            .seal(ContentType::Handshake, &[&KEY_UPDATE_NOT_REQUESTED])?;
        self.push_out(record);
        let (seq, secrets) = self.kernel.next_tx().map_err(RecordError::KeyUpdate)?;
        self.sealer = Sealer::new(self.suite, seq, secrets)?;
        self.key_updates.0 += 1;
        self.key_update_asked = false;
        Ok(())
    }

    fn push_out(&mut self, record: Vec<u8>) {
        self.out_bytes += record.len();
        self.out.push_back(record);
    }

    /// Seals as much of `bufs` as one call takes; returns the bytes taken.
    fn seal_data(&mut self, bufs: &[IoSlice<'_>]) -> Result<usize, RecordError> {
        if self.key_update_asked || self.sealer.wants_key_update() {
            self.seal_key_update()?;
        }
        let budget = WRITE_BATCH;
        let mut taken = 0;
        let (mut index, mut offset) = (0, 0);
        let mut parts: Vec<&[u8]> = Vec::with_capacity(4);
        while taken < budget && index < bufs.len() {
            parts.clear();
            let mut record_len = 0;
            while record_len < MAX_PLAINTEXT && index < bufs.len() {
                let rest = &bufs[index][offset..];
                let n = rest.len().min(MAX_PLAINTEXT - record_len);
                if n > 0 {
                    parts.push(&rest[..n]);
                    record_len += n;
                }
                offset += n;
                if offset == bufs[index].len() {
                    index += 1;
                    offset = 0;
                }
            }
            if record_len == 0 {
                break;
            }
            let record = self.sealer.seal(ContentType::ApplicationData, &parts)?;
            self.push_out(record);
            taken += record_len;
        }
        Ok(taken)
    }
}

impl<S: AsyncWrite + Unpin> OwnTls<S> {
    /// Writes sealed records until none is left or the transport waits.
    fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.out.is_empty() {
            let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
            let mut count = 0;
            for (i, record) in self.out.iter().take(MAX_IOVECS).enumerate() {
                slices[i] = IoSlice::new(if i == 0 {
                    &record[self.out_pos..]
                } else {
                    record
                });
                count += 1;
            }
            let mut n = ready!(Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..count]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out_bytes -= n;
            while n > 0 {
                let first = self.out.front().expect("a record").len() - self.out_pos;
                if n >= first {
                    n -= first;
                    self.out.pop_front();
                    self.out_pos = 0;
                } else {
                    self.out_pos += n;
                    n = 0;
                }
            }
        }
        if self.out.capacity() > 0 {
            self.out = VecDeque::new();
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for OwnTls<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        dst: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.early.is_empty() {
            let n = this.early.len().min(dst.remaining());
            dst.put_slice(&this.early[..n]);
            this.early.drain(..n);
            if this.early.is_empty() {
                this.early = Vec::new();
            }
            return Poll::Ready(Ok(()));
        }
        loop {
            if !this.plain.is_empty() {
                let n = this.plain.len().min(dst.remaining());
                dst.put_slice(&this.rbuf[this.plain.start..this.plain.start + n]);
                this.plain.start += n;
                return Poll::Ready(Ok(()));
            }
            if let Some((kind, text)) = &this.read_failed {
                return Poll::Ready(Err(io::Error::new(*kind, text.clone())));
            }
            if this.read_closed {
                return Poll::Ready(Ok(()));
            }
            match this.open_next() {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => return Poll::Ready(Err(this.fail_read(e))),
            }
            // A partial record (or none): make room and read more. The
            // plaintext handed out is all gone, so bytes may move.
            if this.rpos == this.rbuf.len() {
                this.rbuf.clear();
                this.rpos = 0;
            } else if this.rbuf.capacity() - this.rpos < HEADER_LEN + MAX_CIPHERTEXT {
                this.rbuf.drain(..this.rpos);
                this.rpos = 0;
            }
            if this.rbuf.capacity() < READ_SIZE {
                this.rbuf.reserve_exact(READ_SIZE - this.rbuf.len());
            }
            let filled = this.rbuf.len();
            debug_assert!(this.rbuf.capacity() > filled, "room to read into");
            let mut spare = ReadBuf::uninit(this.rbuf.spare_capacity_mut());
            match Pin::new(&mut this.io).poll_read(cx, &mut spare) {
                Poll::Pending => {
                    if this.rpos == this.rbuf.len() {
                        // Idle: no buffer is held while nothing arrives.
                        this.rbuf = Vec::new();
                        this.rpos = 0;
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {
                    let n = spare.filled().len();
                    if n == 0 {
                        let e = io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the peer closed the connection without close_notify",
                        );
                        return Poll::Ready(Err(e));
                    }
                    // SAFETY: the read initialised exactly these `n` bytes
                    // of the spare capacity, right after the `filled` ones.
                    unsafe { this.rbuf.set_len(filled + n) };
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for OwnTls<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.write_closed {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        // What is sealed goes first; while the transport holds it back,
        // nothing more is sealed.
        ready!(this.poll_write_out(cx))?;
        let taken = this
            .seal_data(bufs)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        // Hand what is sealed to the transport now; what it does not take
        // yet goes with the next write or flush.
        if let Poll::Ready(Err(e)) = this.poll_write_out(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(taken))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.key_update_asked && !this.write_closed {
            this.seal_key_update()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        }
        ready!(this.poll_write_out(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.write_closed {
            let record = this
                .sealer
                .seal(ContentType::Alert, &[&CLOSE_NOTIFY])
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            this.push_out(record);
            this.write_closed = true;
        }
        ready!(this.poll_write_out(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}
