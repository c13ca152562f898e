//! The customer list's connectivity follows a real agent: waiting for the
//! first connection, authorisation failed (a wrong secret), connected with
//! its settings, offline after it stops. What the gateway records in its
//! database, judged by `admin::connectivity` as the admin plane will.

use anyhow::{bail, Result};
use tokio::time::Instant;

use admin::connectivity::{connectivity, State};
use admin::store::SiteStatus;

use crate::support::comgate::{Agent, AgentConfig, Gateway, GatewayOptions};
use crate::support::site::{Tenant, CUSTOMER, SYSTEM};
use crate::support::{run, secs, Harness};

async fn status(gw: &Gateway) -> Result<SiteStatus> {
    let all = gw.store().await?.site_statuses().await?;
    match all
        .into_iter()
        .find(|s| s.customer_id == CUSTOMER && s.label == SYSTEM)
    {
        Some(s) => Ok(s),
        None => bail!("no system {CUSTOMER}/{SYSTEM}"),
    }
}

/// Waits until the stored status satisfies `pred`.
async fn wait_status(
    gw: &Gateway,
    what: &str,
    pred: impl Fn(&SiteStatus) -> bool,
) -> Result<SiteStatus> {
    let deadline = Instant::now() + secs(20);
    loop {
        let s = status(gw).await?;
        if pred(&s) {
            return Ok(s);
        }
        if Instant::now() > deadline {
            bail!("{what}: the stored status stayed {s:?}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connectivity_follows_a_real_agent() {
    run(|h: Harness| async move {
        let tenant = Tenant::start(&h).await?;
        let gw = &tenant.gw;
        let s = status(gw).await?;
        anyhow::ensure!(
            connectivity(&s.observation(false), now()).state == State::WaitingForInitialConnection,
            "{s:?}"
        );

        // A wrong secret.
        let mut wrong =
            Agent::spawn_only(gw, &AgentConfig::new(CUSTOMER, SYSTEM, "not-the-secret"))?;
        let s = wait_status(gw, "auth failure recorded", |s| {
            s.last_auth_failure_at.is_some()
        })
        .await?;
        let c = connectivity(&s.observation(false), now());
        anyhow::ensure!(
            (c.state, c.message.as_str()) == (State::AuthorizationFailed, "Authorization failed"),
            "{c:?}"
        );
        wrong.kill();

        // The right one, with Remote Access off and Co-located Servers on.
        let cfg = tenant.agent_config().remote_access(false);
        let mut agent = Agent::start(gw, &cfg).await?;
        let s = wait_status(gw, "connection recorded", |s| s.last_connected_at.is_some()).await?;
        anyhow::ensure!(
            !s.remote_access && s.colocated_servers && !s.legacy_agent,
            "{s:?}"
        );
        anyhow::ensure!(
            s.agent_version.as_deref().is_some_and(|v| !v.is_empty()),
            "{s:?}"
        );
        let c = connectivity(&s.observation(true), now());
        anyhow::ensure!(c.state == State::Connected, "{c:?}");

        // It stops: the session's end is recorded, the list says offline.
        let connected_at = s.last_connected_at;
        // Timestamps are in seconds: let the end fall into a later one.
        tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
        agent.kill();
        let s = wait_status(gw, "end of session recorded", |s| {
            s.last_seen_at > connected_at
        })
        .await?;
        let c = connectivity(&s.observation(false), now() + 7_200);
        anyhow::ensure!(
            c.state == State::Offline
                && c.message
                    .starts_with("System is either not reachable or offline for last 2 hours"),
            "{c:?}"
        );
        Ok(())
    })
    .await;
}

/// While a site stays connected, serve marks it seen (every second here), so
/// that after a crash of serve "offline for" counts from the last mark, not
/// from the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connected_sites_are_marked_seen_while_they_stay() {
    run(|h: Harness| async move {
        let opts = GatewayOptions::default().agents("seen_interval_secs", 1);
        let tenant = Tenant::start_with(&h, &opts).await?;
        let gw = &tenant.gw;
        let _agent = Agent::start(gw, &tenant.agent_config()).await?;
        let s = wait_status(gw, "connection recorded", |s| s.last_connected_at.is_some()).await?;
        let marked = wait_status(gw, "connected site marked seen", |m| {
            m.last_seen_at > s.last_connected_at
        })
        .await?;
        anyhow::ensure!(
            marked.last_connected_at == s.last_connected_at,
            "still the same session: {marked:?}"
        );
        Ok(())
    })
    .await;
}

/// Waits until `text` is in the agent's log.
async fn wait_agent_log(agent: &Agent, text: &str) -> Result<()> {
    let deadline = Instant::now() + secs(20);
    while !agent.log_text().contains(text) {
        if Instant::now() > deadline {
            bail!("no {text:?} in the agent's log:\n{}", agent.log_text());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Guessing agent secrets from one address is bounded: after
/// `hello_failure_burst` failures the address is refused unchecked (no
/// secret verification, no database write) until its allowance refills,
/// and the agent is told why. The limit is per address, so the right
/// secret from there waits too, as at the front door.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failed_agent_authorisations_block_the_address_for_a_while() {
    run(|h: Harness| async move {
        let opts = GatewayOptions::default()
            .agents("hello_failure_burst", 2)
            .agents("hello_failures_per_minute", 1);
        let tenant = Tenant::start_with(&h, &opts).await?;
        let gw = &tenant.gw;
        let fast_retries = |cfg: AgentConfig| {
            cfg.line("reconnect_initial_ms", 100)
                .line("reconnect_max_ms", 200)
        };
        let mut wrong = Agent::spawn_only(
            gw,
            &fast_retries(AgentConfig::new(CUSTOMER, SYSTEM, "not-the-secret")),
        )?;
        wait_agent_log(&wrong, "too many failed authorisations from 127.0.0.1").await?;
        let recorded = status(gw).await?.last_auth_failure_at;
        anyhow::ensure!(recorded.is_some(), "the failures were not recorded");
        // The agent keeps trying every 100-200 ms; none of it reaches the
        // database while the address is blocked.
        tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
        let later = status(gw).await?.last_auth_failure_at;
        anyhow::ensure!(
            later == recorded,
            "a blocked hello was checked and recorded: {recorded:?} -> {later:?}"
        );
        wrong.kill();
        let log = gw.log_text();
        let checked = log
            .lines()
            .filter(|l| l.contains("agent not admitted") && l.contains("authorization failed"))
            .count();
        anyhow::ensure!(checked == 2, "{checked} hellos were checked, not 2:\n{log}");
        anyhow::ensure!(
            log.contains("too many failed agent authorisations"),
            "serve did not log the block:\n{log}"
        );

        let mut right = Agent::spawn_only(gw, &fast_retries(tenant.agent_config()))?;
        wait_agent_log(&right, "too many failed authorisations").await?;
        anyhow::ensure!(
            status(gw).await?.last_connected_at.is_none(),
            "the blocked address was admitted"
        );
        right.kill();
        Ok(())
    })
    .await
}
