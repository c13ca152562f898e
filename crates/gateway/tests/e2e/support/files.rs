//! Random payloads, SHA-256 of files and buffers, and echo round trips through any
//! byte stream.

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use rand::RngCore as _;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::reading::read_to_len;

pub const MIB: usize = 1024 * 1024;

/// `n` random bytes.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rand::rng().fill_bytes(&mut v);
    v
}

/// Writes `n` random bytes to `path`; returns their SHA-256 (hex).
pub fn random_file(path: &Path, n: usize) -> Result<String> {
    let mut file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut chunk = vec![0u8; MIB];
    let mut left = n;
    while left > 0 {
        let take = left.min(chunk.len());
        rand::rng().fill_bytes(&mut chunk[..take]);
        hasher.update(&chunk[..take]);
        file.write_all(&chunk[..take])?;
        left -= take;
    }
    file.sync_all()?;
    Ok(hex(&hasher.finalize()))
}

/// SHA-256 of a file (hex).
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut chunk = vec![0u8; MIB];
    loop {
        let n = file.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        hasher.update(&chunk[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// SHA-256 of a buffer (hex).
pub fn sha256(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Sends `n` random bytes through `stream` (whose far end echoes) while reading them
/// back, all within `timeout`; fails unless the same bytes return. Reads everything
/// before closing: proxytunnel tears a tunnel down at the first EOF. Returns the time
/// taken.
pub async fn echo_roundtrip<S>(
    stream: S,
    early: Vec<u8>,
    n: usize,
    timeout: Duration,
) -> Result<Duration>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let data = random_bytes(n);
    let want = sha256(&data);
    let started = Instant::now();
    let (mut rd, mut wr) = tokio::io::split(stream);
    let writer = tokio::spawn(async move {
        wr.write_all(&data).await?;
        wr.flush().await?;
        Ok::<_, std::io::Error>(wr)
    });
    let got = match read_to_len(&mut rd, early, n, timeout).await {
        Ok(got) => got,
        Err(e) => {
            writer.abort();
            return Err(e.context(format!("reading the echo of {n} bytes")));
        }
    };
    let wr = tokio::time::timeout(Duration::from_secs(5), writer)
        .await
        .context("writer did not finish")???;
    drop(wr);
    ensure!(got.len() == n, "echo returned {} of {n} bytes", got.len());
    ensure!(
        sha256(&got) == want,
        "echoed bytes differ from the bytes sent"
    );
    Ok(started.elapsed())
}
