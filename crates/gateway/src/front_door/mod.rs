//! The front door: comgate's authenticated HTTPS CONNECT proxy.
//!
//! Every partner connection runs the same pipeline, one function per step:
//! accept → TLS → [`read_head`] → [`FrontDoor::admit`] (method, maint address,
//! authentication, authorisation, site lookup, site policy, stream open) →
//! `200 Connection established` → [`relay`](crate::relay) → audit. Every
//! refusal is a [`Refusal`], rendered in one place. TLS offers ALPN `h2` and
//! `http/1.1`; an HTTP/2 connection (browsers share one for many tunnels)
//! runs the same [`FrontDoor::admit`] per CONNECT stream, see [`http2`].
//!
//! The request target alone decides where a tunnel goes, never `Host`
//! (proxytunnel puts the proxy's own name there). The 200 reply is flushed in
//! its own TLS record before any target byte, because proxytunnel reads it
//! byte by byte through OpenSSL and would not see target bytes that arrived
//! in the same record.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant as StdInstant;

use admin::store::Store;
use bytes::BytesMut;
use dashmap::DashMap;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{timeout, timeout_at, Instant};
use tracing::{field::Empty, Instrument};
use tunnel_proto::mux::MuxStream;
use tunnel_proto::Target;

use crate::audit;
use crate::auth::Authenticator;
use crate::config::GatewaySection;
use crate::connect_head::{parse_head, HeadError, HeadParse, RequestHead};
use crate::hub::{Hub, SiteKey};
use crate::maint_host::{is_under_maint_domain, parse_maint_authority, MaintHostError};
use crate::movable_tcp::MovableTcp;
use crate::open_failure::OpenFailure;
use crate::own_tls::OwnTls;
use crate::refusal::Refusal;
use crate::relay::{relay_to_stream, Placement, RelayLimits};

mod h2_stream;
mod http2;

/// A partner's TLS connection, with comgate's own records after rustls's
/// handshake (an idle tunnel holds no TLS buffer; see `own_tls`); its
/// socket moves to the site's thread once a tunnel is admitted.
type PartnerTls = OwnTls<MovableTcp>;

/// ALPN protocols of the front door, preferred first.
pub const ALPN: &[&[u8]] = &[b"h2", b"http/1.1"];

/// Shared state of the front door.
pub struct FrontDoor {
    domain: String,
    realm: String,
    limits: GatewaySection,
    store: Store,
    hub: Arc<Hub>,
    auth: Arc<Authenticator>,
    tunnels: Arc<TunnelSlots>,
}

/// An admitted request: the stream is open and the partner may be told 200.
struct Admitted {
    stream: MuxStream,
    account: String,
    customer: String,
    system: String,
    target: String,
    /// The runtime where the tunnel's relay starts: the site's quick thread
    /// (see `site_threads`), or its own.
    home: tokio::runtime::Handle,
    /// Where the relay moves if the tunnel turns bulk.
    placement: Placement,
    _slot: SlotGuard,
}

impl FrontDoor {
    pub fn new(
        domain: &str,
        limits: GatewaySection,
        store: Store,
        hub: Arc<Hub>,
        auth: Arc<Authenticator>,
    ) -> Arc<Self> {
        Arc::new(FrontDoor {
            domain: domain.to_ascii_lowercase(),
            realm: format!("comgate maint.{domain}"),
            limits,
            store,
            hub,
            auth,
            tunnels: Arc::new(TunnelSlots::default()),
        })
    }

    /// Accepts partner connections until the listener fails.
    pub async fn run(self: Arc<Self>, listener: TcpListener, tls: Arc<rustls::ServerConfig>) {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "front door accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let this = self.clone();
            let tls = tls.clone();
            let span = tracing::info_span!(
                "partner",
                %peer,
                account = Empty,
                customer = Empty,
                system = Empty,
                target = Empty
            );
            tokio::spawn(async move { this.handle(tcp, peer, tls).await }.instrument(span));
        }
    }

    async fn handle(
        self: Arc<Self>,
        tcp: TcpStream,
        peer: SocketAddr,
        tls: Arc<rustls::ServerConfig>,
    ) {
        // Boxed: the handshake, head and admission steps need several KiB of
        // future state (TLS accept, database queries, argon2) that must not
        // stay allocated for the tunnel's whole life.
        let Some((tls, alpn, deadline)) = Box::pin(accept_tls(tcp, tls, &self.limits)).await else {
            return;
        };
        if alpn.as_deref() == Some(b"h2") {
            return http2::serve(self, tls, deadline, peer).await;
        }
        let opened = Box::pin(self.open_tunnel(tls, deadline, peer)).await;
        if let Some((mut tls, early, admitted)) = opened {
            // Its own TLS record, flushed before any target byte (see module doc).
            let ok = tls
                .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                .await
                .and(tls.flush().await);
            if let Err(e) = ok {
                return admitted.audit_unused(peer, &format!("error_client: {e}"));
            }
            // The tunnel's bytes are relayed on the site's thread, beside
            // the site's own session (see `site_threads`); this task ends.
            let home = admitted.home.clone();
            let relayed = async move {
                if let Err(e) = tls.get_mut().rehome() {
                    return admitted.audit_unused(peer, &format!("error_partner: {e}"));
                }
                self.tunnel(tls, &early, admitted, peer).await
            };
            home.spawn(relayed.in_current_span());
        }
    }

    /// HTTP/1.1 heads until one is admitted (or the connection ends): the TLS
    /// stream, the bytes after the admitted head, and the open stream.
    async fn open_tunnel(
        &self,
        mut tls: PartnerTls,
        mut deadline: Instant,
        peer: SocketAddr,
    ) -> Option<(PartnerTls, BytesMut, Admitted)> {
        let mut buf = BytesMut::with_capacity(1024);
        let mut requests = 0u32;
        loop {
            requests += 1;
            let head = match timeout_at(
                deadline,
                read_head(&mut tls, &mut buf, self.limits.max_head_bytes),
            )
            .await
            {
                Err(_) => {
                    tracing::debug!("request head not complete in time; dropping the connection");
                    return None;
                }
                Ok(Err(ReadHeadError::Closed)) => return None,
                Ok(Err(ReadHeadError::Io(e))) => {
                    tracing::debug!(error = %e, "reading the request head failed");
                    return None;
                }
                Ok(Err(ReadHeadError::Head(e))) => {
                    let refusal = match e {
                        HeadError::Malformed(why) => Refusal::BadRequest(why.to_string()),
                        _ => Refusal::HeadTooLarge,
                    };
                    audit::refused(peer, None, "-", refusal.status().0, refusal.outcome());
                    let _ = respond(&mut tls, &refusal, &self.realm, true).await;
                    return None;
                }
                Ok(Ok(h)) => h,
            };
            let (head, head_len) = head;
            let _ = buf.split_to(head_len);
            let span = tracing::Span::current();
            span.record("target", head.target.as_str());
            match self.admit(&head, peer).await {
                Ok(admitted) => {
                    // The head buffer would otherwise live as long as the
                    // tunnel: keep only the bytes sent after the head (a copy
                    // of nothing allocates nothing).
                    return Some((tls, BytesMut::from(&buf[..]), admitted));
                }
                Err((refusal, account)) => {
                    let (status, _) = refusal.status();
                    audit::refused(
                        peer,
                        account.as_deref(),
                        &head.target,
                        status,
                        refusal.outcome(),
                    );
                    let close = !refusal.keeps_connection()
                        || head.connection_close
                        || requests >= self.limits.max_requests_per_connection;
                    if respond(&mut tls, &refusal, &self.realm, close)
                        .await
                        .is_err()
                        || close
                    {
                        return None;
                    }
                    deadline = Instant::now() + self.limits.head_timeout();
                }
            }
        }
    }

    /// Every check between a parsed head and an open stream, in order.
    async fn admit(
        &self,
        head: &RequestHead,
        peer: SocketAddr,
    ) -> Result<Admitted, (Refusal, Option<String>)> {
        if !head.is_connect() {
            return Err((Refusal::MethodNotAllowed(head.method.clone()), None));
        }
        let maint = parse_maint_authority(&head.target, &self.domain).map_err(|e| {
            let r = match e {
                MaintHostError::NotMaintDomain => Refusal::NotMaintAddress,
                _ if !is_under_maint_domain(&head.target, &self.domain) => Refusal::NotMaintAddress,
                other => Refusal::BadMaintAddress(other.to_string()),
            };
            (r, None)
        })?;
        // The account check and the address lookup are independent: run
        // them together (one database round trip each, not three in a row).
        // The account decides first, so an unauthenticated request learns
        // nothing about which addresses exist.
        let (account, route) = tokio::join!(
            self.auth
                .authenticate(peer.ip(), head.proxy_authorization.as_ref()),
            self.store.route(&maint.customer, maint.system.as_deref())
        );
        let account = account.map_err(|r| (r, None))?;
        let username = account.username.clone();
        let span = tracing::Span::current();
        span.record("account", username.as_str());
        let refuse = |r: Refusal| (r, Some(username.clone()));

        let (customer, system) = route
            .map_err(|e| {
                tracing::error!(error = %e, "customer and system lookup failed");
                refuse(Refusal::Internal)
            })?
            .ok_or_else(|| refuse(Refusal::NoSuchAddress))?;
        if !customer.is_served_by(&account.owner) {
            return Err(refuse(Refusal::NoSuchAddress));
        }
        span.record("customer", customer.id.as_str());
        span.record("system", system.label.as_str());

        let slot = self
            .tunnels
            .acquire(account.id, self.limits.max_tunnels_per_account)
            .ok_or_else(|| {
                refuse(Refusal::TooManyTunnels {
                    limit: self.limits.max_tunnels_per_account,
                })
            })?;
        let key = SiteKey {
            customer: customer.id.clone(),
            system: system.label.clone(),
        };
        let site = self.hub.get(&key).ok_or_else(|| {
            refuse(Refusal::Offline {
                customer: customer.id.clone(),
                system: system.label.clone(),
            })
        })?;
        let target = match maint.colocated {
            Some(ip) => Target::Colocated {
                ip,
                port: maint.port,
            },
            None => Target::System { port: maint.port },
        };
        // The gateway applies the site's own reported settings first, so a
        // forbidden target never costs the site a stream.
        site.settings.allows(&target).map_err(|r| {
            refuse(Refusal::SiteRefused {
                reason: r.to_string(),
            })
        })?;
        let opened = timeout(self.limits.stream_open_timeout(), site.mux.open(target)).await;
        let stream = match opened {
            Err(_) => {
                return Err(refuse(Refusal::TargetUnreachable {
                    reason: format!("no answer within {} ms", self.limits.stream_open_timeout_ms),
                }))
            }
            Ok(Err(e)) => {
                return Err(refuse(match OpenFailure::from(e) {
                    OpenFailure::Forbidden { reason } => Refusal::SiteRefused { reason },
                    OpenFailure::SiteFull { reason } => Refusal::SiteFull { reason },
                    OpenFailure::Unreachable { reason } => Refusal::TargetUnreachable { reason },
                    OpenFailure::SessionGone => Refusal::AgentLost {
                        customer: customer.id.clone(),
                        system: system.label.clone(),
                    },
                }))
            }
            Ok(Ok(stream)) => stream,
        };
        Ok(Admitted {
            stream,
            account: username.clone(),
            customer: customer.id,
            system: system.label,
            target: target_label(&target),
            home: site
                .home
                .quick_handle()
                .unwrap_or(site.home.handle())
                .clone(),
            placement: Placement {
                bulk: site.home.quick_handle().map(|_| site.home.handle().clone()),
            },
            _slot: slot,
        })
    }

    /// Bytes both ways until the tunnel ends (the partner was already told
    /// 200), then the audit event.
    async fn tunnel<S>(&self, client: S, early: &[u8], admitted: Admitted, peer: SocketAddr)
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let started = StdInstant::now();
        let limits = RelayLimits {
            half_close_grace: Some(self.limits.half_close_grace()),
            idle_timeout: self.limits.tunnel_idle_timeout(),
        };
        let Admitted {
            stream,
            account,
            customer,
            system,
            target,
            home: _,
            placement,
            _slot,
        } = admitted;
        let out = relay_to_stream(client, stream, early, limits, placement).await;
        let label = match &out.end {
            crate::relay::RelayEnd::ErrorA(e) => format!("error_partner: {e}"),
            crate::relay::RelayEnd::ErrorB(e) => format!("error_site: {e}"),
            other => other.label(),
        };
        audit::tunnel_closed(&audit::TunnelRecord {
            account: &account,
            source: peer,
            customer: &customer,
            system: &system,
            target: &target,
            bytes_up: out.a_to_b,
            bytes_down: out.b_to_a,
            duration: started.elapsed(),
            outcome: &label,
        });
    }
}

impl Admitted {
    /// The audit event of a tunnel that ended before any byte moved (the
    /// partner could not be told 200).
    fn audit_unused(self, peer: SocketAddr, outcome: &str) {
        audit::tunnel_closed(&audit::TunnelRecord {
            account: &self.account,
            source: peer,
            customer: &self.customer,
            system: &self.system,
            target: &self.target,
            bytes_up: 0,
            bytes_down: 0,
            duration: std::time::Duration::ZERO,
            outcome,
        });
    }
}

/// TCP → TLS within the head timeout; returns the stream, the ALPN
/// protocol agreed and the deadline for the first request, which the same
/// timeout bounds.
async fn accept_tls(
    tcp: TcpStream,
    config: Arc<rustls::ServerConfig>,
    limits: &GatewaySection,
) -> Option<(PartnerTls, Option<Vec<u8>>, Instant)> {
    let _ = tcp.set_nodelay(true);
    let deadline = Instant::now() + limits.head_timeout();
    match timeout_at(
        deadline,
        crate::own_tls::accept(MovableTcp::new(tcp), config),
    )
    .await
    {
        Ok(Ok(accepted)) => Some((accepted.tls, accepted.alpn, deadline)),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!("TLS handshake timed out");
            None
        }
    }
}

fn target_label(t: &Target) -> String {
    match t {
        Target::System { port } => format!("system:{port}"),
        Target::Colocated { ip, port } => format!("{ip}:{port}"),
    }
}

enum ReadHeadError {
    Closed,
    Io(std::io::Error),
    Head(HeadError),
}

/// Reads until `buf` holds a complete request head. Cancel-safe in the sense
/// the caller needs: dropping it on timeout loses nothing worth keeping (the
/// connection is closed then).
async fn read_head<S: AsyncRead + Unpin>(
    s: &mut S,
    buf: &mut BytesMut,
    max: usize,
) -> Result<(RequestHead, usize), ReadHeadError> {
    loop {
        if !buf.is_empty() {
            match parse_head(buf, max) {
                Ok(HeadParse::Complete(head, len)) => return Ok((head, len)),
                Ok(HeadParse::Partial) => {}
                Err(e) => return Err(ReadHeadError::Head(e)),
            }
        }
        buf.reserve(2048);
        match s.read_buf(buf).await {
            Ok(0) => return Err(ReadHeadError::Closed),
            Ok(_) => {}
            Err(e) => return Err(ReadHeadError::Io(e)),
        }
    }
}

async fn respond<S: AsyncWrite + Unpin>(
    s: &mut S,
    refusal: &Refusal,
    realm: &str,
    close: bool,
) -> std::io::Result<()> {
    s.write_all(&refusal.render(realm, close)).await?;
    s.flush().await?;
    if close {
        s.shutdown().await?;
    }
    Ok(())
}

/// Open tunnels per proxy account.
#[derive(Default)]
struct TunnelSlots {
    counts: DashMap<i64, usize>,
}

/// Gives its slot back when the tunnel ends.
struct SlotGuard {
    slots: Arc<TunnelSlots>,
    account: i64,
}

impl TunnelSlots {
    fn acquire(self: &Arc<Self>, account: i64, limit: usize) -> Option<SlotGuard> {
        let mut n = self.counts.entry(account).or_insert(0);
        if *n >= limit {
            return None;
        }
        *n += 1;
        Some(SlotGuard {
            slots: self.clone(),
            account,
        })
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.slots.counts.remove_if_mut(&self.account, |_, n| {
            *n = n.saturating_sub(1);
            *n == 0
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tunnel_slots_enforce_the_limit_and_come_back() {
        let slots = Arc::new(TunnelSlots::default());
        let a = slots.acquire(1, 2).unwrap();
        let _b = slots.acquire(1, 2).unwrap();
        assert!(slots.acquire(1, 2).is_none());
        assert!(slots.acquire(2, 2).is_some(), "limits are per account");
        drop(a);
        assert!(slots.acquire(1, 2).is_some());
    }

    #[tokio::test]
    async fn read_head_keeps_bytes_after_the_head() {
        let (mut client, mut server) = tokio::io::duplex(1024);
        client
            .write_all(b"CONNECT a.maint.x.test:22 HTTP/1.1\r\nHost: x\r\n\r\nSSH-2.0")
            .await
            .unwrap();
        let mut buf = BytesMut::new();
        let (head, len) = match read_head(&mut server, &mut buf, 4096).await {
            Ok(h) => h,
            Err(_) => panic!("head expected"),
        };
        assert_eq!(head.target, "a.maint.x.test:22");
        assert_eq!(&buf[len..], b"SSH-2.0");
    }
}
