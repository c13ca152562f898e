//! `comgate-bench`: comgate against direct TCP, a minimal two-TLS-hop relay and the
//! peers a partner could use instead (OpenSSH as a jump host, rathole), end to end on
//! loopback with real processes. Prints a markdown table of medians over `--runs`.
//!
//! Run it through `benches/run.sh`, which installs the peers and builds comgate in
//! release mode first.

mod idle;
mod measure;
mod paths;
mod peers;
mod relay;
mod report;
mod targets;
mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use crate::peers::Peer;
use crate::report::{Metric, Table};

#[derive(Parser, Debug)]
#[command(
    name = "comgate-bench",
    about = "comgate end-to-end benchmarks against peers"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    opts: Opts,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// One hop of the reference relay (started by the benchmark itself).
    Relay(relay::RelayArgs),
    /// Idle memory of `comgate serve` per connected site and per open tunnel.
    Idle(idle::IdleArgs),
}

#[derive(clap::Args, Debug)]
struct Opts {
    /// Bytes per bulk transfer (one stream; split over the 8 parallel streams).
    #[arg(long, default_value_t = 1 << 30)]
    bytes: u64,
    /// Runs per figure; the table shows the median.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Ping-pong round trips per latency figure.
    #[arg(long, default_value_t = 5000)]
    rounds: usize,
    /// Tunnel set-ups per set-up figure (ssh gets a tenth of it: one process each).
    #[arg(long, default_value_t = 1000)]
    setups: usize,
    /// Concurrent set-up workers.
    #[arg(long, default_value_t = 4)]
    parallel: usize,
    /// The comgate binary (release build).
    #[arg(long, default_value = "target/release/comgate")]
    comgate: PathBuf,
    /// The rathole binary; rathole is left out when it is missing.
    #[arg(long, default_value = "benches/.tools/bin/rathole")]
    rathole: PathBuf,
    /// Leave out these paths (comma-separated: ssh, rathole, relay).
    #[arg(long, value_delimiter = ',')]
    skip: Vec<String>,
    /// Work directory (configs, logs, keys); a temporary one by default.
    #[arg(long)]
    work_dir: Option<PathBuf>,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Some(Command::Relay(args)) => rt.block_on(relay::run(args)),
        Some(Command::Idle(args)) => rt.block_on(idle::run(args)),
        None => rt.block_on(bench(cli.opts)),
    }
}

async fn bench(o: Opts) -> Result<()> {
    let dir = match &o.work_dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("comgate-bench-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir)?;
    let comgate_bin = std::fs::canonicalize(&o.comgate)
        .with_context(|| format!("{} (cargo build --release -p gateway)", o.comgate.display()))?;
    let target = targets::start(SocketAddr::from(([127, 0, 0, 5], 0))).await?;
    eprintln!("work dir {}, target {target}", dir.display());

    let mut peers: Vec<Peer> = vec![peers::direct()];
    let (cg, data, _) = peers::comgate(&comgate_bin, &dir, target).await?;
    peers.push(cg);
    let mut left_out = Vec::new();
    if !o.skip.iter().any(|s| s == "relay") {
        peers.push(peers::relay(&dir, &data, target).await?);
    }
    if !o.skip.iter().any(|s| s == "ssh") {
        match peers::ssh(&dir, target).await {
            Ok(p) => peers.push(p),
            Err(e) => left_out.push(format!("ssh -W: {e:#}")),
        }
    }
    if !o.skip.iter().any(|s| s == "rathole") {
        if o.rathole.exists() {
            match peers::rathole(&o.rathole, &dir, &data, target).await {
                Ok(p) => peers.push(p),
                Err(e) => left_out.push(format!("rathole: {e:#}")),
            }
        } else {
            left_out.push(format!("rathole: {} not found", o.rathole.display()));
        }
    }
    for l in &left_out {
        eprintln!("left out: {l}");
    }

    let mut table = Table::new(
        peers
            .iter()
            .map(|p| (p.name.to_string(), p.is_peer))
            .collect(),
    );
    for run in 0..o.runs {
        for (i, p) in peers.iter().enumerate() {
            eprintln!("run {}/{}: {}", run + 1, o.runs, p.name);
            if let Err(e) = one_run(&o, p, i, target, &mut table).await {
                eprintln!("  {}: {e:#}", p.name);
                table.note(format!("{} failed in run {}: {e:#}", p.name, run + 1));
            }
        }
    }
    let mut out = String::new();
    out.push_str(&format!(
        "bytes per bulk transfer {} MiB, median of {} runs, {} ping-pongs, {} set-ups ({} workers)\n\n",
        o.bytes >> 20,
        o.runs,
        o.rounds,
        o.setups,
        o.parallel
    ));
    out.push_str(&table.render());
    for l in &left_out {
        out.push_str(&format!("\n- left out: {l}"));
    }
    println!("{out}");
    Ok(())
}

async fn one_run(o: &Opts, p: &Peer, i: usize, target: SocketAddr, t: &mut Table) -> Result<()> {
    let roots = p.pids();
    let mb = |b: &measure::Bulk| b.bytes as f64 / b.secs / 1e6;
    let mut cpu = 0.0;
    let mut gb = 0.0;
    for (metric, streams, up) in [
        (Metric::Up1, 1, true),
        (Metric::Down1, 1, false),
        (Metric::Up8, 8, true),
        (Metric::Down8, 8, false),
    ] {
        let b = measure::bulk(&p.path, target, &roots, o.bytes, streams, up).await?;
        t.add(metric, i, mb(&b));
        if streams == 1 {
            cpu += b.cpu;
            gb += b.bytes as f64 / 1e9;
        }
    }
    if !roots.is_empty() || matches!(p.path, paths::Path::Ssh(_)) {
        t.add(Metric::CpuPerGb, i, cpu / gb);
    }
    let (p50, p99) = measure::pingpong(&p.path, target, o.rounds).await?;
    t.add(Metric::RttP50, i, p50);
    t.add(Metric::RttP99, i, p99);
    let sat = measure::Saturator::start(&p.path, target).await?;
    let loaded = measure::pingpong(&p.path, target, o.rounds).await;
    let moved = sat.stop().await;
    let (p50, p99) = loaded?;
    moved?;
    t.add(Metric::RttP50Loaded, i, p50);
    t.add(Metric::RttP99Loaded, i, p99);
    let count = if matches!(p.path, paths::Path::Ssh(_)) {
        (o.setups / 10).max(10)
    } else {
        o.setups
    };
    let full = measure::setup(&p.path, target, count, o.parallel, false).await?;
    t.add(Metric::SetupRateFull, i, full.per_sec);
    t.add(Metric::SetupP50Full, i, full.p50_ms);
    t.add(Metric::SetupP99Full, i, full.p99_ms);
    if matches!(
        p.path,
        paths::Path::Comgate { .. } | paths::Path::Relay { .. }
    ) {
        let res = measure::setup(&p.path, target, count, o.parallel, true).await?;
        if res.resumed * 2 < count {
            t.note(format!(
                "{}: only {} of {count} set-ups resumed their TLS session",
                p.name, res.resumed
            ));
        }
        t.add(Metric::SetupRateResumed, i, res.per_sec);
        t.add(Metric::SetupP50Resumed, i, res.p50_ms);
        t.add(Metric::SetupP99Resumed, i, res.p99_ms);
    }
    Ok(())
}
