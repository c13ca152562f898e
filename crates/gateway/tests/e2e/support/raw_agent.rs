//! An agent played by the test itself: TLS and the websocket to serve's
//! agent listener, then any Hello the test writes (an older agent's, a
//! forged quick-lane join). Speaks the real protocol through tunnel-proto.

use std::sync::Arc;

use anyhow::Result;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tunnel_proto::handshake::{agent_handshake, HandshakeError};
use tunnel_proto::ws::WsConn;
use tunnel_proto::{Hello, SiteSettings, Welcome, PROTOCOL_VERSION};

use super::comgate::Gateway;

pub type RawAgentWs = WsConn<TlsStream<TcpStream>>;

/// A websocket to `gw`'s agent listener, before any hello.
pub async fn agent_ws(gw: &Gateway) -> Result<RawAgentWs> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(gw.ca())? {
        roots.add(cert?)?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = TcpStream::connect(gw.agent_addr()).await?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("127.0.0.1")?, tcp)
        .await?;
    let url = format!("wss://127.0.0.1:{}/", gw.agent_port);
    Ok(tunnel_proto::ws::connect(&url, tls).await?)
}

/// Sends `hello` on a new connection; the websocket and serve's answer.
pub async fn say_hello(
    gw: &Gateway,
    hello: &Hello,
) -> Result<(RawAgentWs, Result<Welcome, HandshakeError>)> {
    let mut ws = agent_ws(gw).await?;
    let answer = agent_handshake(&mut ws, hello).await;
    Ok((ws, answer))
}

/// A Hello of `customer`/`system` with `secret`, Remote Access on.
pub fn hello(customer: &str, system: &str, secret: &str) -> Hello {
    Hello {
        version: PROTOCOL_VERSION,
        customer: customer.into(),
        system: system.into(),
        secret: secret.into(),
        settings: SiteSettings {
            remote_access: true,
            ..SiteSettings::default()
        },
        agent_version: "0.0.1-test".into(),
        features: Vec::new(),
        quick_lane: None,
    }
}
