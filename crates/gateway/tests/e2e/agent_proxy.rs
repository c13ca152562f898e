//! A site whose only way out is its own HTTP proxy (tinyproxy with Basic auth): the
//! agent tunnels its websocket through the proxy's CONNECT.

use anyhow::ensure;

use crate::support::proxytunnel::NameMode;
use crate::support::site::{SshSite, Tenant};
use crate::support::tinyproxy::Tinyproxy;
use crate::support::{run, secs, Harness};

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
