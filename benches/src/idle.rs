//! `comgate-bench idle`: resident memory of `comgate serve` per connected idle site
//! and per idle open tunnel.
//!
//! One `comgate serve` (with the usual bench agent and its tunnel to the in-process
//! target), N systems written straight into its SQLite database, then N lightweight
//! agents from this one process speaking the real protocol (TCP from 127.0.0.x
//! round-robin, TLS, websocket, hello, multiplexer kept alive; the multiplexer
//! answers heartbeats itself). VmRSS of serve is read before and after each step,
//! once it has stopped moving; then M tunnels through the bench agent's site, each
//! after one echoed byte.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio::task::JoinSet;
use tokio_rustls::TlsConnector;
use tunnel_proto::handshake::{agent_handshake, feature, Hello, SiteSettings, PROTOCOL_VERSION};
use tunnel_proto::mux::{self, Incoming, MuxConfig, MuxHandle, Role};

use crate::targets::{request, ECHO};

/// Systems per customer (the store has no limit; it keeps lookups realistic).
const PER_CUSTOMER: usize = 1000;
/// Source addresses 127.0.0.10 .. 127.0.0.(10 + SOURCES - 1), round-robin: each has
/// its own ephemeral port range.
const SOURCES: usize = 64;

#[derive(clap::Args, Debug)]
pub struct IdleArgs {
    /// Connected-site counts to measure at (cumulative, ascending).
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    sites: Vec<usize>,
    /// After the last `--sites` step, keep adding sites in steps of `--step` up to this
    /// cap, stopping at the first connect error (0: off). The open-file limit
    /// (`ulimit -n`) of this process and of serve bounds it.
    #[arg(long, default_value_t = 0)]
    max: usize,
    /// Step size for `--max`.
    #[arg(long, default_value_t = 5000)]
    step: usize,
    /// Idle tunnels to open through one site (0: skip). Fewer than about a
    /// thousand are within the allocator's own retention and scatter.
    #[arg(long, default_value_t = 1000)]
    tunnels: usize,
    /// Connected sites that then join their quick lane (a second connection,
    /// as a real agent opens with its first tunnel), for serve's memory per
    /// lane (0: skip).
    #[arg(long, default_value_t = 1000)]
    lanes: usize,
    /// Agent connections set up at once.
    #[arg(long, default_value_t = 64)]
    parallel: usize,
    /// Seconds to wait at least before each RSS reading; then until RSS stops moving.
    /// The default outlasts jemalloc's two decay stages (10 s each), after which the
    /// pages freed by a burst of set-ups have left serve's RSS.
    #[arg(long, default_value_t = 20)]
    settle: u64,
    /// The comgate binary (release build).
    #[arg(long, default_value = "target/release/comgate")]
    comgate: PathBuf,
    /// Work directory (configs, logs, database), empty or new; by default a temporary
    /// one, removed after a successful run and kept after a failed one.
    #[arg(long)]
    work_dir: Option<PathBuf>,
}

/// One connected idle site: kept alive by holding both halves of its multiplexer.
struct Site {
    mux: MuxHandle,
    _incoming: Incoming,
    /// Which system it is (an index into the credentials).
    index: usize,
    /// The quick-lane token its welcome offered.
    lane_token: Option<String>,
}

struct Creds {
    customer: String,
    system: String,
    secret: String,
}

struct Row {
    what: String,
    value: f64,
    target: Option<f64>,
}

pub async fn run(a: IdleArgs) -> Result<()> {
    let mut steps = a.sites.clone();
    steps.sort_unstable();
    steps.dedup();
    steps.retain(|&n| n > 0);
    let nofile = nofile_limit();
    let mut notes = Vec::new();
    let mut max = a.max;
    if let Some(limit) = nofile {
        let kept = kept_descriptors(a.tunnels, a.lanes);
        let room = (limit as usize).saturating_sub(kept);
        if max > room {
            notes.push(format!(
                "--max {max} lowered to {room}: open-file limit {limit}, \
                 {kept} descriptors kept for the quick lanes and the tunnels",
            ));
            max = room;
        }
    }
    let listed_max = steps.last().copied().unwrap_or(0);
    if max > listed_max && a.step > 0 {
        let mut n = listed_max;
        while n < max {
            n = (n + a.step).min(max);
            steps.push(n);
        }
    }
    let total = steps.last().copied().unwrap_or(0);
    if let Some(limit) = nofile {
        if (total as u64) + 100 > limit {
            eprintln!(
                "warning: open-file limit {limit} (ulimit -n) is below {total} sites; \
                 connects will stop with EMFILE near it (raise it with `ulimit -n`, \
                 benches/run.sh does)"
            );
        }
    }

    let named = a.work_dir.clone();
    crate::work_dir::within(
        named.as_deref(),
        "comgate-bench-idle-",
        async |dir: &std::path::Path| measure_in(&a, dir, steps, notes).await,
    )
    .await
}

/// The measurement itself; every process it starts is stopped when it returns.
async fn measure_in(
    a: &IdleArgs,
    dir: &std::path::Path,
    steps: Vec<usize>,
    mut notes: Vec<String>,
) -> Result<()> {
    let dir = dir.to_path_buf();
    let total = steps.last().copied().unwrap_or(0);
    let bin = std::fs::canonicalize(&a.comgate)
        .with_context(|| format!("{} (cargo build --release -p gateway)", a.comgate.display()))?;
    let target = crate::targets::start(SocketAddr::from(([127, 0, 0, 5], 0))).await?;
    eprintln!("work dir {}, target {target}", dir.display());
    let (peer, cg) = crate::peers::comgate(&bin, &dir, target, stream_limit(a.tunnels)).await?;
    let (data, agent_port) = (cg.data.clone(), cg.agent_port);
    let serve_pid = peer.procs[0].0.pid();

    let t = Instant::now();
    let creds = create_systems(&data.join("comgate.db"), total).await?;
    eprintln!(
        "{} systems created in {:.1} s",
        creds.len(),
        t.elapsed().as_secs_f64()
    );

    let tls = TlsConnector::from(crate::tls::client(&data.join("ca.pem"), false)?);
    let gw = SocketAddr::from(([127, 0, 0, 1], agent_port));
    let mut rows = Vec::new();

    let base = settled_rss(serve_pid, a.settle).await?;
    rows.push(Row {
        what: "serve VmRSS before the idle agents (1 bench agent), MiB".into(),
        value: base as f64 / 1024.0,
        target: None,
    });
    eprintln!("serve RSS before: {base} KiB");

    let creds = Arc::new(creds);
    let mut sites: Vec<Site> = Vec::with_capacity(total);
    let (mut prev_n, mut prev_rss) = (0usize, base);
    for &n in &steps {
        let t = Instant::now();
        let err = connect_sites(&tls, gw, &creds, &mut sites, n, a.parallel).await;
        let got = sites.len();
        eprintln!("{got} sites connected ({:.1} s)", t.elapsed().as_secs_f64());
        if got > prev_n {
            let rss = settled_rss(serve_pid, a.settle).await?;
            let per = (rss as f64 - base as f64) / got as f64;
            eprintln!("serve RSS at {got} sites: {rss} KiB, {per:.1} KiB/site");
            rows.push(Row {
                what: format!("KiB per idle site at {got} sites"),
                value: per,
                target: Some(16.0),
            });
            if prev_n > 0 {
                rows.push(Row {
                    what: format!("KiB per idle site, marginal {prev_n} to {got}"),
                    value: (rss as f64 - prev_rss as f64) / (got - prev_n) as f64,
                    target: Some(16.0),
                });
            }
            rows.push(Row {
                what: format!("serve VmRSS at {got} sites, MiB"),
                value: rss as f64 / 1024.0,
                target: None,
            });
            (prev_n, prev_rss) = (got, rss);
        }
        if let Err(e) = err {
            let msg = format!("stopped at {got} connected sites (wanted {n}): {e:#}");
            eprintln!("{msg}");
            notes.push(msg);
            break;
        }
    }

    if a.lanes > 0 && !sites.is_empty() {
        if let Err(e) = lanes(a, &tls, gw, &creds, &sites, serve_pid, &mut rows).await {
            let msg = format!("quick-lane figures failed: {e:#}");
            eprintln!("{msg}");
            notes.push(msg);
        }
    }

    if a.tunnels > 0 {
        if let Err(e) = tunnels(a, &peer.path, target, serve_pid, &mut rows).await {
            let msg = format!("tunnel figures failed: {e:#}");
            eprintln!("{msg}");
            notes.push(msg);
        }
    }

    let mut out = String::from(
        "Idle memory: growth of `comgate serve`'s VmRSS (release build). Sites are \
         lightweight agents in one process speaking the real protocol; tunnels go \
         through one site to an echo target, each after one echoed byte.\n\n\
         | figure | value | target |\n|---|---:|---:|\n",
    );
    for r in &rows {
        let target = match r.target {
            Some(t) if r.value <= t => format!("≤ {t:.0} (met)"),
            Some(t) => format!("≤ {t:.0} (missed)"),
            None => String::new(),
        };
        out.push_str(&format!("| {} | {:.1} | {target} |\n", r.what, r.value));
    }
    for n in &notes {
        out.push_str(&format!("\n- {n}"));
    }
    println!("{out}");
    drop(sites);
    drop(peer);
    Ok(())
}

/// Joins the quick lane of up to `a.lanes` connected sites and adds serve's
/// RSS growth per lane: what a site that once had a tunnel costs beyond an
/// idle one.
async fn lanes(
    a: &IdleArgs,
    tls: &TlsConnector,
    gw: SocketAddr,
    creds: &Arc<Vec<Creds>>,
    sites: &[Site],
    serve_pid: u32,
    rows: &mut Vec<Row>,
) -> Result<()> {
    let count = a.lanes.min(sites.len());
    let half = count / 2;
    let before = settled_rss(serve_pid, a.settle).await?;
    join_lanes(tls, gw, creds, &sites[..half], a.parallel).await?;
    let mid = if half > 0 {
        settled_rss(serve_pid, a.settle).await?
    } else {
        before
    };
    join_lanes(tls, gw, creds, &sites[half..count], a.parallel).await?;
    let after = settled_rss(serve_pid, a.settle).await?;
    eprintln!("{count} quick lanes joined: serve RSS {before} -> {mid} -> {after} KiB");
    rows.push(Row {
        what: format!("KiB per quick lane ({count} sites that had a tunnel)"),
        value: (after as f64 - before as f64) / count as f64,
        target: None,
    });
    if half > 0 {
        rows.push(Row {
            what: format!("KiB per quick lane, marginal {half} to {count}"),
            value: (after as f64 - mid as f64) / (count - half) as f64,
            target: None,
        });
    }
    Ok(())
}

/// Has `sites` join their quick lanes, `parallel` at a time.
async fn join_lanes(
    tls: &TlsConnector,
    gw: SocketAddr,
    creds: &Arc<Vec<Creds>>,
    sites: &[Site],
    parallel: usize,
) -> Result<()> {
    if sites.is_empty() {
        return Ok(());
    }
    let mut set = JoinSet::new();
    for chunk in sites.chunks(sites.len().div_ceil(parallel.max(1))) {
        let jobs: Vec<_> = chunk
            .iter()
            .map(|s| (s.mux.clone(), s.index, s.lane_token.clone()))
            .collect();
        let (tls, creds) = (tls.clone(), creds.clone());
        set.spawn(async move {
            for job in jobs {
                let index = job.1;
                join_lane(&tls, gw, &creds[index], job).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = set.join_next().await {
        r.context("join")??;
    }
    Ok(())
}

/// Opens `a.tunnels` tunnels through the bench agent's site, one echoed byte each,
/// and adds serve's RSS growth per tunnel (overall and over the second half).
async fn tunnels(
    a: &IdleArgs,
    path: &crate::paths::Path,
    target: SocketAddr,
    serve_pid: u32,
    rows: &mut Vec<Row>,
) -> Result<()> {
    let half = a.tunnels / 2;
    let mut open = Vec::with_capacity(a.tunnels);
    let before = settled_rss(serve_pid, a.settle).await?;
    let mut mid = before;
    for i in 0..a.tunnels {
        if i == half && half > 0 {
            mid = settled_rss(serve_pid, a.settle).await?;
        }
        let mut s = path
            .open(target, true)
            .await
            .with_context(|| format!("opening tunnel {}", i + 1))?;
        let mut msg = request(ECHO, 0).to_vec();
        msg.push(b'x');
        s.io.write_all(&msg).await?;
        let mut b = [0u8; 1];
        s.io.read_exact(&mut b).await.context("echoed byte")?;
        open.push(s);
    }
    let after = settled_rss(serve_pid, a.settle).await?;
    eprintln!(
        "{} tunnels open: serve RSS {before} -> {after} KiB",
        open.len()
    );
    rows.push(Row {
        what: format!("KiB per idle open tunnel ({} tunnels)", a.tunnels),
        value: (after as f64 - before as f64) / a.tunnels as f64,
        target: Some(20.0),
    });
    if half > 0 {
        rows.push(Row {
            what: format!("KiB per idle open tunnel, marginal {half} to {}", a.tunnels),
            value: (after as f64 - mid as f64) / (a.tunnels - half) as f64,
            target: Some(20.0),
        });
    }
    Ok(())
}

/// serve's RSS moving by less than this between two readings a second apart counts
/// as still.
const STILL_KIB: u64 = 128;
/// Consecutive still seconds that make a reading settled.
const STILL_SECONDS: usize = 3;
/// The longest wait for RSS to settle after the minimum.
const SETTLE_MAX: Duration = Duration::from_secs(40);

/// serve's VmRSS once it has stopped moving, at least `min_secs` after the last
/// step. The pages freed after a burst of set-ups (TLS handshakes above all) leave
/// RSS only over jemalloc's decay times (10 s dirty, then 10 s "muzzy", gradually),
/// so a reading taken 5 s after the burst counted some of them as the idle sites'
/// memory: 25 KiB per site at 1,000 sites, 18 once RSS had been still for three
/// seconds, 16 after 20 s.
async fn settled_rss(pid: u32, min_secs: u64) -> Result<u64> {
    tokio::time::sleep(Duration::from_secs(min_secs)).await;
    let deadline = Instant::now() + SETTLE_MAX;
    let mut readings = vec![rss_kib(pid)?];
    while !is_settled(&readings) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
        readings.push(rss_kib(pid)?);
    }
    let waited = readings.len() - 1;
    let rss = *readings.last().expect("one reading");
    if waited > 0 {
        eprintln!(
            "serve RSS settled at {rss} KiB after {} s more ({} KiB less than the first reading)",
            waited,
            readings[0].saturating_sub(rss)
        );
    }
    Ok(rss)
}

/// Whether the last [`STILL_SECONDS`] steps of one-second readings each moved by
/// less than [`STILL_KIB`].
fn is_settled(readings: &[u64]) -> bool {
    readings.len() > STILL_SECONDS
        && readings[readings.len() - STILL_SECONDS - 1..]
            .windows(2)
            .all(|w| w[0].abs_diff(w[1]) < STILL_KIB)
}

/// `count` systems over customers of [`PER_CUSTOMER`] systems each, written into the
/// database serve uses (serve reads it on every agent hello).
async fn create_systems(db: &std::path::Path, count: usize) -> Result<Vec<Creds>> {
    let store = admin::Store::open_sqlite(db)
        .await
        .with_context(|| format!("opening {}", db.display()))?;
    let customers = count.div_ceil(PER_CUSTOMER);
    for c in 0..customers {
        store
            .add_customer(admin::NewCustomer {
                id: format!("idle{c}"),
                name: format!("Idle {c}"),
                reseller: "reseller-a".into(),
                provider: None,
                ..Default::default()
            })
            .await
            .context("add_customer")?;
    }
    // argon2 runs on the blocking pool: a few at once use both cores.
    let mut set = JoinSet::new();
    let mut creds = Vec::with_capacity(count);
    for i in 0..count {
        if set.len() >= 4 {
            creds.push(set.join_next().await.context("join")???);
        }
        let store = store.clone();
        set.spawn(async move {
            let customer = format!("idle{}", i / PER_CUSTOMER);
            let (system, secret) = store
                .add_system(&customer, &format!("s{i}"), i % PER_CUSTOMER == 0)
                .await
                .context("add_system")?;
            anyhow::Ok(Creds {
                customer,
                system: system.label,
                secret,
            })
        });
    }
    while let Some(r) = set.join_next().await {
        creds.push(r??);
    }
    Ok(creds)
}

/// Connects sites until `sites.len() == upto`, `parallel` at a time; stops at the
/// first error (the sites connected so far stay).
async fn connect_sites(
    tls: &TlsConnector,
    gw: SocketAddr,
    creds: &Arc<Vec<Creds>>,
    sites: &mut Vec<Site>,
    upto: usize,
    parallel: usize,
) -> Result<()> {
    let mut set = JoinSet::new();
    let mut next = sites.len();
    let mut first_err = None;
    loop {
        while first_err.is_none() && next < upto && set.len() < parallel.max(1) {
            let (tls, creds, i) = (tls.clone(), creds.clone(), next);
            set.spawn(async move { connect_one(&tls, gw, &creds[i], i).await });
            next += 1;
        }
        match set.join_next().await {
            None => break,
            Some(r) => match r.context("join")? {
                Ok(s) => sites.push(s),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            },
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

async fn connect_one(tls: &TlsConnector, gw: SocketAddr, c: &Creds, i: usize) -> Result<Site> {
    let (ws, welcome) = say_hello(tls, gw, c, i, None).await?;
    let (mux, incoming) = mux::start(ws, Role::Agent, MuxConfig::default());
    Ok(Site {
        mux,
        _incoming: incoming,
        index: i,
        lane_token: welcome.quick_lane,
    })
}

/// Joins `site`'s quick lane over a second connection, as a real agent does
/// with its first tunnel.
async fn join_lane(
    tls: &TlsConnector,
    gw: SocketAddr,
    c: &Creds,
    (mux, index, token): (MuxHandle, usize, Option<String>),
) -> Result<()> {
    let token = token.context("serve offered this site no quick lane")?;
    mux.accept_quick_lane();
    let (ws, _) = say_hello(tls, gw, c, index, Some(token)).await?;
    mux.attach_quick_lane()?;
    mux.run_quick_lane(ws);
    Ok(())
}

/// A connection to serve's agent listener from 127.0.0.<10 + i % SOURCES>
/// and the hello of system `c` (for its quick lane when `quick_lane`).
async fn say_hello(
    tls: &TlsConnector,
    gw: SocketAddr,
    c: &Creds,
    i: usize,
    quick_lane: Option<String>,
) -> Result<(
    tunnel_proto::ws::WsConn<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>,
    tunnel_proto::Welcome,
)> {
    let src = Ipv4Addr::new(127, 0, 0, 10 + (i % SOURCES) as u8);
    let sock = TcpSocket::new_v4().map_err(emfile)?;
    sock.bind(SocketAddr::from((src, 0)))
        .with_context(|| format!("bind {src}"))?;
    let tcp = sock.connect(gw).await.map_err(emfile)?;
    tcp.set_nodelay(true)?;
    let name = ServerName::try_from("127.0.0.1")?;
    let tls = tls.connect(name, tcp).await.context("TLS")?;
    let url = format!("wss://127.0.0.1:{}/agent/v1", gw.port());
    let mut ws = tunnel_proto::ws::connect(&url, tls)
        .await
        .context("websocket")?;
    let hello = Hello {
        version: PROTOCOL_VERSION,
        customer: c.customer.clone(),
        system: c.system.clone(),
        secret: c.secret.clone(),
        settings: SiteSettings {
            remote_access: true,
            colocated_servers: false,
            centralized_management: false,
            own_ports: Vec::new(),
            tunnels: Vec::new(),
        },
        agent_version: "comgate-bench-idle".into(),
        features: vec![feature::QUICK_LANE.into()],
        quick_lane,
    };
    let welcome = agent_handshake(&mut ws, &hello)
        .await
        .with_context(|| format!("hello for {}-{}", c.customer, c.system))?;
    Ok((ws, welcome))
}

fn emfile(e: std::io::Error) -> anyhow::Error {
    if e.raw_os_error() == Some(24) {
        anyhow::Error::new(e).context(
            "too many open files in the load generator: raise `ulimit -n` \
             (one descriptor per site here and in serve)",
        )
    } else {
        e.into()
    }
}

/// The soft open-file limit of this process.
/// Descriptors this process keeps free of sites: two per tunnel (client and
/// target side), one per quick lane (its second connection), and some for
/// the bench's own use.
fn kept_descriptors(tunnels: usize, lanes: usize) -> usize {
    2 * tunnels + lanes + 200
}

/// The streams per site to configure for `tunnels` idle tunnels through one
/// site (both ends take 1,024 by default, which stopped `--tunnels 2000` at
/// 1,024); `None` while the default leaves room, so that the usual run
/// measures comgate as configured out of the box.
fn stream_limit(tunnels: usize) -> Option<u32> {
    const DEFAULT: usize = 1024;
    // A few more for the site's own checks of its path.
    let wanted = tunnels + 16;
    (wanted > DEFAULT).then(|| u32::try_from(wanted).unwrap_or(u32::MAX))
}

fn nofile_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// VmRSS of `pid` in KiB.
fn rss_kib(pid: u32) -> Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("serve (pid {pid}) is gone"))?;
    let line = text
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("no VmRSS")?;
    let kib = line
        .split_whitespace()
        .nth(1)
        .context("VmRSS value")?
        .parse()?;
    if kib == 0 {
        bail!("VmRSS 0 for pid {pid}");
    }
    Ok(kib)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_are_kept_for_the_lanes_as_well_as_the_tunnels() {
        // 17,800 sites, 1,000 lanes and 1,000 tunnels overran 20,000 by 600.
        assert_eq!(kept_descriptors(1000, 1000), 3200);
        assert_eq!(kept_descriptors(1000, 0), 2200);
    }

    #[test]
    fn the_stream_limit_is_raised_only_for_more_tunnels_than_the_default_takes() {
        assert_eq!(stream_limit(1000), None);
        assert_eq!(stream_limit(2000), Some(2016));
    }

    #[test]
    fn rss_is_settled_after_three_still_seconds() {
        // Falling as jemalloc returns pages: not settled.
        assert!(!is_settled(&[50_000, 48_000, 46_500, 45_800]));
        // Too few readings to tell.
        assert!(!is_settled(&[40_000, 40_010, 40_020]));
        // Three one-second steps under 128 KiB each.
        assert!(is_settled(&[46_000, 40_000, 40_050, 39_990, 40_000]));
        // A late drop restarts the count.
        assert!(!is_settled(&[40_000, 40_010, 40_020, 39_000]));
    }
}
