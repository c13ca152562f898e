//! Moving bytes both ways between two connections, counting them, and
//! deciding when a tunnel is over.
//!
//! Used by the front door (partner TLS ↔ multiplexed stream) and by the agent
//! (multiplexed stream ↔ target TCP). Half-close is passed through: when one
//! side ends its sending direction, the other side's write half is shut down
//! and the opposite direction keeps flowing (an `scp` upload ends with EOF and
//! the reply still arrives). Because proxytunnel never half-closes, a tunnel
//! whose remaining direction stays idle for `half_close_grace` after the
//! first one ended is closed; otherwise a target that waits for more input
//! would hold it open forever. An error in either direction ends both.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use std::future::Future;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Instant;
use tunnel_proto::frame::HEADER_LEN;
use tunnel_proto::{MuxReadHalf, MuxStream, MuxWriteHalf};

/// Largest read per step from a plain connection into a buffer (`CopyPipe`,
/// the tested form of the relay): one TLS record.
#[cfg(test)]
const CHUNK: usize = 16 * 1024;
/// First read buffer of a direction. Interactive tunnels (an ssh shell, an
/// idle RDP session) never need more, and thousands of them stay open at
/// once; a direction whose reads fill the buffer doubles it up to [`CHUNK`]
/// (or, into a multiplexed stream, up to the session's DATA frame size).
const FIRST_CHUNK: usize = 512;
/// Most bytes taken from a multiplexed stream per write to the connection
/// (received chunks are handed over as they arrived, several in one
/// vectored write: over TLS, one system call for up to four records).
const MAX_STREAM_BATCH: usize = 64 * 1024;
/// Most chunks per such write (each is usually one 16 KiB DATA frame).
const MAX_STREAM_CHUNKS: usize = 16;

/// A busy direction lets other tasks run after moving this much. A site's
/// tunnels share one thread, and a bulk download whose stream holds a whole
/// window of received data would otherwise write all of it before a
/// neighbour's reply (a keystroke's echo) gets its turn. Interactive tunnels
/// never reach this, so it costs them nothing.
const YIELD_EVERY: usize = 64 * 1024;

/// When a tunnel gives up on a quiet direction.
#[derive(Debug, Clone, Copy, Default)]
pub struct RelayLimits {
    /// After one direction ended, close when the other is idle this long.
    pub half_close_grace: Option<Duration>,
    /// Close when no byte moved either way for this long.
    pub idle_timeout: Option<Duration>,
}

/// How a tunnel ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayEnd {
    /// Both directions ended with EOF.
    Completed,
    /// One direction ended and the other stayed idle past the grace period.
    HalfCloseGrace,
    /// No traffic for the idle timeout.
    Idle,
    /// Side A (the partner at the front door, the stream at the agent) failed.
    ErrorA(String),
    /// Side B (the stream at the front door, the target at the agent) failed.
    ErrorB(String),
}

impl RelayEnd {
    pub fn label(&self) -> String {
        match self {
            RelayEnd::Completed => "completed".into(),
            RelayEnd::HalfCloseGrace => "closed_after_half_close_grace".into(),
            RelayEnd::Idle => "idle_timeout".into(),
            RelayEnd::ErrorA(e) => format!("error_a: {e}"),
            RelayEnd::ErrorB(e) => format!("error_b: {e}"),
        }
    }
}

/// Bytes moved and how it ended.
#[derive(Debug, Clone)]
pub struct RelayOutcome {
    /// A → B (at the front door: partner to site).
    pub a_to_b: u64,
    /// B → A.
    pub b_to_a: u64,
    pub end: RelayEnd,
    /// It turned bulk and moved to its bulk thread ([`Placement`]).
    pub moved_to_bulk: bool,
}

/// Shared between the two directions.
struct Shared {
    start: Instant,
    /// Milliseconds since `start` of the last byte, per direction.
    last: [AtomicU64; 2],
    /// Milliseconds since `start` of the last bulk read in either
    /// direction ([`BULK_READ`]), kept while the tunnel is on its bulk
    /// thread.
    last_bulk: AtomicU64,
    limits: RelayLimits,
}

impl Shared {
    fn touch(&self, dir: usize) {
        self.last[dir].store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
    fn mark_bulk(&self) {
        self.last_bulk
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
    /// No bulk read in either direction for [`QUIET_AFTER`].
    fn quiet(&self) -> bool {
        let since = self.start.elapsed().as_millis() as u64;
        since.saturating_sub(self.last_bulk.load(Ordering::Relaxed))
            >= QUIET_AFTER.as_millis() as u64
    }
    fn last(&self, dir: usize) -> Instant {
        self.start + Duration::from_millis(self.last[dir].load(Ordering::Relaxed))
    }
    /// When this direction gives up waiting, given what the other did.
    fn deadline(&self, dir: usize, other_finished: bool) -> Option<Instant> {
        let mut d: Option<Instant> = None;
        if let Some(idle) = self.limits.idle_timeout {
            d = Some(self.last(0).max(self.last(1)) + idle);
        }
        if other_finished {
            if let Some(grace) = self.limits.half_close_grace {
                let g = self.last(dir) + grace;
                d = Some(d.map_or(g, |d| d.min(g)));
            }
        }
        d
    }
}

/// Direction state published to the other direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Flags {
    finished: [bool; 2],
    aborted: bool,
    /// A direction turned bulk (or, on the bulk thread, quiet): both stop
    /// at their next read and the tunnel goes on on its other thread (see
    /// [`Placement`]).
    moving: bool,
}

enum PumpEnd {
    /// Stopped for a move to the other thread; nothing is buffered.
    Moved,
    Eof,
    Aborted,
    Grace,
    Idle,
    ReadError(io::Error),
    WriteError(io::Error),
}

/// Relays between `a` and `b` until both directions end, one fails, or a
/// limit closes the tunnel. `a_first` are bytes already read from `a` (sent
/// after the CONNECT head) that go to `b` first.
///
/// Every tunnel in comgate has a multiplexed stream on one side and uses
/// [`relay_to_stream`] or [`relay_from_stream`]; this plain-connection form
/// exists so that the limits and half-close logic all three share can be
/// tested on in-memory pipes under a paused clock.
#[cfg(test)]
pub async fn relay<A, B>(a: A, b: B, a_first: &[u8], limits: RelayLimits) -> RelayOutcome
where
    A: AsyncRead + AsyncWrite + Send,
    B: AsyncRead + AsyncWrite + Send,
{
    let (ar, aw) = tokio::io::split(a);
    let (br, bw) = tokio::io::split(b);
    run(
        CopyPipe::new(ar, bw),
        CopyPipe::new(br, aw),
        a_first,
        limits,
    )
    .await
}

/// [`relay`] from a connection to a multiplexed stream (the front door):
/// the connection's bytes are read behind room for the frame header and
/// leave as the frame, the stream's chunks go to the connection as received.
/// Starts where it is called and may move ([`Placement`]).
pub async fn relay_to_stream<A>(
    a: A,
    b: MuxStream,
    a_first: &[u8],
    limits: RelayLimits,
    placement: Placement,
) -> RelayOutcome
where
    A: AsyncRead + AsyncWrite + Send + 'static,
{
    let (ar, aw) = tokio::io::split(a);
    let (br, bw) = b.into_split();
    Tunnel::new(IntoStream::new(ar, bw), FromStream::new(br, aw), limits)
        .drive_placed(a_first, placement)
        .await
}

/// [`relay`] from a multiplexed stream to a connection (the agent), copy
/// free like [`relay_to_stream`].
pub async fn relay_from_stream<B>(
    a: MuxStream,
    b: B,
    limits: RelayLimits,
    placement: Placement,
) -> RelayOutcome
where
    B: AsyncRead + AsyncWrite + Send + 'static,
{
    let (ar, aw) = a.into_split();
    let (br, bw) = tokio::io::split(b);
    Tunnel::new(FromStream::new(ar, bw), IntoStream::new(br, aw), limits)
        .drive_placed(&[], placement)
        .await
}

#[cfg(test)]
async fn run<U: Pipe, D: Pipe>(
    up: U,
    down: D,
    a_first: &[u8],
    limits: RelayLimits,
) -> RelayOutcome {
    let mut tunnel = Tunnel::new(up, down, limits);
    tunnel.drive(a_first, Watch::Nothing).await;
    tunnel.outcome()
}

/// Where a tunnel's relay runs. A site's bulk bytes are handled on its
/// thread, beside its session's main connection; a thread that is always
/// busy answers a keystroke only when its turn comes, and the scheduler
/// cannot help it, so tunnels start on a quieter thread (the one that also
/// serves the session's quick lane) and move to `bulk` once they move bulk
/// themselves: [`BULK_STREAK`] reads in a row of at least [`BULK_READ`]
/// bytes in either direction. They move back once quiet again: after
/// [`QUIET_AFTER`] without a bulk read in either direction, at the
/// [`QUIET_STREAK`]th short read in a row of one direction (an ssh session
/// after an `scp`, whose keystrokes would otherwise wait behind a
/// neighbour's download on the busy thread).
#[derive(Debug, Clone, Default)]
pub struct Placement {
    /// The thread to move to; `None` keeps the tunnel where it started.
    pub bulk: Option<tokio::runtime::Handle>,
}

/// A read at least this long counts towards a move to the bulk thread: a
/// relay that keeps up with its source reads what arrived since its last
/// turn, which is little for anything a person types or watches.
pub const BULK_READ: usize = 16 * 1024;
/// Reads of [`BULK_READ`] in a row that move a tunnel.
pub const BULK_STREAK: u32 = 8;
/// How long a tunnel on its bulk thread goes without a bulk read before it
/// may move back. Long enough that the pauses inside a transfer (a window
/// update's round trip, a disk's hiccup) do not move it to and fro.
pub const QUIET_AFTER: Duration = Duration::from_millis(500);
/// Short reads in a row of one direction that move a quiet tunnel back.
pub const QUIET_STREAK: u32 = 4;

/// What a phase of a tunnel watches for (a reason to move).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Watch {
    /// Stays where it runs.
    Nothing,
    /// Moves once it turns bulk.
    Bulk,
    /// Moves once it is quiet again.
    Quiet,
}

/// Both directions of a tunnel and what they did so far; movable between
/// threads while neither is in the middle of a write.
struct Tunnel<U, D> {
    up: U,
    down: D,
    shared: Arc<Shared>,
    flags: Flags,
    moved: [u64; 2],
    ends: [Option<PumpEnd>; 2],
    moved_to_bulk: bool,
}

impl<U: Pipe, D: Pipe> Tunnel<U, D> {
    fn new(up: U, down: D, limits: RelayLimits) -> Self {
        Tunnel {
            up,
            down,
            shared: Arc::new(Shared {
                start: Instant::now(),
                last: [AtomicU64::new(0), AtomicU64::new(0)],
                last_bulk: AtomicU64::new(0),
                limits,
            }),
            flags: Flags::default(),
            moved: [0, 0],
            ends: [None, None],
            moved_to_bulk: false,
        }
    }

    /// Runs the directions that have not ended, until both end or (unless
    /// `watch` is [`Watch::Nothing`]) they stop for a move; returns whether
    /// they did.
    async fn drive(&mut self, a_first: &[u8], watch: Watch) -> bool {
        self.flags.moving = false;
        let (tx, rx) = watch::channel(self.flags);
        let shared = &self.shared;
        let [up_end, down_end] = &mut self.ends;
        let up = run_pump(&mut self.up, up_end, a_first, 0, shared, &tx, &rx, watch);
        let down = run_pump(&mut self.down, down_end, &[], 1, shared, &tx, &rx, watch);
        let (up_moved, down_moved) = tokio::join!(up, down);
        self.moved[0] += up_moved;
        self.moved[1] += down_moved;
        self.flags = *tx.borrow();
        let stopped = |end: &Option<PumpEnd>| matches!(end, Some(PumpEnd::Moved));
        let settled = |end: &Option<PumpEnd>| matches!(end, Some(PumpEnd::Moved | PumpEnd::Eof));
        let moved = (stopped(&self.ends[0]) || stopped(&self.ends[1]))
            && settled(&self.ends[0])
            && settled(&self.ends[1]);
        if moved {
            for end in &mut self.ends {
                if matches!(end, Some(PumpEnd::Moved)) {
                    *end = None;
                }
            }
        }
        moved
    }

    fn outcome(self) -> RelayOutcome {
        let [up_end, down_end] = self.ends.map(|e| e.unwrap_or(PumpEnd::Aborted));
        // Reads from A and writes to A belong to side A; likewise for B.
        let end = match (up_end, down_end) {
            (PumpEnd::ReadError(e), _) | (_, PumpEnd::WriteError(e)) => {
                RelayEnd::ErrorA(e.to_string())
            }
            (PumpEnd::WriteError(e), _) | (_, PumpEnd::ReadError(e)) => {
                RelayEnd::ErrorB(e.to_string())
            }
            (PumpEnd::Idle, _) | (_, PumpEnd::Idle) => RelayEnd::Idle,
            (PumpEnd::Grace, _) | (_, PumpEnd::Grace) => RelayEnd::HalfCloseGrace,
            (PumpEnd::Eof, PumpEnd::Eof) => RelayEnd::Completed,
            // One side aborted without an error of its own: the other's reason wins above.
            _ => RelayEnd::Completed,
        };
        RelayOutcome {
            a_to_b: self.moved[0],
            b_to_a: self.moved[1],
            end,
            moved_to_bulk: self.moved_to_bulk,
        }
    }
}

impl<U: Pipe + 'static, D: Pipe + 'static> Tunnel<U, D> {
    /// [`Tunnel::drive`] where it was started, on `placement`'s bulk
    /// thread while it is bulk, and back where it started when quiet again
    /// (its sockets follow: [`crate::movable_tcp`]).
    async fn drive_placed(mut self, a_first: &[u8], placement: Placement) -> RelayOutcome {
        let Some(bulk) = placement.bulk else {
            self.drive(a_first, Watch::Nothing).await;
            return self.outcome();
        };
        let mut first = a_first;
        // Here: where the tunnel started, the caller's task.
        while self.drive(first, Watch::Bulk).await {
            first = &[];
            tracing::debug!("tunnel moves to its site's bulk thread");
            self.moved_to_bulk = true;
            self.shared.mark_bulk();
            let on_bulk = bulk.spawn(async move {
                let back = self.drive(&[], Watch::Quiet).await;
                (self, back)
            });
            match on_bulk.await {
                Ok((tunnel, true)) => {
                    self = tunnel;
                    tracing::debug!("tunnel is quiet again and moves back");
                }
                Ok((tunnel, false)) => return tunnel.outcome(),
                Err(e) => {
                    return RelayOutcome {
                        a_to_b: 0,
                        b_to_a: 0,
                        end: RelayEnd::ErrorB(format!("the tunnel's bulk thread is gone: {e}")),
                        moved_to_bulk: true,
                    }
                }
            }
        }
        self.outcome()
    }
}

/// Runs one direction unless it already ended; records how it ended.
#[allow(clippy::too_many_arguments)]
async fn run_pump<P: Pipe>(
    pipe: &mut P,
    end: &mut Option<PumpEnd>,
    first: &[u8],
    dir: usize,
    shared: &Shared,
    tx: &watch::Sender<Flags>,
    rx: &watch::Receiver<Flags>,
    watch: Watch,
) -> u64 {
    if end.is_some() {
        return 0;
    }
    let (moved, how) = pump(pipe, first, dir, shared, tx, rx.clone(), watch).await;
    *end = Some(how);
    moved
}

/// One direction of a tunnel: a reading end, a writing end and the bytes
/// between them. `read` must be cancel safe (the pump races it against the
/// other direction's news and its timer); `write` is not raced but against
/// an abort, after which the pipe is dropped.
trait Pipe: Send {
    /// Waits for bytes; `Ok(0)` at EOF.
    fn read(&mut self) -> impl Future<Output = io::Result<usize>> + Send;
    /// Passes on everything the last `read` got.
    fn write(&mut self) -> impl Future<Output = io::Result<()>> + Send;
    /// Passes on bytes read before the relay started.
    fn write_first(&mut self, first: &[u8]) -> impl Future<Output = io::Result<()>> + Send;
    /// Ends the writing end's direction (half-close).
    fn shutdown(&mut self) -> impl Future<Output = ()> + Send;
}

/// A read that counts towards moving the tunnel to its bulk thread (and
/// keeps it there).
fn bulk_read(n: usize) -> bool {
    n >= BULK_READ
}

/// Between two plain connections: through a buffer of the pipe's own.
#[cfg(test)]
struct CopyPipe<R, W> {
    r: R,
    w: W,
    buf: Vec<u8>,
    filled: usize,
}

#[cfg(test)]
impl<R, W> CopyPipe<R, W> {
    fn new(r: R, w: W) -> Self {
        CopyPipe {
            r,
            w,
            buf: vec![0u8; FIRST_CHUNK],
            filled: 0,
        }
    }
}

#[cfg(test)]
impl<R, W> Pipe for CopyPipe<R, W>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    async fn read(&mut self) -> io::Result<usize> {
        self.filled = self.r.read(&mut self.buf).await?;
        Ok(self.filled)
    }

    async fn write(&mut self) -> io::Result<()> {
        write_chunk(&mut self.w, &self.buf[..self.filled]).await?;
        if self.filled == self.buf.len() && self.buf.len() < CHUNK {
            self.buf.resize((self.buf.len() * 2).min(CHUNK), 0);
        }
        Ok(())
    }

    async fn write_first(&mut self, first: &[u8]) -> io::Result<()> {
        write_chunk(&mut self.w, first).await
    }

    async fn shutdown(&mut self) {
        let _ = self.w.shutdown().await;
    }
}

/// From a connection into a multiplexed stream: each read lands behind
/// room for the DATA frame header, so the read buffer becomes the frame.
struct IntoStream<R> {
    r: R,
    w: MuxWriteHalf,
    /// Header room, then the bytes of the last read.
    buf: BytesMut,
    /// How much the next read may take: from [`FIRST_CHUNK`], doubled up to
    /// `max` while reads fill it.
    limit: usize,
    /// One DATA frame's payload on this session (16 or 64 KiB).
    max: usize,
}

impl<R> IntoStream<R> {
    fn new(r: R, w: MuxWriteHalf) -> Self {
        let max = w.max_payload().max(FIRST_CHUNK);
        IntoStream {
            r,
            w,
            buf: BytesMut::new(),
            limit: FIRST_CHUNK,
            max,
        }
    }
}

impl<R> Pipe for IntoStream<R>
where
    R: AsyncRead + Unpin + Send,
{
    async fn read(&mut self) -> io::Result<usize> {
        if self.buf.is_empty() {
            // The last frame took the buffer along: a fresh one of its own,
            // so the frame is the only owner of its bytes (the agent's
            // websocket masks frames in place when it is).
            self.buf.reserve(HEADER_LEN + self.limit);
            self.buf.put_bytes(0, HEADER_LEN);
        }
        let room = self.limit - (self.buf.len() - HEADER_LEN);
        let mut n = self.r.read_buf(&mut (&mut self.buf).limit(room)).await?;
        // A TLS reader hands out one record (16 KiB) per read: take what
        // else is there already, without waiting, up to the frame's size.
        while n > 0 && self.buf.len() - HEADER_LEN < self.limit {
            let room = self.limit - (self.buf.len() - HEADER_LEN);
            let mut spare = (&mut self.buf).limit(room);
            let more = self.r.read_buf(&mut spare);
            match futures_util::FutureExt::now_or_never(more) {
                Some(Ok(m)) if m > 0 => n += m,
                // Nothing more now, or EOF / an error: the next read sees it.
                _ => break,
            }
        }
        Ok(n)
    }

    async fn write(&mut self) -> io::Result<()> {
        let filled = self.buf.len() - HEADER_LEN;
        while self.buf.len() > HEADER_LEN {
            self.w.write_frame(&mut self.buf).await?;
        }
        self.buf.clear();
        if filled == self.limit && self.limit < self.max {
            self.limit = (self.limit * 2).min(self.max);
        }
        Ok(())
    }

    async fn write_first(&mut self, first: &[u8]) -> io::Result<()> {
        self.w.write_all(first).await
    }

    async fn shutdown(&mut self) {
        let _ = self.w.shutdown().await;
    }
}

/// From a multiplexed stream to a connection: received chunks are written
/// as they arrived, without a buffer of the pipe's own; what has arrived
/// together goes out in one vectored write.
struct FromStream<W> {
    r: MuxReadHalf,
    w: W,
    /// Empty (no allocation kept) between batches.
    chunks: Vec<Bytes>,
}

impl<W> FromStream<W> {
    fn new(r: MuxReadHalf, w: W) -> Self {
        FromStream {
            r,
            w,
            chunks: Vec::new(),
        }
    }
}

impl<W> Pipe for FromStream<W>
where
    W: AsyncWrite + Unpin + Send,
{
    async fn read(&mut self) -> io::Result<usize> {
        self.chunks.clear();
        self.r
            .read_chunks(MAX_STREAM_BATCH, MAX_STREAM_CHUNKS, &mut self.chunks)
            .await?;
        Ok(self.chunks.iter().map(Bytes::len).sum())
    }

    async fn write(&mut self) -> io::Result<()> {
        // Idle tunnels keep no vector: one small allocation per batch.
        let mut chunks = std::mem::take(&mut self.chunks);
        write_chunks(&mut self.w, &mut chunks).await
    }

    async fn write_first(&mut self, first: &[u8]) -> io::Result<()> {
        write_chunk(&mut self.w, first).await
    }

    async fn shutdown(&mut self) {
        let _ = self.w.shutdown().await;
    }
}

async fn pump<P: Pipe>(
    pipe: &mut P,
    first: &[u8],
    dir: usize,
    shared: &Shared,
    tx: &watch::Sender<Flags>,
    mut rx: watch::Receiver<Flags>,
    watch: Watch,
) -> (u64, PumpEnd) {
    let abort = |end: PumpEnd| {
        tx.send_modify(|f| f.aborted = true);
        end
    };
    let mut moved = 0u64;
    if !first.is_empty() {
        if let Err(e) = pipe.write_first(first).await {
            return (0, abort(PumpEnd::WriteError(e)));
        }
        moved += first.len() as u64;
        shared.touch(dir);
    }
    // One timer per direction, armed at the earliest moment a limit could
    // hit and re-checked when it fires: bytes only push deadlines later, so
    // the hot loop never touches the timer wheel.
    let timer = tokio::time::sleep_until(Instant::now());
    tokio::pin!(timer);
    let mut armed = false;
    let mut other_finished = None;
    let mut since_yield = 0;
    // Reads in a row that count towards a move: bulk ones on the quick
    // thread, short ones on the bulk thread.
    let mut streak = 0;
    loop {
        let flags = *rx.borrow_and_update();
        if flags.aborted {
            return (moved, PumpEnd::Aborted);
        }
        // Here, between a finished write and the next read, nothing is
        // buffered: the pipe can go on on another thread.
        if flags.moving {
            return (moved, PumpEnd::Moved);
        }
        if other_finished != Some(flags.finished[1 - dir]) {
            other_finished = Some(flags.finished[1 - dir]);
            match shared.deadline(dir, flags.finished[1 - dir]) {
                Some(d) => {
                    timer.as_mut().reset(d);
                    armed = true;
                }
                None => armed = false,
            }
        }
        let step = tokio::select! {
            res = pipe.read() => Some(res),
            // The other direction finished or aborted: recompute the deadline.
            changed = rx.changed() => {
                if changed.is_err() {
                    return (moved, PumpEnd::Aborted);
                }
                None
            }
            _ = &mut timer, if armed => {
                // Re-check: bytes may have moved since the timer was armed.
                match shared.deadline(dir, flags.finished[1 - dir]) {
                    Some(d) if d <= Instant::now() => {
                        let idle_hit = shared.limits.idle_timeout.is_some_and(|idle| {
                            shared.last(0).max(shared.last(1)) + idle <= Instant::now()
                        });
                        let end = if idle_hit { PumpEnd::Idle } else { PumpEnd::Grace };
                        pipe.shutdown().await;
                        return (moved, abort(end));
                    }
                    Some(d) => timer.as_mut().reset(d),
                    None => armed = false,
                }
                None
            }
        };
        match step {
            None => continue,
            Some(Ok(0)) => {
                // Half-close: pass the EOF on, keep the other direction open.
                pipe.shutdown().await;
                tx.send_modify(|f| f.finished[dir] = true);
                return (moved, PumpEnd::Eof);
            }
            Some(Ok(n)) => {
                shared.touch(dir);
                let res = tokio::select! {
                    res = pipe.write() => res,
                    _ = wait_aborted(&mut rx) => return (moved, PumpEnd::Aborted),
                };
                if let Err(e) = res {
                    return (moved, abort(PumpEnd::WriteError(e)));
                }
                moved += n as u64;
                shared.touch(dir);
                match watch {
                    Watch::Nothing => {}
                    Watch::Bulk => {
                        streak = if bulk_read(n) { streak + 1 } else { 0 };
                        if streak >= BULK_STREAK {
                            tx.send_modify(|f| f.moving = true);
                        }
                    }
                    Watch::Quiet if bulk_read(n) => {
                        streak = 0;
                        shared.mark_bulk();
                    }
                    Watch::Quiet => {
                        streak += 1;
                        if streak >= QUIET_STREAK && shared.quiet() {
                            tx.send_modify(|f| f.moving = true);
                        }
                    }
                }
                since_yield += n;
                if since_yield >= YIELD_EVERY {
                    since_yield = 0;
                    tokio::task::yield_now().await;
                }
            }
            Some(Err(e)) => return (moved, abort(PumpEnd::ReadError(e))),
        }
    }
}

async fn write_chunk<W: AsyncWrite + Unpin>(w: &mut W, data: &[u8]) -> io::Result<()> {
    w.write_all(data).await?;
    w.flush().await
}

/// Writes all of `chunks` with vectored writes, then flushes; empties
/// `chunks` as they go out.
async fn write_chunks<W: AsyncWrite + Unpin>(w: &mut W, chunks: &mut Vec<Bytes>) -> io::Result<()> {
    let mut first = 0;
    while first < chunks.len() {
        let mut slices = [io::IoSlice::new(&[]); MAX_STREAM_CHUNKS];
        let count = (chunks.len() - first).min(MAX_STREAM_CHUNKS);
        for (slice, chunk) in slices.iter_mut().zip(&chunks[first..first + count]) {
            *slice = io::IoSlice::new(chunk);
        }
        let mut n = w.write_vectored(&slices[..count]).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        while n > 0 {
            let head = &mut chunks[first];
            if n >= head.len() {
                n -= head.len();
                first += 1;
            } else {
                bytes::Buf::advance(head, n);
                n = 0;
            }
        }
    }
    chunks.clear();
    w.flush().await
}

async fn wait_aborted(rx: &mut watch::Receiver<Flags>) {
    loop {
        if rx.borrow_and_update().aborted {
            return;
        }
        if rx.changed().await.is_err() {
            // The sender lives as long as the relay; treat its loss as abort.
            return;
        }
    }
}

#[cfg(test)]
mod placement_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use tokio::io::{duplex, ReadBuf};

    /// A writer that takes at most `per_call` bytes per (vectored) write,
    /// across slice boundaries, and counts its calls and flushes.
    #[derive(Default)]
    struct Trickle {
        got: Vec<u8>,
        per_call: usize,
        calls: usize,
        flushes: usize,
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.poll_write_vectored(cx, &[io::IoSlice::new(buf)])
        }
        fn poll_write_vectored(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            bufs: &[io::IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            this.calls += 1;
            let mut room = this.per_call;
            for b in bufs {
                let n = b.len().min(room);
                this.got.extend_from_slice(&b[..n]);
                room -= n;
            }
            Poll::Ready(Ok(this.per_call - room))
        }
        fn is_write_vectored(&self) -> bool {
            true
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.get_mut().flushes += 1;
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn chunks_go_out_whole_and_in_order_through_partial_vectored_writes() {
        let parts: [&[u8]; 5] = [b"hello", b" ", b"", b"vectored", b" world"];
        for per_call in [1, 3, 7, 100] {
            let mut w = Trickle {
                per_call,
                ..Default::default()
            };
            let mut chunks: Vec<Bytes> = parts.iter().map(|p| Bytes::from_static(p)).collect();
            write_chunks(&mut w, &mut chunks).await.unwrap();
            assert_eq!(w.got, b"hello vectored world", "{per_call} bytes per call");
            assert!(chunks.is_empty());
            assert_eq!(w.flushes, 1, "one flush per batch");
            assert_eq!(
                w.calls,
                20usize.div_ceil(per_call),
                "{per_call} bytes per call"
            );
        }
        // More chunks than one write's slices: all of them, in order.
        let mut w = Trickle {
            per_call: usize::MAX / 2,
            ..Default::default()
        };
        let mut chunks: Vec<Bytes> = (0..40u8).map(|i| Bytes::from(vec![i; 3])).collect();
        write_chunks(&mut w, &mut chunks).await.unwrap();
        let expected: Vec<u8> = (0..40u8).flat_map(|i| [i; 3]).collect();
        assert_eq!(w.got, expected);
        assert_eq!(w.calls, 40usize.div_ceil(MAX_STREAM_CHUNKS));
    }

    /// A reader that always has `left` more bytes ready and never returns
    /// `Pending` (nor spends tokio's budget): only the relay's own yields
    /// can let another task run while it is read.
    struct AlwaysReady {
        left: usize,
    }

    impl AsyncRead for AlwaysReady {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let n = buf.remaining().min(self.left);
            buf.put_slice(&vec![7; n]);
            self.left -= n;
            Poll::Ready(Ok(()))
        }
    }

    /// A writer that takes everything at once and counts it.
    struct Counting(Arc<AtomicU64>);

    impl AsyncWrite for Counting {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.0.fetch_add(buf.len() as u64, Ordering::Relaxed);
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_busy_direction_lets_other_tasks_on_its_thread_run() {
        const TOTAL: usize = 4 << 20;
        let moved = Arc::new(AtomicU64::new(0));
        let a = tokio::io::join(AlwaysReady { left: TOTAL }, tokio::io::sink());
        let b = tokio::io::join(tokio::io::empty(), Counting(moved.clone()));
        let relay = tokio::spawn(relay(a, b, b"", RelayLimits::default()));
        // Another tunnel's task on the same thread: how far the bulk
        // direction got between two of its turns.
        let mut widest = 0;
        let mut last = 0;
        while !relay.is_finished() {
            tokio::task::yield_now().await;
            let now = moved.load(Ordering::Relaxed);
            widest = widest.max(now - last);
            last = now;
        }
        let out = relay.await.unwrap();
        assert_eq!(out.a_to_b, TOTAL as u64);
        assert_eq!(moved.load(Ordering::Relaxed), TOTAL as u64);
        assert!(
            widest <= (YIELD_EVERY + CHUNK) as u64,
            "{widest} bytes moved between two turns of another task"
        );
    }

    #[tokio::test]
    async fn half_close_passes_through_and_reply_arrives() {
        let (a, mut a_peer) = duplex(64 * 1024);
        let (b, mut b_peer) = duplex(64 * 1024);
        let relay = tokio::spawn(relay(a, b, b"hello ", RelayLimits::default()));
        a_peer.write_all(b"world").await.unwrap();
        a_peer.shutdown().await.unwrap();
        let mut got = Vec::new();
        b_peer.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"hello world");
        b_peer.write_all(b"reply").await.unwrap();
        b_peer.shutdown().await.unwrap();
        let mut back = Vec::new();
        a_peer.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, b"reply");
        let out = relay.await.unwrap();
        assert_eq!((out.a_to_b, out.b_to_a), (11, 5));
        assert_eq!(out.end, RelayEnd::Completed);
    }

    #[tokio::test]
    async fn bulk_transfer_is_byte_exact_while_the_buffer_grows() {
        let (a, mut a_peer) = duplex(256 * 1024);
        let (b, mut b_peer) = duplex(256 * 1024);
        let relay = tokio::spawn(relay(a, b, b"", RelayLimits::default()));
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let sent = data.clone();
        let writer = tokio::spawn(async move {
            a_peer.write_all(&sent).await.unwrap();
            a_peer.shutdown().await.unwrap();
            a_peer
        });
        let mut got = Vec::new();
        b_peer.read_to_end(&mut got).await.unwrap();
        assert!(got == data, "bytes differ");
        drop(b_peer);
        drop(writer.await.unwrap());
        let out = relay.await.unwrap();
        assert_eq!(out.a_to_b, data.len() as u64);
    }

    #[tokio::test(start_paused = true)]
    async fn quiet_direction_after_half_close_is_closed_after_grace() {
        let (a, mut a_peer) = duplex(1024);
        let (b, _b_peer) = duplex(1024);
        let limits = RelayLimits {
            half_close_grace: Some(Duration::from_secs(2)),
            idle_timeout: None,
        };
        let relay = tokio::spawn(relay(a, b, b"", limits));
        a_peer.shutdown().await.unwrap();
        let out = tokio::time::timeout(Duration::from_secs(10), relay)
            .await
            .expect("closed by the grace period")
            .unwrap();
        assert_eq!(out.end, RelayEnd::HalfCloseGrace);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_tunnel_is_closed() {
        let (a, _a_peer) = duplex(1024);
        let (b, _b_peer) = duplex(1024);
        let limits = RelayLimits {
            half_close_grace: None,
            idle_timeout: Some(Duration::from_secs(30)),
        };
        let out = tokio::time::timeout(Duration::from_secs(60), relay(a, b, b"", limits))
            .await
            .expect("closed by the idle timeout");
        assert_eq!(out.end, RelayEnd::Idle);
    }

    #[tokio::test(start_paused = true)]
    async fn traffic_keeps_a_tunnel_open_past_the_idle_timeout() {
        let (a, mut a_peer) = duplex(1024);
        let (b, mut b_peer) = duplex(1024);
        let limits = RelayLimits {
            half_close_grace: None,
            idle_timeout: Some(Duration::from_secs(30)),
        };
        let started = Instant::now();
        let relay = tokio::spawn(relay(a, b, b"", limits));
        // A byte every 20 s for 100 s: each one pushes the idle deadline on.
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_secs(20)).await;
            a_peer.write_all(b"x").await.unwrap();
            let mut got = [0u8; 1];
            b_peer.read_exact(&mut got).await.unwrap();
            assert_eq!(&got, b"x");
        }
        let out = tokio::time::timeout(Duration::from_secs(60), relay)
            .await
            .expect("closed by the idle timeout once traffic stopped")
            .unwrap();
        assert_eq!(out.end, RelayEnd::Idle);
        assert_eq!(out.a_to_b, 5);
        let lived = started.elapsed();
        assert!(
            lived >= Duration::from_secs(130) && lived < Duration::from_secs(132),
            "closed {lived:?} after the start, expected 30 s after the last byte at 100 s"
        );
    }

    /// The front door's and the agent's relays in a row, as in production:
    /// partner ↔ relay_to_stream ↔ multiplexed stream ↔ relay_from_stream ↔
    /// target. A small stream window makes credit split some frames.
    /// Hands out at most one TLS record's worth (16 KiB) per read, as
    /// tokio-rustls does, however much is buffered behind it.
    struct OneRecordPerRead<R>(R);

    impl<R: AsyncRead + Unpin> AsyncRead for OneRecordPerRead<R> {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let mut record = [0u8; 16 * 1024];
            let take = buf.remaining().min(record.len());
            let mut limited = ReadBuf::new(&mut record[..take]);
            let polled = Pin::new(&mut self.get_mut().0).poll_read(cx, &mut limited);
            if let Poll::Ready(Ok(())) = polled {
                buf.put_slice(limited.filled());
            }
            polled
        }
    }

    impl<R: AsyncWrite + Unpin> AsyncWrite for OneRecordPerRead<R> {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            data: &[u8],
        ) -> Poll<io::Result<usize>> {
            Pin::new(&mut self.get_mut().0).poll_write(cx, data)
        }
        fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.get_mut().0).poll_flush(cx)
        }
        fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
        }
    }

    /// Writes `data` into `peer` in pieces of `piece` bytes and half-closes,
    /// while reading what comes back until EOF; the task returns that.
    pub(super) fn exchange(
        peer: tokio::io::DuplexStream,
        data: Vec<u8>,
        piece: usize,
    ) -> tokio::task::JoinHandle<Vec<u8>> {
        tokio::spawn(async move {
            let (mut rd, mut wr) = tokio::io::split(peer);
            let send = async {
                for part in data.chunks(piece) {
                    wr.write_all(part).await.unwrap();
                }
                wr.shutdown().await.unwrap();
            };
            let mut got = Vec::new();
            let (_, read) = tokio::join!(send, rd.read_to_end(&mut got));
            read.unwrap();
            got
        })
    }

    /// A gateway and an agent multiplexer over a websocket on an in-memory
    /// pipe of `pipe` bytes, each with its own configuration.
    pub(super) async fn mux_pair(
        pipe: usize,
        gateway_cfg: tunnel_proto::MuxConfig,
        agent_cfg: tunnel_proto::MuxConfig,
    ) -> (
        (tunnel_proto::MuxHandle, tunnel_proto::Incoming),
        (tunnel_proto::MuxHandle, tunnel_proto::Incoming),
    ) {
        use tunnel_proto::Role;
        let (server_io, client_io) = duplex(pipe);
        let server = tokio::spawn(tunnel_proto::ws::accept(server_io));
        let client = tunnel_proto::ws::connect("ws://gateway.test/agent", client_io)
            .await
            .unwrap();
        let server = server.await.unwrap().unwrap();
        (
            tunnel_proto::start(server, Role::Gateway, gateway_cfg),
            tunnel_proto::start(client, Role::Agent, agent_cfg),
        )
    }

    /// On a session whose peer takes large DATA frames, bytes already
    /// waiting behind a one-record-per-read connection leave as frames of
    /// the session's large size (the agent receives chunks of that size),
    /// byte exact; on a 16 KiB session the same relay sends 16 KiB frames.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn waiting_bytes_fill_whole_frames_of_the_session_s_size() {
        use tunnel_proto::{IncomingEvent, MuxConfig, Target};
        for frame in [
            tunnel_proto::frame::LARGE_DATA_LEN,
            tunnel_proto::frame::BASE_DATA_LEN,
        ] {
            let cfg = MuxConfig {
                peer_max_data: frame,
                ..MuxConfig::default()
            };
            let ((gateway, _gateway_incoming), (_agent, mut agent_incoming)) =
                mux_pair(256 * 1024, cfg, MuxConfig::default()).await;
            // The partner's bytes are all there before the relay reads.
            let sent: Vec<u8> = (0..1_000_000u32).map(|i| (i % 253) as u8).collect();
            let (partner, mut partner_peer) = duplex(2 << 20);
            partner_peer.write_all(&sent).await.unwrap();
            partner_peer.shutdown().await.unwrap();
            let agent_side = tokio::spawn(async move {
                let Some(IncomingEvent::Stream(incoming)) = agent_incoming.next().await else {
                    panic!("no stream");
                };
                let (mut rd, _wr) = incoming.accept().into_split();
                let (mut got, mut largest) = (Vec::new(), 0);
                while let Some(chunk) = rd.read_chunk(usize::MAX).await.unwrap() {
                    largest = largest.max(chunk.len());
                    got.extend_from_slice(&chunk);
                }
                (got, largest)
            });
            let stream = gateway.open(Target::System { port: 22 }).await.unwrap();
            let relayed = tokio::spawn(relay_to_stream(
                OneRecordPerRead(partner),
                stream,
                b"",
                RelayLimits::default(),
                Placement::default(),
            ));
            let (got, largest) = tokio::time::timeout(Duration::from_secs(30), agent_side)
                .await
                .expect("all bytes within 30 s")
                .unwrap();
            assert!(got == sent, "bytes differ ({frame}-byte frames)");
            assert_eq!(largest, frame, "largest chunk with {frame}-byte frames");
            drop(partner_peer);
            relayed.abort();
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stream_relays_in_a_row_are_byte_exact_both_ways() {
        use tunnel_proto::{IncomingEvent, MuxConfig, Target};
        let cfg = MuxConfig {
            stream_window: 50_000,
            max_stream_window: 50_000,
            ..MuxConfig::default()
        };
        let ((gateway, _gateway_incoming), (_agent, mut agent_incoming)) =
            mux_pair(64 * 1024, cfg, cfg).await;

        let (target, target_peer) = duplex(256 * 1024);
        let agent_side = tokio::spawn(async move {
            let Some(IncomingEvent::Stream(incoming)) = agent_incoming.next().await else {
                panic!("no stream");
            };
            relay_from_stream(
                incoming.accept(),
                target,
                RelayLimits::default(),
                Placement::default(),
            )
            .await
        });
        let stream = gateway.open(Target::System { port: 22 }).await.unwrap();
        let (partner, partner_peer) = duplex(256 * 1024);
        let gateway_side = tokio::spawn(relay_to_stream(
            partner,
            stream,
            b"early ",
            RelayLimits::default(),
            Placement::default(),
        ));

        let up: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
        let down: Vec<u8> = (0..3_000_000u32).map(|i| (i % 241) as u8).collect();
        let (up_sent, down_sent) = (up.clone(), down.clone());
        // Odd write sizes, so reads land at every offset.
        let partner_task = exchange(partner_peer, up_sent, 7_777);
        let target_task = exchange(target_peer, down_sent, 100_003);
        let at_partner = partner_task.await.unwrap();
        let at_target = target_task.await.unwrap();
        assert!(at_partner == down, "bytes to the partner differ");
        let mut expected_up = b"early ".to_vec();
        expected_up.extend_from_slice(&up);
        assert!(at_target == expected_up, "bytes to the target differ");
        let front = gateway_side.await.unwrap();
        let agent = agent_side.await.unwrap();
        assert_eq!(front.end, RelayEnd::Completed);
        assert_eq!(
            (front.a_to_b, front.b_to_a),
            (up.len() as u64 + 6, down.len() as u64)
        );
        assert_eq!(
            (agent.a_to_b, agent.b_to_a),
            (up.len() as u64 + 6, down.len() as u64)
        );
    }

    #[tokio::test]
    async fn error_on_one_side_ends_both() {
        let (a, a_peer) = duplex(1024);
        let (b, mut b_peer) = duplex(1024);
        let relay = tokio::spawn(relay(a, b, b"", RelayLimits::default()));
        drop(a_peer); // A's peer vanishes: reads see EOF, writes fail.
        let mut rest = Vec::new();
        b_peer.read_to_end(&mut rest).await.unwrap();
        b_peer.write_all(b"late").await.ok();
        drop(b_peer);
        let out = tokio::time::timeout(Duration::from_secs(5), relay)
            .await
            .expect("relay ends")
            .unwrap();
        assert_eq!(out.a_to_b, 0);
    }
}
