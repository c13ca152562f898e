//! The site's own settings are enforced at the agent too, not only at the gateway: a
//! gateway (here the test's stand-in speaking the real protocol) that asks for a target
//! the site does not allow gets a refusal with a reason, and nothing is dialed.

use std::net::Ipv4Addr;

use anyhow::{bail, ensure, Result};
use tunnel_proto::{OpenError, Target as StreamTarget};

use crate::support::comgate::{Agent, AgentConfig};
use crate::support::fake_gateway::{FakeGateway, Session};
use crate::support::files::echo_roundtrip;
use crate::support::ports::free_port;
use crate::support::targets::{counting, echo, lo, Target};
use crate::support::{millis, run, secs, Harness};

/// Asks the agent for `target`; it must refuse with a reason.
async fn expect_refused(session: &Session, target: StreamTarget, what: &str) -> Result<()> {
    match tokio::time::timeout(secs(10), session.mux.open(target)).await {
        Err(_) => bail!("{what}: the agent neither accepted nor refused within 10 s"),
        Ok(Ok(_)) => bail!("{what}: the agent ACCEPTED a stream its settings forbid"),
        Ok(Err(OpenError::Refused { reason, .. })) => {
            ensure!(
                !reason.trim().is_empty(),
                "{what}: refused without a reason"
            );
            eprintln!("{what}: refused: {reason}");
            Ok(())
        }
        Ok(Err(e)) => bail!("{what}: expected a refusal, got {e}"),
    }
}

fn v4(t: &Target) -> Ipv4Addr {
    match t.addr.ip() {
        std::net::IpAddr::V4(ip) => ip,
        std::net::IpAddr::V6(_) => Ipv4Addr::LOCALHOST,
    }
}

async fn never_dialed(targets: &[&Target]) -> Result<()> {
    tokio::time::sleep(millis(500)).await;
    for t in targets {
        ensure!(
            t.accepted() == 0,
            "{} was dialed {} times",
            t.addr,
            t.accepted()
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn agent_refuses_targets_its_settings_forbid_even_when_gateway_asks() {
    run(|h: Harness| async move {
        let listed = echo(lo(5), 0).await?;
        let other_ip = counting(lo(6), listed.port()).await?;
        let other_port = counting(lo(5), free_port()).await?;
        let own_unoffered = counting(lo(1), free_port()).await?;

        let mut fake = FakeGateway::start(&h).await?;
        let cfg = AgentConfig::new("12345", "ipo1", "any-secret").tunnel("RDP", listed.addr);
        let _agent = Agent::spawn_for(&h, &fake.url(), &fake.ca, &cfg)?;
        let session = fake.session(secs(20)).await?;
        let settings = &session.hello.settings;
        ensure!(
            settings.remote_access && settings.colocated_servers,
            "reported settings: {settings:?}"
        );
        ensure!(
            settings
                .tunnels
                .iter()
                .any(|t| t.server_ip == v4(&listed) && t.server_port == listed.port()),
            "the agent did not report its tunnel: {settings:?}"
        );

        // Sanity: the listed tunnel is accepted and carries bytes.
        let stream = tokio::time::timeout(
            secs(10),
            session.mux.open(StreamTarget::Colocated {
                ip: v4(&listed),
                port: listed.port(),
            }),
        )
        .await??;
        echo_roundtrip(stream, Vec::new(), 64 * 1024, secs(20)).await?;

        expect_refused(
            &session,
            StreamTarget::Colocated {
                ip: v4(&other_ip),
                port: other_ip.port(),
            },
            "co-located IP not listed",
        )
        .await?;
        expect_refused(
            &session,
            StreamTarget::Colocated {
                ip: v4(&other_port),
                port: other_port.port(),
            },
            "co-located port not listed",
        )
        .await?;
        expect_refused(
            &session,
            StreamTarget::System {
                port: own_unoffered.port(),
            },
            "own port not offered",
        )
        .await?;
        never_dialed(&[&other_ip, &other_port, &own_unoffered]).await?;
        ensure!(
            listed.accepted() == 1,
            "listed server dialed {} times",
            listed.accepted()
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn agent_with_remote_access_or_colocated_servers_off_refuses_when_gateway_asks() {
    run(|h: Harness| async move {
        let own = counting(lo(1), free_port()).await?;
        let listed = counting(lo(5), 0).await?;

        // Remote Access off: neither the system's own port nor a listed tunnel.
        let mut fake = FakeGateway::start(&h).await?;
        let cfg = AgentConfig::new("12345", "ipo1", "any-secret")
            .remote_access(false)
            .port(22, own.addr)
            .tunnel("RDP", listed.addr);
        let _agent = Agent::spawn_for(&h, &fake.url(), &fake.ca, &cfg)?;
        let session = fake.session(secs(20)).await?;
        ensure!(
            !session.hello.settings.remote_access,
            "reported: {:?}",
            session.hello.settings
        );
        expect_refused(
            &session,
            StreamTarget::System { port: 22 },
            "Remote Access off, port 22",
        )
        .await?;
        expect_refused(
            &session,
            StreamTarget::Colocated {
                ip: v4(&listed),
                port: listed.port(),
            },
            "Remote Access off, listed tunnel",
        )
        .await?;

        // Co-located Servers off: the listed tunnel is refused.
        let mut fake2 = FakeGateway::start(&h).await?;
        let cfg2 = AgentConfig::new("12345", "ipo2", "any-secret")
            .colocated_servers(false)
            .tunnel("RDP", listed.addr);
        let _agent2 = Agent::spawn_for(&h, &fake2.url(), &fake2.ca, &cfg2)?;
        let session2 = fake2.session(secs(20)).await?;
        expect_refused(
            &session2,
            StreamTarget::Colocated {
                ip: v4(&listed),
                port: listed.port(),
            },
            "Co-located Servers off, listed tunnel",
        )
        .await?;
        never_dialed(&[&own, &listed]).await
    })
    .await;
}
