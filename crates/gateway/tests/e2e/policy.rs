//! Who may go where (DESIGN.md): offline systems, the site's remote-operations
//! settings, the tunnel list, names outside `.maint.<domain>`, non-CONNECT methods.

use std::net::SocketAddr;

use anyhow::{ensure, Context, Result};

use crate::support::comgate::{Agent, AgentConfig};
use crate::support::connect::Response;
use crate::support::files::echo_roundtrip;
use crate::support::maint_name;
use crate::support::ports::free_port;
use crate::support::reading::read_to_len;
use crate::support::site::{Tenant, CUSTOMER, SYSTEM};
use crate::support::targets::{counting, echo, greeter, lo, Target};
use crate::support::{millis, run, secs, Harness, DOMAIN};

/// The anonymous refusal every unknown customer gets (reason-less by design).
async fn anonymous_refusal(tenant: &Tenant) -> Result<Response> {
    let r = tenant
        .front
        .status_of(
            &format!("{}:22", maint_name("99999", None, None)),
            Some(&tenant.creds),
        )
        .await?;
    ensure!(r.status == 403, "unknown customer: {}", r.summary());
    Ok(r)
}

/// A policy refusal: 403 with a reason a person can act on, i.e. not the anonymous body.
fn check_reasoned_403(what: &str, got: &Response, anonymous: &Response) -> Result<()> {
    ensure!(
        got.status == 403,
        "{what}: expected 403, got {}",
        got.summary()
    );
    ensure!(
        !got.body_text().trim().is_empty() || got.status_line != anonymous.status_line,
        "{what}: 403 without a reason"
    );
    ensure!(
        got.body != anonymous.body || got.status_line != anonymous.status_line,
        "{what}: 403 carries only the anonymous refusal, no reason ({})",
        got.summary()
    );
    eprintln!("{what}: {}", got.summary());
    Ok(())
}

/// Whether `log` mentions `token` (a port or an IP) on its own, not inside a longer
/// number (such as a timestamp's fraction).
fn mentions(log: &str, token: &str) -> bool {
    let bytes = log.as_bytes();
    log.match_indices(token).any(|(i, _)| {
        let before = i.checked_sub(1).map(|j| bytes[j]);
        let after = bytes.get(i + token.len()).copied();
        !before.is_some_and(|b| b.is_ascii_digit()) && !after.is_some_and(|b| b.is_ascii_digit())
    })
}

/// The gateway refused on its own, without opening a stream: the agent never heard of
/// the refused addresses (IPs or ports). Only meaningful when the agent logs the streams
/// it does get (checked with `served`); otherwise says so and checks nothing.
fn agent_never_heard_of(agent: &Agent, served: &str, refused: &[String]) -> Result<()> {
    let log = agent.log_text();
    if !mentions(&log, served) {
        eprintln!("note: the agent does not log its streams' targets; cannot tell from its log whether streams were opened");
        return Ok(());
    }
    for token in refused {
        ensure!(
            !mentions(&log, token),
            "the agent's log mentions refused {token}: the gateway opened a stream instead of refusing by itself"
        );
    }
    Ok(())
}

/// Gives a wrongly dialed connection time to show up at a target, then checks none did.
async fn never_dialed(targets: &[(&str, &Target)]) -> Result<()> {
    tokio::time::sleep(millis(500)).await;
    for (what, t) in targets {
        ensure!(
            t.accepted() == 0,
            "{what} ({}) was dialed {} times",
            t.addr,
            t.accepted()
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn offline_system_gets_502() {
    run(|h: Harness| async move {
        let tenant = Tenant::start(&h).await?;
        tenant.gw.system(CUSTOMER, "sec1", false).await?;
        let front = &tenant.front;
        // No agent at all yet: the primary is offline.
        let r = front
            .status_of(&Tenant::own(22), Some(&tenant.creds))
            .await?;
        ensure!(r.status == 502, "primary without agent: {}", r.summary());
        // With ipo1's agent up, sec1 (no agent) is still offline.
        let _agent = Agent::start(&tenant.gw, &tenant.agent_config()).await?;
        let target = format!("{}:22", maint_name(CUSTOMER, Some("sec1"), None));
        let r = front.status_of(&target, Some(&tenant.creds)).await?;
        ensure!(r.status == 502, "{target}: {}", r.summary());
        let text = r.summary().to_lowercase();
        ensure!(
            text.contains("offline") || text.contains("sec1"),
            "502 does not name the system offline: {}",
            r.summary()
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn remote_access_off_gets_403_with_reason() {
    run(|h: Harness| async move {
        let ssh_like = counting(lo(1), free_port()).await?;
        let colocated = counting(lo(5), 0).await?;
        let tenant = Tenant::start(&h).await?;
        let cfg = tenant
            .agent_config()
            .remote_access(false)
            .port(22, ssh_like.addr)
            .tunnel("RDP", colocated.addr);
        let _agent = Agent::start(&tenant.gw, &cfg).await?;
        let anonymous = anonymous_refusal(&tenant).await?;
        let front = &tenant.front;
        for target in [
            Tenant::own(22),
            Tenant::own(443),
            Tenant::colocated(colocated.addr),
        ] {
            let r = front.status_of(&target, Some(&tenant.creds)).await?;
            check_reasoned_403(&format!("Remote Access off, {target}"), &r, &anonymous)?;
        }
        never_dialed(&[("own ssh", &ssh_like), ("co-located", &colocated)]).await
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn colocated_address_not_in_tunnel_list_is_refused_at_gateway_and_never_dialed() {
    run(|h: Harness| async move {
        let listed = echo(lo(5), 0).await?;
        // Same port, other IP; same IP, other port; an own port nobody mapped.
        let other_ip = counting(lo(6), listed.port()).await?;
        let other_port = counting(lo(5), free_port()).await?;
        let unmapped_own = counting(lo(1), free_port()).await?;
        let tenant = Tenant::start(&h).await?;
        let gw = &tenant.gw;
        let agent = Agent::start(gw, &tenant.agent_config().tunnel("RDP", listed.addr)).await?;
        // sec1 lists the same tunnel but has Co-located Servers off.
        let secret = gw.system(CUSTOMER, "sec1", false).await?;
        let cfg_sec1 = AgentConfig::new(CUSTOMER, "sec1", &secret)
            .colocated_servers(false)
            .tunnel("RDP", listed.addr);
        let agent_sec1 = Agent::start(gw, &cfg_sec1).await?;

        // Sanity: the listed tunnel works.
        let ok = tenant
            .front
            .open(&Tenant::colocated(listed.addr), &tenant.creds)
            .await?;
        echo_roundtrip(ok.stream, ok.early, 4096, secs(20)).await?;

        let anonymous = anonymous_refusal(&tenant).await?;
        let refusals = [
            ("co-located IP not listed", Tenant::colocated(other_ip.addr)),
            (
                "co-located port not listed",
                Tenant::colocated(other_port.addr),
            ),
            ("own port not allowed", Tenant::own(unmapped_own.port())),
            (
                "Co-located Servers off",
                format!(
                    "{}:{}",
                    maint_name(CUSTOMER, Some("sec1"), Some(&listed.ip())),
                    listed.port()
                ),
            ),
        ];
        for (what, target) in &refusals {
            let r = tenant.front.status_of(target, Some(&tenant.creds)).await?;
            check_reasoned_403(&format!("{what} ({target})"), &r, &anonymous)?;
        }
        never_dialed(&[
            ("unlisted IP", &other_ip),
            ("unlisted port", &other_port),
            ("unmapped own port", &unmapped_own),
        ])
        .await?;
        ensure!(
            listed.accepted() == 1,
            "the listed server was dialed {} times (once expected, by the sanity check)",
            listed.accepted()
        );
        agent_never_heard_of(
            &agent,
            &listed.port().to_string(),
            &[
                other_ip.ip(),
                other_port.port().to_string(),
                unmapped_own.port().to_string(),
            ],
        )?;
        let sec1_log = agent_sec1.log_text();
        ensure!(
            !mentions(&sec1_log, &listed.port().to_string()),
            "sec1's agent was asked for {} although its Co-located Servers is off",
            listed.addr
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn host_outside_maint_domain_gets_403_and_nothing_is_dialed() {
    run(|h: Harness| async move {
        let port = free_port();
        let local = counting(lo(1), port).await?;
        let tenant = Tenant::start(&h).await?;
        let _agent = Agent::start(
            &tenant.gw,
            &tenant
                .agent_config()
                .tunnel("RDP", SocketAddr::from((lo(1), port))),
        )
        .await?;
        let targets = [
            format!("127.0.0.1:{port}"),
            format!("evil.test:{port}"),
            format!("localhost:{port}"),
            format!("[::1]:{port}"),
            format!("maint.example.test:{port}"),
            format!("{CUSTOMER}.maint.example.test.evil.test:{port}"),
            format!("{CUSTOMER}-{SYSTEM}-127.0.0.1.maint.example.org:{port}"),
            format!("{CUSTOMER}.evilmaint.example.test:{port}"),
        ];
        let mut wrong = Vec::new();
        for target in &targets {
            let r = tenant.front.status_of(target, Some(&tenant.creds)).await?;
            if r.status != 403 {
                wrong.push(format!("CONNECT {target}: {}", r.summary()));
            }
        }
        never_dialed(&[("127.0.0.1 listener", &local)]).await?;
        ensure!(
            wrong.is_empty(),
            "expected 403 for every host outside .maint.{DOMAIN}, got:\n{}",
            wrong.join("\n")
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn non_connect_request_gets_405_and_front_door_keeps_working() {
    run(|h: Harness| async move {
        let server = echo(lo(5), 0).await?;
        let tenant = Tenant::start(&h).await?;
        let _agent = Agent::start(&tenant.gw, &tenant.agent_config().tunnel("RDP", server.addr)).await?;
        let creds = tenant.creds.basic();
        let with_creds = [
            format!(
                "GET http://{}/ HTTP/1.1\r\nHost: {}\r\nProxy-Authorization: {creds}\r\n\r\n",
                Tenant::own(80),
                Tenant::own(80)
            ),
            format!(
                "POST http://update.googleapis.com/service/update2 HTTP/1.1\r\nHost: update.googleapis.com\r\nProxy-Authorization: {creds}\r\nContent-Length: 0\r\n\r\n"
            ),
            format!("GET / HTTP/1.1\r\nHost: maint.example.test\r\nProxy-Authorization: {creds}\r\n\r\n"),
        ];
        for head in &with_creds {
            let r = tenant.front.request(head.as_bytes()).await?.response;
            let first = head.lines().next().unwrap_or("");
            ensure!(r.status == 405, "{first}: expected 405, got {}", r.summary());
        }
        // Browsers' background traffic comes without credentials: a clean 4xx.
        let anonymous = "POST http://update.googleapis.com/service/update2 HTTP/1.1\r\nHost: update.googleapis.com\r\nContent-Length: 0\r\n\r\n";
        let r = tenant.front.request(anonymous.as_bytes()).await?.response;
        ensure!(
            (400..500).contains(&r.status),
            "anonymous POST: expected 4xx, got {}",
            r.summary()
        );
        // Nothing broke.
        let ok = tenant.front.open(&Tenant::colocated(server.addr), &tenant.creds).await?;
        echo_roundtrip(ok.stream, ok.early, 4096, secs(20)).await?;
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connect_target_without_port_means_port_22() {
    run(|h: Harness| async move {
        const BANNER: &[u8] = b"SSH-2.0-e2e-fake-sshd\r\n";
        let fake_sshd = greeter(lo(1), free_port(), BANNER).await?;
        let tenant = Tenant::start(&h).await?;
        let _agent =
            Agent::start(&tenant.gw, &tenant.agent_config().port(22, fake_sshd.addr)).await?;
        for target in [
            maint_name(CUSTOMER, Some(SYSTEM), None),
            maint_name(CUSTOMER, None, None),
        ] {
            let reply = tenant.front.open(&target, &tenant.creds).await?;
            let mut stream = reply.stream;
            let got = read_to_len(&mut stream, reply.early, BANNER.len(), secs(10))
                .await
                .with_context(|| format!("{target}: no banner from port 22"))?;
            ensure!(
                got.starts_with(BANNER),
                "{target}: got {:?}",
                String::from_utf8_lossy(&got)
            );
        }
        Ok(())
    })
    .await;
}
