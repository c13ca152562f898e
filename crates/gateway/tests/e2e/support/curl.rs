//! curl through the HTTPS front door:
//! `curl --proxy https://maint.<d>:<port> --proxy-cacert ca.pem --proxy-user u:p
//!  --resolve maint.<d>:<port>:127.0.0.1 --cacert <target ca> <url>`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

use super::comgate::Gateway;
use super::connect::Creds;
use super::harness::Harness;
use super::process::{self, Ran};
use super::tools;
use super::MAINT_HOST;

/// One curl run: the CONNECT status (`%{http_connect}`), the HTTP status, the body and
/// the verbose trace (which holds the proxy's response headers).
#[derive(Debug)]
pub struct CurlResult {
    pub connect_code: u16,
    pub http_code: u16,
    pub exit_code: Option<i32>,
    pub body: String,
    pub verbose: String,
    pub ran: Ran,
}

impl CurlResult {
    /// The proxy's `Proxy-Authenticate` header as curl -v printed it (`< Name: value`).
    pub fn proxy_authenticate(&self) -> Option<String> {
        self.verbose.lines().find_map(|l| {
            let l = l.trim_start_matches(['<', ' ']);
            let (name, value) = l.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("proxy-authenticate")
                .then(|| value.trim().to_string())
        })
    }
}

/// curl configured for one gateway.
pub struct Curl {
    proxy_port: u16,
    proxy_ca: PathBuf,
    dir: PathBuf,
}

impl Curl {
    pub fn new(h: &Harness, gw: &Gateway) -> Result<Curl> {
        Self::for_proxy(h, gw.port, &gw.ca())
    }

    /// curl for the front door on 127.0.0.1:`port` whose certificate `ca` signs.
    pub fn for_proxy(h: &Harness, port: u16, ca: &Path) -> Result<Curl> {
        Ok(Curl {
            proxy_port: port,
            proxy_ca: ca.to_path_buf(),
            dir: h.subdir("curl")?,
        })
    }

    /// GET `url` through the proxy; `creds` `None` sends no proxy credentials.
    pub async fn get(
        &self,
        url: &str,
        creds: Option<&Creds>,
        target_ca: &Path,
    ) -> Result<CurlResult> {
        let body_file = self.dir.join("body");
        let _ = std::fs::remove_file(&body_file);
        let mut cmd = std::process::Command::new(tools::path_of("curl")?);
        cmd.args(["-sS", "-v", "--max-time", "30"])
            .arg("--proxy")
            .arg(format!("https://{MAINT_HOST}:{}", self.proxy_port))
            .arg("--proxy-cacert")
            .arg(&self.proxy_ca)
            .arg("--resolve")
            .arg(format!("{MAINT_HOST}:{}:127.0.0.1", self.proxy_port))
            .arg("--cacert")
            .arg(target_ca)
            .arg("-o")
            .arg(&body_file)
            .arg("-w")
            .arg("%{http_connect} %{http_code}");
        if let Some(c) = creds {
            cmd.arg("--proxy-user").arg(c.joined());
        }
        cmd.arg(url);
        let ran = process::run(cmd, Duration::from_secs(45)).await?;
        let codes = ran.stdout_text();
        let mut parts = codes.split_whitespace();
        let connect_code = parts
            .next()
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("curl printed no CONNECT code:\n{}", ran.describe()))?;
        let http_code = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        let body = std::fs::read_to_string(&body_file).unwrap_or_default();
        Ok(CurlResult {
            connect_code,
            http_code,
            exit_code: ran.status.code(),
            body,
            verbose: ran.stderr_text(),
            ran,
        })
    }
}
