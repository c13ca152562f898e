//! TLS material: the configured certificate, or a CA and server certificate
//! generated into `data_dir` on first start and reused afterwards.
//!
//! The generated server certificate names `maint.<domain>` itself (proxytunnel
//! checks the `--proxy` host against the SANs, and `*.maint.<domain>` does not
//! cover it), `admin.<domain>`, `*.maint.<domain>` and 127.0.0.1. The CA is
//! written as `data_dir/ca.pem` so that `proxytunnel -C`, `curl
//! --proxy-cacert` and agents can trust it. One certificate is served for
//! every SNI, including none and IP literals (proxytunnel sends those).
//!
//! PEM is read with `rustls-pki-types`' `PemObject` (rustls-pemfile is
//! unmaintained, RUSTSEC-2025-0134).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: no usable PEM {what} in it ({detail})")]
    Pem {
        path: PathBuf,
        what: &'static str,
        detail: String,
    },
    #[error("generating certificates: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A certificate chain and its key, ready for rustls.
pub struct Identity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("chain_len", &self.chain.len())
            .finish_non_exhaustive()
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Reads a PEM certificate chain and private key.
pub fn load_identity(cert: &Path, key: &Path) -> Result<Identity, TlsError> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Pem {
            path: cert.to_owned(),
            what: "certificate",
            detail: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::Pem {
            path: cert.to_owned(),
            what: "certificate",
            detail: "the file holds no CERTIFICATE block".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Pem {
        path: key.to_owned(),
        what: "private key",
        detail: e.to_string(),
    })?;
    Ok(Identity { chain, key })
}

/// Reads every certificate of a PEM file (a CA bundle to trust).
pub fn load_roots(path: &Path) -> Result<rustls::RootCertStore, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Pem {
            path: path.to_owned(),
            what: "certificate",
            detail: e.to_string(),
        })?;
    let mut roots = rustls::RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(TlsError::Pem {
            path: path.to_owned(),
            what: "CA certificate",
            detail: "no certificate could be used as a trust anchor".into(),
        });
    }
    Ok(roots)
}

const CA_CERT: &str = "ca.pem";
const CA_KEY: &str = "ca.key";
const SERVER_CERT: &str = "server.pem";
const SERVER_KEY: &str = "server.key";
const SERVER_NAMES: &str = "server.names";
const CA_SUBJECT: &str = "ca.subject";

/// The names the generated server certificate carries for `domain`.
pub fn server_names(domain: &str) -> Vec<String> {
    vec![
        format!("maint.{domain}"),
        format!("admin.{domain}"),
        format!("*.maint.{domain}"),
        "localhost".into(),
        "127.0.0.1".into(),
        "::1".into(),
    ]
}

/// The CA's parameters. Its common name is chosen once, at generation, and
/// kept in `ca.subject`: the issuer of every later server certificate must
/// carry exactly the CA's subject, whatever the domain is by then.
fn ca_params(common_name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "comgate");
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = time::OffsetDateTime::now_utc();
    // Valid from yesterday: tolerates clock skew between gateway and clients.
    params.not_before = now - std::time::Duration::from_secs(86_400);
    params.not_after = now + std::time::Duration::from_secs(10 * 365 * 86_400);
    params
}

/// Loads the generated CA and server certificate from `data_dir`, creating
/// what is missing. The server certificate is re-issued when the domain's
/// names changed; the CA is kept so that partners need not trust a new one.
pub fn ensure_generated(data_dir: &Path, domain: &str) -> Result<Identity, TlsError> {
    std::fs::create_dir_all(data_dir).map_err(io_err(data_dir))?;
    let ca_cert_path = data_dir.join(CA_CERT);
    let ca_key_path = data_dir.join(CA_KEY);
    let ca_subject_path = data_dir.join(CA_SUBJECT);
    let (ca_key, ca_pem, ca_cn) =
        if ca_cert_path.exists() && ca_key_path.exists() && ca_subject_path.exists() {
            let key_pem = std::fs::read_to_string(&ca_key_path).map_err(io_err(&ca_key_path))?;
            let key = KeyPair::from_pem(&key_pem).map_err(|e| TlsError::Pem {
                path: ca_key_path.clone(),
                what: "private key",
                detail: e.to_string(),
            })?;
            let pem = std::fs::read_to_string(&ca_cert_path).map_err(io_err(&ca_cert_path))?;
            let cn = std::fs::read_to_string(&ca_subject_path).map_err(io_err(&ca_subject_path))?;
            (key, pem, cn.trim().to_owned())
        } else {
            let key = KeyPair::generate()?;
            // Unique per installation, so that two comgate CAs never share a name.
            let cn = format!("comgate CA {:016x} ({domain})", rand::random::<u64>());
            let cert = ca_params(&cn).self_signed(&key)?;
            write_private(&ca_key_path, &key.serialize_pem())?;
            std::fs::write(&ca_cert_path, cert.pem()).map_err(io_err(&ca_cert_path))?;
            std::fs::write(&ca_subject_path, &cn).map_err(io_err(&ca_subject_path))?;
            // A new CA invalidates any server certificate it did not sign.
            let _ = std::fs::remove_file(data_dir.join(SERVER_NAMES));
            (key, cert.pem(), cn)
        };

    let names = server_names(domain).join("\n");
    let server_cert_path = data_dir.join(SERVER_CERT);
    let server_key_path = data_dir.join(SERVER_KEY);
    let names_path = data_dir.join(SERVER_NAMES);
    let current = std::fs::read_to_string(&names_path).unwrap_or_default();
    if !(server_cert_path.exists() && server_key_path.exists() && current == names) {
        // The issuer is rebuilt from the same distinguished name the CA was
        // made with; the CA's key signs, so the chain verifies.
        let issuer = Issuer::new(ca_params(&ca_cn), &ca_key);
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("maint.{domain}"));
        params.distinguished_name = dn;
        params.subject_alt_names = server_names(domain)
            .into_iter()
            .map(|n| match n.parse::<std::net::IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => n.try_into().map(SanType::DnsName),
            })
            .collect::<Result<_, _>>()?;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - std::time::Duration::from_secs(86_400);
        // 397 days: the longest lifetime browsers accept.
        params.not_after = now + std::time::Duration::from_secs(397 * 86_400);
        let cert = params.signed_by(&key, &issuer)?;
        write_private(&server_key_path, &key.serialize_pem())?;
        let chain = format!("{}{}", cert.pem(), ca_pem);
        std::fs::write(&server_cert_path, chain).map_err(io_err(&server_cert_path))?;
        std::fs::write(&names_path, &names).map_err(io_err(&names_path))?;
        tracing::info!(dir = %data_dir.display(), "generated a server certificate for maint.{domain}");
    }
    load_identity(&server_cert_path, &server_key_path)
}

fn write_private(path: &Path, contents: &str) -> Result<(), TlsError> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts.open(path).map_err(io_err(path))?;
    f.write_all(contents.as_bytes()).map_err(io_err(path))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server configuration serving `identity` for every SNI, with the given
/// ALPN protocols, session resumption by cache and tickets.
pub fn server_config(
    identity: &Identity,
    alpn: &[&[u8]],
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    Ok(Arc::new(tls_server_config(identity, alpn)?))
}

fn tls_server_config(
    identity: &Identity,
    alpn: &[&[u8]],
) -> Result<rustls::ServerConfig, TlsError> {
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(identity.chain.clone(), identity.key.clone_key())?;
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    cfg.session_storage = rustls::server::ServerSessionMemoryCache::new(16 * 1024);
    cfg.ticketer = rustls::crypto::ring::Ticketer::new()?;
    Ok(cfg)
}

/// The front door's server configuration: [`server_config`] with the
/// front door's ALPN protocols and the traffic secrets handed to comgate's
/// own record layer after the handshake (`own_tls`), TLS 1.2 and 1.3.
pub fn front_server_config(identity: &Identity) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let mut cfg = tls_server_config(identity, crate::front_door::ALPN)?;
    cfg.enable_secret_extraction = true;
    Ok(Arc::new(cfg))
}

/// The server configuration of the agents' listener: like
/// [`server_config`], but TLS 1.3 only and with the traffic secrets handed
/// to comgate's own record layer after the handshake (`own_tls`).
pub fn site_server_config(identity: &Identity) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(identity.chain.clone(), identity.key.clone_key())?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    cfg.session_storage = rustls::server::ServerSessionMemoryCache::new(16 * 1024);
    cfg.ticketer = rustls::crypto::ring::Ticketer::new()?;
    cfg.enable_secret_extraction = true;
    Ok(Arc::new(cfg))
}

/// The agent's configuration for its site connection: [`client_config`],
/// TLS 1.3 only, its traffic secrets handed to `own_tls`.
pub fn site_client_config(
    roots: rustls::RootCertStore,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.enable_secret_extraction = true;
    Ok(Arc::new(cfg))
}

/// A client configuration trusting `roots` (the agent's view of comgate).
pub fn client_config(roots: rustls::RootCertStore) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_material_is_reused_and_names_maint_itself() {
        let dir = tempfile::tempdir().unwrap();
        let first = ensure_generated(dir.path(), "example.test").unwrap();
        let ca_before = std::fs::read(dir.path().join("ca.pem")).unwrap();
        let second = ensure_generated(dir.path(), "example.test").unwrap();
        assert_eq!(first.chain[0], second.chain[0], "reused, not regenerated");
        // Another domain re-issues the server certificate under the same CA.
        let third = ensure_generated(dir.path(), "other.test").unwrap();
        assert_ne!(first.chain[0], third.chain[0]);
        assert_eq!(ca_before, std::fs::read(dir.path().join("ca.pem")).unwrap());

        // The chain verifies against ca.pem for maint.<domain> and 127.0.0.1.
        let roots = load_roots(&dir.path().join("ca.pem")).unwrap();
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            provider(),
        )
        .build()
        .unwrap();
        use rustls::client::danger::ServerCertVerifier;
        let now = rustls::pki_types::UnixTime::now();
        for name in [
            "maint.other.test",
            "x-y.maint.other.test",
            "admin.other.test",
            "127.0.0.1",
        ] {
            let sn = rustls::pki_types::ServerName::try_from(name).unwrap();
            verifier
                .verify_server_cert(&third.chain[0], &third.chain[1..], &sn, &[], now)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let sn = rustls::pki_types::ServerName::try_from("maint.example.test").unwrap();
        assert!(verifier
            .verify_server_cert(&third.chain[0], &third.chain[1..], &sn, &[], now)
            .is_err());
    }
}
