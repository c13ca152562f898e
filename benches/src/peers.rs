//! Starting the processes behind each path: comgate serve + agent, the two reference
//! relays, a loopback sshd, rathole server + client. Everything lives in one work
//! directory and dies with the benchmark (kill on drop).

use std::net::{SocketAddr, TcpListener};
use std::path::{Path as FsPath, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio::process::{Child, Command};

use crate::paths::{Path, SshJump, TlsFront};

pub const DOMAIN: &str = "bench.test";
pub const SNI: &str = "maint.bench.test";
pub const USER: &str = "bench";
pub const PASS: &str = "bench-pass-7f3k9Q";

/// A free TCP port on `ip`.
pub fn free_port(ip: [u8; 4]) -> Result<u16> {
    Ok(TcpListener::bind(SocketAddr::from((ip, 0)))?
        .local_addr()?
        .port())
}

/// A long-running peer process.
pub struct Proc {
    pub name: String,
    child: Child,
}

impl Proc {
    pub fn spawn(name: &str, mut cmd: Command, log: &FsPath) -> Result<Proc> {
        let out = std::fs::File::create(log)?;
        let err = out.try_clone()?;
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {name} ({cmd:?})"))?;
        Ok(Proc {
            name: name.to_string(),
            child,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    fn check(&mut self, log: &FsPath) -> Result<()> {
        if let Ok(Some(status)) = self.child.try_wait() {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(20).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            bail!("{} exited ({status}):\n{}", self.name, tail.join("\n"));
        }
        Ok(())
    }
}

pub async fn wait_listening(proc: &mut Proc, log: &FsPath, addr: SocketAddr) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        proc.check(log)?;
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{} does not listen on {addr}", proc.name);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Retries `open` on `path` until it reaches the target (agents and rathole need a
/// moment to connect).
pub async fn wait_path(
    path: &Path,
    target: SocketAddr,
    procs: &mut [(Proc, PathBuf)],
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for (p, log) in procs.iter_mut() {
            p.check(log)?;
        }
        let err = match crate::measure::echo_once(path, target, false).await {
            Ok(_) => return Ok(()),
            Err(e) => e,
        };
        if Instant::now() > deadline {
            return Err(err.context("path did not come up in 30 s"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A started path: how to open streams and which processes do its work.
pub struct Peer {
    pub name: &'static str,
    pub path: Path,
    pub procs: Vec<(Proc, PathBuf)>,
    /// Peers (not the reference, not direct, not comgate) count for "best peer".
    pub is_peer: bool,
}

impl Peer {
    pub fn pids(&self) -> Vec<u32> {
        self.procs.iter().map(|(p, _)| p.pid()).collect()
    }
}

pub fn direct() -> Peer {
    Peer {
        name: "direct TCP",
        path: Path::Direct,
        procs: Vec::new(),
        is_peer: false,
    }
}

pub async fn run_ok(mut cmd: Command, what: &str) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A running `comgate serve`: enough to add more sites to it.
pub struct Comgate {
    bin: PathBuf,
    dir: PathBuf,
    config: PathBuf,
    /// Its data dir: the generated CA and server key serve the reference relay,
    /// rathole and haproxy too.
    pub data: PathBuf,
    /// The agent listener (127.0.0.1).
    pub agent_port: u16,
    front: TlsFront,
    basic: String,
    /// `max_streams` for each agent's config, if set.
    max_streams: Option<u32>,
}

impl Comgate {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.args(args).env("RUST_LOG", "info").env("NO_COLOR", "1");
        c
    }

    /// Adds system `system` of customer 12345 and starts its agent, which reaches the
    /// gateway at `wss://127.0.0.1:<gateway_port>` (the agent listener itself or a
    /// forwarder in front of it: the generated certificate carries 127.0.0.1) and lists
    /// the target as a co-located tunnel. Returns the agent and the path through it.
    async fn site(
        &self,
        system: &str,
        primary: bool,
        gateway_port: u16,
        target: SocketAddr,
    ) -> Result<((Proc, PathBuf), Path)> {
        let cfg = self.config.to_string_lossy().into_owned();
        let mut args = vec![
            "admin",
            "--config",
            &cfg,
            "system",
            "add",
            "--customer",
            "12345",
            "--name",
            system,
        ];
        if primary {
            args.push("--primary");
        }
        let out = run_ok(self.cmd(&args), "comgate admin system add").await?;
        let secret = out
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty())
            .context("no agent secret")?
            .to_string();
        let agent_cfg = self.dir.join(format!("agent-{system}.toml"));
        std::fs::write(
            &agent_cfg,
            format!(
                "gateway = \"wss://127.0.0.1:{gateway_port}\"\nca = \"{}\"\ncustomer = \"12345\"\n\
                 system = \"{system}\"\nsecret = \"{secret}\"\nremote_access = true\n\
                 colocated_servers = true\ncentralized_management = false\n{}\n[[tunnels]]\n\
                 application = \"bench\"\nserver_ip = \"{}\"\nserver_port = {}\n",
                self.data.join("ca.pem").display(),
                self.max_streams
                    .map_or(String::new(), |n| format!("max_streams = {n}\n")),
                target.ip(),
                target.port()
            ),
        )?;
        let agent_log = self.dir.join(format!("agent-{system}.log"));
        let agent = Proc::spawn(
            "comgate agent",
            self.cmd(&["agent", "--config", &agent_cfg.to_string_lossy()]),
            &agent_log,
        )?;
        let path = Path::Comgate {
            front: self.front.clone(),
            authority: format!(
                "12345-{system}-{}.maint.{DOMAIN}:{}",
                target.ip(),
                target.port()
            ),
            basic: self.basic.clone(),
        };
        Ok(((agent, agent_log), path))
    }

    /// A second site whose agent reaches the gateway through a delay relay
    /// (`delay_ms` each way): the distant site.
    pub async fn far(&self, target: SocketAddr, delay_ms: u64) -> Result<Peer> {
        let upstream = SocketAddr::from(([127, 0, 0, 1], self.agent_port));
        let (delay, addr) = delay(&self.dir, "delay-comgate", upstream, delay_ms).await?;
        let (agent, path) = self.site("ipo2", false, addr.port(), target).await?;
        let mut procs = vec![delay, agent];
        wait_path(&path, target, &mut procs).await?;
        Ok(Peer {
            name: "comgate",
            path,
            procs,
            is_peer: false,
        })
    }
}

/// comgate serve + one agent whose site lists the target as a co-located tunnel.
/// `max_streams` raises the streams one site takes at both ends above their
/// default (1,024), for the idle benchmark's tunnels; `None` keeps the defaults.
pub async fn comgate(
    bin: &FsPath,
    dir: &FsPath,
    target: SocketAddr,
    max_streams: Option<u32>,
) -> Result<(Peer, Comgate)> {
    let data = dir.join("comgate-data");
    let port = free_port([127, 0, 0, 1])?;
    let agent_port = free_port([127, 0, 0, 1])?;
    let config = dir.join("comgate.toml");
    std::fs::write(
        &config,
        format!(
            "domain = \"{DOMAIN}\"\ndata_dir = \"{}\"\n\n[gateway]\nlisten = \"127.0.0.1:{port}\"\n\
             max_tunnels_per_account = 100000\n\n[agents]\nlisten = \"127.0.0.1:{agent_port}\"\n{}",
            data.display(),
            max_streams.map_or(String::new(), |n| format!("max_streams_per_site = {n}\n"))
        ),
    )?;
    let cmd = |args: &[&str]| {
        let mut c = Command::new(bin);
        c.args(args).env("RUST_LOG", "info").env("NO_COLOR", "1");
        c
    };
    let serve_log = dir.join("serve.log");
    let mut serve = Proc::spawn(
        "comgate serve",
        cmd(&["serve", "--config", &config.to_string_lossy()]),
        &serve_log,
    )?;
    wait_listening(
        &mut serve,
        &serve_log,
        SocketAddr::from(([127, 0, 0, 1], port)),
    )
    .await?;
    let cfg = config.to_string_lossy().into_owned();
    run_ok(
        cmd(&[
            "admin",
            "--config",
            &cfg,
            "proxy-account",
            "set",
            "--owner",
            "reseller-a",
            "--username",
            USER,
            "--password",
            PASS,
        ]),
        "comgate admin proxy-account set",
    )
    .await?;
    run_ok(
        cmd(&[
            "admin",
            "--config",
            &cfg,
            "customer",
            "add",
            "--id",
            "12345",
            "--name",
            "Bench",
            "--reseller",
            "reseller-a",
        ]),
        "comgate admin customer add",
    )
    .await?;
    let cg = Comgate {
        bin: bin.to_path_buf(),
        dir: dir.to_path_buf(),
        config,
        front: TlsFront::new(
            SocketAddr::from(([127, 0, 0, 1], port)),
            &data.join("ca.pem"),
            SNI,
        )?,
        data,
        agent_port,
        basic: base64_basic(&format!("{USER}:{PASS}")),
        max_streams,
    };
    let (agent, path) = cg.site("ipo1", true, agent_port, target).await?;
    let mut procs = vec![(serve, serve_log), agent];
    wait_path(&path, target, &mut procs).await?;
    Ok((
        Peer {
            name: "comgate",
            path,
            procs,
            is_peer: false,
        },
        cg,
    ))
}

/// Starts `comgate-bench delay` on 127.0.0.1 in front of `upstream`; returns it and
/// its address.
pub async fn delay(
    dir: &FsPath,
    name: &str,
    upstream: SocketAddr,
    delay_ms: u64,
) -> Result<((Proc, PathBuf), SocketAddr)> {
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port([127, 0, 0, 1])?));
    let mut c = Command::new(std::env::current_exe()?);
    c.arg("delay")
        .arg("--listen")
        .arg(addr.to_string())
        .arg("--upstream")
        .arg(upstream.to_string())
        .arg("--delay-ms")
        .arg(delay_ms.to_string());
    let log = dir.join(format!("{name}.log"));
    let mut p = Proc::spawn(name, c, &log)?;
    wait_listening(&mut p, &log, addr).await?;
    Ok(((p, log), addr))
}

/// Plain TCP through a delay relay straight to the target: the ceiling of the
/// distant-site figure.
pub async fn direct_far(dir: &FsPath, target: SocketAddr, delay_ms: u64) -> Result<Peer> {
    let (d, addr) = delay(dir, "delay-direct", target, delay_ms).await?;
    let path = Path::Forward(addr);
    let mut procs = vec![d];
    wait_path(&path, target, &mut procs).await?;
    Ok(Peer {
        name: "direct TCP",
        path,
        procs,
        is_peer: false,
    })
}

/// client -TLS-> relay1 -TLS-> relay2 -> target, each relay its own process.
pub async fn relay(
    dir: &FsPath,
    data: &FsPath,
    target: SocketAddr,
    batch: bool,
) -> Result<(Peer, SocketAddr)> {
    let r2 = SocketAddr::from(([127, 0, 0, 3], free_port([127, 0, 0, 3])?));
    let r1 = SocketAddr::from(([127, 0, 0, 2], free_port([127, 0, 0, 2])?));
    let log2 = dir.join("relay2.log");
    let mut p2 = Proc::spawn("relay2", relay_cmd(data, r2, target, false, batch)?, &log2)?;
    wait_listening(&mut p2, &log2, r2).await?;
    let log1 = dir.join("relay1.log");
    let mut p1 = Proc::spawn("relay1", relay_cmd(data, r1, r2, true, batch)?, &log1)?;
    wait_listening(&mut p1, &log1, r1).await?;
    let path = Path::Relay {
        front: TlsFront::new(r1, &data.join("ca.pem"), SNI)?,
    };
    let mut procs = vec![(p1, log1), (p2, log2)];
    wait_path(&path, target, &mut procs).await?;
    Ok((
        Peer {
            name: "2-hop TLS relay (ref)",
            path,
            procs,
            is_peer: false,
        },
        r2,
    ))
}

/// `comgate-bench relay` on `listen` to `upstream` (TLS upstream when `tls`), with the
/// server key and CA that comgate generated in `data`; under `chrt -b 0` when `batch`:
/// comgate's default scheduling policy (`thread_scheduling` in the gateway crate), so
/// that the reference measures the shape with the same kernel policy, not the policy.
fn relay_cmd(
    data: &FsPath,
    listen: SocketAddr,
    upstream: SocketAddr,
    tls: bool,
    batch: bool,
) -> Result<Command> {
    let exe = std::env::current_exe()?;
    let mut c = if batch {
        let mut c = Command::new("chrt");
        c.args(["-b", "0"]).arg(exe);
        c
    } else {
        Command::new(exe)
    };
    c.arg("relay")
        .arg("--listen")
        .arg(listen.to_string())
        .arg("--cert")
        .arg(data.join("server.pem"))
        .arg("--key")
        .arg(data.join("server.key"))
        .arg("--upstream")
        .arg(upstream.to_string());
    if tls {
        c.arg("--upstream-ca").arg(data.join("ca.pem"));
    }
    Ok(c)
}

/// The reference relay with the delay between its two hops: a second relay1 whose
/// upstream is a delay relay in front of the running relay2 (`r2`).
pub async fn relay_far(
    dir: &FsPath,
    data: &FsPath,
    r2: SocketAddr,
    target: SocketAddr,
    delay_ms: u64,
    batch: bool,
) -> Result<Peer> {
    let (d, daddr) = delay(dir, "delay-relay", r2, delay_ms).await?;
    let r1 = SocketAddr::from(([127, 0, 0, 2], free_port([127, 0, 0, 2])?));
    let log1 = dir.join("relay1-far.log");
    let mut p1 = Proc::spawn(
        "relay1 (far)",
        relay_cmd(data, r1, daddr, true, batch)?,
        &log1,
    )?;
    wait_listening(&mut p1, &log1, r1).await?;
    let path = Path::Relay {
        front: TlsFront::new(r1, &data.join("ca.pem"), SNI)?,
    };
    let mut procs = vec![d, (p1, log1)];
    wait_path(&path, target, &mut procs).await?;
    Ok(Peer {
        name: "2-hop TLS relay (ref)",
        path,
        procs,
        is_peer: false,
    })
}

/// A loopback sshd used as a jump host with `ssh -W`.
pub async fn ssh(dir: &FsPath, target: SocketAddr) -> Result<Peer> {
    let dir = dir.join("ssh");
    std::fs::create_dir_all(&dir)?;
    for name in ["host_ed25519", "client_ed25519"] {
        let mut c = Command::new("ssh-keygen");
        c.args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
            .arg(dir.join(name));
        run_ok(c, "ssh-keygen").await?;
    }
    std::fs::copy(dir.join("client_ed25519.pub"), dir.join("authorized_keys"))?;
    let port = free_port([127, 0, 0, 1])?;
    let config = dir.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile {}\nAuthorizedKeysFile {}\n\
             StrictModes no\nPubkeyAuthentication yes\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nUsePAM no\n\
             AllowTcpForwarding yes\nMaxStartups 200\nMaxSessions 200\nLogLevel ERROR\n",
            dir.join("host_ed25519").display(),
            dir.join("sshd.pid").display(),
            dir.join("authorized_keys").display()
        ),
    )?;
    let _ = std::fs::create_dir_all("/run/sshd");
    let sshd_bin = ["/usr/sbin/sshd", "/usr/bin/sshd"]
        .into_iter()
        .find(|p| FsPath::new(p).exists())
        .context("sshd not found (apt-get install openssh-server)")?;
    let mut c = Command::new(sshd_bin);
    c.args(["-D", "-e", "-f"]).arg(&config);
    let log = dir.join("sshd.log");
    let mut p = Proc::spawn("sshd", c, &log)?;
    wait_listening(&mut p, &log, SocketAddr::from(([127, 0, 0, 1], port))).await?;
    let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
    let path = Path::Ssh(SshJump {
        port,
        key: dir.join("client_ed25519"),
        user,
    });
    let mut procs = vec![(p, log)];
    wait_path(&path, target, &mut procs).await?;
    Ok(Peer {
        name: "ssh -W",
        path,
        procs,
        is_peer: true,
    })
}

/// `ssh -W` through the running sshd of `jump`, with a delay relay between the ssh
/// client and sshd.
pub async fn ssh_far(
    dir: &FsPath,
    jump: &SshJump,
    target: SocketAddr,
    delay_ms: u64,
) -> Result<Peer> {
    let upstream = SocketAddr::from(([127, 0, 0, 1], jump.port));
    let (d, addr) = delay(dir, "delay-ssh", upstream, delay_ms).await?;
    let path = Path::Ssh(SshJump {
        port: addr.port(),
        ..jump.clone()
    });
    let mut procs = vec![d];
    wait_path(&path, target, &mut procs).await?;
    Ok(Peer {
        name: "ssh -W",
        path,
        procs,
        is_peer: true,
    })
}

/// rathole server + client over its websocket transport with TLS; with `delay_ms`,
/// a separate pair whose client reaches the server through a delay relay.
pub async fn rathole(
    bin: &FsPath,
    dir: &FsPath,
    data: &FsPath,
    target: SocketAddr,
    delay_ms: Option<u64>,
) -> Result<Peer> {
    let dir = dir.join(if delay_ms.is_some() {
        "rathole-far"
    } else {
        "rathole"
    });
    std::fs::create_dir_all(&dir)?;
    let pfx = dir.join("identity.pfx");
    let mut c = Command::new("openssl");
    c.args(["pkcs12", "-export", "-passout", "pass:bench", "-out"])
        .arg(&pfx)
        .arg("-inkey")
        .arg(data.join("server.key"))
        .arg("-in")
        .arg(data.join("server.pem"));
    run_ok(c, "openssl pkcs12 -export").await?;
    let port = free_port([127, 0, 0, 1])?;
    let visitor = SocketAddr::from(([127, 0, 0, 6], free_port([127, 0, 0, 6])?));
    std::fs::write(
        dir.join("server.toml"),
        format!(
            "[server]\nbind_addr = \"127.0.0.1:{port}\"\ndefault_token = \"bench-token\"\n\n\
             [server.transport]\ntype = \"websocket\"\n[server.transport.tls]\npkcs12 = \"{}\"\n\
             pkcs12_password = \"bench\"\n[server.transport.websocket]\ntls = true\n\n\
             [server.services.bench]\nbind_addr = \"{visitor}\"\n",
            pfx.display()
        ),
    )?;
    let server = SocketAddr::from(([127, 0, 0, 1], port));
    let spawn = |flag: &str, file: &str| {
        let mut c = Command::new(bin);
        c.arg(flag).arg(dir.join(file)).env("RUST_LOG", "warn");
        c
    };
    let slog = dir.join("server.log");
    let mut s = Proc::spawn("rathole server", spawn("--server", "server.toml"), &slog)?;
    wait_listening(&mut s, &slog, server).await?;
    let mut procs = vec![(s, slog)];
    let remote = match delay_ms {
        Some(ms) => {
            let (d, addr) = delay(&dir, "delay-rathole", server, ms).await?;
            procs.push(d);
            addr
        }
        None => server,
    };
    std::fs::write(
        dir.join("client.toml"),
        format!(
            "[client]\nremote_addr = \"{remote}\"\ndefault_token = \"bench-token\"\n\n\
             [client.transport]\ntype = \"websocket\"\n[client.transport.tls]\n\
             trusted_root = \"{}\"\nhostname = \"{SNI}\"\n[client.transport.websocket]\ntls = true\n\n\
             [client.services.bench]\nlocal_addr = \"{target}\"\n",
            data.join("ca.pem").display()
        ),
    )?;
    let clog = dir.join("client.log");
    let c = Proc::spawn("rathole client", spawn("--client", "client.toml"), &clog)?;
    let path = Path::Rathole { visitor };
    procs.push((c, clog));
    wait_path(&path, target, &mut procs).await?;
    Ok(Peer {
        name: "rathole ws+TLS",
        path,
        procs,
        is_peer: true,
    })
}

pub fn base64_basic(s: &str) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn basic_matches_rfc4648() {
        assert_eq!(
            super::base64_basic("Aladdin:open sesame"),
            "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        assert_eq!(super::base64_basic("ab"), "YWI=");
    }
}
