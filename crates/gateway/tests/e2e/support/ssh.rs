//! OpenSSH (ssh, scp, sftp) and PuTTY (plink) clients through proxytunnel, with the
//! host key pinned under the maint name (`HostKeyAlias`, `-hostkey`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

use super::harness::Harness;
use super::process::{self, Ran};
use super::proxytunnel::{Escape, ProxyTunnel};
use super::sshd::Sshd;
use super::tools;

/// The login user on the throwaway sshd: whoever runs the tests.
pub fn login_user() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(|| {
            std::process::Command::new("id")
                .arg("-un")
                .output()
                .ok()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        })
        .unwrap_or_else(|| "root".to_string())
}

/// SSH-family clients for one sshd, through one proxytunnel setup.
pub struct SshClients {
    pub pt: ProxyTunnel,
    key: PathBuf,
    ppk: Option<PathBuf>,
    host_key: String,
    fingerprint: String,
    dir: PathBuf,
    pub user: String,
}

impl SshClients {
    pub fn new(h: &Harness, pt: ProxyTunnel, sshd: &Sshd) -> Result<SshClients> {
        Ok(SshClients {
            pt,
            key: sshd.client_key.clone(),
            ppk: sshd.client_ppk.clone(),
            host_key: sshd.host_key.clone(),
            fingerprint: sshd.host_fingerprint.clone(),
            dir: h.subdir("ssh-client")?,
            user: login_user(),
        })
    }

    /// Options shared by ssh, scp and sftp for `dest` (`name:port`).
    fn options(&self, dest: &str) -> Result<Vec<String>> {
        let name = dest.rsplit_once(':').map_or(dest, |(n, _)| n);
        let known_hosts = self.dir.join(format!("known_hosts-{name}"));
        std::fs::write(&known_hosts, format!("{name} {}\n", self.host_key))?;
        Ok(vec![
            "-F".into(),
            "/dev/null".into(),
            "-o".into(),
            "BatchMode=yes".into(),
            "-o".into(),
            "IdentitiesOnly=yes".into(),
            "-i".into(),
            self.key.to_string_lossy().into_owned(),
            "-o".into(),
            format!("UserKnownHostsFile={}", known_hosts.display()),
            "-o".into(),
            "StrictHostKeyChecking=yes".into(),
            "-o".into(),
            format!("HostKeyAlias={name}"),
            "-o".into(),
            "ConnectTimeout=20".into(),
            format!("-oProxyCommand={}", self.pt.command_line(dest, Escape::Ssh)),
        ])
    }

    fn command(&self, program: &str) -> Result<std::process::Command> {
        let mut cmd = std::process::Command::new(tools::path_of(program)?);
        cmd.env("PATH", self.pt.path_env());
        Ok(cmd)
    }

    /// `ssh user@<name> -p 22 -oProxyCommand=... <remote command>` (any exit status).
    pub async fn ssh(&self, dest: &str, remote: &str, timeout: Duration) -> Result<Ran> {
        let (name, port) = split_dest(dest);
        let mut cmd = self.command("ssh")?;
        cmd.args(self.options(dest)?)
            .arg("-p")
            .arg(port)
            .arg(format!("{}@{name}", self.user))
            .arg(remote);
        process::run(cmd, timeout).await
    }

    /// `scp -P 22 ... <local> user@<name>:<remote>`.
    pub async fn scp_up(
        &self,
        dest: &str,
        local: &Path,
        remote: &Path,
        timeout: Duration,
    ) -> Result<Ran> {
        let (name, port) = split_dest(dest);
        let mut cmd = self.command("scp")?;
        cmd.arg("-q")
            .args(self.options(dest)?)
            .arg("-P")
            .arg(port)
            .arg(local)
            .arg(format!("{}@{name}:{}", self.user, remote.display()));
        process::run(cmd, timeout).await
    }

    /// `scp -P 22 ... user@<name>:<remote> <local>`.
    pub async fn scp_down(
        &self,
        dest: &str,
        remote: &Path,
        local: &Path,
        timeout: Duration,
    ) -> Result<Ran> {
        let (name, port) = split_dest(dest);
        let mut cmd = self.command("scp")?;
        cmd.arg("-q")
            .args(self.options(dest)?)
            .arg("-P")
            .arg(port)
            .arg(format!("{}@{name}:{}", self.user, remote.display()))
            .arg(local);
        process::run(cmd, timeout).await
    }

    /// `sftp -b <batch> ... user@<name>` with the given batch commands.
    pub async fn sftp_batch(&self, dest: &str, batch: &str, timeout: Duration) -> Result<Ran> {
        let (name, port) = split_dest(dest);
        let file = self.dir.join("sftp.batch");
        std::fs::write(&file, batch)?;
        let mut cmd = self.command("sftp")?;
        cmd.args(self.options(dest)?)
            .arg("-P")
            .arg(port)
            .arg("-b")
            .arg(&file)
            .arg(format!("{}@{name}", self.user));
        process::run(cmd, timeout).await
    }

    /// PuTTY's recipe: `plink -batch -ssh -P 22 -l user -i key.ppk -hostkey SHA256:..
    /// -proxycmd "proxytunnel ... --dest='<dest_template>'" <name> <remote>`; the host
    /// name is the maint name (PuTTY never proxies loopback names). `dest_template` is
    /// `%host:%port` or the manual's port-less `%host`.
    pub async fn plink(
        &self,
        name: &str,
        dest_template: &str,
        remote: &str,
        timeout: Duration,
    ) -> Result<Ran> {
        let ppk = self
            .ppk
            .as_ref()
            .context("no PuTTY key (puttygen missing)")?;
        let home = self.dir.join("putty-home");
        std::fs::create_dir_all(&home)?;
        let mut cmd = self.command("plink")?;
        cmd.env("HOME", &home)
            .args(["-batch", "-ssh", "-P", "22", "-l", &self.user, "-i"])
            .arg(ppk)
            .arg("-hostkey")
            .arg(&self.fingerprint)
            .arg("-proxycmd")
            .arg(self.pt.command_line(dest_template, Escape::Putty))
            .arg(name)
            .arg(remote);
        process::run(cmd, timeout).await
    }
}

/// `name:port` -> (`name`, `port`); a dest without a port means 22.
fn split_dest(dest: &str) -> (&str, &str) {
    match dest.rsplit_once(':') {
        Some((name, port)) => (name, port),
        None => (dest, "22"),
    }
}
