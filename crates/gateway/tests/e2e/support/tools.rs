//! Finding the real client programs, and the skip-or-fail rule when one is missing.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use anyhow::{bail, Result};

/// Directories searched besides `PATH` (sshd lives in /usr/sbin, which a non-root
/// `PATH` may lack).
const EXTRA_DIRS: &[&str] = &["/usr/sbin", "/sbin", "/usr/local/sbin", "/usr/bin", "/bin"];

/// Absolute path of an executable, searched in `PATH` and then the sbin directories.
pub fn find(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(EXTRA_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| {
            candidate
                .metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Like [`find`], but an error naming the program when it is missing.
pub fn path_of(program: &str) -> Result<PathBuf> {
    match find(program) {
        Some(p) => Ok(p),
        None => bail!("{program} not installed"),
    }
}

/// `Ok(true)` when every program is installed. Otherwise: with `CI=true` an error (the
/// test fails, CI must have every client); else a `skipped: X not installed` line and
/// `Ok(false)` (the test returns early and passes).
pub fn require(programs: &[&str]) -> Result<bool> {
    let missing: Vec<&str> = programs
        .iter()
        .copied()
        .filter(|p| find(p).is_none())
        .collect();
    if missing.is_empty() {
        return Ok(true);
    }
    let list = missing.join(", ");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        bail!("CI=true and required program(s) not installed: {list}");
    }
    let test = std::thread::current()
        .name()
        .unwrap_or("this test")
        .to_string();
    eprintln!("skipped: {list} not installed ({test})");
    Ok(false)
}

/// Whether this process may create a private mount namespace (`unshare -m`, root):
/// needed to give proxytunnel or tinyproxy an `/etc/hosts` of their own.
pub fn can_unshare_mount() -> bool {
    static CAN: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *CAN.get_or_init(|| {
        find("unshare").is_some_and(|unshare| {
            std::process::Command::new(unshare)
                .args(["-m", "true"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
    })
}

/// Like [`require`] for the ability to run `unshare -m` (root).
pub fn require_unshare() -> Result<bool> {
    if can_unshare_mount() {
        return Ok(true);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        bail!("CI=true and `unshare -m` is not permitted (run the tests as root)");
    }
    let test = std::thread::current()
        .name()
        .unwrap_or("this test")
        .to_string();
    eprintln!("skipped: `unshare -m` not permitted, run as root ({test})");
    Ok(false)
}
