//! The CONNECT front door alone against general-purpose proxies: tinyproxy (plain
//! HTTP CONNECT with Basic auth) and haproxy terminating TLS in front of it, with one
//! TLS hop (the front door's own shape) and with two (haproxy -TLS-> haproxy: the
//! same number of TLS hops as comgate's front door + site websocket). Each path gets
//! its own processes on loopback; a missing program leaves its paths out.

use std::net::SocketAddr;
use std::path::{Path as FsPath, PathBuf};

use anyhow::{Context, Result};
use tokio::process::Command;

use crate::paths::{Path, TlsFront};
use crate::peers::{
    base64_basic, free_port, wait_listening, wait_path, Peer, Proc, PASS, SNI, USER,
};

/// An executable named `name` on PATH or in the usual sbin directories.
fn find(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/sbin", "/usr/bin", "/sbin", "/usr/local/sbin"].map(PathBuf::from));
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

/// The front-door paths that could be started; what could not is described in
/// `left_out`.
pub async fn start(
    dir: &FsPath,
    data: &FsPath,
    target: SocketAddr,
    left_out: &mut Vec<String>,
) -> Vec<Peer> {
    let dir = dir.join("frontdoor");
    if let Err(e) = std::fs::create_dir_all(&dir) {
        left_out.push(format!("front door peers: {e}"));
        return Vec::new();
    }
    let Some(tinyproxy) = find("tinyproxy") else {
        left_out.push("front door peers: tinyproxy not found (apt-get install tinyproxy)".into());
        return Vec::new();
    };
    let mut peers = Vec::new();
    match plain(&tinyproxy, &dir, target).await {
        Ok(p) => peers.push(p),
        Err(e) => left_out.push(format!("tinyproxy: {e:#}")),
    }
    match find("haproxy") {
        None => left_out.push("haproxy: not found (apt-get install haproxy)".into()),
        Some(haproxy) => {
            for hops in [1, 2] {
                match tls(&haproxy, &tinyproxy, &dir, data, target, hops).await {
                    Ok(p) => peers.push(p),
                    Err(e) => left_out.push(format!("haproxy with {hops} TLS hop(s): {e:#}")),
                }
            }
        }
    }
    peers
}

/// tinyproxy on 127.0.0.7: CONNECT to the target's port only, Basic auth, one log
/// line per CONNECT (comgate logs an audit line per tunnel too).
async fn tinyproxy(
    bin: &FsPath,
    dir: &FsPath,
    name: &str,
    target: SocketAddr,
) -> Result<((Proc, PathBuf), SocketAddr)> {
    let addr = SocketAddr::from(([127, 0, 0, 7], free_port([127, 0, 0, 7])?));
    let conf = dir.join(format!("{name}.conf"));
    std::fs::write(
        &conf,
        format!(
            "Port {}\nListen 127.0.0.7\nTimeout 600\nMaxClients 1000\nAllow 127.0.0.0/8\n\
             BasicAuth {USER} {PASS}\nConnectPort {}\nLogFile \"{}\"\nLogLevel Connect\n",
            addr.port(),
            target.port(),
            dir.join(format!("{name}.access.log")).display()
        ),
    )?;
    let mut c = Command::new(bin);
    c.arg("-d").arg("-c").arg(&conf);
    let log = dir.join(format!("{name}.log"));
    let mut p = Proc::spawn(name, c, &log)?;
    wait_listening(&mut p, &log, addr).await?;
    Ok(((p, log), addr))
}

async fn plain(bin: &FsPath, dir: &FsPath, target: SocketAddr) -> Result<Peer> {
    let (tp, addr) = tinyproxy(bin, dir, "tinyproxy-plain", target).await?;
    let path = Path::Proxy {
        addr,
        front: None,
        authority: target.to_string(),
        basic: base64_basic(&format!("{USER}:{PASS}")),
    };
    let mut procs = vec![tp];
    wait_path(&path, target, &mut procs).await?;
    Ok(Peer {
        name: "tinyproxy, plain HTTP",
        path,
        procs,
        is_peer: false,
    })
}

/// client -TLS-> haproxy [-TLS-> haproxy] -> tinyproxy -> target. Each haproxy is its
/// own process (TCP mode, TLS terminated with the certificate comgate generated; the
/// inner hop verifies it against comgate's CA), no logging. `tune.bufsize` 64 KiB
/// (the reference relay's copy buffer): with the default 16 KiB one haproxy hop
/// moved about 40 % less here, so the peer is measured at its better setting.
async fn tls(
    haproxy: &FsPath,
    tinyproxy_bin: &FsPath,
    dir: &FsPath,
    data: &FsPath,
    target: SocketAddr,
    hops: usize,
) -> Result<Peer> {
    let (tp, tp_addr) = tinyproxy(tinyproxy_bin, dir, &format!("tinyproxy-{hops}"), target).await?;
    let mut procs = vec![tp];
    let pem = dir.join("haproxy.pem");
    let mut both = std::fs::read(data.join("server.pem")).context("server.pem")?;
    both.extend(std::fs::read(data.join("server.key")).context("server.key")?);
    std::fs::write(&pem, both)?;
    let ca = data.join("ca.pem");
    // Innermost first: each haproxy forwards to the previous one.
    let mut upstream = (tp_addr, false);
    let mut front = tp_addr;
    for hop in (1..=hops).rev() {
        let listen = SocketAddr::from(([127, 0, 0, 8], free_port([127, 0, 0, 8])?));
        let server = if upstream.1 {
            format!(
                "{} ssl verify required ca-file {} sni str({SNI}) verifyhost {SNI}",
                upstream.0,
                ca.display()
            )
        } else {
            upstream.0.to_string()
        };
        let cfg = dir.join(format!("haproxy-{hops}-{hop}.cfg"));
        std::fs::write(
            &cfg,
            format!(
                "global\n    maxconn 4096\n    tune.bufsize 65536\n\ndefaults\n    mode tcp\n    timeout connect 5s\n\
                 \x20   timeout client 10m\n    timeout server 10m\n\n\
                 frontend front\n    bind {listen} ssl crt {}\n    default_backend next\n\n\
                 backend next\n    server next {server}\n",
                pem.display()
            ),
        )?;
        let mut c = Command::new(haproxy);
        c.arg("-db").arg("-f").arg(&cfg);
        let log = dir.join(format!("haproxy-{hops}-{hop}.log"));
        let mut p = Proc::spawn(&format!("haproxy {hop}/{hops}"), c, &log)?;
        wait_listening(&mut p, &log, listen).await?;
        procs.push((p, log));
        upstream = (listen, true);
        front = listen;
    }
    let path = Path::Proxy {
        addr: front,
        front: Some(TlsFront::new(front, &ca, SNI)?),
        authority: target.to_string(),
        basic: base64_basic(&format!("{USER}:{PASS}")),
    };
    wait_path(&path, target, &mut procs).await?;
    Ok(Peer {
        name: if hops == 1 {
            "haproxy TLS + tinyproxy"
        } else {
            "haproxy TLS×2 + tinyproxy"
        },
        path,
        procs,
        is_peer: true,
    })
}
