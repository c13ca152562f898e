//! Sealing secrets that comgate must present later (a customer's service
//! user password), as opposed to secrets it only verifies (passwords, agent
//! secrets: argon2 hashes).
//!
//! AES-256-GCM with a random 96-bit nonce per value. A sealed value is text,
//! `v1:` + base64(nonce || ciphertext || tag), so that it fits a TEXT column
//! on both databases. The caller names what the value is for (`context`,
//! e.g. the customer it belongs to); it is authenticated with the value
//! (GCM's associated data), so a sealed value copied to another customer's
//! row does not open there.
//!
//! The key is 32 random bytes in a file of its own (`data_dir/seal.key`,
//! mode 0600), outside the database: a copy of the database alone does not
//! reveal the passwords. Losing the file loses the passwords (they must be
//! entered again); it is not derived from anything.

use std::fmt;
use std::io::Write;
use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

/// Bytes in a seal key.
pub const KEY_LEN: usize = 32;

/// The prefix of a value sealed by this version.
const V1: &str = "v1:";

/// The key values are sealed with. Its `Debug` shows nothing of it.
#[derive(Clone)]
pub struct SealKey {
    bytes: [u8; KEY_LEN],
}

impl fmt::Debug for SealKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealKey(<redacted>)")
    }
}

/// Why a key file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SealKeyError {
    #[error("seal key file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("seal key file {path}: must hold the base64 of exactly 32 bytes")]
    Malformed { path: String },
    #[error("no secure random numbers available")]
    Random,
}

/// Why a sealed value did not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UnsealError {
    /// Not a value this module sealed (wrong prefix, bad base64, too short).
    #[error("not a sealed value")]
    Malformed,
    /// Sealed with another key or for another context, or altered since.
    #[error("wrong key, or the value was altered")]
    Rejected,
}

impl SealKey {
    /// A new random key.
    pub fn generate() -> Result<SealKey, SealKeyError> {
        let mut bytes = [0u8; KEY_LEN];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| SealKeyError::Random)?;
        Ok(SealKey { bytes })
    }

    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> SealKey {
        SealKey { bytes }
    }

    /// Reads the key at `path`, or creates it there (and its directory)
    /// with a new random key, readable by the owner only. Two processes
    /// starting at once end up with the same key: the file appears complete
    /// or not at all (written aside, then linked into place).
    pub fn load_or_create(path: &Path) -> Result<SealKey, SealKeyError> {
        let io = |source| SealKeyError::Io {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => return SealKey::parse(path, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let key = SealKey::generate()?;
        let aside = path.with_extension(format!("tmp{}", std::process::id()));
        {
            let mut file = open_private(&aside).map_err(io)?;
            let written = file
                .write_all(format!("{}\n", STANDARD.encode(key.bytes)).as_bytes())
                .and_then(|()| file.sync_all());
            if let Err(e) = written {
                let _ = std::fs::remove_file(&aside);
                return Err(io(e));
            }
        }
        let linked = std::fs::hard_link(&aside, path);
        let _ = std::fs::remove_file(&aside);
        match linked {
            Ok(()) => {
                tracing::info!(path = %path.display(), "seal key created");
                Ok(key)
            }
            // Another process created it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let text = std::fs::read_to_string(path).map_err(io)?;
                SealKey::parse(path, &text)
            }
            Err(e) => Err(io(e)),
        }
    }

    fn parse(path: &Path, text: &str) -> Result<SealKey, SealKeyError> {
        let malformed = || SealKeyError::Malformed {
            path: path.display().to_string(),
        };
        let bytes = STANDARD.decode(text.trim()).map_err(|_| malformed())?;
        let bytes: [u8; KEY_LEN] = bytes.try_into().map_err(|_| malformed())?;
        Ok(SealKey { bytes })
    }

    fn aead(&self) -> LessSafeKey {
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &self.bytes).expect("32-byte AES key"))
    }

    /// `plaintext` sealed for `context`: a different text each time.
    pub fn seal(&self, context: &str, plaintext: &str) -> Result<String, SealKeyError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| SealKeyError::Random)?;
        let mut buffer = plaintext.as_bytes().to_vec();
        self.aead()
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut buffer,
            )
            .map_err(|_| SealKeyError::Random)?;
        let mut out = Vec::with_capacity(NONCE_LEN + buffer.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buffer);
        Ok(format!("{V1}{}", STANDARD.encode(out)))
    }

    /// The plaintext of a value [`SealKey::seal`] sealed for `context`.
    pub fn unseal(&self, context: &str, sealed: &str) -> Result<String, UnsealError> {
        let encoded = sealed.strip_prefix(V1).ok_or(UnsealError::Malformed)?;
        let mut bytes = STANDARD
            .decode(encoded)
            .map_err(|_| UnsealError::Malformed)?;
        if bytes.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(UnsealError::Malformed);
        }
        let nonce: [u8; NONCE_LEN] = bytes[..NONCE_LEN].try_into().expect("checked length");
        let plaintext = self
            .aead()
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut bytes[NONCE_LEN..],
            )
            .map_err(|_| UnsealError::Rejected)?;
        String::from_utf8(plaintext.to_vec()).map_err(|_| UnsealError::Rejected)
    }
}

#[cfg(unix)]
fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_with_its_key_and_context_only() {
        let key = SealKey::generate().unwrap();
        let sealed = key.seal("customer:1", "Pa55word!").unwrap();
        assert!(sealed.starts_with("v1:"), "{sealed}");
        assert!(!sealed.contains("Pa55word"));
        assert_eq!(key.unseal("customer:1", &sealed).unwrap(), "Pa55word!");
        assert_eq!(
            key.unseal("customer:2", &sealed),
            Err(UnsealError::Rejected)
        );
        let other = SealKey::generate().unwrap();
        assert_eq!(
            other.unseal("customer:1", &sealed),
            Err(UnsealError::Rejected)
        );
    }

    #[test]
    fn two_seals_of_one_value_differ() {
        let key = SealKey::generate().unwrap();
        let a = key.seal("c", "same").unwrap();
        let b = key.seal("c", "same").unwrap();
        assert_ne!(a, b);
        assert_eq!(key.unseal("c", &a).unwrap(), key.unseal("c", &b).unwrap());
    }

    #[test]
    fn altered_or_malformed_values_are_refused() {
        let key = SealKey::generate().unwrap();
        let sealed = key.seal("c", "secret").unwrap();
        let mut bytes = STANDARD.decode(&sealed[3..]).unwrap();
        for i in [0, NONCE_LEN, bytes.len() - 1] {
            bytes[i] ^= 1;
            let tampered = format!("v1:{}", STANDARD.encode(&bytes));
            assert_eq!(key.unseal("c", &tampered), Err(UnsealError::Rejected));
            bytes[i] ^= 1;
        }
        for bad in ["", "secret", "v1:", "v1:!!!", "v2:AAAA", "v1:AAAA"] {
            assert_eq!(key.unseal("c", bad), Err(UnsealError::Malformed), "{bad}");
        }
    }

    #[test]
    fn the_key_file_is_created_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data").join("seal.key");
        let key = SealKey::load_or_create(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = SealKey::load_or_create(&path).unwrap();
        assert_eq!(key.bytes, again.bytes);
        let sealed = key.seal("c", "x").unwrap();
        assert_eq!(again.unseal("c", &sealed).unwrap(), "x");
        // Nothing else is left in the directory.
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );

        std::fs::write(&path, "too short\n").unwrap();
        let err = SealKey::load_or_create(&path).unwrap_err();
        assert!(err.to_string().contains("seal.key"), "{err}");
    }

    #[test]
    fn debug_shows_nothing_of_the_key() {
        let key = SealKey::from_bytes([0xab; KEY_LEN]);
        let shown = format!("{key:?}");
        assert_eq!(shown, "SealKey(<redacted>)");
    }
}
