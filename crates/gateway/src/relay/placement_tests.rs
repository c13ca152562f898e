//! Tunnels that move to their bulk thread ([`super::Placement`]): the move
//! happens once a direction turns bulk, loses or reorders no byte, keeps a
//! half-closed direction closed, and an interactive tunnel never moves; a
//! tunnel quiet again moves back, but not in the pauses of a transfer.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::thread::ThreadId;
use std::time::Duration;

use tokio::io::{
    duplex, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf,
};
use tunnel_proto::{IncomingEvent, MuxConfig, Target};

use super::tests::{exchange, mux_pair};
use super::*;

/// A single-threaded runtime on a thread of its own, like a site thread;
/// it stops when the sender is dropped.
fn bulk_thread() -> (
    tokio::runtime::Handle,
    ThreadId,
    tokio::sync::oneshot::Sender<()>,
) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        tx.send((runtime.handle().clone(), std::thread::current().id()))
            .unwrap();
        let _ = runtime.block_on(stopped);
    });
    let (handle, id) = rx.recv().unwrap();
    (handle, id, stop)
}

/// A connection that remembers which thread last wrote to it.
struct Watched {
    io: DuplexStream,
    writer: Arc<Mutex<Option<ThreadId>>>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        *self.writer.lock().unwrap() = Some(std::thread::current().id());
        Pin::new(&mut self.io).poll_write(cx, data)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// The front door's relay with a bulk thread, the agent's without, and
/// the two far ends: (partner peer, target peer, front relay, agent relay,
/// the thread that last wrote to the partner, the bulk thread's id).
struct Setup {
    partner: DuplexStream,
    target: DuplexStream,
    front: tokio::task::JoinHandle<RelayOutcome>,
    agent: tokio::task::JoinHandle<RelayOutcome>,
    partner_writer: Arc<Mutex<Option<ThreadId>>>,
    bulk_id: ThreadId,
    _stop: tokio::sync::oneshot::Sender<()>,
    /// The agent's session lives on after its relay, as in the agent.
    _agent_mux: tunnel_proto::MuxHandle,
}

async fn setup() -> Setup {
    let ((gateway, gateway_incoming), (agent_mux, mut agent_incoming)) =
        mux_pair(256 * 1024, MuxConfig::default(), MuxConfig::default()).await;
    let (target, target_peer) = duplex(256 * 1024);
    let agent = tokio::spawn(async move {
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
    let partner_writer = Arc::new(Mutex::new(None));
    let watched = Watched {
        io: partner,
        writer: partner_writer.clone(),
    };
    let (bulk, bulk_id, stop) = bulk_thread();
    let front = tokio::spawn(async move {
        let _keep = (gateway, gateway_incoming);
        relay_to_stream(
            watched,
            stream,
            b"",
            RelayLimits::default(),
            Placement { bulk: Some(bulk) },
        )
        .await
    });
    Setup {
        partner: partner_peer,
        target: target_peer,
        front,
        agent,
        partner_writer,
        bulk_id,
        _stop: stop,
        _agent_mux: agent_mux,
    }
}

fn pattern(len: usize, modulus: u32) -> Vec<u8> {
    (0..len as u32).map(|i| (i % modulus) as u8).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tunnel_that_turns_bulk_moves_and_loses_no_byte() {
    let s = setup().await;
    let up = pattern(3_000_000, 251);
    let down = pattern(5_000_000, 241);
    let (up_sent, down_sent) = (up.clone(), down.clone());
    let partner = exchange(s.partner, up_sent, 40_009);
    let target = exchange(s.target, down_sent, 100_003);
    let within = Duration::from_secs(30);
    let at_partner = tokio::time::timeout(within, partner)
        .await
        .unwrap()
        .unwrap();
    let at_target = tokio::time::timeout(within, target).await.unwrap().unwrap();
    let first_diff = at_partner.iter().zip(&down).position(|(a, b)| a != b);
    assert!(
        at_partner == down,
        "bytes to the partner differ: {} of {}, first difference at {first_diff:?}",
        at_partner.len(),
        down.len()
    );
    assert!(at_target == up, "bytes to the target differ");
    let front = s.front.await.unwrap();
    assert!(front.moved_to_bulk, "the bulk tunnel did not move");
    assert_eq!(front.end, RelayEnd::Completed);
    assert_eq!(
        (front.a_to_b, front.b_to_a),
        (up.len() as u64, down.len() as u64)
    );
    assert_eq!(
        *s.partner_writer.lock().unwrap(),
        Some(s.bulk_id),
        "the last bytes to the partner were not written on the bulk thread"
    );
    assert!(!s.agent.await.unwrap().moved_to_bulk);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interactive_tunnel_stays_where_it_started() {
    let mut s = setup().await;
    let echo = tokio::spawn(async move {
        let mut buf = [0u8; 64];
        loop {
            match s.target.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => s.target.write_all(&buf[..n]).await.unwrap(),
            }
        }
        s.target.shutdown().await.unwrap();
    });
    for round in 0..300u32 {
        let msg = [(round % 256) as u8; 64];
        s.partner.write_all(&msg).await.unwrap();
        let mut back = [0u8; 64];
        s.partner.read_exact(&mut back).await.unwrap();
        assert_eq!(back, msg, "round {round}");
    }
    s.partner.shutdown().await.unwrap();
    let mut rest = Vec::new();
    s.partner.read_to_end(&mut rest).await.unwrap();
    echo.await.unwrap();
    let front = s.front.await.unwrap();
    assert!(!front.moved_to_bulk, "an interactive tunnel moved");
    assert_eq!((front.a_to_b, front.b_to_a), (300 * 64, 300 * 64));
    assert_ne!(*s.partner_writer.lock().unwrap(), Some(s.bulk_id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_closed_tunnel_moves_with_its_open_direction() {
    let mut s = setup().await;
    // The partner says its piece and half-closes; the target then sends a
    // bulk reply, which moves the tunnel with one direction already done.
    s.partner.write_all(b"GET /backup.tar").await.unwrap();
    s.partner.shutdown().await.unwrap();
    let mut request = Vec::new();
    s.target.read_to_end(&mut request).await.unwrap();
    assert_eq!(request, b"GET /backup.tar");
    let reply = pattern(4_000_000, 239);
    let sent = reply.clone();
    let target = tokio::spawn(async move {
        for piece in sent.chunks(65_536) {
            s.target.write_all(piece).await.unwrap();
        }
        s.target.shutdown().await.unwrap();
    });
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), s.partner.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    target.await.unwrap();
    assert!(got == reply, "the reply differs");
    let front = s.front.await.unwrap();
    assert!(front.moved_to_bulk);
    assert_eq!(front.end, RelayEnd::Completed);
    assert_eq!((front.a_to_b, front.b_to_a), (15, reply.len() as u64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tunnel_quiet_again_after_bulk_moves_back() {
    let mut s = setup().await;
    // A download (the scp) that moves the tunnel to the bulk thread.
    let download = pattern(4_000_000, 233);
    let sent = download.clone();
    let mut target = s.target;
    let target_task = tokio::spawn(async move {
        for piece in sent.chunks(65_536) {
            target.write_all(piece).await.unwrap();
        }
        target
    });
    let mut got = vec![0u8; download.len()];
    tokio::time::timeout(Duration::from_secs(30), s.partner.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert!(got == download, "the download differs");
    s.target = target_task.await.unwrap();
    assert_eq!(
        *s.partner_writer.lock().unwrap(),
        Some(s.bulk_id),
        "the download was not written on the bulk thread"
    );
    // Then keystrokes and their echoes, after a quiet spell.
    tokio::time::sleep(QUIET_AFTER + Duration::from_millis(100)).await;
    let mut target = s.target;
    let echo = tokio::spawn(async move {
        let mut buf = [0u8; 64];
        loop {
            match target.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => target.write_all(&buf[..n]).await.unwrap(),
            }
        }
        target.shutdown().await.unwrap();
    });
    for round in 0..2 * QUIET_STREAK + 20 {
        let msg = [(round % 256) as u8; 64];
        s.partner.write_all(&msg).await.unwrap();
        let mut back = [0u8; 64];
        s.partner.read_exact(&mut back).await.unwrap();
        assert_eq!(back, msg, "round {round}");
    }
    let last_writer = *s.partner_writer.lock().unwrap();
    s.partner.shutdown().await.unwrap();
    let mut rest = Vec::new();
    s.partner.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty());
    echo.await.unwrap();
    let front = s.front.await.unwrap();
    assert!(front.moved_to_bulk);
    assert_eq!(front.end, RelayEnd::Completed);
    let rounds = u64::from(2 * QUIET_STREAK + 20) * 64;
    assert_eq!(
        (front.a_to_b, front.b_to_a),
        (rounds, download.len() as u64 + rounds)
    );
    assert!(
        last_writer.is_some() && last_writer != Some(s.bulk_id),
        "the echoes after the quiet spell were still written on the bulk thread"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_reads_within_a_transfer_do_not_move_it_back() {
    let mut s = setup().await;
    // A transfer whose bursts are separated by pauses shorter than
    // QUIET_AFTER, each burst ending in short writes: it stays on the bulk
    // thread throughout.
    let mut target = s.target;
    let bursts = 6usize;
    let burst = pattern(1_000_000, 229);
    let sent = burst.clone();
    let target_task = tokio::spawn(async move {
        for _ in 0..bursts {
            for piece in sent.chunks(65_536) {
                target.write_all(piece).await.unwrap();
            }
            for _ in 0..2 * QUIET_STREAK {
                target.write_all(&[7u8; 100]).await.unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            tokio::time::sleep(QUIET_AFTER / 5).await;
        }
        target
    });
    let per_burst = burst.len() + 2 * QUIET_STREAK as usize * 100;
    let mut got = vec![0u8; bursts * per_burst];
    tokio::time::timeout(Duration::from_secs(30), s.partner.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    for (i, chunk) in got.chunks(per_burst).enumerate() {
        assert!(chunk[..burst.len()] == burst[..], "burst {i} differs");
        assert!(
            chunk[burst.len()..].iter().all(|&b| b == 7),
            "tail {i} differs"
        );
    }
    let _target = target_task.await.unwrap();
    assert_eq!(
        *s.partner_writer.lock().unwrap(),
        Some(s.bulk_id),
        "the transfer left its bulk thread between bursts"
    );
}
