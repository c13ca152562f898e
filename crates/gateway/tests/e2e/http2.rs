//! CONNECT over HTTP/2 at the front door: several tunnels on one TLS connection (as
//! Chromium does with an HTTPS proxy), the same authentication and refusals as over
//! HTTP/1.1 with the reason in `Proxy-Status`, half-close as END_STREAM, and the
//! connection's limits (concurrent streams, refused requests, idle time).

use std::collections::HashSet;

use anyhow::{ensure, Context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::comgate::GatewayOptions;
use crate::support::connect::Creds;
use crate::support::files::echo_roundtrip;
use crate::support::h2front::H2Conn;
use crate::support::site::{EchoSite, Tenant, CUSTOMER};
use crate::support::{maint_name, millis, run, secs, Harness};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn several_tunnels_share_one_http2_connection_byte_exact() {
    run(|h: Harness| async move {
        let site = EchoSite::start(&h, 31).await?;
        let t = &site.tenant;
        let conn = H2Conn::connect(t.gw.addr(), &t.gw.ca()).await?;
        let target = Tenant::colocated(site.server.addr);

        // Four tunnels at once on the one connection, one of them larger than the
        // HTTP/2 stream window so that flow control has to reopen it.
        let sizes = [16 << 20, 1 << 20, 256 << 10, 64 << 10];
        let mut runs = Vec::new();
        for n in sizes {
            let tunnel = conn.open(&target, &t.creds).await?;
            runs.push(tokio::spawn(echo_roundtrip(
                tunnel,
                Vec::new(),
                n,
                secs(60),
            )));
        }
        for r in runs {
            r.await??;
        }
        ensure!(
            site.server.accepted() == sizes.len(),
            "the echo server saw {} connections, expected {}",
            site.server.accepted(),
            sizes.len()
        );

        // The audit log shows every tunnel coming from the same TCP connection.
        let mut sources = HashSet::new();
        for n in sizes {
            let ev =
                t.gw.wait_audit(|e| e.number("bytes_up") == Some(n as u64), secs(10))
                    .await?;
            ensure!(
                ev.number("bytes_down") == Some(n as u64),
                "tunnel of {n} bytes: {}",
                ev.line
            );
            sources.insert(ev.get("source").unwrap_or_default().to_string());
        }
        ensure!(
            sources.len() == 1,
            "tunnels came from several connections: {sources:?}"
        );
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn http2_refusals_keep_status_reason_and_challenge() {
    run(|h: Harness| async move {
        let opts = GatewayOptions::default().gateway("max_requests_per_connection", 4);
        let site = EchoSite::start_with_options(&h, 32, &opts).await?;
        let t = &site.tenant;
        let conn = H2Conn::connect(t.gw.addr(), &t.gw.ca()).await?;
        let target = Tenant::colocated(site.server.addr);

        // 1st refusal: no credentials.
        let a = conn.connect_stream(&target, None).await?;
        ensure!(a.status == 407, "no credentials: {} {}", a.status, a.body);
        let challenge = a.header("proxy-authenticate").unwrap_or_default();
        ensure!(
            challenge.starts_with("Basic realm=\"comgate maint."),
            "challenge: {challenge:?}"
        );
        ensure!(
            a.header("proxy-status")
                .is_some_and(|s| s.contains("http_request_denied")),
            "proxy-status: {:?}",
            a.header("proxy-status")
        );

        // The browser's retry on the same connection, with credentials, works.
        let mut tunnel = conn.open(&target, &t.creds).await?;
        tunnel.write_all(b"over h2").await?;
        let mut got = [0u8; 7];
        tokio::time::timeout(secs(10), tunnel.read_exact(&mut got)).await??;
        ensure!(
            &got == b"over h2",
            "echo: {:?}",
            String::from_utf8_lossy(&got)
        );

        // 2nd: a customer this account does not serve; the same answer as unknown.
        let other = format!("{}:22", maint_name("99999", Some("ipo1"), None));
        let b = conn.connect_stream(&other, Some(&t.creds)).await?;
        ensure!(b.status == 403, "other customer: {} {}", b.status, b.body);
        ensure!(
            b.body.contains("No such customer or system"),
            "body: {}",
            b.body
        );

        // 3rd: wrong password.
        let bad = Creds::new(&t.creds.user, "wrong-password-1");
        let c = conn.connect_stream(&target, Some(&bad)).await?;
        ensure!(c.status == 407, "wrong password: {} {}", c.status, c.body);

        // 4th: not a maintenance address; comgate never dials anything itself.
        let d = conn
            .connect_stream("www.example.org:443", Some(&t.creds))
            .await?;
        ensure!(d.status == 403, "non-maint: {} {}", d.status, d.body);
        ensure!(
            d.header("proxy-status")
                .is_some_and(|s| s.contains("Not a maintenance address")),
            "proxy-status: {:?}",
            d.header("proxy-status")
        );

        // Four refusals: the connection is told GOAWAY, the open tunnel still works.
        tunnel.write_all(b"still").await?;
        let mut got = [0u8; 5];
        tokio::time::timeout(secs(10), tunnel.read_exact(&mut got)).await??;
        ensure!(&got == b"still", "tunnel after GOAWAY");
        let e = conn.connect_stream(&target, Some(&t.creds)).await;
        ensure!(
            e.is_err() || e.as_ref().is_ok_and(|a| a.status != 200),
            "a new stream after GOAWAY was admitted"
        );
        drop(tunnel);
        tokio::time::timeout(secs(10), conn.driver)
            .await
            .context("connection still open after GOAWAY and its last tunnel")??
            .ok();
        ensure!(
            t.gw.log_text().contains("customer=") && t.gw.log_text().contains(CUSTOMER),
            "the audit log names the customer"
        );
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn http2_half_close_is_end_stream() {
    run(|h: Harness| async move {
        let site = EchoSite::start(&h, 33).await?;
        let t = &site.tenant;
        let conn = H2Conn::connect(t.gw.addr(), &t.gw.ca()).await?;
        let mut tunnel = conn
            .open(&Tenant::colocated(site.server.addr), &t.creds)
            .await?;
        tunnel.write_all(b"last words").await?;
        tunnel.shutdown().await?;
        // The echo server answers and closes after our EOF: END_STREAM comes back.
        let mut got = Vec::new();
        tokio::time::timeout(secs(10), tunnel.read_to_end(&mut got))
            .await
            .context("no END_STREAM after the half-close")??;
        ensure!(
            got == b"last words",
            "got {:?}",
            String::from_utf8_lossy(&got)
        );
        let ev =
            t.gw.wait_audit(|e| e.number("bytes_up") == Some(10), secs(10))
                .await?;
        ensure!(
            ev.get("outcome") == Some("completed"),
            "outcome: {}",
            ev.line
        );
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn http2_stream_limit_and_idle_connection_timeout() {
    run(|h: Harness| async move {
        let opts = GatewayOptions::default()
            .gateway("max_streams_per_connection", 2)
            .gateway("idle_connection_timeout_secs", 1);
        let site = EchoSite::start_with_options(&h, 34, &opts).await?;
        let t = &site.tenant;
        let conn = H2Conn::connect(t.gw.addr(), &t.gw.ca()).await?;
        let target = Tenant::colocated(site.server.addr);

        let first = conn.open(&target, &t.creds).await?;
        let _second = conn.open(&target, &t.creds).await?;
        // A third stream waits for a free slot instead of being opened.
        let third =
            tokio::time::timeout(millis(800), conn.connect_stream(&target, Some(&t.creds))).await;
        ensure!(
            third.is_err(),
            "a third concurrent stream was opened past the limit of 2"
        );
        drop(first);
        let mut third = tokio::time::timeout(secs(10), conn.open(&target, &t.creds))
            .await
            .context("no slot after a tunnel closed")??;
        third.write_all(b"3").await?;
        let mut b = [0u8; 1];
        third.read_exact(&mut b).await?;
        ensure!(&b == b"3");
        drop(third);
        drop(_second);

        // Without tunnels the connection is closed after the idle timeout (1 s).
        let started = std::time::Instant::now();
        tokio::time::timeout(secs(10), conn.driver)
            .await
            .context("idle HTTP/2 connection not closed")??
            .ok();
        ensure!(
            started.elapsed() >= millis(700),
            "closed after {:?}, before the idle timeout",
            started.elapsed()
        );
        Ok(())
    })
    .await
}
