//! OpenSSH through `proxytunnel -E` as ProxyCommand (the manual's Linux recipe with
//! `-C ca.pem`) to a throwaway sshd behind the site agent.

use anyhow::ensure;

use crate::support::files::{random_file, sha256_file, MIB};
use crate::support::proxytunnel::NameMode;
use crate::support::site::{SshSite, CUSTOMER, SYSTEM};
use crate::support::{run, secs, Harness};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn openssh_through_proxytunnel_runs_remote_command() {
    run(|h: Harness| async move {
        require_tools!("ssh", "sshd", "ssh-keygen", "proxytunnel");
        let site = SshSite::start(&h, NameMode::Ns).await?;
        let out = site
            .clients
            .ssh(
                &site.dest(),
                "echo hello-from-site; echo second-line",
                secs(60),
            )
            .await?
            .ok()?;
        let stdout = out.stdout_text();
        ensure!(
            stdout.contains("hello-from-site") && stdout.contains("second-line"),
            "remote command output missing:\n{}",
            out.describe()
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scp_moves_50mb_each_way_with_matching_sha256() {
    run(|h: Harness| async move {
        require_tools!("ssh", "scp", "sshd", "ssh-keygen", "proxytunnel");
        let site = SshSite::start(&h, NameMode::Ns).await?;
        let dest = site.dest();
        let local = h.subdir("local")?;

        // Up: a local file to the site.
        let up_src = local.join("up.bin");
        let up_sha = random_file(&up_src, 50 * MIB)?;
        let up_remote = site.sshd.remote_dir.join("up.bin");
        site.clients
            .scp_up(&dest, &up_src, &up_remote, secs(180))
            .await?
            .ok()?;
        ensure!(
            sha256_file(&up_remote)? == up_sha,
            "the uploaded file differs at the site"
        );

        // Down: another file from the site.
        let down_remote = site.sshd.remote_dir.join("down.bin");
        let down_sha = random_file(&down_remote, 50 * MIB)?;
        let down_dst = local.join("down.bin");
        site.clients
            .scp_down(&dest, &down_remote, &down_dst, secs(180))
            .await?
            .ok()?;
        ensure!(
            sha256_file(&down_dst)? == down_sha,
            "the downloaded file differs from the site's"
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sftp_batch_lists_and_fetches_through_ip_literal_proxy() {
    run(|h: Harness| async move {
        require_tools!("ssh", "sftp", "sshd", "ssh-keygen", "proxytunnel");
        // `--proxy=127.0.0.1:<port>`: the certificate's IP SAN, SNI is the IP literal.
        let site = SshSite::start(&h, NameMode::Ip).await?;
        let remote = &site.sshd.remote_dir;
        std::fs::write(remote.join("alpha-report.txt"), "alpha\n")?;
        std::fs::write(remote.join("beta-config.xml"), "<beta/>\n")?;
        let fetched = h.subdir("fetched")?.join("alpha.txt");
        let batch = format!(
            "ls -l {dir}\nget {dir}/alpha-report.txt {dst}\n",
            dir = remote.display(),
            dst = fetched.display()
        );
        let out = site
            .clients
            .sftp_batch(&site.dest(), &batch, secs(60))
            .await?
            .ok()?;
        let listing = out.stdout_text();
        ensure!(
            listing.contains("alpha-report.txt") && listing.contains("beta-config.xml"),
            "sftp listing lacks the site's files:\n{}",
            out.describe()
        );
        ensure!(
            std::fs::read_to_string(&fetched)? == "alpha\n",
            "sftp get fetched the wrong content"
        );
        // The primary-system form reaches the same sshd.
        let primary = format!("{CUSTOMER}.maint.example.test:22");
        let out = site
            .clients
            .sftp_batch(&primary, &format!("ls {}\n", remote.display()), secs(60))
            .await?
            .ok()?;
        ensure!(
            out.stdout_text().contains("beta-config.xml"),
            "sftp to the primary form {primary} (system {SYSTEM}) listed nothing:\n{}",
            out.describe()
        );
        Ok(())
    })
    .await;
}
