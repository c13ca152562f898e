//! `comgate demo`: the gateway with embedded defaults plus a local demo
//! site, so that a new user sees a tunnel work in one command.
//!
//! It writes a serve config into the demo folder (SQLite and generated
//! certificates under it), creates a proxy account, a customer and its
//! primary system, starts a small web page as the system's Web Control Panel
//! (port 7071), runs an agent for that system in the same process, and
//! prints the curl, ssh and proxytunnel commands that reach it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::config::{AgentConfig, Secret, ServeConfig};

pub type DemoError = Box<dyn std::error::Error + Send + Sync>;

const DOMAIN: &str = "demo.test";
const CUSTOMER: &str = "12345";
const SYSTEM: &str = "ipo1";
const OWNER: &str = "demo-reseller";
const USERNAME: &str = "demo";

fn random_password() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    Alphanumeric.sample_string(&mut rand::rng(), 16)
}

/// A tiny HTTP page standing in for the system's Web Control Panel.
async fn start_demo_page() -> Result<SocketAddr, DemoError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let body = "<h1>Hello from the comgate demo site</h1>\n";
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    Ok(addr)
}

pub async fn run(dir: &Path, port: u16) -> Result<(), DemoError> {
    std::fs::create_dir_all(dir)?;
    let dir = dir.canonicalize()?;
    let config_path = dir.join("comgate.toml");
    if !config_path.exists() {
        let agents_port = port.checked_add(1).ok_or("--port must be below 65535")?;
        std::fs::write(
            &config_path,
            format!(
                "# Written by `comgate demo`; `comgate serve --config {}` runs the same gateway.\n\
                 domain = \"{DOMAIN}\"\ndata_dir = \"data\"\n\n[gateway]\nlisten = \"127.0.0.1:{port}\"\n\n\
                 [agents]\nlisten = \"127.0.0.1:{agents_port}\"\n",
                config_path.display()
            ),
        )?;
    }
    let cfg = ServeConfig::load(&config_path)?;
    let store = crate::serve::open_store(&cfg).await?;
    let password = random_password();
    store.set_proxy_account(OWNER, USERNAME, &password).await?;
    if store.customer(CUSTOMER).await?.is_none() {
        store
            .add_customer(admin::store::NewCustomer {
                id: CUSTOMER.into(),
                name: "Demo Customer".into(),
                reseller: OWNER.into(),
                provider: None,
                ..Default::default()
            })
            .await?;
    }
    let secret = match store.system(CUSTOMER, Some(SYSTEM)).await? {
        Some(_) => store.rotate_system_secret(CUSTOMER, SYSTEM).await?,
        None => store.add_system(CUSTOMER, SYSTEM, true).await?.1,
    };

    let page = start_demo_page().await?;
    let running = crate::serve::start(&cfg).await?;
    let mut ports = BTreeMap::new();
    ports.insert("7071".to_owned(), page);
    let mut agent_cfg = AgentConfig {
        gateway: format!("wss://127.0.0.1:{}", running.agents_addr.port()),
        ca: Some(cfg.data_dir.join("ca.pem")),
        customer: CUSTOMER.into(),
        system: SYSTEM.into(),
        secret: Secret::new(secret),
        proxy: None,
        remote_access: true,
        colocated_servers: false,
        centralized_management: false,
        ports,
        tunnels: Vec::new(),
        connect_timeout_ms: crate::config::defaults::connect_timeout_ms(),
        reconnect_initial_ms: crate::config::defaults::reconnect_initial_ms(),
        reconnect_max_ms: crate::config::defaults::reconnect_max_ms(),
        initial_stream_window: crate::config::defaults::initial_stream_window(),
        stream_window: crate::config::defaults::stream_window(),
        site_window: crate::config::defaults::site_window(),
        max_streams: crate::config::defaults::max_streams_per_site(),
        // Append JSON lines here to see alarms and actions reach comgate
        // (agent::reports).
        alarms_file: Some(cfg.data_dir.join("demo-alarms.jsonl")),
        actions_file: Some(cfg.data_dir.join("demo-actions.jsonl")),
        alarms_poll_ms: crate::config::defaults::alarms_poll_ms(),
        max_pending_alarms: crate::config::defaults::max_pending_alarms(),
        cert_expiry_warning_days: crate::config::defaults::cert_expiry_warning_days(),
        // The demo agent shares serve's process, whose policy is set already.
        scheduling: cfg.scheduling,
        path: config_path.clone(),
        port_map: BTreeMap::new(),
    };
    agent_cfg.validate()?;
    let agent = crate::agent::Agent::new(agent_cfg)?;
    tokio::spawn(agent.run());

    let p = running.gateway_addr.port();
    let ca = cfg.data_dir.join("ca.pem");
    let ca = ca.display();
    println!(
        r#"
comgate demo is running (Ctrl-C stops it). Data: {data}

Proxy account: {USERNAME} / {password}
Demo site:     customer {CUSTOMER}, system {SYSTEM} (agent connected in this process)

The site's Web Control Panel (port 7071) through comgate:
  curl --proxytunnel --proxy https://maint.{DOMAIN}:{p} --proxy-cacert {ca} \
       --proxy-user {USERNAME}:{password} --resolve maint.{DOMAIN}:{p}:127.0.0.1 \
       http://{CUSTOMER}-{SYSTEM}.maint.{DOMAIN}:7071/

SSH to this machine's own sshd (127.0.0.1:22) as the demo system, the manual's Linux recipe:
  ssh $USER@{CUSTOMER}-{SYSTEM}.maint.{DOMAIN} -p 22 -o HostKeyAlias={CUSTOMER}-{SYSTEM}.maint.{DOMAIN} \
      -oProxyCommand="proxytunnel -E --proxy=127.0.0.1:{p} --dest=%h:%p -P '{USERNAME}:{password}' -C {ca}"
"#,
        data = cfg.data_dir.display(),
    );
    crate::serve::shutdown_signal().await;
    running.stop();
    Ok(())
}
