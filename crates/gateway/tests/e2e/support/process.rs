//! Child processes: long-running ones ([`Proc`], killed with their whole tree on drop)
//! and short client runs ([`run`], bounded by a timeout).
//!
//! Every child is put in a process group of its own, so that what it forks
//! (ssh's ProxyCommand, proxytunnel's per-connection children) is killed with it. Only
//! processes this harness started are ever signalled, always by their id.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio::io::AsyncReadExt;

/// Environment variables that would send a client or the agent through some proxy the
/// test did not ask for.
const PROXY_ENV: &[&str] = &[
    "http_proxy",
    "https_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "no_proxy",
    "NO_PROXY",
];

/// One thread of a [`Proc`].
pub struct ThreadStat {
    /// Its name (`comm`), e.g. `comgate-site-0`.
    pub name: String,
    /// CPU time used, user + system, in clock ticks.
    pub cpu_ticks: u64,
    /// Its kernel scheduling policy: 0 `SCHED_OTHER`, 3 `SCHED_BATCH`.
    pub policy: u32,
}

/// Removes the proxy variables from a command's environment.
pub fn without_proxy_env(cmd: &mut std::process::Command) -> &mut std::process::Command {
    for var in PROXY_ENV {
        cmd.env_remove(var);
    }
    cmd
}

/// Sends `signal` to one process id (errors ignored: it may be gone already).
fn signal(pid: u32, signal: &str) {
    let _ = std::process::Command::new("kill")
        .args(["-s", signal, "--", &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Sends `signal` to process group `pgid`.
fn signal_group(pgid: u32, signal: &str) {
    let _ = std::process::Command::new("kill")
        .args(["-s", signal, "--", &format!("-{pgid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The direct children of every process, read from `/proc/<pid>/stat`.
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may contain spaces, so split after ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let ppid = rest
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u32>().ok());
        if ppid == Some(parent) {
            out.push(pid);
        }
    }
    out
}

/// `pid` and all its descendants, parents first.
fn tree_of(pid: u32) -> Vec<u32> {
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let kids = children_of(out[i]);
        out.extend(kids);
        i += 1;
    }
    out
}

/// Kills `pid`, everything it forked, and its process group (it leads one: see
/// [`Proc::spawn`]). Call while `pid` is not yet reaped, so the ids cannot be reused.
pub fn kill_tree(pid: u32) {
    let tree = tree_of(pid);
    signal_group(pid, "KILL");
    for p in tree {
        signal(p, "KILL");
    }
}

/// A long-running child (comgate, agent, sshd, tinyproxy, proxytunnel --standalone,
/// an HTTPS target) whose stdout and stderr are appended to a log file. Dropping it
/// kills its process tree.
pub struct Proc {
    name: String,
    child: Option<std::process::Child>,
    log: PathBuf,
}

impl Proc {
    /// Starts `cmd` in its own process group, output appended to `log`.
    pub fn spawn(name: &str, mut cmd: std::process::Command, log: &Path) -> Result<Proc> {
        use std::os::unix::process::CommandExt;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        cmd.stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .process_group(0);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {name}: {cmd:?}"))?;
        Ok(Proc {
            name: name.to_string(),
            child: Some(child),
            log: log.to_path_buf(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id (0 once it has been killed and reaped).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.id())
    }

    /// Each of the process's threads, from `/proc/<pid>/task/*`.
    pub fn threads(&self) -> Result<Vec<ThreadStat>> {
        let pid = self.pid();
        let mut threads = Vec::new();
        for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
            let dir = task?.path();
            let (Ok(comm), Ok(stat)) = (
                std::fs::read_to_string(dir.join("comm")),
                std::fs::read_to_string(dir.join("stat")),
            ) else {
                continue; // the thread ended meanwhile
            };
            // Fields after the parenthesised name, counted from the state
            // (proc(5) field 3): utime and stime are proc(5) fields 14 and
            // 15, the scheduling policy field 41.
            let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
            let fields: Vec<&str> = after.split_whitespace().collect();
            let field = |n: usize| -> Result<u64> {
                fields
                    .get(n - 3)
                    .context("short /proc stat line")?
                    .parse()
                    .with_context(|| format!("field {n} of /proc stat"))
            };
            threads.push(ThreadStat {
                name: comm.trim_end().to_owned(),
                cpu_ticks: field(14)? + field(15)?,
                policy: field(41)? as u32,
            });
        }
        Ok(threads)
    }

    /// The whole log (lossy UTF-8).
    pub fn log_text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// The last `n` lines of the log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Whether the process is still running (reaps it if it exited).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// SIGKILL to the process tree, then reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_tree(child.id());
            let _ = child.wait();
        }
    }

    /// SIGTERM (a clean stop), SIGKILL for whatever still runs after `grace`.
    pub async fn terminate(&mut self, grace: Duration) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        signal(child.id(), "TERM");
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                // Reaped: only its group may remain (children it forked).
                signal_group(child.id(), "KILL");
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        kill_tree(child.id());
        let _ = child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The result of a client program run by [`run`].
#[derive(Debug)]
pub struct Ran {
    pub what: String,
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub elapsed: Duration,
}

impl Ran {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// `self` when the program exited 0, else an error with its status and output.
    pub fn ok(self) -> Result<Ran> {
        if self.success() {
            Ok(self)
        } else {
            bail!("{}", self.describe())
        }
    }

    /// A one-paragraph account of the run, for error messages.
    pub fn describe(&self) -> String {
        format!(
            "`{}` exited with {} after {:.1?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.what,
            self.status,
            self.elapsed,
            tail(&self.stdout_text(), 20),
            tail(&self.stderr_text(), 30)
        )
    }
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Runs a client program to completion with stdin from /dev/null, collecting its
/// output. After `timeout` its process group is killed and an error returned. Whatever
/// it left behind in its group (a ProxyCommand) is killed when it exits.
pub async fn run(mut cmd: std::process::Command, timeout: Duration) -> Result<Ran> {
    let what = describe_command(&cmd);
    without_proxy_env(&mut cmd);
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let started = Instant::now();
    let mut child = cmd.spawn().with_context(|| format!("starting `{what}`"))?;
    let pid = child.id().unwrap_or(0);
    let mut out = child.stdout.take().context("stdout pipe")?;
    let mut err = child.stderr.take().context("stderr pipe")?;
    let out_task = tokio::spawn(async move {
        let mut buf = Vec::new();
        let _ = out.read_to_end(&mut buf).await;
        buf
    });
    let err_task = tokio::spawn(async move {
        let mut buf = Vec::new();
        let _ = err.read_to_end(&mut buf).await;
        buf
    });
    let waited = tokio::time::timeout(timeout, child.wait()).await;
    let status = match waited {
        Ok(status) => {
            let status = status.with_context(|| format!("waiting for `{what}`"))?;
            signal_group(pid, "KILL");
            status
        }
        Err(_) => {
            kill_tree(pid);
            let _ = child.wait().await;
            let stdout = out_task.await.unwrap_or_default();
            let stderr = err_task.await.unwrap_or_default();
            bail!(
                "`{what}` did not finish within {timeout:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                tail(&String::from_utf8_lossy(&stdout), 20),
                tail(&String::from_utf8_lossy(&stderr), 30)
            );
        }
    };
    // The pipes close when the last holder exits; the group was just killed.
    let stdout = tokio::time::timeout(Duration::from_secs(5), out_task)
        .await
        .ok()
        .and_then(|r| r.ok())
        .unwrap_or_default();
    let stderr = tokio::time::timeout(Duration::from_secs(5), err_task)
        .await
        .ok()
        .and_then(|r| r.ok())
        .unwrap_or_default();
    Ok(Ran {
        what,
        status,
        stdout,
        stderr,
        elapsed: started.elapsed(),
    })
}

/// The command line as a person would type it (for messages).
pub fn describe_command(cmd: &std::process::Command) -> String {
    let mut parts = vec![cmd.get_program().to_string_lossy().into_owned()];
    parts.extend(cmd.get_args().map(|a| {
        let a = a.to_string_lossy();
        if a.contains(' ') || a.is_empty() {
            format!("'{a}'")
        } else {
            a.into_owned()
        }
    }));
    parts.join(" ")
}
