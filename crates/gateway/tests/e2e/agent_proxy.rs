//! A site whose only way out is its own HTTP proxy (tinyproxy with Basic auth): the
//! agent tunnels its websocket through the proxy's CONNECT.

use anyhow::ensure;

use crate::support::comgate::Agent;
use crate::support::files::echo_roundtrip;
use crate::support::proxytunnel::NameMode;
use crate::support::site::{SshSite, Tenant};
use crate::support::targets::{echo, lo};
use crate::support::tinyproxy::Tinyproxy;
use crate::support::tools::require_unshare;
use crate::support::{run, secs, Harness, DOMAIN};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn agent_behind_tinyproxy_with_basic_auth_connects_and_serves_ssh() {
    run(|h: Harness| async move {
        require_tools!("tinyproxy", "ssh", "sshd", "ssh-keygen", "proxytunnel");
        // tinyproxy allows CONNECT to the agent listener only, with Basic auth.
        let tenant = Tenant::start(&h).await?;
        let tp = Tinyproxy::start(&h, "siteproxy", "Pr0xyPass", &[tenant.gw.agent_port]).await?;
        let url = tp.url();
        let site = SshSite::from_tenant(&h, tenant, NameMode::Ns, |c| c.proxy(&url)).await?;
        let connect_line = format!("CONNECT 127.0.0.1:{}", site.tenant.gw.agent_port);
        ensure!(
            tp.log_text().contains(&connect_line),
            "tinyproxy's log shows no `{connect_line}`: the agent did not come through it:\n{}",
            tp.log_text()
        );
        let out = site
            .clients
            .ssh(&site.dest(), "echo through-the-site-proxy", secs(60))
            .await?
            .ok()?;
        ensure!(
            out.stdout_text().contains("through-the-site-proxy"),
            "ssh output missing:\n{}",
            out.describe()
        );
        Ok(())
    })
    .await;
}

/// A site behind a proxy usually has no outside DNS: the agent must hand the gateway's
/// name to the proxy (CONNECT host:port) rather than resolve it itself. Here only
/// tinyproxy can resolve `admin.example.test` (a name the generated certificate carries).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn agent_behind_proxy_reaches_gateway_by_a_name_only_the_proxy_resolves() {
    run(|h: Harness| async move {
        require_tools!("tinyproxy", "unshare");
        if !require_unshare()? {
            return Ok(());
        }
        let server = echo(lo(5), 0).await?;
        let tenant = Tenant::start(&h).await?;
        let name = format!("admin.{DOMAIN}");
        let tp = Tinyproxy::start_with_hosts(
            &h,
            "siteproxy",
            "Pr0xyPass",
            &[tenant.gw.agent_port],
            &[(name.as_str(), "127.0.0.1")],
        )
        .await?;
        let mut cfg = tenant
            .agent_config()
            .tunnel("RDP", server.addr)
            .proxy(&tp.url());
        cfg.gateway_url = Some(format!("wss://{name}:{}", tenant.gw.agent_port));
        let _agent = Agent::start(&tenant.gw, &cfg).await?;
        let connect_line = format!("CONNECT {name}:{}", tenant.gw.agent_port);
        ensure!(
            tp.log_text().contains(&connect_line),
            "tinyproxy's log shows no `{connect_line}`:\n{}",
            tp.log_text()
        );
        let reply = tenant
            .front
            .open(&Tenant::colocated(server.addr), &tenant.creds)
            .await?;
        echo_roundtrip(reply.stream, reply.early, 64 * 1024, secs(20)).await?;
        Ok(())
    })
    .await;
}

/// An agent with no `proxy` key, `HTTPS_PROXY` naming a tinyproxy that may
/// reach the gateway, and `extra_env`: the tunnel must work; returns whether
/// the agent went through tinyproxy (its log shows the CONNECT).
async fn agent_with_https_proxy_env(
    h: &Harness,
    extra_env: &[(&str, &str)],
) -> anyhow::Result<bool> {
    let server = echo(lo(14), 0).await?;
    let tenant = Tenant::start(h).await?;
    let tp = Tinyproxy::start(h, "siteproxy", "Pr0xyPass", &[tenant.gw.agent_port]).await?;
    let mut cfg = tenant.agent_config().tunnel("RDP", server.addr);
    cfg.env.push(("HTTPS_PROXY".to_string(), tp.url()));
    cfg.env.extend(
        extra_env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let _agent = Agent::start(&tenant.gw, &cfg).await?;
    let reply = tenant
        .front
        .open(&Tenant::colocated(server.addr), &tenant.creds)
        .await?;
    echo_roundtrip(reply.stream, reply.early, 64 * 1024, secs(10)).await?;
    let connect_line = format!("CONNECT 127.0.0.1:{}", tenant.gw.agent_port);
    Ok(tp.log_text().contains(&connect_line))
}

/// Without a `proxy` key the agent takes the site's proxy from `HTTPS_PROXY`,
/// as most tools on a site do.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn agent_takes_its_proxy_from_https_proxy_when_the_config_names_none() {
    run(|h: Harness| async move {
        require_tools!("tinyproxy");
        ensure!(
            agent_with_https_proxy_env(&h, &[]).await?,
            "tinyproxy's log shows no CONNECT to the gateway: HTTPS_PROXY was not used"
        );
        Ok(())
    })
    .await;
}

/// `NO_PROXY` naming the gateway's address sends the agent around the
/// site's proxy, as curl would: the proxy sees no CONNECT and the site still
/// comes up.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_proxy_naming_the_gateway_bypasses_https_proxy() {
    run(|h: Harness| async move {
        require_tools!("tinyproxy");
        ensure!(
            !agent_with_https_proxy_env(&h, &[("NO_PROXY", "intranet.lan, 127.0.0.0/8")]).await?,
            "NO_PROXY lists the gateway, yet the agent went through tinyproxy"
        );
        Ok(())
    })
    .await;
}
