//! The front door's limits: head read timeout, head size, failed-auth rate per source
//! address, concurrent tunnels per account, streams per site.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::comgate::{retry, Agent, GatewayOptions};
use crate::support::connect::{connect_head, Creds, FrontStream};
use crate::support::files::echo_roundtrip;
use crate::support::site::Tenant;
use crate::support::targets::{echo, lo};
use crate::support::{millis, run, secs, Harness};

/// Waits until the peer closes `stream` (EOF, error, or any answer followed by EOF);
/// returns how long that took.
async fn time_until_closed(
    mut stream: FrontStream,
    limit: Duration,
) -> Result<(Duration, Vec<u8>)> {
    let started = Instant::now();
    let mut got = Vec::new();
    tokio::time::timeout(limit, async {
        let mut chunk = [0u8; 1024];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await
    .with_context(|| format!("connection still open after {limit:?}"))?;
    Ok((started.elapsed(), got))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn client_that_never_finishes_its_head_is_dropped_after_head_timeout() {
    run(|h: Harness| async move {
        let opts = GatewayOptions::default().gateway("head_timeout_ms", 700);
        let tenant = Tenant::start_with(&h, &opts).await?;

        // Half a request line, then silence.
        let mut stream = tenant.front.tls().await?;
        stream.write_all(format!("CONNECT {} HTTP/1.1\r\n", Tenant::own(22)).as_bytes()).await?;
        stream.flush().await?;
        let (took, answer) = time_until_closed(stream, secs(5)).await?;
        eprintln!(
            "silent client dropped after {took:.2?} (answer {:?})",
            String::from_utf8_lossy(&answer).lines().next().unwrap_or("")
        );

        // A client that keeps dribbling bytes never completes its head either: the
        // timeout covers the whole head, not each read.
        let stream = tenant.front.tls().await?;
        let (mut rd, mut wr) = tokio::io::split(stream);
        let dribbler = tokio::spawn(async move {
            let _ = wr.write_all(format!("CONNECT {} HTTP/1.1\r\nX-Slow: ", Tenant::own(22)).as_bytes()).await;
            for _ in 0..200 {
                if wr.write_all(b"a").await.is_err() || wr.flush().await.is_err() {
                    return;
                }
                tokio::time::sleep(millis(100)).await;
            }
        });
        let started = Instant::now();
        let closed = tokio::time::timeout(secs(6), async {
            let mut chunk = [0u8; 1024];
            loop {
                match rd.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
        dribbler.abort();
        ensure!(
            closed.is_ok(),
            "a client dribbling one byte per 100 ms was still connected after 6 s (head_timeout_ms = 700)"
        );
        eprintln!("dribbling client dropped after {:.2?}", started.elapsed());
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn client_that_never_starts_tls_is_dropped() {
    run(|h: Harness| async move {
        let opts = GatewayOptions::default().gateway("head_timeout_ms", 700);
        let tenant = Tenant::start_with(&h, &opts).await?;
        let mut tcp = TcpStream::connect(tenant.gw.addr()).await?;
        let started = Instant::now();
        let closed = tokio::time::timeout(secs(15), async {
            let mut chunk = [0u8; 64];
            loop {
                match tcp.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
        ensure!(
            closed.is_ok(),
            "a TCP connection that never sent a ClientHello was still open after 15 s"
        );
        eprintln!("idle TCP client dropped after {:.2?}", started.elapsed());
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn head_larger_than_max_head_bytes_gets_431() {
    run(|h: Harness| async move {
        let server = echo(lo(5), 0).await?;
        let opts = GatewayOptions::default().gateway("max_head_bytes", 4096);
        let tenant = Tenant::start_with(&h, &opts).await?;
        let _agent = Agent::start(
            &tenant.gw,
            &tenant.agent_config().tunnel("RDP", server.addr),
        )
        .await?;
        let target = Tenant::colocated(server.addr);
        let with_padding = |pad: usize| {
            let head = connect_head(&target, Some(&tenant.creds));
            let (first, rest) = head.split_once("\r\n").unwrap_or((&head, ""));
            format!("{first}\r\nX-Padding: {}\r\n{rest}", "p".repeat(pad))
        };
        // Under the limit: fine.
        let small = with_padding(2500);
        ensure!(small.len() < 4096);
        let reply = tenant.front.request(small.as_bytes()).await?;
        ensure!(
            reply.response.status == 200,
            "a {}-byte head: {}",
            small.len(),
            reply.response.summary()
        );
        echo_roundtrip(reply.stream, reply.early, 1024, secs(20)).await?;
        // Over it: 431.
        let big = with_padding(6000);
        let answer = tenant.front.try_request(big.as_bytes()).await?;
        let Some(reply) = answer else {
            bail!("a {}-byte head got no answer (want 431)", big.len());
        };
        ensure!(
            reply.response.status == 431,
            "a {}-byte head: expected 431, got {}",
            big.len(),
            reply.response.summary()
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn auth_failure_burst_refuses_even_correct_credentials_until_window_passes() {
    run(|h: Harness| async move {
        const BURST: usize = 3;
        let server = echo(lo(5), 0).await?;
        // One failure refilled every 5 s after a burst of 3.
        let opts = GatewayOptions::default()
            .gateway("auth_failure_burst", BURST)
            .gateway("auth_failures_per_minute", 12);
        let tenant = Tenant::start_with(&h, &opts).await?;
        let _agent = Agent::start(
            &tenant.gw,
            &tenant.agent_config().tunnel("RDP", server.addr),
        )
        .await?;
        let target = Tenant::colocated(server.addr);
        let wrong = Creds::new(&tenant.creds.user, "guess-1234");

        let mut statuses = Vec::new();
        for _ in 0..BURST {
            let r = tenant.front.status_of(&target, Some(&wrong)).await?;
            statuses.push(r.status);
        }
        ensure!(
            statuses.iter().all(|&s| s == 407),
            "the first {BURST} failures should each get 407, got {statuses:?}"
        );
        // The burst is spent: the right password is refused too.
        let refused = tenant
            .front
            .try_request(connect_head(&target, Some(&tenant.creds)).as_bytes())
            .await?;
        match &refused {
            None => eprintln!("after the burst: connection closed without answer"),
            Some(r) => {
                ensure!(
                    r.response.status == 429,
                    "after {BURST} failed attempts (auth_failure_burst = {BURST}) a correct attempt got {} (want 429 or a refusal)",
                    r.response.summary()
                );
                eprintln!("after the burst: {}", r.response.summary());
            }
        }
        // Further wrong attempts are refused without a challenge as well.
        if let Some(r) = tenant
            .front
            .try_request(connect_head(&target, Some(&wrong)).as_bytes())
            .await?
        {
            ensure!(
                r.response.status == 429,
                "a further wrong attempt got {}",
                r.response.summary()
            );
        }
        // When the window passes, the right password works again.
        let started = Instant::now();
        retry(secs(20), || async {
            let reply = tenant.front.open(&target, &tenant.creds).await?;
            echo_roundtrip(reply.stream, reply.early, 1024, secs(10)).await?;
            Ok(())
        })
        .await
        .context("correct credentials still refused 20 s after the failures")?;
        eprintln!("accepted again after {:.2?}", started.elapsed());
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn third_concurrent_tunnel_over_account_limit_is_refused_until_one_closes() {
    let opts = GatewayOptions::default()
        .gateway("max_tunnels_per_account", 2)
        .gateway("half_close_grace_ms", 300);
    third_tunnel_refused_until_one_closes(opts, &[], 429, "open tunnels").await;
}

/// The site's stream limit: a third stream gets 503 (not the 504 of an
/// unreachable target), and the two open tunnels keep working.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn third_stream_over_site_limit_gets_503_until_one_closes() {
    let opts = GatewayOptions::default()
        .agents("max_streams_per_site", 2)
        .gateway("half_close_grace_ms", 300);
    third_tunnel_refused_until_one_closes(
        opts,
        &[],
        503,
        "gateway takes at most 2 streams per site, agents.max_streams_per_site",
    )
    .await;
}

/// The agent's own stream limit (`max_streams` in its config) is answered
/// like serve's: 503, naming the limit the agent reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn third_stream_over_the_agent_s_limit_gets_503_until_one_closes() {
    let opts = GatewayOptions::default().gateway("half_close_grace_ms", 300);
    third_tunnel_refused_until_one_closes(
        opts,
        &[("max_streams", 2)],
        503,
        "agent takes at most 2 streams",
    )
    .await;
}

/// With a limit of two (set in `opts` or in the agent's `agent_lines`), two
/// tunnels open, a third is refused with `status` and a body naming `reason`,
/// and once one closes a new one goes through.
async fn third_tunnel_refused_until_one_closes(
    opts: GatewayOptions,
    agent_lines: &[(&str, u32)],
    status: u16,
    reason: &str,
) {
    let reason = reason.to_owned();
    let agent_lines: Vec<(String, u32)> = agent_lines
        .iter()
        .map(|(k, v)| (k.to_string(), *v))
        .collect();
    run(|h: Harness| async move {
        let server = echo(lo(5), 0).await?;
        let tenant = Tenant::start_with(&h, &opts).await?;
        let mut agent_cfg = tenant.agent_config().tunnel("RDP", server.addr);
        for (key, value) in &agent_lines {
            agent_cfg = agent_cfg.line(key, value);
        }
        let _agent = Agent::start(&tenant.gw, &agent_cfg).await?;
        let target = Tenant::colocated(server.addr);
        let first = tenant.front.open(&target, &tenant.creds).await?;
        let second = tenant.front.open(&target, &tenant.creds).await?;
        let third = tenant.front.status_of(&target, Some(&tenant.creds)).await?;
        ensure!(
            third.status == status,
            "a third concurrent tunnel got {} (limit 2, want {status})",
            third.summary()
        );
        ensure!(
            third.body_text().contains(&reason),
            "the refusal of the third tunnel does not name {reason:?}: {}",
            third.summary()
        );
        eprintln!("third tunnel: {}", third.summary());
        // The two open tunnels still work.
        let (mut s1, e1) = (first.stream, first.early);
        ensure!(e1.is_empty());
        s1.write_all(b"ping").await?;
        let mut buf = [0u8; 4];
        tokio::time::timeout(secs(10), s1.read_exact(&mut buf)).await??;
        ensure!(&buf == b"ping", "echo on the first tunnel broke");
        // Closing one lets a new one through.
        let _ = s1.shutdown().await;
        drop(s1);
        retry(secs(10), || async {
            let reply = tenant.front.open(&target, &tenant.creds).await?;
            echo_roundtrip(reply.stream, reply.early, 1024, secs(10)).await?;
            Ok(())
        })
        .await
        .context("no new tunnel after one of the two was closed")?;
        drop(second);
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connection_is_closed_after_max_requests_per_connection_refusals() {
    use crate::support::connect::read_answer;
    run(|h: Harness| async move {
        let opts = GatewayOptions::default().gateway("max_requests_per_connection", 3);
        let tenant = Tenant::start_with(&h, &opts).await?;
        let target = Tenant::own(22);
        let mut stream = tenant.front.tls().await?;
        for i in 1..=3 {
            stream
                .write_all(connect_head(&target, None).as_bytes())
                .await?;
            let reply = read_answer(stream)
                .await?
                .with_context(|| format!("no answer to request {i}"))?;
            ensure!(
                reply.response.status == 407,
                "request {i}: {}",
                reply.response.summary()
            );
            let close = reply
                .response
                .header("connection")
                .is_some_and(|v| v.eq_ignore_ascii_case("close"));
            ensure!(
                close == (i == 3),
                "request {i}: Connection header {:?}",
                reply.response.header("connection")
            );
            stream = reply.stream;
        }
        // The third answer closed the connection: nothing more is read.
        let (_took, rest) = time_until_closed(stream, secs(5)).await?;
        ensure!(
            rest.is_empty(),
            "bytes after the closing answer: {:?}",
            String::from_utf8_lossy(&rest)
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn agent_connection_that_never_says_hello_is_dropped_after_handshake_timeout() {
    use tokio_rustls::rustls;
    run(|h: Harness| async move {
        let opts = GatewayOptions::default().agents("handshake_timeout_ms", 800);
        let tenant = Tenant::start_with(&h, &opts).await?;
        // A TLS connection to the agent listener that never sends a byte more.
        let mut roots = rustls::RootCertStore::empty();
        use rustls::pki_types::pem::PemObject as _;
        for cert in rustls::pki_types::CertificateDer::pem_file_iter(tenant.gw.ca())? {
            roots.add(cert?)?;
        }
        let cfg = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let tcp = TcpStream::connect(tenant.gw.agent_addr()).await?;
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1")?;
        let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg))
            .connect(name, tcp)
            .await?;
        let (took, _) = time_until_closed(tls, secs(5)).await?;
        eprintln!("silent agent connection dropped after {took:.2?}");
        ensure!(
            took >= millis(500),
            "dropped too early ({took:?}): the limit is 800 ms"
        );
        Ok(())
    })
    .await;
}
