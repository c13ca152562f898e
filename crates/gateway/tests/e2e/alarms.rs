//! Alarms from a real agent reach comgate: lines the site's monitoring
//! appends to the agent's alarm file, the agent's own alarms (a target that
//! does not answer, comgate's certificate near its end), and reports that
//! waited while comgate was down.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, ensure, Result};
use tokio::time::Instant;

use crate::support::audit;
use crate::support::comgate::{Agent, Gateway};
use crate::support::site::{Tenant, CUSTOMER, SYSTEM};
use crate::support::targets::{echo, lo};
use crate::support::{run, secs, Harness};

/// Fields of every `site alarm` line of serve's log.
fn site_alarms(gw: &Gateway) -> Vec<HashMap<String, String>> {
    gw.log_text()
        .lines()
        .filter(|l| l.contains("site alarm"))
        .map(audit::fields)
        .collect()
}

/// Waits for a `site alarm` line whose text is `text` and `active` as given.
async fn wait_alarm(gw: &Gateway, text: &str, active: bool) -> Result<HashMap<String, String>> {
    let deadline = Instant::now() + secs(20);
    loop {
        if let Some(found) = site_alarms(gw).into_iter().find(|f| {
            f.get("alarm").map(String::as_str) == Some(text)
                && f.get("active").map(String::as_str)
                    == Some(if active { "true" } else { "false" })
        }) {
            return Ok(found);
        }
        if Instant::now() > deadline {
            bail!(
                "no `site alarm` {text:?} active={active} in serve's log; seen: {:?}",
                site_alarms(gw)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn append(path: &Path, text: &str) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn alarm_file_lines_reach_comgate_and_bad_lines_are_named() {
    run(|h: Harness| async move {
        let tenant = Tenant::start(&h).await?;
        let file = h.path().join("site-alarms.jsonl");
        let cfg = tenant
            .agent_config()
            .line("alarms_file", format!("\"{}\"", file.display()))
            .line("alarms_poll_ms", 100);
        let agent = Agent::start(&tenant.gw, &cfg).await?;
        append(
            &file,
            "{\"type\":\"Trunk\",\"severity\":\"major\",\"text\":\"SIP trunk 2 out of service\",\"detail\":\"503 from provider\"}\n\
             {\"type\":\"qos\",\"severity\":\"MINOR\",\"text\":\"Jitter on trunk 1\",\"active\":false}\n\
             {\"type\":\"Weather\",\"severity\":\"minor\",\"text\":\"rain\"}\n",
        )?;
        let trunk = wait_alarm(&tenant.gw, "SIP trunk 2 out of service", true).await?;
        for (key, value) in [
            ("alarm_type", "Trunk"),
            ("severity", "major"),
            ("detail", "503 from provider"),
            ("source", "Site"),
            ("customer", CUSTOMER),
            ("system", SYSTEM),
        ] {
            ensure!(trunk.get(key).map(String::as_str) == Some(value), "{key}: {trunk:?}");
        }
        let qos = wait_alarm(&tenant.gw, "Jitter on trunk 1", false).await?;
        ensure!(qos.get("alarm_type").map(String::as_str) == Some("QoS"), "{qos:?}");
        // What the database holds: one row each, on system ipo1 of 12345.
        let stored = tenant.gw.store().await?.list_alarms().await?;
        let trunk_row = stored
            .iter()
            .find(|a| a.text == "SIP trunk 2 out of service")
            .ok_or_else(|| anyhow::anyhow!("trunk alarm not stored: {stored:?}"))?;
        ensure!(
            trunk_row.active
                && trunk_row.occurrences == 1
                && trunk_row.customer_id == CUSTOMER
                && trunk_row.detail.as_deref() == Some("503 from provider"),
            "{trunk_row:?}"
        );
        ensure!(stored.len() == 2, "{stored:?}");
        ensure!(
            !site_alarms(&tenant.gw).iter().any(|f| f.get("alarm").map(String::as_str) == Some("rain")),
            "the bad line was reported"
        );
        let log = agent.log_text();
        ensure!(
            log.contains("site report line skipped") && log.contains("unknown type \"Weather\""),
            "the agent did not name the bad line:\n{log}"
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn alarms_written_while_comgate_is_down_arrive_after_it_returns() {
    run(|h: Harness| async move {
        let mut tenant = Tenant::start(&h).await?;
        let file = h.path().join("site-alarms.jsonl");
        let cfg = tenant
            .agent_config()
            .line("alarms_file", format!("\"{}\"", file.display()))
            .line("alarms_poll_ms", 100)
            .line("reconnect_initial_ms", 100)
            .line("reconnect_max_ms", 500);
        let agent = Agent::start(&tenant.gw, &cfg).await?;
        tenant.gw.stop().await;
        append(
            &file,
            "{\"type\":\"Link\",\"severity\":\"critical\",\"text\":\"WAN link down\"}\n",
        )?;
        // Let the agent read the line while no session is up.
        tokio::time::sleep(Duration::from_millis(600)).await;
        let seen = agent.connected_count();
        tenant.gw.restart().await?;
        agent.wait_connected(seen, secs(20)).await?;
        wait_alarm(&tenant.gw, "WAN link down", true).await?;
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_agent_raises_and_ends_a_target_alarm() {
    run(|h: Harness| async move {
        let tenant = Tenant::start(&h).await?;
        // A co-located server the site lists but that is not running yet.
        let addr = std::net::SocketAddr::from((lo(94), crate::support::ports::free_port()));
        let _agent = Agent::start(&tenant.gw, &tenant.agent_config().tunnel("SSH", addr)).await?;
        let target = Tenant::colocated(addr);
        let refused = tenant.front.status_of(&target, Some(&tenant.creds)).await?;
        ensure!(
            refused.status == 502 || refused.status == 504,
            "{}",
            refused.summary()
        );
        let text = format!("Remote support target {addr} does not answer");
        let raised = wait_alarm(&tenant.gw, &text, true).await?;
        ensure!(
            raised.get("source").map(String::as_str) == Some("Agent")
                && raised.get("alarm_type").map(String::as_str) == Some("Services"),
            "{raised:?}"
        );
        // The server comes up: the next tunnel works and ends the alarm.
        let _server = echo(addr.ip().to_string().parse()?, addr.port()).await?;
        tenant.front.open(&target, &tenant.creds).await?;
        wait_alarm(&tenant.gw, &text, false).await?;
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_certificate_near_its_end_raises_a_security_alarm() {
    run(|h: Harness| async move {
        let tenant = Tenant::start(&h).await?;
        // The generated certificate lasts far less than 100 years: with a
        // warning period that long it is "about to expire".
        let cfg = tenant
            .agent_config()
            .line("cert_expiry_warning_days", 36_500);
        let _agent = Agent::start(&tenant.gw, &cfg).await?;
        let alarm = wait_alarm(
            &tenant.gw,
            "The certificate of comgate is about to expire",
            true,
        )
        .await?;
        ensure!(
            alarm.get("alarm_type").map(String::as_str) == Some("Security")
                && alarm
                    .get("detail")
                    .is_some_and(|d| d.contains("valid until")),
            "{alarm:?}"
        );
        // With the default period the same certificate raises nothing.
        let tenant2 = Tenant::start(&h).await?;
        let _agent2 = Agent::start(&tenant2.gw, &tenant2.agent_config()).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        ensure!(
            site_alarms(&tenant2.gw).is_empty(),
            "{:?}",
            site_alarms(&tenant2.gw)
        );
        Ok(())
    })
    .await;
}
