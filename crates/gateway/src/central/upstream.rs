//! The system side of the central-management proxy: HTTPS over one mux
//! stream, with hyper's HTTP/1.1 client on top.
//!
//! IP Office serves its web services on 8443 with a self-signed certificate
//! made by each device for itself, so there is no CA to check it against
//! and no name it could be checked for: comgate does **not** verify the
//! system's certificate (it still checks that the system holds the key of
//! the certificate it shows, which rustls does as part of the handshake
//! signature). What authenticates the path instead is everything before it:
//! the stream runs inside the site agent's own TLS websocket to comgate,
//! which the agent authenticated with its secret, and the agent dials only
//! the system's own `[ports]` address or a co-located address its tunnels
//! list. TLS on this last hop keeps the system's login off the agent's
//! host, and is what the system speaks anyway. No SNI is sent (the system
//! has no name of ours to serve); ALPN offers only `http/1.1`.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio_rustls::TlsConnector;
use tracing::Instrument;
use tunnel_proto::mux::MuxStream;

/// The body type requests to the system carry: the client's body, streamed.
pub type UpstreamBody = BoxBody<Bytes, hyper::Error>;

/// Accepts whatever certificate the system presents (see the module docs),
/// but still verifies the handshake signature against it.
#[derive(Debug)]
struct SelfSignedSystem {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for SelfSignedSystem {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The TLS client configuration for systems (built once).
pub fn tls_connector() -> Result<TlsConnector, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(SelfSignedSystem { provider }))
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    cfg.enable_sni = false;
    Ok(TlsConnector::from(Arc::new(cfg)))
}

/// Why the HTTPS connection to the system could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("TLS with the system failed: {0}")]
    Tls(std::io::Error),
    #[error("HTTP/1.1 with the system failed: {0}")]
    Http(hyper::Error),
}

/// TLS, then an HTTP/1.1 client connection, over an accepted mux stream.
/// The connection task runs until the system or the last sender closes it,
/// and passes an upgrade (websocket) through.
pub async fn connect(
    connector: &TlsConnector,
    stream: MuxStream,
) -> Result<SendRequest<UpstreamBody>, UpstreamError> {
    // The name is not sent (no SNI) and not checked (see the module docs).
    let name = ServerName::IpAddress(std::net::Ipv4Addr::UNSPECIFIED.into());
    let tls = connector
        .connect(name, stream)
        .await
        .map_err(UpstreamError::Tls)?;
    let (sender, conn) = http1::Builder::new()
        .handshake(TokioIo::new(tls))
        .await
        .map_err(UpstreamError::Http)?;
    tokio::spawn(
        async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "connection to the system ended with an error");
            }
        }
        .in_current_span(),
    );
    Ok(sender)
}
