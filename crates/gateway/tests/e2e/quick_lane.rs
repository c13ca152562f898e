//! The quick lane end to end: a real agent joins its session's second
//! connection with its first tunnel, an interactive tunnel's round trips
//! come back byte for byte while a bulk download from the same site runs,
//! and serve takes a quick-lane hello only with the token it offered, once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{bail, ensure};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tunnel_proto::handshake::{feature, HandshakeError};
use tunnel_proto::{Hello, MuxConfig, Role};

use crate::support::comgate::{Agent, GatewayOptions};
use crate::support::files::random_bytes;
use crate::support::raw_agent::{hello, say_hello};
use crate::support::site::Tenant;
use crate::support::targets::{echo, endless, lo};
use crate::support::{millis, run, secs, Harness};

/// How often `text` appears in `log`.
fn count(log: &str, text: &str) -> usize {
    log.matches(text).count()
}

async fn wait_for_log(what: &str, log: impl Fn() -> String, text: &str) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + secs(10);
    while count(&log(), text) == 0 {
        if std::time::Instant::now() > deadline {
            bail!("{what} never logged {text:?}");
        }
        tokio::time::sleep(millis(50)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_agent_joins_its_quick_lane_with_its_first_tunnel() {
    run(|h: Harness| async move {
        let interactive = echo(lo(5), 0).await?;
        let bulk = endless(lo(6), 0).await?;
        let tenant = Tenant::start(&h).await?;
        let agent = Agent::start(
            &tenant.gw,
            &tenant
                .agent_config()
                .tunnel("RDP", interactive.addr)
                .tunnel("HTTPS", bulk.addr),
        )
        .await?;
        tokio::time::sleep(millis(300)).await;
        ensure!(
            count(&tenant.gw.log_text(), "quick lane joined") == 0,
            "a site without tunnels opened its quick lane"
        );

        // A download that never ends, read as fast as it comes.
        let download = tenant
            .front
            .open(&Tenant::colocated(bulk.addr), &tenant.creds)
            .await?;
        let received = Arc::new(AtomicU64::new(download.early.len() as u64));
        let counter = received.clone();
        let mut bulk_stream = download.stream;
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n) = bulk_stream.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                counter.fetch_add(n as u64, Ordering::Relaxed);
            }
        });
        wait_for_log("serve", || tenant.gw.log_text(), "quick lane joined").await?;
        wait_for_log("the agent", || agent.log_text(), "quick lane joined").await?;

        let tunnel = tenant
            .front
            .open(&Tenant::colocated(interactive.addr), &tenant.creds)
            .await?;
        ensure!(tunnel.early.is_empty(), "the echo target spoke first");
        let mut stream = tunnel.stream;
        let before = received.load(Ordering::Relaxed);
        for round in 0..200 {
            let msg = random_bytes(64);
            stream.write_all(&msg).await?;
            stream.flush().await?;
            let mut back = [0u8; 64];
            tokio::time::timeout(secs(5), stream.read_exact(&mut back)).await??;
            ensure!(back[..] == msg[..], "round trip {round} came back altered");
        }
        let during = received.load(Ordering::Relaxed) - before;
        ensure!(
            during > 0,
            "the download stood still during the round trips"
        );
        reader.abort();
        ensure!(
            count(&tenant.gw.log_text(), "quick lane joined") == 1,
            "serve joined more than one quick lane"
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_quick_lane_needs_the_offered_token_and_takes_it_once() {
    run(|h: Harness| async move {
        let tenant = Tenant::start(&h).await?;
        let gw = &tenant.gw;
        let first = Hello {
            features: vec![feature::QUICK_LANE.into()],
            ..hello("12345", "ipo1", &tenant.secret)
        };
        let (ws, welcome) = say_hello(gw, &first).await?;
        let welcome = welcome?;
        let Some(token) = welcome.quick_lane.clone() else {
            bail!("serve offered no quick lane: {welcome:?}");
        };
        ensure!(
            token.len() == 32 && token.bytes().all(|b| b.is_ascii_hexdigit()),
            "token {token:?}"
        );
        let (mux, _incoming) = tunnel_proto::start(ws, Role::Agent, MuxConfig::default());
        mux.accept_quick_lane();

        // Without the feature, no offer.
        let (_ws, plain) = say_hello(gw, &hello("12345", "ipo1", &tenant.secret)).await?;
        ensure!(
            plain?.quick_lane.is_none(),
            "offered to an agent that cannot join"
        );
        // That second session replaced the first (one per system), so start over.
        let (ws, welcome) = say_hello(gw, &first).await?;
        let token = welcome?.quick_lane.expect("offered");
        let (mux, _incoming) = tunnel_proto::start(ws, Role::Agent, MuxConfig::default());
        mux.accept_quick_lane();

        let join = |token: &str| Hello {
            quick_lane: Some(token.to_owned()),
            // The token is what counts, not the secret.
            ..hello("12345", "ipo1", "not the secret")
        };
        let forged = "0123456789abcdef0123456789abcdef";
        let (_ws, answer) = say_hello(gw, &join(forged)).await?;
        match answer {
            Err(HandshakeError::Rejected { code, .. }) if code == "authentication_failed" => {}
            other => bail!("a forged token was answered {other:?}"),
        }
        let (lane, answer) = say_hello(gw, &join(&token)).await?;
        let lane_welcome = answer?;
        ensure!(lane_welcome.quick_lane.is_none(), "{lane_welcome:?}");
        mux.attach_quick_lane()?;
        mux.run_quick_lane(lane);
        let (_ws, again) = say_hello(gw, &join(&token)).await?;
        match again {
            Err(HandshakeError::Rejected { code, .. }) if code == "authentication_failed" => {}
            other => bail!("a used token was answered {other:?}"),
        }
        tokio::time::sleep(millis(200)).await;
        ensure!(
            !mux.is_closed(),
            "the session ended: {:?}",
            mux.closed().await
        );
        ensure!(
            count(&gw.log_text(), "quick lane joined") == 1,
            "serve's log: {}",
            gw.log_text()
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quick_lane_false_offers_no_lane() {
    run(|h: Harness| async move {
        let opts = GatewayOptions::default().agents("quick_lane", false);
        let tenant = Tenant::start_with(&h, &opts).await?;
        let hello = Hello {
            features: vec![feature::QUICK_LANE.into()],
            ..hello("12345", "ipo1", &tenant.secret)
        };
        let (_ws, welcome) = say_hello(&tenant.gw, &hello).await?;
        let welcome = welcome?;
        ensure!(welcome.quick_lane.is_none(), "offered: {welcome:?}");
        Ok(())
    })
    .await;
}
