//! The central-management proxy (`[central] listen`): the admin tools' addresses
//! `https://admin.<domain>:8443/<customer-id>[/<ip>]/...` reach the system's own port
//! 8443 through its agent, only with Centralized Management on, and never another
//! customer's system. Real curl and a tokio-tungstenite client on loopback; the system
//! is a self-signed HTTPS service (`support::system_web`).

use std::net::{Ipv4Addr, SocketAddr};

use anyhow::{bail, ensure, Context, Result};
use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use tunnel_proto::{Access, OpenError, Target as StreamTarget, CENTRAL_PORT};

use crate::support::central::{
    admin_host, raw_get, raw_request, tls_connect, websocket, CentralCurl, CentralSite,
};
use crate::support::comgate::{Agent, AgentConfig, GatewayOptions};
use crate::support::fake_gateway::FakeGateway;
use crate::support::files::random_bytes;
use crate::support::ports::free_port;
use crate::support::site::{Tenant, CUSTOMER};
use crate::support::system_web::{page_heading, SystemWeb};
use crate::support::targets::{counting, lo};
use crate::support::{millis, run, secs, Harness};

const PAGE: &str = "/WebManagement/WebManagement.html";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn web_manager_page_redirects_and_cookies_work_under_the_customer_prefix() {
    run(|h: Harness| async move {
        require_tools!("curl");
        let site = CentralSite::start(&h).await?;
        let gw = site.gw();
        let curl = CentralCurl::new(&h, gw)?;
        let public = format!("{}:{}", admin_host(), gw.central_port);

        // The page, with what the system was told.
        let page = curl.get(&format!("/12345{PAGE}"), &[]).await?;
        ensure!(page.status == 200, "page: {page:?}");
        for expected in [
            page_heading("ipo1"),
            format!("host={public}"),
            "x-forwarded-for=127.0.0.1".to_string(),
            "x-forwarded-proto=https".to_string(),
            format!("x-forwarded-host={public}"),
            "alpn=http/1.1".to_string(),
            format!("path={PAGE}"),
        ] {
            ensure!(
                page.body.contains(&expected),
                "the page lacks {expected:?}:\n{}",
                page.body
            );
        }

        // A relative redirect, followed by curl -L, lands under the prefix.
        let rel = curl.get("/12345/redirect/relative", &["-L"]).await?;
        ensure!(
            rel.status == 200 && rel.body.contains(&page_heading("ipo1")),
            "{rel:?}"
        );
        ensure!(
            rel.url == curl.url(&format!("/12345{PAGE}")),
            "relative redirect ended at {}",
            rel.url
        );
        ensure!(
            rel.header_values("location") == [format!("/12345{PAGE}")],
            "Location: {:?}",
            rel.header_values("location")
        );

        // An absolute redirect naming the system's own address (the host it was
        // sent) is moved under the prefix too.
        let abs = curl.get("/12345/redirect/absolute", &["-L"]).await?;
        ensure!(
            abs.status == 200 && abs.body.contains(&page_heading("ipo1")),
            "{abs:?}"
        );
        ensure!(
            abs.header_values("location") == [curl.url(&format!("/12345{PAGE}"))],
            "Location: {:?}",
            abs.header_values("location")
        );

        // The session cookie is scoped to the customer's prefix and host-only.
        let jar = curl.jar();
        let jar = jar.to_string_lossy();
        let login = curl.get("/12345/login", &["-c", &jar]).await?;
        let cookie = login.header_values("set-cookie");
        ensure!(
            cookie.len() == 1
                && cookie[0].contains("Path=/12345/")
                && !cookie[0].to_ascii_lowercase().contains("domain"),
            "Set-Cookie: {cookie:?}"
        );
        let whoami = curl.get("/12345/whoami", &["-b", &jar]).await?;
        ensure!(
            whoami.body.contains("cookie=session=ipo1"),
            "the cookie did not come back under the prefix: {}",
            whoami.body
        );

        // The SysMon/SSA address form: the prefix alone sends a browser to `/12345/`.
        let bare = curl.get("/12345", &[]).await?;
        ensure!(
            bare.status == 308 && bare.header_values("location") == ["/12345/"],
            "{bare:?}"
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn websocket_echo_passes_through_the_central_proxy() {
    run(|h: Harness| async move {
        let site = CentralSite::start(&h).await?;
        let mut ws = websocket(site.gw(), "/12345/ws").await?;
        let payload = random_bytes(200 * 1024);
        for msg in [
            Message::text("System Status says hello"),
            Message::binary(payload.clone()),
            Message::text("and goodbye"),
        ] {
            ws.send(msg.clone()).await?;
            let back = tokio::time::timeout(secs(20), ws.next())
                .await
                .context("no echo within 20 s")?
                .context("websocket closed")??;
            ensure!(back == msg, "echo differs: sent {} bytes", msg.len());
        }
        ws.close(None).await?;
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bodies_stream_both_ways_without_waiting_for_their_end() {
    run(|h: Harness| async move {
        require_tools!("curl");
        let site = CentralSite::start(&h).await?;
        let gw = site.gw();

        // The system sends "first" and holds the rest until the test has seen it: a
        // proxy that buffered whole responses would never deliver it.
        let mut tls = tls_connect(gw).await?;
        let req = format!(
            "GET /12345/drip HTTP/1.1\r\nHost: {}:{}\r\nConnection: close\r\n\r\n",
            admin_host(),
            gw.central_port
        );
        tls.write_all(req.as_bytes()).await?;
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        tokio::time::timeout(secs(15), async {
            while !String::from_utf8_lossy(&seen).contains("first\n") {
                let n = tls.read(&mut buf).await?;
                ensure!(n > 0, "closed before the first chunk");
                seen.extend_from_slice(&buf[..n]);
            }
            Ok(())
        })
        .await
        .context("the first chunk did not arrive while the response was still open")??;
        site.web.release_drip();
        tokio::time::timeout(secs(15), async {
            while !String::from_utf8_lossy(&seen).contains("second\n") {
                let n = tls.read(&mut buf).await?;
                ensure!(n > 0, "closed before the second chunk");
                seen.extend_from_slice(&buf[..n]);
            }
            Ok(())
        })
        .await
        .context("the second chunk did not arrive")??;

        // A 6 MiB upload is echoed back byte for byte (streamed both ways).
        let text = base64::engine::general_purpose::STANDARD.encode(random_bytes(4_500_000));
        let upload = h.path().join("upload.txt");
        std::fs::write(&upload, &text)?;
        let curl = CentralCurl::new(&h, gw)?;
        let at = format!("@{}", upload.display());
        let echoed = curl
            .get(
                "/12345/echo",
                &["--data-binary", &at, "-H", "Content-Type: text/plain"],
            )
            .await?;
        ensure!(echoed.status == 200, "{}", echoed.ran.describe());
        ensure!(
            echoed.body == text,
            "echo differs: sent {} bytes, got {}",
            text.len(),
            echoed.body.len()
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn centralized_management_off_gives_403_with_the_unknown_customer_answer() {
    run(|h: Harness| async move {
        require_tools!("curl");
        // Remote Access on, Centralized Management off, 8443 mapped to the system.
        let site = CentralSite::start_with(&h, &GatewayOptions::default(), |c| {
            c.centralized_management(false)
        })
        .await?;
        let gw = site.gw();
        let curl = CentralCurl::new(&h, gw)?;
        let off = curl.get(&format!("/12345{PAGE}"), &[]).await?;
        ensure!(off.status == 403, "CM off: {off:?}");
        let unknown = curl.get(&format!("/99999{PAGE}"), &[]).await?;
        ensure!(unknown.status == 403, "unknown customer: {unknown:?}");
        ensure!(
            off.body == unknown.body && !off.body.is_empty(),
            "CM off and an unknown customer must be told the same:\n{}\n---\n{}",
            off.body,
            unknown.body
        );
        // A known customer whose system is not connected: the same again.
        gw.customer("55555", "Quiet Clinic", "reseller-a", None)
            .await?;
        gw.system("55555", "ipo", true).await?;
        let offline = raw_get(gw, &format!("/55555{PAGE}")).await?;
        ensure!(
            offline.status == 403 && offline.body_text() == unknown.body,
            "never-seen offline system: {}",
            offline.summary()
        );
        ensure!(
            site.web.requests() == 0,
            "the system was asked {} times",
            site.web.requests()
        );
        // The front door still reaches the same port under Remote Access.
        let front = site
            .tenant
            .front
            .open(&Tenant::own(8443), &site.tenant.creds)
            .await?;
        ensure!(front.response.status == 200, "{}", front.response.summary());
        Ok(())
    })
    .await;
}

/// What the agent says to a central stream, asked directly (the real gateway would
/// have refused it from the reported settings already).
async fn central_open(
    mux: &tunnel_proto::MuxHandle,
    target: StreamTarget,
) -> Result<std::result::Result<tunnel_proto::MuxStream, OpenError>> {
    tokio::time::timeout(secs(10), mux.open_as(target, Access::Central))
        .await
        .context("the agent neither accepted nor refused within 10 s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn agent_refuses_central_streams_itself_when_centralized_management_is_off() {
    run(|h: Harness| async move {
        let system = counting(lo(1), free_port()).await?;
        let ipo2 = counting(lo(7), free_port()).await?;
        let ipo2_ip = Ipv4Addr::new(127, 0, 0, 7);

        // Remote Access and Co-located Servers on, Centralized Management off.
        let mut fake = FakeGateway::start(&h).await?;
        let cfg = AgentConfig::new("12345", "ipo1", "any-secret")
            .port(8443, system.addr)
            .tunnel("ipo2", SocketAddr::from((ipo2_ip, CENTRAL_PORT)));
        let _agent = Agent::spawn_for(&h, &fake.url(), &fake.ca, &cfg)?;
        let session = fake.session(secs(20)).await?;
        ensure!(
            session.hello.has_feature("central_streams"),
            "the agent did not announce central streams: {:?}",
            session.hello
        );
        for target in [
            StreamTarget::System { port: CENTRAL_PORT },
            StreamTarget::Colocated {
                ip: ipo2_ip,
                port: CENTRAL_PORT,
            },
        ] {
            match central_open(&session.mux, target).await? {
                Err(OpenError::Refused { code, reason }) => {
                    ensure!(
                        code == tunnel_proto::codes::REFUSE_POLICY
                            && reason.contains("Centralized Management"),
                        "{target}: refused with {code}: {reason}"
                    );
                }
                Err(e) => bail!("{target}: expected a policy refusal, got {e}"),
                Ok(_) => bail!("{target}: the agent ACCEPTED a central stream with CM off"),
            }
        }
        // Under Remote Access the same port is allowed: the refusal above was the
        // Centralized Management check, not a missing port.
        tokio::time::timeout(
            secs(10),
            session
                .mux
                .open(StreamTarget::System { port: CENTRAL_PORT }),
        )
        .await??;
        tokio::time::sleep(millis(300)).await;
        ensure!(
            system.accepted() == 1 && ipo2.accepted() == 0,
            "dialed: system {} times, ipo2 {} times",
            system.accepted(),
            ipo2.accepted()
        );

        // Centralized Management on, Remote Access off: central streams are dialed,
        // Remote Access ones refused.
        let mut fake2 = FakeGateway::start(&h).await?;
        let cfg2 = AgentConfig::new("12345", "ipo1", "any-secret")
            .remote_access(false)
            .colocated_servers(false)
            .centralized_management(true)
            .port(8443, system.addr);
        let _agent2 = Agent::spawn_for(&h, &fake2.url(), &fake2.ca, &cfg2)?;
        let session2 = fake2.session(secs(20)).await?;
        let opened =
            central_open(&session2.mux, StreamTarget::System { port: CENTRAL_PORT }).await?;
        ensure!(opened.is_ok(), "CM on: {:?}", opened.err());
        let remote = tokio::time::timeout(
            secs(10),
            session2
                .mux
                .open(StreamTarget::System { port: CENTRAL_PORT }),
        )
        .await?;
        ensure!(
            matches!(remote, Err(OpenError::Refused { .. })),
            "Remote Access off, yet a Remote Access stream opened"
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn another_customers_prefix_never_reaches_this_system() {
    run(|h: Harness| async move {
        require_tools!("curl");
        let a = CentralSite::start(&h).await?;
        let gw = a.gw();
        // Customer 67890 of another reseller, its own system, agent and CM on.
        gw.customer("67890", "Other Clinic", "reseller-b", None)
            .await?;
        let secret_b = gw.system("67890", "ipo9", true).await?;
        let web_b = SystemWeb::start(SocketAddr::from((lo(2), 0)), "ipo9").await?;
        let _agent_b = Agent::start(
            gw,
            &AgentConfig::new("67890", "ipo9", &secret_b)
                .centralized_management(true)
                .port(8443, web_b.addr),
        )
        .await?;

        let curl = CentralCurl::new(&h, gw)?;
        let b_page = curl.get(&format!("/67890{PAGE}"), &[]).await?;
        ensure!(
            b_page.status == 200
                && b_page.body.contains(&page_heading("ipo9"))
                && !b_page.body.contains(&page_heading("ipo1")),
            "/67890: {b_page:?}"
        );
        let a_page = curl.get(&format!("/12345{PAGE}"), &[]).await?;
        ensure!(a_page.body.contains(&page_heading("ipo1")), "/12345: {a_page:?}");

        let a_before = a.web.requests();
        // Traversal from B's prefix into A's, every spelling: refused before routing.
        for target in [
            format!("/67890/..%2f12345{PAGE}"),
            format!("/67890/..%2F12345{PAGE}"),
            format!("/67890/../12345{PAGE}"),
            format!("/67890/%2e%2e/12345{PAGE}"),
            format!("/67890%2f..%2f12345{PAGE}"),
            format!("/67890/.%2e/12345{PAGE}"),
            format!("/67890/..\\12345{PAGE}"),
        ] {
            let resp = raw_get(gw, &target).await?;
            ensure!(
                resp.status == 400 || resp.status == 403,
                "{target}: {}",
                resp.summary()
            );
        }
        // An absolute-form target naming another host: not a forward proxy.
        let foreign = raw_get(gw, &format!("https://12345-ipo1.maint.example.test:8443{PAGE}")).await?;
        ensure!(foreign.status == 400, "absolute-form: {}", foreign.summary());
        // The Host header does not route: B's path with A's names in Host is B.
        let spoofed = raw_request(
            gw,
            &format!(
                "GET /67890{PAGE} HTTP/1.1\r\nHost: 12345.maint.example.test\r\nConnection: close\r\n\r\n"
            ),
        )
        .await?;
        ensure!(
            spoofed.status == 200 && spoofed.body_text().contains(&page_heading("ipo9")),
            "Host spoof: {}",
            spoofed.summary()
        );
        // A prefix that differs only by a character is another (unknown) customer.
        for target in [format!("/123456{PAGE}"), format!("/1234{PAGE}")] {
            let resp = raw_get(gw, &target).await?;
            ensure!(resp.status == 403, "{target}: {}", resp.summary());
        }
        ensure!(
            a.web.requests() == a_before,
            "customer 12345's system was asked {} more times",
            a.web.requests() - a_before
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unreachable_service_gives_504_and_an_offline_system_502() {
    run(|h: Harness| async move {
        let tenant = Tenant::start(&h).await?;
        let gw = &tenant.gw;
        // 8443 mapped to a port nothing listens on.
        let closed = SocketAddr::from((lo(1), free_port()));
        let mut agent = Agent::start(
            gw,
            &tenant
                .agent_config()
                .centralized_management(true)
                .port(8443, closed),
        )
        .await?;
        let resp = raw_get(gw, &format!("/{CUSTOMER}{PAGE}")).await?;
        ensure!(resp.status == 504, "service down: {}", resp.summary());

        // The system was seen with Centralized Management on, so its going offline
        // may be told as such.
        agent.kill();
        let deadline = std::time::Instant::now() + secs(30);
        loop {
            let resp = raw_get(gw, &format!("/{CUSTOMER}{PAGE}")).await?;
            if resp.status == 502 {
                ensure!(resp.body_text().contains("offline"), "{}", resp.summary());
                break;
            }
            if std::time::Instant::now() > deadline {
                bail!("agent killed, still answered: {}", resp.summary());
            }
            tokio::time::sleep(millis(300)).await;
        }
        Ok(())
    })
    .await;
}

/// A system web service on some 127.0.0.x:8443 (the port the manual's
/// `admin.<domain>/<customer>/<ip>` form implies), x picked from what is free.
async fn web_on_8443(name: &str) -> Result<SystemWeb> {
    for _ in 0..40 {
        let x: u8 = rand::random_range(100..=250);
        if let Ok(web) = SystemWeb::start(SocketAddr::from((lo(x), CENTRAL_PORT)), name).await {
            return Ok(web);
        }
    }
    bail!("no 127.0.0.x:8443 was free")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn colocated_system_is_reached_only_where_a_tunnel_lists_it() {
    run(|h: Harness| async move {
        require_tools!("curl");
        let ipo2 = web_on_8443("ipo2").await?;
        let ip = ipo2.addr.ip().to_string();
        let site = CentralSite::start_with(&h, &GatewayOptions::default(), |c| {
            c.tunnel("ipo2", ipo2.addr)
        })
        .await?;
        let curl = CentralCurl::new(&h, site.gw())?;
        let page = curl.get(&format!("/12345/{ip}{PAGE}"), &[]).await?;
        ensure!(
            page.status == 200 && page.body.contains(&page_heading("ipo2")),
            "{page:?}"
        );
        let rel = curl
            .get(&format!("/12345/{ip}/redirect/relative"), &["-L"])
            .await?;
        ensure!(
            rel.url == curl.url(&format!("/12345/{ip}{PAGE}"))
                && rel.body.contains(&page_heading("ipo2")),
            "{rel:?}"
        );
        // An address no tunnel lists: refused, with the reason (the customer's
        // system is publicly reachable, so nothing is disclosed).
        let unlisted = raw_get(site.gw(), &format!("/12345/127.0.0.99{PAGE}")).await?;
        ensure!(
            unlisted.status == 403 && unlisted.body_text().contains("no tunnel"),
            "{}",
            unlisted.summary()
        );
        Ok(())
    })
    .await;
}

/// Reads one response with a `Content-Length` body from a kept-alive connection.
async fn read_one(tls: &mut (impl AsyncReadExt + Unpin)) -> Result<(u16, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .context("no content-length")?;
            if buf.len() >= end + 4 + len {
                let status = head
                    .split_whitespace()
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .context("status")?;
                return Ok((status, buf[end + 4..end + 4 + len].to_vec()));
            }
        }
        let n = tls.read(&mut chunk).await?;
        ensure!(n > 0, "closed mid-response");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Whether the peer closes the connection within `within` (reads return 0 or fail).
async fn closes_within(tls: &mut (impl AsyncReadExt + Unpin), within: std::time::Duration) -> bool {
    let mut chunk = [0u8; 1024];
    matches!(
        tokio::time::timeout(within, async {
            loop {
                match tls.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => continue,
                }
            }
        })
        .await,
        Ok(())
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn central_limits_head_size_head_time_idle_time_and_concurrency() {
    run(|h: Harness| async move {
        let opts = GatewayOptions::default()
            .central("max_head_bytes", 8192)
            .central("head_timeout_ms", 1000)
            .central("idle_timeout_secs", 1)
            .central("max_concurrent_requests", 1);
        let site = CentralSite::start_with(&h, &opts, |c| c).await?;
        let gw = site.gw();
        let host = format!("{}:{}", admin_host(), gw.central_port);

        // A head over max_head_bytes: 431.
        let big = raw_request(
            gw,
            &format!(
                "GET /12345{PAGE} HTTP/1.1\r\nHost: {host}\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
                "x".repeat(9000)
            ),
        )
        .await?;
        ensure!(big.status == 431, "oversized head: {}", big.summary());

        // A head that never completes: closed after head_timeout.
        let mut slow = tls_connect(gw).await?;
        slow.write_all(b"GET /12345/ HTTP/1.1\r\nHost: ").await?;
        let started = std::time::Instant::now();
        ensure!(
            closes_within(&mut slow, secs(5)).await,
            "a partial head was kept open for 5 s"
        );
        ensure!(
            started.elapsed() >= millis(700),
            "closed after only {:?}",
            started.elapsed()
        );

        // Keep-alive: a second request on the same connection is served; then an
        // idle connection is closed after idle_timeout.
        let mut conn = tls_connect(gw).await?;
        let req = format!("GET /12345{PAGE} HTTP/1.1\r\nHost: {host}\r\n\r\n");
        for _ in 0..2 {
            conn.write_all(req.as_bytes()).await?;
            let (status, body) = tokio::time::timeout(secs(15), read_one(&mut conn)).await??;
            ensure!(
                status == 200 && String::from_utf8_lossy(&body).contains(&page_heading("ipo1")),
                "keep-alive request: {status}"
            );
        }
        let idle_from = std::time::Instant::now();
        ensure!(
            closes_within(&mut conn, secs(5)).await,
            "an idle connection was kept for 5 s"
        );
        ensure!(
            idle_from.elapsed() >= millis(700),
            "idle connection closed after only {:?}",
            idle_from.elapsed()
        );

        // One request at a time: an open websocket holds the only slot.
        let mut ws = websocket(gw, "/12345/ws").await?;
        let busy = raw_get(gw, &format!("/12345{PAGE}")).await?;
        ensure!(
            busy.status == 503 && busy.header("retry-after").is_some(),
            "second request while a websocket is open: {}",
            busy.summary()
        );
        ws.close(None).await?;
        drop(ws);
        let deadline = std::time::Instant::now() + secs(10);
        loop {
            let resp = raw_get(gw, &format!("/12345{PAGE}")).await?;
            if resp.status == 200 {
                break;
            }
            if std::time::Instant::now() > deadline {
                bail!("slot not released after the websocket closed: {}", resp.summary());
            }
            tokio::time::sleep(millis(200)).await;
        }
        Ok(())
    })
    .await;
}

/// An agent of protocol version 1 from before central streams: its Hello lists no
/// `features`. It speaks the real protocol (tunnel-proto) with the real secret.
async fn old_agent(
    gw: &crate::support::comgate::Gateway,
    secret: &str,
) -> Result<(tunnel_proto::MuxHandle, tunnel_proto::Incoming)> {
    use crate::support::raw_agent::{hello, say_hello};
    use tunnel_proto::{MuxConfig, Role, SiteSettings};

    let hello = tunnel_proto::Hello {
        settings: SiteSettings {
            remote_access: true,
            colocated_servers: false,
            centralized_management: true,
            own_ports: vec![CENTRAL_PORT],
            tunnels: Vec::new(),
        },
        agent_version: "0.0.1-before-central".into(),
        ..hello(CUSTOMER, "ipo1", secret)
    };
    let (ws, answer) = say_hello(gw, &hello).await?;
    answer?;
    Ok(tunnel_proto::start(ws, Role::Agent, MuxConfig::default()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_agent_without_central_streams_is_never_sent_one() {
    run(|h: Harness| async move {
        let tenant = Tenant::start(&h).await?;
        let gw = &tenant.gw;
        let (mux, mut incoming) = old_agent(gw, &tenant.secret).await?;
        // Count what the gateway asks of this agent (refusing everything).
        let asked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = asked.clone();
        tokio::spawn(async move {
            while let Some(event) = incoming.next().await {
                if let tunnel_proto::IncomingEvent::Stream(s) = event {
                    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    s.refuse(tunnel_proto::codes::REFUSE_POLICY, "test agent");
                }
            }
        });
        tokio::time::sleep(millis(300)).await;
        // Centralized Management is reported on, but this agent could not check a
        // central stream itself (and would drop the whole session on one): 502, and
        // no fallback to a Remote Access stream.
        let resp = raw_get(gw, &format!("/{CUSTOMER}{PAGE}")).await?;
        ensure!(
            resp.status == 502 && resp.body_text().contains("too old"),
            "{}",
            resp.summary()
        );
        ensure!(!mux.is_closed(), "the old agent's session was closed");
        ensure!(
            asked.load(std::sync::atomic::Ordering::SeqCst) == 0,
            "the gateway opened a stream to the old agent"
        );
        Ok(())
    })
    .await;
}
