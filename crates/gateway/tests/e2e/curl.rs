//! curl with `--proxy https://maint.<d>:<port> --proxy-cacert ca.pem --proxy-user u:p`
//! to an HTTPS service of the site, and the 407 answers without good credentials.

use std::net::SocketAddr;

use anyhow::{ensure, Result};

use crate::support::comgate::Agent;
use crate::support::connect::{Creds, Response};
use crate::support::curl::Curl;
use crate::support::https_target::HttpsTarget;
use crate::support::site::Tenant;
use crate::support::{run, Harness};

const PAGE_TEXT: &str = "Site web manager login";

fn url() -> String {
    format!("https://{}/login", Tenant::own(7071))
}

/// A 407 must challenge for Basic credentials.
fn check_challenge(resp: &Response) -> Result<()> {
    ensure!(resp.status == 407, "expected 407, got {}", resp.summary());
    let challenge = resp.header("proxy-authenticate").unwrap_or("");
    ensure!(
        challenge.starts_with("Basic realm=\""),
        "407 without `Proxy-Authenticate: Basic realm=\"...\"` (got {challenge:?})"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn curl_fetches_site_https_service_through_proxy() {
    run(|h: Harness| async move {
        require_tools!("curl", "python3");
        let https = HttpsTarget::start(&h, PAGE_TEXT).await?;
        let tenant = Tenant::start(&h).await?;
        let _agent = Agent::start(
            &tenant.gw,
            &tenant
                .agent_config()
                .port(7071, SocketAddr::from(([127, 0, 0, 1], https.port))),
        )
        .await?;
        let curl = Curl::new(&h, &tenant.gw)?;
        let res = curl
            .get(&url(), Some(&tenant.creds), &https.certs.ca)
            .await?;
        ensure!(
            res.connect_code == 200 && res.http_code == 200 && res.exit_code == Some(0),
            "curl: CONNECT {} GET {} exit {:?}\n{}",
            res.connect_code,
            res.http_code,
            res.exit_code,
            res.ran.describe()
        );
        ensure!(
            res.body.contains(PAGE_TEXT),
            "page body missing: {:?}",
            res.body
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn curl_with_wrong_password_gets_407_with_proxy_authenticate() {
    run(|h: Harness| async move {
        require_tools!("curl");
        let tenant = Tenant::start(&h).await?;
        let wrong = Creds::new(&tenant.creds.user, "not-the-password");
        let curl = Curl::new(&h, &tenant.gw)?;
        let res = curl.get(&url(), Some(&wrong), &tenant.gw.ca()).await?;
        ensure!(
            res.connect_code == 407,
            "curl saw CONNECT {} (want 407)\n{}",
            res.connect_code,
            res.ran.describe()
        );
        ensure!(
            res.exit_code != Some(0),
            "curl succeeded with a wrong password"
        );
        let challenge = res.proxy_authenticate().unwrap_or_default();
        ensure!(
            challenge.starts_with("Basic realm="),
            "curl -v shows no Basic challenge (got {challenge:?}):\n{}",
            res.verbose
        );
        // The same through the raw client, header by header.
        check_challenge(
            &tenant
                .front
                .status_of(&Tenant::own(22), Some(&wrong))
                .await?,
        )?;
        // An unknown user is answered exactly like a wrong password.
        let unknown = Creds::new("nobody-here", "whatever");
        check_challenge(
            &tenant
                .front
                .status_of(&Tenant::own(22), Some(&unknown))
                .await?,
        )?;
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn curl_without_credentials_gets_407() {
    run(|h: Harness| async move {
        require_tools!("curl");
        let tenant = Tenant::start(&h).await?;
        let curl = Curl::new(&h, &tenant.gw)?;
        let res = curl.get(&url(), None, &tenant.gw.ca()).await?;
        ensure!(
            res.connect_code == 407,
            "curl saw CONNECT {} (want 407)\n{}",
            res.connect_code,
            res.ran.describe()
        );
        let challenge = res.proxy_authenticate().unwrap_or_default();
        ensure!(
            challenge.starts_with("Basic realm="),
            "curl -v shows no Basic challenge (got {challenge:?}):\n{}",
            res.verbose
        );
        check_challenge(&tenant.front.status_of(&Tenant::own(22), None).await?)?;
        Ok(())
    })
    .await;
}

/// Chromium sends its first CONNECT without credentials and, after a 407 that
/// carries `Content-Length` and keeps the connection, retries with them on the
/// same connection (CLIENTS.md, gotcha 7).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn browser_retry_with_credentials_on_the_same_connection_after_407_works() {
    use crate::support::connect::{connect_head, read_answer};
    use crate::support::files::echo_roundtrip;
    use crate::support::targets::{echo, lo};
    use anyhow::Context as _;
    use tokio::io::AsyncWriteExt;
    run(|h: Harness| async move {
        let server = echo(lo(13), 0).await?;
        let tenant = Tenant::start(&h).await?;
        let _agent = Agent::start(
            &tenant.gw,
            &tenant.agent_config().tunnel("HTTPS", server.addr),
        )
        .await?;
        let target = Tenant::colocated(server.addr);

        let mut tls = tenant.front.tls().await?;
        tls.write_all(connect_head(&target, None).as_bytes())
            .await?;
        let first = read_answer(tls)
            .await?
            .context("no answer to the first CONNECT")?;
        check_challenge(&first.response)?;
        ensure!(
            first.response.header("content-length").is_some(),
            "a 407 meant to keep the connection needs Content-Length: {}",
            first.response.summary()
        );
        ensure!(
            !first
                .response
                .header("connection")
                .is_some_and(|v| v.eq_ignore_ascii_case("close")),
            "the 407 closed the connection: {}",
            first.response.summary()
        );

        let mut tls = first.stream;
        tls.write_all(connect_head(&target, Some(&tenant.creds)).as_bytes())
            .await?;
        let second = read_answer(tls)
            .await?
            .context("no answer to the retried CONNECT")?;
        ensure!(
            second.response.status == 200,
            "the retry on the same connection got {}",
            second.response.summary()
        );
        echo_roundtrip(
            second.stream,
            second.early,
            64 * 1024,
            crate::support::secs(10),
        )
        .await?;
        Ok(())
    })
    .await;
}
