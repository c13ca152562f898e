//! Headless Chromium (Debian's `/usr/bin/chromium`) through a PAC file, driven by
//! `fixtures/chromium_pac.cjs` (playwright-core over CDP, answering the proxy's Basic
//! challenge). Trust is a `$HOME/.pki/nssdb` of the test's own (certutil), names come
//! from `--host-resolver-rules` only: the browser never looks anything up in DNS.
//!
//! playwright-core is an npm package: `scripts/test-all.sh` installs it into
//! `$COMGATE_NODE_DIR` (default `~/.cache/comgate-node`). It only drives the Debian
//! browser; no browser is downloaded.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use super::connect::Creds;
use super::harness::Harness;
use super::process::run;
use super::{secs, tools};

pub const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/chromium_pac.cjs"
);

/// Where playwright-core is installed.
fn playwright_dir() -> PathBuf {
    match std::env::var_os("COMGATE_NODE_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
            .join(".cache/comgate-node"),
    }
    .join("node_modules/playwright-core")
}

/// `Ok(true)` when chromium, node, certutil and playwright-core are there; the
/// skip-or-fail rule of [`tools::require`] otherwise.
pub fn available() -> Result<bool> {
    if !tools::require(&["chromium", "node", "certutil"])? {
        return Ok(false);
    }
    if playwright_dir().join("package.json").exists() {
        return Ok(true);
    }
    let msg = format!(
        "playwright-core not installed in {} (scripts/test-all.sh installs it)",
        playwright_dir().display()
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        bail!("CI=true and {msg}");
    }
    eprintln!("skipped: {msg}");
    Ok(false)
}

/// What the browser got for one URL (all fields show in failure messages).
#[derive(Debug, Deserialize)]
#[allow(dead_code)]
pub struct Page {
    pub url: String,
    pub status: Option<u16>,
    pub text: Option<String>,
    pub error: Option<String>,
}

/// The outcome of one browser session.
#[derive(Debug, Deserialize)]
#[allow(dead_code)]
pub struct Session {
    pub ok: bool,
    pub pages: Vec<Page>,
    #[serde(rename = "authChallenges", default)]
    pub auth_challenges: Vec<serde_json::Value>,
    pub error: Option<String>,
}

/// A browser profile: a HOME whose NSS database trusts the given CAs.
pub struct Chromium {
    home: PathBuf,
}

impl Chromium {
    pub async fn new(h: &Harness, trusted: &[&Path]) -> Result<Chromium> {
        let home = h.subdir("chromium-home")?;
        let db = home.join(".pki/nssdb");
        std::fs::create_dir_all(&db)?;
        let db_arg = format!("sql:{}", db.display());
        let mut cmd = std::process::Command::new(tools::path_of("certutil")?);
        cmd.args(["-N", "-d", &db_arg, "--empty-password"]);
        run(cmd, secs(30)).await?.ok()?;
        for (i, ca) in trusted.iter().enumerate() {
            let mut cmd = std::process::Command::new(tools::path_of("certutil")?);
            cmd.args([
                "-A",
                "-d",
                &db_arg,
                "-t",
                "C,,",
                "-n",
                &format!("test-ca-{i}"),
                "-i",
            ])
            .arg(ca);
            run(cmd, secs(30)).await?.ok()?;
        }
        Ok(Chromium { home })
    }

    /// Loads `urls` one after the other in one browser whose proxy settings come from
    /// `pac_url`; `resolve` maps host names to loopback addresses.
    pub async fn load(
        &self,
        pac_url: &str,
        urls: &[String],
        creds: Option<&Creds>,
        resolve: &[(&str, IpAddr)],
    ) -> Result<Session> {
        let mut cmd = std::process::Command::new(tools::path_of("node")?);
        cmd.arg(SCRIPT)
            .args(["--pac-url", pac_url])
            .args(["--home", &self.home.to_string_lossy()])
            .args(["--timeout-ms", "30000"])
            .env("COMGATE_PLAYWRIGHT", playwright_dir());
        for u in urls {
            cmd.args(["--url", u]);
        }
        if let Some(c) = creds {
            cmd.args(["--user", &c.user, "--pass", &c.pass]);
        }
        let rules: Vec<String> = resolve.iter().map(|(h, a)| format!("{h}={a}")).collect();
        if !rules.is_empty() {
            cmd.args(["--resolve", &rules.join(",")]);
        }
        let ran = run(cmd, secs(120)).await?;
        let line = ran
            .stdout_text()
            .lines()
            .rev()
            .find(|l| l.starts_with('{'))
            .map(str::to_owned)
            .with_context(|| format!("no JSON from the Chromium driver\n{}", ran.describe()))?;
        serde_json::from_str(&line).with_context(|| format!("driver output: {line}"))
    }
}
