//! Failures on either side of the site's connection: the agent dies, the agent comes
//! back, comgate restarts.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{ensure, Context, Result};
use tokio::io::AsyncReadExt;

use crate::support::comgate::{retry, Agent};
use crate::support::connect::Front;
use crate::support::files::{echo_roundtrip, MIB};
use crate::support::site::Tenant;
use crate::support::targets::{echo, endless, lo};
use crate::support::{millis, run, secs, Harness};

/// One echo round trip through a new tunnel to `target`.
async fn roundtrip(
    front: &Front,
    target: &str,
    creds: &crate::support::connect::Creds,
) -> Result<()> {
    let reply = front.open(target, creds).await?;
    echo_roundtrip(reply.stream, reply.early, 256 * 1024, secs(20)).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn agent_killed_mid_transfer_ends_partner_connection_promptly() {
    run(|h: Harness| async move {
        let source = endless(lo(8), 0).await?;
        let tenant = Tenant::start(&h).await?;
        let mut agent = Agent::start(&tenant.gw, &tenant.agent_config().tunnel("RDP", source.addr)).await?;
        let reply = tenant
            .front
            .open(&Tenant::colocated(source.addr), &tenant.creds)
            .await?;
        let received = Arc::new(AtomicU64::new(reply.early.len() as u64));
        let counter = received.clone();
        let mut stream = reply.stream;
        let reader = tokio::spawn(async move {
            let mut chunk = vec![0u8; 64 * 1024];
            loop {
                match stream.read(&mut chunk).await {
                    Ok(0) => return "EOF".to_string(),
                    Ok(n) => counter.fetch_add(n as u64, Ordering::SeqCst),
                    Err(e) => return format!("error: {e}"),
                };
            }
        });
        // Mid-transfer: data is flowing.
        let deadline = Instant::now() + secs(20);
        while received.load(Ordering::SeqCst) < 8 * MIB as u64 {
            ensure!(Instant::now() < deadline, "transfer did not get going");
            tokio::time::sleep(millis(20)).await;
        }
        agent.kill();
        let killed = Instant::now();
        let ending = tokio::time::timeout(secs(5), reader)
            .await
            .context("the partner's connection was still open 5 s after the agent died")??;
        eprintln!(
            "partner connection ended ({ending}) {:.2?} after the agent was killed, {} bytes received",
            killed.elapsed(),
            received.load(Ordering::SeqCst)
        );
        // The audit event of the broken tunnel is written.
        let ev = tenant
            .gw
            .wait_audit(|e| e.get("target").is_some_and(|t| t.contains(&source.port().to_string())), secs(10))
            .await?;
        eprintln!("audit: {}", ev.line);
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restarted_agent_serves_new_connections_without_restarting_comgate() {
    run(|h: Harness| async move {
        let server = echo(lo(5), 0).await?;
        let tenant = Tenant::start(&h).await?;
        let target = Tenant::colocated(server.addr);
        let mut agent = Agent::start(
            &tenant.gw,
            &tenant.agent_config().tunnel("RDP", server.addr),
        )
        .await?;
        roundtrip(&tenant.front, &target, &tenant.creds).await?;

        agent.kill();
        // The gateway notices the site is gone.
        retry(secs(10), || async {
            let r = tenant.front.status_of(&target, Some(&tenant.creds)).await?;
            ensure!(r.status == 502, "still {}", r.summary());
            Ok(())
        })
        .await
        .context("the site was not reported offline after its agent died")?;

        let restarted = Instant::now();
        agent.restart().await?;
        retry(secs(10), || {
            roundtrip(&tenant.front, &target, &tenant.creds)
        })
        .await
        .context("no working connection after the agent restarted")?;
        let took = restarted.elapsed();
        eprintln!("new connection worked {took:.2?} after the agent was restarted");
        ensure!(took < secs(15), "took {took:?} to work again");
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn agent_reconnects_by_itself_after_comgate_restart() {
    run(|h: Harness| async move {
        let server = echo(lo(5), 0).await?;
        let mut tenant = Tenant::start(&h).await?;
        let target = Tenant::colocated(server.addr);
        let mut agent = Agent::start(
            &tenant.gw,
            &tenant.agent_config().tunnel("RDP", server.addr),
        )
        .await?;
        roundtrip(&tenant.front, &target, &tenant.creds).await?;
        let seen = agent.connected_count();

        tenant.gw.restart().await?;
        let restarted = Instant::now();
        agent
            .wait_connected(seen, secs(30))
            .await
            .context("the agent did not reconnect by itself after comgate restarted")?;
        ensure!(
            agent.is_running(),
            "the agent process exited instead of reconnecting"
        );
        // Same data_dir: same CA, same accounts and systems.
        let front = Front::new(tenant.gw.addr(), &tenant.gw.ca())?;
        retry(secs(10), || roundtrip(&front, &target, &tenant.creds))
            .await
            .context("no working connection after comgate restarted")?;
        eprintln!(
            "working again {:.2?} after comgate restarted",
            restarted.elapsed()
        );
        tenant.front = front;
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn second_agent_for_the_same_system_replaces_the_first_cleanly() {
    run(|h: Harness| async move {
        // Each agent lists a different tunnel, so the gateway's answers show
        // whose settings (and so whose session) are in force.
        let first_target = echo(lo(11), 0).await?;
        let second_target = echo(lo(12), 0).await?;
        let tenant = Tenant::start(&h).await?;
        let first = Agent::start(
            &tenant.gw,
            &tenant.agent_config().tunnel("RDP", first_target.addr),
        )
        .await?;
        let via_first = Tenant::colocated(first_target.addr);
        let via_second = Tenant::colocated(second_target.addr);
        roundtrip(&tenant.front, &via_first, &tenant.creds).await?;
        // A tunnel open through the first agent when it is replaced.
        let open = tenant.front.open(&via_first, &tenant.creds).await?;

        let mut second = Agent::start(
            &tenant.gw,
            &tenant.agent_config().tunnel("SSH", second_target.addr),
        )
        .await?;
        retry(secs(10), || {
            roundtrip(&tenant.front, &via_second, &tenant.creds)
        })
        .await
        .context("the second agent's tunnel did not work")?;
        let refused = tenant
            .front
            .status_of(&via_first, Some(&tenant.creds))
            .await?;
        ensure!(
            refused.status == 403,
            "the first agent's tunnel should be gone with its session, got {}",
            refused.summary()
        );

        // The old session is closed: its open tunnel ends.
        let mut stream = open.stream;
        let mut buf = [0u8; 16];
        let ended = tokio::time::timeout(secs(5), stream.read(&mut buf)).await;
        ensure!(
            matches!(ended, Ok(Ok(0)) | Ok(Err(_))),
            "the tunnel through the replaced agent stayed open: {ended:?}"
        );
        ensure!(
            first.log_text().contains("replaced"),
            "the first agent did not log that it was replaced:\n{}",
            first.log_text()
        );

        // The replaced agent backs off instead of taking the system back at once.
        tokio::time::sleep(secs(3)).await;
        roundtrip(&tenant.front, &via_second, &tenant.creds)
            .await
            .context("the replaced agent took the system back within seconds")?;
        ensure!(second.is_running(), "the second agent exited");
        Ok(())
    })
    .await;
}
