//! Password and secret hashing, and the COM password policy.
//!
//! Everything a client proves it knows (proxy account passwords, agent
//! secrets, COM user passwords) is stored only as an argon2id PHC string, so a
//! copy of the database does not hand out access. argon2 is deliberately slow
//! (tens of milliseconds, ~19 MiB), so async callers use the `_async`
//! wrappers, which run it on tokio's blocking pool instead of stalling the
//! reactor that relays everyone else's tunnels.
//!
//! The wrappers also bound how many run at once (one per CPU): when a
//! thousand site agents reconnect after a gateway restart, unbounded
//! verifications would each take their 19 MiB at the same moment (measured:
//! 200 agents took the gateway from 10 MB to 1.7 GB resident) and finish no
//! sooner, since the CPUs are the limit either way.

use std::fmt;
use std::sync::{LazyLock, OnceLock};

use argon2::password_hash::{PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use rand::RngCore;

use crate::{PasswordPolicyError, StoreError};

/// Shortest and longest COM user password, from the manual.
pub const PASSWORD_LEN: std::ops::RangeInclusive<usize> = 9..=31;

/// How many of the four character types a COM user password needs.
pub const PASSWORD_MIN_CHARACTER_TYPES: usize = 2;

/// A stored argon2 PHC string (`$argon2id$v=19$...`).
///
/// It is not a secret in itself, but it is what an offline attack starts
/// from, so it never appears in `Debug` output, logs or JSON.
///
/// `PhcHash::default()` is empty and matches nothing.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PhcHash(String);

impl PhcHash {
    /// Wraps a PHC string read from storage.
    pub fn from_phc(phc: String) -> Self {
        Self(phc)
    }

    /// The PHC string, for storing or verifying it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `candidate` is what was hashed. Blocks for the argon2 time.
    pub fn verify(&self, candidate: &str) -> bool {
        verify_password(&self.0, candidate)
    }
}

impl From<PhcHash> for String {
    fn from(hash: PhcHash) -> String {
        hash.0
    }
}

impl fmt::Debug for PhcHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("********")
    }
}

/// Hashes with argon2id and the crate's default parameters and a fresh
/// random salt. Blocks for the argon2 time; see [`hash_password_async`].
pub fn hash_password(password: &str) -> Result<PhcHash, StoreError> {
    hash_with(&Argon2::default(), password)
}

/// The one hashing routine: a fresh 16-byte salt, `argon2`'s parameters.
fn hash_with(argon2: &Argon2<'_>, input: &str) -> Result<PhcHash, StoreError> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| StoreError::Hashing(e.to_string()))?;
    let hash = argon2
        .hash_password(input.as_bytes(), &salt)
        .map_err(|e| StoreError::Hashing(e.to_string()))?;
    Ok(PhcHash(hash.to_string()))
}

/// argon2id cost for agent secrets: 1 MiB, 2 passes (about a millisecond).
///
/// A secret is 256 random bits, so no amount of hashing makes guessing it
/// any harder; the hash only keeps a database copy from handing out access,
/// which any argon2 parameters do. Passwords chosen by people keep argon2's
/// default (19 MiB), since their entropy is what the cost protects. Cheap
/// secrets matter at scale: after a gateway restart every site agent
/// authenticates again, and 100,000 sites at 20-50 ms each would keep two
/// CPUs busy for half an hour.
const SECRET_PARAMS: (u32, u32, u32) = (1024, 2, 1);

/// Hashes a high-entropy secret (an agent secret) with [`SECRET_PARAMS`].
pub fn hash_secret(secret: &str) -> Result<PhcHash, StoreError> {
    let (m, t, p) = SECRET_PARAMS;
    let params = Params::new(m, t, p, None).map_err(|e| StoreError::Hashing(e.to_string()))?;
    hash_with(
        &Argon2::new(Algorithm::Argon2id, Version::V0x13, params),
        secret,
    )
}

/// Whether `candidate` matches the PHC string `phc`. The parameters are read
/// from `phc`, so hashes made with older parameters keep verifying. The
/// comparison inside argon2 is constant-time. A malformed `phc` never matches.
pub fn verify_password(phc: &str, candidate: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(candidate.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Concurrent argon2 runs allowed: one per CPU.
static HASHING_SLOTS: LazyLock<tokio::sync::Semaphore> = LazyLock::new(|| {
    let cpus = std::thread::available_parallelism().map_or(2, usize::from);
    tokio::sync::Semaphore::new(cpus)
});

/// Runs `work` on the blocking pool once a hashing slot is free; `None` if
/// the worker failed.
async fn on_hashing_slot<T, F>(work: F) -> Option<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    // The semaphore is never closed, so acquiring cannot fail.
    let _permit = HASHING_SLOTS.acquire().await.ok()?;
    tokio::task::spawn_blocking(work).await.ok()
}

/// [`hash_password`] on the blocking pool.
pub async fn hash_password_async(password: String) -> Result<PhcHash, StoreError> {
    on_hashing_slot(move || hash_password(&password))
        .await
        .ok_or_else(|| StoreError::Hashing("the hashing worker failed".into()))?
}

/// [`hash_secret`] on the blocking pool.
pub async fn hash_secret_async(secret: String) -> Result<PhcHash, StoreError> {
    on_hashing_slot(move || hash_secret(&secret))
        .await
        .ok_or_else(|| StoreError::Hashing("the hashing worker failed".into()))?
}

/// Like [`verify_nothing_async`], for a secret hashed with [`hash_secret`].
pub async fn verify_no_secret_async(candidate: String) -> bool {
    static DUMMY: OnceLock<Option<PhcHash>> = OnceLock::new();
    spend_verification(&DUMMY, hash_secret, candidate).await
}

/// [`verify_password`] on the blocking pool; `phc` is a [`PhcHash`] or a PHC
/// `String`. A failed worker counts as a mismatch: refusing is the safe answer.
pub async fn verify_password_async(phc: impl Into<String>, candidate: impl Into<String>) -> bool {
    let (phc, candidate) = (phc.into(), candidate.into());
    on_hashing_slot(move || verify_password(&phc, &candidate))
        .await
        .unwrap_or(false)
}

/// Spends about the time of one verification and returns `false`.
///
/// Used when the account being logged in to does not exist, so that the
/// response time does not tell an attacker which usernames are real.
pub async fn verify_nothing_async(candidate: String) -> bool {
    static DUMMY: OnceLock<Option<PhcHash>> = OnceLock::new();
    spend_verification(&DUMMY, hash_password, candidate).await
}

/// Verifies `candidate` against a dummy hash made once with `hash`, so that
/// an unknown name costs what a known one does; always `false`.
async fn spend_verification(
    dummy: &'static OnceLock<Option<PhcHash>>,
    hash: fn(&str) -> Result<PhcHash, StoreError>,
    candidate: String,
) -> bool {
    let _ = on_hashing_slot(move || {
        if let Some(dummy) = dummy.get_or_init(|| hash("comgate-timing-dummy").ok()) {
            let _ = dummy.verify(&candidate);
        }
    })
    .await;
    false
}

/// The manual's rule for COM user passwords: 9-31 characters, from at least
/// two of uppercase, lowercase, digits and special characters (anything else,
/// spaces included). Reuse of earlier passwords is the admin plane's check.
pub fn check_password_policy(password: &str) -> Result<(), PasswordPolicyError> {
    if !PASSWORD_LEN.contains(&password.chars().count()) {
        return Err(PasswordPolicyError::Length);
    }
    let (mut upper, mut lower, mut digit, mut special) = (false, false, false, false);
    for c in password.chars() {
        if c.is_uppercase() {
            upper = true;
        } else if c.is_lowercase() {
            lower = true;
        } else if c.is_ascii_digit() {
            digit = true;
        } else {
            special = true;
        }
    }
    let types = [upper, lower, digit, special]
        .into_iter()
        .filter(|&t| t)
        .count();
    if types < PASSWORD_MIN_CHARACTER_TYPES {
        return Err(PasswordPolicyError::TooFewCharacterTypes);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_argon2id_and_verifies_only_the_password() {
        let hash = hash_password("pa:ss%w\\rd").unwrap();
        assert!(hash.expose().starts_with("$argon2id$"), "{}", hash.expose());
        assert!(!hash.expose().contains("pa:ss"));
        assert!(verify_password(hash.expose(), "pa:ss%w\\rd"));
        assert!(!verify_password(hash.expose(), "pa:ss%w\\rD"));
        assert!(!verify_password(hash.expose(), ""));
    }

    #[test]
    fn same_password_hashes_differently() {
        let a = hash_password("same").unwrap();
        let b = hash_password("same").unwrap();
        assert_ne!(a, b, "salts must differ");
    }

    #[test]
    fn malformed_phc_never_matches() {
        assert!(!verify_password("", ""));
        assert!(!verify_password("plaintext", "plaintext"));
    }

    #[test]
    fn phc_hash_debug_is_masked() {
        let hash = hash_password("x").unwrap();
        assert_eq!(format!("{hash:?}"), "********");
    }

    #[test]
    fn secrets_hash_cheaply_and_verify_only_themselves() {
        let hash = hash_secret("agent-secret").unwrap();
        assert!(
            hash.expose().starts_with("$argon2id$v=19$m=1024,t=2,p=1$"),
            "{}",
            hash.expose()
        );
        assert!(verify_password(hash.expose(), "agent-secret"));
        assert!(!verify_password(hash.expose(), "agent-secreT"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn hashing_runs_at_most_one_per_cpu_at_once() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..32)
            .map(|_| {
                let (running, most) = (running.clone(), most.clone());
                tokio::spawn(on_hashing_slot(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(std::time::Duration::from_millis(5));
                    running.fetch_sub(1, Ordering::SeqCst);
                }))
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let cpus = std::thread::available_parallelism().map_or(2, usize::from);
        let most = most.load(Ordering::SeqCst);
        assert!(
            most >= 1 && most <= cpus,
            "{most} ran at once with {cpus} CPUs"
        );
    }

    #[tokio::test]
    async fn async_wrappers_agree_with_blocking_ones() {
        let hash = hash_password_async("s3cret!".into()).await.unwrap();
        assert!(verify_password_async(hash.clone(), "s3cret!").await);
        assert!(!verify_password_async(hash.clone(), "s3cret").await);
        assert!(verify_password_async(String::from(hash), "s3cret!").await);
        assert!(!verify_password_async(PhcHash::default(), "").await);
        assert!(!verify_nothing_async("anything".into()).await);
    }

    #[test]
    fn policy_length_is_9_to_31_characters() {
        assert_eq!(
            check_password_policy("Abcdefg1"),
            Err(PasswordPolicyError::Length)
        );
        assert_eq!(check_password_policy("Abcdefgh1"), Ok(()));
        assert_eq!(
            check_password_policy(&format!("A{}", "b".repeat(30))),
            Ok(())
        );
        assert_eq!(
            check_password_policy(&format!("A{}", "b".repeat(31))),
            Err(PasswordPolicyError::Length)
        );
        // Characters, not bytes.
        assert_eq!(check_password_policy("ääääääääA"), Ok(()));
    }

    #[test]
    fn policy_needs_two_character_types() {
        for weak in ["abcdefghij", "ABCDEFGHIJ", "1234567890", "!@#$%^&*()"] {
            assert_eq!(
                check_password_policy(weak),
                Err(PasswordPolicyError::TooFewCharacterTypes),
                "{weak}"
            );
        }
        for ok in [
            "abcdefghI",
            "abcdefgh1",
            "abcdefgh!",
            "12345678!",
            "ABCDEFGH1",
        ] {
            assert_eq!(check_password_policy(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn policy_errors_name_the_rule() {
        let err = StoreError::from(check_password_policy("short").unwrap_err());
        assert_eq!(err.to_string(), "password: must be 9-31 characters");
        let err = StoreError::from(check_password_policy("aaaaaaaaaa").unwrap_err());
        assert!(
            err.to_string().starts_with("password: must contain"),
            "{err}"
        );
    }
}
