//! PuTTY's `plink` with the manual's local proxy command (host name = the maint name,
//! `proxytunnel ... --dest='%host:%port'`), and the manual's port-less variant.

use anyhow::ensure;

use crate::support::maint_name;
use crate::support::proxytunnel::NameMode;
use crate::support::site::{SshSite, CUSTOMER, SYSTEM};
use crate::support::{run, secs, Harness};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn plink_proxycmd_runs_remote_command() {
    run(|h: Harness| async move {
        require_tools!("plink", "puttygen", "sshd", "ssh-keygen", "proxytunnel");
        let site = SshSite::start(&h, NameMode::Ns).await?;
        let name = maint_name(CUSTOMER, Some(SYSTEM), None);
        let out = site
            .clients
            .plink(&name, "%host:%port", "echo plink-reached-site", secs(60))
            .await?
            .ok()?;
        ensure!(
            out.stdout_text().contains("plink-reached-site"),
            "plink output missing:\n{}",
            out.describe()
        );
        Ok(())
    })
    .await;
}

/// The manual's PuTTY recipe has `--dest="<name>"` without a port; proxytunnel sends
/// `CONNECT <name> HTTP/1.1`, which must mean port 22.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn plink_portless_dest_reaches_port_22() {
    run(|h: Harness| async move {
        require_tools!("plink", "puttygen", "sshd", "ssh-keygen", "proxytunnel");
        let site = SshSite::start(&h, NameMode::Ns).await?;
        let name = maint_name(CUSTOMER, Some(SYSTEM), None);
        let out = site
            .clients
            .plink(&name, "%host", "echo portless-ok", secs(60))
            .await?
            .ok()?;
        ensure!(
            out.stdout_text().contains("portless-ok"),
            "plink output missing:\n{}",
            out.describe()
        );
        Ok(())
    })
    .await;
}
