//! A partner whose client stops at TLS 1.2 (an older OpenSSL, as an old
//! proxytunnel build has) still gets a tunnel: the front door's record
//! layer serves TLS 1.2 as well as 1.3. The client is OpenSSL's own
//! `s_client`, capped with `-tls1_2`.

use std::process::Stdio;

use anyhow::{ensure, Context};
use tokio::io::AsyncWriteExt;

use crate::support::comgate::Agent;
use crate::support::connect::connect_head;
use crate::support::reading::read_to_len;
use crate::support::site::Tenant;
use crate::support::targets::{echo, lo};
use crate::support::{run, secs, tools, Harness, MAINT_HOST};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_openssl_client_capped_at_tls12_gets_a_tunnel() {
    run(|h: Harness| async move {
        require_tools!("openssl");
        let server = echo(lo(5), 0).await?;
        let tenant = Tenant::start(&h).await?;
        let _agent = Agent::start(
            &tenant.gw,
            &tenant.agent_config().tunnel("RDP", server.addr),
        )
        .await?;
        let mut client = tokio::process::Command::new(tools::path_of("openssl")?)
            .args([
                "s_client",
                "-tls1_2",
                "-brief",
                "-ign_eof",
                "-verify_return_error",
            ])
            .arg("-connect")
            .arg(format!("127.0.0.1:{}", tenant.gw.port))
            .arg("-servername")
            .arg(MAINT_HOST)
            .arg("-CAfile")
            .arg(tenant.gw.ca())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let mut stdin = client.stdin.take().context("stdin")?;
        let mut stdout = client.stdout.take().context("stdout")?;
        let head = connect_head(&Tenant::colocated(server.addr), Some(&tenant.creds));
        stdin.write_all(head.as_bytes()).await?;
        stdin.flush().await?;
        let answer = b"HTTP/1.1 200 Connection established\r\n\r\n";
        let got = read_to_len(&mut stdout, Vec::new(), answer.len(), secs(10)).await;
        let got = match got {
            Ok(got) => got,
            Err(e) => {
                let _ = client.start_kill();
                let out = client.wait_with_output().await?;
                anyhow::bail!("{e}: {}", String::from_utf8_lossy(&out.stderr));
            }
        };
        ensure!(
            got == answer,
            "CONNECT answered {:?}",
            String::from_utf8_lossy(&got)
        );
        // Lines of digits (s_client reads its input a line at a time).
        let payload: String = (0..2000).map(|i| format!("{i:08}\n")).collect();
        stdin.write_all(payload.as_bytes()).await?;
        stdin.flush().await?;
        let echoed = read_to_len(&mut stdout, Vec::new(), payload.len(), secs(10)).await?;
        ensure!(
            echoed == payload.as_bytes(),
            "echoed {} bytes, not the {} sent",
            echoed.len(),
            payload.len()
        );
        let _ = client.start_kill();
        let out = client.wait_with_output().await?;
        let log = String::from_utf8_lossy(&out.stderr);
        ensure!(
            log.contains("Protocol version: TLSv1.2"),
            "s_client did not report TLS 1.2: {log}"
        );
        Ok(())
    })
    .await;
}
