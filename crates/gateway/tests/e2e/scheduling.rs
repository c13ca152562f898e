//! `scheduling` in serve's and the agent's configs: every thread of both
//! processes runs with the policy configured (`SCHED_BATCH` by default),
//! read back from `/proc`, while a tunnel carries bytes through them.

use anyhow::{ensure, Context, Result};

use crate::support::comgate::{Agent, GatewayOptions};
use crate::support::files::{echo_roundtrip, MIB};
use crate::support::process::ThreadStat;
use crate::support::site::Tenant;
use crate::support::targets::{echo, lo};
use crate::support::{run, secs, Harness};

/// `SCHED_OTHER` and `SCHED_BATCH` in `/proc/<pid>/stat`.
const SCHED_OTHER: u32 = 0;
const SCHED_BATCH: u32 = 3;

/// Checks that every thread has `policy` and that the named ones exist
/// (the threads a tunnel's bytes pass through).
fn all_threads_have(
    who: &str,
    threads: &[ThreadStat],
    policy: u32,
    must_exist: &[&str],
) -> Result<()> {
    let names: Vec<String> = threads
        .iter()
        .map(|t| format!("{}={}", t.name, t.policy))
        .collect();
    for name in must_exist {
        // The kernel keeps the first 15 bytes of a thread's name.
        let prefix = &name[..name.len().min(15)];
        ensure!(
            threads.iter().any(|t| t.name.starts_with(prefix)),
            "{who} has no thread {name}*: {names:?}"
        );
    }
    ensure!(
        threads.iter().all(|t| t.policy == policy),
        "{who}'s threads are not all policy {policy}: {names:?}"
    );
    Ok(())
}

/// Starts serve and an agent with `scheduling` (None: the default), echoes
/// 4 MiB through a tunnel, and checks both processes' threads.
async fn threads_run_with(h: &Harness, scheduling: Option<&str>, policy: u32) -> Result<()> {
    let server = echo(lo(5), 0).await?;
    let mut opts = GatewayOptions::default();
    let mut cfg_lines = Vec::new();
    if let Some(s) = scheduling {
        opts = opts.top("scheduling", format!("\"{s}\""));
        cfg_lines.push(format!("\"{s}\""));
    }
    let tenant = Tenant::start_with(h, &opts).await?;
    let mut cfg = tenant.agent_config().tunnel("RDP", server.addr);
    for value in cfg_lines {
        cfg = cfg.line("scheduling", value);
    }
    let agent = Agent::start(&tenant.gw, &cfg).await?;
    let tunnel = tenant
        .front
        .open(&Tenant::colocated(server.addr), &tenant.creds)
        .await?;
    echo_roundtrip(tunnel.stream, tunnel.early, 4 * MIB, secs(60))
        .await
        .context("4 MiB echo")?;
    all_threads_have(
        "serve",
        &tenant.gw.threads()?,
        policy,
        &["comgate-site-", "tokio-rt-worker"],
    )?;
    all_threads_have(
        "the agent",
        &agent.threads()?,
        policy,
        &[gateway::agent::QUICK_THREAD_NAME],
    )?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn serve_and_the_agent_run_every_thread_as_sched_batch_by_default() {
    run(|h: Harness| async move { threads_run_with(&h, None, SCHED_BATCH).await }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scheduling_normal_keeps_the_kernel_s_default_policy() {
    run(|h: Harness| async move { threads_run_with(&h, Some("normal"), SCHED_OTHER).await }).await;
}
