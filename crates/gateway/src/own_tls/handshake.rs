//! The TLS handshake, done by rustls's unbuffered connection over an async
//! transport, then handed to [`OwnTls`].
//!
//! Only the unbuffered connections convert into a
//! [`rustls::kernel::KernelConnection`] (which keeps computing key updates
//! and storing tickets); the configs must have `enable_secret_extraction`
//! set (`crate::tls`: the site connection's are TLS 1.3 only, the front
//! door's also take TLS 1.2).

use std::io;
use std::sync::Arc;

use rustls::client::{ClientConnectionData, UnbufferedClientConnection};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use rustls::unbuffered::{ConnectionState, EncodeError, InsufficientSizeError, UnbufferedStatus};
use rustls::{ClientConfig, ExtractedSecrets, HandshakeKind, ServerConfig};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::stream::{Kernel, OwnTls};

/// The most unprocessed handshake bytes a client holds: the server's
/// flight, whose certificate chain may take a few records.
const MAX_SERVER_FLIGHT: usize = 256 * 1024;
/// The most a server holds: rustls takes a ClientHello of up to 64 KiB,
/// which arrives in five records at most. Partners reach the front door
/// from anywhere, so a half-sent hello should not cost more.
const MAX_CLIENT_FLIGHT: usize = 64 * 1024 + 5 * 5 + 1024;
/// The receive buffer a handshake starts with: a ClientHello is usually
/// under 2 KiB (a post-quantum key share included); it grows by doubling
/// when a flight is larger. A connection that has sent nothing yet holds
/// this much.
const FIRST_READ: usize = 2 * 1024;

/// The receive buffer's next size when `len` bytes are not enough, or
/// `None` when `max` is reached.
fn grown(len: usize, max: usize) -> Option<usize> {
    (len < max).then(|| (len * 2).min(max))
}

fn tls_error(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("TLS handshake: {e}"))
}

/// The two unbuffered connection kinds, for one handshake loop.
trait Unbuffered {
    type Data;
    fn process<'c, 'i>(
        &'c mut self,
        incoming: &'i mut [u8],
    ) -> UnbufferedStatus<'c, 'i, Self::Data>;
    fn handshaking(&self) -> bool;
}

/// The same inherent methods on both connection kinds.
macro_rules! unbuffered {
    ($conn:ty, $data:ty) => {
        impl Unbuffered for $conn {
            type Data = $data;
            fn process<'c, 'i>(
                &'c mut self,
                incoming: &'i mut [u8],
            ) -> UnbufferedStatus<'c, 'i, Self::Data> {
                self.process_tls_records(incoming)
            }
            fn handshaking(&self) -> bool {
                self.is_handshaking()
            }
        }
    };
}

unbuffered!(UnbufferedServerConnection, ServerConnectionData);
unbuffered!(UnbufferedClientConnection, ClientConnectionData);

/// What the handshake leaves: received bytes rustls did not process and
/// plaintext it already decrypted.
struct Leftover {
    ciphertext: Vec<u8>,
    plaintext: Vec<u8>,
}

async fn drive<S, C>(io: &mut S, conn: &mut C, max_incoming: usize) -> io::Result<Leftover>
where
    S: AsyncRead + AsyncWrite + Unpin,
    C: Unbuffered,
{
    let mut incoming = vec![0u8; FIRST_READ];
    let mut used = 0;
    // Sized by rustls's first flight (InsufficientSize below).
    let mut outgoing = Vec::new();
    let mut pending = 0;
    let mut plaintext = Vec::new();
    loop {
        let (mut transmit, mut blocked, mut done) = (false, false, false);
        let UnbufferedStatus { mut discard, state } = conn.process(&mut incoming[..used]);
        let state = match state {
            Ok(state) => state,
            Err(e) => {
                incoming.copy_within(discard..used, 0);
                used -= discard;
                send_alert(io, conn, &mut incoming[..used]).await;
                return Err(tls_error(e));
            }
        };
        match state {
            ConnectionState::EncodeTlsData(mut encode) => loop {
                match encode.encode(&mut outgoing[pending..]) {
                    Ok(n) => {
                        pending += n;
                        break;
                    }
                    Err(EncodeError::InsufficientSize(InsufficientSizeError { required_size })) => {
                        outgoing.resize(pending + required_size, 0)
                    }
                    Err(e) => return Err(tls_error(e)),
                }
            },
            ConnectionState::TransmitTlsData(data) => {
                data.done();
                transmit = true;
            }
            ConnectionState::BlockedHandshake => blocked = true,
            ConnectionState::ReadTraffic(mut traffic) => {
                while let Some(record) = traffic.next_record() {
                    let record = record.map_err(tls_error)?;
                    discard += record.discard;
                    plaintext.extend_from_slice(record.payload);
                }
            }
            ConnectionState::WriteTraffic(_) => done = true,
            ConnectionState::PeerClosed | ConnectionState::Closed => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the peer closed the connection during the TLS handshake",
                ))
            }
            _ => return Err(tls_error("unexpected state (early data?)")),
        }
        if discard > 0 {
            incoming.copy_within(discard..used, 0);
            used -= discard;
        }
        // A server that may send before the client's Finished (half-RTT
        // data, off by default) is not done until that Finished is in.
        if done && conn.handshaking() {
            done = false;
            blocked = true;
        }
        // Whatever is encoded goes out before waiting for the peer.
        if pending > 0 && (transmit || done || blocked) {
            io.write_all(&outgoing[..pending]).await?;
            io.flush().await?;
            pending = 0;
        }
        if done {
            incoming.truncate(used);
            return Ok(Leftover {
                ciphertext: incoming,
                plaintext,
            });
        }
        if blocked {
            if used == incoming.len() {
                let Some(len) = grown(incoming.len(), max_incoming) else {
                    return Err(tls_error("handshake messages too large"));
                };
                incoming.resize(len, 0);
            }
            let n = io.read(&mut incoming[used..]).await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the peer closed the connection during the TLS handshake",
                ));
            }
            used += n;
        }
    }
}

/// After a failed handshake, sends the alert rustls queued for the peer
/// (so that its log says why), as far as the transport takes it at once.
async fn send_alert<S, C>(io: &mut S, conn: &mut C, incoming: &mut [u8])
where
    S: AsyncWrite + Unpin,
    C: Unbuffered,
{
    let mut outgoing = vec![0u8; 256];
    let mut pending = 0;
    // An alert is one record: encode it, then rustls reports the error again.
    for _ in 0..4 {
        // rustls wants the same (discarded) input again, not an empty one.
        match conn.process(incoming).state {
            Ok(ConnectionState::EncodeTlsData(mut encode)) => {
                if let Ok(n) = encode.encode(&mut outgoing[pending..]) {
                    pending += n;
                }
            }
            Ok(ConnectionState::TransmitTlsData(data)) => data.done(),
            _ => break,
        }
    }
    if pending > 0 {
        let _ = io.write_all(&outgoing[..pending]).await;
        let _ = io.flush().await;
    }
}

/// A finished server handshake: the connection and what was agreed.
pub struct Accepted<S> {
    pub tls: OwnTls<S>,
    /// The ALPN protocol, when the client offered one we serve.
    pub alpn: Option<Vec<u8>>,
}

/// Accepts a client's TLS on `io`.
pub async fn accept<S>(mut io: S, config: Arc<ServerConfig>) -> io::Result<Accepted<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut conn = UnbufferedServerConnection::new(config).map_err(tls_error)?;
    let leftover = drive(&mut io, &mut conn, MAX_CLIENT_FLIGHT).await?;
    let alpn = conn.alpn_protocol().map(<[u8]>::to_vec);
    let (secrets, kernel) = conn.dangerous_into_kernel_connection().map_err(tls_error)?;
    Ok(Accepted {
        tls: finish(io, Kernel::Server(kernel), secrets, leftover)?,
        alpn,
    })
}

/// A finished client handshake: the connection and what the server showed.
pub struct Connected<S> {
    pub tls: OwnTls<S>,
    pub peer_certificates: Vec<CertificateDer<'static>>,
    pub kind: Option<HandshakeKind>,
}

/// Connects a site connection's TLS on `io` to `name`.
pub async fn connect<S>(
    mut io: S,
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
) -> io::Result<Connected<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut conn = UnbufferedClientConnection::new(config, name).map_err(tls_error)?;
    let leftover = drive(&mut io, &mut conn, MAX_SERVER_FLIGHT).await?;
    let peer_certificates = conn
        .peer_certificates()
        .map(|certs| certs.iter().map(|c| c.clone().into_owned()).collect())
        .unwrap_or_default();
    let kind = conn.handshake_kind();
    let (secrets, kernel) = conn.dangerous_into_kernel_connection().map_err(tls_error)?;
    Ok(Connected {
        tls: finish(io, Kernel::Client(kernel), secrets, leftover)?,
        peer_certificates,
        kind,
    })
}

fn finish<S>(
    io: S,
    kernel: Kernel,
    secrets: ExtractedSecrets,
    leftover: Leftover,
) -> io::Result<OwnTls<S>> {
    OwnTls::new(io, kernel, secrets, leftover.ciphertext, leftover.plaintext)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_receive_buffer_doubles_up_to_its_limit_and_no_further() {
        assert_eq!(grown(FIRST_READ, MAX_CLIENT_FLIGHT), Some(4 * 1024));
        assert_eq!(grown(64 * 1024, MAX_CLIENT_FLIGHT), Some(MAX_CLIENT_FLIGHT));
        assert_eq!(grown(MAX_CLIENT_FLIGHT, MAX_CLIENT_FLIGHT), None);
        assert_eq!(
            grown(128 * 1024, MAX_SERVER_FLIGHT),
            Some(MAX_SERVER_FLIGHT)
        );
        assert_eq!(grown(MAX_SERVER_FLIGHT, MAX_SERVER_FLIGHT), None);
    }
}
