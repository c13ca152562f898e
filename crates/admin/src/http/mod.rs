//! The admin listener (`[admin] listen`): HTTPS for operators' browsers, for
//! partners' browsers fetching the PAC file, and later for the REST API.
//!
//! This module owns the connection handling (TLS within a deadline, HTTP/1.1
//! and HTTP/2 through hyper, header timeout) so that the routes stay plain
//! axum handlers. Public routes live in [`downloads`]; everything not routed
//! answers 404.

pub mod downloads;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;
use tracing::Instrument;

/// The client's address, in every request's extensions (the audit log
/// names it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// Limits of one admin connection.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// TLS handshake, and each request head, must complete within this.
    pub head_timeout: Duration,
    /// Largest request head (HTTP/1.1) / header list (HTTP/2).
    pub max_head_bytes: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            head_timeout: Duration::from_secs(10),
            max_head_bytes: 16 * 1024,
        }
    }
}

/// Serves `app` over TLS on `listener` until the listener fails.
pub async fn serve(listener: TcpListener, acceptor: TlsAcceptor, app: Router, limits: HttpLimits) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "admin accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        let span = tracing::info_span!("admin_http", %peer);
        tokio::spawn(connection(tcp, peer, acceptor, app, limits).instrument(span));
    }
}

async fn connection(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    app: Router,
    limits: HttpLimits,
) {
    let _ = tcp.set_nodelay(true);
    let tls = match timeout(limits.head_timeout, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!("TLS handshake timed out");
            return;
        }
    };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.head_timeout)
        .max_buf_size(limits.max_head_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_head_bytes).unwrap_or(u32::MAX));
    let service = TowerToHyperService::new(app.layer(axum::Extension(PeerAddr(peer))));
    if let Err(e) = builder
        .serve_connection_with_upgrades(TokioIo::new(tls), service)
        .await
    {
        tracing::debug!(%peer, error = %e, "admin connection ended with an error");
    }
}
