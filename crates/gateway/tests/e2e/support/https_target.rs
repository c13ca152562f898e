//! An HTTPS service of the site: `fixtures/https_target.py` (answers every GET with a
//! page whose `<h1>` is the given text) with a certificate from a test CA.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;

use super::certs::TargetCerts;
use super::harness::Harness;
use super::net;
use super::ports::free_port;
use super::process::Proc;
use super::tools;

/// The target script, copied from shared/acceptance.
pub const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/https_target.py"
);

/// A running HTTPS target on 127.0.0.1.
pub struct HttpsTarget {
    pub port: u16,
    pub certs: TargetCerts,
    _proc: Proc,
}

impl HttpsTarget {
    /// Starts the target answering with a page that contains `body`.
    pub async fn start(h: &Harness, body: &str) -> Result<HttpsTarget> {
        let certs = TargetCerts::generate(h)?;
        let port = free_port();
        let dir = h.subdir("https-target")?;
        // The system interpreter: a python3 earlier in PATH may lack the ssl module.
        let python = if std::path::Path::new("/usr/bin/python3").exists() {
            PathBuf::from("/usr/bin/python3")
        } else {
            tools::path_of("python3")?
        };
        let mut cmd = std::process::Command::new(python);
        cmd.arg(SCRIPT)
            .arg(format!("127.0.0.1:{port}"))
            .arg(&certs.cert)
            .arg(&certs.key)
            .arg(body);
        let mut proc = Proc::spawn("https_target.py", cmd, &dir.join("https-target.log"))?;
        net::wait_proc_listens(&mut proc, port, Duration::from_secs(15)).await?;
        Ok(HttpsTarget {
            port,
            certs,
            _proc: proc,
        })
    }
}
