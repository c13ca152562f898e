//! The record layer against rustls on the other end (as an older agent or
//! gateway, or a partner's client, would be) and against itself, over
//! loopback TCP; TLS 1.3, and TLS 1.2 as the front door serves it.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, HandshakeKind, RootCertStore, ServerConfig};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{accept, connect, OwnTls};

const NAME: &str = "site.test";

struct Configs {
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
}

fn configs() -> Configs {
    configs_with(&[&rustls::version::TLS13], None)
}

/// A front-door-like server (TLS 1.2 and 1.3, ALPN) and a client that
/// speaks TLS 1.2 only, with `suite` alone when given.
fn tls12_configs(suite: Option<rustls::SupportedCipherSuite>) -> Configs {
    let mut c = configs_with(&[&rustls::version::TLS12], suite);
    let server = Arc::get_mut(&mut c.server).unwrap();
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    c
}

fn configs_with(
    client_versions: &[&'static rustls::SupportedProtocolVersion],
    suite: Option<rustls::SupportedCipherSuite>,
) -> Configs {
    let certified = rcgen::generate_simple_self_signed(vec![NAME.to_string()]).unwrap();
    let cert = CertificateDer::from(certified.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    server.enable_secret_extraction = true;
    server.ticketer = rustls::crypto::ring::Ticketer::new().unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(cert).unwrap();
    let mut client_provider = rustls::crypto::ring::default_provider();
    if let Some(suite) = suite {
        client_provider.cipher_suites = vec![suite];
    }
    let mut client = ClientConfig::builder_with_provider(Arc::new(client_provider))
        .with_protocol_versions(client_versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    client.enable_secret_extraction = true;
    Configs {
        server: Arc::new(server),
        client: Arc::new(client),
    }
}

async fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (client, server) = tokio::join!(TcpStream::connect(addr), listener.accept());
    (client.unwrap(), server.unwrap().0)
}

fn name() -> ServerName<'static> {
    ServerName::try_from(NAME).unwrap()
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Sends `data` in uneven writes, then shuts down; reads everything the
/// peer sends until its close_notify. Both ends run this at once. Returns
/// the sha-256 of what was read, and the stream.
async fn exchange<S>(stream: S, data: Vec<u8>) -> ([u8; 32], S)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut r, mut w) = tokio::io::split(stream);
    let send = async move {
        let mut sizes = [1usize, 700, 16 * 1024, 16 * 1024 + 1, 65_536, 200_000]
            .iter()
            .cycle();
        let mut rest = &data[..];
        while !rest.is_empty() {
            let n = (*sizes.next().unwrap()).min(rest.len());
            w.write_all(&rest[..n]).await.unwrap();
            rest = &rest[n..];
        }
        w.shutdown().await.unwrap();
        w
    };
    let receive = async move {
        let mut hash = Sha256::new();
        let mut buf = vec![0u8; 50_000];
        loop {
            let n = r.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            hash.update(&buf[..n]);
        }
        (hash.finalize().into(), r)
    };
    let (w, (sha, r)) = tokio::join!(send, receive);
    (sha, r.unsplit(w))
}

/// A handshake between this module's client and server over loopback TCP.
async fn ours_on_both_ends(c: &Configs) -> (OwnTls<TcpStream>, OwnTls<TcpStream>) {
    let (client_tcp, server_tcp) = tcp_pair().await;
    let (client, server) = tokio::join!(
        connect(client_tcp, c.client.clone(), name()),
        accept(server_tcp, c.server.clone())
    );
    (client.unwrap().tls, server.unwrap().tls)
}

/// A handshake of a tokio-rustls client (a partner's client, an older
/// agent) with this module's server over loopback TCP.
async fn rustls_client_and_ours(c: &Configs) -> (RustlsClient, super::Accepted<TcpStream>) {
    let (client_tcp, server_tcp) = tcp_pair().await;
    let connector = tokio_rustls::TlsConnector::from(c.client.clone());
    let (client, server) = tokio::join!(
        connector.connect(name(), client_tcp),
        accept(server_tcp, c.server.clone())
    );
    (client.unwrap(), server.unwrap())
}

type RustlsClient = tokio_rustls::client::TlsStream<TcpStream>;

fn sha(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

#[tokio::test]
async fn ours_as_server_against_rustls_as_client() {
    let c = configs();
    let (client, server) = rustls_client_and_ours(&c).await;
    let (up, down) = (pattern(3 << 20, 1), pattern(5 << 20, 2));
    let (up_sha, down_sha) = (sha(&up), sha(&down));
    let ((at_client, _), (at_server, _)) =
        tokio::join!(exchange(client, up), exchange(server.tls, down));
    assert_eq!(at_server, up_sha);
    assert_eq!(at_client, down_sha);
}

#[tokio::test]
async fn ours_as_client_against_rustls_as_server_and_resumes_with_its_ticket() {
    let c = configs();
    let acceptor = tokio_rustls::TlsAcceptor::from(c.server.clone());
    for round in 0..2 {
        let (client_tcp, server_tcp) = tcp_pair().await;
        let (client, server) = tokio::join!(
            connect(client_tcp, c.client.clone(), name()),
            acceptor.accept(server_tcp)
        );
        let client = client.unwrap();
        assert_eq!(client.peer_certificates.len(), 1);
        // The first connection stored the server's tickets (read after the
        // handshake by the record layer), so the second one resumes.
        let expected = if round == 0 {
            HandshakeKind::Full
        } else {
            HandshakeKind::Resumed
        };
        assert_eq!(client.kind, Some(expected));
        let (up, down) = (pattern(1 << 20, 3), pattern(2 << 20, 4));
        let (up_sha, down_sha) = (sha(&up), sha(&down));
        let ((at_client, _), (at_server, _)) =
            tokio::join!(exchange(client.tls, up), exchange(server.unwrap(), down));
        assert_eq!(at_server, up_sha);
        assert_eq!(at_client, down_sha);
    }
}

#[tokio::test]
async fn ours_on_both_ends_with_key_updates_every_few_records() {
    let c = configs();
    let (mut client, mut server) = ours_on_both_ends(&c).await;
    client.sealer.update_after(5);
    server.sealer.update_after(3);
    let (up, down) = (pattern(1 << 20, 5), pattern(1 << 20, 6));
    let (up_sha, down_sha) = (sha(&up), sha(&down));
    let ((at_client, client), (at_server, server)) =
        tokio::join!(exchange(client, up), exchange(server, down));
    assert_eq!(at_server, up_sha);
    assert_eq!(at_client, down_sha);
    // The threshold counts from each update, so sealing 64 records of 16
    // KiB updates once and only once past it: (sent, received) at each end.
    assert_eq!(client.key_updates(), (1, 1));
    assert_eq!(server.key_updates(), (1, 1));
}

#[tokio::test]
async fn a_key_update_rustls_asks_for_is_answered() {
    let c = configs();
    let (mut client, server) = rustls_client_and_ours(&c).await;
    let mut server = server.tls;
    // rustls asks for a key update in return (update_requested).
    client.get_mut().1.refresh_traffic_keys().unwrap();
    client.write_all(b"after the update").await.unwrap();
    client.flush().await.unwrap();
    let mut got = [0u8; 16];
    server.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"after the update");
    assert_eq!(server.key_updates(), (0, 1));
    server.write_all(b"answer").await.unwrap();
    server.flush().await.unwrap();
    assert_eq!(server.key_updates(), (1, 1));
    let mut got = [0u8; 6];
    client.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"answer");
}

#[tokio::test]
async fn an_idle_connection_holds_no_buffers() {
    let c = configs();
    let (mut client, mut server) = ours_on_both_ends(&c).await;
    client.write_all(&pattern(300_000, 7)).await.unwrap();
    client.flush().await.unwrap();
    let mut got = vec![0u8; 300_000];
    server.read_exact(&mut got).await.unwrap();
    assert_eq!(got, pattern(300_000, 7));
    // Nothing more arrives: the read that finds nothing drops the buffer.
    let mut one = [0u8; 1];
    let idle = tokio::time::timeout(std::time::Duration::from_millis(50), server.read(&mut one));
    assert!(idle.await.is_err());
    assert_eq!(server.buffered_capacity(), 0);
    assert_eq!(client.buffered_capacity(), 0);
}

#[tokio::test]
async fn a_tampered_record_ends_the_connection_with_an_error() {
    let c = configs();
    let (mut client, mut server) = ours_on_both_ends(&c).await;
    // A record sealed by the client, changed on the wire.
    let mut record = client
        .sealer
        .seal(rustls::ContentType::ApplicationData, &[b"hello"])
        .unwrap();
    record[10] ^= 0x40;
    client.get_mut().write_all(&record).await.unwrap();
    let mut buf = [0u8; 16];
    let err = server.read(&mut buf).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    assert!(err.to_string().contains("did not decrypt"), "{err}");
    // And it stays failed.
    assert!(server.read(&mut buf).await.is_err());
}

#[tokio::test]
async fn an_end_without_close_notify_is_an_error_not_an_end_of_file() {
    let c = configs();
    let (mut client, mut server) = ours_on_both_ends(&c).await;
    // The client's TCP ends (FIN) without a close_notify: a truncation.
    client.get_mut().shutdown().await.unwrap();
    let mut buf = [0u8; 16];
    let err = server.read(&mut buf).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
}

#[tokio::test]
async fn a_refused_certificate_fails_both_ends_with_the_reason() {
    let c = configs();
    // A client that trusts another certificate only.
    let other = configs();
    let (client_tcp, server_tcp) = tcp_pair().await;
    let (client, server) = tokio::join!(
        connect(client_tcp, other.client.clone(), name()),
        accept(server_tcp, c.server.clone())
    );
    let client_err = client.err().expect("the client refuses the certificate");
    assert!(
        client_err.to_string().contains("certificate"),
        "{client_err}"
    );
    // The server learns why from the client's alert, not from a bare EOF.
    let server_err = server.err().expect("the handshake fails at the server too");
    assert!(server_err.to_string().contains("alert"), "{server_err}");
}

#[tokio::test]
async fn a_full_transport_holds_back_the_writer_with_at_most_one_batch_sealed() {
    let c = configs();
    let (mut client, _server) = ours_on_both_ends(&c).await;
    // Nobody reads at the server: the socket buffers fill, then the writer
    // must wait with no more than one 64 KiB batch of records above them.
    let data = pattern(64 << 20, 8);
    let write = tokio::time::timeout(
        std::time::Duration::from_millis(500),
        client.write_all(&data),
    );
    assert!(write.await.is_err(), "the writer waits for the reader");
    assert!(client.unsent() > 0, "records wait above the full socket");
    assert!(
        client.unsent() <= 64 * 1024 + 4 * 22,
        "{} bytes sealed and unsent",
        client.unsent()
    );
}

#[tokio::test]
async fn key_updates_without_data_between_them_are_limited() {
    let c = configs();
    let (mut client, mut server) = ours_on_both_ends(&c).await;
    // 32 key updates in a row are taken, data resets the count ...
    for _ in 0..32 {
        client.seal_key_update().unwrap();
    }
    client.write_all(b"x").await.unwrap();
    for _ in 0..32 {
        client.seal_key_update().unwrap();
    }
    client.write_all(b"y").await.unwrap();
    client.flush().await.unwrap();
    let mut got = [0u8; 2];
    server.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"xy");
    assert_eq!(server.key_updates().1, 64);
    // ... the 33rd in a row ends the connection.
    for _ in 0..33 {
        client.seal_key_update().unwrap();
    }
    client.flush().await.unwrap();
    let read = tokio::time::timeout(std::time::Duration::from_secs(5), server.read(&mut got));
    let err = read.await.expect("refused, not waited for").unwrap_err();
    assert!(err.to_string().contains("too many key updates"), "{err}");
}

#[tokio::test]
async fn bytes_that_are_not_records_end_the_connection_with_an_error() {
    let c = configs();
    // After the handshake: a header of another type, a record longer than
    // TLS allows, a wrong version, and random bytes of a record's length.
    let garbage: [&[u8]; 4] = [
        &[22, 3, 3, 0, 1, 0],
        &[23, 3, 3, 0xff, 0xff],
        &[23, 3, 1, 0, 4, 1, 2, 3, 4],
        &[
            23, 3, 3, 0, 20, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
        ],
    ];
    for bytes in garbage {
        let (mut client, mut server) = ours_on_both_ends(&c).await;
        client.get_mut().write_all(bytes).await.unwrap();
        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(std::time::Duration::from_secs(5), server.read(&mut buf));
        let err = read.await.expect("refused, not waited for").unwrap_err();
        assert_eq!(
            err.kind(),
            std::io::ErrorKind::InvalidData,
            "{bytes:?}: {err}"
        );
    }
}

#[tokio::test]
async fn tls12_clients_of_the_front_door_get_their_bytes_both_ways() {
    use rustls::crypto::ring::cipher_suite as cs;
    for suite in [
        None,
        Some(cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256),
        Some(cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256),
    ] {
        let mut c = tls12_configs(suite);
        Arc::get_mut(&mut c.client).unwrap().alpn_protocols = vec![b"http/1.1".to_vec()];
        let (client, server) = rustls_client_and_ours(&c).await;
        assert_eq!(
            client.get_ref().1.protocol_version(),
            Some(rustls::ProtocolVersion::TLSv1_2)
        );
        if let Some(suite) = suite {
            assert_eq!(client.get_ref().1.negotiated_cipher_suite(), Some(suite));
        }
        assert_eq!(server.alpn.as_deref(), Some(&b"http/1.1"[..]));
        let (up, down) = (pattern(3 << 20, 11), pattern(2 << 20, 12));
        let (up_sha, down_sha) = (sha(&up), sha(&down));
        let ((at_client, _), (at_server, _)) =
            tokio::join!(exchange(client, up), exchange(server.tls, down));
        assert_eq!(at_server, up_sha, "{suite:?}");
        assert_eq!(at_client, down_sha, "{suite:?}");
    }
}

#[tokio::test]
async fn the_agreed_alpn_protocol_comes_with_the_connection() {
    for (offered, agreed) in [
        (vec![b"h2".to_vec(), b"http/1.1".to_vec()], Some(&b"h2"[..])),
        (vec![b"http/1.1".to_vec()], Some(&b"http/1.1"[..])),
        (vec![], None),
    ] {
        let mut c = tls12_configs(None);
        let client = Arc::get_mut(&mut c.client).unwrap();
        client.alpn_protocols = offered;
        let (_client, server) = rustls_client_and_ours(&c).await;
        assert_eq!(server.alpn.as_deref(), agreed);
    }
}

#[tokio::test]
async fn tls12_warnings_are_ignored_and_a_renegotiation_ends_the_connection() {
    let c = tls12_configs(None);
    let (client_tcp, server_tcp) = tcp_pair().await;
    let (client, server) = tokio::join!(
        connect(client_tcp, c.client.clone(), name()),
        accept(server_tcp, c.server.clone())
    );
    let (mut client, mut server) = (client.unwrap().tls, server.unwrap().tls);
    // A warning alert (no_renegotiation), then data: the data arrives.
    let warning = client
        .sealer
        .seal(rustls::ContentType::Alert, &[&[1, 100]])
        .unwrap();
    client.get_mut().write_all(&warning).await.unwrap();
    client.write_all(b"still here").await.unwrap();
    client.flush().await.unwrap();
    let mut got = [0u8; 10];
    server.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"still here");
    // A handshake message (a ClientHello starting a renegotiation).
    let hello = client
        .sealer
        .seal(rustls::ContentType::Handshake, &[&[1, 0, 0, 0]])
        .unwrap();
    client.get_mut().write_all(&hello).await.unwrap();
    let err = server.read(&mut got).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    assert!(err.to_string().contains("renegotiate"), "{err}");
}

#[tokio::test]
async fn tls12_has_no_key_update_so_used_up_keys_end_the_connection() {
    let c = tls12_configs(None);
    let (client_tcp, server_tcp) = tcp_pair().await;
    let (client, server) = tokio::join!(
        connect(client_tcp, c.client.clone(), name()),
        accept(server_tcp, c.server.clone())
    );
    let (mut client, _server) = (client.unwrap().tls, server.unwrap().tls);
    client.sealer.update_after(2);
    let err = client.write_all(&pattern(256 << 10, 13)).await.unwrap_err();
    assert!(err.to_string().contains("no key update"), "{err}");
}

#[tokio::test]
async fn rustls_clients_resume_their_session_with_our_server() {
    // TLS 1.3 (a ticket that comes after the handshake) and TLS 1.2 (one
    // in the handshake): the second connection of each client resumes.
    // The client's session cache lives in its config, shared by both rounds.
    for c in [configs(), tls12_configs(None)] {
        for round in 0..2 {
            let (client, server) = rustls_client_and_ours(&c).await;
            let expected = if round == 0 {
                HandshakeKind::Full
            } else {
                HandshakeKind::Resumed
            };
            assert_eq!(client.get_ref().1.handshake_kind(), Some(expected));
            // Reading lets the client take in a TLS 1.3 ticket.
            let (up, down) = (pattern(1000, 14), pattern(1000, 15));
            let ((at_client, _), (at_server, _)) = tokio::join!(
                exchange(client, up.clone()),
                exchange(server.tls, down.clone())
            );
            assert_eq!((at_server, at_client), (sha(&up), sha(&down)));
        }
    }
}

#[tokio::test]
async fn a_client_hello_larger_than_the_first_read_completes() {
    // About 6 KiB of ALPN names: the server's receive buffer grows twice.
    let mut c = tls12_configs(None);
    let client = Arc::get_mut(&mut c.client).unwrap();
    client.alpn_protocols = (0..40)
        .map(|i| format!("protocol-{i:03}-{}", "x".repeat(140)).into_bytes())
        .chain([b"http/1.1".to_vec()])
        .collect();
    let hello_len: usize = client.alpn_protocols.iter().map(|p| p.len() + 1).sum();
    assert!(hello_len > 4 * 1024);
    let (client, server) = rustls_client_and_ours(&c).await;
    assert_eq!(server.alpn.as_deref(), Some(&b"http/1.1"[..]));
    let (up, down) = (pattern(100_000, 16), pattern(100_000, 17));
    let ((at_client, _), (at_server, _)) = tokio::join!(
        exchange(client, up.clone()),
        exchange(server.tls, down.clone())
    );
    assert_eq!((at_server, at_client), (sha(&up), sha(&down)));
}
