//! The site agent (`comgate agent`): keeps one outbound TLS websocket to
//! comgate, and opens connections on its own LAN when comgate asks, only
//! where the site's remote-operations settings allow it.
//!
//! The agent checks every stream request against its own settings even
//! though the gateway already did: the site, not the gateway, is the
//! authority on what may be reached inside it.

pub mod backoff;
pub mod gateway_url;
pub mod http_proxy;
pub mod no_proxy;
pub mod reports;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

use crate::own_tls::OwnTls;
use crate::site_socket::SiteSocket;
use tracing::Instrument;
use tunnel_proto::codes;
use tunnel_proto::handshake::{self, Hello, SiteSettings, TunnelSpec, Welcome, PROTOCOL_VERSION};
use tunnel_proto::mux::{self, CloseReason, IncomingEvent, IncomingStream, MuxConfig, Role};
use tunnel_proto::ws::{self, WsConn};
use tunnel_proto::{Access, Target};

use crate::config::AgentConfig;
use crate::hub::GOAWAY_REPLACED;
use crate::movable_tcp::MovableTcp;
use crate::relay::{relay_from_stream, Placement, RelayLimits};
use crate::site_threads::SiteThreads;
use backoff::Backoff;
use gateway_url::GatewayUrl;
use http_proxy::ProxyUrl;
use reports::{Reports, SiteFile};
use tunnel_proto::report::{AlarmType, Severity};

/// Why one connection attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("cannot reach comgate at {0}: {1}")]
    Connect(String, std::io::Error),
    #[error("{0}")]
    Proxy(#[from] http_proxy::ProxyError),
    #[error("TLS with comgate failed: {0}")]
    Tls(std::io::Error),
    #[error("websocket handshake with comgate failed: {0}")]
    Websocket(String),
    #[error("comgate refused this agent: {0}")]
    Rejected(String),
    #[error("comgate sent an unexpected handshake reply: {0}")]
    Protocol(String),
    #[error("timed out connecting to comgate")]
    Timeout,
    #[error("{0}")]
    Setup(String),
}

type AgentWebSocket = WsConn<OwnTls<SiteSocket<TcpStream>>>;

/// What the agent needs at run time, derived once from its config.
pub struct Agent {
    cfg: AgentConfig,
    url: GatewayUrl,
    proxy: Option<ProxyUrl>,
    tls: Arc<rustls::ClientConfig>,
    settings: SiteSettings,
    reports: Arc<Reports>,
    /// The thread for interactive work: the quick lane and each tunnel
    /// until it turns bulk ([`Placement`]). The agent's own runtime, one
    /// thread, carries the session's main connection and bulk tunnels; a
    /// thread that is always busy answers a keystroke only when its turn
    /// comes.
    quick: Arc<SiteThreads>,
}

/// Name of the agent's interactive thread, as `top` shows it.
pub const QUICK_THREAD_NAME: &str = "comgate-agent-quick";

impl Agent {
    pub fn new(cfg: AgentConfig) -> Result<Arc<Self>, AgentError> {
        let url = GatewayUrl::parse(&cfg.gateway)
            .map_err(|e| AgentError::Setup(format!("gateway: {e}")))?;
        let proxy = cfg
            .effective_proxy(&url.host)
            .map(|p| ProxyUrl::parse(p.expose()))
            .transpose()
            .map_err(|e| AgentError::Setup(format!("proxy: {e}")))?;
        let roots = match &cfg.ca {
            Some(ca) => crate::tls::load_roots(ca).map_err(|e| AgentError::Setup(e.to_string()))?,
            None => rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            },
        };
        let client =
            crate::tls::site_client_config(roots).map_err(|e| AgentError::Setup(e.to_string()))?;
        let settings = SiteSettings {
            remote_access: cfg.remote_access,
            colocated_servers: cfg.colocated_servers,
            centralized_management: cfg.centralized_management,
            own_ports: cfg.own_ports(),
            tunnels: cfg
                .tunnels
                .iter()
                .map(|t| TunnelSpec {
                    application: t.application.clone(),
                    server_ip: t.server_ip,
                    server_port: t.server_port,
                })
                .collect(),
        };
        let quick = SiteThreads::start_named(1, QUICK_THREAD_NAME)
            .map_err(|e| AgentError::Setup(format!("starting the interactive thread: {e}")))?;
        Ok(Arc::new(Agent {
            url,
            proxy,
            tls: client,
            settings,
            reports: Reports::new(cfg.max_pending_alarms),
            cfg,
            quick,
        }))
    }

    fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.cfg.connect_timeout_ms)
    }

    /// Runs forever: connect, serve, and reconnect with backoff after any failure.
    pub async fn run(self: Arc<Self>) {
        let mut backoff = Backoff::new(
            Duration::from_millis(self.cfg.reconnect_initial_ms),
            Duration::from_millis(self.cfg.reconnect_max_ms),
        );
        let span =
            tracing::info_span!("agent", customer = %self.cfg.customer, system = %self.cfg.system);
        async {
            let files = [
                (&self.cfg.alarms_file, reports::parse_alarm_line as fn(&str) -> _),
                (&self.cfg.actions_file, reports::parse_action_line),
            ];
            for (path, parse) in files {
                if let Some(path) = path {
                    let watch = SiteFile::new(path, parse).watch(
                        Duration::from_millis(self.cfg.alarms_poll_ms),
                        self.reports.clone(),
                    );
                    tokio::spawn(watch.in_current_span());
                }
            }
            loop {
                let started = Instant::now();
                match self.clone().session().await {
                    Ok(CloseReason::PeerGoAway { code, .. }) if code == GOAWAY_REPLACED => {
                        // Another agent now serves this system. Two live agents
                        // for one system would otherwise take turns every few
                        // hundred milliseconds; retry at the slowest pace.
                        tracing::warn!("another agent for this system connected to comgate and replaced this one");
                        backoff.saturate();
                    }
                    Ok(reason) => {
                        tracing::warn!(%reason, "session with comgate ended");
                        // A session that stayed up a while starts the delays over.
                        if started.elapsed() > Duration::from_secs(30) {
                            backoff.reset();
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "connecting to comgate failed"),
                }
                let delay = backoff.next_delay();
                tracing::info!(delay_ms = delay.as_millis() as u64, "reconnecting");
                tokio::time::sleep(delay).await;
            }
        }
        .instrument(span)
        .await
    }

    /// One session: connect, hello, serve streams until it ends.
    async fn session(self: Arc<Self>) -> Result<CloseReason, AgentError> {
        let (ws, welcome) = tokio::time::timeout(self.connect_timeout(), self.connect())
            .await
            .map_err(|_| AgentError::Timeout)??;
        tracing::info!(
            gateway = %self.url,
            via_proxy = self.proxy.is_some(),
            large_data = welcome.has_feature(handshake::feature::LARGE_DATA),
            "connected"
        );
        Ok(self.serve_session(ws, &welcome).await)
    }

    /// Serves comgate's stream requests over an established, welcomed
    /// websocket until the session ends.
    pub async fn serve_session<S>(self: Arc<Self>, ws: WsConn<S>, welcome: &Welcome) -> CloseReason
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        // The gateway sets the heartbeat pace for both sides.
        let beat = Duration::from_millis(welcome.heartbeat_ms.max(100));
        let cfg = MuxConfig {
            ping_interval: beat,
            ping_timeout: beat * 3,
            stream_window: self.cfg.initial_stream_window,
            max_stream_window: self.cfg.stream_window,
            connection_window: self.cfg.site_window,
            max_streams: self.cfg.max_streams,
            peer_max_data: if welcome.has_feature(handshake::feature::LARGE_DATA) {
                tunnel_proto::frame::LARGE_DATA_LEN
            } else {
                tunnel_proto::frame::BASE_DATA_LEN
            },
        };
        let (mux, mut incoming) = mux::start(ws, Role::Agent, cfg);
        // The quick lane is joined with the first stream, not at once: a
        // site without tunnels (nearly all of them, nearly always) keeps
        // one connection and its memory at the gateway.
        let mut quick_lane = welcome.quick_lane.clone();
        // Tunnels start on the interactive thread and move here, beside the
        // main connection, when they turn bulk.
        let bulk = Placement {
            bulk: Some(tokio::runtime::Handle::current()),
        };
        let quick = self.quick.handle(0).clone();
        let serve = async {
            while let Some(event) = incoming.next().await {
                match event {
                    IncomingEvent::Stream(s) => {
                        if let Some(token) = quick_lane.take() {
                            let (this, mux) = (self.clone(), mux.clone());
                            quick.spawn(
                                async move { this.join_quick_lane(&mux, token).await }
                                    .in_current_span(),
                            );
                        }
                        let (this, placement) = (self.clone(), bulk.clone());
                        quick.spawn(
                            async move { this.serve_stream(s, placement).await }.in_current_span(),
                        );
                    }
                    IncomingEvent::Control(value) => {
                        tracing::debug!(%value, "control message from comgate")
                    }
                }
            }
        };
        let (reason, (), ()) = tokio::join!(mux.closed(), serve, self.reports.forward(&mux));
        reason
    }

    /// Opens the session's quick lane (`tunnel_proto::session::lanes`): a
    /// second connection, introduced by the token of the session's welcome.
    /// Without it the session goes on over its one connection.
    async fn join_quick_lane(&self, mux: &mux::MuxHandle, token: String) {
        // Before the hello: from the gateway's welcome on, LANE frames may
        // come on the main connection.
        mux.accept_quick_lane();
        let joined =
            tokio::time::timeout(self.connect_timeout(), self.handshake(Some(token))).await;
        match joined {
            Ok(Ok((ws, _))) => match mux.attach_quick_lane() {
                Ok(()) => {
                    mux.run_quick_lane(ws);
                    tracing::info!("quick lane joined");
                }
                Err(e) => tracing::debug!(error = %e, "quick lane not attached"),
            },
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "could not join the quick lane; interactive tunnels share the one connection")
            }
            Err(_) => tracing::warn!(
                "joining the quick lane timed out; interactive tunnels share the one connection"
            ),
        }
    }

    /// TCP (possibly through the site's proxy) → TLS → websocket → hello.
    async fn connect(&self) -> Result<(AgentWebSocket, Welcome), AgentError> {
        self.handshake(None).await
    }

    /// [`Agent::connect`], for the session (`quick_lane` None) or for the
    /// quick lane of the session whose welcome carried that token.
    async fn handshake(
        &self,
        quick_lane: Option<String>,
    ) -> Result<(AgentWebSocket, Welcome), AgentError> {
        let authority = self.url.authority();
        let tcp = match &self.proxy {
            Some(proxy) => http_proxy::connect_through(proxy, &authority).await?,
            None => TcpStream::connect(&authority)
                .await
                .map_err(|e| AgentError::Connect(authority.clone(), e))?,
        };
        let name = ServerName::try_from(self.url.host.clone())
            .map_err(|e| AgentError::Setup(format!("gateway host: {e}")))?;
        let connected =
            crate::own_tls::connect(SiteSocket::new(tcp), self.tls.clone(), name.to_owned())
                .await
                .map_err(AgentError::Tls)?;
        self.check_certificate_expiry(Some(&connected.peer_certificates));
        let tls = connected.tls;
        let request = format!("wss://{}{}", authority, self.url.path);
        let mut ws = ws::connect(&request, tls)
            .await
            .map_err(|e| AgentError::Websocket(e.to_string()))?;
        let hello = Hello {
            version: PROTOCOL_VERSION,
            customer: self.cfg.customer.clone(),
            system: self.cfg.system.clone(),
            secret: self.cfg.secret.expose().to_owned(),
            settings: self.settings.clone(),
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
            // This agent checks Centralized Management streams itself.
            features: vec![
                handshake::feature::CENTRAL_STREAMS.to_owned(),
                handshake::feature::LARGE_DATA.to_owned(),
                handshake::feature::QUICK_LANE.to_owned(),
            ],
            quick_lane,
        };
        let welcome = handshake::agent_handshake(&mut ws, &hello)
            .await
            .map_err(|e| match e {
                handshake::HandshakeError::Rejected { reason, .. } => AgentError::Rejected(reason),
                other => AgentError::Protocol(other.to_string()),
            })?;
        Ok((ws, welcome))
    }

    /// The local address for a target under a level of access, or why the
    /// site refuses it. A Centralized Management stream to the system goes
    /// to its `[ports]` entry for 8443, like a Remote Access one would.
    fn resolve(&self, target: &Target, access: Access) -> Result<SocketAddr, String> {
        self.settings
            .permits(access, target)
            .map_err(|r| r.to_string())?;
        Ok(match target {
            Target::System { port } => self.cfg.own_service_addr(*port),
            Target::Colocated { ip, port } => SocketAddr::from((*ip, *port)),
        })
    }

    fn target_alarm(&self, text: &str, detail: Option<String>, active: bool) {
        self.reports
            .set_own(AlarmType::Services, Severity::Major, text, detail, active);
    }

    /// Raises the Security alarm while comgate's certificate ends within
    /// `cert_expiry_warning_days`, and ends it once a renewed one is seen.
    fn check_certificate_expiry(&self, chain: Option<&[rustls::pki_types::CertificateDer<'_>]>) {
        let Some(leaf) = chain.and_then(|c| c.first()) else {
            return;
        };
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(leaf.as_ref()) else {
            return;
        };
        let not_after = cert.validity().not_after;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let warn = i64::from(self.cfg.cert_expiry_warning_days) * 86_400;
        let expiring = not_after.timestamp() - now < warn;
        let detail = format!(
            "the certificate of {} is valid until {}",
            self.url.host, not_after
        );
        if expiring {
            tracing::warn!(%detail, "comgate's certificate is about to expire");
        }
        self.reports.set_own(
            AlarmType::Security,
            Severity::Major,
            "The certificate of comgate is about to expire",
            Some(detail),
            expiring,
        );
    }

    /// Connects a stream to its target and relays it; runs on the
    /// interactive thread, from where the relay may move to `placement`.
    async fn serve_stream(&self, incoming: IncomingStream, placement: Placement) {
        let target = *incoming.target();
        let access = incoming.access();
        let addr = match self.resolve(&target, access) {
            Ok(addr) => addr,
            Err(reason) => {
                tracing::info!(?target, ?access, %reason, "stream refused by site settings");
                incoming.refuse(codes::REFUSE_POLICY, &reason);
                return;
            }
        };
        let unreachable = format!("Remote support target {addr} does not answer");
        let tcp = match tokio::time::timeout(self.connect_timeout(), TcpStream::connect(addr)).await
        {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => {
                tracing::info!(%addr, error = %e, "target unreachable");
                let why = format!("{addr}: {e}");
                self.target_alarm(&unreachable, Some(why.clone()), true);
                incoming.refuse(codes::REFUSE_UNREACHABLE, &why);
                return;
            }
            Err(_) => {
                tracing::info!(%addr, "target did not answer in time");
                let why = format!(
                    "{addr} did not answer within {} ms",
                    self.cfg.connect_timeout_ms
                );
                self.target_alarm(&unreachable, Some(why.clone()), true);
                incoming.refuse(codes::REFUSE_TIMEOUT, &why);
                return;
            }
        };
        self.target_alarm(&unreachable, None, false);
        let _ = tcp.set_nodelay(true);
        let stream = incoming.accept();
        let started = Instant::now();
        // No grace period here: the gateway decides when a tunnel is over,
        // the agent passes half-closes through faithfully.
        let tcp = MovableTcp::registered_here(tcp);
        let out = relay_from_stream(stream, tcp, RelayLimits::default(), placement).await;
        tracing::info!(
            %addr,
            bytes_to_target = out.a_to_b,
            bytes_from_target = out.b_to_a,
            duration_ms = started.elapsed().as_millis() as u64,
            outcome = %out.end.label(),
            "stream closed"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tunnel_proto::mux::{MuxHandle, OpenError};

    fn agent_config(
        remote_access: bool,
        colocated: bool,
        tunnels: Vec<crate::config::TunnelEntry>,
    ) -> AgentConfig {
        agent_config_cm(remote_access, colocated, false, tunnels)
    }

    fn agent_config_cm(
        remote_access: bool,
        colocated: bool,
        central: bool,
        tunnels: Vec<crate::config::TunnelEntry>,
    ) -> AgentConfig {
        let text = format!(
            "gateway = \"wss://127.0.0.1:1\"\ncustomer = \"12345\"\nsystem = \"ipo1\"\nsecret = \"s\"\n\
             remote_access = {remote_access}\ncolocated_servers = {colocated}\n\
             centralized_management = {central}\n"
        );
        let mut cfg: AgentConfig = toml::from_str(&text).unwrap();
        cfg.tunnels = tunnels;
        cfg.validate().unwrap();
        cfg
    }

    /// The agent behind an in-memory websocket; the returned handle plays
    /// the gateway and may ask for anything, bypassing the gateway's checks.
    async fn gateway_side(cfg: AgentConfig) -> (MuxHandle, tunnel_proto::mux::Incoming) {
        let agent = Agent::new(cfg).unwrap();
        let (a, b) = tokio::io::duplex(256 * 1024);
        let server = tokio::spawn(ws::accept(a));
        let ws = ws::connect("ws://agent.test/agent/v1", b).await.unwrap();
        let gw_ws = server.await.unwrap().unwrap();
        let welcome = Welcome {
            version: PROTOCOL_VERSION,
            heartbeat_ms: 10_000,
            features: Vec::new(),
            quick_lane: None,
        };
        tokio::spawn(async move { agent.serve_session(ws, &welcome).await });
        // The caller keeps the Incoming alive: dropping every handle ends the session.
        mux::start(gw_ws, Role::Gateway, MuxConfig::default())
    }

    async fn refusal(h: &MuxHandle, target: Target) -> (u8, String) {
        refusal_as(h, target, Access::Remote).await
    }

    async fn refusal_as(h: &MuxHandle, target: Target, access: Access) -> (u8, String) {
        match h.open_as(target, access).await {
            Err(OpenError::Refused { code, reason }) => (code, reason),
            Err(e) => panic!("expected a refusal, got {e}"),
            Ok(_) => panic!("expected a refusal, the stream opened"),
        }
    }

    #[tokio::test]
    async fn agent_refuses_what_its_settings_forbid_even_if_asked_directly() {
        let ip: std::net::Ipv4Addr = "127.0.0.5".parse().unwrap();
        let listed = crate::config::TunnelEntry {
            application: "RDP".into(),
            server_ip: ip,
            server_port: 3389,
        };
        // Remote Access off: nothing at all.
        let (h, _incoming) = gateway_side(agent_config(false, true, vec![listed.clone()])).await;
        let (code, reason) = refusal(&h, Target::System { port: 22 }).await;
        assert_eq!(code, codes::REFUSE_POLICY);
        assert!(reason.contains("Remote Access"), "{reason}");
        // Co-located Servers off: the listed tunnel is still refused.
        let (h, _incoming) = gateway_side(agent_config(true, false, vec![listed.clone()])).await;
        let (code, reason) = refusal(&h, Target::Colocated { ip, port: 3389 }).await;
        assert_eq!(code, codes::REFUSE_POLICY);
        assert!(reason.contains("Co-located"), "{reason}");
        // A port or address not listed as a tunnel.
        let (h, _incoming) = gateway_side(agent_config(true, true, vec![listed])).await;
        let (code, _) = refusal(&h, Target::Colocated { ip, port: 3390 }).await;
        assert_eq!(code, codes::REFUSE_POLICY);
        let (code, _) = refusal(
            &h,
            Target::Colocated {
                ip: "127.0.0.6".parse().unwrap(),
                port: 3389,
            },
        )
        .await;
        assert_eq!(code, codes::REFUSE_POLICY);
        // An own port that is not one of the system's services.
        let (code, _) = refusal(&h, Target::System { port: 25 }).await;
        assert_eq!(code, codes::REFUSE_POLICY);
    }

    #[tokio::test]
    async fn agent_refuses_central_streams_unless_centralized_management_is_on() {
        let central = Target::System {
            port: tunnel_proto::CENTRAL_PORT,
        };
        let ipo2: std::net::Ipv4Addr = "127.0.0.9".parse().unwrap();
        let listed = crate::config::TunnelEntry {
            application: "ipo2".into(),
            server_ip: ipo2,
            server_port: tunnel_proto::CENTRAL_PORT,
        };
        // Remote Access and Co-located Servers on, Centralized Management
        // off: a central stream is refused, though a Remote Access stream to
        // the very same port would be allowed.
        let (h, _incoming) = gateway_side(agent_config(true, true, vec![listed.clone()])).await;
        let (code, reason) = refusal_as(&h, central, Access::Central).await;
        assert_eq!(code, codes::REFUSE_POLICY);
        assert!(reason.contains("Centralized Management"), "{reason}");
        let colocated = Target::Colocated {
            ip: ipo2,
            port: tunnel_proto::CENTRAL_PORT,
        };
        let (code, _) = refusal_as(&h, colocated, Access::Central).await;
        assert_eq!(code, codes::REFUSE_POLICY);

        // Centralized Management on (Remote Access off): other ports and
        // unlisted addresses are still refused by policy, before any dial.
        let (h, _incoming) = gateway_side(agent_config_cm(false, false, true, vec![listed])).await;
        let (code, reason) = refusal_as(&h, Target::System { port: 22 }, Access::Central).await;
        assert_eq!(code, codes::REFUSE_POLICY, "{reason}");
        let unlisted = Target::Colocated {
            ip: "127.0.0.10".parse().unwrap(),
            port: tunnel_proto::CENTRAL_PORT,
        };
        let (code, _) = refusal_as(&h, unlisted, Access::Central).await;
        assert_eq!(code, codes::REFUSE_POLICY);
        // And Remote Access streams are refused: it is off.
        let (code, reason) = refusal(&h, central).await;
        assert_eq!(code, codes::REFUSE_POLICY);
        assert!(reason.contains("Remote Access"), "{reason}");
    }

    #[tokio::test]
    async fn agent_dials_allowed_targets_and_reports_unreachable_ones() {
        let listener = TcpListener::bind("127.0.0.5:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).await.unwrap();
            s.write_all(&buf).await.unwrap();
        });
        let listed = crate::config::TunnelEntry {
            application: "echo".into(),
            server_ip: "127.0.0.5".parse().unwrap(),
            server_port: addr.port(),
        };
        // A listed tunnel whose port nobody listens on, on another address.
        let closed = TcpListener::bind("127.0.0.7:0").await.unwrap();
        let closed_port = closed.local_addr().unwrap().port();
        drop(closed);
        let dead = crate::config::TunnelEntry {
            application: "dead".into(),
            server_ip: "127.0.0.7".parse().unwrap(),
            server_port: closed_port,
        };
        let (h, _incoming) = gateway_side(agent_config(true, true, vec![listed, dead])).await;
        let mut s = h
            .open(Target::Colocated {
                ip: "127.0.0.5".parse().unwrap(),
                port: addr.port(),
            })
            .await
            .unwrap();
        s.write_all(b"hello").await.unwrap();
        let mut back = [0u8; 5];
        s.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"hello");
        let (code, _) = refusal(
            &h,
            Target::Colocated {
                ip: "127.0.0.7".parse().unwrap(),
                port: closed_port,
            },
        )
        .await;
        assert_eq!(code, codes::REFUSE_UNREACHABLE);
    }
}
