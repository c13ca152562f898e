//! The usual starting point of a test: a gateway with reseller A's proxy account, its
//! customer 12345 (distributor X as provider) and primary system ipo1; optionally an
//! sshd behind ipo1's agent and the ssh clients that reach it.

use std::net::SocketAddr;

use anyhow::Result;

use super::comgate::{Agent, AgentConfig, Gateway, GatewayOptions};
use super::connect::{Creds, Front};
use super::harness::Harness;
use super::maint_name;
use super::proxytunnel::{NameMode, ProxyTunnel};
use super::ssh::SshClients;
use super::sshd::Sshd;
use super::targets::{echo, lo, Target};

pub const CUSTOMER: &str = "12345";
pub const SYSTEM: &str = "ipo1";
pub const RESELLER: &str = "reseller-a";
pub const DISTRIBUTOR: &str = "distributor-x";

/// Reseller A's maintenance proxy account.
pub fn account_a() -> Creds {
    Creds::new("acc-a", "pw-A.7f3k9Q")
}

/// A tenant whose primary system's agent lists one co-located echo server as
/// an RDP tunnel: where most protocol tests start.
pub struct EchoSite {
    pub server: Target,
    pub tenant: Tenant,
    pub agent: Agent,
}

impl EchoSite {
    /// The echo server listens on 127.0.0.`last_octet`.
    pub async fn start(h: &Harness, last_octet: u8) -> Result<EchoSite> {
        Self::start_with_options(h, last_octet, &GatewayOptions::default()).await
    }

    /// Like [`EchoSite::start`], with serve started with `opts`.
    pub async fn start_with_options(
        h: &Harness,
        last_octet: u8,
        opts: &GatewayOptions,
    ) -> Result<EchoSite> {
        let server = echo(lo(last_octet), 0).await?;
        let tenant = Tenant::start_with(h, opts).await?;
        let agent = Agent::start(
            &tenant.gw,
            &tenant.agent_config().tunnel("RDP", server.addr),
        )
        .await?;
        Ok(EchoSite {
            server,
            tenant,
            agent,
        })
    }
}

/// A configured gateway: one account, one customer, one primary system.
pub struct Tenant {
    pub gw: Gateway,
    pub creds: Creds,
    /// The agent secret of 12345/ipo1.
    pub secret: String,
    /// Raw CONNECT client trusting the gateway's CA.
    pub front: Front,
}

impl Tenant {
    pub async fn start(h: &Harness) -> Result<Tenant> {
        Self::start_with(h, &GatewayOptions::default()).await
    }

    /// Starts serve with `opts`, then adds the account, customer and system with
    /// `comgate admin` while it runs.
    pub async fn start_with(h: &Harness, opts: &GatewayOptions) -> Result<Tenant> {
        let gw = Gateway::start_with(h, opts).await?;
        let creds = account_a();
        gw.proxy_account(RESELLER, &creds.user, &creds.pass).await?;
        gw.customer(CUSTOMER, "Acme Dental", RESELLER, Some(DISTRIBUTOR))
            .await?;
        let secret = gw.system(CUSTOMER, SYSTEM, true).await?;
        let front = Front::new(gw.addr(), &gw.ca())?;
        Ok(Tenant {
            gw,
            creds,
            secret,
            front,
        })
    }

    /// Agent config for 12345/ipo1 (Remote Access and Co-located Servers on).
    pub fn agent_config(&self) -> AgentConfig {
        AgentConfig::new(CUSTOMER, SYSTEM, &self.secret)
    }

    /// `12345-ipo1.maint.example.test:<port>`.
    pub fn own(port: u16) -> String {
        format!("{}:{port}", maint_name(CUSTOMER, Some(SYSTEM), None))
    }

    /// `12345-ipo1-<ip>.maint.example.test:<port>` for a co-located server.
    pub fn colocated(addr: SocketAddr) -> String {
        format!(
            "{}:{}",
            maint_name(CUSTOMER, Some(SYSTEM), Some(&addr.ip().to_string())),
            addr.port()
        )
    }
}

/// A tenant whose system ipo1 serves SSH (port 22 mapped to a throwaway sshd), with
/// OpenSSH/PuTTY clients going through proxytunnel.
pub struct SshSite {
    pub tenant: Tenant,
    pub sshd: Sshd,
    /// Keeps ipo1's agent running for the site's lifetime.
    pub _agent: Agent,
    pub clients: SshClients,
}

impl SshSite {
    pub async fn start(h: &Harness, mode: NameMode) -> Result<SshSite> {
        Self::start_with(h, mode, &GatewayOptions::default(), |c| c).await
    }

    /// Like [`SshSite::start`], with gateway options and a chance to change the agent
    /// config (port 22 is already mapped to sshd).
    pub async fn start_with(
        h: &Harness,
        mode: NameMode,
        opts: &GatewayOptions,
        configure: impl FnOnce(AgentConfig) -> AgentConfig,
    ) -> Result<SshSite> {
        let tenant = Tenant::start_with(h, opts).await?;
        Self::from_tenant(h, tenant, mode, configure).await
    }

    /// Starts sshd and ipo1's agent for an already configured tenant.
    pub async fn from_tenant(
        h: &Harness,
        tenant: Tenant,
        mode: NameMode,
        configure: impl FnOnce(AgentConfig) -> AgentConfig,
    ) -> Result<SshSite> {
        let sshd = Sshd::start(h).await?;
        let cfg = configure(
            tenant
                .agent_config()
                .port(22, SocketAddr::from(([127, 0, 0, 1], sshd.port))),
        );
        let agent = Agent::start(&tenant.gw, &cfg).await?;
        let pt = ProxyTunnel::new(h, &tenant.gw, &tenant.creds, mode)?;
        let clients = SshClients::new(h, pt, &sshd)?;
        Ok(SshSite {
            tenant,
            sshd,
            _agent: agent,
            clients,
        })
    }

    /// `12345-ipo1.maint.example.test:22`.
    pub fn dest(&self) -> String {
        Tenant::own(22)
    }
}
