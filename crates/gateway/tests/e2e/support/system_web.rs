//! A stand-in for an IP Office's own web services on port 8443: HTTPS with a
//! self-signed certificate made for itself (as each IP Office does), hyper
//! on loopback, serving what the central-management tests need.
//!
//! | path (as the system sees it) | answer |
//! | --- | --- |
//! | `/WebManagement/WebManagement.html` | a page naming the system, and the `Host`, `X-Forwarded-*`, ALPN and path it saw |
//! | `/redirect/relative` | `302`, `Location: /WebManagement/WebManagement.html` |
//! | `/redirect/absolute` | `302`, `Location: https://<Host>/WebManagement/WebManagement.html` |
//! | `/login` | `Set-Cookie: session=<system>; Path=/; Domain=<host>; HttpOnly; Secure` |
//! | `/whoami` | the `Cookie` header it received |
//! | `/echo` (POST) | the request body, streamed back as it arrives |
//! | `/drip` | `first`, then `second` only after [`SystemWeb::release_drip`] |
//! | `/ws` | a websocket that echoes every message |

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{header, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;

type Body = BoxBody<Bytes, hyper::Error>;

/// The page's heading, which tests look for: `IP Office Web Manager on <name>`.
pub fn page_heading(name: &str) -> String {
    format!("IP Office Web Manager on {name}")
}

/// A running system web service.
pub struct SystemWeb {
    pub addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

struct State {
    name: String,
    requests: AtomicUsize,
    drip: Notify,
}

impl SystemWeb {
    /// Listens on `bind` (port 0 picks one) with a fresh self-signed certificate.
    pub async fn start(bind: SocketAddr, name: &str) -> Result<SystemWeb> {
        let listener = TcpListener::bind(bind)
            .await
            .with_context(|| format!("binding the system web service to {bind}"))?;
        let addr = listener.local_addr()?;
        // Self-signed, for a name nobody asks for: the proxy must not care.
        let certified = rcgen::generate_simple_self_signed(vec![format!("ipo-{name}.invalid")])?;
        let chain = vec![CertificateDer::from(certified.cert.der().to_vec())];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            certified.signing_key.serialize_der(),
        ));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let state = Arc::new(State {
            name: name.to_string(),
            requests: AtomicUsize::new(0),
            drip: Notify::new(),
        });
        let st = state.clone();
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                let st = st.clone();
                conns.spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let alpn = tls
                        .get_ref()
                        .1
                        .alpn_protocol()
                        .map(|p| String::from_utf8_lossy(p).into_owned())
                        .unwrap_or_else(|| "none".into());
                    let service = service_fn(move |req| {
                        let st = st.clone();
                        let alpn = alpn.clone();
                        async move { Ok::<_, Infallible>(st.handle(req, &alpn)) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .with_upgrades()
                        .await;
                });
            }
        });
        Ok(SystemWeb { addr, state, task })
    }

    /// Requests served so far (all paths).
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// Lets a `/drip` response send its second chunk.
    pub fn release_drip(&self) {
        self.state.drip.notify_one();
    }
}

impl Drop for SystemWeb {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn full(text: impl Into<Bytes>) -> Body {
    Full::new(text.into())
        .map_err(|never| match never {})
        .boxed()
}

fn header_text(req: &Request<Incoming>, name: &str) -> String {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_string()
}

impl State {
    fn handle(self: &Arc<Self>, req: Request<Incoming>, alpn: &str) -> Response<Body> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let host = header_text(&req, "host");
        let mut resp = Response::new(full(""));
        match req.uri().path() {
            "/WebManagement/WebManagement.html" => {
                let page = format!(
                    "<html><body><h1>{}</h1>\nhost={host}\nx-forwarded-for={}\nx-forwarded-proto={}\n\
                     x-forwarded-host={}\nalpn={alpn}\npath={}\n</body></html>\n",
                    page_heading(&self.name),
                    header_text(&req, "x-forwarded-for"),
                    header_text(&req, "x-forwarded-proto"),
                    header_text(&req, "x-forwarded-host"),
                    req.uri(),
                );
                *resp.body_mut() = full(page);
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("text/html"),
                );
            }
            "/redirect/relative" => {
                *resp.status_mut() = StatusCode::FOUND;
                resp.headers_mut().insert(
                    header::LOCATION,
                    header::HeaderValue::from_static("/WebManagement/WebManagement.html"),
                );
            }
            "/redirect/absolute" => {
                *resp.status_mut() = StatusCode::FOUND;
                let to = format!("https://{host}/WebManagement/WebManagement.html");
                if let Ok(v) = header::HeaderValue::from_str(&to) {
                    resp.headers_mut().insert(header::LOCATION, v);
                }
            }
            "/login" => {
                let bare = host.split(':').next().unwrap_or("").to_string();
                let cookie = format!(
                    "session={}; Path=/; Domain={bare}; HttpOnly; Secure",
                    self.name
                );
                if let Ok(v) = header::HeaderValue::from_str(&cookie) {
                    resp.headers_mut().insert(header::SET_COOKIE, v);
                }
                *resp.body_mut() = full(format!("logged in to {}\n", self.name));
            }
            "/whoami" => {
                *resp.body_mut() = full(format!(
                    "{} sees cookie={}\n",
                    self.name,
                    header_text(&req, "cookie")
                ));
            }
            "/echo" => {
                // Streams back whatever arrives, as it arrives.
                *resp.body_mut() = req.into_body().boxed();
            }
            "/drip" => {
                let st = self.clone();
                let chunks = futures_util::stream::unfold(0u8, move |n| {
                    let st = st.clone();
                    async move {
                        match n {
                            0 => Some((Ok(Frame::data(Bytes::from_static(b"first\n"))), 1)),
                            1 => {
                                st.drip.notified().await;
                                Some((Ok(Frame::data(Bytes::from_static(b"second\n"))), 2))
                            }
                            _ => None,
                        }
                    }
                });
                *resp.body_mut() = BodyExt::boxed(StreamBody::new(chunks));
            }
            "/ws" => return websocket_echo(req),
            _ => *resp.status_mut() = StatusCode::NOT_FOUND,
        }
        resp
    }
}

/// Answers the websocket handshake and echoes every message on the upgraded
/// connection.
fn websocket_echo(mut req: Request<Incoming>) -> Response<Body> {
    let key = req
        .headers()
        .get("sec-websocket-key")
        .map(|k| k.as_bytes().to_vec());
    let Some(key) = key else {
        let mut resp = Response::new(full("not a websocket request\n"));
        *resp.status_mut() = StatusCode::BAD_REQUEST;
        return resp;
    };
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(&key);
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let mut ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        while let Some(Ok(msg)) = ws.next().await {
            if msg.is_close() {
                break;
            }
            if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                break;
            }
        }
    });
    let mut resp = Response::new(full(""));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(
        header::UPGRADE,
        header::HeaderValue::from_static("websocket"),
    );
    h.insert(
        header::CONNECTION,
        header::HeaderValue::from_static("Upgrade"),
    );
    if let Ok(v) = header::HeaderValue::from_str(&accept) {
        h.insert("sec-websocket-accept", v);
    }
    resp
}
