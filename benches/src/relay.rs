//! The reference: a minimal TLS relay hop (`comgate-bench relay ...`), run as its own
//! process. Two of them give client -TLS-> relay1 -TLS-> relay2 -> target: the shape
//! of comgate (two TLS hops, four processes) without multiplexing, CONNECT or auth.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use rustls_pki_types::ServerName;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// Copy buffer per direction.
const BUF: usize = 64 * 1024;

#[derive(clap::Args, Debug)]
pub struct RelayArgs {
    /// Address to accept TLS connections on.
    #[arg(long)]
    pub listen: SocketAddr,
    /// Server certificate chain (PEM).
    #[arg(long)]
    pub cert: PathBuf,
    /// Server key (PEM).
    #[arg(long)]
    pub key: PathBuf,
    /// Where to relay each connection.
    #[arg(long)]
    pub upstream: SocketAddr,
    /// Speak TLS upstream, trusting this CA (PEM); plain TCP without it.
    #[arg(long)]
    pub upstream_ca: Option<PathBuf>,
    /// SNI for the upstream TLS connection.
    #[arg(long, default_value = "maint.bench.test")]
    pub upstream_sni: String,
}

pub async fn run(args: RelayArgs) -> Result<()> {
    let acceptor = TlsAcceptor::from(crate::tls::server(&args.cert, &args.key)?);
    let upstream_tls = match &args.upstream_ca {
        Some(ca) => Some((
            TlsConnector::from(crate::tls::client(ca, true)?),
            ServerName::try_from(args.upstream_sni.clone())?,
        )),
        None => None,
    };
    let upstream_tls = Arc::new(upstream_tls);
    let listener = TcpListener::bind(args.listen).await?;
    loop {
        let (sock, _) = listener.accept().await?;
        let acceptor = acceptor.clone();
        let upstream_tls = upstream_tls.clone();
        let upstream = args.upstream;
        tokio::spawn(async move {
            let _ = sock.set_nodelay(true);
            let Ok(mut down) = acceptor.accept(sock).await else {
                return;
            };
            let Ok(up) = TcpStream::connect(upstream).await else {
                return;
            };
            let _ = up.set_nodelay(true);
            match upstream_tls.as_ref() {
                Some((connector, sni)) => {
                    let Ok(mut up) = connector.connect(sni.clone(), up).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional_with_sizes(&mut down, &mut up, BUF, BUF)
                        .await;
                }
                None => {
                    let mut up = up;
                    let _ = tokio::io::copy_bidirectional_with_sizes(&mut down, &mut up, BUF, BUF)
                        .await;
                }
            }
        });
    }
}
