//! The listener site agents dial: TLS, websocket upgrade, the agent's hello
//! (customer, system, secret, remote-operations settings), then the
//! multiplexed session registered in the [`Hub`].
//!
//! The secret travels in the first websocket message rather than in an HTTP
//! header so that no access log or proxy along the way ever records it.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use admin::failure_limit::{FailureLimiter, FailureQuota};
use admin::store::Store;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout_at;

use crate::movable_tcp::MovableTcp;
use crate::site_socket::SiteSocket;
use crate::site_threads::SiteThreads;
use tracing::Instrument;
use tunnel_proto::codes;
use tunnel_proto::handshake::{self, reject_code, Hello, Reject, Welcome, PROTOCOL_VERSION};
use tunnel_proto::mux::{self, IncomingEvent, MuxConfig, Role};
use tunnel_proto::report::SiteReport;
use tunnel_proto::ws::{self, Side, WsConn};

use crate::config::AgentsSection;
use crate::hub::{Hub, QuickLaneToken, SiteKey};

/// A site connection's websocket as the listener accepts it.
type SiteWs = WsConn<crate::own_tls::OwnTls<SiteSocket<MovableTcp>>>;

/// Accepts site agents.
pub struct AgentListener {
    cfg: AgentsSection,
    store: Store,
    hub: Arc<Hub>,
    /// Where admitted sites' sessions run.
    threads: Arc<SiteThreads>,
    /// Failed authorisations per source address (`[agents]
    /// hello_failures_per_minute`, `hello_failure_burst`).
    failures: FailureLimiter<IpAddr>,
}

impl AgentListener {
    pub fn new(
        cfg: AgentsSection,
        store: Store,
        hub: Arc<Hub>,
        threads: Arc<SiteThreads>,
    ) -> Arc<Self> {
        let failures = FailureLimiter::new(FailureQuota {
            per_minute: cfg.hello_failures_per_minute,
            burst: cfg.hello_failure_burst,
        });
        Arc::new(AgentListener {
            cfg,
            store,
            hub,
            threads,
            failures,
        })
    }

    /// Drops expired failure counts, so that a scan from many addresses
    /// leaves no state behind (serve calls it with the front door's).
    pub fn housekeeping(&self) {
        self.failures.housekeeping();
    }

    pub fn mux_config(&self) -> MuxConfig {
        MuxConfig {
            stream_window: self.cfg.initial_stream_window,
            max_stream_window: self.cfg.stream_window,
            connection_window: self.cfg.site_window,
            max_streams: self.cfg.max_streams_per_site,
            ping_interval: Duration::from_millis(self.cfg.heartbeat_interval_ms),
            ping_timeout: Duration::from_millis(self.cfg.heartbeat_timeout_ms),
            // Raised per site when its agent announces `large_data`.
            peer_max_data: tunnel_proto::frame::BASE_DATA_LEN,
        }
    }

    pub async fn run(self: Arc<Self>, listener: TcpListener, tls: Arc<rustls::ServerConfig>) {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "agent listener accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let this = self.clone();
            let tls = tls.clone();
            let span = tracing::info_span!("site", %peer, customer = tracing::field::Empty, system = tracing::field::Empty);
            tokio::spawn(
                async move {
                    if let Err(why) = this.handle(tcp, peer, tls).await {
                        tracing::info!(%why, "agent not admitted");
                    }
                }
                .instrument(span),
            );
        }
    }

    async fn handle(
        &self,
        tcp: TcpStream,
        peer: SocketAddr,
        tls: Arc<rustls::ServerConfig>,
    ) -> Result<(), String> {
        let deadline =
            tokio::time::Instant::now() + Duration::from_millis(self.cfg.handshake_timeout_ms);
        let tls = timeout_at(
            deadline,
            crate::own_tls::accept(SiteSocket::new(MovableTcp::new(tcp)), tls),
        )
        .await
        .map_err(|_| "TLS handshake timed out".to_string())?
        .map_err(|e| format!("TLS handshake failed: {e}"))?
        .tls;
        let mut ws = timeout_at(deadline, ws::accept(tls))
            .await
            .map_err(|_| "websocket upgrade timed out".to_string())?
            .map_err(|e| format!("websocket upgrade failed: {e}"))?;

        let hello = timeout_at(deadline, handshake::read_hello(&mut ws))
            .await
            .map_err(|_| "no hello in time".to_string())?
            .map_err(|e| format!("reading hello: {e}"))?;
        let span = tracing::Span::current();
        span.record("customer", hello.customer.as_str());
        span.record("system", hello.system.as_str());
        if let Some(token) = &hello.quick_lane {
            return self.join_quick_lane(ws, &hello, token, peer.ip()).await;
        }

        let (key, system_id) = match self.check_hello(&hello, peer.ip()).await {
            Ok(admitted) => admitted,
            Err(reject) => {
                // send_reject closes the websocket after the reply.
                let _ = handshake::send_reject(&mut ws, &reject).await;
                return Err(reject.reason);
            }
        };
        let quick_lane = (self.cfg.quick_lane && hello.has_feature(handshake::feature::QUICK_LANE))
            .then(QuickLaneToken::random);
        let welcome = Welcome {
            version: PROTOCOL_VERSION,
            heartbeat_ms: self.cfg.heartbeat_interval_ms,
            features: vec![handshake::feature::LARGE_DATA.to_owned()],
            quick_lane: quick_lane.map(QuickLaneToken::to_hex),
        };
        handshake::send_welcome(&mut ws, &welcome)
            .await
            .map_err(|e| format!("sending welcome: {e}"))?;

        // The session runs on the site's own thread (see `site_threads`);
        // the database work below stays here, on the control runtime.
        let home = self.threads.lease();
        let stream = ws
            .into_stream()
            .map_err(|_| "the agent sent part of a message before the welcome".to_string())?;
        let mut mux_cfg = self.mux_config();
        if hello.has_feature(handshake::feature::LARGE_DATA) {
            mux_cfg.peer_max_data = tunnel_proto::frame::LARGE_DATA_LEN;
        }
        let moved = home
            .spawn(async move {
                let mut stream = stream;
                stream.get_mut().get_mut().rehome()?;
                let ws = WsConn::new(stream, Side::Server);
                Ok::<_, std::io::Error>(mux::start(ws, Role::Gateway, mux_cfg))
            })
            .await;
        let (mux, mut incoming) = match moved {
            Ok(Ok(started)) => started,
            Ok(Err(e)) => return Err(format!("moving the site to its thread: {e}")),
            Err(e) => return Err(format!("the site's thread is gone: {e}")),
        };
        let site = self
            .hub
            .register(key, system_id, mux.clone(), &hello, peer, home);
        if let Some(token) = quick_lane {
            site.offer_quick_lane(token);
        }
        let reported = admin::store::Reported {
            remote_access: hello.settings.remote_access,
            colocated_servers: hello.settings.colocated_servers,
            centralized_management: hello.settings.centralized_management,
            legacy: !site.central_streams,
            agent_version: hello.agent_version.clone(),
        };
        if let Err(error) = self
            .store
            .record_site_connected(system_id, &reported, unix_now())
            .await
        {
            tracing::warn!(%error, "could not record the site's connection");
        }
        tracing::info!(
            remote_access = hello.settings.remote_access,
            colocated_servers = hello.settings.colocated_servers,
            centralized_management = hello.settings.centralized_management,
            tunnels = hello.settings.tunnels.len(),
            agent_version = %hello.agent_version,
            large_data = hello.has_feature(handshake::feature::LARGE_DATA),
            thread = ?site.home,
            "site connected"
        );
        // The session lives on in a task of its own with a small future: this
        // one carried the TLS, websocket and hello handshakes, about 12 KiB of
        // state that would otherwise stay allocated for the site's lifetime.
        let hub = self.hub.clone();
        let store = self.store.clone();
        let actions_kept = self.cfg.actions_kept_per_system;
        tokio::spawn(
            async move {
                // The agent opens no streams; it sends reports (alarms, actions).
                let drain = async {
                    while let Some(event) = incoming.next().await {
                        match event {
                            IncomingEvent::Stream(s) => {
                                s.refuse(codes::REFUSE_POLICY, "agents may not open streams")
                            }
                            // Boxed, like the write below: this task lives as
                            // long as the site, and a database future held
                            // inline would make every idle site's task about
                            // 1 KiB larger for work it seldom does.
                            IncomingEvent::Control(value) => {
                                Box::pin(site_report(&store, system_id, actions_kept, value)).await
                            }
                        }
                    }
                };
                let (reason, ()) = tokio::join!(mux.closed(), drain);
                hub.remove(&site);
                if let Err(error) = Box::pin(store.record_site_seen(system_id, unix_now())).await {
                    tracing::warn!(%error, "could not record the end of the site's session");
                }
                tracing::info!(?reason, "site disconnected");
            }
            .in_current_span(),
        );
        Ok(())
    }

    /// A connected site's second connection: its quick lane
    /// (`tunnel_proto::session::lanes`). The hello shows the token the
    /// site's welcome offered instead of being checked like a first hello:
    /// the token came over the authenticated connection, and is good once.
    async fn join_quick_lane(
        &self,
        mut ws: SiteWs,
        hello: &Hello,
        token: &str,
        peer: IpAddr,
    ) -> Result<(), String> {
        let site = match self.check_quick_lane(hello, token, peer) {
            Ok(site) => site,
            Err(reject) => {
                let _ = handshake::send_reject(&mut ws, &reject).await;
                return Err(reject.reason);
            }
        };
        // Before the welcome: the agent accepted the lane before its hello,
        // so this end may move streams to it from now on (their frames wait
        // for the lane's writer).
        if let Err(e) = site.mux.attach_quick_lane() {
            let reject = Reject {
                code: reject_code::AUTHENTICATION_FAILED.into(),
                reason: format!("no quick lane for this session: {e}"),
            };
            let _ = handshake::send_reject(&mut ws, &reject).await;
            return Err(reject.reason);
        }
        let welcome = Welcome {
            version: PROTOCOL_VERSION,
            heartbeat_ms: self.cfg.heartbeat_interval_ms,
            features: vec![handshake::feature::LARGE_DATA.to_owned()],
            quick_lane: None,
        };
        let started = match handshake::send_welcome(&mut ws, &welcome).await {
            Ok(()) => ws
                .into_stream()
                .map_err(|_| "the agent sent part of a message before the welcome".to_string()),
            Err(e) => Err(format!("sending welcome: {e}")),
        };
        let moved = match started {
            Ok(stream) => {
                let mux = site.mux.clone();
                // Beside the site's interactive tunnels, away from its bulk
                // bytes (`SiteHome::quick_handle`).
                let thread = site.home.quick_handle().unwrap_or(site.home.handle());
                thread
                    .spawn(async move {
                        let mut stream = stream;
                        stream.get_mut().get_mut().rehome()?;
                        mux.run_quick_lane(WsConn::new(stream, Side::Server));
                        Ok::<_, std::io::Error>(())
                    })
                    .await
                    .map_err(|e| format!("the site's thread is gone: {e}"))
                    .and_then(|r| r.map_err(|e| format!("moving the lane to its thread: {e}")))
            }
            Err(e) => Err(e),
        };
        if let Err(why) = moved {
            // Frames may already wait for the lane: without it, the session
            // cannot deliver them.
            site.mux.close(
                tunnel_proto::codes::GOAWAY_NO_ERROR,
                "the quick lane could not be started",
            );
            return Err(why);
        }
        tracing::info!(site_thread = ?site.home, "quick lane joined");
        Ok(())
    }

    /// Refuses, unchecked, an address with too many failed authorisations
    /// until its allowance refills.
    fn check_not_blocked(&self, peer: IpAddr) -> Result<(), Reject> {
        match self.failures.blocked_for(&peer) {
            Some(wait) => Err(Reject {
                code: reject_code::TOO_MANY_FAILURES.into(),
                reason: format!(
                    "too many failed authorisations from {peer}; retry in {} s",
                    wait.as_secs().max(1)
                ),
            }),
            None => Ok(()),
        }
    }

    /// The connected site whose welcome offered `token`, or the reject.
    fn check_quick_lane(
        &self,
        hello: &Hello,
        token: &str,
        peer: IpAddr,
    ) -> Result<Arc<crate::hub::Site>, Reject> {
        handshake::check_version(hello)?;
        self.check_not_blocked(peer)?;
        let key = admin::store::system_label(&hello.system).map(|system| SiteKey {
            customer: hello.customer.to_ascii_lowercase(),
            system,
        });
        let site = key.and_then(|key| self.hub.get(&key)).filter(|site| {
            QuickLaneToken::from_hex(token).is_some_and(|t| site.take_quick_lane(t))
        });
        site.ok_or_else(|| {
            let _ = self.failures.failed(&peer);
            Reject {
                code: reject_code::AUTHENTICATION_FAILED.into(),
                reason: format!(
                    "no connected session of system {} of customer {} offered this quick lane",
                    hello.system, hello.customer
                ),
            }
        })
    }

    /// Known system with the right secret and a protocol we speak; its key
    /// and id. A refused secret for a known system is recorded (the customer
    /// list shows "Authorization failed").
    async fn check_hello(&self, hello: &Hello, peer: IpAddr) -> Result<(SiteKey, i64), Reject> {
        handshake::check_version(hello)?;
        self.check_not_blocked(peer)?;
        // Every refusal for a name or secret counts against the address.
        let denied = || {
            if let Some(block) = self.failures.failed(&peer) {
                tracing::warn!(
                    %peer,
                    block_secs = block.as_secs().max(1),
                    "too many failed agent authorisations: the address is refused unchecked for a while"
                );
            }
            Reject {
                code: reject_code::AUTHENTICATION_FAILED.into(),
                reason: format!(
                    "authorization failed for system {} of customer {} (unknown system or wrong secret)",
                    hello.system, hello.customer
                ),
            }
        };
        let customer = hello.customer.to_ascii_lowercase();
        let label = admin::store::system_label(&hello.system).ok_or_else(denied)?;
        let system = self
            .store
            .authenticate_system(&customer, Some(&label), &hello.secret)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "system lookup failed");
                Reject {
                    code: "internal_error".into(),
                    reason: "the gateway could not check the credentials; retrying later".into(),
                }
            })?;
        let Some(system) = system else {
            match self
                .store
                .record_auth_failure(&customer, &label, unix_now())
                .await
            {
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "could not record the failed authorisation"),
            }
            return Err(denied());
        };
        Ok((
            SiteKey {
                customer,
                system: system.label,
            },
            system.id,
        ))
    }
}

/// A report from the site (CONTROL message). A report this version cannot
/// read is logged and ignored: the agent may be newer than the gateway.
async fn site_report(store: &Store, system_id: i64, actions_kept: usize, value: serde_json::Value) {
    match SiteReport::from_value(value) {
        Ok(SiteReport::Alarm(alarm)) => {
            tracing::info!(
                alarm_type = alarm.alarm_type.as_str(),
                severity = alarm.severity.as_str(),
                alarm = ?alarm.text,
                detail = ?alarm.detail.as_deref().unwrap_or(""),
                active = alarm.active,
                source = ?alarm.source,
                "site alarm"
            );
            if let Err(error) = store.record_alarm(system_id, &alarm).await {
                tracing::warn!(%error, "could not store the site's alarm");
            }
        }
        Ok(SiteReport::Action(action)) => {
            match store.record_action(system_id, &action, actions_kept).await {
                Ok(applied) => tracing::info!(
                    action = ?action.id,
                    kind = ?action.kind,
                    state = action.state.as_str(),
                    detail = ?action.detail.as_deref().unwrap_or(""),
                    ignored = applied.is_none(),
                    "site action"
                ),
                Err(error) => tracing::warn!(%error, "could not store the site's action"),
            }
        }
        Err(error) => tracing::warn!(%error, "site report ignored"),
    }
}

pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
