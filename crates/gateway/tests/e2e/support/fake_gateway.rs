//! A stand-in for comgate's agent listener, built from the product's own protocol crate
//! (`tunnel-proto`): it accepts one agent, welcomes it without checking its secret, and
//! then lets the test open any stream it likes. That is how a test asks the agent
//! directly for a target its settings forbid, which the real gateway never does
//! (it refuses such requests itself, from what the agent reported).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tunnel_proto::handshake::{read_hello, send_welcome};
use tunnel_proto::{Hello, MuxConfig, MuxHandle, Role, Welcome, PROTOCOL_VERSION};

use super::certs::TargetCerts;
use super::harness::Harness;

/// An agent session accepted by the [`FakeGateway`].
pub struct Session {
    /// What the agent said about itself (customer, system, settings).
    pub hello: Hello,
    /// Opens streams to the agent.
    pub mux: MuxHandle,
}

/// A TLS websocket listener speaking the agent protocol, on 127.0.0.1.
pub struct FakeGateway {
    pub port: u16,
    /// The CA the agent must trust (`ca = ...` in its config).
    pub ca: PathBuf,
    sessions: mpsc::Receiver<Session>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeGateway {
    pub async fn start(h: &Harness) -> Result<FakeGateway> {
        let certs = TargetCerts::generate(h)?;
        let chain = vec![CertificateDer::from_pem_file(&certs.cert)?];
        let key = PrivateKeyDer::from_pem_file(&certs.key)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let (tx, sessions) = mpsc::channel(8);
        let task = tokio::spawn(async move {
            let mut incoming_drains = tokio::task::JoinSet::new();
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let Ok(tls) = acceptor.accept(tcp).await else {
                    continue;
                };
                let ws = tunnel_proto::ws::accept(tls).await;
                let Ok(mut ws) = ws else { continue };
                let Ok(hello) = read_hello(&mut ws).await else {
                    continue;
                };
                let welcome = Welcome {
                    version: PROTOCOL_VERSION,
                    heartbeat_ms: 15_000,
                    features: Vec::new(),
                    quick_lane: None,
                };
                if send_welcome(&mut ws, &welcome).await.is_err() {
                    continue;
                }
                let (mux, mut incoming) =
                    tunnel_proto::start(ws, Role::Gateway, MuxConfig::default());
                // Nobody expects streams or control messages from the agent; drain them.
                incoming_drains.spawn(async move { while incoming.next().await.is_some() {} });
                if tx.send(Session { hello, mux }).await.is_err() {
                    return;
                }
            }
        });
        Ok(FakeGateway {
            port,
            ca: certs.ca,
            sessions,
            task,
        })
    }

    /// `wss://127.0.0.1:<port>` for the agent's `gateway` key.
    pub fn url(&self) -> String {
        format!("wss://127.0.0.1:{}", self.port)
    }

    /// The next agent session.
    pub async fn session(&mut self, timeout: Duration) -> Result<Session> {
        tokio::time::timeout(timeout, self.sessions.recv())
            .await
            .context("no agent completed the handshake with the fake gateway in time")?
            .context("the fake gateway stopped")
    }
}

impl Drop for FakeGateway {
    fn drop(&mut self) {
        self.task.abort();
    }
}
