//! Memory per idle session and per idle stream, measured with a counting
//! allocator (this test binary's only test, so nothing else allocates).
//! Budget: at most 16 KiB per idle session and 20 KiB per idle stream on top
//! of the websocket itself.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use tunnel_proto::{IncomingEvent, MuxConfig, Role, Target};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

async fn settle() {
    tokio::time::sleep(Duration::from_millis(100)).await;
}

#[tokio::test(flavor = "current_thread")]
async fn idle_sessions_and_streams_stay_small() {
    let (server, client) = common::ws_pair().await;
    // Let the websockets do their first write and read, so that their own
    // buffers are counted in the baseline, not against the mux.
    settle().await;
    let before_sessions = live();
    let (gateway, _gateway_incoming) =
        tunnel_proto::start(server, Role::Gateway, MuxConfig::default());
    let (agent, mut agent_incoming) =
        tunnel_proto::start(client, Role::Agent, MuxConfig::default());
    // A control round trip proves both sessions are up and idle.
    gateway.send_control(serde_json::json!({})).unwrap();
    let _ = agent_incoming.next().await;
    settle().await;
    let per_session = (live() - before_sessions) / 2;
    println!("per idle session: {per_session} bytes");
    assert!(
        per_session <= 16 * 1024,
        "an idle session costs {per_session} bytes"
    );
    // The multiplexer's own share of a site's 16 KiB, next to rustls's
    // 7 KiB and the tasks' futures: 3,208 bytes in session 10 (4,424 before
    // its close signal and incoming queue stopped allocating channels).
    assert!(
        per_session <= 4 * 1024,
        "an idle session's multiplexer grew to {per_session} bytes"
    );

    const STREAMS: usize = 200;
    let before_streams = live();
    let accepter = tokio::spawn(async move {
        let mut accepted = Vec::with_capacity(STREAMS);
        while accepted.len() < STREAMS {
            match agent_incoming.next().await {
                Some(IncomingEvent::Stream(s)) => accepted.push(s.accept()),
                Some(IncomingEvent::Control(_)) => {}
                None => break,
            }
        }
        (accepted, agent_incoming)
    });
    let mut opened = Vec::with_capacity(STREAMS);
    for i in 0..STREAMS {
        opened.push(
            gateway
                .open(Target::System { port: i as u16 })
                .await
                .unwrap(),
        );
    }
    let (accepted, _incoming) = accepter.await.unwrap();
    settle().await;
    // Both ends of each stream live in this process.
    let per_stream = (live() - before_streams) / STREAMS as isize;
    println!("per idle stream (both ends): {per_stream} bytes");
    assert!(
        per_stream <= 20 * 1024,
        "an idle stream costs {per_stream} bytes"
    );
    assert_eq!(agent.stream_count(), STREAMS);
    drop((opened, accepted));
}
