//! Bytes a client sends in the same write as its `CONNECT` head (a client that does
//! not wait for the `200`) belong to the tunnel: they reach the target first and in
//! order, followed by what the client sends later.

use anyhow::{ensure, Context};
use tokio::io::AsyncWriteExt;

use crate::support::comgate::Agent;
use crate::support::connect::connect_head;
use crate::support::reading::read_to_len;
use crate::support::site::Tenant;
use crate::support::targets::{echo, lo};
use crate::support::{run, secs, Harness};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bytes_sent_with_the_connect_head_reach_the_target_first() {
    run(|h: Harness| async move {
        let server = echo(lo(5), 0).await?;
        let tenant = Tenant::start(&h).await?;
        let _agent = Agent::start(
            &tenant.gw,
            &tenant.agent_config().tunnel("RDP", server.addr),
        )
        .await?;
        let target = Tenant::colocated(server.addr);
        let early = b"sent together with the head|";
        let later = b"sent after the 200";
        let mut request = connect_head(&target, Some(&tenant.creds)).into_bytes();
        request.extend_from_slice(early);
        let mut reply = tenant.front.request(&request).await?;
        ensure!(
            reply.response.status == 200,
            "CONNECT answered {}",
            reply.response.summary()
        );
        reply.stream.write_all(later).await?;
        reply.stream.flush().await?;
        let expected = [&early[..], &later[..]].concat();
        let got = read_to_len(&mut reply.stream, reply.early, expected.len(), secs(10))
            .await
            .context("the echo did not come back")?;
        ensure!(
            got == expected,
            "echoed {:?}, expected {:?}",
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&expected)
        );
        Ok(())
    })
    .await;
}
