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
        let mut cmd = std::process::Command::new(tools::path_of("tinyproxy")?);
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
