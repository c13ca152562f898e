//! The audit trail: one `tunnel closed` event per tunnel with who, what and how much;
//! and no password or agent secret in any log line.

use anyhow::ensure;

use crate::support::comgate::Agent;
use crate::support::connect::Creds;
use crate::support::files::echo_roundtrip;
use crate::support::site::{EchoSite, Tenant, CUSTOMER, SYSTEM};
use crate::support::{millis, run, secs, Harness};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tunnel_end_is_audited_with_account_target_and_bytes() {
    run(|h: Harness| async move {
        const BYTES: usize = 300_000;
        let EchoSite {
            server,
            tenant,
            agent: _agent,
        } = EchoSite::start(&h, 5).await?;
        let target = Tenant::colocated(server.addr);
        let reply = tenant.front.open(&target, &tenant.creds).await?;
        echo_roundtrip(reply.stream, reply.early, BYTES, secs(20)).await?;
        let port = server.port().to_string();
        let ev = tenant
            .gw
            .wait_audit(
                |e| e.get("target").is_some_and(|t| t.contains(&port)),
                secs(15),
            )
            .await?;
        eprintln!("audit: {}", ev.line);
        ensure!(
            ev.get("account") == Some(tenant.creds.user.as_str()),
            "account field: {}",
            ev.line
        );
        ensure!(
            ev.get("customer") == Some(CUSTOMER),
            "customer field: {}",
            ev.line
        );
        ensure!(
            ev.get("system") == Some(SYSTEM),
            "system field: {}",
            ev.line
        );
        ensure!(
            ev.get("target").is_some_and(|t| t.contains("127.0.0.5")),
            "target field: {}",
            ev.line
        );
        let up = ev.number("bytes_up").unwrap_or(0);
        let down = ev.number("bytes_down").unwrap_or(0);
        ensure!(
            up >= BYTES as u64 && down >= BYTES as u64,
            "bytes_up={up} bytes_down={down}, {BYTES} each way were sent: {}",
            ev.line
        );
        ensure!(
            ev.get("outcome").is_some_and(|o| !o.is_empty()),
            "outcome field: {}",
            ev.line
        );
        // Exactly one event for this one tunnel.
        tokio::time::sleep(millis(500)).await;
        let count = tenant
            .gw
            .audit_events()
            .iter()
            .filter(|e| e.get("target").is_some_and(|t| t.contains(&port)))
            .count();
        ensure!(count == 1, "{count} `tunnel closed` events for one tunnel");
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logs_never_contain_passwords_or_agent_secrets() {
    run(|h: Harness| async move {
        let EchoSite {
            server,
            tenant,
            agent,
        } = EchoSite::start(&h, 5).await?;
        let target = Tenant::colocated(server.addr);
        let wrong = Creds::new(&tenant.creds.user, "Wr0ngPassw0rd-Leak-Check");
        let r = tenant.front.status_of(&target, Some(&wrong)).await?;
        ensure!(r.status == 407, "wrong password: {}", r.summary());
        let reply = tenant.front.open(&target, &tenant.creds).await?;
        echo_roundtrip(reply.stream, reply.early, 1024, secs(20)).await?;
        // An agent with a wrong secret is refused (and must not log what it tried).
        let bad_secret = "BadSecret-Leak-Check-0123456789";
        let mut cfg = tenant.agent_config().tunnel("RDP", server.addr);
        cfg.secret = bad_secret.to_string();
        let mut bad_agent = Agent::spawn_only(&tenant.gw, &cfg)?;
        tokio::time::sleep(secs(2)).await;
        bad_agent.kill();
        tokio::time::sleep(millis(300)).await;

        let logs = [
            ("serve", tenant.gw.log_text()),
            ("agent", agent.log_text()),
            ("agent with a wrong secret", bad_agent.log_text()),
        ];
        let secrets = [
            ("the account password", tenant.creds.pass.clone()),
            ("a wrong password", wrong.pass.clone()),
            ("the agent secret", tenant.secret.clone()),
            ("a wrong agent secret", bad_secret.to_string()),
            (
                "a Basic credential",
                tenant
                    .creds
                    .basic()
                    .trim_start_matches("Basic ")
                    .to_string(),
            ),
            (
                "a wrong Basic credential",
                wrong.basic().trim_start_matches("Basic ").to_string(),
            ),
        ];
        for (log_name, text) in &logs {
            for (what, secret) in &secrets {
                ensure!(
                    !text.contains(secret.as_str()),
                    "the {log_name} log contains {what}"
                );
            }
        }
        Ok(())
    })
    .await;
}
