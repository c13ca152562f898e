//! tinyproxy on loopback with Basic auth: the site's only way out, for agents that
//! must reach comgate through an HTTP proxy.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;

use super::harness::Harness;
use super::net;
use super::ports::free_port;
use super::process::Proc;
use super::tools;

pub struct Tinyproxy {
    pub port: u16,
    pub user: String,
    pub pass: String,
    log: PathBuf,
    _proc: Proc,
}

impl Tinyproxy {
    /// Starts `tinyproxy -d -c <conf>` on 127.0.0.1:<free port>, allowing CONNECT only to
    /// `connect_ports`, with `BasicAuth user pass`.
    pub async fn start(
        h: &Harness,
        user: &str,
        pass: &str,
        connect_ports: &[u16],
    ) -> Result<Tinyproxy> {
        Self::start_with_hosts(h, user, pass, connect_ports, &[]).await
    }

    /// Like [`Tinyproxy::start`]; with `hosts` (name, address) non-empty, tinyproxy runs
    /// in a private mount namespace whose `/etc/hosts` has those lines: names only the
    /// proxy can resolve, as for a site whose LAN has no outside DNS.
    pub async fn start_with_hosts(
        h: &Harness,
        user: &str,
        pass: &str,
        connect_ports: &[u16],
        hosts: &[(&str, &str)],
    ) -> Result<Tinyproxy> {
        let dir = h.subdir("tinyproxy")?;
        let port = free_port();
        let log = dir.join("tinyproxy.log");
        let mut conf = format!(
            "Port {port}\n\
             Listen 127.0.0.1\n\
             Timeout 600\n\
             MaxClients 100\n\
             Allow 127.0.0.1\n\
             BasicAuth {user} {pass}\n\
             LogFile \"{log}\"\n\
             LogLevel Connect\n",
            log = log.display()
        );
        for p in connect_ports {
            conf.push_str(&format!("ConnectPort {p}\n"));
        }
        let conf_path = dir.join("tinyproxy.conf");
        std::fs::write(&conf_path, conf)?;
        let tinyproxy = tools::path_of("tinyproxy")?;
        let mut cmd = if hosts.is_empty() {
            std::process::Command::new(&tinyproxy)
        } else {
            let hosts_file = dir.join("hosts");
            let mut text = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            for (name, addr) in hosts {
                text.push_str(&format!("{addr} {name}\n"));
            }
            std::fs::write(&hosts_file, text)?;
            // unshare and sh both exec: the pid stays tinyproxy's.
            let mut cmd = std::process::Command::new(tools::path_of("unshare")?);
            cmd.args(["-m", "--", "/bin/sh", "-c"])
                .arg("mount --bind \"$0\" /etc/hosts && exec \"$@\"")
                .arg(&hosts_file)
                .arg(&tinyproxy);
            cmd
        };
        cmd.arg("-d").arg("-c").arg(&conf_path);
        let mut proc = Proc::spawn("tinyproxy", cmd, &dir.join("tinyproxy-stderr.log"))?;
        net::wait_proc_listens(&mut proc, port, Duration::from_secs(15)).await?;
        Ok(Tinyproxy {
            port,
            user: user.to_string(),
            pass: pass.to_string(),
            log,
            _proc: proc,
        })
    }

    /// `http://user:pass@127.0.0.1:<port>` for the agent's `proxy` key.
    pub fn url(&self) -> String {
        format!("http://{}:{}@127.0.0.1:{}", self.user, self.pass, self.port)
    }

    /// tinyproxy's log (it logs each request line, e.g. `CONNECT 127.0.0.1:1234`).
    pub fn log_text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }
}
