//! Driving the product through its command-line contract: `comgate serve`,
//! `comgate admin ...` and `comgate agent`, each with a TOML file written here.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use super::audit::{self, AuditEvent};
use super::harness::Harness;
use super::net;
use super::ports::free_port;
use super::process::{self, without_proxy_env, Proc, Ran, ThreadStat};
use super::{millis, secs, DOMAIN};

/// How long serve gets to generate its certificates and open both ports.
const SERVE_READY: Duration = Duration::from_secs(30);
/// How long an agent gets to report `connected`.
const AGENT_READY: Duration = Duration::from_secs(20);
/// How long one `comgate admin` command may take.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Path of the binary under test.
pub fn comgate_bin() -> &'static str {
    env!("CARGO_BIN_EXE_comgate")
}

/// A `comgate` command with the environment every run gets: info logs (so `connected`
/// and `tunnel closed` are printed; `E2E_RUST_LOG` overrides), no colours, no proxy.
pub fn comgate_command() -> std::process::Command {
    let mut cmd = std::process::Command::new(comgate_bin());
    let filter = std::env::var("E2E_RUST_LOG").unwrap_or_else(|_| "info".to_string());
    cmd.env("RUST_LOG", filter).env("NO_COLOR", "1");
    without_proxy_env(&mut cmd);
    cmd
}

/// Extra `key = value` lines for serve's top level and its `[gateway]`, `[agents]`
/// and `[central]` tables (limits).
#[derive(Default, Clone)]
pub struct GatewayOptions {
    pub top: Vec<String>,
    pub gateway: Vec<String>,
    pub agents: Vec<String>,
    pub central: Vec<String>,
}

impl GatewayOptions {
    /// Adds `key = value` (value written as TOML) at the top level.
    pub fn top(mut self, key: &str, value: impl std::fmt::Display) -> Self {
        self.top.push(format!("{key} = {value}"));
        self
    }

    /// Adds `key = value` (value written as TOML, e.g. `500` or `"x"`) to `[gateway]`.
    pub fn gateway(mut self, key: &str, value: impl std::fmt::Display) -> Self {
        self.gateway.push(format!("{key} = {value}"));
        self
    }

    /// Adds `key = value` to `[agents]`.
    pub fn agents(mut self, key: &str, value: impl std::fmt::Display) -> Self {
        self.agents.push(format!("{key} = {value}"));
        self
    }

    /// Adds `key = value` to `[central]` (the central-management proxy).
    pub fn central(mut self, key: &str, value: impl std::fmt::Display) -> Self {
        self.central.push(format!("{key} = {value}"));
        self
    }
}

/// One `comgate serve` with its own data directory and ports.
pub struct Gateway {
    h: Harness,
    pub data_dir: PathBuf,
    pub config: PathBuf,
    /// The TLS CONNECT front door (`[gateway] listen`).
    pub port: u16,
    /// The agent listener (`[agents] listen`).
    pub agent_port: u16,
    /// The central-management proxy (`[central] listen`; 8443 in production).
    pub central_port: u16,
    /// The admin listener (`[admin] listen`): PAC file and other public downloads.
    pub admin_port: u16,
    log: PathBuf,
    proc: Option<Proc>,
}

impl Gateway {
    /// Starts serve with the given extra config lines and waits until both ports accept.
    pub async fn start_with(h: &Harness, opts: &GatewayOptions) -> Result<Gateway> {
        let dir = h.subdir("comgate")?;
        let data_dir = dir.join("data");
        let port = free_port();
        let agent_port = free_port();
        let central_port = free_port();
        let admin_port = free_port();
        let mut toml = String::new();
        writeln!(toml, "domain = \"{DOMAIN}\"")?;
        writeln!(toml, "data_dir = \"{}\"", data_dir.display())?;
        for line in &opts.top {
            writeln!(toml, "{line}")?;
        }
        writeln!(toml, "\n[gateway]\nlisten = \"127.0.0.1:{port}\"")?;
        for line in &opts.gateway {
            writeln!(toml, "{line}")?;
        }
        writeln!(toml, "\n[agents]\nlisten = \"127.0.0.1:{agent_port}\"")?;
        for line in &opts.agents {
            writeln!(toml, "{line}")?;
        }
        writeln!(toml, "\n[admin]\nlisten = \"127.0.0.1:{admin_port}\"")?;
        writeln!(toml, "\n[central]\nlisten = \"127.0.0.1:{central_port}\"")?;
        for line in &opts.central {
            writeln!(toml, "{line}")?;
        }
        let config = dir.join("comgate.toml");
        std::fs::write(&config, toml)?;
        let mut gw = Gateway {
            h: h.clone(),
            data_dir,
            config,
            port,
            agent_port,
            central_port,
            admin_port,
            log: dir.join("serve.log"),
            proc: None,
        };
        gw.spawn().await?;
        Ok(gw)
    }

    async fn spawn(&mut self) -> Result<()> {
        let mut cmd = comgate_command();
        cmd.arg("serve").arg("--config").arg(&self.config);
        let mut proc = Proc::spawn("comgate serve", cmd, &self.log)?;
        let deadline = Instant::now() + SERVE_READY;
        loop {
            if !proc.is_running() {
                bail!(
                    "comgate serve exited during start-up:\n{}",
                    proc.log_tail(30)
                );
            }
            if net::accepts(self.addr()).await
                && net::accepts(self.agent_addr()).await
                && net::accepts(self.central_addr()).await
                && net::accepts(self.admin_addr()).await
                && self.ca().exists()
            {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "comgate serve not ready after {SERVE_READY:?} (ports {} and {}, {}):\n{}",
                    self.port,
                    self.agent_port,
                    self.ca().display(),
                    proc.log_tail(30)
                );
            }
            tokio::time::sleep(millis(100)).await;
        }
        self.proc = Some(proc);
        Ok(())
    }

    /// Stops serve (SIGTERM, then SIGKILL after 5 s).
    pub async fn stop(&mut self) {
        if let Some(mut proc) = self.proc.take() {
            proc.terminate(secs(5)).await;
        }
    }

    /// Stops and starts serve again with the same config, data directory and ports.
    pub async fn restart(&mut self) -> Result<()> {
        self.stop().await;
        self.spawn().await
    }

    /// The admin listener on 127.0.0.1.
    pub fn admin_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.admin_port))
    }

    /// The PAC file's URL as partners use it (`admin.<domain>` must resolve to
    /// 127.0.0.1 for the client).
    pub fn pac_url(&self) -> String {
        format!(
            "https://admin.{DOMAIN}:{}/com/remoteproxy/proxy.pac",
            self.admin_port
        )
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn agent_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.agent_port))
    }

    pub fn central_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.central_port))
    }

    /// The gateway's database, opened as a second process would (the
    /// default SQLite file in `data_dir`).
    pub async fn store(&self) -> Result<admin::Store> {
        Ok(admin::Store::open_sqlite(&self.data_dir.join("comgate.db")).await?)
    }

    /// The generated CA (`data_dir/ca.pem`) that clients trust.
    pub fn ca(&self) -> PathBuf {
        self.data_dir.join("ca.pem")
    }

    /// Threads of the running serve named `name` (as the kernel shows them:
    /// tokio's workers are `tokio-rt-worker`).
    pub fn threads_named(&self, name: &str) -> Result<usize> {
        Ok(self
            .thread_cpu_ticks()?
            .iter()
            .filter(|(comm, _)| comm == name)
            .count())
    }

    /// Each of serve's threads: its name (`comm`, site threads numbered:
    /// `comgate-site-0`) and the CPU time it has used (user + system, in
    /// clock ticks).
    pub fn thread_cpu_ticks(&self) -> Result<Vec<(String, u64)>> {
        Ok(self
            .threads()?
            .into_iter()
            .map(|t| (t.name, t.cpu_ticks))
            .collect())
    }

    /// Each of serve's threads, from `/proc`.
    pub fn threads(&self) -> Result<Vec<ThreadStat>> {
        self.proc
            .as_ref()
            .context("serve is not running")?
            .threads()
    }

    /// The whole serve log so far (all runs), colours stripped.
    pub fn log_text(&self) -> String {
        audit::strip_ansi(&String::from_utf8_lossy(
            &std::fs::read(&self.log).unwrap_or_default(),
        ))
    }

    /// Every `tunnel closed` audit event so far.
    pub fn audit_events(&self) -> Vec<AuditEvent> {
        audit::tunnel_closed_events(&self.log_text())
    }

    /// Waits for an audit event matching `pred`.
    pub async fn wait_audit(
        &self,
        pred: impl Fn(&AuditEvent) -> bool,
        timeout: Duration,
    ) -> Result<AuditEvent> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(ev) = self.audit_events().into_iter().find(&pred) {
                return Ok(ev);
            }
            if Instant::now() > deadline {
                bail!(
                    "no matching `tunnel closed` event within {timeout:?}; events seen:\n{}",
                    self.audit_events()
                        .iter()
                        .map(|e| e.line.as_str())
                        .collect::<Vec<_>>()
                        .join("\n")
                );
            }
            tokio::time::sleep(millis(100)).await;
        }
    }

    /// Runs `comgate admin --config FILE <args>`, whatever its exit status.
    pub async fn admin_raw(&self, args: &[&str]) -> Result<Ran> {
        let mut cmd = comgate_command();
        cmd.arg("admin")
            .arg("--config")
            .arg(&self.config)
            .args(args);
        process::run(cmd, ADMIN_TIMEOUT).await
    }

    /// Runs `comgate admin ...` and requires exit status 0.
    pub async fn admin(&self, args: &[&str]) -> Result<Ran> {
        self.admin_raw(args).await?.ok()
    }

    /// `proxy-account set --owner OWNER --username U --password P`.
    pub async fn proxy_account(&self, owner: &str, user: &str, pass: &str) -> Result<()> {
        self.admin(&[
            "proxy-account",
            "set",
            "--owner",
            owner,
            "--username",
            user,
            "--password",
            pass,
        ])
        .await?;
        Ok(())
    }

    /// `customer add --id ID --name NAME --reseller R [--provider P]`.
    pub async fn customer(
        &self,
        id: &str,
        name: &str,
        reseller: &str,
        provider: Option<&str>,
    ) -> Result<()> {
        let mut args = vec![
            "customer",
            "add",
            "--id",
            id,
            "--name",
            name,
            "--reseller",
            reseller,
        ];
        if let Some(p) = provider {
            args.extend(["--provider", p]);
        }
        self.admin(&args).await?;
        Ok(())
    }

    /// `system add --customer ID --name NAME [--primary]`; returns the agent secret (the
    /// last line of standard output).
    pub async fn system(&self, customer: &str, name: &str, primary: bool) -> Result<String> {
        let mut args = vec!["system", "add", "--customer", customer, "--name", name];
        if primary {
            args.push("--primary");
        }
        let ran = self.admin(&args).await?;
        let stdout = ran.stdout_text();
        let secret = stdout
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty())
            .unwrap_or("")
            .to_string();
        ensure!(
            !secret.is_empty() && !secret.contains(char::is_whitespace),
            "`system add` did not print the agent secret alone on its last line:\n{stdout}"
        );
        Ok(secret)
    }

    /// The harness this gateway belongs to.
    pub fn harness(&self) -> &Harness {
        &self.h
    }
}

/// One `[[tunnels]]` entry of an agent config.
#[derive(Clone, Debug)]
pub struct TunnelEntry {
    pub application: String,
    pub server_ip: String,
    pub server_port: u16,
}

/// An agent's TOML, built field by field.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    pub customer: String,
    pub system: String,
    pub secret: String,
    pub remote_access: bool,
    pub colocated_servers: bool,
    pub centralized_management: bool,
    /// `proxy = "http://user:pass@host:port"`.
    pub proxy: Option<String>,
    /// Overrides `gateway = "wss://127.0.0.1:<agent port>"`.
    pub gateway_url: Option<String>,
    /// Environment variables of the agent process (e.g. `HTTPS_PROXY`).
    pub env: Vec<(String, String)>,
    /// `[ports]`: the system's own service port -> local address.
    pub ports: Vec<(u16, SocketAddr)>,
    pub tunnels: Vec<TunnelEntry>,
    /// Further top-level `key = value` lines, as written.
    pub lines: Vec<String>,
}

impl AgentConfig {
    /// Remote Access and Co-located Servers on, Centralized Management off, no ports
    /// mapped, no tunnels.
    pub fn new(customer: &str, system: &str, secret: &str) -> Self {
        AgentConfig {
            customer: customer.to_string(),
            system: system.to_string(),
            secret: secret.to_string(),
            remote_access: true,
            colocated_servers: true,
            centralized_management: false,
            proxy: None,
            gateway_url: None,
            env: Vec::new(),
            ports: Vec::new(),
            tunnels: Vec::new(),
            lines: Vec::new(),
        }
    }

    /// Adds a top-level `key = value` line (`value` as TOML, quoted if a string).
    pub fn line(mut self, key: &str, value: impl std::fmt::Display) -> Self {
        self.lines.push(format!("{key} = {value}"));
        self
    }

    /// Maps the system's own `port` to `local`.
    pub fn port(mut self, port: u16, local: SocketAddr) -> Self {
        self.ports.push((port, local));
        self
    }

    /// Lists a co-located server as a tunnel.
    pub fn tunnel(mut self, application: &str, server: SocketAddr) -> Self {
        self.tunnels.push(TunnelEntry {
            application: application.to_string(),
            server_ip: server.ip().to_string(),
            server_port: server.port(),
        });
        self
    }

    pub fn remote_access(mut self, on: bool) -> Self {
        self.remote_access = on;
        self
    }

    pub fn colocated_servers(mut self, on: bool) -> Self {
        self.colocated_servers = on;
        self
    }

    pub fn centralized_management(mut self, on: bool) -> Self {
        self.centralized_management = on;
        self
    }

    pub fn proxy(mut self, url: &str) -> Self {
        self.proxy = Some(url.to_string());
        self
    }

    fn to_toml(&self, url: &str, ca: &Path) -> Result<String> {
        let mut t = String::new();
        writeln!(t, "gateway = \"{url}\"")?;
        writeln!(t, "ca = \"{}\"", ca.display())?;
        writeln!(t, "customer = \"{}\"", self.customer)?;
        writeln!(t, "system = \"{}\"", self.system)?;
        writeln!(t, "secret = \"{}\"", self.secret)?;
        writeln!(t, "remote_access = {}", self.remote_access)?;
        writeln!(t, "colocated_servers = {}", self.colocated_servers)?;
        writeln!(
            t,
            "centralized_management = {}",
            self.centralized_management
        )?;
        if let Some(p) = &self.proxy {
            writeln!(t, "proxy = \"{p}\"")?;
        }
        for line in &self.lines {
            writeln!(t, "{line}")?;
        }
        if !self.ports.is_empty() {
            writeln!(t, "\n[ports]")?;
            for (port, local) in &self.ports {
                writeln!(t, "{port} = \"{local}\"")?;
            }
        }
        for tunnel in &self.tunnels {
            writeln!(t, "\n[[tunnels]]")?;
            writeln!(t, "application = \"{}\"", tunnel.application)?;
            writeln!(t, "server_ip = \"{}\"", tunnel.server_ip)?;
            writeln!(t, "server_port = {}", tunnel.server_port)?;
        }
        Ok(t)
    }
}

/// One `comgate agent` process for one site.
pub struct Agent {
    pub config: PathBuf,
    log: PathBuf,
    env: Vec<(String, String)>,
    proc: Option<Proc>,
}

impl Agent {
    /// Writes the config, starts the agent and waits until it logs `connected`.
    pub async fn start(gw: &Gateway, cfg: &AgentConfig) -> Result<Agent> {
        let agent = Self::spawn_only(gw, cfg)?;
        agent.wait_connected(0, AGENT_READY).await?;
        Ok(agent)
    }

    /// Writes the config and starts the agent without waiting for it.
    pub fn spawn_only(gw: &Gateway, cfg: &AgentConfig) -> Result<Agent> {
        let url = cfg
            .gateway_url
            .clone()
            .unwrap_or_else(|| format!("wss://127.0.0.1:{}", gw.agent_port));
        Self::spawn_for(gw.harness(), &url, &gw.ca(), cfg)
    }

    /// Starts an agent for the agent listener at `url` whose certificate `ca` signs
    /// (a gateway of the test's own, see `fake_gateway`), without waiting for it.
    pub fn spawn_for(h: &Harness, url: &str, ca: &Path, cfg: &AgentConfig) -> Result<Agent> {
        let dir = h.subdir(&format!("agent-{}-{}", cfg.customer, cfg.system))?;
        let config = dir.join("agent.toml");
        std::fs::write(&config, cfg.to_toml(url, ca)?)?;
        let mut agent = Agent {
            config,
            log: dir.join("agent.log"),
            env: cfg.env.clone(),
            proc: None,
        };
        agent.spawn()?;
        Ok(agent)
    }

    fn spawn(&mut self) -> Result<()> {
        let mut cmd = comgate_command();
        cmd.arg("agent").arg("--config").arg(&self.config);
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        self.proc = Some(Proc::spawn("comgate agent", cmd, &self.log)?);
        Ok(())
    }

    /// Each of the agent's threads, from `/proc`.
    pub fn threads(&self) -> Result<Vec<ThreadStat>> {
        self.proc
            .as_ref()
            .context("the agent is not running")?
            .threads()
    }

    /// The agent log so far (all runs), colours stripped.
    pub fn log_text(&self) -> String {
        audit::strip_ansi(&String::from_utf8_lossy(
            &std::fs::read(&self.log).unwrap_or_default(),
        ))
    }

    /// How many times the agent has logged `connected` so far.
    pub fn connected_count(&self) -> usize {
        audit::connected_lines(&self.log_text())
    }

    /// Waits until the agent has logged `connected` more than `seen` times.
    pub async fn wait_connected(&self, seen: usize, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.connected_count() > seen {
                // The gateway registers the session as it confirms it; give that a
                // moment to land before the first CONNECT names this site.
                tokio::time::sleep(millis(200)).await;
                return Ok(());
            }
            if Instant::now() > deadline {
                let tail: Vec<String> = self
                    .log_text()
                    .lines()
                    .rev()
                    .take(30)
                    .map(str::to_string)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                bail!(
                    "agent did not log `connected` within {timeout:?}:\n{}",
                    tail.join("\n")
                );
            }
            tokio::time::sleep(millis(50)).await;
        }
    }

    /// SIGKILL (no goodbye to the gateway: as if the site lost power).
    pub fn kill(&mut self) {
        if let Some(mut proc) = self.proc.take() {
            proc.kill();
        }
    }

    /// Starts the agent again with the same config and waits for `connected`.
    pub async fn restart(&mut self) -> Result<()> {
        self.kill();
        let seen = self.connected_count();
        self.spawn()?;
        self.wait_connected(seen, AGENT_READY).await
    }

    /// Whether the agent process is still running.
    pub fn is_running(&mut self) -> bool {
        self.proc.as_mut().is_some_and(Proc::is_running)
    }
}

/// Retries `attempt` every 200 ms until it succeeds or `timeout` passes; the last error
/// is returned. For the moments right after a restart.
pub async fn retry<T, F, Fut>(timeout: Duration, mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match attempt().await {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() > deadline => {
                return Err(e).context(format!("still failing after {timeout:?}"))
            }
            Err(_) => tokio::time::sleep(millis(200)).await,
        }
    }
}
