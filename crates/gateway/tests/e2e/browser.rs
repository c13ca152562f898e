//! Headless Chromium with comgate's PAC (fetched from the admin listener, the URL
//! partners configure): the page of a site's HTTPS service loads
//! through the front door (HTTP/2 CONNECT, Basic challenge answered by the browser),
//! several tunnels share one HTTP/2 connection, and a non-maint URL goes DIRECT
//! without touching comgate.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::ensure;

use crate::support::chromium::{self, Chromium};
use crate::support::comgate::Agent;
use crate::support::https_target::HttpsTarget;
use crate::support::site::Tenant;
use crate::support::{run, secs, Harness, DOMAIN, MAINT_HOST};

const PAGE_TEXT: &str = "Site web manager login";
const DIRECT_TEXT: &str = "Intranet page served directly";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chromium_loads_site_pages_through_the_front_door_over_http2() {
    run(|h: Harness| async move {
        require_tools!("python3");
        if !chromium::available()? {
            return Ok(());
        }
        let https = HttpsTarget::start(&h, PAGE_TEXT).await?;
        let direct = HttpsTarget::start(&h, DIRECT_TEXT).await?;
        let tenant = Tenant::start(&h).await?;
        let _agent = Agent::start(
            &tenant.gw,
            &tenant
                .agent_config()
                .port(7071, SocketAddr::from(([127, 0, 0, 1], https.port))),
        )
        .await?;
        let browser =
            Chromium::new(&h, &[&tenant.gw.ca(), &https.certs.ca, &direct.certs.ca]).await?;
        let pac = tenant.gw.pac_url();
        let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let site_host = format!("12345-ipo1.{MAINT_HOST}");
        let direct_host = format!("intranet.{DOMAIN}");
        let urls = vec![
            format!("https://{site_host}:7071/login"),
            format!("https://{site_host}:7071/status"),
            format!("https://{direct_host}:{}/", direct.port),
        ];
        let session = browser
            .load(
                &pac,
                &urls,
                Some(&tenant.creds),
                &[
                    (MAINT_HOST, loopback),
                    (&format!("admin.{DOMAIN}"), loopback),
                    (&direct_host, loopback),
                ],
            )
            .await?;
        ensure!(session.error.is_none(), "browser: {session:?}");
        for page in &session.pages[..2] {
            ensure!(
                page.status == Some(200)
                    && page.text.as_deref().is_some_and(|t| t.contains(PAGE_TEXT)),
                "site page through comgate: {page:?}"
            );
        }
        let d = &session.pages[2];
        ensure!(
            d.status == Some(200) && d.text.as_deref().is_some_and(|t| t.contains(DIRECT_TEXT)),
            "direct page: {d:?}"
        );
        ensure!(
            session
                .auth_challenges
                .iter()
                .any(|c| c.get("source").and_then(|s| s.as_str()) == Some("Proxy")),
            "the browser was never challenged by the proxy: {:?}",
            session.auth_challenges
        );

        // Every tunnel of the browser came over one connection (HTTP/2), and nothing
        // about the direct page reached comgate.
        let ev = tenant
            .gw
            .wait_audit(
                |e| e.get("account") == Some(tenant.creds.user.as_str()),
                secs(10),
            )
            .await?;
        let log = tenant.gw.log_text();
        ensure!(
            !log.contains(&direct_host),
            "the direct URL reached comgate:\n{log}"
        );
        let sources: HashSet<String> = tenant
            .gw
            .audit_events()
            .iter()
            .filter_map(|e| e.get("source").map(str::to_owned))
            .collect();
        ensure!(
            sources.len() == 1,
            "tunnels came over {} connections: {sources:?} (first: {})",
            sources.len(),
            ev.line
        );
        Ok(())
    })
    .await
}
