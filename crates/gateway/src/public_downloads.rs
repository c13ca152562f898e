//! Builds the admin listener's public downloads from the serve configuration:
//! the PAC file, the Chrome extension that applies it, and the proxytunnel
//! utility bundle. Built once at start; the domain, the proxy address and the
//! CA do not change while serve runs.

use base64::Engine as _;

use crate::config::ServeConfig;
use crate::tls::Identity;

#[derive(Debug, thiserror::Error)]
pub enum DownloadsError {
    #[error("PAC file: {0}")]
    Pac(#[from] pac::PacError),
    #[error("Chrome extension bundle: {0}")]
    Extension(#[from] pac::chrome_extension::ExtensionError),
    #[error("proxytunnel utility bundle: {0}")]
    Utility(#[from] crate::utility_bundle::BundleError),
    #[error("reading {0}: {1}")]
    Ca(std::path::PathBuf, std::io::Error),
}

/// The PAC, the extension and the utility bundle for this deployment.
pub fn build(
    cfg: &ServeConfig,
    identity: &Identity,
) -> Result<admin::http::downloads::PublicDownloads, DownloadsError> {
    let proxy = cfg.public_address();
    let rule = pac::MaintRule::new(&cfg.domain, &proxy)?;
    let pac_text = pac::generate(&rule);
    let chrome_extension = pac::chrome_extension::bundle(&cfg.domain, &pac_text)?;
    let ca_pem = trust_anchor_pem(cfg, identity)?;
    let proxytunnel_utility = crate::utility_bundle::bundle(&cfg.domain, &proxy, &ca_pem)?;
    Ok(admin::http::downloads::PublicDownloads {
        pac: pac_text,
        chrome_extension,
        proxytunnel_utility,
    })
}

/// What partners' proxytunnel must trust: the generated CA, or with
/// operator-provided certificates the last certificate of the served chain
/// (the operator's CA or intermediate).
fn trust_anchor_pem(cfg: &ServeConfig, identity: &Identity) -> Result<String, DownloadsError> {
    if cfg.tls.is_none() {
        let path = cfg.data_dir.join("ca.pem");
        return std::fs::read_to_string(&path).map_err(|e| DownloadsError::Ca(path, e));
    }
    let Some(last) = identity.chain.last() else {
        return Ok(String::new());
    };
    let b64 = base64::engine::general_purpose::STANDARD.encode(last.as_ref());
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    Ok(pem)
}
