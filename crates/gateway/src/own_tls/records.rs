//! TLS record protection with the keys rustls hands over after the
//! handshake: seal a record from plaintext slices, open a received record
//! in place, and read the post-handshake messages a peer may send.
//!
//! Site connections are TLS 1.3 only; the front door also serves TLS 1.2
//! clients, so both versions' records are here ([`Suite`]). The AEAD work
//! is rustls's own (the suites' encrypters and decrypters: nonces, explicit
//! nonces, additional data, padding); what is done here is the framing
//! around it and the sequence numbers.

use std::ops::Range;

use rustls::crypto::cipher::{
    AeadKey, InboundOpaqueMessage, Iv, MessageDecrypter, MessageEncrypter, OutboundChunks,
    OutboundPlainMessage,
};
use rustls::{
    ConnectionTrafficSecrets, ContentType, ProtocolVersion, SupportedCipherSuite, Tls12CipherSuite,
    Tls13CipherSuite,
};

/// Record header: type, legacy version, length.
pub const HEADER_LEN: usize = 5;
/// Largest plaintext in one record (RFC 8446 section 5.1).
pub const MAX_PLAINTEXT: usize = 16 * 1024;
/// Largest ciphertext after the header of a TLS 1.3 record (RFC 8446
/// section 5.2).
pub const MAX_CIPHERTEXT_TLS13: usize = MAX_PLAINTEXT + 256;
/// Largest ciphertext after the header of any record (TLS 1.2 allows more:
/// RFC 5246 section 6.2.3).
pub const MAX_CIPHERTEXT: usize = MAX_PLAINTEXT + 2048;
/// Largest post-handshake message buffered across records; a session
/// ticket is a few hundred bytes, a key update five.
pub const MAX_HANDSHAKE_MESSAGE: usize = 64 * 1024;

/// The legacy record version every TLS 1.3 record carries.
const LEGACY_VERSION: [u8; 2] = [0x03, 0x03];
const HANDSHAKE_KEY_UPDATE: u8 = 24;
const HANDSHAKE_NEW_SESSION_TICKET: u8 = 4;

/// What is wrong with the records of a site connection.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("record of outer type {0} after the handshake")]
    OuterType(u8),
    #[error("record with version {0:#06x}")]
    Version(u16),
    #[error("record of {0} bytes is longer than TLS allows")]
    TooLong(usize),
    #[error("record did not decrypt: {0}")]
    Open(rustls::Error),
    #[error("record could not be encrypted: {0}")]
    Seal(rustls::Error),
    #[error("inner content type {0:?} after the handshake")]
    InnerType(ContentType),
    #[error("handshake message {0} after the handshake")]
    HandshakeType(u8),
    #[error("malformed {0}")]
    Malformed(&'static str),
    #[error("the peer sent alert {0}")]
    Alert(u8),
    #[error("cipher suite {0:?} with protocol {1:?} has no record layer here")]
    Unsupported(rustls::CipherSuite, ProtocolVersion),
    #[error("the peer asked to renegotiate, which comgate does not do")]
    Renegotiation,
    #[error(
        "TLS 1.2 has no key update, and the keys have sealed as many records as the suite allows"
    )]
    KeysUsedUp,
    #[error("unknown traffic secret kind")]
    UnknownSecrets,
    #[error("key update: {0}")]
    KeyUpdate(rustls::Error),
    #[error("session ticket: {0}")]
    Ticket(rustls::Error),
}

fn key_and_iv(secrets: ConnectionTrafficSecrets) -> Result<(AeadKey, Iv), RecordError> {
    match secrets {
        ConnectionTrafficSecrets::Aes128Gcm { key, iv }
        | ConnectionTrafficSecrets::Aes256Gcm { key, iv }
        | ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => Ok((key, iv)),
        _ => Err(RecordError::UnknownSecrets),
    }
}

/// The connection's cipher suite, which says how its records look.
#[derive(Debug, Clone, Copy)]
pub enum Suite {
    Tls13(&'static Tls13CipherSuite),
    Tls12(&'static Tls12CipherSuite),
}

impl Suite {
    /// The suite rustls negotiated, for the protocol version it negotiated.
    pub fn new(suite: SupportedCipherSuite, version: ProtocolVersion) -> Result<Self, RecordError> {
        match (suite, version) {
            (SupportedCipherSuite::Tls13(s), ProtocolVersion::TLSv1_3) => Ok(Suite::Tls13(s)),
            (SupportedCipherSuite::Tls12(s), ProtocolVersion::TLSv1_2) => Ok(Suite::Tls12(s)),
            (s, version) => Err(RecordError::Unsupported(s.suite(), version)),
        }
    }

    pub fn is_tls13(self) -> bool {
        matches!(self, Suite::Tls13(_))
    }

    fn decrypter(
        self,
        secrets: ConnectionTrafficSecrets,
    ) -> Result<Box<dyn MessageDecrypter>, RecordError> {
        let (key, iv) = key_and_iv(secrets)?;
        Ok(match self {
            Suite::Tls13(s) => s.aead_alg.decrypter(key, iv),
            Suite::Tls12(s) => {
                // The extracted IV is the fixed part and, for AES-GCM, the
                // first explicit nonce; a TLS 1.2 decrypter takes the
                // fixed part (the explicit nonce comes with each record).
                let fixed = s.aead_alg.key_block_shape().fixed_iv_len;
                s.aead_alg.decrypter(key, &iv.as_ref()[..fixed])
            }
        })
    }

    fn encrypter(
        self,
        secrets: ConnectionTrafficSecrets,
    ) -> Result<Box<dyn MessageEncrypter>, RecordError> {
        let (key, iv) = key_and_iv(secrets)?;
        Ok(match self {
            Suite::Tls13(s) => s.aead_alg.encrypter(key, iv),
            Suite::Tls12(s) => {
                let shape = s.aead_alg.key_block_shape();
                let iv = iv.as_ref();
                let fixed = shape.fixed_iv_len;
                let explicit = &iv[fixed..fixed + shape.explicit_nonce_len];
                s.aead_alg.encrypter(key, &iv[..fixed], explicit)
            }
        })
    }

    /// Records one key may protect.
    fn confidentiality_limit(self) -> u64 {
        match self {
            Suite::Tls13(s) => s.common.confidentiality_limit,
            Suite::Tls12(s) => s.common.confidentiality_limit,
        }
    }
}

/// Length of the ciphertext that follows a record header, checked.
pub fn body_len(header: &[u8; HEADER_LEN], suite: Suite) -> Result<usize, RecordError> {
    // After the handshake every TLS 1.3 record is application_data on the
    // outside; TLS 1.2 shows alerts and handshake messages (renegotiation,
    // refused once opened) as such. change_cipher_spec is only allowed
    // during the handshake.
    let types: &[ContentType] = match suite {
        Suite::Tls13(_) => &[ContentType::ApplicationData],
        Suite::Tls12(_) => &[
            ContentType::ApplicationData,
            ContentType::Alert,
            ContentType::Handshake,
        ],
    };
    if !types.iter().any(|t| u8::from(*t) == header[0]) {
        return Err(RecordError::OuterType(header[0]));
    }
    if header[1..3] != LEGACY_VERSION {
        return Err(RecordError::Version(u16::from_be_bytes([
            header[1], header[2],
        ])));
    }
    let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
    let max = match suite {
        Suite::Tls13(_) => MAX_CIPHERTEXT_TLS13,
        Suite::Tls12(_) => MAX_CIPHERTEXT,
    };
    if len > max {
        return Err(RecordError::TooLong(len));
    }
    Ok(len)
}

/// Opens received records, one sequence number after the other.
pub struct Opener {
    decrypter: Box<dyn MessageDecrypter>,
    seq: u64,
}

impl Opener {
    pub fn new(
        suite: Suite,
        seq: u64,
        secrets: ConnectionTrafficSecrets,
    ) -> Result<Self, RecordError> {
        Ok(Opener {
            decrypter: suite.decrypter(secrets)?,
            seq,
        })
    }

    /// Decrypts `record` (header and ciphertext, whose header
    /// [`body_len`] accepted) in place. Returns the content type (TLS 1.3:
    /// the inner one) and where the plaintext lies in `record`.
    pub fn open(&mut self, record: &mut [u8]) -> Result<(ContentType, Range<usize>), RecordError> {
        let (header, body) = record.split_at_mut(HEADER_LEN);
        let base = body.as_ptr() as usize;
        // The outer type is part of TLS 1.2's additional data.
        let message =
            InboundOpaqueMessage::new(ContentType::from(header[0]), ProtocolVersion::TLSv1_2, body);
        let plain = self
            .decrypter
            .decrypt(message, self.seq)
            .map_err(RecordError::Open)?;
        self.seq += 1;
        // The plaintext is a part of the ciphertext's buffer (decrypted in
        // place); its offset is plain address arithmetic.
        let start = HEADER_LEN + (plain.payload.as_ptr() as usize - base);
        Ok((plain.typ, start..start + plain.payload.len()))
    }
}

/// Seals records, one sequence number after the other.
pub struct Sealer {
    encrypter: Box<dyn MessageEncrypter>,
    seq: u64,
    /// From this sequence number on, a key update goes first.
    update_at: u64,
}

impl Sealer {
    pub fn new(
        suite: Suite,
        seq: u64,
        secrets: ConnectionTrafficSecrets,
    ) -> Result<Self, RecordError> {
        // Well before the suite's limit on records under one key (2^24
        // for AES-GCM): rustls refreshes its keys near the same point.
        let limit = suite.confidentiality_limit();
        Ok(Sealer {
            encrypter: suite.encrypter(secrets)?,
            seq,
            update_at: limit.saturating_sub(limit / 16).min(1 << 40),
        })
    }

    /// Whether the records sealed so far call for new keys first.
    pub fn wants_key_update(&self) -> bool {
        self.seq >= self.update_at
    }

    #[cfg(test)]
    pub fn update_after(&mut self, records: u64) {
        self.update_at = self.seq + records;
    }

    /// One record of `typ` holding `parts` (at most [`MAX_PLAINTEXT`]
    /// bytes together), header included.
    pub fn seal(&mut self, typ: ContentType, parts: &[&[u8]]) -> Result<Vec<u8>, RecordError> {
        debug_assert!(parts.iter().map(|p| p.len()).sum::<usize>() <= MAX_PLAINTEXT);
        let message = OutboundPlainMessage {
            typ,
            version: ProtocolVersion::TLSv1_2,
            payload: OutboundChunks::new(parts),
        };
        let sealed = self
            .encrypter
            .encrypt(message, self.seq)
            .map_err(RecordError::Seal)?;
        self.seq += 1;
        Ok(sealed.encode())
    }
}

/// A handshake message that may follow the handshake.
#[derive(Debug, PartialEq, Eq)]
pub enum PostHandshake<'a> {
    KeyUpdate {
        update_requested: bool,
    },
    /// The message's body, for the client's ticket store.
    NewSessionTicket(&'a [u8]),
}

/// The first complete handshake message in `buf` and its length in bytes,
/// or `None` while it is incomplete.
pub fn next_handshake_message(
    buf: &[u8],
) -> Result<Option<(PostHandshake<'_>, usize)>, RecordError> {
    let [typ, a, b, c, ref rest @ ..] = *buf else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([0, a, b, c]) as usize;
    if len > MAX_HANDSHAKE_MESSAGE {
        return Err(RecordError::Malformed("oversized post-handshake message"));
    }
    if rest.len() < len {
        return Ok(None);
    }
    let body = &rest[..len];
    let message = match typ {
        HANDSHAKE_KEY_UPDATE => match body {
            [0] => PostHandshake::KeyUpdate {
                update_requested: false,
            },
            [1] => PostHandshake::KeyUpdate {
                update_requested: true,
            },
            _ => return Err(RecordError::Malformed("key update")),
        },
        HANDSHAKE_NEW_SESSION_TICKET => PostHandshake::NewSessionTicket(body),
        other => return Err(RecordError::HandshakeType(other)),
    };
    Ok(Some((message, 4 + len)))
}

/// A key update message (RFC 8446 section 4.6.3) that asks the peer for
/// none in return.
pub const KEY_UPDATE_NOT_REQUESTED: [u8; 5] = [HANDSHAKE_KEY_UPDATE, 0, 0, 1, 0];
/// A warning-level close_notify alert.
pub const CLOSE_NOTIFY: [u8; 2] = [1, 0];

#[cfg(test)]
mod tests {
    use super::*;

    fn suite() -> Suite {
        Suite::Tls13(
            rustls::crypto::ring::cipher_suite::TLS13_AES_256_GCM_SHA384
                .tls13()
                .unwrap(),
        )
    }

    fn tls12_suites() -> [Suite; 2] {
        use rustls::crypto::ring::cipher_suite as cs;
        [
            // 32-byte keys: rustls makes shorter test keys only inside.
            cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        ]
        .map(|s| match s {
            SupportedCipherSuite::Tls12(s) => Suite::Tls12(s),
            SupportedCipherSuite::Tls13(_) => unreachable!(),
        })
    }

    fn secrets(byte: u8) -> ConnectionTrafficSecrets {
        ConnectionTrafficSecrets::Aes256Gcm {
            key: AeadKey::from([byte; 32]),
            iv: Iv::new([byte; 12]),
        }
    }

    #[test]
    fn sealed_records_open_in_order_and_in_place() {
        let mut sealer = Sealer::new(suite(), 7, secrets(1)).unwrap();
        let mut opener = Opener::new(suite(), 7, secrets(1)).unwrap();
        for text in [&b"first"[..], &[9u8; MAX_PLAINTEXT][..]] {
            let (a, b) = text.split_at(text.len() / 2);
            let mut record = sealer.seal(ContentType::ApplicationData, &[a, b]).unwrap();
            let header: [u8; HEADER_LEN] = record[..HEADER_LEN].try_into().unwrap();
            assert_eq!(
                body_len(&header, suite()).unwrap(),
                record.len() - HEADER_LEN
            );
            let (typ, range) = opener.open(&mut record).unwrap();
            assert_eq!(typ, ContentType::ApplicationData);
            assert_eq!(&record[range], text);
        }
    }

    #[test]
    fn a_changed_byte_a_wrong_key_or_a_replayed_record_does_not_open() {
        let mut sealer = Sealer::new(suite(), 0, secrets(1)).unwrap();
        let record = sealer
            .seal(ContentType::ApplicationData, &[b"data"])
            .unwrap();

        let mut changed = record.clone();
        *changed.last_mut().unwrap() ^= 1;
        let mut opener = Opener::new(suite(), 0, secrets(1)).unwrap();
        assert!(matches!(
            opener.open(&mut changed),
            Err(RecordError::Open(_))
        ));

        let mut other_key = Opener::new(suite(), 0, secrets(2)).unwrap();
        assert!(other_key.open(&mut record.clone()).is_err());

        let mut opener = Opener::new(suite(), 0, secrets(1)).unwrap();
        opener.open(&mut record.clone()).unwrap();
        // The same record again is read under the next sequence number.
        assert!(opener.open(&mut record.clone()).is_err());
    }

    #[test]
    fn headers_are_checked() {
        let tls13 = suite();
        let [tls12, _] = tls12_suites();
        assert_eq!(body_len(&[23, 3, 3, 0, 20], tls13).unwrap(), 20);
        assert!(matches!(
            body_len(&[22, 3, 3, 0, 20], tls13),
            Err(RecordError::OuterType(22))
        ));
        assert!(matches!(
            body_len(&[21, 3, 3, 0, 20], tls13),
            Err(RecordError::OuterType(21))
        ));
        // TLS 1.2 shows alerts and handshake messages as such.
        assert_eq!(body_len(&[21, 3, 3, 0, 26], tls12).unwrap(), 26);
        assert_eq!(body_len(&[22, 3, 3, 0, 40], tls12).unwrap(), 40);
        for suite in [tls13, tls12] {
            assert!(matches!(
                body_len(&[20, 3, 3, 0, 1], suite),
                Err(RecordError::OuterType(20))
            ));
            assert!(matches!(
                body_len(&[23, 3, 1, 0, 20], suite),
                Err(RecordError::Version(0x0301))
            ));
        }
        let [hi, lo] = ((MAX_CIPHERTEXT_TLS13 + 1) as u16).to_be_bytes();
        assert!(matches!(
            body_len(&[23, 3, 3, hi, lo], tls13),
            Err(RecordError::TooLong(_))
        ));
        assert_eq!(
            body_len(&[23, 3, 3, hi, lo], tls12).unwrap(),
            MAX_CIPHERTEXT_TLS13 + 1
        );
        let [hi, lo] = ((MAX_CIPHERTEXT + 1) as u16).to_be_bytes();
        assert!(matches!(
            body_len(&[23, 3, 3, hi, lo], tls12),
            Err(RecordError::TooLong(_))
        ));
    }

    #[test]
    fn tls12_records_open_with_their_outer_type_and_explicit_nonce() {
        for (i, suite) in tls12_suites().into_iter().enumerate() {
            let secrets = |byte: u8| {
                let (key, iv) = (AeadKey::from([byte; 32]), Iv::new([byte; 12]));
                if i == 0 {
                    ConnectionTrafficSecrets::Aes256Gcm { key, iv }
                } else {
                    ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv }
                }
            };
            let mut sealer = Sealer::new(suite, 3, secrets(5)).unwrap();
            let mut opener = Opener::new(suite, 3, secrets(5)).unwrap();
            for (typ, text) in [
                (ContentType::ApplicationData, &b"tls 1.2 data"[..]),
                (ContentType::Alert, &CLOSE_NOTIFY[..]),
                (ContentType::ApplicationData, &[7u8; MAX_PLAINTEXT][..]),
            ] {
                let mut record = sealer.seal(typ, &[text]).unwrap();
                assert_eq!(record[0], u8::from(typ));
                let header: [u8; HEADER_LEN] = record[..HEADER_LEN].try_into().unwrap();
                assert_eq!(body_len(&header, suite).unwrap(), record.len() - HEADER_LEN);
                let (opened, range) = opener.open(&mut record).unwrap();
                assert_eq!(opened, typ);
                assert_eq!(&record[range], text);
            }
            // The outer type is authenticated: relabelled, it does not open.
            let mut record = sealer.seal(ContentType::ApplicationData, &[b"x"]).unwrap();
            record[0] = u8::from(ContentType::Alert);
            assert!(matches!(
                opener.open(&mut record),
                Err(RecordError::Open(_))
            ));
        }
    }

    #[test]
    fn post_handshake_messages_are_read_whole() {
        assert_eq!(next_handshake_message(&[24, 0, 0]).unwrap(), None);
        assert_eq!(
            next_handshake_message(&[24, 0, 0, 1, 1, 99]).unwrap(),
            Some((
                PostHandshake::KeyUpdate {
                    update_requested: true
                },
                5
            ))
        );
        assert_eq!(
            next_handshake_message(&KEY_UPDATE_NOT_REQUESTED).unwrap(),
            Some((
                PostHandshake::KeyUpdate {
                    update_requested: false
                },
                5
            ))
        );
        assert_eq!(next_handshake_message(&[4, 0, 0, 3, 1, 2]).unwrap(), None);
        assert_eq!(
            next_handshake_message(&[4, 0, 0, 3, 1, 2, 3]).unwrap(),
            Some((PostHandshake::NewSessionTicket(&[1, 2, 3]), 7))
        );
        assert!(next_handshake_message(&[24, 0, 0, 1, 2]).is_err());
        assert!(next_handshake_message(&[1, 0, 0, 0]).is_err());
        assert!(next_handshake_message(&[4, 0xff, 0, 0]).is_err());
    }

    proptest::proptest! {
        #[test]
        fn parsers_take_any_bytes_without_panicking(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
        ) {
            if let Some(header) = bytes.first_chunk::<HEADER_LEN>() {
                if let Ok(len) = body_len(header, suite()) {
                    proptest::prop_assert!(len <= MAX_CIPHERTEXT);
                }
            }
            if let Ok(Some((_, used))) = next_handshake_message(&bytes) {
                proptest::prop_assert!(used <= bytes.len());
            }
            // Random ciphertext never opens (and never panics).
            let mut record = [&[23u8, 3, 3][..], &(bytes.len() as u16).to_be_bytes(), &bytes].concat();
            let mut opener = Opener::new(suite(), 0, secrets(3)).unwrap();
            proptest::prop_assert!(opener.open(&mut record).is_err());
        }
    }

    #[test]
    fn the_key_update_comes_before_the_suite_s_limit() {
        let mut sealer = Sealer::new(suite(), 0, secrets(1)).unwrap();
        assert!(!sealer.wants_key_update());
        sealer.seq = (1 << 24) - (1 << 20);
        assert!(sealer.wants_key_update());
    }
}
