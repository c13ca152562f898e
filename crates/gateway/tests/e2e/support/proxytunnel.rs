//! proxytunnel as the manual uses it: the ProxyCommand of ssh/scp/sftp, PuTTY's local
//! proxy command, and `--standalone` for RDP-style port forwards.
//!
//! proxytunnel has no resolve option, so the proxy name `maint.<domain>` is reached in
//! one of two ways (CLIENTS.md, "Names and trust"):
//! - [`NameMode::Ns`]: a `proxytunnel` wrapper first in `PATH` runs the real one in a
//!   private mount namespace whose `/etc/hosts` maps the name to 127.0.0.1 (root and
//!   `unshare -m` needed). The name is verified against the certificate as in real use,
//!   and the client command lines stay verbatim.
//! - [`NameMode::Ip`]: `--proxy=127.0.0.1:<port>`; the generated certificate carries
//!   127.0.0.1 as an IP SAN, and the SNI becomes the IP literal.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

use super::comgate::Gateway;
use super::connect::Creds;
use super::harness::Harness;
use super::net;
use super::process::{without_proxy_env, Proc};
use super::tools;
use super::MAINT_HOST;

/// How proxytunnel reaches the proxy name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameMode {
    Ns,
    Ip,
}

/// How a command line is escaped for the program that runs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Escape {
    /// ssh's ProxyCommand: `%` must be `%%`.
    Ssh,
    /// PuTTY's local proxy command: `\` and `%` must be doubled.
    Putty,
}

/// proxytunnel set up for one gateway and one account.
pub struct ProxyTunnel {
    pub mode: NameMode,
    /// Directory to put first in `PATH` (holds the wrapper in [`NameMode::Ns`]).
    pub bin_dir: PathBuf,
    /// The `--proxy` value.
    pub proxy: String,
    pub creds: Creds,
    pub ca: PathBuf,
}

/// Single-quotes for /bin/sh.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn escape(s: &str, esc: Escape) -> String {
    match esc {
        Escape::Ssh => s.replace('%', "%%"),
        Escape::Putty => s.replace('\\', r"\\").replace('%', "%%"),
    }
}

impl ProxyTunnel {
    /// Prepares proxytunnel for `gw` with `creds` in `mode`.
    pub fn new(h: &Harness, gw: &Gateway, creds: &Creds, mode: NameMode) -> Result<ProxyTunnel> {
        Self::for_proxy(h, gw.port, &gw.ca(), creds, mode)
    }

    /// Prepares proxytunnel for the front door on 127.0.0.1:`port` whose certificate
    /// `ca` signs.
    pub fn for_proxy(
        h: &Harness,
        port: u16,
        ca: &Path,
        creds: &Creds,
        mode: NameMode,
    ) -> Result<ProxyTunnel> {
        let real = tools::path_of("proxytunnel")?;
        let bin_dir = h.subdir("bin")?;
        let mode = if mode == NameMode::Ns && !tools::can_unshare_mount() {
            eprintln!(
                "note: `unshare -m` not permitted; proxytunnel uses --proxy=127.0.0.1:{port}"
            );
            NameMode::Ip
        } else {
            mode
        };
        let proxy = match mode {
            NameMode::Ip => format!("127.0.0.1:{port}"),
            NameMode::Ns => {
                let hosts = bin_dir.join("hosts");
                let mut text = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
                if !text.ends_with('\n') && !text.is_empty() {
                    text.push('\n');
                }
                text.push_str(&format!("127.0.0.1 {MAINT_HOST}\n"));
                std::fs::write(&hosts, text)?;
                let wrapper = bin_dir.join("proxytunnel");
                std::fs::write(
                    &wrapper,
                    format!(
                        "#!/bin/sh\n\
                         exec unshare -m -- /bin/sh -c 'mount --bind \"$0\" /etc/hosts && exec {real} \"$@\"' {hosts} \"$@\"\n",
                        real = real.display(),
                        hosts = sh_quote(&hosts.to_string_lossy()),
                    ),
                )?;
                std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))?;
                format!("{MAINT_HOST}:{port}")
            }
        };
        Ok(ProxyTunnel {
            mode,
            bin_dir,
            proxy,
            creds: creds.clone(),
            ca: ca.to_path_buf(),
        })
    }

    /// `PATH` with [`ProxyTunnel::bin_dir`] first.
    pub fn path_env(&self) -> OsString {
        let mut parts = vec![self.bin_dir.clone()];
        if let Some(path) = std::env::var_os("PATH") {
            parts.extend(std::env::split_paths(&path));
        }
        std::env::join_paths(parts).unwrap_or_default()
    }

    /// The manual's command line `proxytunnel -E --proxy=.. --dest='..' -P 'u:p' -C '..'`
    /// as one shell string, escaped for the program that will run it. `dest` is passed
    /// as given (so `%host:%port` stays a PuTTY placeholder).
    pub fn command_line(&self, dest: &str, esc: Escape) -> String {
        format!(
            "proxytunnel -E --proxy={} --dest={} -P {} -C {}",
            self.proxy,
            sh_quote(dest),
            sh_quote(&escape(&self.creds.joined(), esc)),
            sh_quote(&escape(&self.ca.to_string_lossy(), esc)),
        )
    }

    /// A command running proxytunnel itself (through the wrapper in ns mode) with
    /// `-E --proxy -P -C` set and `extra` arguments after them.
    pub fn command(&self, extra: &[String]) -> std::process::Command {
        let program: PathBuf = match self.mode {
            NameMode::Ns => self.bin_dir.join("proxytunnel"),
            NameMode::Ip => tools::find("proxytunnel").unwrap_or_else(|| "proxytunnel".into()),
        };
        let mut cmd = std::process::Command::new(program);
        cmd.arg("-E")
            .arg(format!("--proxy={}", self.proxy))
            .arg("-P")
            .arg(self.creds.joined())
            .arg("-C")
            .arg(&self.ca)
            .args(extra);
        without_proxy_env(&mut cmd);
        cmd
    }

    /// `proxytunnel --standalone=<port> ... --dest=<dest>`, the manual's RDP recipe,
    /// waited for through `/proc/net/tcp` (a probe connection would open a tunnel).
    /// proxytunnel binds 0.0.0.0, forks per connection and logs only to syslog.
    pub async fn standalone(&self, dir: &Path, dest: &str, port: u16) -> Result<Proc> {
        let cmd = self.command(&[format!("--standalone={port}"), format!("--dest={dest}")]);
        let log = dir.join(format!("standalone-{port}.log"));
        let mut proc = Proc::spawn("proxytunnel --standalone", cmd, &log)?;
        net::wait_proc_listens(&mut proc, port, Duration::from_secs(15))
            .await
            .context("proxytunnel --standalone did not start listening")?;
        Ok(proc)
    }
}
