//! The two tasks that move bytes between the websocket and the session.
//!
//! The reader never waits on a stream: a received message is handed to the
//! session in one call, and the session only appends to per-stream buffers
//! that flow control already bounds. The writer batches: small frames are
//! copied into one message of up to 16 KiB, large DATA frames go out as their
//! own message without a copy (header and payload in one vectored write, see
//! [`crate::ws`]), and the transport is flushed only when nothing more is
//! queued. A websocket ping from the peer is answered by the writer.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{sleep_until, Instant, MissedTickBehavior};

use super::shared::Shared;
use super::CloseReason;
use crate::codes;
use crate::session::Lane;
use crate::ws::{WsMessage, WsReader, WsWriter};

/// Target size of a batched websocket message.
const MESSAGE_TARGET: usize = 16 * 1024;
/// Frames the writer takes from the session per pass (and writes at once).
const PASS: usize = 4 * MESSAGE_TARGET;
/// Frames at least this large are sent alone, as the encoded `Bytes` the
/// session produced (header and payload in one allocation), without copying.
const SEND_ALONE: usize = 4 * 1024;
/// How long the writer may keep trying to deliver GOAWAY and the websocket
/// close after the session ended, before it drops the socket.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// The writer lets other tasks run after moving this much: tokio's own
/// budget would let it move megabytes per turn, and on a site's single
/// thread that is what a quiet stream waits behind.
const YIELD_EVERY: usize = 64 * 1024;
/// The reader lets other tasks run after this much. It runs ahead on
/// purpose: what it has not read waits in the kernel's receive queue in
/// arrival order, so a quiet stream's bytes behind a bulk stream's cannot
/// be reached until everything before them was decrypted; once read, each
/// stream has its own buffer and its relay its own turn. Yielding every
/// 64 KiB (like the writer) made the reader and a bulk relay alternate,
/// so a neighbour's reply waited for both to work through the whole
/// window. The bound keeps other sites on the same thread served; the
/// flow-control windows bound what there is to read anyway.
const READ_YIELD_EVERY: usize = 1024 * 1024;
/// The main lane's reader yields after this much once the session has a
/// quick lane: a neighbour's reply then arrives on the quick lane, and its
/// reader should not wait for a megabyte of bulk bytes to be taken first.
const READ_YIELD_WITH_QUICK_LANE: usize = 64 * 1024;
/// How long a failed write waits for the reader to report a better reason.
const WRITE_ERROR_GRACE: Duration = Duration::from_millis(100);

pub(crate) async fn write_loop<W>(shared: Arc<Shared>, mut sink: WsWriter<W>, lane: Lane)
where
    W: AsyncWrite + Unpin,
{
    let outcome = tokio::select! {
        result = write_frames(&shared, &mut sink, lane) => result.map(Some),
        // A peer that stopped reading must not keep this task alive forever.
        _ = async {
            shared.wait_closed().await;
            tokio::time::sleep(CLOSE_GRACE).await;
        } => Ok(None),
    };
    match outcome {
        Ok(Some(())) => {
            let _ = tokio::time::timeout(CLOSE_GRACE, sink.close()).await;
        }
        Ok(None) => {
            tracing::debug!("gave up delivering the last frames of a closed tunnel session")
        }
        Err(e) => {
            // When the peer leaves, the reader usually learns why (GOAWAY,
            // close frame) a moment after a write fails: prefer its reason.
            let _ = tokio::time::timeout(WRITE_ERROR_GRACE, shared.wait_closed()).await;
            shared.shutdown(CloseReason::Io(e.to_string()), None);
        }
    }
}

/// Sends `lane`'s queued frames until the session is closed and everything
/// queued before that was sent.
async fn write_frames<W>(shared: &Shared, sink: &mut WsWriter<W>, lane: Lane) -> std::io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    let mut pending: VecDeque<Bytes> = VecDeque::new();
    // The messages of one pass go to the transport in one vectored write:
    // TLS encrypts them together and the socket sees one write per pass.
    let mut messages: Vec<Bytes> = Vec::new();
    let mut batch = BytesMut::new();
    let mut since_yield = 0;
    loop {
        if since_yield >= YIELD_EVERY {
            since_yield = 0;
            tokio::task::yield_now().await;
        }
        let (closed, pong) = shared.take_transmit(lane, &mut pending, PASS);
        if let Some(payload) = pong {
            sink.send_pong(payload).await?;
        }
        if pending.is_empty() {
            if !batch.is_empty() {
                messages.push(batch.split().freeze());
            }
            sink.send_binaries(&mut messages).await?;
            sink.flush().await?;
            if closed {
                return Ok(());
            }
            // Idle sessions hold no batch buffer.
            batch = BytesMut::new();
            shared.wake_of(lane).notified().await;
            continue;
        }
        while let Some(frame) = pending.pop_front() {
            since_yield += frame.len();
            if frame.len() >= SEND_ALONE {
                if !batch.is_empty() {
                    messages.push(batch.split().freeze());
                }
                messages.push(frame);
                continue;
            }
            if batch.len() + frame.len() > MESSAGE_TARGET {
                messages.push(batch.split().freeze());
            }
            if batch.is_empty() {
                batch.reserve(MESSAGE_TARGET);
            }
            batch.extend_from_slice(&frame);
        }
        sink.send_binaries(&mut messages).await?;
    }
}

pub(crate) async fn read_loop<R>(
    shared: Arc<Shared>,
    mut source: WsReader<R>,
    ping_interval: Duration,
    ping_timeout: Duration,
) where
    R: AsyncRead + Unpin,
{
    let ping_interval = ping_interval.max(Duration::from_millis(1));
    let mut ping = tokio::time::interval_at(Instant::now() + ping_interval, ping_interval);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut ping_seq: u64 = 0;
    let mut last_rx = Instant::now();
    // Re-armed only when it fires, not per message.
    let deadline = sleep_until(last_rx + ping_timeout);
    tokio::pin!(deadline);
    // One waiter for the whole loop, not one registered per message.
    let closed = shared.wait_closed();
    tokio::pin!(closed);
    let mut since_yield = 0;
    loop {
        let budget = if shared.quick_attached.load(Ordering::Relaxed) {
            READ_YIELD_WITH_QUICK_LANE
        } else {
            READ_YIELD_EVERY
        };
        if since_yield >= budget {
            since_yield = 0;
            tokio::task::yield_now().await;
        }
        tokio::select! {
            _ = &mut closed => return,
            msg = source.next() => {
                last_rx = Instant::now();
                match on_message(&shared, Lane::Main, msg).await {
                    Some(n) => since_yield += n,
                    None => return,
                }
            }
            _ = &mut deadline => {
                if last_rx.elapsed() >= ping_timeout {
                    shared.shutdown(
                        CloseReason::HeartbeatTimeout,
                        Some((codes::GOAWAY_HEARTBEAT_TIMEOUT, "no traffic within the heartbeat timeout")),
                    );
                    return;
                }
                deadline.as_mut().reset(last_rx + ping_timeout);
            }
            _ = ping.tick() => {
                shared.ping(ping_seq);
                ping_seq = ping_seq.wrapping_add(1);
            }
        }
    }
}

/// The quick lane's reader: only stream frames come here (the session
/// refuses anything else); the heartbeat runs on the main lane, and the
/// end of either connection ends the session.
pub(crate) async fn read_quick_loop<R>(shared: Arc<Shared>, mut source: WsReader<R>)
where
    R: AsyncRead + Unpin,
{
    let closed = shared.wait_closed();
    tokio::pin!(closed);
    let mut since_yield = 0;
    loop {
        if since_yield >= YIELD_EVERY {
            since_yield = 0;
            tokio::task::yield_now().await;
        }
        tokio::select! {
            _ = &mut closed => return,
            msg = source.next() => match on_message(&shared, Lane::Quick, msg).await {
                Some(n) => since_yield += n,
                None => return,
            },
        }
    }
}

/// One message from `lane`'s connection: data goes to the session, a ping
/// is answered (on the main lane, like every ping), anything else ends the
/// session. Returns the bytes taken, or None once the reader is done.
async fn on_message(
    shared: &Arc<Shared>,
    lane: Lane,
    msg: Result<Option<WsMessage>, crate::ws::WsError>,
) -> Option<usize> {
    let on_lane = match lane {
        Lane::Main => "",
        Lane::Quick => "quick lane: ",
    };
    match msg {
        Ok(Some(WsMessage::Binary(bytes))) => {
            let n = bytes.len();
            shared.receive(lane, bytes);
            Some(n)
        }
        Ok(Some(WsMessage::Ping(payload))) => {
            shared.ws_ping(payload);
            Some(0)
        }
        Ok(Some(WsMessage::Text(_))) => {
            let reason = format!("{on_lane}text message after the handshake");
            shared.shutdown(
                CloseReason::ProtocolError(reason.clone()),
                Some((codes::GOAWAY_PROTOCOL_ERROR, &reason)),
            );
            None
        }
        Ok(Some(WsMessage::Close) | None) | Err(_) => {
            // A peer that ends the session closes both connections; the
            // main one carries its reason (GOAWAY), which may arrive a
            // moment after the quick lane's end: prefer it.
            if lane == Lane::Quick {
                let _ = tokio::time::timeout(WRITE_ERROR_GRACE, shared.wait_closed()).await;
            }
            let reason = match msg {
                Err(e) => CloseReason::Io(format!("{on_lane}{e}")),
                _ => CloseReason::ConnectionLost,
            };
            shared.shutdown(reason, None);
            None
        }
    }
}
