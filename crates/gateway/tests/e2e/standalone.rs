//! `proxytunnel --standalone=<port>` (the manual's RDP recipe) to a co-located server
//! listed as one of the site's tunnels.

use tokio::net::TcpStream;

use crate::support::files::{echo_roundtrip, MIB};
use crate::support::ports::free_port;
use crate::support::proxytunnel::{NameMode, ProxyTunnel};
use crate::support::site::{EchoSite, Tenant};
use crate::support::{run, secs, Harness};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn proxytunnel_standalone_carries_10mb_each_way_to_colocated_server() {
    run(|h: Harness| async move {
        require_tools!("proxytunnel");
        let EchoSite {
            server,
            tenant,
            agent: _agent,
        } = EchoSite::start(&h, 5).await?;
        // The IP-literal form of --proxy (cert IP SAN 127.0.0.1, SNI "127.0.0.1").
        let pt = ProxyTunnel::new(&h, &tenant.gw, &tenant.creds, NameMode::Ip)?;
        let local_port = free_port();
        let _standalone = pt
            .standalone(h.path(), &Tenant::colocated(server.addr), local_port)
            .await?;
        let conn = TcpStream::connect(("127.0.0.1", local_port)).await?;
        let took = echo_roundtrip(conn, Vec::new(), 10 * MIB, secs(90)).await?;
        eprintln!("10 MiB each way through proxytunnel --standalone in {took:.2?}");
        anyhow::ensure!(
            server.accepted() == 1,
            "the server saw {} connections",
            server.accepted()
        );
        Ok(())
    })
    .await;
}
