//! The remote-support addresses the admin plane shows for a system
//! (`admin::remote_support`, filled in from the serve config by
//! `ServeConfig::remote_support_deployment`) work as given: each command is
//! run by /bin/sh exactly as generated, only the `<placeholders>` that the
//! engineer fills in replaced (and, for ssh, the test's own key and
//! known-hosts options appended after it), through the running comgate to a
//! real sshd and a co-located echo server.

use std::net::SocketAddr;

use admin::remote_support::{addresses, Addresses, RemoteSupport, SystemRef};
use anyhow::{ensure, Context, Result};
use tokio::net::TcpStream;

use crate::support::files::{echo_roundtrip, MIB};
use crate::support::net;
use crate::support::ports::free_port;
use crate::support::process::{self, Proc};
use crate::support::proxytunnel::{sh_quote, NameMode};
use crate::support::site::{SshSite, CUSTOMER, SYSTEM};
use crate::support::targets::{echo, lo};
use crate::support::{run, secs, tools, Harness};

/// The addresses of 12345/ipo1 (the primary system) as the admin plane
/// would show them to the reseller's engineers.
fn site_addresses(site: &SshSite) -> Result<Addresses> {
    let cfg = gateway::config::ServeConfig::load(&site.tenant.gw.config)?;
    let system = SystemRef {
        customer_id: CUSTOMER,
        label: SYSTEM,
        is_primary: true,
        proxy_username: Some(&site.tenant.creds.user),
    };
    match addresses(&cfg.remote_support_deployment(), &system, true) {
        RemoteSupport::Enabled(a) => Ok(*a),
        other => anyhow::bail!("no addresses: {other:?}"),
    }
}

/// Runs `command` with /bin/sh, proxytunnel's wrapper first in PATH.
async fn sh(site: &SshSite, command: &str) -> Result<process::Ran> {
    let mut cmd = std::process::Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(command)
        .env("PATH", site.clients.pt.path_env());
    process::without_proxy_env(&mut cmd);
    process::run(cmd, secs(60)).await
}

/// The ssh options of the test's own client (appended after the command).
fn ssh_client_options(h: &Harness, site: &SshSite) -> Result<String> {
    let known_hosts = h.subdir("remote-support")?.join("known_hosts");
    // The manual's `<external-server-ip-address>`: where sshd really runs.
    std::fs::write(&known_hosts, format!("127.0.0.1 {}\n", site.sshd.host_key))?;
    Ok(format!(
        "-o BatchMode=yes -o IdentitiesOnly=yes -i {} -o UserKnownHostsFile={} -o StrictHostKeyChecking=yes",
        sh_quote(&site.sshd.client_key.to_string_lossy()),
        sh_quote(&known_hosts.to_string_lossy()),
    ))
}

fn fill(template: &str, site: &SshSite, proxytunnel: &str) -> String {
    template
        .replace("<user-name>", &site.clients.user)
        .replace("<external-server-ip-address>", "127.0.0.1")
        .replace("<proxy-password>", &site.tenant.creds.pass)
        .replace("<full-path-to-proxytunnel.exe>", proxytunnel)
        .replace(
            "<full-path-to-comgate-ca.pem>",
            &site.tenant.gw.ca().to_string_lossy(),
        )
}

async fn start(h: &Harness, colocated: Option<SocketAddr>) -> Result<SshSite> {
    let site = SshSite::start_with(h, NameMode::Ns, &Default::default(), |c| match colocated {
        Some(addr) => c.tunnel("RDP", addr),
        None => c,
    })
    .await?;
    // The commands name maint.<domain> as the proxy: only the private
    // /etc/hosts of the namespace wrapper resolves it here.
    ensure!(
        site.clients.pt.mode == NameMode::Ns,
        "unshare -m is not permitted: the generated commands name the proxy by its maint name"
    );
    Ok(site)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn generated_linux_and_windows_ssh_commands_reach_the_system() {
    run(|h: Harness| async move {
        require_tools!("ssh", "sshd", "ssh-keygen", "proxytunnel");
        let site = start(&h, None).await?;
        let a = site_addresses(&site)?;
        let options = ssh_client_options(&h, &site)?;
        // The Windows form differs in where proxytunnel lives: a full path.
        let proxytunnel = site.clients.pt.bin_dir.join("proxytunnel");
        for (form, template) in [("Linux", &a.linux_ssh), ("Windows", &a.windows_ssh)] {
            let command = format!(
                "{} {options} 'echo reached-$((6*7))'",
                fill(template, &site, &proxytunnel.to_string_lossy())
            );
            ensure!(!command.contains('<'), "a placeholder is left: {command}");
            let out = sh(&site, &command).await?;
            ensure!(
                out.success() && out.stdout_text().contains("reached-42"),
                "{form} ssh command failed:\n{command}\n{}",
                out.describe()
            );
        }
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn generated_putty_host_name_and_proxy_command_work_with_plink() {
    run(|h: Harness| async move {
        require_tools!("plink", "puttygen", "sshd", "ssh-keygen", "proxytunnel");
        let site = start(&h, None).await?;
        let a = site_addresses(&site)?;
        let ppk = site.sshd.client_ppk.clone().context("no PuTTY key")?;
        let home = h.subdir("putty-home")?;
        // PuTTY runs the local proxy command through /bin/sh; it expands
        // `%` and `\` itself, and the command has neither.
        let proxy_command = fill(&a.linux_putty_proxy_command, &site, "");
        ensure!(!proxy_command.contains('<'), "{proxy_command}");
        let mut cmd = std::process::Command::new(tools::path_of("plink")?);
        cmd.env("HOME", &home)
            .env("PATH", site.clients.pt.path_env())
            .args(["-batch", "-ssh", "-P", "22", "-l", &site.clients.user, "-i"])
            .arg(&ppk)
            .arg("-hostkey")
            .arg(&site.sshd.host_fingerprint)
            .arg("-proxycmd")
            .arg(&proxy_command)
            .arg(&a.linux_putty_host_name)
            .arg("echo putty-reached");
        process::without_proxy_env(&mut cmd);
        let out = process::run(cmd, secs(60)).await?;
        ensure!(
            out.success() && out.stdout_text().contains("putty-reached"),
            "plink with the generated host name and proxy command failed:\n{}",
            out.describe()
        );
        ensure!(
            a.windows_putty_host_name == a.linux_putty_host_name,
            "one host name for both"
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn generated_rdp_standalone_command_reaches_a_co_located_server() {
    run(|h: Harness| async move {
        require_tools!("sshd", "ssh-keygen", "proxytunnel");
        // RDP's port, on an address of its own so parallel tests do not meet.
        let server = echo(lo(93), 3389).await?;
        let site = start(&h, Some(server.addr)).await?;
        let a = site_addresses(&site)?;
        let local_port = free_port();
        let command = fill(&a.rdp_standalone, &site, "proxytunnel")
            .replace("<free-port-on-local-host>", &local_port.to_string())
            .replace(
                "<co-located-server-ip-address>",
                &server.addr.ip().to_string(),
            );
        ensure!(!command.contains('<'), "{command}");
        let mut cmd = std::process::Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(format!("exec {command}"))
            .env("PATH", site.clients.pt.path_env());
        process::without_proxy_env(&mut cmd);
        let mut standalone = Proc::spawn(
            "generated RDP command",
            cmd,
            &h.path().join("rdp-standalone.log"),
        )?;
        net::wait_proc_listens(&mut standalone, local_port, secs(15))
            .await
            .context("the generated --standalone command did not listen")?;
        let conn = TcpStream::connect(("127.0.0.1", local_port)).await?;
        echo_roundtrip(conn, Vec::new(), MIB, secs(60)).await?;
        ensure!(
            server.accepted() == 1,
            "the co-located server saw {}",
            server.accepted()
        );
        Ok(())
    })
    .await;
}
