//! The central-management proxy (`[central] listen`, 8443 in production):
//! IP Office Web Manager, System Status and SysMonitor reach a customer's
//! system at `https://admin.<domain>:8443/<customer-id>[/<ip>]/...` without
//! any proxy set up in the browser (manual, chapter 22).
//!
//! Every request runs the same pipeline, one step each:
//! accept → TLS → hyper reads the head → [`route::parse`] (first path
//! segment = customer, optional co-located IPv4) → [`CentralProxy::admit`]
//! (customer, primary system, connected site, Centralized Management, the
//! site policy for the target) → an HTTPS connection to the system over a
//! mux stream opened with [`Access::Central`] (reused for the next request
//! of the same client connection) → the request with its headers cleaned
//! and forwarded ([`rewrite`]) → the response with `Location` and cookies
//! moved under the prefix, its body streamed → or, for a websocket, both
//! upgrades and a byte copy. Every failure is a [`CentralError`], turned
//! into a status in one place.
//!
//! The `Host` header is never used for routing. It is passed to the system
//! as the client sent it (`admin.<domain>:8443`), with `X-Forwarded-For`,
//! `-Proto` and `-Host`: the web apps then see a host that agrees with the
//! browser's `Origin` (their websocket and cross-site checks compare them),
//! and build absolute URLs from it, which [`rewrite`] moves under the
//! prefix. comgate adds no authentication: the system's own service-user
//! login protects it, as in the manual.

pub mod error;
pub mod rewrite;
pub mod route;
pub mod upstream;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant as StdInstant;

use admin::store::Store;
use bytes::Bytes;
use dashmap::DashMap;
use http::{header, HeaderValue, Method, Request, Response, StatusCode, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::{timeout, timeout_at, Instant};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tracing::{field::Empty, Instrument};
use tunnel_proto::{Access, Target, CENTRAL_PORT};

use crate::config::CentralSection;
use crate::hub::{Hub, Site, SiteKey};
use crate::open_failure::OpenFailure;
pub use error::CentralError;
use rewrite::Rewrite;
use route::{Route, RouteError};
use upstream::UpstreamBody;

/// What the proxy answers with: the system's streamed body, or comgate's own.
pub type ResponseBody = BoxBody<Bytes, hyper::Error>;

/// ALPN of the central listener: the web apps speak HTTP/1.1 (websockets
/// need its upgrade).
pub const ALPN: &[&[u8]] = &[b"http/1.1"];

/// Shared state of the central-management proxy.
pub struct CentralProxy {
    domain: String,
    limits: CentralSection,
    store: Store,
    hub: Arc<Hub>,
    connector: TlsConnector,
    requests: Arc<Semaphore>,
    connections: Arc<Semaphore>,
    /// Customers whose connected system was seen with Centralized
    /// Management on: only for them does "offline" get its own answer
    /// (502), since their login page was public anyway. Forgotten when the
    /// system is seen with it off, and on restart.
    disclosed: DashMap<String, ()>,
}

/// One client connection: its peer, whether its first request arrived, and
/// the HTTPS connection to a system that its next request may reuse.
struct Conn {
    peer: SocketAddr,
    first_request: Notify,
    upstream: tokio::sync::Mutex<Option<Cached>>,
}

/// An idle HTTP/1.1 connection to a system, kept for the client
/// connection's next request to the same system over the same site session.
struct Cached {
    key: UpstreamKey,
    sender: SendRequest<UpstreamBody>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct UpstreamKey {
    customer: String,
    target: Target,
    /// The site session: a reconnected agent is asked again.
    generation: u64,
}

/// An admitted request: the site, and what to open on it.
struct Admitted {
    site: Arc<Site>,
    target: Target,
    customer: String,
    system: String,
}

impl CentralProxy {
    pub fn new(
        domain: &str,
        limits: CentralSection,
        store: Store,
        hub: Arc<Hub>,
    ) -> Result<Arc<Self>, rustls::Error> {
        Ok(Arc::new(CentralProxy {
            domain: domain.to_ascii_lowercase(),
            requests: Arc::new(Semaphore::new(limits.max_concurrent_requests)),
            connections: Arc::new(Semaphore::new(limits.max_connections)),
            limits,
            store,
            hub,
            connector: upstream::tls_connector()?,
            disclosed: DashMap::new(),
        }))
    }

    /// Accepts client connections until the task is aborted.
    pub async fn run(self: Arc<Self>, listener: TcpListener, acceptor: TlsAcceptor) {
        loop {
            // At the limit, further connections wait in the listen backlog.
            let Ok(slot) = self.connections.clone().acquire_owned().await else {
                return;
            };
            let (tcp, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "central listener accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let span = tracing::info_span!("central", %peer);
            tokio::spawn(
                self.clone()
                    .connection(tcp, peer, acceptor.clone(), slot)
                    .instrument(span),
            );
        }
    }

    /// TLS, then hyper's HTTP/1.1 server until the client is done. The TLS
    /// handshake and the first request head share `head_timeout`; later
    /// heads must come within `idle_timeout` of the previous response.
    async fn connection(
        self: Arc<Self>,
        tcp: TcpStream,
        peer: SocketAddr,
        acceptor: TlsAcceptor,
        _slot: OwnedSemaphorePermit,
    ) {
        let _ = tcp.set_nodelay(true);
        let deadline = Instant::now() + self.limits.head_timeout();
        let tls = match timeout_at(deadline, acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => return tracing::debug!(error = %e, "TLS handshake failed"),
            Err(_) => return tracing::debug!("TLS handshake timed out"),
        };
        let conn = Arc::new(Conn {
            peer,
            first_request: Notify::new(),
            upstream: tokio::sync::Mutex::new(None),
        });
        let service = {
            let this = self.clone();
            let conn = conn.clone();
            service_fn(move |req| {
                let this = this.clone();
                let conn = conn.clone();
                async move { Ok::<_, Infallible>(this.request(&conn, req).await) }
            })
        };
        let serving = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.idle_timeout())
            .max_header_size(self.limits.max_head_bytes)
            .serve_connection(TokioIo::new(tls), service)
            .with_upgrades();
        tokio::pin!(serving);
        let first = timeout_at(deadline, async {
            tokio::select! {
                done = &mut serving => Some(done),
                () = conn.first_request.notified() => None,
            }
        })
        .await;
        let done = match first {
            Err(_) => return tracing::debug!("no complete request head in time"),
            Ok(Some(done)) => done,
            Ok(None) => serving.await,
        };
        if let Err(e) = done {
            tracing::debug!(error = %e, "client connection ended with an error");
        }
    }

    /// One request, answered: the proxied response, or the error's.
    async fn request(&self, conn: &Conn, req: Request<Incoming>) -> Response<ResponseBody> {
        conn.first_request.notify_one();
        let span = tracing::info_span!(
            "central_request",
            method = %req.method(),
            customer = Empty,
            system = Empty,
            target = Empty,
        );
        let started = StdInstant::now();
        let result = self.proxy(conn, req).instrument(span.clone()).await;
        let _entered = span.enter();
        match result {
            Ok(resp) => {
                tracing::info!(
                    status = resp.status().as_u16(),
                    head_ms = started.elapsed().as_millis() as u64,
                    "central request proxied"
                );
                resp
            }
            Err(e) => e.into_response_logged(),
        }
    }

    /// The pipeline of one request (see the module docs).
    async fn proxy(
        &self,
        conn: &Conn,
        mut req: Request<Incoming>,
    ) -> Result<Response<ResponseBody>, CentralError> {
        let permit = self
            .requests
            .clone()
            .try_acquire_owned()
            .map_err(|_| CentralError::Busy)?;
        if req.method() == Method::CONNECT {
            return Err(CentralError::Method(req.method().to_string()));
        }
        let route = route::parse(req.uri(), &self.domain).map_err(|e| match e {
            RouteError::NoCustomer => CentralError::NotReachable {
                why: "no customer id in the path",
            },
            other => CentralError::BadTarget(other),
        })?;
        let span = tracing::Span::current();
        span.record("customer", route.customer.as_str());
        let public_host = self.public_host(&req);
        let upgrade = rewrite::is_upgrade(req.headers());
        let path = match &route.upstream {
            Some(path) => path.clone(),
            // `/12345` alone: a browser is sent to `/12345/` so that the
            // app's relative links resolve under the prefix.
            None if !upgrade && matches!(*req.method(), Method::GET | Method::HEAD) => {
                return Ok(redirect_to_slash(&route));
            }
            None => match &route.query {
                Some(q) => format!("/?{q}"),
                None => "/".to_owned(),
            },
        };

        let admitted = self.admit(&route).await?;
        span.record("system", admitted.system.as_str());
        span.record("target", tracing::field::display(&admitted.target));
        let mut sender = self.sender(conn, &admitted).await?;

        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
        let (mut parts, body) = req.into_parts();
        parts.uri = path
            .parse()
            .map_err(|_| CentralError::BadTarget(RouteError::Uncanonical("unparsable path")))?;
        parts.version = Version::HTTP_11;
        rewrite::strip_hop_by_hop(&mut parts.headers, upgrade);
        rewrite::set_forwarded(&mut parts.headers, conn.peer.ip(), &public_host);
        if !parts.headers.contains_key(header::HOST) {
            if let Ok(v) = HeaderValue::from_str(&public_host) {
                parts.headers.insert(header::HOST, v);
            }
        }
        let forwarded = Request::from_parts(parts, body.boxed());

        let response_timeout = self.limits.response_timeout();
        let mut resp = timeout(response_timeout, sender.send_request(forwarded))
            .await
            .map_err(|_| CentralError::Unreachable {
                reason: format!(
                    "no response from the system within {} ms",
                    self.limits.response_timeout_ms
                ),
            })?
            .map_err(|e| CentralError::BadUpstream {
                reason: e.to_string(),
            })?;

        let rewrite = Rewrite {
            prefix: route.prefix.clone(),
            public_host: public_host.clone(),
            system_authorities: system_authorities(&public_host, &admitted.target),
        };
        if let Some(client_upgrade) = client_upgrade {
            if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
                let upstream_upgrade = hyper::upgrade::on(&mut resp);
                tokio::spawn(
                    splice_upgrade(client_upgrade, upstream_upgrade, permit)
                        .instrument(tracing::Span::current()),
                );
                return Ok(answer(resp, &rewrite, true, None));
            }
        } else {
            // Kept for this client connection's next request.
            *conn.upstream.lock().await = Some(Cached {
                key: key_of(&admitted),
                sender,
            });
        }
        Ok(answer(resp, &rewrite, false, Some(permit)))
    }

    /// The host the client asked for: `Host`, else the absolute-form
    /// authority, else `admin.<domain>` with the listener's port.
    fn public_host(&self, req: &Request<Incoming>) -> String {
        req.headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned)
            .or_else(|| req.uri().authority().map(|a| a.as_str().to_owned()))
            .unwrap_or_else(|| format!("admin.{}:{}", self.domain, self.limits.listen.port()))
    }

    /// Customer → primary system → connected site → Centralized Management
    /// → the site policy for the target (see [`error`] for what is told).
    async fn admit(&self, route: &Route) -> Result<Admitted, CentralError> {
        let hidden = |why| CentralError::NotReachable { why };
        let customer = self
            .store
            .customer(&route.customer)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "customer lookup failed");
                CentralError::Internal
            })?
            .ok_or_else(|| hidden("unknown customer"))?;
        let system = self
            .store
            .system(&customer.id, None)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "system lookup failed");
                CentralError::Internal
            })?
            .ok_or_else(|| hidden("the customer has no primary system"))?;
        let key = SiteKey {
            customer: customer.id.clone(),
            system: system.label.clone(),
        };
        let Some(site) = self.hub.get(&key) else {
            return Err(if self.disclosed.contains_key(&customer.id) {
                CentralError::Offline {
                    customer: customer.id,
                }
            } else {
                hidden("the system is not connected")
            });
        };
        if !site.settings.centralized_management {
            self.disclosed.remove(&customer.id);
            return Err(hidden("Centralized Management is off on the system"));
        }
        self.disclosed.insert(customer.id.clone(), ());
        if !site.central_streams {
            return Err(CentralError::AgentTooOld {
                customer: customer.id,
            });
        }
        let target = match route.colocated {
            Some(ip) => Target::Colocated {
                ip,
                port: CENTRAL_PORT,
            },
            None => Target::System { port: CENTRAL_PORT },
        };
        // The gateway applies the site's reported settings first; the agent
        // checks again with its own before it dials.
        site.settings
            .permits(Access::Central, &target)
            .map_err(|r| CentralError::SiteRefused { reason: r.reason })?;
        Ok(Admitted {
            site,
            target,
            customer: customer.id,
            system: system.label,
        })
    }

    /// The client connection's idle connection to this system if it is
    /// still usable, else a new one: stream, TLS, HTTP/1.1 handshake.
    async fn sender(
        &self,
        conn: &Conn,
        admitted: &Admitted,
    ) -> Result<SendRequest<UpstreamBody>, CentralError> {
        let cached = conn.upstream.lock().await.take();
        if let Some(Cached { key, mut sender }) = cached {
            if key == key_of(admitted)
                && matches!(
                    timeout(self.limits.connect_timeout(), sender.ready()).await,
                    Ok(Ok(()))
                )
            {
                return Ok(sender);
            }
        }
        let ms = self.limits.connect_timeout_ms;
        let deadline = Instant::now() + self.limits.connect_timeout();
        let too_slow = || CentralError::Unreachable {
            reason: format!("the site did not reach the system within {ms} ms"),
        };
        let opened = timeout_at(
            deadline,
            admitted.site.mux.open_as(admitted.target, Access::Central),
        )
        .await
        .map_err(|_| too_slow())?;
        let stream = match opened {
            Ok(stream) => stream,
            Err(e) => {
                return Err(match OpenFailure::from(e) {
                    OpenFailure::Forbidden { reason } => CentralError::SiteRefused { reason },
                    OpenFailure::SiteFull { reason } => CentralError::SiteFull { reason },
                    OpenFailure::Unreachable { reason } => CentralError::Unreachable { reason },
                    OpenFailure::SessionGone => CentralError::AgentLost {
                        customer: admitted.customer.clone(),
                    },
                })
            }
        };
        timeout_at(deadline, upstream::connect(&self.connector, stream))
            .await
            .map_err(|_| too_slow())?
            .map_err(|e| CentralError::BadUpstream {
                reason: e.to_string(),
            })
    }
}

impl CentralError {
    /// The answer, with the refusal logged in the request's span (the real
    /// reason, which the client may not be told).
    fn into_response_logged(self) -> Response<ResponseBody> {
        match &self {
            CentralError::NotReachable { why } => {
                tracing::info!(reason = why, "central request refused")
            }
            CentralError::Internal => tracing::error!("central request failed"),
            other => tracing::info!(error = %other, "central request refused"),
        }
        self.into_response()
    }
}

fn key_of(admitted: &Admitted) -> UpstreamKey {
    UpstreamKey {
        customer: admitted.customer.clone(),
        target: admitted.target,
        generation: admitted.site.generation,
    }
}

/// Authorities that mean the system itself in its absolute URLs: the host
/// it was sent, and a co-located system's own address.
fn system_authorities(public_host: &str, target: &Target) -> Vec<String> {
    let mut names = vec![public_host.to_ascii_lowercase()];
    if let Target::Colocated { ip, port } = target {
        names.push(format!("{ip}:{port}"));
    }
    names
}

/// The system's response with hop-by-hop headers gone and the rest moved
/// under the prefix; the body streams through, holding the request's slot
/// until it ends.
fn answer(
    resp: Response<Incoming>,
    rewrite: &Rewrite,
    upgrade: bool,
    permit: Option<OwnedSemaphorePermit>,
) -> Response<ResponseBody> {
    let (mut parts, body) = resp.into_parts();
    rewrite::strip_hop_by_hop(&mut parts.headers, upgrade);
    rewrite.response_headers(&mut parts.headers);
    let body = match permit {
        Some(permit) => body
            .map_frame(move |frame| {
                let _slot = &permit;
                frame
            })
            .boxed(),
        None => body.boxed(),
    };
    Response::from_parts(parts, body)
}

/// `308` from `/12345` to `/12345/`.
fn redirect_to_slash(route: &Route) -> Response<ResponseBody> {
    let location = match &route.query {
        Some(q) => format!("{}/?{q}", route.prefix),
        None => format!("{}/", route.prefix),
    };
    let mut resp = Response::new(error::text_body(format!("See {location}\n")));
    *resp.status_mut() = StatusCode::PERMANENT_REDIRECT;
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// Once both sides have switched protocols (the client got our 101, the
/// system sent its own), copies bytes both ways until either ends. The
/// request's slot is held for as long.
async fn splice_upgrade(
    client: hyper::upgrade::OnUpgrade,
    system: hyper::upgrade::OnUpgrade,
    _slot: OwnedSemaphorePermit,
) {
    let started = StdInstant::now();
    let (client, system) = tokio::join!(client, system);
    let (client, system) = match (client, system) {
        (Ok(c), Ok(s)) => (c, s),
        (Err(e), _) | (_, Err(e)) => {
            return tracing::info!(error = %e, "websocket upgrade did not complete");
        }
    };
    let mut client = TokioIo::new(client);
    let mut system = TokioIo::new(system);
    match tokio::io::copy_bidirectional(&mut client, &mut system).await {
        Ok((up, down)) => tracing::info!(
            bytes_to_system = up,
            bytes_from_system = down,
            duration_ms = started.elapsed().as_millis() as u64,
            "central websocket closed"
        ),
        Err(e) => tracing::info!(
            error = %e,
            duration_ms = started.elapsed().as_millis() as u64,
            "central websocket ended with an error"
        ),
    }
}
