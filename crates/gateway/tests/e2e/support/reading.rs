//! Reading what a peer sends until enough has come, bounded in time: the
//! tests wait for banners, greetings and echoes this way.

use std::time::Duration;

use anyhow::{bail, Result};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Appends to `got` what `from` sends until `got` holds `want` bytes or the
/// peer ends; fails (naming how far it came) if that takes longer than
/// `within` or the read fails.
pub async fn read_to_len(
    from: &mut (impl AsyncRead + Unpin),
    mut got: Vec<u8>,
    want: usize,
    within: Duration,
) -> Result<Vec<u8>> {
    let reading = async {
        let mut chunk = vec![0u8; 64 * 1024];
        while got.len() < want {
            let n = from.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            got.extend_from_slice(&chunk[..n]);
        }
        Ok::<_, std::io::Error>(())
    };
    match tokio::time::timeout(within, reading).await {
        Ok(read) => read?,
        Err(_) => bail!(
            "{} of {want} bytes within {within:?}, then nothing more",
            got.len()
        ),
    }
    Ok(got)
}
