//! Many streams over one site's connection: concurrent SSH sessions, and a stalled
//! stream that must neither block its neighbours nor buffer without bound.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use tokio::io::AsyncReadExt;
use tokio::task::JoinSet;

use crate::support::comgate::{Agent, Gateway, GatewayOptions};
use crate::support::files::{echo_roundtrip, MIB};
use crate::support::proxytunnel::NameMode;
use crate::support::site::{SshSite, Tenant};
use crate::support::targets::{echo, endless, lo, Target};
use crate::support::{millis, run, secs, Harness};

const SESSIONS: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_ssh_sessions_to_one_site_all_succeed() {
    run(|h: Harness| async move {
        require_tools!("ssh", "sshd", "ssh-keygen", "proxytunnel");
        let site = std::sync::Arc::new(SshSite::start(&h, NameMode::Ns).await?);
        let mut sessions = JoinSet::new();
        for i in 0..SESSIONS {
            let site = site.clone();
            sessions.spawn(async move {
                // Each session stays open a moment so that all of them overlap.
                let cmd = format!("sleep 1; echo session-{i}-done");
                let out = site.clients.ssh(&site.dest(), &cmd, secs(120)).await?;
                let ok = out.success() && out.stdout_text().contains(&format!("session-{i}-done"));
                ensure!(ok, "session {i} failed:\n{}", out.describe());
                Ok::<_, anyhow::Error>(())
            });
        }
        let mut failures = Vec::new();
        while let Some(joined) = sessions.join_next().await {
            if let Err(e) = joined.context("session task")? {
                failures.push(format!("{e:#}"));
            }
        }
        ensure!(
            failures.is_empty(),
            "{} of {SESSIONS} sessions failed:\n{}",
            failures.len(),
            failures.join("\n\n")
        );
        Ok(())
    })
    .await;
}

/// Waits until the endless source stops making progress (its stream's windows and
/// socket buffers are full); returns the bytes it managed to write.
async fn wait_until_stalled(source: &Target) -> Result<u64> {
    let deadline = Instant::now() + secs(30);
    let mut last = source.written();
    loop {
        tokio::time::sleep(millis(700)).await;
        let now = source.written();
        if now == last && now > 0 {
            return Ok(now);
        }
        ensure!(
            Instant::now() < deadline,
            "the source kept writing for 30 s into a stream nobody reads ({now} bytes): unbounded buffering"
        );
        last = now;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stalled_reader_does_not_block_parallel_transfer_on_same_site() {
    run(|h: Harness| async move { stalled_beside_busy(&h, &GatewayOptions::default()).await })
        .await;
}

/// serve on one worker thread (`worker_threads = 1`) runs one, and still
/// keeps a stalled stream from blocking its neighbour: nothing in it relies
/// on a second worker to make progress.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn serve_on_one_worker_thread_keeps_streams_independent() {
    run(|h: Harness| async move {
        let opts = GatewayOptions::default().top("worker_threads", 1);
        let gw = Gateway::start_with(&h, &opts).await?;
        let workers = gw.threads_named("tokio-rt-worker")?;
        ensure!(workers == 1, "serve runs {workers} control workers");
        let site_threads =
            gw.threads_named("comgate-site-0")? + gw.threads_named("comgate-site-1")?;
        ensure!(site_threads == 1, "serve runs {site_threads} site threads");
        drop(gw);
        stalled_beside_busy(&h, &opts).await
    })
    .await;
}

/// A bulk tunnel's bytes are relayed on its site's thread: it starts on the
/// other site thread (where interactive tunnels stay) and moves to its
/// site's own once it turns bulk, so over a 64 MiB echo one site thread
/// does the relaying (its CPU time grows several times more than all
/// control workers' together) and the other, which only saw the start,
/// stays nearly idle.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tunnel_is_relayed_on_its_site_s_thread() {
    run(|h: Harness| async move {
        let opts = GatewayOptions::default().top("worker_threads", 2);
        let server = echo(lo(5), 0).await?;
        let tenant = Tenant::start_with(&h, &opts).await?;
        let cfg = tenant.agent_config().tunnel("RDP", server.addr);
        let _agent = Agent::start(&tenant.gw, &cfg).await?;
        let busy = tenant
            .front
            .open(&Tenant::colocated(server.addr), &tenant.creds)
            .await?;
        let before = tenant.gw.thread_cpu_ticks()?;
        echo_roundtrip(busy.stream, busy.early, 64 * MIB, secs(120))
            .await
            .context("64 MiB echo")?;
        let after = tenant.gw.thread_cpu_ticks()?;
        let used = |name: &str| -> u64 {
            let total = |list: &[(String, u64)]| -> u64 {
                list.iter()
                    .filter(|(n, _)| n.as_str() == name)
                    .map(|(_, t)| t)
                    .sum()
            };
            total(&after).saturating_sub(total(&before))
        };
        let (site0, site1) = (used("comgate-site-0"), used("comgate-site-1"));
        let control = used("tokio-rt-worker");
        eprintln!("CPU ticks over the echo: site threads {site0} / {site1}, control workers {control}");
        let (home, other) = (site0.max(site1), site0.min(site1));
        ensure!(
            home >= 10,
            "the site threads used {site0} / {site1} ticks for 128 MiB relayed: not where the bytes went"
        );
        ensure!(
            home >= 3 * control.max(1),
            "the control workers used {control} ticks against the site thread's {home}"
        );
        ensure!(
            other * 10 <= home,
            "the thread without the site used {other} ticks against {home}"
        );
        // This agent and serve agreed on 64 KiB DATA frames.
        let log = tenant.gw.log_text();
        let connected = log
            .lines()
            .find(|l| l.contains("site connected"))
            .context("no `site connected` line")?;
        ensure!(
            connected.contains("large_data=true") && connected.contains("thread=comgate-site-"),
            "{connected}"
        );
        Ok(())
    })
    .await;
}

/// A stream to an endless source that nobody reads, and a 20 MiB echo
/// beside it on the same site; the stalled one stays bounded and intact.
async fn stalled_beside_busy(h: &Harness, opts: &GatewayOptions) -> Result<()> {
    let source = endless(lo(8), 0).await?;
    let server = echo(lo(5), 0).await?;
    let tenant = Tenant::start_with(h, opts).await?;
    let cfg = tenant
        .agent_config()
        .tunnel("RDP", source.addr)
        .tunnel("RDP", server.addr);
    let _agent = Agent::start(&tenant.gw, &cfg).await?;

    // A client that opens a stream to an endless source and never reads.
    let stalled = tenant
        .front
        .open(&Tenant::colocated(source.addr), &tenant.creds)
        .await?;
    let buffered = wait_until_stalled(&source).await?;
    eprintln!("stalled stream: the source wrote {buffered} bytes before it was held back");

    // A 20 MiB transfer on the same site goes through meanwhile.
    let busy = tenant
        .front
        .open(&Tenant::colocated(server.addr), &tenant.creds)
        .await?;
    let took = echo_roundtrip(busy.stream, busy.early, 20 * MIB, secs(60))
        .await
        .context("transfer next to a stalled stream")?;
    eprintln!("20 MiB each way next to the stalled stream in {took:.2?}");

    // The stalled stream stayed bounded, and is intact: it still delivers when read.
    let after = source.written();
    ensure!(
        after < 256 * MIB as u64,
        "the stalled stream buffered {after} bytes"
    );
    let mut stream = stalled.stream;
    let mut got = stalled.early.len();
    tokio::time::timeout(Duration::from_secs(20), async {
        let mut chunk = vec![0u8; 64 * 1024];
        while got < 4 * MIB {
            let n = stream.read(&mut chunk).await?;
            ensure!(n > 0, "the stalled stream ended after {got} bytes");
            ensure!(
                chunk[..n].iter().all(|&b| b == 0x5a),
                "corrupted bytes on the stalled stream"
            );
            got += n;
        }
        Ok(())
    })
    .await
    .context("the stalled stream did not resume when read")??;
    Ok(())
}
