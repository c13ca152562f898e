//! The `200 Connection established` reply must come in its own TLS record before any
//! target byte: proxytunnel reads the reply through OpenSSL and then waits in select()
//! on the socket, so a greeting coalesced into the 200 record stays unseen and a
//! server-speaks-first target stalls (CLIENTS.md, gotcha 5).

use std::process::Stdio;

use anyhow::{ensure, Context, Result};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::support::comgate::Agent;
use crate::support::ports::free_port;
use crate::support::process::kill_tree;
use crate::support::proxytunnel::{NameMode, ProxyTunnel};
use crate::support::reading::read_to_len;
use crate::support::site::Tenant;
use crate::support::targets::{greeter, lo};
use crate::support::{run, secs, Harness};

const GREETING: &[u8] = b"220 site-service ready, speaking first\r\n";

/// Reads until `GREETING` has arrived (the client sends nothing).
async fn read_greeting(mut rd: impl AsyncReadExt + Unpin) -> Result<()> {
    let got = read_to_len(&mut rd, Vec::new(), GREETING.len(), secs(10))
        .await
        .context("the target's greeting did not arrive (200 and first bytes coalesced?)")?;
    ensure!(
        got.starts_with(GREETING),
        "expected the greeting, got {:?}",
        String::from_utf8_lossy(&got)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn greeting_of_server_speaks_first_target_arrives_through_standalone() {
    run(|h: Harness| async move {
        require_tools!("proxytunnel");
        let server = greeter(lo(7), 0, GREETING).await?;
        let tenant = Tenant::start(&h).await?;
        let _agent = Agent::start(
            &tenant.gw,
            &tenant.agent_config().tunnel("SSA", server.addr),
        )
        .await?;
        let pt = ProxyTunnel::new(&h, &tenant.gw, &tenant.creds, NameMode::Ns)?;
        let local_port = free_port();
        let _standalone = pt
            .standalone(h.path(), &Tenant::colocated(server.addr), local_port)
            .await?;
        let conn = TcpStream::connect(("127.0.0.1", local_port)).await?;
        read_greeting(conn).await
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn greeting_of_server_speaks_first_target_arrives_through_proxytunnel_pipe() {
    run(|h: Harness| async move {
        require_tools!("proxytunnel");
        let server = greeter(lo(7), 0, GREETING).await?;
        let tenant = Tenant::start(&h).await?;
        let _agent = Agent::start(
            &tenant.gw,
            &tenant.agent_config().tunnel("SSA", server.addr),
        )
        .await?;
        let pt = ProxyTunnel::new(&h, &tenant.gw, &tenant.creds, NameMode::Ns)?;
        let cmd = pt.command(&[format!("--dest={}", Tenant::colocated(server.addr))]);
        let log = std::fs::File::create(h.path().join("proxytunnel-pipe.log"))?;
        let mut cmd = tokio::process::Command::from(cmd);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd.spawn().context("starting proxytunnel -E")?;
        let pid = child.id().unwrap_or(0);
        // Keep stdin open and silent: the target must speak first.
        let _stdin = child.stdin.take();
        let stdout = child.stdout.take().context("stdout pipe")?;
        let result = read_greeting(stdout).await;
        kill_tree(pid);
        let _ = child.wait().await;
        result
    })
    .await;
}
