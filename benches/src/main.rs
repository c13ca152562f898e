//! `comgate-bench`: comgate against direct TCP, a minimal two-TLS-hop relay and the
//! peers a partner could use instead (OpenSSH as a jump host, rathole), end to end on
//! loopback with real processes. Prints a markdown table of medians over `--runs`.
//!
//! Run it through `benches/run.sh`, which installs the peers and builds comgate in
//! release mode first.

mod delay;
mod frontdoor;
mod idle;
mod measure;
mod paths;
mod peers;
mod relay;
mod report;
mod targets;
mod tls;
mod work_dir;

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
    /// A user-space delay relay (the distant-site link; started by the benchmark).
    Delay(delay::DelayArgs),
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
    /// Leave out these paths or figures (comma-separated: ssh, rathole, relay; delay:
    /// the distant-site figure; frontdoor: the front door against tinyproxy/haproxy;
    /// bulk, loaded, setup: a path's throughput and CPU, its latency beside a saturated
    /// stream, its set-ups).
    #[arg(long, value_delimiter = ',')]
    skip: Vec<String>,
    /// Delay each way on the distant-site link, in ms (its RTT is twice this).
    #[arg(long, default_value_t = 10)]
    site_delay_ms: u64,
    /// Bytes per bulk transfer over the distant-site link (default: a quarter of
    /// `--bytes`, at least 128 MiB, at most `--bytes`).
    #[arg(long)]
    far_bytes: Option<u64>,
    /// The reference relay's kernel scheduling policy: `batch` (comgate's default,
    /// `scheduling` in its configs) or `normal`.
    #[arg(long, value_enum, default_value_t = RelayScheduling::Batch)]
    relay_scheduling: RelayScheduling,
    /// Work directory (configs, logs, keys), empty or new; by default a temporary one,
    /// removed after a successful run and kept after a failed one.
    #[arg(long)]
    work_dir: Option<PathBuf>,
}

/// `--relay-scheduling`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum RelayScheduling {
    /// `SCHED_BATCH` (run under `chrt -b 0`).
    Batch,
    /// The kernel's default policy.
    Normal,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let run = async {
            match cli.command {
                Some(Command::Relay(args)) => relay::run(args).await,
                Some(Command::Idle(args)) => idle::run(args).await,
                Some(Command::Delay(args)) => delay::run(args).await,
                None => bench(cli.opts).await,
            }
        };
        // Dropping the run stops every process it started (kill on drop); a
        // SIGTERM that ended this process at once left serve and agents running.
        tokio::select! {
            outcome = run => outcome,
            signal = stop_signal() => Err(anyhow::anyhow!("stopped by {signal}")),
        }
    })
}

/// The first SIGINT or SIGTERM, by name.
async fn stop_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        // Without handlers the default action still ends the process.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}

async fn bench(o: Opts) -> Result<()> {
    work_dir::within(
        o.work_dir.as_deref(),
        "comgate-bench-",
        async |dir: &std::path::Path| bench_in(&o, dir).await,
    )
    .await
}

/// The run itself; every process it starts is stopped when it returns.
async fn bench_in(o: &Opts, dir: &std::path::Path) -> Result<()> {
    let dir = dir.to_path_buf();
    let comgate_bin = std::fs::canonicalize(&o.comgate)
        .with_context(|| format!("{} (cargo build --release -p gateway)", o.comgate.display()))?;
    let target = targets::start(SocketAddr::from(([127, 0, 0, 5], 0))).await?;
    eprintln!("work dir {}, target {target}", dir.display());

    let skip = |what: &str| o.skip.iter().any(|s| s == what);
    let mut peers: Vec<Peer> = vec![peers::direct()];
    let (cg, comgate) = peers::comgate(&comgate_bin, &dir, target, None).await?;
    peers.push(cg);
    let data = comgate.data.clone();
    let mut left_out = Vec::new();
    let mut relay2 = None;
    if !skip("relay") {
        let (p, r2) = peers::relay(
            &dir,
            &data,
            target,
            o.relay_scheduling == RelayScheduling::Batch,
        )
        .await?;
        peers.push(p);
        relay2 = Some(r2);
    }
    if !skip("ssh") {
        match peers::ssh(&dir, target).await {
            Ok(p) => peers.push(p),
            Err(e) => left_out.push(format!("ssh -W: {e:#}")),
        }
    }
    let rathole = !skip("rathole") && o.rathole.exists();
    if !skip("rathole") {
        if rathole {
            match peers::rathole(&o.rathole, &dir, &data, target, None).await {
                Ok(p) => peers.push(p),
                Err(e) => left_out.push(format!("rathole: {e:#}")),
            }
        } else {
            left_out.push(format!("rathole: {} not found", o.rathole.display()));
        }
    }

    // The distant site: the same paths with a delay relay on the site's hop, each
    // measured into the column of its loopback twin.
    let ms = o.site_delay_ms;
    let mut far: Vec<(usize, Peer)> = Vec::new();
    if !skip("delay") {
        for (i, p) in peers.iter().enumerate() {
            let started = match &p.path {
                paths::Path::Direct => peers::direct_far(&dir, target, ms).await,
                paths::Path::Comgate { .. } => comgate.far(target, ms).await,
                paths::Path::Relay { .. } => match relay2 {
                    Some(r2) => {
                        peers::relay_far(
                            &dir,
                            &data,
                            r2,
                            target,
                            ms,
                            o.relay_scheduling == RelayScheduling::Batch,
                        )
                        .await
                    }
                    None => continue,
                },
                paths::Path::Ssh(jump) => peers::ssh_far(&dir, jump, target, ms).await,
                paths::Path::Rathole { .. } => {
                    peers::rathole(&o.rathole, &dir, &data, target, Some(ms)).await
                }
                _ => continue,
            };
            match started {
                Ok(f) => far.push((i, f)),
                Err(e) => left_out.push(format!("{} over the delay relay: {e:#}", p.name)),
            }
        }
    }
    let far_bytes = o
        .far_bytes
        .unwrap_or_else(|| (o.bytes / 4).max(128 << 20).min(o.bytes));

    // The front door alone against general-purpose CONNECT proxies.
    let front: Vec<Peer> = if skip("frontdoor") {
        Vec::new()
    } else {
        frontdoor::start(&dir, &data, target, &mut left_out).await
    };
    for l in &left_out {
        eprintln!("left out: {l}");
    }

    let mut table = Table::new(
        peers
            .iter()
            .map(|p| (p.name.to_string(), p.is_peer))
            .collect(),
        "ssh -W, rathole",
        2 * ms,
    );
    // Columns 0 and 1 are direct and comgate, copied from the main table.
    let mut front_table = Table::new(
        [&peers[0], &peers[1]]
            .into_iter()
            .chain(&front)
            .map(|p| (p.name.to_string(), p.is_peer))
            .collect(),
        "haproxy with one or two TLS hops; tinyproxy alone has no TLS and does not count",
        2 * ms,
    );
    if let Some(ri) = peers
        .iter()
        .position(|p| matches!(p.path, paths::Path::Relay { .. }))
    {
        table.set_reference(ri);
    }
    for run in 0..o.runs {
        table.start_run(run);
        front_table.start_run(run);
        figure_run(o, &peers, run, target, &mut table).await;
        for (i, p) in &far {
            eprintln!(
                "run {}/{}: {}, {} ms RTT site link",
                run + 1,
                o.runs,
                p.name,
                2 * ms
            );
            if let Err(e) = far_run(o, p, *i, target, far_bytes, &mut table).await {
                eprintln!("  {} (distant site): {e:#}", p.name);
                table.note(format!(
                    "{} over the delay relay failed in run {}: {e:#}",
                    p.name,
                    run + 1
                ));
            }
        }
        for (j, p) in front.iter().enumerate() {
            eprintln!("run {}/{}: {}", run + 1, o.runs, p.name);
            if let Err(e) = front_run(o, p, j + 2, target, &mut front_table).await {
                eprintln!("  {}: {e:#}", p.name);
                front_table.note(format!("{} failed in run {}: {e:#}", p.name, run + 1));
            }
        }
    }
    let mut out = String::new();
    let far_note = if far.is_empty() {
        String::new()
    } else {
        format!(
            " ({} MiB over the {} ms RTT site link)",
            far_bytes >> 20,
            2 * ms
        )
    };
    out.push_str(&format!(
        "bytes per bulk transfer {} MiB{far_note}, median of {} runs, {} ping-pongs, {} set-ups ({} workers); the reference relay's scheduling: {}\n\n",
        o.bytes >> 20,
        o.runs,
        o.rounds,
        o.setups,
        o.parallel,
        match o.relay_scheduling {
            RelayScheduling::Batch => "batch, as comgate's default",
            RelayScheduling::Normal => "normal",
        }
    ));
    out.push_str(&table.render());
    if !front.is_empty() {
        let shared = [
            Metric::Up1,
            Metric::Down1,
            Metric::CpuPerGb,
            Metric::RttP50,
            Metric::RttP99,
            Metric::SetupRateFull,
            Metric::SetupP50Full,
            Metric::SetupP99Full,
            Metric::SetupRateResumed,
            Metric::SetupP50Resumed,
            Metric::SetupP99Resumed,
        ];
        front_table.copy_from(&table, 0, 0, &shared);
        front_table.copy_from(&table, 1, 1, &shared);
        out.push_str(
            "\n\nThe CONNECT front door against general-purpose proxies (same runs; direct and \
             comgate columns as above; tinyproxy's \"full TLS\" rows are its plain set-ups)\n\n",
        );
        out.push_str(&front_table.render());
    }
    for l in &left_out {
        out.push_str(&format!("\n- left out: {l}"));
    }
    println!("{out}");
    Ok(())
}

/// The distant-site figures of one path: one stream each way, then the RTT.
async fn far_run(
    o: &Opts,
    p: &Peer,
    i: usize,
    target: SocketAddr,
    bytes: u64,
    t: &mut Table,
) -> Result<()> {
    for (metric, up) in [(Metric::Up1Far, true), (Metric::Down1Far, false)] {
        let b = measure::bulk(&p.path, target, &[], bytes, 1, up).await?;
        t.add(metric, i, b.bytes as f64 / b.secs / 1e6);
    }
    let (p50, _) = measure::pingpong(&p.path, target, o.rounds.clamp(20, 200)).await?;
    t.add(Metric::RttP50Far, i, p50 / 1e3);
    Ok(())
}

/// The front-door figures of one general-purpose proxy path: one stream each way
/// with CPU, idle RTT, set-ups (with resumption when it speaks TLS).
async fn front_run(o: &Opts, p: &Peer, i: usize, target: SocketAddr, t: &mut Table) -> Result<()> {
    let roots = p.pids();
    let mut cpu = 0.0;
    let mut gb = 0.0;
    for (metric, up) in [(Metric::Up1, true), (Metric::Down1, false)] {
        let b = measure::bulk(&p.path, target, &roots, o.bytes, 1, up).await?;
        t.add(metric, i, b.bytes as f64 / b.secs / 1e6);
        cpu += b.cpu;
        gb += b.bytes as f64 / 1e9;
    }
    t.add(Metric::CpuPerGb, i, cpu / gb);
    let (p50, p99) = measure::pingpong(&p.path, target, o.rounds).await?;
    t.add(Metric::RttP50, i, p50);
    t.add(Metric::RttP99, i, p99);
    let full = measure::setup(&p.path, target, o.setups, o.parallel, false).await?;
    t.add(Metric::SetupRateFull, i, full.per_sec);
    t.add(Metric::SetupP50Full, i, full.p50_ms);
    t.add(Metric::SetupP99Full, i, full.p99_ms);
    if matches!(&p.path, paths::Path::Proxy { front: Some(_), .. }) {
        let res = measure::setup(&p.path, target, o.setups, o.parallel, true).await?;
        if res.resumed * 2 < o.setups {
            t.note(format!(
                "{}: only {} of {} set-ups resumed their TLS session",
                p.name, res.resumed, o.setups
            ));
        }
        t.add(Metric::SetupRateResumed, i, res.per_sec);
        t.add(Metric::SetupP50Resumed, i, res.p50_ms);
        t.add(Metric::SetupP99Resumed, i, res.p99_ms);
    }
    Ok(())
}

/// One run of the main table. Each figure is measured for every path in
/// turn before the next figure starts, so the two values a ratio pairs are
/// taken seconds apart: this VM's speed drifts by 5-15 % over minutes, and
/// measuring all of one path's figures before the next path's put minutes
/// (its latency and set-up figures) between comgate's transfer and the
/// relay's.
async fn figure_run(o: &Opts, peers: &[Peer], run: usize, target: SocketAddr, t: &mut Table) {
    let skip = |what: &str| o.skip.iter().any(|s| s == what);
    // A path that fails a figure sits out the rest of the run.
    let mut failed = vec![false; peers.len()];
    // Each run starts each figure with another path: whoever comes first
    // meets the machine as the previous figure left it.
    let order: Vec<usize> = (0..peers.len()).map(|k| (k + run) % peers.len()).collect();
    let say = |p: &Peer, what: &str| eprintln!("run {}/{}: {}, {what}", run + 1, o.runs, p.name);
    // The paths still in the run, in this run's order.
    let live =
        |failed: &[bool]| -> Vec<usize> { order.iter().copied().filter(|&i| !failed[i]).collect() };
    if !skip("bulk") {
        // CPU seconds and GB of each path's one-stream transfers.
        let mut cpu = vec![(0.0, 0.0); peers.len()];
        for (metric, streams, up, what) in [
            (Metric::Up1, 1, true, "1 stream up"),
            (Metric::Down1, 1, false, "1 stream down"),
            (Metric::Up8, 8, true, "8 streams up"),
            (Metric::Down8, 8, false, "8 streams down"),
        ] {
            for i in live(&failed) {
                let p = &peers[i];
                say(p, what);
                match measure::bulk(&p.path, target, &p.pids(), o.bytes, streams, up).await {
                    Ok(b) => {
                        t.add(metric, i, b.bytes as f64 / b.secs / 1e6);
                        if streams == 1 {
                            cpu[i].0 += b.cpu;
                            cpu[i].1 += b.bytes as f64 / 1e9;
                        }
                    }
                    Err(e) => failure(t, &mut failed, p, i, run, e),
                }
            }
        }
        for i in live(&failed) {
            let p = &peers[i];
            let counted = !p.pids().is_empty() || matches!(p.path, paths::Path::Ssh(_));
            if counted && cpu[i].1 > 0.0 {
                t.add(Metric::CpuPerGb, i, cpu[i].0 / cpu[i].1);
            }
        }
    }
    for figure in [Figure::Idle, Figure::Loaded, Figure::Setup] {
        if figure.skip_name().is_some_and(&skip) {
            continue;
        }
        for i in live(&failed) {
            let p = &peers[i];
            say(p, figure.label());
            let done = match figure {
                Figure::Idle => idle_run(o, p, i, target, t).await,
                Figure::Loaded => loaded_run(o, p, i, target, t).await,
                Figure::Setup => setup_run(o, p, i, target, t).await,
            };
            if let Err(e) = done {
                failure(t, &mut failed, p, i, run, e);
            }
        }
    }
}

/// The figures after the transfers, each measured per path.
#[derive(Clone, Copy)]
enum Figure {
    Idle,
    Loaded,
    Setup,
}

impl Figure {
    fn label(self) -> &'static str {
        match self {
            Figure::Idle => "idle round trips",
            Figure::Loaded => "round trips beside a saturated stream",
            Figure::Setup => "set-ups",
        }
    }

    /// Its `--skip` name; the idle round trips are always measured.
    fn skip_name(self) -> Option<&'static str> {
        match self {
            Figure::Idle => None,
            Figure::Loaded => Some("loaded"),
            Figure::Setup => Some("setup"),
        }
    }
}

/// Notes that path `i` failed in this run and takes it out of the run.
fn failure(t: &mut Table, failed: &mut [bool], p: &Peer, i: usize, run: usize, e: anyhow::Error) {
    eprintln!("  {}: {e:#}", p.name);
    t.note(format!("{} failed in run {}: {e:#}", p.name, run + 1));
    failed[i] = true;
}

/// One path's ping-pong round trips with nothing else running.
async fn idle_run(o: &Opts, p: &Peer, i: usize, target: SocketAddr, t: &mut Table) -> Result<()> {
    let (p50, p99) = measure::pingpong(&p.path, target, o.rounds).await?;
    t.add(Metric::RttP50, i, p50);
    t.add(Metric::RttP99, i, p99);
    Ok(())
}

/// One path's ping-pong round trips while another stream is saturated.
async fn loaded_run(o: &Opts, p: &Peer, i: usize, target: SocketAddr, t: &mut Table) -> Result<()> {
    let sat = measure::Saturator::start(&p.path, target).await?;
    let loaded = measure::pingpong(&p.path, target, o.rounds).await;
    let moved = sat.stop().await;
    let (p50, p99) = loaded?;
    moved?;
    t.add(Metric::RttP50Loaded, i, p50);
    t.add(Metric::RttP99Loaded, i, p99);
    Ok(())
}

/// One path's set-up figures, with full TLS hand-shakes and (where the
/// path has TLS sessions to resume) with resumption.
async fn setup_run(o: &Opts, p: &Peer, i: usize, target: SocketAddr, t: &mut Table) -> Result<()> {
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
