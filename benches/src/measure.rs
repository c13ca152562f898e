//! The measurements, each over one path: bulk transfer, ping-pong latency, tunnel
//! set-up, and CPU time of the processes that do the path's work.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::paths::Path;
use crate::targets::{request, ECHO, SINK, SOURCE};

const CHUNK: usize = 256 * 1024;

/// One set-up: open, one echoed byte. Returns whether TLS resumed.
pub async fn echo_once(path: &Path, target: SocketAddr, resume: bool) -> Result<bool> {
    let mut s = path.open(target, resume).await?;
    let mut msg = request(ECHO, 0).to_vec();
    msg.push(b'x');
    s.io.write_all(&msg).await?;
    let mut b = [0u8; 1];
    s.io.read_exact(&mut b)
        .await
        .context("reading the echoed byte")?;
    Ok(s.resumed)
}

/// Outcome of one bulk transfer.
pub struct Bulk {
    pub secs: f64,
    pub bytes: u64,
    /// CPU seconds of the path's processes during the transfer.
    pub cpu: f64,
}

/// Moves `bytes` through `streams` parallel streams (`up`: client to target).
pub async fn bulk(
    path: &Path,
    target: SocketAddr,
    roots: &[u32],
    bytes: u64,
    streams: usize,
    up: bool,
) -> Result<Bulk> {
    let per = bytes / streams as u64;
    let mut opened = Vec::new();
    let mut pids = roots.to_vec();
    for _ in 0..streams {
        let s = path.open(target, true).await?;
        pids.extend(&s.pids);
        opened.push(s);
    }
    let before = tree_cpu(&pids);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for mut s in opened {
        tasks.push(tokio::spawn(async move {
            let mut buf = vec![0x33u8; CHUNK];
            if up {
                s.io.write_all(&request(SINK, per)).await?;
                let mut left = per;
                while left > 0 {
                    let w = left.min(CHUNK as u64) as usize;
                    s.io.write_all(&buf[..w]).await?;
                    left -= w as u64;
                }
                s.io.flush().await?;
                let mut k = [0u8; 1];
                s.io.read_exact(&mut k)
                    .await
                    .context("sink's acknowledgement")?;
            } else {
                s.io.write_all(&request(SOURCE, per)).await?;
                s.io.flush().await?;
                let mut left = per;
                while left > 0 {
                    let r = s.io.read(&mut buf).await?;
                    if r == 0 {
                        bail!("source stream ended {left} bytes early");
                    }
                    left = left.saturating_sub(r as u64);
                }
            }
            Ok::<_, anyhow::Error>(s)
        }));
    }
    let mut done = Vec::new();
    for t in tasks {
        done.push(t.await??);
    }
    let secs = start.elapsed().as_secs_f64();
    // Read while the streams (and ssh clients) are still alive.
    let after = tree_cpu(&pids);
    drop(done);
    Ok(Bulk {
        secs,
        bytes: per * streams as u64,
        cpu: cpu_delta(&before, &after),
    })
}

/// p50 and p99 of 64-byte ping-pong round trips, in microseconds.
pub async fn pingpong(path: &Path, target: SocketAddr, rounds: usize) -> Result<(f64, f64)> {
    let mut s = path.open(target, true).await?;
    s.io.write_all(&request(ECHO, 0)).await?;
    let msg = [0x42u8; 64];
    let mut back = [0u8; 64];
    let mut rtts = Vec::with_capacity(rounds);
    for i in 0..rounds + rounds / 10 {
        let t = Instant::now();
        s.io.write_all(&msg).await?;
        s.io.flush().await?;
        s.io.read_exact(&mut back).await?;
        if i >= rounds / 10 {
            rtts.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    rtts.sort_by(f64::total_cmp);
    Ok((percentile(&rtts, 0.50), percentile(&rtts, 0.99)))
}

/// A stream on the same path that downloads as fast as it can until dropped.
pub struct Saturator {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Result<u64>>,
}

impl Saturator {
    pub async fn start(path: &Path, target: SocketAddr) -> Result<Saturator> {
        let mut s = path.open(target, true).await?;
        s.io.write_all(&request(SOURCE, u64::MAX / 2)).await?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; CHUNK];
            let mut total = 0u64;
            while !flag.load(Ordering::Relaxed) {
                let r = s.io.read(&mut buf).await?;
                if r == 0 {
                    bail!("saturating stream ended");
                }
                total += r as u64;
            }
            Ok(total)
        });
        // Let it reach full speed.
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok(Saturator { stop, task })
    }

    /// Stops it; returns the bytes it moved (an error if it broke down).
    pub async fn stop(self) -> Result<u64> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await?
    }
}

/// Set-up rate and latency: `count` set-ups by `parallel` workers.
pub struct Setup {
    pub per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub resumed: usize,
}

pub async fn setup(
    path: &Path,
    target: SocketAddr,
    count: usize,
    parallel: usize,
    resume: bool,
) -> Result<Setup> {
    // Warm the session cache (and comgate's credential cache).
    echo_once(path, target, resume).await?;
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..parallel {
        let path = path.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut resumed = 0;
            while next.fetch_add(1, Ordering::Relaxed) < count {
                let t = Instant::now();
                if echo_once(&path, target, resume).await? {
                    resumed += 1;
                }
                lat.push(t.elapsed().as_secs_f64() * 1e3);
            }
            Ok::<_, anyhow::Error>((lat, resumed))
        }));
    }
    let mut lat = Vec::new();
    let mut resumed = 0;
    for t in tasks {
        let (l, r) = t.await??;
        lat.extend(l);
        resumed += r;
    }
    let secs = start.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    Ok(Setup {
        per_sec: lat.len() as f64 / secs,
        p50_ms: percentile(&lat, 0.50),
        p99_ms: percentile(&lat, 0.99),
        resumed,
    })
}

pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i]
}

/// utime+stime (clock ticks) of each process in the trees under `roots`.
pub fn tree_cpu(roots: &[u32]) -> HashMap<u32, u64> {
    let mut parent = HashMap::new();
    let mut ticks = HashMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            let Some(rest) = stat.rsplit_once(") ").map(|(_, r)| r) else {
                continue;
            };
            let f: Vec<&str> = rest.split_whitespace().collect();
            if f.len() < 13 {
                continue;
            }
            let ppid: u32 = f[1].parse().unwrap_or(0);
            let t = f[11].parse::<u64>().unwrap_or(0) + f[12].parse::<u64>().unwrap_or(0);
            parent.insert(pid, ppid);
            ticks.insert(pid, t);
        }
    }
    let mut out = HashMap::new();
    for (&pid, &t) in &ticks {
        let mut p = pid;
        for _ in 0..64 {
            if roots.contains(&p) {
                out.insert(pid, t);
                break;
            }
            match parent.get(&p) {
                Some(&pp) if pp > 1 => p = pp,
                _ => break,
            }
        }
    }
    out
}

/// CPU seconds between two [`tree_cpu`] snapshots (processes that appeared count
/// from zero; 100 ticks per second, as on every Linux build here).
pub fn cpu_delta(before: &HashMap<u32, u64>, after: &HashMap<u32, u64>) -> f64 {
    let ticks: u64 = after
        .iter()
        .map(|(pid, &t)| t.saturating_sub(*before.get(pid).unwrap_or(&0)))
        .sum();
    ticks as f64 / 100.0
}
