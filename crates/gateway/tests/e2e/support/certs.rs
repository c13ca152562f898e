//! Test certificates made with rcgen: a CA of the test's own and one server
//! certificate it signs.

use std::path::PathBuf;

use anyhow::Result;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

use super::harness::Harness;
use super::DOMAIN;

/// A CA and a leaf certificate for `*.maint.<domain>`, `intranet.<domain>`, localhost
/// and 127.0.0.1.
pub struct TargetCerts {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TargetCerts {
    pub fn generate(h: &Harness) -> Result<TargetCerts> {
        let dir = h.subdir("test-ca")?;
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "comgate e2e target CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let leaf_key = KeyPair::generate()?;
        let mut leaf_params = CertificateParams::new(vec![
            format!("*.maint.{DOMAIN}"),
            // A non-maint name for pages a browser must load DIRECT.
            format!("intranet.{DOMAIN}"),
            "localhost".to_string(),
            "127.0.0.1".to_string(),
        ])?;
        leaf_params
            .distinguished_name
            .push(DnType::CommonName, "site https service");
        let leaf = leaf_params.signed_by(&leaf_key, &issuer)?;

        let certs = TargetCerts {
            ca: dir.join("ca.pem"),
            cert: dir.join("target.pem"),
            key: dir.join("target.key"),
        };
        std::fs::write(&certs.ca, ca_cert.pem())?;
        std::fs::write(&certs.cert, leaf.pem())?;
        std::fs::write(&certs.key, leaf_key.serialize_pem())?;
        Ok(certs)
    }
}
