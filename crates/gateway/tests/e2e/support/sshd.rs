//! A throwaway OpenSSH server on 127.0.0.1 with its own host key and one authorised
//! client key (also converted for PuTTY when puttygen is there).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};

use super::harness::Harness;
use super::net;
use super::ports::free_port;
use super::process::{self, Proc};
use super::tools;

/// A running sshd and the client-side files that reach it.
pub struct Sshd {
    pub port: u16,
    /// OpenSSH private key of the authorised client.
    pub client_key: PathBuf,
    /// The same key for PuTTY (`None` without puttygen).
    pub client_ppk: Option<PathBuf>,
    /// `<type> <base64>` of the host key, for known_hosts lines.
    pub host_key: String,
    /// `SHA256:...` of the host key, for `plink -hostkey`.
    pub host_fingerprint: String,
    /// A directory the login user can write to: the "remote" side of transfers.
    pub remote_dir: PathBuf,
    _proc: Proc,
}

impl Sshd {
    /// Generates keys and starts `sshd -D -e` on 127.0.0.1:<free port>.
    pub async fn start(h: &Harness) -> Result<Sshd> {
        let dir = h.subdir("sshd")?;
        let port = free_port();
        let keygen = tools::path_of("ssh-keygen")?;
        for name in ["host_ed25519", "client_ed25519"] {
            let mut cmd = std::process::Command::new(&keygen);
            cmd.args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
                .arg(dir.join(name));
            process::run(cmd, Duration::from_secs(30)).await?.ok()?;
        }
        let client_ppk = match tools::find("puttygen") {
            Some(puttygen) => {
                let ppk = dir.join("client.ppk");
                let mut cmd = std::process::Command::new(puttygen);
                cmd.arg(dir.join("client_ed25519"))
                    .args(["-O", "private", "-o"])
                    .arg(&ppk);
                process::run(cmd, Duration::from_secs(30)).await?.ok()?;
                Some(ppk)
            }
            None => None,
        };
        let authorized = dir.join("authorized_keys");
        std::fs::copy(dir.join("client_ed25519.pub"), &authorized)?;
        let host_pub = std::fs::read_to_string(dir.join("host_ed25519.pub"))?;
        let host_key = host_pub
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        let mut cmd = std::process::Command::new(&keygen);
        cmd.args(["-l", "-E", "sha256", "-f"])
            .arg(dir.join("host_ed25519.pub"));
        let fp = process::run(cmd, Duration::from_secs(30)).await?.ok()?;
        let host_fingerprint = fp
            .stdout_text()
            .split_whitespace()
            .nth(1)
            .context("ssh-keygen -l printed no fingerprint")?
            .to_string();
        let remote_dir = dir.join("remote");
        std::fs::create_dir_all(&remote_dir)?;

        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\n\
                 ListenAddress 127.0.0.1\n\
                 HostKey {host}\n\
                 PidFile {pid}\n\
                 AuthorizedKeysFile {authorized}\n\
                 StrictModes no\n\
                 PubkeyAuthentication yes\n\
                 PasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\n\
                 PermitRootLogin prohibit-password\n\
                 UsePAM no\n\
                 MaxStartups 100\n\
                 MaxSessions 100\n\
                 Subsystem sftp internal-sftp\n\
                 LogLevel VERBOSE\n",
                host = dir.join("host_ed25519").display(),
                pid = dir.join("sshd.pid").display(),
                authorized = authorized.display(),
            ),
        )?;
        // Debian's sshd refuses to start as root without its privilege-separation dir.
        let _ = std::fs::create_dir_all("/run/sshd");
        let sshd = tools::path_of("sshd")?;
        let mut test = std::process::Command::new(&sshd);
        test.arg("-t").arg("-f").arg(&config);
        process::run(test, Duration::from_secs(30)).await?.ok()?;
        let mut cmd = std::process::Command::new(&sshd);
        cmd.args(["-D", "-e", "-f"]).arg(&config);
        let mut proc = Proc::spawn("sshd", cmd, &dir.join("sshd.log"))?;
        net::wait_proc_listens(&mut proc, port, Duration::from_secs(15)).await?;
        Ok(Sshd {
            port,
            client_key: dir.join("client_ed25519"),
            client_ppk,
            host_key,
            host_fingerprint,
            remote_dir,
            _proc: proc,
        })
    }
}
